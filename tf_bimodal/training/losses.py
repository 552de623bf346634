"""Segmentation losses (paper §3.4: Dice loss; binary cross-entropy was the alternative).

``dice`` is Keras' own :class:`keras.losses.Dice` with ``axis=(1, 2, 3)``: one Dice loss
``1 - 2 sum(y t) / (sum(y) + sum(t) + eps)`` per image, averaged over the batch
(``reduction="sum_over_batch_size"``). Its default ``axis=None`` would instead pool all
pixels of the batch into one Dice, letting large lesions outweigh small ones. Keras' Dice
has no smoothing term, so an image whose true mask is empty contributes a constant 1 and no
gradient; for data with lesion-free images (BUSI ``normal``) use ``dice_bce``.
"""

from __future__ import annotations

import keras
from keras import ops

from tf_bimodal.config import SEGMENTATION_LOSSES

IMAGE_AXES = (1, 2, 3)


@keras.saving.register_keras_serializable(package="tf_bimodal")
class DiceBCELoss(keras.losses.Loss):
    """Per-image Dice loss plus per-image mean binary cross-entropy, averaged over the batch."""

    def __init__(self, reduction="sum_over_batch_size", name="dice_bce", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        dice = keras.losses.dice(y_true, y_pred, axis=IMAGE_AXES)
        bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred), axis=(1, 2))
        return dice + bce

    def get_config(self):
        return {"reduction": self.reduction, "name": self.name, "dtype": self.dtype}


def segmentation_loss(name: str) -> keras.losses.Loss:
    """The loss called ``name``: ``dice`` (default of the paper), ``bce`` or ``dice_bce``."""
    if name == "dice":
        return keras.losses.Dice(axis=IMAGE_AXES, name="dice_loss")
    if name == "bce":
        return keras.losses.BinaryCrossentropy(name="bce")
    if name == "dice_bce":
        return DiceBCELoss()
    raise ValueError(f"segmentation loss must be one of {SEGMENTATION_LOSSES}, got {name!r}")
