"""Compile, train and apply one segmenter on one fold (paper §3.4), and the auto-weight
pre-stage that comes before W-MM-U-Net (§3.2.2)."""

from __future__ import annotations

import logging
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from tf_bimodal.config import SegmentationConfig
from tf_bimodal.data import inputs
from tf_bimodal.models.accumulation import AccumulatingAdam
from tf_bimodal.models.segmentation.auto_weight import (
    PRESTAGE_CLASSES,
    PRESTAGE_RULE,
    AutoWeightClassifier,
    input_channel_importance,
    prestage_weights,
)
from tf_bimodal.schema import MODALITY_CHANNELS
from tf_bimodal.training import runtime as runtime_lib
from tf_bimodal.training.callbacks import ProgressLogger, cosine_schedule, resumable_callbacks
from tf_bimodal.training.losses import segmentation_loss
from tf_bimodal.training.metrics import SegmentationScore

logger = logging.getLogger(__name__)

PROGRESS_BAR = 1
"""Keras' progress bar within epochs when the output is a terminal; a line per epoch otherwise."""

PREDICTION_BATCH = 16
"""Images per prediction batch."""

MONITOR = "val_dice"
"""Early stopping and model selection use the mean per-image validation Dice (threshold
``SegmentationConfig.threshold``), the paper's headline segmentation metric (§4.1)."""


def compile_segmenter(model: keras.Model, config: SegmentationConfig, accumulation_steps: int = 1) -> keras.Model:
    """Compile with Adam (``config.learning_rate``, ``beta_1``, ``beta_2``; §3.4), the
    configured loss (§3.4: Dice) and the per-image Dice metric (logged as ``dice``). With
    ``accumulation_steps`` > 1 Adam steps once per that many micro-batches, on their mean
    gradient (:mod:`tf_bimodal.models.accumulation`)."""
    accumulation = {"accumulation_steps": accumulation_steps} if accumulation_steps > 1 else {}
    model.compile(
        optimizer=(AccumulatingAdam if accumulation else keras.optimizers.Adam)(
            learning_rate=config.learning_rate, beta_1=config.beta_1, beta_2=config.beta_2, **accumulation
        ),
        loss=segmentation_loss(config.loss),
        metrics=[SegmentationScore("dice", threshold=config.threshold)],
    )
    return model


def fit_segmenter(
    model: keras.Model,
    train_ds,
    val_ds,
    config: SegmentationConfig,
    fold_dir: str | None = None,
    label: str = "",
    started: float | None = None,
    extra_callbacks=(),
) -> dict:
    """Train a compiled segmenter, keeping the weights of its best validation-Dice epoch.

    Training runs for at most ``config.epochs`` epochs and stops when the validation Dice
    has not improved for ``config.early_stopping_patience`` epochs; the model is then left
    with the weights of the best epoch (``EarlyStopping(restore_best_weights=True)``, which
    restores them whether or not training stopped early). The paper (§3.4) does not say how
    it chose its epoch; selecting on the validation part, never on the test part, keeps the
    test scores unbiased.

    Args:
        model: a compiled segmenter.
        train_ds, val_ds: datasets of ``(inputs, mask)`` batches.
        config: the ``SegmentationConfig``.
        fold_dir: if given, the per-epoch history goes to ``fold_dir/history.csv`` and the
            fit is resumable: killed, the next call with the same ``fold_dir`` goes on from
            its last finished epoch (:func:`~tf_bimodal.training.callbacks.resumable_callbacks`).
        label: prefix of the progress lines (model and fold), logged to ``tf_bimodal``.
        started: ``time.time()`` the progress lines count elapsed seconds from (default:
            the start of this training).
        extra_callbacks: more callbacks (e.g. TensorBoard), run after the built-in ones.

    Returns:
        ``{"best_epoch", "best_val_dice", "epochs_run", "resumed_from_epoch", "history"}``
        (epochs counted from 1; ``history`` holds this call's epochs only).
    """
    early_stopping_kwargs = dict(monitor=MONITOR, mode="max", patience=config.early_stopping_patience)
    progress = ProgressLogger(label, config.epochs, log=logger.info, started=started)
    if fold_dir is not None:
        os.makedirs(fold_dir, exist_ok=True)
        callbacks, early_stopping = resumable_callbacks(fold_dir, **early_stopping_kwargs)
        callbacks.append(progress)
    else:
        early_stopping = keras.callbacks.EarlyStopping(restore_best_weights=True, **early_stopping_kwargs)
        callbacks = [early_stopping, progress]
    if config.lr_schedule == "cosine":
        callbacks.append(keras.callbacks.LearningRateScheduler(cosine_schedule(config.learning_rate, config.epochs)))
    callbacks += list(extra_callbacks)
    # The input pipeline shuffles (seeded); Keras cannot shuffle a tf.data.Dataset anyway.
    history = model.fit(
        **runtime_lib.fit_datasets(train_ds, val_ds), epochs=config.epochs, callbacks=callbacks, shuffle=False,
        verbose=PROGRESS_BAR if sys.stdout.isatty() else 0,
    )
    values = history.history
    resumed_from = getattr(early_stopping, "resumed_from", None)
    last_epoch = getattr(early_stopping, "last_epoch", len(values.get("loss", [])) - 1)
    return {
        "best_epoch": int(early_stopping.best_epoch) + 1,
        "best_val_dice": float(early_stopping.best),
        "epochs_run": int(last_epoch) + 1,
        "resumed_from_epoch": None if resumed_from is None else int(resumed_from) + 1,
        "history": {key: [float(v) for v in series] for key, series in values.items()},
    }


def predict_masks(
    model: keras.Model, arrays: dict, input_keys, output_size: int, test_time_flip: bool = False
) -> np.ndarray:
    """Lesion probabilities of every image, resized bilinearly to ``output_size`` (float32
    N x S x S), so that masks are thresholded and scored at the data's own size (§3.4).

    With ``test_time_flip`` the probabilities are the mean of the model's output on the images
    and, mirrored back, on their left-right mirror images
    (``SegmentationConfig.test_time_flip``).
    """
    parts = []
    for batch in inputs.prediction_batches(arrays, input_keys, PREDICTION_BATCH):
        probabilities = model(batch, training=False)
        if test_time_flip:
            mirrored = {key: tf.reverse(value, axis=[2]) for key, value in batch.items()}
            probabilities = (probabilities + tf.reverse(model(mirrored, training=False), axis=[2])) / 2.0
        if probabilities.shape[1] != output_size:
            probabilities = tf.image.resize(probabilities, (output_size, output_size), method="bilinear")
        parts.append(probabilities.numpy()[..., 0])
    return np.concatenate(parts)


def mean_modality_weights(model: keras.Model, arrays: dict, indices, input_keys) -> list[float] | None:
    """The mean over the images ``indices`` of the modal path weights a W-MM-U-Net applies in
    its weighted skip connection (§3.2.3); None for a model without them."""
    weights_model = getattr(model, "modality_weights_model", None)
    if weights_model is None or len(indices) == 0:
        return None
    selected = {key: arrays[key][indices] for key in input_keys}
    batches = inputs.prediction_batches(selected, input_keys, PREDICTION_BATCH)
    weights = np.concatenate([weights_model(batch, training=False).numpy() for batch in batches])
    return [float(w) for w in weights.mean(axis=0)]


def train_auto_weight_prestage(
    arrays: dict,
    train_ids,
    val_ids,
    config: SegmentationConfig,
    image_size: int,
    seed: int = 0,
    input_keys=("bmode", "semode"),
    label: str = "",
) -> dict:
    """The auto-weight pre-stage of one fold (§3.2.2): train the ResNet classifier, read the
    modality weights from it.

    An :class:`~tf_bimodal.models.segmentation.auto_weight.AutoWeightClassifier` (filters
    ``config.auto_weight_filters``) learns benign vs malignant from the fold's training
    images (full images at ``image_size``, augmented when ``config.augment``; images of other
    classes, e.g. BUSI's ``normal``, are left out) with Adam (``config.auto_weight_learning_rate``)
    and cross-entropy, for at most ``config.auto_weight_epochs`` epochs (early stopping on the
    validation loss, patience ``config.early_stopping_patience``); the weights of its best
    validation-loss epoch are kept. The modality weights are then
    :func:`~tf_bimodal.models.segmentation.auto_weight.input_channel_importance` over the
    training images (unaugmented), normalised to sum 1
    (:func:`~tf_bimodal.models.segmentation.auto_weight.prestage_weights`). Nothing of the
    test images is used.

    Args:
        arrays: the experiment's arrays at the model size (``bmode``, ``semode``, ``label``,
            ``image_id`` ...; :func:`tf_bimodal.data.inputs.resize_arrays`).
        train_ids, val_ids: the fold's training and validation image ids.
        config: the ``SegmentationConfig``.
        image_size: the side of the images in ``arrays``.
        seed: seeds the shuffling and augmentation (the fold's seed; the caller seeds the
            initialisation).
        input_keys: the inputs stacked, in path order.
        label: prefix of the progress line.

    Returns:
        ``{"weights", "path_names", "importance", "rule", "epochs_run", "best_epoch",
        "val_accuracy", "num_images"}``: the weights (summing to 1) in ``path_names`` order.

    Raises:
        ValueError: the training or validation part holds no benign or malignant image.
    """
    train_ids, val_ids = prestage_image_ids(arrays, train_ids, val_ids)
    classifier = compile_prestage_classifier(config, image_size, input_keys)

    def batches(ids, training):
        return inputs.classification_dataset(
            arrays, ids, input_keys, image_size, None, batch_size=config.batch_size, training=training,
            augment=config.augment and training, seed=seed,
        )

    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True
    )
    history = classifier.fit(
        **runtime_lib.fit_datasets(batches(train_ids, True), batches(val_ids, False)), epochs=config.auto_weight_epochs,
        callbacks=[early_stopping], shuffle=False, verbose=0,
    ).history
    val_losses = history["val_loss"]
    best = int(np.argmin(val_losses))
    importance = input_channel_importance(classifier, batches(train_ids, False))
    weights = prestage_weights(importance)
    record = {
        "weights": weights,
        "path_names": list(classifier.path_names),
        "importance": [float(v) for v in importance],
        "rule": PRESTAGE_RULE,
        "epochs_run": len(val_losses),
        "best_epoch": best + 1,
        "val_accuracy": float(history["val_accuracy"][best]),
        "num_images": {"train": len(train_ids), "val": len(val_ids)},
    }
    logger.info(
        f"{label}: auto-weight pre-stage, best epoch {best + 1}/{len(val_losses)} (val accuracy "
        f"{record['val_accuracy']:.2f}); weights "
        + ", ".join(f"{name} {weight:.3f}" for name, weight in zip(record["path_names"], weights))
    )
    return record


def prestage_image_ids(arrays: dict, train_ids, val_ids):
    """The fold's training and validation ids of benign or malignant images only (the
    pre-stage's classes, ``PRESTAGE_CLASSES``; e.g. BUSI's ``normal`` images are left out).

    Raises:
        ValueError: either part holds no such image.
    """
    position = {image_id: index for index, image_id in enumerate(arrays["image_id"])}
    classes = set(range(len(PRESTAGE_CLASSES)))

    def labelled(ids):
        return [image_id for image_id in ids if int(arrays["label"][position[image_id]]) in classes]

    train_ids, val_ids = labelled(train_ids), labelled(val_ids)
    if not train_ids or not val_ids:
        raise ValueError(
            f"train_auto_weight_prestage: needs benign or malignant images in the training and the validation "
            f"part, got {len(train_ids)} and {len(val_ids)}"
        )
    return train_ids, val_ids


def compile_prestage_classifier(config: SegmentationConfig, image_size: int, input_keys) -> AutoWeightClassifier:
    """A new :class:`~tf_bimodal.models.segmentation.auto_weight.AutoWeightClassifier` of
    ``config`` on ``input_keys``, compiled with Adam (``config.auto_weight_learning_rate``),
    cross-entropy on its logits and accuracy (§3.2.2)."""
    classifier = AutoWeightClassifier(
        input_names=input_keys,
        input_channels=[MODALITY_CHANNELS[key] for key in input_keys],
        colour_mode=config.colour_mode,
        stackwise_num_filters=config.auto_weight_filters,
        use_batch_norm=config.use_batch_norm,
        image_size=image_size,
    )
    classifier.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.auto_weight_learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return classifier
