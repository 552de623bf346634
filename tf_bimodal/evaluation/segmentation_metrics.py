"""Per-image segmentation metrics: Dice, IoU, precision, recall (paper §3.4).

Both the prediction and the truth are binarised (``> threshold``, default 0.5), then for
each image, with TP, FP, FN counted over its pixels, ``T = TP + FN`` (true lesion pixels)
and ``P = TP + FP`` (predicted lesion pixels)::

    dice = 2 TP / (T + P)      iou = TP / (TP + FP + FN)
    precision = TP / P         recall = TP / T

Empty masks, where a ratio would be 0 / 0:

* truth and prediction both empty (a lesion-free image correctly left empty): all four
  metrics are 1;
* exactly one of them empty (a missed lesion, or a lesion predicted where there is none):
  all four are 0. (Then TP = 0 anyway, so only the undefined ratio, precision of an empty
  prediction or recall of an empty truth, needs the rule; 0 keeps every metric agreeing
  that the image failed.)

A data set's score is the mean of the per-image scores. :func:`segmentation_scores` works on
NumPy arrays; :class:`tf_bimodal.training.metrics.SegmentationScore` is the same rule as a
Keras metric (validation Dice for early stopping).
"""

from __future__ import annotations

import numpy as np

METRIC_NAMES = ("dice", "iou", "precision", "recall")


def confusion_counts(y_true, y_pred, threshold: float = 0.5):
    """Per-image TP, FP, FN of binarised masks; inputs (N, ...) with N images.

    Returns three int64 arrays of shape (N,).
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"truth and prediction must have the same shape, got {y_true.shape} and {y_pred.shape}")
    if y_true.ndim < 2:
        raise ValueError(f"masks must be (N, H, W[, 1]) with a leading image axis, got shape {y_true.shape}")
    truth = (y_true > threshold).reshape(len(y_true), -1)
    predicted = (y_pred > threshold).reshape(len(y_pred), -1)
    tp = np.sum(truth & predicted, axis=1, dtype=np.int64)
    fp = np.sum(~truth & predicted, axis=1, dtype=np.int64)
    fn = np.sum(truth & ~predicted, axis=1, dtype=np.int64)
    return tp, fp, fn


def scores_from_counts(tp, fp, fn) -> dict:
    """The four metrics per image from TP, FP, FN (see the module docstring for empty masks)."""
    tp, fp, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    truth, predicted = tp + fn, tp + fp
    both_empty = (truth == 0) & (predicted == 0)

    def ratio(numerator, denominator):
        safe = np.where(denominator > 0, denominator, 1.0)
        return np.where(both_empty, 1.0, np.where(denominator > 0, numerator / safe, 0.0))

    return {
        "dice": ratio(2 * tp, truth + predicted),
        "iou": ratio(tp, tp + fp + fn),
        "precision": ratio(tp, predicted),
        "recall": ratio(tp, truth),
    }


def segmentation_scores(y_true, y_pred, threshold: float = 0.5) -> dict:
    """Per-image Dice, IoU, precision and recall: ``{name: float64 array (N,)}``.

    Args:
        y_true: true masks (N, H, W) or (N, H, W, 1), values in {0, 1} (or probabilities).
        y_pred: predicted probabilities or binary masks of the same shape.
        threshold: a pixel is lesion when its value is ``> threshold``.
    """
    return scores_from_counts(*confusion_counts(y_true, y_pred, threshold))


def mean_scores(y_true, y_pred, threshold: float = 0.5) -> dict:
    """The per-image scores averaged over the images: ``{name: float}``."""
    return {name: float(np.mean(values)) for name, values in segmentation_scores(y_true, y_pred, threshold).items()}
