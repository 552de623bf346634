"""Single image and mask files: raster formats, masks, DICOM photometric interpretations, resizing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tf_bimodal.data import readers
from tf_bimodal.data.errors import DataError
from tfds_builder.bimodal_breast_us.make_dummy_data import write_dicom, write_image


@pytest.fixture
def rgb_image(rng):
    return rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)


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


def test_resize_mask_stays_binary_and_keeps_tiny_lesions():
    mask = np.zeros((200, 200, 1), np.uint8)
    mask[50:150, 40:120] = 1
    resized = readers.resize_mask(mask, 64)
    assert resized.shape == (64, 64, 1) and set(np.unique(resized)) == {0, 1}
    tiny = np.zeros((300, 300, 1), np.uint8)
    tiny[101, 101] = 1  # nearest-neighbour sampling at 32 px misses this pixel
    assert readers.resize_mask(tiny, 32).sum() >= 1


def test_read_image_within_shrinks_a_huge_image_and_gives_its_file_size(tmp_path, monkeypatch):
    rows, cols = np.mgrid[:3000, :2400]
    grey = ((rows // 100 + cols // 100) % 2 * 200 + 20).astype(np.uint8)
    write_image(tmp_path / "huge.png", grey)
    sixteen = (rows.astype(np.uint16) * 21)[:2500, :1200]
    write_image(tmp_path / "deep.png", sixteen)
    converted = []  # what reaches the conversion to uint8: never the whole image
    to_uint8 = readers.images._to_uint8
    monkeypatch.setattr(readers.images, "_to_uint8", lambda array, where: converted.append(array.shape) or
                        to_uint8(array, where))
    image, size = readers.read_image_within(str(tmp_path / "huge.png"), max_side=600)
    assert image.shape == (600, 480, 1) and image.dtype == np.uint8 and size == (3000, 2400)
    assert abs(float(image.mean()) - float(grey.mean())) < 2  # area averaging keeps the level
    deep, deep_size = readers.read_image_within(str(tmp_path / "deep.png"), max_side=500)
    assert deep.shape == (500, 240, 1) and deep_size == (2500, 1200) and deep.max() > 150
    assert converted == [(600, 480), (500, 240)]
    small, small_size = readers.read_image_within(str(tmp_path / "huge.png"), max_side=4000)
    assert small.shape == (3000, 2400, 1) and small_size == (3000, 2400)


@pytest.mark.parametrize("height, width, rule", [
    (1, 1, "too small: each side must be at least 32 px, the smallest input the models take"),
    (3000, 2, "too small"),
    (31, 200, "too small"),
    (40, 400, "10.0:1, more elongated than 4:1"),
    (2000, 300, "6.7:1"),
])
def test_check_proportions_refuses_tiny_and_elongated_images(height, width, rule):
    with pytest.raises(DataError, match=rule) as error:
        readers.check_proportions(height, width, "scan.png")
    assert str(error.value).startswith(f"scan.png: image {width}x{height} px")


@pytest.mark.parametrize("height, width", [(32, 32), (32, 128), (480, 640), (6000, 6000)])
def test_check_proportions_accepts_ultrasound_shapes(height, width):
    readers.check_proportions(height, width, "scan.png")
