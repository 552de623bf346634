"""Lesion-image Dice apart from lesion-free images (BUSI's normal class), and the fold union
(§3.4, §4.1) on hand-made masks."""

from __future__ import annotations

import numpy as np
import pytest

from tf_bimodal.evaluation.segmentation import (
    fold_union,
    lesion_and_normal_scores,
    majority_vote,
    score_fold_union,
    summarize_folds,
)
from tf_bimodal.evaluation.statistics import mean_sd
from tf_bimodal.training.metrics import METRIC_NAMES

M = np.array


def test_lesion_scores_exclude_lesion_free_images_and_count_empty_predictions():
    truth = np.zeros((4, 8, 8), np.uint8)
    truth[0, :4, :4] = 1  # lesion, predicted exactly
    truth[1, :4, :4] = 1  # lesion, predicted half
    predicted = np.zeros_like(truth)
    predicted[0, :4, :4] = 1
    predicted[1, :2, :4] = 1
    predicted[3, 0, 0] = 1  # a lesion-free image with a false positive; image 2 predicted empty
    scores = lesion_and_normal_scores(truth, predicted)
    assert scores["test_lesion"]["dice"] == pytest.approx((1.0 + 2 * 8 / (16 + 8)) / 2)
    assert scores["test_normal"] == {"images": 2, "empty_share": 0.5}
    assert scores["test_lesion_missed"] == {"images": 2, "missed_share": 0.0, "empty_share": 0.0}


def test_lesion_images_below_the_missed_dice_or_empty_are_counted_missed():
    truth = np.zeros((4, 10, 10), np.uint8)
    truth[:, :5, :5] = 1  # four lesion images of 25 pixels
    predicted = np.zeros_like(truth)
    predicted[0, :5, :5] = 1  # found exactly
    predicted[1, 5:, 5:] = 1  # on other tissue: Dice 0
    predicted[2, :1, :2] = 1  # 2 of 25 pixels: Dice 4 / 27, below 0.2
    # image 3 predicted empty
    missed = lesion_and_normal_scores(truth, predicted)["test_lesion_missed"]
    assert missed == {"images": 4, "missed_share": 0.75, "empty_share": 0.25}
    predicted[2, :2, :2] = 1  # 4 of 25 pixels: Dice 8 / 29, found
    assert lesion_and_normal_scores(truth, predicted)["test_lesion_missed"]["missed_share"] == 0.5


def test_only_lesions_or_nothing():
    truth = np.ones((2, 4, 4), np.uint8)
    only_lesions = lesion_and_normal_scores(truth, truth)
    assert only_lesions["test_normal"] is None and only_lesions["test_lesion"]["dice"] == 1.0
    assert only_lesions["test_lesion_missed"] == {"images": 2, "missed_share": 0.0, "empty_share": 0.0}
    assert lesion_and_normal_scores(truth[:0], truth[:0]) == {
        "test_lesion": None, "test_lesion_missed": None, "test_normal": None,
    }


# --------------------------------------------------------------------------- fold union


MODEL_MASKS = [
    M([[1, 1], [0, 0]]),
    M([[1, 0], [1, 0]]),
    M([[1, 0], [0, 1]]),
    M([[0, 1], [1, 0]]),
    M([[0, 1], [1, 0]]),
]


@pytest.mark.parametrize(
    "num_models, expected",
    [
        (1, M([[1, 1], [0, 0]])),
        (3, M([[1, 0], [0, 0]])),  # votes [[3, 1], [1, 1]], need 2
        (4, M([[1, 0], [0, 0]])),  # votes [[3, 2], [2, 1]], need 3: 2 of 4 is not more than half
        (5, M([[1, 1], [1, 0]])),  # votes [[3, 3], [3, 1]], need 3
    ],
)
def test_fold_union_is_the_strict_majority(num_models, expected):
    masks = np.stack(MODEL_MASKS[:num_models])[:, None]  # (K, N=1, 2, 2)
    union = fold_union(masks)
    assert union.dtype == np.uint8 and union.shape == (1, 2, 2)
    np.testing.assert_array_equal(union[0], expected)
    np.testing.assert_array_equal(majority_vote(masks.sum(axis=0), num_models), union)


def test_fold_union_score_thresholds_then_votes():
    truth = M([[[1, 1], [1, 0]]])
    probabilities = np.stack(MODEL_MASKS)[:, None] * 0.9 + 0.05  # 0.95 / 0.05
    scores = score_fold_union(truth, probabilities)
    assert scores == {"dice": 1.0, "iou": 1.0, "precision": 1.0, "recall": 1.0}


def test_fold_union_rejects_probabilities():
    with pytest.raises(ValueError, match="binary"):
        fold_union(np.full((3, 1, 2, 2), 0.7))


def test_mean_and_sample_sd_over_folds():
    result = mean_sd([0.7, 0.8, 0.9])
    assert result["mean"] == pytest.approx(0.8) and result["values"] == pytest.approx([0.7, 0.8, 0.9])
    assert result["sd"] == pytest.approx(np.sqrt(2 / 300))  # population SD, as Table 2
    single = mean_sd([0.5])
    assert single["mean"] == 0.5 and single["sd"] == 0.0
    with pytest.raises(ValueError, match="at least one value"):
        mean_sd([])
    summary = summarize_folds([{name: 0.5 for name in METRIC_NAMES}, {name: 0.7 for name in METRIC_NAMES}])
    assert set(summary) == set(METRIC_NAMES)
    assert summary["dice"]["mean"] == pytest.approx(0.6)
