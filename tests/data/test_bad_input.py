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


def assert_manifest_refused(folder, phrase: str) -> None:
    """Reading ``folder``'s manifest raises a DataError naming ``manifest.csv`` and ``phrase``."""
    with pytest.raises(DataError) as excinfo:
        readers.read_manifest(folder)
    assert_data_error(excinfo, "manifest.csv", phrase)


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
    assert_manifest_refused(tmp_path, "not found")


@pytest.mark.parametrize("content", ["", HEADER + "\n", HEADER + "\n\n,,,,\n"])
def test_empty_manifest(tmp_path, content):
    (tmp_path / "manifest.csv").write_text(content)
    assert_manifest_refused(tmp_path, "empty manifest")


def test_missing_required_column(tmp_path, rng):
    cells = write_pair(tmp_path, "a", rng)
    write_manifest(tmp_path, "benign," + cells, header="label,bmode,semode,mask")
    assert_manifest_refused(tmp_path, "missing required column 'patient_id'")


@pytest.mark.parametrize(
    "second_row, rule",
    [
        ("P2,suspicious,", "row 3, column label: unknown label 'suspicious'"),
        ("P1,malignant,", "patient 'P1' has two labels"),
    ],
    ids=["unknown label", "one patient with two labels"],
)
def test_bad_label(tmp_path, rng, second_row, rule):
    first, second = write_pair(tmp_path, "a", rng), write_pair(tmp_path, "b", rng)
    write_manifest(tmp_path, "P1,benign," + first, second_row + second)
    assert_manifest_refused(tmp_path, rule)


def test_missing_file_in_manifest(tmp_path, rng):
    write_manifest(tmp_path, "P1,benign,a_b.png,a_se.png,")
    write_pair(tmp_path, "a", rng)
    (tmp_path / "a_se.png").unlink()
    assert_manifest_refused(tmp_path, "row 2, column semode: file not found: a_se.png")


def test_duplicate_image(tmp_path, rng):
    cells = write_pair(tmp_path, "a", rng, mask=False)
    write_manifest(tmp_path, "P1,benign," + cells, "P2,benign," + cells)
    assert_manifest_refused(tmp_path, "duplicate image: a_b.png already listed in row 2")


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


# --- what real clinical exports throw at it ---------------------------------------------------


def test_zero_byte_file(tmp_path):
    for name in ("empty.png", "empty.dcm"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(DataError) as excinfo:
            readers.read_image(tmp_path / name)
        assert_data_error(excinfo, name, "empty file (0 bytes)")


def test_png_truncated_mid_file(tmp_path, rng):
    bmode, _ = synthetic_bmode(rng)
    write_image(tmp_path / "whole.png", bmode)
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    assert readers.read_image(tmp_path / "whole.png").shape[:2] == bmode.shape[:2]
    with pytest.raises(DataError) as excinfo:
        readers.read_image(tmp_path / "cut.png")
    assert_data_error(excinfo, "cut.png", "truncated PNG")


def test_jpeg_truncated_mid_file(tmp_path, rng):
    import cv2

    bmode, _ = synthetic_bmode(rng)
    ok, encoded = cv2.imencode(".jpg", bmode)
    assert ok
    (tmp_path / "cut.jpg").write_bytes(encoded.tobytes()[: encoded.size * 2 // 3])
    with pytest.raises(DataError) as excinfo:
        readers.read_image(tmp_path / "cut.jpg")
    assert_data_error(excinfo, "cut.jpg", "truncated JPEG")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG signature, an IHDR chunk claiming ``width x height`` and an IEND chunk."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_image_above_the_pixel_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    (tmp_path / "huge.png").write_bytes(_png_header_only(20000, 20000))
    decoded = []
    monkeypatch.setattr(readers.images.cv2, "imdecode", lambda *args: decoded.append(args))
    with pytest.raises(DataError) as excinfo:
        readers.read_image(tmp_path / "huge.png")
    assert_data_error(excinfo, "huge.png", "image too large: 20000x20000 px")
    assert not decoded  # refused before any decoding


@pytest.mark.parametrize("extension", [".jpg", ".bmp", ".tif"])
def test_pixel_limit_reads_jpeg_bmp_and_tiff_headers(tmp_path, rng, monkeypatch, extension):
    bmode, _ = synthetic_bmode(rng)
    write_image(tmp_path / f"scan{extension}", bmode)
    data = (tmp_path / f"scan{extension}").read_bytes()
    assert readers.raster_size(data) == (bmode.shape[1], bmode.shape[0])
    monkeypatch.setattr(readers.images, "MAX_IMAGE_PIXELS", bmode.shape[0] * bmode.shape[1] - 1)
    with pytest.raises(DataError) as excinfo:
        readers.read_image(tmp_path / f"scan{extension}")
    assert_data_error(excinfo, f"scan{extension}", "image too large")


def _dicom_without_pixels(path: pathlib.Path, rows=64, columns=64, pixels: bytes | None = None) -> None:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"  # ultrasound image storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = pydicom.Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Rows, dataset.Columns = rows, columns
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 8, 8, 7, 0
    if pixels is not None:
        dataset.PixelData = pixels
    dataset.save_as(str(path), enforce_file_format=True)


def test_dicom_without_pixel_data(tmp_path):
    _dicom_without_pixels(tmp_path / "report.dcm")
    with pytest.raises(DataError) as excinfo:
        readers.read_image(tmp_path / "report.dcm")
    assert_data_error(excinfo, "report.dcm", "DICOM file has no pixel data")


def test_dicom_above_the_pixel_limit(tmp_path):
    _dicom_without_pixels(tmp_path / "huge.dcm", rows=10000, columns=10000, pixels=b"\x00" * 16)
    with pytest.raises(DataError) as excinfo:
        readers.read_image(tmp_path / "huge.dcm")
    assert_data_error(excinfo, "huge.dcm", "image too large: 10000x10000 px")


def test_mask_with_grey_values_is_binarised_at_half_with_a_warning(tmp_path, progress):
    mask = np.zeros((20, 20), np.uint8)
    mask[5:15, 5:15] = 250  # JPEG-like: the lesion is not exactly 255
    mask[5, 5:15] = 90  # anti-aliased edge: below half
    mask[0, 0] = 3  # compression noise
    write_image(tmp_path / "grey_mask.png", mask)
    read = readers.read_mask(tmp_path / "grey_mask.png")
    assert read.shape == (20, 20, 1) and set(np.unique(read)) == {0, 1}
    assert read[..., 0].sum() == 9 * 10 and read[0, 0, 0] == 0
    assert any("grey_mask.png" in line and "binarised at 125" in line for line in progress)


def test_mask_label_map_is_the_union_of_its_labels(tmp_path, progress):
    mask = np.zeros((20, 20), np.uint8)
    mask[2:6, 2:6], mask[10:14, 10:14] = 1, 2
    write_image(tmp_path / "labels.png", mask)
    read = readers.read_mask(tmp_path / "labels.png")
    assert read[..., 0].sum() == 32
    assert any("labels.png" in line and "label map" in line for line in progress)


@pytest.mark.parametrize("values", [(0, 1), (0, 255), (0, 1, 255)])
def test_binary_masks_read_without_warning(tmp_path, progress, values):
    mask = np.zeros((10, 10), np.uint8)
    for i, value in enumerate(values[1:]):
        mask[i * 3:(i + 1) * 3, :] = value
    write_image(tmp_path / "m.png", mask)
    read = readers.read_mask(tmp_path / "m.png")
    assert read[..., 0].sum() == 30 * (len(values) - 1)
    assert not progress


def test_manifest_with_bom_and_crlf_is_accepted(tmp_path, rng):
    rows = [HEADER, "P1,benign," + write_pair(tmp_path, "a", rng), "P2,malignant," + write_pair(tmp_path, "b", rng)]
    (tmp_path / "manifest.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")
    records = readers.read_manifest(tmp_path)
    assert [record.patient_id for record in records] == ["P1", "P2"]
    assert records[0].mask.endswith("a_m.png")  # the last column is not left with a stray \r
    assert len(consume_clinical(tmp_path)) == 2


def test_manifest_separated_by_semicolons(tmp_path, rng):
    write_manifest(tmp_path, "P1;benign;" + write_pair(tmp_path, "a", rng).replace(",", ";"),
                   header=HEADER.replace(",", ";"))
    assert_manifest_refused(tmp_path, "separated by semicolons")


@pytest.mark.parametrize(
    "path, phrase",
    [
        ("/etc/{name}", "absolute path"),
        ("C:\\scans\\{name}", "absolute path"),
        ("../outside/{name}", "leaves the folder"),
        ("sub/../../outside/{name}", "leaves the folder"),
    ],
)
def test_manifest_paths_outside_the_folder_are_refused(tmp_path, rng, path, phrase):
    folder, outside = tmp_path / "study", tmp_path / "outside"
    folder.mkdir(), outside.mkdir()
    write_pair(outside, "a", rng)
    (folder / "a_se.png").write_bytes((outside / "a_se.png").read_bytes())
    write_manifest(folder, f"P1,benign,{path.format(name='a_b.png')},a_se.png,")
    with pytest.raises(DataError) as excinfo:
        readers.read_manifest(folder)
    assert_data_error(excinfo, "manifest.csv", phrase)
    assert "row 2, column bmode" in str(excinfo.value)


def test_manifest_windows_separators_and_inner_dots_are_accepted(tmp_path, rng):
    (tmp_path / "P1").mkdir()
    cells = write_pair(tmp_path / "P1", "a", rng).split(",")
    write_manifest(tmp_path, f"P1,benign,P1\\{cells[0]},./P1/../P1/{cells[1]},P1\\{cells[2]}")
    (record,) = readers.read_manifest(tmp_path)
    assert record.bmode.endswith("P1/a_b.png") and record.semode.endswith("P1/a_se.png")
    assert len(consume_clinical(tmp_path)) == 1
