"""Bad input: one test per rule; each raises DataError (a ValueError) naming the file and rule."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tf_bimodal.data import readers
from tf_bimodal.data.errors import DataError
from tfds_builder.bimodal_breast_us import BimodalBreastUs, BimodalBreastUsConfig
from tfds_builder.bimodal_breast_us.make_dummy_data import (
    dual_view,
    synthetic_bmode,
    synthetic_semode,
    write_image,
)

HEADER = "patient_id,label,bmode,semode,mask"


def assert_data_error(excinfo, file_name: str, phrase: str) -> None:
    error = excinfo.value
    assert isinstance(error, DataError) and isinstance(error, ValueError)
    message = str(error)
    assert file_name in message, message
    assert phrase in message, message


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def write_pair(folder: pathlib.Path, name: str, rng, mask: bool = True) -> str:
    """Write ``name_b.png``, ``name_se.png`` (and ``name_m.png``); return the manifest cells."""
    bmode, lesion = synthetic_bmode(rng)
    write_image(folder / f"{name}_b.png", bmode)
    write_image(folder / f"{name}_se.png", synthetic_semode(bmode, rng))
    if mask:
        write_image(folder / f"{name}_m.png", lesion * 255)
    return f"{name}_b.png,{name}_se.png," + (f"{name}_m.png" if mask else "")


def write_manifest(folder: pathlib.Path, *rows: str, header: str = HEADER) -> None:
    (folder / "manifest.csv").write_text("\n".join([header, *rows]) + "\n")


def consume_clinical(folder: pathlib.Path) -> list[dict]:
    return list(readers.iter_clinical(str(folder), 32))


# --- single files -----------------------------------------------------------------------------


def test_corrupt_image(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    with pytest.raises(DataError) as excinfo:
        readers.read_image(tmp_path / "broken.png")
    assert_data_error(excinfo, "broken.png", "corrupt or unreadable image")


def test_corrupt_dicom(tmp_path):
    (tmp_path / "broken.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 40)
    with pytest.raises(DataError) as excinfo:
        readers.read_image(tmp_path / "broken.dcm")
    assert_data_error(excinfo, "broken.dcm", "DICOM")


def test_missing_image_file(tmp_path):
    with pytest.raises(DataError) as excinfo:
        readers.read_image(tmp_path / "absent.png")
    assert_data_error(excinfo, "absent.png", "file not found")


def test_unknown_extension(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError) as excinfo:
        readers.read_image(tmp_path / "notes.txt")
    assert_data_error(excinfo, "notes.txt", "unknown image format")


def test_grey_dual_view(tmp_path, rng):
    bmode, _ = synthetic_bmode(rng)
    grey_se = np.repeat(bmode[..., None], 3, axis=-1)
    screenshot, _ = dual_view(bmode, grey_se)
    with pytest.raises(DataError) as excinfo:
        readers.split_dual_view(screenshot, where="grey_screen.png")
    assert_data_error(excinfo, "grey_screen.png", "grey dual view: no colour SE pane found")


# --- manifest rules (checked before any image is read) ----------------------------------------


def test_missing_manifest(tmp_path):
    with pytest.raises(DataError) as excinfo:
        readers.read_manifest(tmp_path)
    assert_data_error(excinfo, "manifest.csv", "not found")


@pytest.mark.parametrize("content", ["", HEADER + "\n", HEADER + "\n\n,,,,\n"])
def test_empty_manifest(tmp_path, content):
    (tmp_path / "manifest.csv").write_text(content)
    with pytest.raises(DataError) as excinfo:
        readers.read_manifest(tmp_path)
    assert_data_error(excinfo, "manifest.csv", "empty manifest")


def test_missing_required_column(tmp_path, rng):
    cells = write_pair(tmp_path, "a", rng)
    write_manifest(tmp_path, "benign," + cells, header="label,bmode,semode,mask")
    with pytest.raises(DataError) as excinfo:
        readers.read_manifest(tmp_path)
    assert_data_error(excinfo, "manifest.csv", "missing required column 'patient_id'")


def test_unknown_label(tmp_path, rng):
    first, second = write_pair(tmp_path, "a", rng), write_pair(tmp_path, "b", rng)
    write_manifest(tmp_path, "P1,benign," + first, "P2,suspicious," + second)
    with pytest.raises(DataError) as excinfo:
        readers.read_manifest(tmp_path)
    assert_data_error(excinfo, "manifest.csv", "row 3, column label: unknown label 'suspicious'")


def test_one_patient_with_two_labels(tmp_path, rng):
    first, second = write_pair(tmp_path, "a", rng), write_pair(tmp_path, "b", rng)
    write_manifest(tmp_path, "P1,benign," + first, "P1,malignant," + second)
    with pytest.raises(DataError) as excinfo:
        readers.read_manifest(tmp_path)
    assert_data_error(excinfo, "manifest.csv", "patient 'P1' has two labels")


def test_missing_file_in_manifest(tmp_path, rng):
    write_manifest(tmp_path, "P1,benign,a_b.png,a_se.png,")
    write_pair(tmp_path, "a", rng)
    (tmp_path / "a_se.png").unlink()
    with pytest.raises(DataError) as excinfo:
        readers.read_manifest(tmp_path)
    assert_data_error(excinfo, "manifest.csv", "row 2, column semode: file not found: a_se.png")


def test_duplicate_image(tmp_path, rng):
    cells = write_pair(tmp_path, "a", rng, mask=False)
    write_manifest(tmp_path, "P1,benign," + cells, "P2,benign," + cells)
    with pytest.raises(DataError) as excinfo:
        readers.read_manifest(tmp_path)
    assert_data_error(excinfo, "manifest.csv", "duplicate image: a_b.png already listed in row 2")


# --- pair rules (checked per image) -----------------------------------------------------------


def test_bmode_and_semode_of_different_sizes(tmp_path, rng):
    write_manifest(tmp_path, "P1,benign," + write_pair(tmp_path, "a", rng))
    bmode, _ = synthetic_bmode(rng)
    write_image(tmp_path / "a_se.png", synthetic_semode(bmode, rng)[:30])
    with pytest.raises(DataError) as excinfo:
        consume_clinical(tmp_path)
    assert_data_error(excinfo, "a_se.png", "B-mode and SE-mode images differ in size")


def test_mask_of_another_size(tmp_path, rng):
    write_manifest(tmp_path, "P1,benign," + write_pair(tmp_path, "a", rng))
    write_image(tmp_path / "a_m.png", np.full((20, 20), 255, np.uint8))
    with pytest.raises(DataError) as excinfo:
        consume_clinical(tmp_path)
    assert_data_error(excinfo, "a_m.png", "mask size 20x20 differs from the B-mode image")


def test_grey_semode_where_colour_is_expected(tmp_path, rng):
    write_manifest(tmp_path, "P1,benign," + write_pair(tmp_path, "a", rng))
    bmode, _ = synthetic_bmode(rng)
    write_image(tmp_path / "a_se.png", np.repeat(bmode[..., None], 3, axis=-1))
    with pytest.raises(DataError) as excinfo:
        consume_clinical(tmp_path)
    assert_data_error(excinfo, "a_se.png", "grey SE-mode image where colour is expected")


def test_empty_mask_where_a_lesion_is_required(tmp_path, rng):
    write_manifest(tmp_path, "P1,malignant," + write_pair(tmp_path, "a", rng))
    write_image(tmp_path / "a_m.png", np.zeros((40, 48), np.uint8))
    with pytest.raises(DataError) as excinfo:
        consume_clinical(tmp_path)
    assert_data_error(excinfo, "a_m.png", "empty mask: a malignant image needs a lesion")


def test_corrupt_image_in_clinical_folder(tmp_path, rng):
    write_manifest(tmp_path, "P1,benign," + write_pair(tmp_path, "a", rng))
    (tmp_path / "a_b.png").write_bytes(b"garbage" * 10)
    with pytest.raises(DataError) as excinfo:
        consume_clinical(tmp_path)
    assert_data_error(excinfo, "a_b.png", "corrupt or unreadable image")


def test_busi_layout_not_found(tmp_path):
    with pytest.raises(DataError) as excinfo:
        list(readers.iter_busi(str(tmp_path), 32))
    assert_data_error(excinfo, str(tmp_path), "BUSI layout not found")


# --- builder ----------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["manifest", "image"])
def test_failing_clinical_build_leaves_no_prepared_dataset(tmp_path, rng, no_network, failure):
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    good, other = write_pair(manual_dir, "a", rng), write_pair(manual_dir, "b", rng)
    if failure == "manifest":  # caught by read_manifest before any example is written
        write_manifest(manual_dir, "P1,benign," + good, "P2,unsure," + other)
        file_name, phrase = "manifest.csv", "unknown label"
    else:  # caught on the second pair, after the first was generated
        write_manifest(manual_dir, "P1,benign," + good, "P2,benign," + other)
        bmode, _ = synthetic_bmode(rng)
        write_image(manual_dir / "b_se.png", np.repeat(bmode[..., None], 3, axis=-1))
        file_name, phrase = "b_se.png", "grey SE-mode image"
    data_dir = tmp_path / "tfds"
    config = BimodalBreastUsConfig(name="clinical_32", source="clinical", image_size=32)
    builder = BimodalBreastUs(config=config, data_dir=str(data_dir))
    with pytest.raises(DataError) as excinfo:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
        )
    assert_data_error(excinfo, file_name, phrase)
    assert not builder.is_prepared()
    assert not pathlib.Path(builder.data_dir).exists()
    assert not list(data_dir.rglob("dataset_info.json"))
    assert not list(data_dir.rglob("*incomplete*"))
    fresh = BimodalBreastUs(config=config, data_dir=str(data_dir))
    assert not fresh.is_prepared()
