"""Decision threshold, patient voting and metrics of the classifiers (§3.3.1, §3.4, §4.2).

* **Threshold** (§3.3.1): the probability of malignancy above which an image is called
  malignant is chosen on validation data as the ROC point with the largest Youden index
  ``J = sensitivity + specificity - 1 = TPR - FPR`` (the paper found 0.48). An image is
  malignant when its probability is ``>= threshold``, the convention of
  ``sklearn.metrics.roc_curve``.
* **Patient voting** (§4.2): "Majority voting is used to predict the particular class of
  patients. However, in case of a tie, priority is given to the malignant class."
* **Metrics** (§3.4, Table 2): accuracy, precision, specificity, sensitivity, F1 and AUC, with
  malignant as the positive class, image-wise and patient-wise; a patient's score for the
  AUC is the mean probability of its images.
* **Mean ± SD over folds**: the population SD (``ddof=0``). It is what reproduces the paper's
  numbers: specificity 94.28 ± 7.00 % over five folds is three folds at 100 % and two at
  6/7 = 85.71 % of seven benign patients, whose population SD is 7.00 (the sample SD would be
  7.82).
"""

from __future__ import annotations

import collections
import math
from typing import NamedTuple

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from tf_bimodal.evaluation import statistics

METRIC_NAMES = ("accuracy", "precision", "specificity", "sensitivity", "f1", "auc")
BENIGN, MALIGNANT = 0, 1
DEFAULT_THRESHOLD = 0.5


class RocCurve(NamedTuple):
    """An ROC curve: ``sklearn.metrics.roc_curve``'s points and ``roc_auc_score``'s AUC."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float


def roc_points(labels, scores) -> RocCurve | None:
    """The ROC curve of ``scores`` against ``labels`` and its AUC (§3.3.1, §3.4, Fig. 6).

    The one place the package computes an ROC curve: the Youden threshold
    (:func:`youden_threshold`), the AUC of :func:`binary_metrics`, Figure 6 and the
    TensorBoard ROC image all read it. Points are ``sklearn.metrics.roc_curve``'s (false and
    true positive rates at decreasing thresholds, the first threshold infinite); a sample is
    positive when its score is ``>= threshold``.

    Args:
        labels: 0/1 true classes (1 malignant).
        scores: probabilities of malignancy (compared in float64).

    Returns:
        ``RocCurve(fpr, tpr, thresholds, auc)``, or None when ``labels`` hold one class only
        (the ROC curve is undefined).
    """
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(np.unique(labels)) < 2:
        return None
    fpr, tpr, thresholds = roc_curve(labels, scores)
    return RocCurve(fpr, tpr, thresholds, float(roc_auc_score(labels, scores)))


def youden_threshold(labels, scores) -> dict:
    """The ROC threshold with the largest Youden index ``TPR - FPR`` (§3.3.1).

    Ties keep the first maximum of ``sklearn.metrics.roc_curve``'s order, i.e. the highest
    such threshold.

    Args:
        labels: 0/1 true classes (1 malignant).
        scores: probabilities of malignancy.

    Returns:
        ``{"threshold", "youden_index", "tpr", "fpr", "reason"}``. When the validation data
        hold a single class or no threshold separates better than chance (``J <= 0``), the
        threshold is :data:`DEFAULT_THRESHOLD` and ``reason`` says why; otherwise ``reason``
        is None.

    Raises:
        ValueError: labels and scores of different lengths, empty, or labels not in {0, 1}.
    """
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape or labels.size == 0:
        raise ValueError(
            f"youden_threshold: labels and scores must be non-empty and of equal length, got "
            f"{labels.size} and {scores.size}"
        )
    if not set(np.unique(labels).tolist()) <= {0, 1}:
        raise ValueError(f"youden_threshold: labels must be 0 or 1, got {sorted(set(labels.tolist()))}")
    if len(np.unique(labels)) < 2:
        return {
            "threshold": DEFAULT_THRESHOLD,
            "youden_index": None,
            "tpr": None,
            "fpr": None,
            "reason": "validation data hold one class only; ROC undefined",
        }
    fpr, tpr, thresholds, _ = roc_points(labels, scores)
    youden = tpr - fpr
    best = int(np.argmax(youden))
    if youden[best] <= 0 or not np.isfinite(thresholds[best]):
        return {
            "threshold": DEFAULT_THRESHOLD,
            "youden_index": float(youden[best]),
            "tpr": float(tpr[best]),
            "fpr": float(fpr[best]),
            "reason": "no threshold beats chance on the validation data (Youden index <= 0)",
        }
    return {
        "threshold": float(thresholds[best]),
        "youden_index": float(youden[best]),
        "tpr": float(tpr[best]),
        "fpr": float(fpr[best]),
        "reason": None,
    }


def predict_labels(scores, threshold: float) -> np.ndarray:
    """1 (malignant) where ``score >= threshold``, else 0."""
    return (np.asarray(scores, dtype=np.float64) >= threshold).astype(np.int64)


def patient_vote(patient_ids, predictions, labels=None, scores=None) -> dict:
    """Combine image predictions per patient by majority vote, a tie going to malignant (§4.2).

    Args:
        patient_ids: the patient of each image.
        predictions: 0/1 predicted class of each image.
        labels: optional true class of each image (a patient's images share one label).
        scores: optional probability of malignancy of each image.

    Returns:
        ``{"patient_ids": sorted ids, "predictions": votes, "labels": ..., "scores": mean
        probability}`` (the last two only when given), as NumPy arrays.

    Raises:
        ValueError: lengths that differ, or a patient whose images carry different labels.
    """
    patient_ids = np.asarray([str(p) for p in np.asarray(patient_ids).reshape(-1)])
    predictions = np.asarray(predictions).reshape(-1).astype(np.int64)
    if patient_ids.shape != predictions.shape:
        raise ValueError(
            f"patient_vote: patient_ids and predictions differ in length: {patient_ids.size} "
            f"and {predictions.size}"
        )
    patients = sorted(set(patient_ids.tolist()))
    votes = collections.defaultdict(lambda: [0, 0])
    for patient, prediction in zip(patient_ids, predictions):
        votes[patient][int(prediction == MALIGNANT)] += 1
    result = {
        "patient_ids": np.asarray(patients),
        # malignant votes >= benign votes: a tie goes to malignant (§4.2).
        "predictions": np.asarray(
            [MALIGNANT if votes[p][1] >= votes[p][0] else BENIGN for p in patients], dtype=np.int64
        ),
    }
    if labels is not None:
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        patient_labels = []
        for patient in patients:
            values = set(labels[patient_ids == patient].tolist())
            if len(values) != 1:
                raise ValueError(
                    f"patient_vote: patient {patient!r} has images with different labels {sorted(values)}"
                )
            patient_labels.append(values.pop())
        result["labels"] = np.asarray(patient_labels, dtype=np.int64)
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        result["scores"] = np.asarray([scores[patient_ids == p].mean() for p in patients])
    return result


def _ratio(numerator, denominator) -> float:
    return float(numerator / denominator) if denominator else float("nan")


def binary_metrics(labels, predictions, scores=None) -> dict:
    """Accuracy, precision, specificity, sensitivity, F1 and AUC (§3.4), malignant positive.

    A ratio with a zero denominator (e.g. precision without any malignant prediction) is NaN,
    as is the AUC without scores or without both classes; the confusion counts are returned
    too so nothing is hidden.

    Returns:
        ``{"accuracy", "precision", "specificity", "sensitivity", "f1", "auc", "tp", "fp",
        "tn", "fn", "count"}``, the ratios as fractions in [0, 1].
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    predictions = np.asarray(predictions).reshape(-1).astype(np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(
            f"binary_metrics: labels and predictions differ in length: {labels.size} and {predictions.size}"
        )
    tp = int(np.sum((labels == 1) & (predictions == 1)))
    tn = int(np.sum((labels == 0) & (predictions == 0)))
    fp = int(np.sum((labels == 0) & (predictions == 1)))
    fn = int(np.sum((labels == 1) & (predictions == 0)))
    precision = _ratio(tp, tp + fp)
    sensitivity = _ratio(tp, tp + fn)
    if math.isnan(precision) or math.isnan(sensitivity) or precision + sensitivity == 0:
        f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    else:
        f1 = 2 * precision * sensitivity / (precision + sensitivity)
    auc = float("nan")
    if scores is not None and len(np.unique(labels)) == 2:
        auc = roc_points(labels, scores).auc
    return {
        "accuracy": _ratio(tp + tn, labels.size),
        "precision": precision,
        "specificity": _ratio(tn, tn + fp),
        "sensitivity": sensitivity,
        "f1": f1,
        "auc": auc,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "count": int(labels.size),
    }


def evaluate_predictions(labels, scores, patient_ids, threshold: float) -> dict:
    """Image-wise and patient-wise :func:`binary_metrics` of probabilities at ``threshold``.

    Returns:
        ``{"image": metrics, "patient": metrics, "threshold": threshold}``.
    """
    predictions = predict_labels(scores, threshold)
    votes = patient_vote(patient_ids, predictions, labels=labels, scores=scores)
    return {
        "image": binary_metrics(labels, predictions, scores),
        "patient": binary_metrics(votes["labels"], votes["predictions"], votes["scores"]),
        "threshold": float(threshold),
    }


def summarize_folds(fold_metrics, names=METRIC_NAMES) -> dict:
    """``{metric: mean_sd(...)}`` over a list of per-fold metric dicts (population SD)."""
    return statistics.summarize_folds(fold_metrics, names)
