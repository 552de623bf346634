"""The cohort as the TFDS builder reads it, its settings and its montage."""

from __future__ import annotations

import numpy as np
import pytest

from tf_bimodal.config import PhantomConfig
from tf_bimodal.data import phantom

from helpers import small_phantom

SMALL = small_phantom()


def test_iter_phantom_order_and_count(small_patients):
    examples = list(phantom.iter_phantom(SMALL))
    expected = [f"{p.patient_id}_v{v}" for p in small_patients for v in range(p.num_pairs)]
    assert [e["image_id"] for e in examples] == expected
    assert all(e["bmode"].shape == (SMALL.image_size, SMALL.image_size, 1) for e in examples)
    np.testing.assert_array_equal(examples[0]["semode"], phantom.render_pair(small_patients[0], 0, 64, SMALL.seed)["semode"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_benign_patients": -1},
        {"num_benign_patients": 0, "num_malignant_patients": 0},
        {"min_pairs_per_patient": 0},
        {"min_pairs_per_patient": 3, "max_pairs_per_patient": 2},
        {"image_size": 16},
        {"annotation_fraction": -0.1},
        {"annotation_fraction": 1.01},
        {"max_distractors": -1},
    ],
)
def test_phantom_config_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        PhantomConfig(**kwargs)


def test_save_phantom_montage(tmp_path):
    from tf_bimodal.evaluation.figures import save_phantom_montage

    path = tmp_path / "montage.png"
    save_phantom_montage(path, SMALL, num_per_class=1, image_size=64)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        save_phantom_montage(tmp_path / "none.png", SMALL, num_per_class=0)
