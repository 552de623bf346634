"""The Figure 5 qualitative segmentation panel: overlay colours, image choice, PNG (§4.1.2)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tf_bimodal.evaluation.figures import (
    BACKGROUND_COLOUR,
    BOTH_COLOUR,
    CELL_INCHES,
    DPI,
    PREDICTION_ONLY_COLOUR,
    TRUTH_ONLY_COLOUR,
    overlay_masks,
    pick_panel_images,
    save_segmentation_panel,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZE = 16


def synthetic_case(count=3, seed=0):
    """Tiny images, a square lesion per image and two models: one offset, one nearly right."""
    rng = np.random.default_rng(seed)
    bmode = rng.integers(0, 256, size=(count, SIZE, SIZE, 1), dtype=np.uint8)
    semode = rng.integers(0, 256, size=(count, SIZE, SIZE, 3), dtype=np.uint8)
    truth = np.zeros((count, SIZE, SIZE), np.uint8)
    truth[:, 4:10, 4:10] = 1
    offset = np.roll(truth, 3, axis=2)
    close = np.roll(truth, 1, axis=1)
    return bmode, semode, truth, {"B-mode/U-Net": offset, "W-MM-U-Net": close}


def png_size(path):
    with open(path, "rb") as handle:
        header = handle.read(24)
    assert header[:8] == PNG_SIGNATURE
    assert header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])  # width, height


def test_overlay_colours_follow_the_figure_5_caption():
    truth = np.array([[1, 1, 0, 0]], np.uint8)
    prediction = np.array([[1, 0, 1, 0]], np.uint8)
    image = overlay_masks(truth, prediction)
    assert image.shape == (1, 4, 3)
    assert image.dtype == np.float64
    np.testing.assert_allclose(image[0, 0], BOTH_COLOUR)  # correctly predicted: bright green
    np.testing.assert_allclose(image[0, 1], TRUTH_ONLY_COLOUR)  # missed: green
    np.testing.assert_allclose(image[0, 2], PREDICTION_ONLY_COLOUR)  # false positive: grey
    np.testing.assert_allclose(image[0, 3], BACKGROUND_COLOUR)  # dark background
    # bright green is greener than green, grey is grey, the background is dark
    assert BOTH_COLOUR[1] > TRUTH_ONLY_COLOUR[1] > max(TRUTH_ONLY_COLOUR[0], TRUTH_ONLY_COLOUR[2])
    assert PREDICTION_ONLY_COLOUR[0] == PREDICTION_ONLY_COLOUR[1] == PREDICTION_ONLY_COLOUR[2]
    assert max(BACKGROUND_COLOUR) < 0.2


def test_overlay_accepts_a_channel_axis_and_bool_masks():
    truth = np.array([[[1], [0]]], np.uint8)
    prediction = np.array([[True, True]])
    image = overlay_masks(truth, prediction)
    np.testing.assert_allclose(image[0], [BOTH_COLOUR, PREDICTION_ONLY_COLOUR])


@pytest.mark.parametrize(
    "truth, prediction, message",
    [
        (np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), "truth must be a mask of shape H x W"),
        (np.zeros((2, 2)), np.zeros((2, 3)), "prediction must be a mask of shape 2 x 2"),
        (np.full((2, 2), 0.7), np.zeros((2, 2)), "truth must hold 0/1"),
    ],
)
def test_overlay_rejects_bad_masks(truth, prediction, message):
    with pytest.raises(ValueError, match=message):
        overlay_masks(truth, prediction)


def test_save_segmentation_panel_writes_a_png(tmp_path):
    bmode, semode, truth, predictions = synthetic_case()
    path = str(tmp_path / "figures" / "figure5_synthetic.png")
    returned = save_segmentation_panel(bmode, semode, truth[..., None], predictions, path,
                                       "Figure 5 (synthetic phantom)", image_ids=["p1_a", "p1_b", "p2_a"])
    assert returned == path
    width, height = png_size(path)
    columns, rows = 3 + len(predictions), len(bmode)
    assert width == pytest.approx(CELL_INCHES * columns * DPI, abs=2)
    assert height > CELL_INCHES * rows * DPI
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (height, width)
    assert pixels[..., :3].std() > 0.05  # something was drawn


def test_save_segmentation_panel_squeezed_bmode_and_no_ids(tmp_path):
    bmode, semode, truth, predictions = synthetic_case(count=1)
    path = save_segmentation_panel(bmode[..., 0], semode, truth, predictions,
                                   str(tmp_path / "one.png"), "one")
    assert png_size(path)[0] > 0


def _bad_inputs():
    bmode, semode, truth, predictions = synthetic_case()
    cases = {
        "bmode must be N x H x W": dict(bmode=bmode[0, ..., 0]),
        "bmode must be N x H x W or": dict(bmode=np.repeat(bmode, 3, axis=-1)),
        "semode must be 3 x 16 x 16 x 3": dict(semode=semode[..., :1]),
        "semode must be uint8": dict(semode=semode.astype(np.float32)),
        "bmode must be uint8": dict(bmode=bmode.astype(np.float32)),
        "truth must be masks of shape 3 x 16 x 16": dict(truth=truth[:2]),
        r"predictions\['W-MM-U-Net'\] must be masks of shape 3 x 16 x 16": dict(
            predictions={**predictions, "W-MM-U-Net": predictions["W-MM-U-Net"][:, :8]}),
        r"predictions\['B-mode/U-Net'\] must hold 0/1": dict(
            predictions={**predictions, "B-mode/U-Net": predictions["B-mode/U-Net"] * 255}),
        "image_ids must label the 3 rows": dict(image_ids=["a", "b"]),
    }
    base = dict(bmode=bmode, semode=semode, truth=truth, predictions=predictions, image_ids=None)
    return [pytest.param({**base, **change}, message, id=message[:30]) for message, change in cases.items()]


@pytest.mark.parametrize("arguments, message", _bad_inputs())
def test_save_segmentation_panel_rejects_bad_shapes(tmp_path, arguments, message):
    path = tmp_path / "never.png"
    with pytest.raises(ValueError, match=message):
        save_segmentation_panel(path=str(path), title="bad", **arguments)
    assert not path.exists()


def _dice_ladder_case(count=9):
    """Reference predictions whose Dice falls with the image index, except two ties."""
    truth = np.zeros((count, 10, 10), np.uint8)
    truth[:, :, :5] = 1  # 50 lesion pixels per image
    reference = truth.copy()
    for index in range(count):
        reference[index, :, 5 : 5 + index] = 1  # more false positives, lower Dice
    reference[4] = reference[3]  # a tie: the lower index ranks first
    other = np.zeros_like(truth)
    return truth, {"U-Net": other, "W-MM-U-Net": reference}


def test_pick_panel_images_best_worst_and_quantiles():
    truth, masks = _dice_ladder_case()
    # reference Dice ranks (best first): 0, 1, 2, 3, 4, 5, 6, 7, 8; ranks round(linspace(0, 8, 4))
    assert pick_panel_images(truth, masks, count=4) == [0, 3, 5, 8]
    assert pick_panel_images(truth, masks, count=2) == [0, 8]
    assert pick_panel_images(truth, masks, count=1) == [0]


def test_pick_panel_images_is_deterministic_distinct_and_in_range():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, size=(12, 8, 8))
    masks = {"SE-mode/U-Net": rng.integers(0, 2, size=(12, 8, 8)),
             "W-MM-U-Net": rng.integers(0, 2, size=(12, 8, 8, 1))}
    for count in range(1, 13):
        picked = pick_panel_images(truth, masks, count=count)
        assert picked == pick_panel_images(truth.copy(), dict(masks), count=count)
        assert len(picked) == len(set(picked)) == count
        assert all(0 <= index < 12 for index in picked)
    assert sorted(pick_panel_images(truth, masks, count=20)) == list(range(12))


def test_pick_panel_images_uses_the_last_model_and_empty_masks_score_one():
    truth = np.zeros((3, 4, 4), np.uint8)
    truth[1, :2] = 1
    truth[2, :2] = 1
    reference = np.zeros_like(truth)
    reference[2] = truth[2]  # image 0: both empty (Dice 1); image 1: missed (0); image 2: exact (1)
    masks = {"wrong everywhere": 1 - truth, "W-MM-U-Net": reference}
    assert pick_panel_images(truth, masks, count=3) == [0, 2, 1]


@pytest.mark.parametrize(
    "masks, count, message",
    [
        ({}, 4, "at least one model"),
        ({"W-MM-U-Net": np.zeros((3, 4, 4))}, 0, "count must be an integer >= 1"),
        ({"W-MM-U-Net": np.zeros((3, 4, 4))}, 2.0, "count must be an integer >= 1"),
        ({"W-MM-U-Net": np.zeros((2, 4, 4))}, 2,
         r"per_model_masks\['W-MM-U-Net'\] must be masks of shape 3 x 4 x 4"),
    ],
)
def test_pick_panel_images_errors(masks, count, message):
    with pytest.raises(ValueError, match=message):
        pick_panel_images(np.zeros((3, 4, 4)), masks, count=count)
