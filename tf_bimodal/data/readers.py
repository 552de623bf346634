"""Read the user's files: images (PNG/JPEG/DICOM), dual-view screenshots, clinical folders, BUSI.

Every reader turns bad input into a :class:`~tf_bimodal.data.errors.DataError` that names the
offending file and the rule it breaks; no decoder or TensorFlow traceback reaches the user.
All file access goes through ``tf.io.gfile``, so ``manual_dir`` may be a local folder or any
filesystem TensorFlow supports.

Two sources are read here; both yield the example dicts of :mod:`tf_bimodal.schema`:

* **clinical** (:func:`iter_clinical`): B-mode + SE-mode pairs listed in a ``manifest.csv``,
  as separate files or as one scanner screenshot showing both panes side by side (paper §3.1,
  Fig. S1, split by :func:`split_dual_view`).
* **BUSI** (:func:`iter_busi`): the public B-mode-only dataset (Al-Dhabyani et al. 2020) in its
  published folder layout. BUSI has no SE image and no patient ids: its near-duplicate images
  become pseudo-patients (:func:`busi_groups`, :mod:`tf_bimodal.data.duplicates`).

All images are resized to ``image_size x image_size`` (paper §3.1: 336).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
import logging
import posixpath
import re
import struct
import time
from collections.abc import Sequence
from typing import Iterator

import cv2
import numpy as np
import tensorflow as tf

from tf_bimodal.config import BUSI_DUPLICATE_RULES
from tf_bimodal.data import duplicates
from tf_bimodal.data.errors import DataError
from tf_bimodal.schema import BINARY_LABELS

RASTER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""File endings decoded with OpenCV."""

DICOM_EXTENSIONS = (".dcm", ".dicom")
"""File endings read as DICOM; files of any other ending are DICOM too if they carry the
``DICM`` preamble at byte 128."""

MANIFEST_NAME = "manifest.csv"
BUSI_FOLDER = "Dataset_BUSI_with_GT"
BUSI_CLASSES = ("benign", "malignant", "normal")

COLOUR_CHROMA_MIN = 32
"""A pixel is coloured when max(R, G, B) - min(R, G, B) exceeds this (0-255 scale); grey
pixels, JPEG noise included, stay well below it."""

MIN_COLOUR_FRACTION = 0.002
"""An image (or dual-view pane) holds colour when at least this fraction of its pixels is
coloured: an SE-mode colour map covers far more, a grey image none."""

DARK_LEVEL = 12
"""Rows and columns whose mean grey level is below this are dark border (0-255 scale)."""

SPLIT_SEARCH_RANGE = (0.3, 0.7)
"""Where the split between the two panes of a dual view is searched, as fractions of the width."""

DUAL_VIEW_SIZE_TOLERANCE = 0.1
"""The two panes of a dual view may differ in height and width by this fraction at most."""

MAX_IMAGE_PIXELS = 64_000_000
"""Images (or DICOM frames) with more pixels than this (8000 x 8000) are refused from their
header, before they are decoded: no ultrasound image or screenshot is that large, and decoding
one would take gigabytes of memory."""

MASK_HALF_LEVEL = 0.5
"""A mask whose values are not only 0, 1 and 255 (anti-aliased edges, JPEG noise, label maps)
is binarised at this fraction of its largest value, with a warning naming the file."""

MASK_LABEL_MAX = 16
"""A mask whose largest value is at most this, with values other than 0 and 1, is a label map
(one integer per lesion): all its non-zero pixels are lesion."""

_DICOM_MAGIC_OFFSET = 128
_DICOM_MAGIC = b"DICM"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_START = b"\xff\xd8"
_JPEG_END = b"\xff\xd9"

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Single files


def _exists(path: str) -> bool:
    try:
        return tf.io.gfile.exists(path)
    except (tf.errors.OpError, OSError, ValueError):
        return False


def _extension(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _stem(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def _to_uint8(array: np.ndarray, where: str) -> np.ndarray:
    """Scale any integer or boolean pixel array to uint8 (16-bit: divide by 257)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return np.round(array.astype(np.float32) / 257.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.number):
        return _min_max_to_uint8(array)
    raise DataError(where, f"unsupported pixel type {array.dtype}")


def _min_max_to_uint8(array: np.ndarray) -> np.ndarray:
    array = array.astype(np.float64)
    low, high = float(array.min()), float(array.max())
    if high <= low:
        return np.zeros(array.shape, np.uint8)
    return np.round((array - low) * (255.0 / (high - low))).astype(np.uint8)


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == _PNG_SIGNATURE and len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the first start-of-frame marker of a JPEG stream."""
    if data[:2] != _JPEG_START:
        return None
    position = 2
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            position += 1
            continue
        marker = data[position + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            position += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return width, height
        position += 2 + length
    return None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of the first image of a TIFF file (tags 256 and 257 of its first IFD)."""
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or len(data) < 8:
        return None
    (offset,) = struct.unpack(order + "I", data[4:8])
    if offset + 2 > len(data):
        return None
    (count,) = struct.unpack(order + "H", data[offset:offset + 2])
    size = {}
    for entry in range(count):
        start = offset + 2 + 12 * entry
        if start + 12 > len(data):
            break
        tag, kind = struct.unpack(order + "HH", data[start:start + 4])
        if tag in (256, 257):
            value_format = "H" if kind == 3 else "I"
            value = data[start + 8:start + 8 + struct.calcsize(value_format)]
            (size[tag],) = struct.unpack(order + value_format, value)
    if 256 in size and 257 in size:
        return size[256], size[257]
    return None


def raster_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` read from a PNG, JPEG, BMP or TIFF header, or None if unknown."""
    for reader in (_png_size, _jpeg_size, _bmp_size, _tiff_size):
        size = reader(data)
        if size is not None:
            return size
    return None


def _check_pixel_count(width: int, height: int, path: str, frames: int = 1) -> None:
    if width * height * max(frames, 1) > MAX_IMAGE_PIXELS:
        raise DataError(
            path,
            f"image too large: {width}x{height} px{f' x {frames} frames' if frames > 1 else ''} "
            f"exceeds the limit of {MAX_IMAGE_PIXELS:,} pixels (readers.MAX_IMAGE_PIXELS); "
            "refused before decoding",
        )


def _check_complete(data: bytes, path: str) -> None:
    """Refuse PNG and JPEG files cut short: decoders fill the missing part silently."""
    if data[:8] == _PNG_SIGNATURE and _PNG_END not in data[-32:]:
        raise DataError(
            path,
            "corrupt or unreadable image: truncated PNG, the file ends before its IEND chunk (an "
            "interrupted copy or download?)",
        )
    if data[:2] == _JPEG_START and _JPEG_END not in data[-1024:]:
        raise DataError(
            path,
            "corrupt or unreadable image: truncated JPEG, the file ends before its end-of-image "
            "marker (an interrupted copy or download?)",
        )


def _decode_raster(data: bytes, path: str) -> np.ndarray:
    """Decode PNG/JPEG/BMP/TIFF bytes to uint8 (H, W, C), C in {1, 3, 4}, RGB(A) order.

    The header's size is checked against ``MAX_IMAGE_PIXELS`` and PNG/JPEG files against
    truncation before anything is decoded.
    """
    size = raster_size(data)
    if size is not None:
        _check_pixel_count(*size, path)
    _check_complete(data, path)
    try:
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as error:
        raise DataError(path, f"corrupt or unreadable image: {error}") from None
    if array is None or array.size == 0:
        raise DataError(path, "corrupt or unreadable image: the decoder could not read it")
    array = _to_uint8(array, path)
    if array.ndim == 2:
        return array[..., None]
    channels = array.shape[-1]
    if channels == 1:
        return array
    if channels == 2:  # grey + alpha
        return np.concatenate([np.repeat(array[..., :1], 3, axis=-1), array[..., 1:]], axis=-1)
    if channels == 3:
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)[..., :3]
    if channels == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA)
    raise DataError(path, f"unsupported image with {channels} channels (expected 1, 3 or 4)")


def _window(array: np.ndarray, centre: float, width: float) -> np.ndarray:
    """DICOM linear VOI window (PS3.3 C.11.2.1.2.1) onto 0..255."""
    scaled = ((array - (centre - 0.5)) / max(width - 1.0, 1.0) + 0.5) * 255.0
    return np.round(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


def _first_value(value) -> float:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0]
    return float(value)


def _dicom_to_uint8(dataset, path: str) -> np.ndarray:
    """Decoded pixels of the first frame of a DICOM dataset as uint8 (H, W, 1 or 3)."""
    from pydicom.pixels import (
        apply_color_lut,
        apply_modality_lut,
        apply_voi_lut,
        convert_color_space,
        pixel_array,
    )

    if "PixelData" not in dataset and "FloatPixelData" not in dataset:
        raise DataError(
            path,
            "DICOM file has no pixel data (a structured report, a presentation state or a "
            "header-only export?); export the image itself",
        )
    rows, columns = int(dataset.get("Rows", 0) or 0), int(dataset.get("Columns", 0) or 0)
    _check_pixel_count(columns, rows, path, frames=int(dataset.get("NumberOfFrames", 1) or 1))
    photometric = str(dataset.get("PhotometricInterpretation", "")).strip().upper()
    try:
        # Multi-frame (cine) files: the first frame is taken.
        array = pixel_array(dataset, index=0, raw=True)
    except Exception as error:  # decoders raise many types; all mean "cannot decode"
        syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise DataError(
            path, f"cannot decode DICOM pixel data (transfer syntax {syntax}): {error}"
        ) from None

    try:
        if photometric in ("MONOCHROME1", "MONOCHROME2"):
            array = _dicom_monochrome(array, dataset, apply_modality_lut, apply_voi_lut)
            if photometric == "MONOCHROME1":  # 0 = white in MONOCHROME1
                array = 255 - array
            return array[..., None]
        if photometric == "RGB":
            return _to_uint8_colour(array, dataset, path)
        if photometric in ("YBR_FULL", "YBR_FULL_422"):
            array = convert_color_space(array, photometric, "RGB")
            return _to_uint8_colour(array, dataset, path)
        if photometric == "PALETTE COLOR":
            return _to_uint8_colour(apply_color_lut(array, dataset), dataset, path, bits=16)
    except DataError:
        raise
    except Exception as error:
        raise DataError(path, f"cannot convert DICOM {photometric} pixels: {error}") from None
    raise DataError(
        path,
        f"unsupported DICOM photometric interpretation {photometric!r} "
        "(supported: MONOCHROME1, MONOCHROME2, RGB, YBR_FULL, YBR_FULL_422, PALETTE COLOR)",
    )


def _dicom_monochrome(array, dataset, apply_modality_lut, apply_voi_lut) -> np.ndarray:
    """Rescale and window a grey DICOM image only where that is sensible, then map to uint8.

    The modality LUT (rescale slope/intercept) is applied when it is not the identity. A VOI
    window is applied when one is given and it overlaps the data; otherwise 8-bit data are
    kept as they are and deeper data are min-max scaled to 0..255.
    """
    slope = float(dataset.get("RescaleSlope", 1) or 1)
    intercept = float(dataset.get("RescaleIntercept", 0) or 0)
    if "ModalityLUTSequence" in dataset or slope != 1 or intercept != 0:
        array = apply_modality_lut(array, dataset)
    if "VOILUTSequence" in dataset:
        return _min_max_to_uint8(apply_voi_lut(array, dataset))
    if "WindowCenter" in dataset and "WindowWidth" in dataset:
        centre = _first_value(dataset.WindowCenter)
        width = _first_value(dataset.WindowWidth)
        low, high = float(array.min()), float(array.max())
        if width >= 1 and centre + width / 2 > low and centre - width / 2 < high:
            return _window(array.astype(np.float64), centre, width)
    if array.dtype == np.uint8:
        return array
    bits_stored = int(dataset.get("BitsStored", 16) or 16)
    if bits_stored <= 8 and array.min() >= 0 and array.max() <= 255:
        return array.astype(np.uint8)
    return _min_max_to_uint8(array)


def _to_uint8_colour(array: np.ndarray, dataset, path: str, bits: int | None = None) -> np.ndarray:
    if array.ndim != 3 or array.shape[-1] != 3:
        raise DataError(path, f"expected 3 colour samples per pixel, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    bits = bits or int(dataset.get("BitsStored", 8) or 8)
    if bits <= 8 and array.max() <= 255:
        return array.astype(np.uint8)
    scaled = np.round(array.astype(np.float64) * (255.0 / (2**bits - 1)))
    return scaled.clip(0, 255).astype(np.uint8)


def _read_dicom(file, path: str, force: bool) -> np.ndarray:
    import pydicom

    try:
        dataset = pydicom.dcmread(file, force=force)
    except Exception as error:  # pydicom raises many types on garbage; all mean "corrupt"
        raise DataError(path, f"corrupt or unreadable DICOM file: {error}") from None
    return _dicom_to_uint8(dataset, path)


def _load(path: str) -> np.ndarray:
    """Read any supported image as uint8 (H, W, C), alpha kept (C in {1, 3, 4})."""
    path = str(path)
    if not _exists(path):
        raise DataError(path, "file not found")
    extension = _extension(path)
    try:
        if tf.io.gfile.stat(path).length == 0:
            raise DataError(path, "empty file (0 bytes): an interrupted copy or export?")
        with tf.io.gfile.GFile(path, "rb") as file:
            head = file.read(_DICOM_MAGIC_OFFSET + len(_DICOM_MAGIC))
            has_preamble = head[_DICOM_MAGIC_OFFSET:] == _DICOM_MAGIC
            if extension in DICOM_EXTENSIONS or has_preamble:
                file.seek(0)
                return _read_dicom(file, path, force=not has_preamble)
            if extension not in RASTER_EXTENSIONS:
                raise DataError(
                    path,
                    f"unknown image format {extension or '(no extension)'!r}: expected "
                    f"{', '.join(RASTER_EXTENSIONS)} or DICOM (.dcm, or the DICM preamble)",
                )
            data = head + file.read()
    except tf.errors.OpError as error:
        raise DataError(path, f"cannot read file: {error.message}") from None
    if not data:
        raise DataError(path, "corrupt or unreadable image: the file is empty")
    return _decode_raster(data, path)


def read_image(path) -> np.ndarray:
    """Read a PNG, JPEG, BMP, TIFF or DICOM image as uint8 ``(H, W, C)``, ``C`` in {1, 3}.

    Raster files are decoded by OpenCV (``IMREAD_UNCHANGED``): colour comes back as RGB, an
    alpha channel is dropped, 16-bit images are scaled to 8 bits, palette and 1-bit PNGs are
    expanded. DICOM files (``.dcm``/``.dicom``, or any file with the ``DICM`` preamble) are read
    with pydicom: MONOCHROME2 as is, MONOCHROME1 inverted, RGB as is, YBR_FULL(_422) converted
    to RGB, PALETTE COLOR through its LUT; the rescale and the VOI window are applied only where
    they are given and fit the data; a multi-frame (cine) file gives its **first frame**; data
    deeper than 8 bits are scaled to uint8.

    Args:
        path: file path (any ``tf.io.gfile`` filesystem).

    Returns:
        uint8 array ``(H, W, 1)`` for grey or ``(H, W, 3)`` RGB.

    Raises:
        DataError: missing, unreadable or corrupt file, or an unknown extension.
    """
    image = _load(path)
    if image.shape[-1] == 4:
        image = np.ascontiguousarray(image[..., :3])
    return image


def read_mask(path) -> np.ndarray:
    """Read a lesion mask as uint8 ``(H, W, 1)`` with values in {0, 1}.

    The mask's level is the largest colour channel, so 1-bit, grey, RGB and RGBA masks all
    work. How it is binarised depends on the values found:

    * only 0, 1 and 255 (a binary mask, 0/1 or 0/255): every non-zero pixel is lesion;
    * other values up to ``MASK_LABEL_MAX`` (a label map, one integer per lesion): every
      non-zero pixel is lesion (the lesions' union), with a warning naming the file;
    * other values (grey levels: anti-aliased edges, JPEG noise): pixels at or above half the
      largest value (``MASK_HALF_LEVEL``) are lesion, with a warning naming the file and the
      share of pixels that were neither 0 nor the maximum.

    The alpha channel is ignored unless it is the only content (all colour channels 0 while
    alpha varies): then alpha > 0 marks the lesion.

    Raises:
        DataError: the file cannot be read (see :func:`read_image`).
    """
    raw = _load(path)
    colour = raw[..., :3] if raw.shape[-1] == 4 else raw
    level = colour.max(axis=-1)
    if raw.shape[-1] == 4 and not level.any():
        alpha = raw[..., 3]
        if alpha.min() != alpha.max():
            level = alpha
    values = np.unique(level)
    if set(values.tolist()) <= {0, 1, 255}:
        return (level > 0).astype(np.uint8)[..., None]
    top = int(values[-1])
    if top <= MASK_LABEL_MAX:
        logger.warning(
            "%s: mask values %s are not 0/1/255; read as a label map, every non-zero pixel is "
            "lesion", path, values.tolist(),
        )
        return (level > 0).astype(np.uint8)[..., None]
    between = float(np.mean((level > 0) & (level < top)))
    logger.warning(
        "%s: mask has grey values other than 0/1/255 (%.1f %% of pixels between 0 and %d, e.g. "
        "anti-aliasing or JPEG noise); binarised at %d (half the largest value)",
        path, 100 * between, top, int(np.ceil(top * MASK_HALF_LEVEL)),
    )
    return (level >= top * MASK_HALF_LEVEL).astype(np.uint8)[..., None]


# --------------------------------------------------------------------------------------------
# Image helpers


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W, 1)``: a grey image as is, an RGB image through ``cv2.COLOR_RGB2GRAY``."""
    if image.shape[-1] == 1:
        return image
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)[..., None]


def _chroma(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.int16)
    return image.max(axis=-1) - image.min(axis=-1)


def colour_fraction(image: np.ndarray) -> float:
    """Fraction of pixels whose chroma (max - min over R, G, B) exceeds ``COLOUR_CHROMA_MIN``.

    This is the saturation measure used to tell a colour SE-mode image from a grey one; it is
    robust to dark pixels (unlike HSV saturation) and to JPEG noise. Grey images give 0.
    """
    if image.ndim != 3 or image.shape[-1] < 3 or image.size == 0:
        return 0.0
    return float((_chroma(image[..., :3]) > COLOUR_CHROMA_MIN).mean())


def is_colour(image: np.ndarray) -> bool:
    """True when at least ``MIN_COLOUR_FRACTION`` of the pixels are coloured."""
    return colour_fraction(image) >= MIN_COLOUR_FRACTION


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size x size``: ``INTER_AREA`` when shrinking, ``INTER_LINEAR`` when growing."""
    height, width, channels = image.shape
    shrink = height >= size and width >= size
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    resized = cv2.resize(image, (size, size), interpolation=interpolation)
    return resized.reshape(size, size, channels)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Resize a {0, 1} mask to ``size x size`` with ``INTER_NEAREST``; the result stays binary.

    A lesion so small that nearest-neighbour sampling misses it entirely is kept by falling
    back to area interpolation thresholded at > 0.
    """
    binary = (mask[..., 0] > 0).astype(np.uint8)
    resized = cv2.resize(binary, (size, size), interpolation=cv2.INTER_NEAREST)
    if binary.any() and not resized.any():
        area = cv2.resize(binary.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
        resized = (area > 0).astype(np.uint8)
    return (resized > 0).astype(np.uint8)[..., None]


# --------------------------------------------------------------------------------------------
# Dual-view screenshots (paper Fig. S1)

Box = tuple[int, int, int, int]


def _content_range(profile: np.ndarray) -> tuple[int, int]:
    """First and one-past-last index whose mean level is not dark."""
    bright = np.flatnonzero(profile >= DARK_LEVEL)
    if bright.size == 0:
        return 0, 0
    return int(bright[0]), int(bright[-1]) + 1


def _trim_dark_border(grey: np.ndarray, x_offset: int) -> Box:
    rows = grey.mean(axis=1)
    cols = grey.mean(axis=0)
    y0, y1 = _content_range(rows)
    x0, x1 = _content_range(cols)
    return (x0 + x_offset, y0, x1 + x_offset, y1)


def _find_split_column(grey: np.ndarray) -> int:
    """The darkest (lowest-content) column in the central band of the width."""
    width = grey.shape[1]
    profile = grey.mean(axis=0)
    window = max(3, width // 100)
    smooth = np.convolve(profile, np.ones(window) / window, mode="same")
    start = int(width * SPLIT_SEARCH_RANGE[0])
    stop = max(start + 1, int(np.ceil(width * SPLIT_SEARCH_RANGE[1])))
    band = smooth[start:stop]
    darkest = np.flatnonzero(band <= band.min() + 1e-6)
    # A dark gap several columns wide: split in its middle.
    return start + int(darkest[len(darkest) // 2])


def find_dual_view_boxes(image: np.ndarray, where: str = "dual view image") -> tuple[Box, Box]:
    """Locate the B-mode and SE-mode panes of a side-by-side scanner screenshot (Fig. S1).

    Rule: the split column is the darkest vertical band (mean grey level, smoothed over about
    1 % of the width) within the central 30-70 % of the width. Of the two halves, the SE-mode
    pane is the one holding colour (the larger :func:`colour_fraction`); at least
    ``MIN_COLOUR_FRACTION`` of its pixels must be coloured. Each pane is then trimmed of its
    dark border rows and columns (mean level below ``DARK_LEVEL``). Text, scale bars or a
    colour legend beside the panes are not removed: give explicit boxes for such screens.

    Args:
        image: uint8 ``(H, W, 3)`` RGB screenshot.
        where: name used in error messages (the file).

    Returns:
        ``(bmode_box, semode_box)``, each ``(x0, y0, x1, y1)`` in pixels, end exclusive.

    Raises:
        DataError: grey screenshot (no colour SE pane), or a pane that is all dark.
    """
    if image.ndim != 3 or image.shape[-1] != 3:
        raise DataError(
            where, "grey dual view: no colour SE pane found (image has no colour channels)"
        )
    height, width = image.shape[:2]
    if width < 8 or height < 4:
        raise DataError(where, f"dual view image too small to split ({width}x{height})")
    grey = to_grey(image)[..., 0].astype(np.float32)
    split = _find_split_column(grey)
    halves = ((0, split), (split, width))
    fractions = [colour_fraction(image[:, x0:x1]) for x0, x1 in halves]
    if max(fractions) < MIN_COLOUR_FRACTION:
        raise DataError(where, "grey dual view: no colour SE pane found")
    se_index = int(np.argmax(fractions))
    boxes = []
    for x0, x1 in halves:
        box = _trim_dark_border(grey[:, x0:x1], x_offset=x0)
        if box[2] <= box[0] or box[3] <= box[1]:
            raise DataError(where, f"dual view pane at columns {x0}-{x1} is all dark")
        boxes.append(box)
    return boxes[1 - se_index], boxes[se_index]


def _check_box(box, image_shape, where: str, name: str) -> Box:
    height, width = image_shape[:2]
    try:
        x0, y0, x1, y1 = (int(v) for v in box)
    except (TypeError, ValueError):
        raise DataError(
            where, f"{name} box must be four integers (x0, y0, x1, y1), got {box!r}"
        ) from None
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise DataError(
            where,
            f"{name} box {(x0, y0, x1, y1)} is empty or outside the image ({width}x{height}); "
            "need 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height",
        )
    return x0, y0, x1, y1


def _crop(image: np.ndarray, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def split_dual_view(image: np.ndarray, boxes=None, where: str = "dual view image"):
    """Cut a dual-view scanner screenshot into its B-mode and SE-mode panes (paper Fig. S1).

    With ``boxes`` (two ``(x0, y0, x1, y1)`` boxes, B-mode first, end exclusive) the panes are
    simply cropped. Without, they are detected by :func:`find_dual_view_boxes`: the SE pane is
    the one with colour, the split is the darkest vertical band in the central 30-70 % of the
    width, and each pane is trimmed of its dark border.

    Args:
        image: uint8 ``(H, W, C)`` screenshot (``C`` = 3 for detection).
        boxes: optional ``((x0, y0, x1, y1), (x0, y0, x1, y1))``, B-mode pane first.
        where: name used in error messages (the file).

    Returns:
        ``(bmode, semode)`` crops of ``image`` (same channels as ``image``).

    Raises:
        DataError: ``"grey dual view: no colour SE pane found"``, or bad boxes.
    """
    bmode_box, semode_box = _dual_view_boxes(image, boxes, where)
    return _crop(image, bmode_box), _crop(image, semode_box)


def _dual_view_boxes(image: np.ndarray, boxes, where: str) -> tuple[Box, Box]:
    if boxes is None:
        return find_dual_view_boxes(image, where)
    if len(boxes) != 2:
        raise DataError(where, f"dual view needs two boxes (B-mode, SE-mode), got {len(boxes)}")
    return (
        _check_box(boxes[0], image.shape, where, "B-mode"),
        _check_box(boxes[1], image.shape, where, "SE-mode"),
    )


def parse_boxes(text: str) -> tuple[Box, Box]:
    """Parse ``"x0 y0 x1 y1;x0 y0 x1 y1"`` (B-mode box first) into two integer boxes.

    Raises:
        ValueError: not two boxes of four integers each.
    """
    parts = [part.strip() for part in text.split(";")]
    if len(parts) != 2:
        raise ValueError("expected two boxes separated by ';'")
    boxes = []
    for part in parts:
        values = part.replace(",", " ").split()
        if len(values) != 4:
            raise ValueError(f"expected four integers per box, got {part!r}")
        x0, y0, x1, y1 = (int(value) for value in values)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"box {part!r} is empty: need x0 < x1 and y0 < y1")
        boxes.append((x0, y0, x1, y1))
    return boxes[0], boxes[1]


# --------------------------------------------------------------------------------------------
# Clinical folder with manifest.csv (paper §3.1)


@dataclasses.dataclass(frozen=True)
class ClinicalRecord:
    """One validated manifest row: a B/SE pair of one patient.

    Attributes:
        patient_id: the patient (unit of every split, paper §3.1).
        label: ``benign`` or ``malignant`` (biopsy result).
        row: line number in ``manifest.csv`` (the header is line 1).
        bmode: path of the B-mode image, or None for a dual-view row.
        semode: path of the SE-mode image, or None for a dual-view row.
        dual_view: path of a side-by-side screenshot, or None.
        dual_view_boxes: explicit ``(bmode_box, semode_box)`` for ``dual_view``, or None to
            detect the panes.
        mask: path of the lesion mask (drawn on the B-mode image), or None.
    """

    patient_id: str
    label: str
    row: int
    bmode: str | None = None
    semode: str | None = None
    dual_view: str | None = None
    dual_view_boxes: tuple[Box, Box] | None = None
    mask: str | None = None


def _join(root: str, relative: str) -> str:
    if relative.startswith("/") or "://" in relative:
        return relative
    return tf.io.gfile.join(root, relative)


def _read_text(path: str) -> str:
    try:
        with tf.io.gfile.GFile(path, "rb") as file:
            data = file.read()
    except tf.errors.OpError as error:
        raise DataError(path, f"cannot read file: {error.message}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(path, f"not UTF-8 text: {error}") from None


def read_manifest(manual_dir) -> list[ClinicalRecord]:
    """Read and validate ``manual_dir/manifest.csv`` before any image is decoded.

    Columns (header names, any order; extra columns are ignored):

    * ``patient_id`` (required): one id per patient; all rows of a patient carry one label.
    * ``label`` (required): ``benign`` or ``malignant`` (the biopsy result, paper §3.1).
    * ``bmode`` and ``semode``: paths of the two images of a pair, **or**
    * ``dual_view``: path of one screenshot with both panes side by side (Fig. S1), with an
      optional ``dual_view_boxes`` ``"x0 y0 x1 y1;x0 y0 x1 y1"`` (B-mode first) to skip
      detection.
    * ``mask`` (optional): lesion mask drawn on the B-mode image (for a dual view: of the
      B-mode pane's size or of the whole screenshot's).

    Paths are relative to ``manual_dir`` and stay inside it (``/`` or ``\\`` separators);
    absolute paths and paths that climb out of the folder are refused, so that the folder holds
    the whole data set. The manifest may be saved with a byte-order mark and CRLF line ends.

    Args:
        manual_dir: folder holding ``manifest.csv`` and the images.

    Returns:
        One :class:`ClinicalRecord` per data row, in file order.

    Raises:
        DataError: naming ``manifest.csv``, the row and the column: missing manifest, empty
            manifest, a manifest separated by semicolons or tabs, missing required column, row
            with neither or both image forms, an absolute path or one leaving the folder, empty
            patient id, unknown label, one patient with two labels, malformed boxes, missing
            file, or an image (or mask) listed twice.
    """
    manual_dir = str(manual_dir)
    path = _join(manual_dir, MANIFEST_NAME)
    if not _exists(path):
        raise DataError(path, f"{MANIFEST_NAME} not found in {manual_dir}")
    reader = csv.DictReader(io.StringIO(_read_text(path)))
    header = [name.strip().lower() for name in (reader.fieldnames or []) if name is not None]
    if not header:
        raise DataError(path, "empty manifest: no header and no rows")
    reader.fieldnames = header
    _check_header(header, path)

    checker = _ManifestChecker(manual_dir, path)
    records = []
    for values in reader:
        cells = {key: (value or "").strip() for key, value in values.items() if key is not None}
        if any(cells.values()):  # skip blank lines
            records.append(checker.record(cells, row=reader.line_num))
    if not records:
        raise DataError(path, "empty manifest: no data rows")
    return records


def _check_header(header: list[str], path: str) -> None:
    listed = ", ".join(header)
    if len(header) == 1:
        for separator, name in ((";", "semicolons"), ("\t", "tabs")):
            if separator in header[0]:
                raise DataError(
                    path,
                    f"the header is one column separated by {name} ({header[0]!r}): save "
                    "manifest.csv comma-separated (CSV UTF-8)",
                )
    for required in ("patient_id", "label"):
        if required not in header:
            raise DataError(path, f"missing required column {required!r} (header: {listed})")
    if not ("bmode" in header and "semode" in header) and "dual_view" not in header:
        raise DataError(
            path,
            "missing required column: need 'bmode' and 'semode', or 'dual_view' "
            f"(header: {listed})",
        )


_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def _inside_folder(relative: str, fail, column: str) -> str:
    """The manifest path ``relative`` with ``/`` separators; refuses paths outside the folder.

    Every file of a clinical data set lives under ``manual_dir``, so that a copy of the folder
    is a complete copy and its fingerprint covers every file. Absolute paths (``/data/x.png``,
    ``C:\\x.png``, URLs) and relative paths that climb out (``../other/x.png``) are refused;
    Windows separators (``P001\\b1.png``) are accepted; a symbolic link inside the folder may
    point anywhere.
    """
    path = relative.replace("\\", "/")
    if path.startswith("/") or "://" in path or _WINDOWS_DRIVE.match(path):
        fail(column, f"absolute path {relative!r}: paths must be relative to the folder holding "
                     "manifest.csv (link or copy the file into it)")
    normalised = posixpath.normpath(path)
    if normalised == ".." or normalised.startswith("../"):
        fail(column, f"path {relative!r} leaves the folder holding manifest.csv: every file must be "
                     "inside it (link or copy the file into it)")
    return normalised


class _ManifestChecker:
    """Turns manifest rows into records, remembering what earlier rows said."""

    def __init__(self, manual_dir: str, path: str):
        self.manual_dir = manual_dir
        self.path = path
        self.label_of_patient: dict[str, tuple[str, int]] = {}
        self.seen_images: dict[str, tuple[int, str]] = {}
        self.seen_masks: dict[str, tuple[int, str]] = {}

    def record(self, cells: dict[str, str], row: int) -> ClinicalRecord:
        def fail(column, rule):
            raise DataError(self.path, f"row {row}, column {column}: {rule}")

        patient_id = cells.get("patient_id", "")
        if not patient_id:
            fail("patient_id", "empty patient id")
        label = cells.get("label", "").lower()
        if label not in BINARY_LABELS:
            expected = ", ".join(BINARY_LABELS)
            fail("label", f"unknown label {cells.get('label', '')!r}; expected one of {expected}")
        first_label, first_row = self.label_of_patient.setdefault(patient_id, (label, row))
        if first_label != label:
            fail(
                "label",
                f"patient {patient_id!r} has two labels: {label!r} here but {first_label!r} in "
                f"row {first_row} (one patient has one biopsy result)",
            )

        bmode, semode = cells.get("bmode", ""), cells.get("semode", "")
        dual = cells.get("dual_view", "")
        if dual and (bmode or semode):
            fail("dual_view", "give either bmode and semode, or dual_view, not both")
        if not dual and not bmode:
            fail("bmode", "missing B-mode image (or give dual_view)")
        if not dual and not semode:
            fail("semode", "missing SE-mode image (or give dual_view)")
        boxes = None
        if cells.get("dual_view_boxes", ""):
            if not dual:
                fail("dual_view_boxes", "boxes given without a dual_view image")
            try:
                boxes = parse_boxes(cells["dual_view_boxes"])
            except ValueError as error:
                expected = "expected 'x0 y0 x1 y1;x0 y0 x1 y1' (B-mode first)"
                fail("dual_view_boxes", f"{error}; {expected}")

        mask = cells.get("mask", "")
        columns = {"bmode": bmode, "semode": semode, "dual_view": dual, "mask": mask}
        resolved = {}
        for column, relative in columns.items():
            if relative:
                relative = _inside_folder(relative, fail, column)
                full = _join(self.manual_dir, relative)
                if not _exists(full):
                    fail(column, f"file not found: {relative}")
                previous = self._previous_use(full, row, column)
                if previous:
                    kind = "mask" if column == "mask" else "image"
                    fail(column, f"duplicate {kind}: {relative} already listed in {previous}")
                resolved[column] = full
        return ClinicalRecord(
            patient_id=patient_id,
            label=label,
            row=row,
            bmode=resolved.get("bmode"),
            semode=resolved.get("semode"),
            dual_view=resolved.get("dual_view"),
            dual_view_boxes=boxes,
            mask=resolved.get("mask"),
        )

    def _previous_use(self, full: str, row: int, column: str) -> str | None:
        """Where this file was listed before ("row 2, column bmode"), or None; remembers it.

        Images and masks are counted apart: an image may not appear twice in any image column,
        and a mask may not belong to two rows.
        """
        key = full.replace("\\", "/")
        seen = self.seen_masks if column == "mask" else self.seen_images
        if key in seen:
            first_row, first_column = seen[key]
            return f"row {first_row}, column {first_column}"
        seen[key] = (row, column)
        return None

def _size_text(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


def _sizes_close(first: np.ndarray, second: np.ndarray, tolerance: float) -> bool:
    return all(
        abs(a - b) <= tolerance * max(a, b) for a, b in zip(first.shape[:2], second.shape[:2])
    )


def load_clinical_pair(record: ClinicalRecord) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read and check one manifest row at full resolution.

    Returns:
        ``(bmode (H, W, 1), semode (H, W, 3), mask (H, W, 1) in {0, 1} or None)``.

    Raises:
        DataError naming the file: B and SE of different sizes (separate files must match
        exactly; the panes of a dual view within ``DUAL_VIEW_SIZE_TOLERANCE``), a grey SE
        image, a mask of another size than the B-mode image, or an empty mask.
    """
    bmode_box = None
    if record.dual_view:
        screenshot = read_image(record.dual_view)
        bmode_box, semode_box = _dual_view_boxes(
            screenshot, record.dual_view_boxes, record.dual_view
        )
        bmode, semode = _crop(screenshot, bmode_box), _crop(screenshot, semode_box)
        se_where = f"{record.dual_view} (SE-mode pane)"
        if not _sizes_close(bmode, semode, DUAL_VIEW_SIZE_TOLERANCE):
            raise DataError(
                record.dual_view,
                f"B-mode and SE-mode panes differ in size ({_size_text(bmode)} vs "
                f"{_size_text(semode)}) after splitting; give dual_view_boxes",
            )
    else:
        bmode, semode = read_image(record.bmode), read_image(record.semode)
        se_where = record.semode
        if bmode.shape[:2] != semode.shape[:2]:
            raise DataError(
                record.semode,
                f"B-mode and SE-mode images differ in size: {_size_text(bmode)} "
                f"({_stem(record.bmode)}) vs {_size_text(semode)}; a pair shows one field of view",
            )
    if semode.shape[-1] != 3 or not is_colour(semode):
        raise DataError(
            se_where,
            "grey SE-mode image where colour is expected: the strain map must be a colour "
            "(RGB) image (paper §3.1)",
        )
    bmode = to_grey(bmode)

    mask = None
    if record.mask:
        mask = read_mask(record.mask)
        if bmode_box is not None and mask.shape[:2] == screenshot.shape[:2] != bmode.shape[:2]:
            mask = _crop(mask, bmode_box)  # mask drawn on the whole screenshot
        if mask.shape[:2] != bmode.shape[:2]:
            raise DataError(
                record.mask,
                f"mask size {_size_text(mask)} differs from the B-mode image {_size_text(bmode)}",
            )
        if not mask.any():
            raise DataError(
                record.mask,
                f"empty mask: a {record.label} image needs a lesion, but all mask pixels are 0",
            )
    return bmode, semode, mask


def clinical_image_id(record: ClinicalRecord) -> str:
    """``<stem of the B-mode or dual-view file>_row<N>``: unique within one manifest."""
    return f"{_stem(record.bmode or record.dual_view)}_row{record.row}"


def iter_clinical(
    manual_dir, image_size: int, records: list[ClinicalRecord] | None = None
) -> Iterator[dict]:
    """Yield the clinical B/SE pairs of ``manual_dir`` as schema dicts (paper §3.1).

    The manifest is validated first (:func:`read_manifest`); each pair is then checked
    (:func:`load_clinical_pair`) and resized to ``image_size x image_size`` (images with area
    or linear interpolation, masks nearest-neighbour and kept binary).

    Args:
        manual_dir: folder with ``manifest.csv``.
        image_size: output side in pixels (paper: 336).
        records: already validated manifest rows (read from ``manual_dir`` when None).

    Yields:
        Dicts with the keys of ``schema.EXAMPLE_KEYS``: ``image_id`` from the file stem and
        row, ``patient_id`` from the manifest, ``has_semode`` True, ``has_mask`` per row.

    Raises:
        DataError: naming the file and the rule (see :func:`read_manifest`,
            :func:`load_clinical_pair`).
    """
    if records is None:
        records = read_manifest(manual_dir)
    for record in records:
        bmode, semode, mask = load_clinical_pair(record)
        yield {
            "image_id": clinical_image_id(record),
            "patient_id": record.patient_id,
            "label": record.label,
            "bmode": resize_image(bmode, image_size),
            "semode": resize_image(semode, image_size),
            "mask": (
                resize_mask(mask, image_size)
                if mask is not None
                else np.zeros((image_size, image_size, 1), np.uint8)
            ),
            "has_semode": True,
            "has_mask": mask is not None,
        }


# --------------------------------------------------------------------------------------------
# BUSI (Al-Dhabyani et al. 2020)

_BUSI_IMAGE = re.compile(r"^(benign|malignant|normal) \((\d+)\)\.png$", re.IGNORECASE)
_BUSI_MASK = re.compile(
    r"^((?:benign|malignant|normal) \(\d+\))_mask(?:_\d+)?\.png$", re.IGNORECASE
)


def find_busi_root(manual_dir) -> str:
    """The ``Dataset_BUSI_with_GT`` folder: inside ``manual_dir`` or ``manual_dir`` itself.

    Raises:
        DataError: neither holds a ``benign``, ``malignant`` or ``normal`` folder.
    """
    manual_dir = str(manual_dir).rstrip("/")
    for candidate in (_join(manual_dir, BUSI_FOLDER), manual_dir):
        if any(tf.io.gfile.isdir(_join(candidate, name)) for name in BUSI_CLASSES):
            return candidate
    raise DataError(
        manual_dir,
        f"BUSI layout not found: expected {BUSI_FOLDER}/<benign|malignant|normal>/"
        "'<class> (N).png' with '<class> (N)_mask.png' beside each image",
    )


def busi_listing(folder: str) -> list[tuple[int, str, list[str]]]:
    """``(N, image name, mask names)`` per image of one class folder, sorted by N."""
    names = sorted(name.rstrip("/") for name in tf.io.gfile.listdir(folder))
    images, masks = {}, {}
    for name in names:
        image_match = _BUSI_IMAGE.match(name)
        if image_match:
            images[name[: -len(".png")]] = (int(image_match.group(2)), name)
            continue
        mask_match = _BUSI_MASK.match(name)
        if mask_match:
            masks.setdefault(mask_match.group(1), []).append(name)
    return sorted((number, name, masks.get(stem, [])) for stem, (number, name) in images.items())


@dataclasses.dataclass(frozen=True)
class BusiImage:
    """One BUSI image file and its masks (:func:`busi_images`)."""

    image_id: str
    label: str
    number: int
    folder: str
    image_name: str
    mask_names: tuple[str, ...]

    @property
    def path(self) -> str:
        return _join(self.folder, self.image_name)

    @property
    def file_name(self) -> str:
        """``<class>/<class> (N).png``, as named in warnings."""
        return f"{self.label}/{self.image_name}"


def busi_images(manual_dir) -> list[BusiImage]:
    """Every BUSI image of ``manual_dir`` (see :func:`iter_busi`), class by class, by number.

    Raises:
        DataError: the layout is not found, or holds no image.
    """
    root = find_busi_root(manual_dir)
    images = []
    for label in BUSI_CLASSES:
        folder = _join(root, label)
        if not tf.io.gfile.isdir(folder):
            continue
        for number, image_name, mask_names in busi_listing(folder):
            images.append(BusiImage(f"busi_{label}_{number}", label, number, folder, image_name, tuple(mask_names)))
    if not images:
        raise DataError(root, "no BUSI images found ('<class> (N).png' in the class folders)")
    return images


@dataclasses.dataclass(frozen=True)
class BusiGroups:
    """BUSI's pseudo-patients: near-duplicate images grouped (:func:`busi_groups`).

    Attributes:
        rule: ``DataConfig.busi_duplicates`` (``drop_conflicts``, ``group`` or ``none``).
        patient_ids: image id -> patient id of every image kept: ``busi_group_<class>_<N>``
            for a group (``<class> (N)`` its first image, in class order and by number), the
            image id itself for an image that has no near-duplicate.
        groups: the image ids of each near-duplicate group (two or more images).
        conflicts: the groups whose images carry more than one label.
        dropped: image ids left out (``drop_conflicts``: every image of a conflicting group).
        file_names: image id -> ``<class>/<class> (N).png``.
    """

    rule: str
    patient_ids: dict[str, str]
    groups: tuple[tuple[str, ...], ...]
    conflicts: tuple[tuple[str, ...], ...]
    dropped: tuple[str, ...]
    file_names: dict[str, str]

    def summary(self) -> dict:
        """JSON-ready counts, stored with the prepared data (``metadata.json``) and in the data
        summary: ``rule``, ``searched``, ``images``, ``groups``, ``grouped_images``,
        ``group_sizes`` (``{"2": count, ...}``), ``conflicts`` (count),
        ``conflict_files`` (file names per conflicting group), ``dropped_images``."""
        sizes = collections.Counter(len(group) for group in self.groups)
        return {
            "rule": self.rule,
            "searched": self.rule != "none",
            "images": len(self.file_names),
            "groups": len(self.groups),
            "grouped_images": sum(len(group) for group in self.groups),
            "group_sizes": {str(size): sizes[size] for size in sorted(sizes)},
            "conflicts": len(self.conflicts),
            "conflict_files": [[self.file_names[image_id] for image_id in group] for group in self.conflicts],
            "dropped_images": len(self.dropped),
        }


def describe_busi_groups(summary: dict) -> str:
    """One line of :meth:`BusiGroups.summary`, e.g. ``366 images, 53 near-duplicate groups
    (118 images, sizes 2-4), 5 label conflicts: 12 images left out (rule drop_conflicts)``."""
    if not summary.get("searched"):
        return f"{summary['images']} images, near-duplicates not searched (rule none: each image its own patient)"
    sizes = [int(size) for size in summary["group_sizes"]]
    size_text = f", sizes {min(sizes)}-{max(sizes)}" if sizes and min(sizes) != max(sizes) else ""
    groups = "group" if summary["groups"] == 1 else "groups"
    conflicts = "conflict" if summary["conflicts"] == 1 else "conflicts"
    line = (f"{summary['images']} images, {summary['groups']} near-duplicate {groups} "
            f"({summary['grouped_images']} images{size_text}), {summary['conflicts']} label {conflicts}")
    if summary["conflicts"]:
        line += (f": {summary['dropped_images']} images left out" if summary["dropped_images"]
                 else ": kept, one pseudo-patient each")
    return f"{line} (rule {summary['rule']})"


def _busi_order(image: BusiImage) -> tuple[int, int]:
    return BUSI_CLASSES.index(image.label), image.number


def _busi_group_id(group: Sequence[BusiImage]) -> str:
    return "busi_group_" + min(group, key=_busi_order).image_id[len("busi_"):]


def busi_groups(manual_dir, rule: str = "drop_conflicts", images: Sequence[BusiImage] | None = None) -> BusiGroups:
    """Group BUSI's near-duplicate images into pseudo-patients (``DataConfig.busi_duplicates``).

    Every image is read once (grey, native size) and compared with all others
    (:func:`tf_bimodal.data.duplicates.find_duplicate_groups`); each group of near-duplicates
    becomes one patient. The ids depend only on the files' names and pixels, not on the order
    in which the folder lists them. A group whose images carry different labels (the same
    scan filed as benign and as malignant, or as benign and as normal) is a label conflict,
    logged as a warning naming the files. Rules:

    * ``drop_conflicts`` (default): the images of a conflicting group are left out. Their
      true label is unknown, they would teach contradicting targets (a lesion and no lesion,
      benign and malignant) and the patient vote (§4.2) refuses a patient with two labels.
    * ``group``: they are kept as one pseudo-patient, each image with its own label (for
      segmentation studies; benign-vs-malignant evaluation will refuse that patient).
    * ``none``: no search, every image is its own patient (BUSI read as published).

    Args:
        manual_dir: the BUSI folder (see :func:`iter_busi`).
        rule: one of ``tf_bimodal.config.BUSI_DUPLICATE_RULES``.
        images: :func:`busi_images` of ``manual_dir``, if already listed.

    Raises:
        ValueError: an unknown ``rule``.
        DataError: layout not found, or an unreadable image.
    """
    if rule not in BUSI_DUPLICATE_RULES:
        raise ValueError(f"busi_duplicates must be one of {BUSI_DUPLICATE_RULES}, got {rule!r}")
    images = list(images) if images is not None else busi_images(manual_dir)
    file_names = {image.image_id: image.file_name for image in images}
    patient_ids = {image.image_id: image.image_id for image in images}
    if rule == "none":
        return BusiGroups(rule, patient_ids, (), (), (), file_names)
    started = time.time()
    greys = [to_grey(read_image(image.path)) for image in images]
    found = duplicates.find_duplicate_groups(greys, names=[image.path for image in images])
    groups, conflicts, dropped = [], [], []
    found = sorted((sorted((images[index] for index in indices), key=_busi_order) for indices in found),
                   key=lambda members: _busi_order(members[0]))
    for members in found:
        group_id = _busi_group_id(members)
        ids = tuple(image.image_id for image in members)
        groups.append(ids)
        for image in members:
            patient_ids[image.image_id] = group_id
        if len({image.label for image in members}) > 1:
            conflicts.append(ids)
            names = ", ".join(image.file_name for image in members)
            if rule == "drop_conflicts":
                dropped.extend(ids)
                for image_id in ids:
                    del patient_ids[image_id]
                logger.warning("BUSI: near-duplicates with different labels, left out "
                               "(busi_duplicates='group' keeps them): %s", names)
            else:
                logger.warning("BUSI: near-duplicates with different labels, kept as one pseudo-patient "
                               "%s, each with its own label: %s", group_id, names)
    result = BusiGroups(rule, patient_ids, tuple(groups), tuple(conflicts), tuple(dropped), file_names)
    logger.info("BUSI: %s; grouped in %.1f s", describe_busi_groups(result.summary()), time.time() - started)
    return result


def iter_busi(manual_dir, image_size: int, busi_duplicates: str = "drop_conflicts",
              groups: BusiGroups | None = None) -> Iterator[dict]:
    """Yield the public BUSI dataset as schema dicts (B-mode only).

    Layout: ``Dataset_BUSI_with_GT/<benign|malignant|normal>/<class> (N).png`` with the mask
    ``<class> (N)_mask.png`` beside it, and ``_mask_1.png``, ``_mask_2.png`` where a lesion has
    several masks; those are merged by union. ``manual_dir`` may be the folder containing
    ``Dataset_BUSI_with_GT`` or that folder itself. Other files are ignored.

    Known limitations of BUSI, kept visible in the data:

    * **No SE-mode image**: ``has_semode`` is False and ``semode`` all zeros; no SE image is
      ever made up.
    * **No patient ids, and near-duplicates**: the same scan saved twice (with or without
      calipers and text, cropped, resized, sometimes under two labels). Each group of
      near-duplicates is one pseudo-patient (``patient_id == "busi_group_<class>_<N>"``), every
      other image its own patient (``patient_id == image_id == "busi_<class>_<N>"``), so that
      patient-level splits never put copies of one scan on two sides; label conflicts follow
      ``busi_duplicates`` (:func:`busi_groups`). Other frames of one lesion are not always
      recognised as such: two images of one woman may still be split apart.
    * ``normal`` images have no lesion: their mask is empty (allowed), ``has_mask`` is True.
    * An image without any mask file gets ``has_mask`` False and an all-zero mask.

    Args:
        manual_dir: see above.
        image_size: output side in pixels.
        busi_duplicates: ``drop_conflicts``, ``group`` or ``none`` (``DataConfig.busi_duplicates``).
        groups: :func:`busi_groups` of ``manual_dir``, if already computed (then
            ``busi_duplicates`` is not used).

    Yields:
        Dicts with the keys of ``schema.EXAMPLE_KEYS``, class by class, by image number.

    Raises:
        DataError: layout not found, an unreadable image or mask, a mask of another size than
            its image, or an empty mask for a benign/malignant image.
    """
    images = busi_images(manual_dir)
    if groups is None:
        groups = busi_groups(manual_dir, busi_duplicates, images=images)
    empty_semode = np.zeros((image_size, image_size, 3), np.uint8)
    for image in images:
        if image.image_id not in groups.patient_ids:
            continue
        bmode = to_grey(read_image(image.path))
        mask = np.zeros(bmode.shape[:2] + (1,), np.uint8)
        for mask_name in image.mask_names:
            mask_path = _join(image.folder, mask_name)
            single = read_mask(mask_path)
            if single.shape[:2] != bmode.shape[:2]:
                raise DataError(
                    mask_path,
                    f"mask size {_size_text(single)} differs from the B-mode image "
                    f"{_size_text(bmode)}",
                )
            mask = np.maximum(mask, single)
        if image.mask_names and image.label != "normal" and not mask.any():
            raise DataError(
                _join(image.folder, image.mask_names[0]),
                f"empty mask: a {image.label} image needs a lesion, but all mask pixels are 0",
            )
        yield {
            "image_id": image.image_id,
            "patient_id": groups.patient_ids[image.image_id],
            "label": image.label,
            "bmode": resize_image(bmode, image_size),
            "semode": empty_semode,
            "mask": resize_mask(mask, image_size),
            "has_semode": False,
            "has_mask": bool(image.mask_names),
        }
