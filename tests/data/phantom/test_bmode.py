"""B-mode: hypoechoic lesions, speckle, posterior features, gain and depth."""

from __future__ import annotations

import cv2
import numpy as np

from tf_bimodal.config import PhantomConfig
from tf_bimodal.data import phantom

from helpers import ring_around


def test_lesions_are_hypoechoic_some_nearly_isoechoic():
    """Lesions are darker than the tissue around them on average, from markedly (cysts) to
    hardly at all (nearly isoechoic: low contrast, as in clinical images)."""
    patients = phantom.sample_patients(PhantomConfig(num_benign_patients=10, num_malignant_patients=10, seed=2))
    contrasts = []
    for patient in patients:
        example = phantom.render_pair(patient, 0, 96, seed=2, return_layers=True)
        mask = example["mask"][:, :, 0].astype(bool)
        bmode = example["bmode_unmarked"][:, :, 0].astype(np.float32)
        contrasts.append(bmode[ring_around(mask, 2, 5)].mean() - bmode[mask].mean())
    contrasts = np.array(contrasts)
    assert np.median(contrasts) > 15 and np.mean(contrasts > 0) >= 0.8
    assert contrasts.max() > 50  # conspicuous lesions (cysts, dark masses)
    assert contrasts.min() < 12  # and lesions hard to tell from their surroundings


def test_speckle_is_finer_axially_than_laterally(small_patients):
    """The PSF is narrower along depth than across, so speckle grains are wider than tall."""
    bmode = phantom.render_pair(small_patients[0], 0, 96, seed=0)["bmode"][:, :, 0].astype(np.float32)
    detail = bmode - cv2.GaussianBlur(bmode, (0, 0), 4)

    def correlation(a, b):
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    axial = correlation(detail[:-2, :], detail[2:, :])
    lateral = correlation(detail[:, :-2], detail[:, 2:])
    assert lateral > axial + 0.1


def test_posterior_shadowing_darkens_below_malignant_lesions():
    """Echoes below the lesion minus echoes beside them at the same depth."""
    patients = phantom.sample_patients(PhantomConfig(num_benign_patients=12, num_malignant_patients=12, seed=5))
    by_label, by_feature = {"benign": [], "malignant": []}, {}
    for patient in patients:
        example = phantom.render_pair(patient, 0, 96, seed=5, return_layers=True)
        mask = example["mask"][:, :, 0].astype(bool)
        bmode = example["bmode_unmarked"][:, :, 0].astype(np.float32)
        rows, cols = np.nonzero(mask)
        left, right = cols.min(), cols.max() + 1
        width, band = right - left, slice(rows.max() + 2, rows.max() + 2 + max(4, rows.max() - rows.min()))
        beside = np.concatenate([bmode[band, max(0, left - width) : left].ravel(), bmode[band, right : right + width].ravel()])
        difference = float(bmode[band, left:right].mean() - beside.mean())
        by_label[patient.label].append(difference)
        by_feature.setdefault(patient.posterior, []).append(difference)
    assert np.mean(by_label["malignant"]) < np.mean(by_label["benign"]) - 15
    assert np.mean(by_feature["shadowing"]) < -15 and np.mean(by_feature["enhancement"]) > 5


def test_gain_and_depth_vary_between_images():
    patients = phantom.sample_patients(PhantomConfig(num_benign_patients=6, num_malignant_patients=6, seed=3))
    means = [phantom.render_pair(p, v, 64, seed=3)["bmode"].mean() for p in patients for v in range(2)]
    assert np.std(means) > 12 and max(means) - min(means) > 50
