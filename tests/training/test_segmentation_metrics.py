"""Segmentation metrics and losses (§3.4) on hand-made masks."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_bimodal.training.losses import DiceBCELoss, segmentation_loss
from tf_bimodal.training.metrics import METRIC_NAMES, SegmentationScore, confusion_counts, segmentation_scores

M = np.array

# (truth, prediction, expected dice, iou, precision, recall), worked by hand
HAND_CASES = [
    pytest.param(  # TP 3 (top-left pair, centre), FP 1 (bottom-right), FN 1 (top-right)
        M([[1, 1, 1], [0, 1, 0], [0, 0, 0]]),
        M([[1, 1, 0], [0, 1, 0], [0, 0, 1]]),
        (6 / 8, 3 / 5, 3 / 4, 3 / 4),
        id="3x3-overlap",
    ),
    pytest.param(  # T 3, P 1, TP 1: under-segmentation
        M([[0, 0, 0], [1, 1, 1], [0, 0, 0]]),
        M([[0, 0, 0], [0, 1, 0], [0, 0, 0]]),
        (2 / 4, 1 / 3, 1.0, 1 / 3),
        id="3x3-under",
    ),
    pytest.param(  # 2x2 squares shifted by one column: TP 2, FP 2, FN 2
        M([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]),
        M([[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]),
        (4 / 8, 2 / 6, 2 / 4, 2 / 4),
        id="4x4-shift",
    ),
    pytest.param(  # probabilities: 0.5 is not > 0.5, so P = {0.9, 0.51}; TP 1, FP 1, FN 2
        M([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]),
        M([[0.9, 0.5, 0.0, 0.0], [0.2, 0.0, 0.0, 0.0], [0.0, 0.0, 0.51, 0.0], [0.0, 0.0, 0.0, 0.0]]),
        (2 / 5, 1 / 4, 1 / 2, 1 / 3),
        id="4x4-threshold",
    ),
    pytest.param(M(np.zeros((3, 3))), M(np.zeros((3, 3))), (1.0, 1.0, 1.0, 1.0), id="both-empty"),
    pytest.param(M(np.zeros((3, 3))), M(np.eye(3)), (0.0, 0.0, 0.0, 0.0), id="false-alarm-on-empty-truth"),
    pytest.param(M(np.eye(3)), M(np.zeros((3, 3))), (0.0, 0.0, 0.0, 0.0), id="missed-lesion"),
    pytest.param(M(np.eye(3)), M(np.eye(3)), (1.0, 1.0, 1.0, 1.0), id="perfect"),
]


@pytest.mark.parametrize("truth, prediction, expected", HAND_CASES)
def test_scores_match_hand_computed_answers(truth, prediction, expected):
    scores = segmentation_scores(truth[None], prediction[None])
    np.testing.assert_allclose([scores[name][0] for name in METRIC_NAMES], expected, rtol=1e-12)


@pytest.mark.parametrize("truth, prediction, expected", HAND_CASES)
def test_keras_metric_matches_numpy(truth, prediction, expected):
    for index, name in enumerate(METRIC_NAMES):
        metric = SegmentationScore(name)
        metric.update_state(truth[None, ..., None].astype("float32"), prediction[None, ..., None].astype("float32"))
        np.testing.assert_allclose(float(metric.result()), expected[index], rtol=1e-6)


def test_scores_are_per_image_and_accept_channel_axis():
    cases = [case.values for case in HAND_CASES[2:4]]
    truth = np.stack([t for t, _, _ in cases])[..., None]
    prediction = np.stack([p for _, p, _ in cases])[..., None]
    scores = segmentation_scores(truth, prediction)
    np.testing.assert_allclose(scores["dice"], [0.5, 0.4])
    tp, fp, fn = confusion_counts(truth, prediction)
    np.testing.assert_array_equal([tp, fp, fn], [[2, 1], [2, 1], [2, 2]])


def test_keras_metric_averages_images_over_batches():
    metric = SegmentationScore("dice")
    cases = [case.values for case in HAND_CASES if case.id in ("4x4-shift", "4x4-threshold")]
    for truth, prediction, _ in cases:  # two batches of one image: dice 0.5 then 0.4
        metric.update_state(truth[None, ..., None].astype("float32"), prediction[None, ..., None].astype("float32"))
    np.testing.assert_allclose(float(metric.result()), 0.45, rtol=1e-6)
    metric.reset_state()
    assert float(metric.result()) == 0.0
    restored = SegmentationScore.from_config(metric.get_config())
    assert restored.get_config() == metric.get_config()


@pytest.mark.parametrize(
    "kwargs, rule",
    [({"metric": "f1"}, "metric must be one of"), ({"threshold": 1.0}, "threshold must be in \\(0, 1\\)")],
)
def test_keras_metric_rejects_bad_arguments(kwargs, rule):
    with pytest.raises(ValueError, match=rule):
        SegmentationScore(**kwargs)


def test_metrics_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        segmentation_scores(np.zeros((1, 3, 3)), np.zeros((1, 4, 4)))


# --------------------------------------------------------------------------- losses


def test_dice_loss_is_keras_dice_per_image_averaged_over_the_batch():
    truth = np.zeros((2, 4, 4, 1), np.float32)
    prediction = np.zeros((2, 4, 4, 1), np.float32)
    truth[0, :2, :2] = 1  # 4x4-shift case: Dice 0.5
    prediction[0, :2, 1:3] = 1
    truth[1, 0, :3] = 1  # T 3, soft P 0.5 on the same pixels: 2 * 1.5 / (3 + 1.5) = 2/3
    prediction[1, 0, :3] = 0.5
    loss = float(segmentation_loss("dice")(truth, prediction))
    np.testing.assert_allclose(loss, ((1 - 0.5) + (1 - 2 / 3)) / 2, rtol=1e-5)
    assert isinstance(segmentation_loss("dice"), keras.losses.Dice)


def test_dice_bce_loss_adds_the_two_and_serializes():
    truth = np.zeros((1, 2, 2, 1), np.float32)
    truth[0, 0, 0] = 1
    prediction = np.full((1, 2, 2, 1), 0.5, np.float32)
    expected = (1 - 2 * 0.5 / (1 + 2)) + np.log(2.0)
    np.testing.assert_allclose(float(DiceBCELoss()(truth, prediction)), expected, rtol=1e-4)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(DiceBCELoss()))
    assert isinstance(restored, DiceBCELoss)


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="segmentation loss must be one of"):
        segmentation_loss("focal")
