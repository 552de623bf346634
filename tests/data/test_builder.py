"""The ``bimodal_breast_us`` builder end to end, offline: BUSI sample, clinical folder, phantom."""

from __future__ import annotations

import collections
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tf_bimodal
from tf_bimodal.config import PhantomConfig
from tf_bimodal.data import phantom as phantom_lib
from tf_bimodal.data.builder import DATASET_FOLDER
from tf_bimodal.schema import DEFAULT_IMAGE_SIZE, EXAMPLE_KEYS, LABELS, METADATA_DEFAULTS
from tfds_builder.bimodal_breast_us import BimodalBreastUs, BimodalBreastUsConfig
from tfds_builder.bimodal_breast_us.make_dummy_data import DUMMY_DIR

from helpers import write_busbra_folder

SIZE = 64


@pytest.fixture
def no_gcs(monkeypatch, no_network):
    """Fail on any lookup of the public TFDS bucket, on top of the socket guard."""
    from tensorflow_datasets.core.utils import gcs_utils

    def forbidden(*args, **kwargs):
        raise AssertionError("GCS lookup attempted")

    for name in ("exists", "gcs_dataset_info_files", "is_dataset_on_gcs", "download_gcs_dataset"):
        monkeypatch.setattr(gcs_utils, name, forbidden)
    monkeypatch.setattr(gcs_utils, "_is_gcs_disabled", False)  # even where TFDS would look


def prepare(config, data_dir, manual_dir=None):
    builder = BimodalBreastUs(config=config, data_dir=str(data_dir))
    # try_download_gcs=True is the TFDS default; the builder must ignore it.
    download_config = tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=True)
    builder.download_and_prepare(download_config=download_config)
    return builder


def read_all(builder) -> list[dict]:
    return list(tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False)))


def test_registered_configs():
    configs = {config.name: config for config in BimodalBreastUs.BUILDER_CONFIGS}
    assert set(configs) == {"clinical", "busi", "busbra", "phantom"}
    for name, config in configs.items():
        assert config.source == name and config.image_size == DEFAULT_IMAGE_SIZE
    assert configs["phantom"].phantom == PhantomConfig()
    assert BimodalBreastUs.MANUAL_DOWNLOAD_INSTRUCTIONS


@pytest.mark.parametrize(
    "kwargs, phrase",
    [({"source": "dicom"}, "source must be one of"), ({"image_size": 16}, "image_size must be")],
)
def test_config_rejects_bad_values(kwargs, phrase):
    with pytest.raises(ValueError, match=phrase):
        BimodalBreastUsConfig(name="bad", **kwargs)


def test_builder_description_states_limitations():
    description = BimodalBreastUs(config="phantom", data_dir="/nonexistent").info.description
    assert "synthetic" in description
    assert "BUSI has no SE image" in description
    assert "one split, `train`" in description and "patient level" in description


def test_description_and_citation_ship_with_the_package():
    """Read from ``tf_bimodal/data/bimodal_breast_us/``, inside the package: an installed wheel
    has them (``tests/test_wheel.py``)."""
    package = pathlib.Path(tf_bimodal.__file__).resolve().parent
    assert DATASET_FOLDER.is_relative_to(package) and BimodalBreastUs.pkg_dir_path == DATASET_FOLDER
    metadata = BimodalBreastUs.get_metadata()
    assert metadata.description == (DATASET_FOLDER / "README.md").read_text(encoding="utf-8")
    assert "Misra" in metadata.citation


def test_busi_sample(tmp_path, busi_sample_dir, no_gcs):
    config = BimodalBreastUsConfig(name=f"busi_{SIZE}", source="busi", image_size=SIZE)
    builder = prepare(config, tmp_path, manual_dir=busi_sample_dir)
    assert builder.is_prepared()
    assert builder.info.splits["train"].num_examples == 50
    assert "ground_truth" not in builder.info.features
    examples = read_all(builder)
    counts = collections.Counter(LABELS[e["label"]] for e in examples)
    assert counts == {"benign": 20, "malignant": 20, "normal": 10}
    assert not any(e["has_semode"] for e in examples)
    assert all(not e["semode"].any() for e in examples)
    assert all(e["bmode"].shape == (SIZE, SIZE, 1) for e in examples)
    # One series of six near-duplicates (malignant 4-9) is one pseudo-patient.
    assert len({e["patient_id"] for e in examples}) == 45
    assert builder.info.metadata["busi_duplicates"]["group_sizes"] == {"6": 1}


def test_clinical_dummy_folder(tmp_path, no_gcs):
    config = BimodalBreastUsConfig(name=f"clinical_{SIZE}", source="clinical", image_size=SIZE)
    builder = prepare(config, tmp_path, manual_dir=str(DUMMY_DIR))
    examples = sorted(read_all(builder), key=lambda e: e["image_id"])
    assert len(examples) == 5
    assert set(examples[0]) == set(EXAMPLE_KEYS) | set(METADATA_DEFAULTS)
    # A clinical manifest records none of the case's metadata: empty text, fold 0.
    assert all(examples[0][key] in (b"", 0) for key in METADATA_DEFAULTS)
    assert {e["patient_id"].decode() for e in examples} == {"P001", "P002", "P003", "P004"}
    assert sorted(LABELS[e["label"]] for e in examples).count("malignant") == 2
    assert all(e["has_semode"] for e in examples)
    assert sum(e["has_mask"] for e in examples) == 4
    for example in examples:
        assert example["semode"].shape == (SIZE, SIZE, 3)
        assert set(np.unique(example["mask"])) <= {0, 1}

    reloaded = BimodalBreastUs(config=config, data_dir=str(tmp_path))
    assert reloaded.is_prepared() and reloaded.info.splits["train"].num_examples == 5


def test_busbra_folder(tmp_path, no_gcs):
    """BUS-BRA's layout: B-mode only, patients from Case, the case's metadata and test folds kept."""
    folder = write_busbra_folder(tmp_path / "busbra")
    config = BimodalBreastUsConfig(name=f"busbra_{SIZE}", source="busbra", image_size=SIZE)
    builder = prepare(config, tmp_path / "tfds", manual_dir=str(folder))
    assert builder.info.splits["train"].num_examples == 19
    assert builder.info.metadata["source_fingerprint"]["source"] == "busbra"
    examples = {e["image_id"].decode(): e for e in read_all(builder)}
    assert len({e["patient_id"] for e in examples.values()}) == 10
    first = examples["bus_0001-l"]
    assert first["patient_id"] == b"busbra_1" and LABELS[first["label"]] == "benign"
    assert first["pathology"] == b"benign" and first["birads"] == b"3" and first["side"] == b"left"
    assert first["device"] == b"GE Logiq 7 @10-14MHz" and first["histology"] == b"fibroadenoma"
    assert first["test_fold_5"] == 1 and first["test_fold_10"] == 1 and first["test_fold_5"].dtype == np.int32
    assert examples["bus_0010-s"]["test_fold_5"] == 5 and examples["bus_0010-s"]["test_fold_10"] == 10
    assert all(not e["has_semode"] and not e["semode"].any() and e["has_mask"] for e in examples.values())


def test_tiny_phantom_with_ground_truth(tmp_path, no_gcs):
    config = BimodalBreastUsConfig(
        name=f"phantom_{SIZE}",
        source="phantom",
        image_size=SIZE,
        phantom=PhantomConfig(
            num_benign_patients=2,
            num_malignant_patients=1,
            min_pairs_per_patient=1,
            max_pairs_per_patient=2,
        ),
    )
    assert config.phantom.image_size == SIZE  # the builder config's size wins
    # The phantom never reads the manual folder, even when one is given and does not exist.
    builder = prepare(config, tmp_path, manual_dir=str(tmp_path / "does_not_exist"))
    features = builder.info.features
    assert set(features["ground_truth"].keys()) == set(phantom_lib.GROUND_TRUTH_KEYS)
    examples = read_all(builder)
    assert 3 <= len(examples) <= 6
    assert len({e["patient_id"] for e in examples}) == 3
    for example in examples:
        truth = example["ground_truth"]
        assert set(truth) == set(phantom_lib.GROUND_TRUTH_KEYS)
        assert truth["elasticity_score"].dtype == np.int32 and 1 <= truth["elasticity_score"] <= 5
        assert truth["stiffness_ratio"].dtype == np.float32
        assert isinstance(truth["shape_class"], bytes)
        assert truth["lesion_area_px"] == example["mask"].sum()
        assert example["has_semode"] and example["bmode"].shape == (SIZE, SIZE, 1)
        assert example["device"] == b"" and example["test_fold_5"] == 0  # the phantom records no case metadata


def test_busi_without_manual_dir_is_a_data_error(tmp_path, no_gcs):
    config = BimodalBreastUsConfig(name=f"busi_{SIZE}", source="busi", image_size=SIZE)
    builder = BimodalBreastUs(config=config, data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="manual_dir"):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "nothing"))
        )
    assert not builder.is_prepared()
