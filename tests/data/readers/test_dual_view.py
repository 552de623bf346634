"""Dual-view screenshots (paper Fig. S1): detection of the two panes, explicit boxes."""

from __future__ import annotations

import numpy as np
import pytest

from tf_bimodal.data import readers
from tfds_builder.bimodal_breast_us.make_dummy_data import dual_view, synthetic_bmode, synthetic_semode


@pytest.fixture
def pane_pair(rng):
    bmode, _ = synthetic_bmode(rng)
    return bmode, synthetic_semode(bmode, rng)


def test_split_dual_view_by_detection(pane_pair):
    bmode, semode = pane_pair
    screenshot, (bmode_box, semode_box) = dual_view(bmode, semode)
    assert readers.find_dual_view_boxes(screenshot) == (bmode_box, semode_box)
    found_bmode, found_semode = readers.split_dual_view(screenshot)
    np.testing.assert_array_equal(found_bmode[..., 0], bmode)
    np.testing.assert_array_equal(found_semode, semode)


def test_split_dual_view_finds_the_colour_pane_on_either_side(pane_pair):
    bmode, semode = pane_pair
    screenshot, _ = dual_view(bmode, semode)
    mirrored = np.ascontiguousarray(screenshot[:, ::-1])
    found_bmode, found_semode = readers.split_dual_view(mirrored)
    np.testing.assert_array_equal(found_bmode[..., 0], bmode[:, ::-1])
    np.testing.assert_array_equal(found_semode, semode[:, ::-1])


def test_split_dual_view_by_boxes(pane_pair):
    bmode, semode = pane_pair
    screenshot, boxes = dual_view(bmode, semode)
    found_bmode, found_semode = readers.split_dual_view(screenshot, boxes=boxes)
    np.testing.assert_array_equal(found_bmode[..., 0], bmode)
    np.testing.assert_array_equal(found_semode, semode)
    assert readers.parse_boxes("4 4 52 44;60 4 108 44") == ((4, 4, 52, 44), (60, 4, 108, 44))
