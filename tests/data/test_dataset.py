"""The index of a prepared data set (tf_bimodal.data.dataset): counts by class, device and BI-RADS,
the source's own test folds, and BUS-BRA's official folds from prepared data to the summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tf_bimodal.config import DataConfig, PhantomConfig, SplitConfig
from tf_bimodal.data import dataset as dataset_lib
from tf_bimodal.data.errors import DataError
from tf_bimodal.experiments.experiment_data import resolve_data
from tf_bimodal.workflow import describe_data

from helpers import captured_progress, write_busbra_folder


def _index(**extra) -> dataset_lib.DatasetIndex:
    arrays = {
        "image_id": np.array(["a-l", "a-r", "b-s", "c-l"]),
        "patient_id": np.array(["a", "a", "b", "c"]),
        "label": np.array([0, 0, 1, 1]),
        "has_semode": np.zeros(4, bool),
        "has_mask": np.ones(4, bool),
        **extra,
    }
    return dataset_lib.DatasetIndex.from_arrays(arrays)


def test_summary_counts_by_device_and_birads():
    index = _index(device=np.array([b"GE", b"GE", b"Toshiba", b""]), birads=np.array([b"3", b"3", b"5", b"4"]),
                   test_fold_5=np.array([1, 1, 2, 3], np.int32))
    summary = index.summary()
    assert summary["devices"] == {
        "GE": {"images": 2, "patients": 1, "benign": 2},
        "Toshiba": {"images": 1, "patients": 1, "malignant": 1},
        "unknown": {"images": 1, "patients": 1, "malignant": 1},
    }
    assert summary["birads"]["5"] == {"images": 1, "patients": 1, "malignant": 1}
    assert index.official_folds(5).tolist() == [1, 1, 2, 3] and index.official_folds(10) is None


def test_summary_leaves_out_what_the_source_does_not_record():
    summary = _index(device=np.array([b""] * 4), test_fold_5=np.zeros(4, np.int32)).summary()
    assert "devices" not in summary and "birads" not in summary
    assert _index(test_fold_5=np.zeros(4, np.int32)).official_folds(5) is None
    assert set(_index().summary()) == {"num_images", "num_patients", "benign", "malignant", "with_semode",
                                       "with_mask"}


@pytest.fixture(scope="module")
def busbra(tmp_path_factory):
    root = tmp_path_factory.mktemp("busbra")
    folder = write_busbra_folder(root / "folder")
    return DataConfig(source="busbra", manual_dir=str(folder), image_size=32, data_dir=str(root / "tfds")), root


@pytest.mark.filterwarnings("ignore:The least populated class")  # 10 folds of 10 tiny patients
def test_official_folds_from_prepared_data(busbra, no_network):
    config, root = busbra
    data = resolve_data(config, SplitConfig(scheme="official"), str(root / "runs"))
    assert data.description.endswith("(BUS-BRA, real, B-mode only)")
    assert data.index.official_folds(5) is not None and len(data.splits) == 5
    fold_of = dict(zip(data.index.image_ids, data.index.official_folds(5)))
    patient_of = dict(zip(data.index.image_ids, data.index.patient_ids))
    for split in data.splits:
        assert {int(fold_of[image]) for image in split["test"]} == {split["fold"] + 1}
        sides = {}
        for part in ("train", "val", "test"):
            for image in split[part]:
                sides.setdefault(patient_of[image], set()).add(part)
        assert all(len(parts) == 1 for parts in sides.values())
    described = resolve_data(config, SplitConfig(scheme="official", num_folds=10), str(root / "runs10"),
                             in_memory=False)
    assert len(described.splits) == 10 and all(len(split["test_patients"]) == 1 for split in described.splits)


def test_describe_reports_devices_birads_and_the_official_folds(busbra, no_network):
    config, root = busbra
    with captured_progress() as lines:
        summary = describe_data(config, SplitConfig(scheme="official"), str(root / "described"))
    assert summary["num_patients"] == 10 and summary["with_semode"] == 0
    assert summary["devices"]["Toshiba Aplio 300 @12-14 MHz"]["patients"] == 3
    assert sum(entry["images"] for entry in summary["birads"].values()) == 19
    assert all(fold["test_patients"] == 2 for fold in summary["folds"])
    assert "  device GE Logiq 7 @10-14MHz: 13 images, 7 patients (6 benign, 7 malignant)" in lines
    assert "  BI-RADS 3: 6 images, 3 patients (6 benign)" in lines
    assert any(line.startswith("  folds: the data set's own 5 test folds of 2 patients each") for line in lines)
    written = json.loads(next((root / "described" / "data").glob("busbra_*/summary.json")).read_text())
    assert written["devices"] == summary["devices"] and written["split_config"]["scheme"] == "official"


def test_official_split_refused_for_data_without_folds(tmp_path, no_network):
    phantom = DataConfig(image_size=32, data_dir=str(tmp_path / "tfds"),
                         phantom=PhantomConfig(num_benign_patients=3, num_malignant_patients=3,
                                               min_pairs_per_patient=1, max_pairs_per_patient=1))
    with pytest.raises(DataError, match="which this data does not have"):
        resolve_data(phantom, SplitConfig(scheme="official"), str(tmp_path / "runs"), in_memory=False)
