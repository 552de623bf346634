"""Build, compile, train and apply one classifier of Table 2 on one fold (paper §3.3, §3.4).

* :func:`build_classifier_for_training`: the backbones with their starting weights (ImageNet
  VGG-16 when asked for and available, else random, recorded either way, or an error when
  ``require_backbone_weights`` is set), the pixel normalisation that goes with them, and the
  classifier (§3.3.2);
* :func:`compile_classifier`: SGD with momentum and weight decay (§3.4), the loss
  ``l_i + lambda * l_d`` of Eq. (1) being the model's own (:class:`ClassifierTask`);
* :func:`fit_classifier`: training with the weights of the lowest validation loss kept, and
  resumable after an interruption;
* :func:`predict_probabilities`: the probability of malignancy of every image of a batch stream.
"""

from __future__ import annotations

import logging
import sys

import keras
import numpy as np
import tensorflow as tf

from tf_bimodal.config import ClassificationConfig
from tf_bimodal.models.classification.backbone_weights import imagenet_vgg16, load_backbone_weights
from tf_bimodal.models.classification.factory import backbone_names, build_backbone, build_classifier
from tf_bimodal.training.callbacks import ProgressLogger, resumable_callbacks

logger = logging.getLogger(__name__)

PROGRESS_BAR = 1
"""Keras' progress bar within epochs when the output is a terminal; a line per epoch otherwise."""

MONITOR = "val_loss"
"""Model selection and early stopping of the classifiers: the validation loss of Eq. (1)."""


class CachedImagenet:
    """Loads the ImageNet VGG-16 at most once per run (or fails once): a ``loader`` for
    :func:`~tf_bimodal.models.classification.backbone_weights.load_backbone_weights`."""

    def __init__(self):
        self.model = None
        self.error = None

    def __call__(self):
        if self.error is not None:
            raise self.error
        if self.model is None:
            try:
                self.model = imagenet_vgg16()
            except Exception as error:
                self.error = error
                raise
        return self.model


def build_classifier_for_training(model: str, config: ClassificationConfig, loader=None) -> tuple:
    """The classifier ``model`` with backbones initialised as ``config.backbone_weights`` asks.

    Call it inside the strategy's scope. When ImageNet weights are asked for but cannot be
    loaded (no network), the backbones start from random weights, with a warning, and the
    record says so; with ``config.require_backbone_weights`` the failure is an error instead.

    Args:
        model: a ``CLASSIFICATION_MODELS`` name.
        config: the classification settings (``backbone_weights``,
            ``require_backbone_weights``, the backbone's shape, ``normalization``).
        loader: the ImageNet VGG-16 loader (default: a :class:`CachedImagenet`, so that all
            backbones of a run load or fail once).

    Returns:
        ``(classifier, records, normalization)``: the uncompiled model, ``{backbone name:
        {"requested", "used", "reason", ...}}`` and the pixel normalisation chosen
        (``caffe`` with ImageNet weights, else ``standardize``, unless ``config`` names one).

    Raises:
        BackboneWeightsUnavailable: ImageNet weights required but not loadable (a
            ``RuntimeError`` saying how to provide a weights file).
        ValueError: a ``backbone_weights`` path with no file, or a file that does not load.
    """
    loader = loader or CachedImagenet()
    backbones, records = {}, {}
    for name in backbone_names(model):
        backbone = build_backbone(config, name)
        records[name] = load_backbone_weights(
            backbone,
            config.backbone_weights,
            allow_fallback=not config.require_backbone_weights,
            loader=loader,
            log=logger.info,
        )
        backbones[name] = backbone
    normalization = config.normalization
    if normalization == "auto":
        used = {record["used"] for record in records.values()}
        normalization = "caffe" if used == {"imagenet"} else "standardize"
    return build_classifier(model, config, normalization, backbones=backbones), records, normalization


def compile_classifier(classifier: keras.Model, config: ClassificationConfig) -> keras.Model:
    """Compile with SGD (``learning_rate``, ``momentum``, ``weight_decay``; §3.4); the loss is
    the model's own (Eq. 1)."""
    classifier.compile(
        optimizer=keras.optimizers.SGD(
            learning_rate=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
        )
    )
    return classifier


def fit_classifier(
    classifier: keras.Model,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset,
    config: ClassificationConfig,
    fold_dir: str,
    label: str = "",
    started: float | None = None,
    extra_callbacks=(),
) -> dict:
    """Train a compiled classifier, keeping the weights of its lowest-validation-loss epoch.

    Training runs for at most ``config.epochs`` epochs and stops when the validation loss has
    not improved for ``config.early_stopping_patience`` epochs. The history goes to
    ``fold_dir/history.csv`` and the fit is resumable: killed, the next call with the same
    ``fold_dir`` goes on from its last finished epoch
    (:func:`~tf_bimodal.training.callbacks.resumable_callbacks`).

    Returns:
        ``{"best_epoch", "epochs_run", "resumed_from_epoch"}`` (epochs counted from 1).
    """
    callbacks, early_stopping = resumable_callbacks(
        fold_dir, monitor=MONITOR, patience=config.early_stopping_patience
    )
    callbacks += [ProgressLogger(label, config.epochs, log=logger.info, started=started), *extra_callbacks]
    classifier.fit(
        train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks, shuffle=False,
        verbose=PROGRESS_BAR if sys.stdout.isatty() else 0,
    )
    resumed_from = early_stopping.resumed_from
    return {
        "best_epoch": int(early_stopping.best_epoch) + 1,
        "epochs_run": int(early_stopping.last_epoch) + 1,
        "resumed_from_epoch": None if resumed_from is None else resumed_from + 1,
    }


def predict_probabilities(classifier: keras.Model, ds: tf.data.Dataset) -> dict:
    """Probability of malignancy per image of a ``with_metadata`` dataset
    (:func:`tf_bimodal.data.inputs.classification_dataset`), with its ids and labels."""
    input_names = set(classifier.input.keys()) if isinstance(classifier.input, dict) else None
    columns = {"image_id": [], "patient_id": [], "label": [], "probability": []}
    for inputs, _ in ds:
        feed = {key: value for key, value in inputs.items() if input_names is None or key in input_names}
        outputs = classifier(feed, training=False)
        columns["probability"].append(np.asarray(outputs["decision"])[:, 1])
        for key in ("image_id", "patient_id"):
            columns[key].extend(value.decode() for value in inputs[key].numpy())
        columns["label"].append(inputs["label"].numpy())
    return {
        "image_id": np.asarray(columns["image_id"]),
        "patient_id": np.asarray(columns["patient_id"]),
        "label": np.concatenate(columns["label"]).astype(np.int64),
        "probability": np.concatenate(columns["probability"]).astype(np.float64),
    }
