"""BUS-BRA: the release layout, its features, and each bad-input rule naming the file and row."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from tf_bimodal.data import readers
from tf_bimodal.data.errors import DataError
from tf_bimodal.schema import EXAMPLE_KEYS, METADATA_DEFAULTS

from helpers import BUSBRA_DEV, write_busbra_folder


@pytest.fixture
def folder(tmp_path):
    return write_busbra_folder(tmp_path / "busbra")


def _rewrite(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_reads_the_release_layout(folder):
    records = readers.read_busbra(folder)
    assert len(records) == 19 and records[0].image_id == "bus_0001-l"
    first = records[0]
    assert first.patient_id == "busbra_1" and first.label == "benign" and first.side == "left"
    assert first.mask_path.endswith("Masks/mask_0001-l.png") and first.image_path.endswith("Images/bus_0001-l.png")
    assert first.test_folds == {5: 1, 10: 1}
    assert records[-1].image_id == "bus_0010-s" and records[-1].side == "single"
    assert records[-1].test_folds == {5: 5, 10: 10}
    assert {record.label for record in records} == {"benign", "malignant"}


def test_examples_carry_the_case_features(folder):
    examples = list(readers.iter_busbra(folder, 32))
    assert len(examples) == 19
    for example in examples:
        assert set(EXAMPLE_KEYS) | set(METADATA_DEFAULTS) == set(example)
        assert example["bmode"].shape == (32, 32, 1) and example["bmode"].dtype == np.uint8
        assert not example["has_semode"] and not example["semode"].any()  # B-mode only, nothing made up
        assert example["has_mask"] and set(np.unique(example["mask"])) == {0, 1}
        assert example["pathology"] == example["label"]
    tenth = [example for example in examples if example["patient_id"] == "busbra_10"]
    assert [example["test_fold_5"] for example in tenth] == [5] and tenth[0]["test_fold_10"] == 10
    assert examples[0]["histology"] == "fibroadenoma" and examples[0]["birads"] == "3"
    assert examples[0]["device"] == "GE Logiq 7 @10-14MHz"


def test_fold_files_are_optional(folder):
    (folder / "10-fold-cv.csv").unlink()
    records = readers.read_busbra(folder)
    assert all(set(record.test_folds) == {5} for record in records)
    example = next(readers.iter_busbra(folder, 32))
    assert example["test_fold_10"] == 0 and example["test_fold_5"] == 1
    assert not any(path.endswith("10-fold-cv.csv") for path in readers.busbra_files(folder))


def test_missing_mask(folder):
    (folder / "Masks" / "mask_0003-r.png").unlink()
    with pytest.raises(DataError, match=r"mask_0003-r\.png: mask not found for Images/bus_0003-r\.png"):
        readers.read_busbra(folder)


def test_row_without_image(folder):
    (folder / "Images" / "bus_0002-l.png").unlink()
    with pytest.raises(DataError, match=r"bus_data\.csv, row 4: image Images/bus_0002-l\.png not found"):
        readers.read_busbra(folder)


def test_unknown_pathology(folder):
    _rewrite(folder / "bus_data.csv", "fibroadenoma,benign", "fibroadenoma,probably benign")
    with pytest.raises(DataError, match=r"bus_data\.csv, row 2: unknown pathology 'probably benign' of bus_0001-l"):
        readers.read_busbra(folder)


@pytest.mark.parametrize("column", ["Case", "Pathology", "Device"])
def test_missing_column(folder, column):
    _rewrite(folder / "bus_data.csv", f",{column},", ",Other,")
    with pytest.raises(DataError, match=rf"bus_data\.csv: missing column {column}: BUS-BRA's bus_data\.csv needs"):
        readers.read_busbra(folder)


def test_missing_fold_column(folder):
    _rewrite(folder / "5-fold-cv.csv", "kFold", "fold")
    with pytest.raises(DataError, match=r"5-fold-cv\.csv: missing column kFold"):
        readers.read_busbra(folder)


def test_patient_in_two_test_folds(folder):
    _rewrite(folder / "5-fold-cv.csv", "bus_0001-r,benign,1", "bus_0001-r,benign,2")
    with pytest.raises(DataError, match=r"5-fold-cv\.csv, row 3: patient busbra_1 has bus_0001-l in test fold 1 "
                                        r"and bus_0001-r in test fold 2"):
        readers.read_busbra(folder)


def test_fold_out_of_range(folder):
    _rewrite(folder / "5-fold-cv.csv", "bus_0001-l,benign,1", "bus_0001-l,benign,6")
    with pytest.raises(DataError, match=r"5-fold-cv\.csv, row 2: kFold '6' of bus_0001-l: the test fold must be"):
        readers.read_busbra(folder)


def test_patient_with_two_pathologies(folder):
    _rewrite(folder / "bus_data.csv", "bus_0001-r,1,fibroadenoma,benign", "bus_0001-r,1,fibroadenoma,malignant")
    with pytest.raises(DataError, match=r"row 3: Case '1' has two pathologies"):
        readers.read_busbra(folder)


def test_no_data_file(tmp_path):
    (tmp_path / "Images").mkdir()
    with pytest.raises(DataError, match=r"bus_data\.csv not found: BUS-BRA's release layout"):
        readers.read_busbra(tmp_path)


def test_empty_mask(folder):
    import cv2

    cv2.imwrite(str(folder / "Masks" / "mask_0002-l.png"), np.zeros((48, 40), np.uint8))
    with pytest.raises(DataError, match=r"mask_0002-l\.png: empty mask: a malignant image needs a lesion"):
        list(readers.iter_busbra(folder, 32))


def test_mask_of_another_size(folder):
    import cv2

    cv2.imwrite(str(folder / "Masks" / "mask_0002-l.png"), np.full((30, 40), 255, np.uint8))
    with pytest.raises(DataError, match=r"mask_0002-l\.png: mask size .* differs from the B-mode image"):
        list(readers.iter_busbra(folder, 32))


def test_development_set():
    """The real BUS-BRA development set: 934 images of 532 patients, each patient in one fold."""
    if not BUSBRA_DEV.is_dir():
        pytest.skip(f"BUS-BRA development set not found at {BUSBRA_DEV}")
    records = readers.read_busbra(BUSBRA_DEV)
    assert len(records) == 934 and len({record.patient_id for record in records}) == 532
    labels = collections.Counter(record.label for record in records)
    assert labels == {"benign": 630, "malignant": 304}
    assert all(set(record.test_folds) == {5, 10} for record in records)
    folds_of = collections.defaultdict(set)
    for record in records:
        folds_of[record.patient_id].add(record.test_folds[5])
    assert all(len(folds) == 1 for folds in folds_of.values())
    example = next(readers.iter_busbra(BUSBRA_DEV, 64, records=records[:1]))
    assert example["image_id"] == "bus_0001-l" and example["mask"].any() and example["device"]
