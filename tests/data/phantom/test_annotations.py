"""Operator marks burnt into some B-mode images, never into the mask."""

from __future__ import annotations

import numpy as np

from tf_bimodal.config import PhantomConfig
from tf_bimodal.data import phantom


def test_operator_marks_on_some_images_never_in_the_mask():
    config = PhantomConfig(num_benign_patients=8, num_malignant_patients=8, seed=4)
    marked_views = 0
    for patient in phantom.sample_patients(config):
        plain = phantom.render_pair(patient, 0, 96, seed=4, annotation_fraction=0.0, return_layers=True)
        marked = phantom.render_pair(patient, 0, 96, seed=4, annotation_fraction=1.0, return_layers=True)
        default = phantom.render_pair(patient, 0, 96, seed=4, annotation_fraction=config.annotation_fraction,
                                      return_layers=True)
        marked_views += int(default["annotations"].any())
        # Marks are burnt into the B-mode only: the mask, the SE image and everything else
        # stay exactly as without them.
        assert not plain["annotations"].any()
        np.testing.assert_array_equal(plain["bmode"], plain["bmode_unmarked"])
        np.testing.assert_array_equal(plain["bmode_unmarked"], marked["bmode_unmarked"])
        np.testing.assert_array_equal(plain["mask"], marked["mask"])
        np.testing.assert_array_equal(plain["semode"], marked["semode"])
        marks = marked["annotations"].astype(bool)
        assert marks.any()
        changed = marked["bmode"][:, :, 0] != plain["bmode"][:, :, 0]
        assert not (changed & ~marks).any()
        # Markers sit outside the outline; only the thin dotted lines cross the lesion.
        mask = marked["mask"][:, :, 0].astype(bool)
        assert (marks & mask).sum() <= 0.2 * mask.sum()
    assert 0 < marked_views < 16  # some images carry marks, others none
