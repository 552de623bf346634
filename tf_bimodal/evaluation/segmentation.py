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

import io
import os

import numpy as np

from tf_bimodal.evaluation.classification import mean_sd as classification_mean_sd
from tf_bimodal.training.metrics import METRIC_NAMES, mean_scores

SD_DDOF = 0
"""The SD over folds is the population SD (``ddof=0``), as for the classifiers: it is what
reproduces the paper's Table 2 (see :mod:`tf_bimodal.evaluation.classification`), and one
convention serves both tables."""

PREDICTED_MASKS_FILE = "predicted_masks.npz"


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


def mean_sd(values) -> dict:
    """``{"mean", "sd", "values", "nan"}`` of per-fold values, population SD (``ddof=0``).

    The per-fold values are kept for the paired t-tests of the report.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_sd: needs at least one value")
    return classification_mean_sd(values.tolist())


def summarise_folds(fold_scores) -> dict:
    """Mean ± SD over folds of each metric: ``{metric: {"mean", "sd"}}``.

    Args:
        fold_scores: one ``{metric: mean over the fold's test images}`` dict per fold.
    """
    return {name: mean_sd([scores[name] for scores in fold_scores]) for name in METRIC_NAMES}


def score_fold_union(truth, fold_predictions, threshold: float = 0.5) -> dict:
    """Scores of the fold union of K models on shared test images: ``{metric: float}``.

    Args:
        truth: (N, H, W[, 1]) true masks.
        fold_predictions: (K, N, H, W[, 1]) probabilities or binary masks of the K models.
        threshold: binarises the predictions before the vote.
    """
    binary = (np.asarray(fold_predictions) > threshold).astype(np.uint8)
    return mean_scores(truth, fold_union(binary))


def save_predicted_masks(path: str, image_ids, masks, rule: str = "") -> str:
    """Write ``image_ids`` (str array) and ``masks`` (uint8 N x S x S) to an ``.npz`` file.

    ``rule`` (stored as ``rule``) says how the masks were made. Returns ``path``.
    """
    image_ids = np.asarray([str(i) for i in image_ids])
    masks = np.asarray(masks)
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if masks.ndim != 3 or len(masks) != len(image_ids):
        raise ValueError(
            f"save_predicted_masks: need N masks (N, S, S) for N image ids, got {masks.shape} for {len(image_ids)} ids"
        )
    if not np.isin(masks, (0, 1)).all():
        raise ValueError("save_predicted_masks: masks must be binary (0 or 1)")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, image_ids=image_ids, masks=masks.astype(np.uint8), rule=np.asarray(rule))
    tmp_path = path + ".tmp"
    with open(tmp_path, "wb") as handle:
        handle.write(buffer.getvalue())
    os.replace(tmp_path, path)
    return path


def load_predicted_masks(path: str) -> dict:
    """``{image_id: uint8 (S, S) mask}`` from a ``predicted_masks.npz`` (see
    :func:`save_predicted_masks`), for cropping the classifier's inputs (§3.1, §4.1)."""
    with np.load(path, allow_pickle=False) as data:
        image_ids = [str(i) for i in data["image_ids"]]
        masks = data["masks"]
    return {image_id: masks[index] for index, image_id in enumerate(image_ids)}
