"""Cross-validated segmentation scores and the fold union (paper §3.4, §4.1, Table 1).

Protocol (``SplitConfig(scheme="paper")``): one patient-level test set is held out and shared
by all K folds; fold k validates on part k of the remaining patients and trains on the other
parts. Every fold model is scored on the same test images, Table 1 reports the mean ± SD over
the folds, and in parentheses the **fold union**: "the region where more than half of the
fivefold validation results overlap" (§3.4, §4.1), i.e. per pixel the majority vote
(> K / 2) of the K fold models' binary masks, scored like a single model. With rotating test
parts (``scheme="kfold"``) the fold models never share test images, so the fold union is
undefined and reported as null with the reason.
"""

from __future__ import annotations

import numpy as np

from tf_bimodal.evaluation import statistics
from tf_bimodal.evaluation.segmentation_metrics import METRIC_NAMES, mean_scores, segmentation_scores
from tf_bimodal.evaluation.statistics import SD_DDOF

__all__ = [
    "MISSED_DICE", "SD_DDOF", "fold_union", "lesion_and_normal_scores", "majority_vote", "score_fold_union",
    "summarize_folds",
]


def majority_vote(votes, num_models: int) -> np.ndarray:
    """Pixels marked by more than half of ``num_models`` models: uint8 {0, 1}.

    Args:
        votes: per pixel, how many models marked it lesion (any shape).
        num_models: K, the number of models that voted.
    """
    if num_models < 1:
        raise ValueError(f"majority_vote: num_models must be >= 1, got {num_models}")
    return (2 * np.asarray(votes, dtype=np.int64) > num_models).astype(np.uint8)


def fold_union(binary_masks) -> np.ndarray:
    """The fold union (§3.4): the per-pixel majority (> K / 2) of K models' binary masks.

    Args:
        binary_masks: (K, N, ...) binary predictions of the K fold models on the same N images.

    Returns:
        uint8 (N, ...) in {0, 1}. With K = 5 a pixel needs 3 votes; with K = 4, also 3.
    """
    masks = np.asarray(binary_masks)
    if masks.ndim < 2:
        raise ValueError(f"fold_union: expects (K, N, ...) masks of K models, got shape {masks.shape}")
    if not np.isin(masks, (0, 1)).all():
        raise ValueError("fold_union: masks must be binary (0 or 1); threshold probabilities first")
    return majority_vote(masks.sum(axis=0), masks.shape[0])


def summarize_folds(fold_scores) -> dict:
    """Mean ± SD over folds of each segmentation metric: ``{metric: {"mean", "sd", ...}}``.

    Args:
        fold_scores: one ``{metric: mean over the fold's test images}`` dict per fold.
    """
    return statistics.summarize_folds(fold_scores, METRIC_NAMES)


def score_fold_union(truth, fold_predictions, threshold: float = 0.5) -> dict:
    """Scores of the fold union of K models on shared test images: ``{metric: float}``.

    Args:
        truth: (N, H, W[, 1]) true masks.
        fold_predictions: (K, N, H, W[, 1]) probabilities or binary masks of the K models.
        threshold: binarises the predictions before the vote.
    """
    binary = (np.asarray(fold_predictions) > threshold).astype(np.uint8)
    return mean_scores(truth, fold_union(binary))


MISSED_DICE = 0.2
"""A lesion image whose predicted mask scores a Dice below this is counted as missed: the
lesion was not found (an empty mask, or one on other tissue), as against found and outlined
imprecisely. The share of missed images separates the two causes of a low mean Dice."""


def lesion_and_normal_scores(truth: np.ndarray, binary: np.ndarray) -> dict:
    """Scores on the images with a lesion, how many of them were missed, and the share of
    lesion-free images predicted empty.

    Data sets with lesion-free images (BUSI's ``normal`` class) score those 1 when the predicted
    mask is empty and 0 otherwise, which lifts the mean Dice; published lesion Dice excludes them.

    Returns:
        ``{"test_lesion": scores or None, "test_lesion_missed": {"images", "missed_share",
        "empty_share"} or None, "test_normal": {"images", "empty_share"} or None}``: the
        lesion images' mean scores; the share of them with Dice below :data:`MISSED_DICE`
        and the share predicted empty; the share of lesion-free images predicted empty.
    """
    if not len(truth):
        return {"test_lesion": None, "test_lesion_missed": None, "test_normal": None}
    has_lesion = truth.reshape(len(truth), -1).any(axis=1)
    predicted_empty = ~binary.reshape(len(binary), -1).any(axis=1)
    lesion, lesion_missed = None, None
    if has_lesion.any():
        per_image = segmentation_scores(truth[has_lesion], binary[has_lesion])
        lesion = {name: float(np.mean(values)) for name, values in per_image.items()}
        lesion_missed = {
            "images": int(has_lesion.sum()),
            "missed_share": float(np.mean(per_image["dice"] < MISSED_DICE)),
            "empty_share": float(predicted_empty[has_lesion].mean()),
        }
    return {
        "test_lesion": lesion,
        "test_lesion_missed": lesion_missed,
        "test_normal": (
            {"images": int((~has_lesion).sum()), "empty_share": float(predicted_empty[~has_lesion].mean())}
            if (~has_lesion).any() else None
        ),
    }
