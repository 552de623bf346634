"""The segmentation metrics of paper §3.4 as a Keras metric, for training and early stopping.

:class:`SegmentationScore` is the rule of
:mod:`tf_bimodal.evaluation.segmentation_metrics` (per-image Dice, IoU, precision or recall
of binarised masks, empty masks included; see there) accumulated over batches, so the
validation Dice that selects an epoch is the Dice the evaluation reports. The NumPy functions
are importable from here too.
"""

from __future__ import annotations

import keras
from keras import ops

from tf_bimodal.evaluation.segmentation_metrics import (
    METRIC_NAMES,
    confusion_counts,
    mean_scores,
    scores_from_counts,
    segmentation_scores,
)

__all__ = [
    "METRIC_NAMES", "SegmentationScore", "confusion_counts", "mean_scores", "scores_from_counts", "segmentation_scores",
]


@keras.saving.register_keras_serializable(package="tf_bimodal")
class SegmentationScore(keras.metrics.Metric):
    """Mean per-image Dice, IoU, precision or recall at a threshold, as a Keras metric.

    Same rule as :func:`~tf_bimodal.evaluation.segmentation_metrics.segmentation_scores`,
    accumulated over batches as a running mean over images.

    Args:
        metric: one of ``METRIC_NAMES``.
        threshold: binarisation threshold for truth and prediction; default 0.5.
        name: metric name; default ``metric`` (so ``val_dice`` in the logs).
    """

    def __init__(self, metric: str = "dice", threshold: float = 0.5, name=None, dtype=None):
        if metric not in METRIC_NAMES:
            raise ValueError(f"SegmentationScore: metric must be one of {METRIC_NAMES}, got {metric!r}")
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"SegmentationScore: threshold must be in (0, 1), got {threshold}")
        super().__init__(name=name or metric, dtype=dtype)
        self.metric = metric
        self.threshold = float(threshold)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        truth = ops.cast(ops.convert_to_tensor(y_true) > self.threshold, "float32")
        predicted = ops.cast(ops.convert_to_tensor(y_pred) > self.threshold, "float32")
        batch = ops.shape(truth)[0]
        truth = ops.reshape(truth, (batch, -1))
        predicted = ops.reshape(predicted, (batch, -1))
        tp = ops.sum(truth * predicted, axis=1)
        fp = ops.sum((1.0 - truth) * predicted, axis=1)
        fn = ops.sum(truth * (1.0 - predicted), axis=1)
        if self.metric == "dice":
            numerator, denominator = 2.0 * tp, 2.0 * tp + fp + fn
        elif self.metric == "iou":
            numerator, denominator = tp, tp + fp + fn
        elif self.metric == "precision":
            numerator, denominator = tp, tp + fp
        else:
            numerator, denominator = tp, tp + fn
        both_empty = ops.logical_and(tp + fn == 0, tp + fp == 0)
        safe = ops.where(denominator > 0, denominator, ops.ones_like(denominator))
        score = ops.where(denominator > 0, numerator / safe, ops.zeros_like(numerator))
        score = ops.where(both_empty, ops.ones_like(score), score)
        self.total.assign_add(ops.cast(ops.sum(score), self.dtype))
        self.count.assign_add(ops.cast(batch, self.dtype))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {"metric": self.metric, "threshold": self.threshold, "name": self.name, "dtype": self.dtype}
