"""BUSI: the published folder layout, pseudo-patients, masks merged by union."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from tf_bimodal.data import readers
from tf_bimodal.schema import EXAMPLE_KEYS

from helpers import BUSI_SAMPLE

MULTI_MASK_IMAGES = {
    "busi_benign_4": ("benign", "benign (4)", 2),
    "busi_benign_25": ("benign", "benign (25)", 2),
    "busi_benign_195": ("benign", "benign (195)", 3),
    "busi_malignant_53": ("malignant", "malignant (53)", 2),
}


@pytest.fixture(scope="module")
def busi_examples():
    if not BUSI_SAMPLE.is_dir():
        pytest.skip(f"BUSI sample not found at {BUSI_SAMPLE}")
    return list(readers.iter_busi(str(BUSI_SAMPLE), 64))


def test_busi_sample_counts_and_identities(busi_examples):
    labels = [e["label"] for e in busi_examples]
    assert len(busi_examples) == 50
    counts = tuple(labels.count(name) for name in ("benign", "malignant", "normal"))
    assert counts == (20, 20, 10)
    ids = [e["image_id"] for e in busi_examples]
    assert len(set(ids)) == 50 and "busi_benign_4" in ids
    # No patient ids in BUSI: one series of near-duplicates is one pseudo-patient, named after
    # its first image; every other image is its own patient.
    series = {f"busi_malignant_{number}" for number in range(4, 10)}
    for example in busi_examples:
        expected = "busi_group_malignant_4" if example["image_id"] in series else example["image_id"]
        assert example["patient_id"] == expected, example["image_id"]


def test_busi_without_duplicate_search_every_image_is_its_own_patient(busi_sample_dir):
    groups = readers.busi_groups(busi_sample_dir, "none")
    assert groups.groups == () and len(groups.patient_ids) == 50
    assert all(patient == image for image, patient in groups.patient_ids.items())
    assert groups.summary()["searched"] is False


def test_busi_has_no_semode_and_normal_masks_are_empty(busi_examples):
    for example in busi_examples:
        assert set(example) == set(EXAMPLE_KEYS)
        assert example["has_semode"] is False
        assert not example["semode"].any() and example["semode"].shape == (64, 64, 3)
        assert example["bmode"].shape == (64, 64, 1) and example["has_mask"] is True
        assert set(np.unique(example["mask"])) <= {0, 1}
        assert example["mask"].any() == (example["label"] != "normal")


def test_busi_multiple_masks_are_merged_by_union(busi_examples):
    by_id = {e["image_id"]: e for e in busi_examples}
    for image_id, (label, stem, count) in MULTI_MASK_IMAGES.items():
        folder = BUSI_SAMPLE / readers.BUSI_FOLDER / label
        names = [f"{stem}_mask.png"] + [f"{stem}_mask_{k}.png" for k in range(1, count)]
        union = by_id[image_id]["mask"]
        for name in names:
            single = readers.resize_mask(readers.read_mask(folder / name), 64)
            assert np.all(union >= single), name
            assert union.sum() >= single.sum()


def test_busi_accepts_the_dataset_folder_itself(busi_sample_dir):
    root = pathlib.Path(busi_sample_dir) / readers.BUSI_FOLDER
    assert readers.find_busi_root(str(root)) == str(root)
    assert readers.find_busi_root(busi_sample_dir) == str(root)
