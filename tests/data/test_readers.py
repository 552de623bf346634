"""Readers: image formats, DICOM photometric interpretations, dual-view split, clinical, BUSI."""

from __future__ import annotations

import pathlib

import cv2
import numpy as np
import pytest

from tf_bimodal.data import readers
from tf_bimodal.schema import EXAMPLE_KEYS
from tfds_builder.bimodal_breast_us.make_dummy_data import (
    DUMMY_DIR,
    dual_view,
    synthetic_bmode,
    synthetic_semode,
    write_dicom,
    write_image,
)

RNG_SEED = 0
BUSI_SAMPLE = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "busi_sample"


@pytest.fixture
def rng():
    return np.random.default_rng(RNG_SEED)


@pytest.fixture
def rgb_image(rng):
    return rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)


# --- raster formats ---------------------------------------------------------------------------


def test_png_grey_and_rgb_round_trip(tmp_path, rgb_image):
    write_image(tmp_path / "rgb.png", rgb_image)
    write_image(tmp_path / "grey.png", rgb_image[..., 0])
    np.testing.assert_array_equal(readers.read_image(tmp_path / "rgb.png"), rgb_image)
    grey = readers.read_image(str(tmp_path / "grey.png"))
    assert grey.shape == (12, 16, 1) and grey.dtype == np.uint8
    np.testing.assert_array_equal(grey[..., 0], rgb_image[..., 0])


def test_jpeg_is_rgb_and_close(tmp_path):
    smooth = np.zeros((16, 16, 3), np.uint8)
    smooth[..., 0] = 200  # a flat red square survives JPEG almost unchanged
    smooth[..., 2] = 40
    write_image(tmp_path / "red.jpg", smooth)
    image = readers.read_image(tmp_path / "red.jpg")
    assert image.shape == (16, 16, 3)
    assert np.abs(image.astype(int) - smooth).max() <= 6


def test_rgba_drops_alpha(tmp_path, rgb_image):
    alpha = np.full(rgb_image.shape[:2] + (1,), 7, np.uint8)
    write_image(tmp_path / "rgba.png", np.concatenate([rgb_image, alpha], axis=-1))
    np.testing.assert_array_equal(readers.read_image(tmp_path / "rgba.png"), rgb_image)


def test_16_bit_png_is_scaled_to_8_bit(tmp_path):
    levels = (np.arange(12, dtype=np.uint16) * 257 * 20).reshape(3, 4)
    ok, data = cv2.imencode(".png", levels)
    assert ok
    (tmp_path / "deep.png").write_bytes(data.tobytes())
    image = readers.read_image(tmp_path / "deep.png")
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image[..., 0], (np.arange(12) * 20).reshape(3, 4))


def test_1_bit_and_palette_png(tmp_path):
    from PIL import Image

    bits = np.zeros((8, 10), bool)
    bits[2:5, 3:7] = True
    Image.fromarray(bits).convert("1").save(tmp_path / "bits.png")
    image = readers.read_image(tmp_path / "bits.png")
    assert image.shape == (8, 10, 1)
    np.testing.assert_array_equal(image[..., 0] > 0, bits)

    palette_image = Image.fromarray(bits.astype(np.uint8), mode="L").convert("P")
    palette_image.putpalette([0, 0, 0, 250, 10, 20] + [0] * 762)
    palette_image.save(tmp_path / "palette.png")
    image = readers.read_image(tmp_path / "palette.png")
    assert image.shape == (8, 10, 3)
    np.testing.assert_array_equal(image[3, 4], [250, 10, 20])
    np.testing.assert_array_equal(image[0, 0], [0, 0, 0])


def test_read_mask_binarises_any_channel_and_uses_alpha_only_when_alone(tmp_path):
    lesion = np.zeros((6, 6), np.uint8)
    lesion[1:4, 2:5] = 1
    coloured = np.zeros((6, 6, 3), np.uint8)
    coloured[..., 1] = lesion * 128  # lesion drawn in green only
    write_image(tmp_path / "rgb_mask.png", coloured)
    np.testing.assert_array_equal(readers.read_mask(tmp_path / "rgb_mask.png")[..., 0], lesion)

    opaque = np.concatenate([coloured, np.full((6, 6, 1), 255, np.uint8)], axis=-1)
    write_image(tmp_path / "rgba_mask.png", opaque)
    np.testing.assert_array_equal(readers.read_mask(tmp_path / "rgba_mask.png")[..., 0], lesion)

    alpha_only = np.zeros((6, 6, 4), np.uint8)
    alpha_only[..., 3] = lesion * 255
    write_image(tmp_path / "alpha_mask.png", alpha_only)
    mask = readers.read_mask(tmp_path / "alpha_mask.png")
    assert mask.shape == (6, 6, 1) and set(np.unique(mask)) <= {0, 1}
    np.testing.assert_array_equal(mask[..., 0], lesion)


# --- DICOM ------------------------------------------------------------------------------------


def test_dicom_monochrome2_and_monochrome1(tmp_path, rgb_image):
    grey = rgb_image[..., 0]
    write_dicom(tmp_path / "m2.dcm", grey, "MONOCHROME2")
    write_dicom(tmp_path / "m1.dcm", grey, "MONOCHROME1")
    np.testing.assert_array_equal(readers.read_image(tmp_path / "m2.dcm")[..., 0], grey)
    np.testing.assert_array_equal(readers.read_image(tmp_path / "m1.dcm")[..., 0], 255 - grey)


def test_dicom_rgb_and_ybr_full(tmp_path, rgb_image):
    from pydicom.pixels import convert_color_space

    write_dicom(tmp_path / "rgb.dcm", rgb_image, "RGB")
    np.testing.assert_array_equal(readers.read_image(tmp_path / "rgb.dcm"), rgb_image)

    ybr = convert_color_space(rgb_image, "RGB", "YBR_FULL")
    write_dicom(tmp_path / "ybr.dcm", ybr, "YBR_FULL")
    image = readers.read_image(tmp_path / "ybr.dcm")
    assert image.shape == rgb_image.shape
    assert np.abs(image.astype(int) - rgb_image).max() <= 2  # YCbCr rounding


def test_dicom_multi_frame_gives_first_frame_and_preamble_detects_dicom(tmp_path, rng):
    frames = rng.integers(0, 256, (3, 8, 9), dtype=np.uint8)
    write_dicom(tmp_path / "cine_without_extension", frames, "MONOCHROME2", num_frames=3)
    image = readers.read_image(tmp_path / "cine_without_extension")
    np.testing.assert_array_equal(image[..., 0], frames[0])


def test_dicom_12_bit_window_is_applied(tmp_path):
    values = np.array([[0, 1000, 2000], [3000, 4000, 4095]], np.uint16)
    window = {"WindowCenter": 2000, "WindowWidth": 2001}
    write_dicom(tmp_path / "deep.dcm", values, "MONOCHROME2", bits_stored=12, **window)
    image = readers.read_image(tmp_path / "deep.dcm")[..., 0]
    assert image.dtype == np.uint8
    assert image[0, 0] == 0 and image[0, 1] < image[0, 2] < image[1, 0] == 255
    assert image[0, 2] == 128  # the window centre maps to mid grey

    write_dicom(tmp_path / "nowindow.dcm", values, "MONOCHROME2", bits_stored=12)
    image = readers.read_image(tmp_path / "nowindow.dcm")[..., 0]
    assert image.min() == 0 and image.max() == 255  # deeper than 8 bits: min-max scaled


# --- dual view (Fig. S1) ----------------------------------------------------------------------


@pytest.fixture
def pane_pair(rng):
    bmode, _ = synthetic_bmode(rng)
    return bmode, synthetic_semode(bmode, rng)


def test_split_dual_view_by_detection(pane_pair):
    bmode, semode = pane_pair
    screenshot, (bmode_box, semode_box) = dual_view(bmode, semode)
    assert readers.find_dual_view_boxes(screenshot) == (bmode_box, semode_box)
    found_bmode, found_semode = readers.split_dual_view(screenshot)
    np.testing.assert_array_equal(found_bmode[..., 0], bmode)
    np.testing.assert_array_equal(found_semode, semode)


def test_split_dual_view_finds_the_colour_pane_on_either_side(pane_pair):
    bmode, semode = pane_pair
    screenshot, _ = dual_view(bmode, semode)
    mirrored = np.ascontiguousarray(screenshot[:, ::-1])
    found_bmode, found_semode = readers.split_dual_view(mirrored)
    np.testing.assert_array_equal(found_bmode[..., 0], bmode[:, ::-1])
    np.testing.assert_array_equal(found_semode, semode[:, ::-1])


def test_split_dual_view_by_boxes(pane_pair):
    bmode, semode = pane_pair
    screenshot, boxes = dual_view(bmode, semode)
    found_bmode, found_semode = readers.split_dual_view(screenshot, boxes=boxes)
    np.testing.assert_array_equal(found_bmode[..., 0], bmode)
    np.testing.assert_array_equal(found_semode, semode)
    assert readers.parse_boxes("4 4 52 44;60 4 108 44") == ((4, 4, 52, 44), (60, 4, 108, 44))


# --- resizing ---------------------------------------------------------------------------------


def test_resize_mask_stays_binary_and_keeps_tiny_lesions():
    mask = np.zeros((200, 200, 1), np.uint8)
    mask[50:150, 40:120] = 1
    resized = readers.resize_mask(mask, 64)
    assert resized.shape == (64, 64, 1) and set(np.unique(resized)) == {0, 1}
    tiny = np.zeros((300, 300, 1), np.uint8)
    tiny[101, 101] = 1  # nearest-neighbour sampling at 32 px misses this pixel
    assert readers.resize_mask(tiny, 32).sum() >= 1


# --- clinical folder --------------------------------------------------------------------------


def test_iter_clinical_reads_the_dummy_folder():
    examples = list(readers.iter_clinical(str(DUMMY_DIR), 48))
    assert [e["patient_id"] for e in examples] == ["P001", "P001", "P002", "P003", "P004"]
    labels = [e["label"] for e in examples]
    assert labels == ["benign", "benign", "malignant", "malignant", "benign"]
    assert [e["has_mask"] for e in examples] == [True, False, True, True, True]
    assert examples[0]["image_id"] == "P001_1_bmode_row2"
    assert len({e["image_id"] for e in examples}) == 5
    for example in examples:
        assert set(example) == set(EXAMPLE_KEYS)
        assert example["bmode"].shape == (48, 48, 1) and example["bmode"].dtype == np.uint8
        assert example["semode"].shape == (48, 48, 3) and readers.is_colour(example["semode"])
        assert example["mask"].shape == (48, 48, 1) and set(np.unique(example["mask"])) <= {0, 1}
        assert example["has_semode"] is True
        assert example["mask"].any() == example["has_mask"]


# --- BUSI -------------------------------------------------------------------------------------

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
