"""Compile, train and apply one segmenter on one fold (paper §3.4)."""

from __future__ import annotations

import logging
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from tf_bimodal.config import SegmentationConfig
from tf_bimodal.data import inputs
from tf_bimodal.training.callbacks import ProgressLogger, resumable_callbacks
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


def compile_segmenter(model: keras.Model, config: SegmentationConfig) -> keras.Model:
    """Compile with Adam (``config.learning_rate``, ``beta_1``, ``beta_2``; §3.4), the
    configured loss (§3.4: Dice) and the per-image Dice metric (logged as ``dice``)."""
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=config.learning_rate, beta_1=config.beta_1, beta_2=config.beta_2
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
    callbacks += list(extra_callbacks)
    # The input pipeline shuffles (seeded); Keras cannot shuffle a tf.data.Dataset anyway.
    history = model.fit(
        train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks, shuffle=False,
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


def predict_masks(model: keras.Model, arrays: dict, input_keys, output_size: int) -> np.ndarray:
    """Lesion probabilities of every image, resized bilinearly to ``output_size`` (float32
    N x S x S), so that masks are thresholded and scored at the data's own size (§3.4)."""
    parts = []
    for batch in inputs.prediction_batches(arrays, input_keys, PREDICTION_BATCH):
        probabilities = model(batch, training=False)
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
