"""Lesion-image Dice apart from lesion-free images (BUSI's normal class)."""

from __future__ import annotations

import numpy as np
import pytest

from tf_bimodal.evaluation.segmentation import lesion_and_normal_scores


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
