"""Rendering one B/SE pair: schema, shapes, ranges, mask, determinism, ground truth."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tf_bimodal.data import phantom
from tf_bimodal.schema import EXAMPLE_KEYS

from helpers import small_phantom

SMALL = small_phantom()


@pytest.mark.parametrize("image_size", [32, 64, 96])
def test_render_pair_schema_shapes_and_ranges(small_patients, image_size):
    for patient in small_patients:
        example = phantom.render_pair(patient, 1, image_size, seed=3, return_strain=True)
        assert set(EXAMPLE_KEYS) <= set(example)
        assert example["image_id"] == f"{patient.patient_id}_v1"
        assert example["patient_id"] == patient.patient_id and example["label"] == patient.label
        assert example["bmode"].shape == (image_size, image_size, 1) and example["bmode"].dtype == np.uint8
        assert example["semode"].shape == (image_size, image_size, 3) and example["semode"].dtype == np.uint8
        assert example["mask"].shape == (image_size, image_size, 1) and example["mask"].dtype == np.uint8
        assert example["has_semode"] is True and example["has_mask"] is True
        assert example["strain"].shape == (image_size, image_size) and example["strain"].dtype == np.float32
        assert 0.0 <= example["strain"].min() and example["strain"].max() <= 1.0
        # The grey image uses a real dynamic range, not a few levels.
        assert example["bmode"].std() > 15 and len(np.unique(example["bmode"])) > 50


def test_mask_binary_nonempty_inside_image_and_roi(small_patients):
    size = 64
    for patient in small_patients:
        for view in range(patient.num_pairs):
            example = phantom.render_pair(patient, view, size, seed=0, return_strain=True)
            mask = example["mask"][:, :, 0]
            assert set(np.unique(mask)) == {0, 1}
            rows, cols = np.nonzero(mask)
            # Fully inside: never touching the image border.
            assert rows.min() > 0 and cols.min() > 0 and rows.max() < size - 1 and cols.max() < size - 1
            top, left, bottom, right = example["se_roi"]
            assert top <= rows.min() and rows.max() < bottom and left <= cols.min() and cols.max() < right
            assert example["ground_truth"]["lesion_area_px"] == int(mask.sum())


def test_render_pair_deterministic_and_seeded(small_patients):
    patient = small_patients[2]
    first = phantom.render_pair(patient, 0, 64, seed=5)
    second = phantom.render_pair(patient, 0, 64, seed=5)
    for key in ("bmode", "semode", "mask"):
        np.testing.assert_array_equal(first[key], second[key])
    assert first["ground_truth"] == second["ground_truth"]
    reseeded = phantom.render_pair(patient, 0, 64, seed=6)
    assert not np.array_equal(first["bmode"], reseeded["bmode"])
    assert not np.array_equal(first["semode"], reseeded["semode"])


def test_views_share_ground_truth_but_differ(small_patients):
    patient = next(p for p in small_patients if p.num_pairs >= 2)
    views = [phantom.render_pair(patient, v, 64, seed=0) for v in range(2)]
    truths = [{k: v for k, v in view["ground_truth"].items() if k != "lesion_area_px"} for view in views]
    assert truths[0] == truths[1]
    assert views[0]["ground_truth"]["elasticity_score"] == patient.elasticity_score
    for key in ("bmode", "semode", "mask"):
        assert not np.array_equal(views[0][key], views[1][key])
    assert views[0]["image_id"] != views[1]["image_id"]


def test_ground_truth_keys_types_and_vocabularies(small_patients):
    truth = phantom.render_pair(small_patients[0], 0, 64, seed=0)["ground_truth"]
    assert tuple(truth) == phantom.GROUND_TRUTH_KEYS and len(truth) > 0
    for key, value in truth.items():
        assert type(value) is phantom.GROUND_TRUTH_TYPES[key], key
        if key in phantom.GROUND_TRUTH_VOCABULARIES:
            assert value in phantom.GROUND_TRUTH_VOCABULARIES[key], key
    assert (truth["orientation"] == "not_parallel") == (truth["aspect_ratio"] > 1.0)


@pytest.mark.parametrize(
    "kwargs", [{"image_size": 16}, {"view_index": -1}, {"annotation_fraction": -0.1}, {"annotation_fraction": 1.5}]
)
def test_render_pair_rejects_bad_arguments(small_patients, kwargs):
    arguments = {"view_index": 0, "image_size": 64, "seed": 0, **kwargs}
    with pytest.raises(ValueError):
        phantom.render_pair(small_patients[0], **arguments)


def test_public_names():
    assert re.fullmatch(r"phantom_p\d{3}_v\d", phantom.render_pair(phantom.sample_patients(SMALL)[0], 0, 32, 0)["image_id"])
    for name in ("sample_patients", "render_pair", "iter_phantom", "difficulty_table", "PatientParams"):
        assert hasattr(phantom, name)
