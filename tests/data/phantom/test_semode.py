"""SE-mode: the colour overlay inside the ROI, the elastography scale, stiffness patterns."""

from __future__ import annotations

import numpy as np

from tf_bimodal.config import PhantomConfig
from tf_bimodal.data import phantom
from tf_bimodal.data.phantom.semode import SE_ALPHA


def test_semode_colour_only_inside_roi(small_patients):
    example = phantom.render_pair(
        small_patients[0], 0, 96, seed=0, return_strain=True, annotation_fraction=1.0, return_layers=True
    )
    semode = example["semode"].astype(int)
    grey = example["bmode_unmarked"][:, :, 0].astype(int)  # SE's underlay carries no operator marks
    top, left, bottom, right = example["se_roi"]
    outside = np.ones(grey.shape, bool)
    outside[top - 1 : bottom + 1, left - 1 : right + 1] = False  # ROI and its frame
    for channel in range(3):
        np.testing.assert_array_equal(semode[..., channel][outside], grey[outside])
    inside = semode[top:bottom, left:right]
    assert np.abs(inside[..., 0] - inside[..., 2]).mean() > 20  # coloured, not grey


def test_colour_map_inverts_to_strain(small_patients):
    """The ROI colour is the elastography scale of ``strain`` blended over the B-mode."""
    example = phantom.render_pair(small_patients[1], 0, 64, seed=0, return_strain=True, return_layers=True)
    top, left, bottom, right = example["se_roi"]
    grey = example["bmode_unmarked"][top:bottom, left:right].astype(np.float32)
    shown = example["semode"][top:bottom, left:right].astype(np.float32)
    colour = (shown - (1 - SE_ALPHA) * grey) / SE_ALPHA
    distances = ((colour[:, :, None, :] - phantom.ELASTO_LUT[None, None].astype(np.float32)) ** 2).sum(-1)
    recovered = distances.argmin(-1) / 255.0
    error = np.abs(recovered - example["strain"][top:bottom, left:right])
    assert np.median(error) < 0.02 and np.mean(error) < 0.05


def test_strain_to_rgb_scale():
    blue, green, red = phantom.strain_to_rgb(np.array([0.0, 0.5, 1.0]))
    assert blue[2] > 150 and blue[0] < 50  # hard
    assert green[1] > 150 and green[0] < 50 and green[2] < 50  # average
    assert red[0] > 150 and red[2] < 50  # soft


def test_malignant_lesions_look_stiffer_on_semode():
    patients = phantom.sample_patients(PhantomConfig(num_benign_patients=6, num_malignant_patients=6, seed=11))
    blueness = {"benign": [], "malignant": []}
    for patient in patients:
        example = phantom.render_pair(patient, 0, 64, seed=11)
        inside = example["mask"][:, :, 0].astype(bool)
        semode = example["semode"].astype(np.float32)
        blueness[patient.label].append(float((semode[..., 2] - semode[..., 0])[inside].mean()))
    assert np.mean(blueness["malignant"]) > np.mean(blueness["benign"]) + 30


def test_cysts_show_layered_strain_artefact(cohort):
    cyst = next(p for p in cohort if p.echo_pattern == "anechoic")
    example = phantom.render_pair(cyst, 0, 96, seed=0, return_strain=True)
    mask = example["mask"][:, :, 0].astype(bool)
    rows = np.nonzero(mask.any(axis=1))[0]
    third = max(1, len(rows) // 3)
    top = example["strain"][rows[:third]][mask[rows[:third]]].mean()
    bottom = example["strain"][rows[-third:]][mask[rows[-third:]]].mean()
    assert bottom - top > 0.25  # blue (top) - green - red (bottom)
