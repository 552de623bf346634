"""The breast around the lesion: look-alikes without a mask."""

from __future__ import annotations

import dataclasses

import numpy as np

from tf_bimodal.config import PhantomConfig
from tf_bimodal.data import phantom

from helpers import ring_around


def test_look_alikes_are_dark_and_have_no_mask():
    config = PhantomConfig(num_benign_patients=8, num_malignant_patients=8, seed=4, max_distractors=6)
    with_look_alikes = 0
    for patient in phantom.sample_patients(config):
        example = phantom.render_pair(patient, 0, 96, seed=4, return_layers=True)
        footprint = example["distractors"].astype(bool)
        assert not (footprint & example["mask"][:, :, 0].astype(bool)).any()
        if footprint.sum() > 20:
            with_look_alikes += 1
            bmode = example["bmode_unmarked"][:, :, 0].astype(np.float32)
            assert bmode[footprint].mean() < bmode[ring_around(footprint, 2, 5)].mean()  # hypoechoic, like a lesion
    assert with_look_alikes >= 4
    clean = phantom.sample_patients(dataclasses.replace(config, max_distractors=0))
    assert all(p.num_distractors == 0 for p in clean)
    assert not phantom.render_pair(clean[0], 0, 96, seed=4, return_layers=True)["distractors"].any()
