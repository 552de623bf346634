"""Read single image and mask files: PNG, JPEG, BMP, TIFF and DICOM, and resize them.

Every reader turns bad input into a :class:`~tf_bimodal.data.errors.DataError` that names the
offending file and the rule it breaks; no decoder or TensorFlow traceback reaches the user.
All file access goes through ``tf.io.gfile`` (:mod:`tf_bimodal.data.readers.files`).

All images are resized to ``image_size x image_size`` (paper §3.1: 336).
"""

from __future__ import annotations

import logging
import struct

import cv2
import numpy as np
import tensorflow as tf

from tf_bimodal.config import MIN_IMAGE_SIZE
from tf_bimodal.data.errors import DataError
from tf_bimodal.data.readers import files

RASTER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""File endings decoded with OpenCV."""

DICOM_EXTENSIONS = (".dcm", ".dicom")
"""File endings read as DICOM; files of any other ending are DICOM too if they carry the
``DICM`` preamble at byte 128."""

MAX_IMAGE_PIXELS = 64_000_000
"""Images (or DICOM frames) with more pixels than this (8000 x 8000) are refused from their
header, before they are decoded: no ultrasound image or screenshot is that large, and decoding
one would take gigabytes of memory."""

MAX_READ_SIDE = 2048
"""The longest side :func:`read_image_within` keeps: a larger image is shrunk on read to this side
(area averaging of the decoded integer pixels, before any float conversion), so that what
follows the read works on at most 2048 x 2048 pixels whatever the file holds. Scanner images
and full-HD screenshots (1920 x 1080) are below it and are read whole; the models see at most
336 px (§3.1)."""

MAX_ASPECT_RATIO = 4.0
"""The most elongated image served (long side / short side): every image is squeezed into the
models' square input (§3.1), and beyond 4:1 a round lesion becomes an ellipse four times as long
as wide, a shape no training image showed (scanner panes, BUSI and BUS-BRA are at most about
1.6:1). Extended-field-of-view panoramas up to 4:1 still pass."""

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


def shrink_to(array: np.ndarray, max_side: int | None) -> np.ndarray:
    """``array`` (H, W[, C]) shrunk by area averaging so that its longer side is ``max_side``
    (aspect kept), in its own dtype; as it is when None or already within."""
    height, width = array.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return array
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    shrunk = cv2.resize(array, size, interpolation=cv2.INTER_AREA)
    return shrunk.reshape(size[1], size[0], *array.shape[2:])


def _decode_raster(data: bytes, path: str, max_side: int | None = None) -> np.ndarray:
    """Decode PNG/JPEG/BMP/TIFF bytes to uint8 (H, W, C), C in {1, 3, 4}, RGB(A) order.

    The header's size is checked against ``MAX_IMAGE_PIXELS`` and PNG/JPEG files against
    truncation before anything is decoded; with ``max_side`` a larger image is shrunk
    (:func:`shrink_to`) in the decoder's integer type, before the conversion to uint8.
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
    array = _to_uint8(shrink_to(array, max_side), path)
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


def _load(path: str, max_side: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """Read any supported image as uint8 (H, W, C), alpha kept (C in {1, 3, 4}), shrunk to
    ``max_side`` (:func:`shrink_to`); with the file's own ``(height, width)``."""
    path = str(path)
    if not files.exists(path):
        raise DataError(path, "file not found")
    extension = files.extension(path)
    try:
        if tf.io.gfile.stat(path).length == 0:
            raise DataError(path, "empty file (0 bytes): an interrupted copy or export?")
        with tf.io.gfile.GFile(path, "rb") as file:
            head = file.read(_DICOM_MAGIC_OFFSET + len(_DICOM_MAGIC))
            has_preamble = head[_DICOM_MAGIC_OFFSET:] == _DICOM_MAGIC
            if extension in DICOM_EXTENSIONS or has_preamble:
                file.seek(0)
                image = _read_dicom(file, path, force=not has_preamble)
                return shrink_to(image, max_side), image.shape[:2]
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
    size = raster_size(data)
    image = _decode_raster(data, path, max_side)
    return image, (image.shape[:2] if size is None or max_side is None else (size[1], size[0]))


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
    image, _ = _load(path)
    if image.shape[-1] == 4:
        image = np.ascontiguousarray(image[..., :3])
    return image


def read_image_within(path, max_side: int = MAX_READ_SIDE) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`read_image`, an image whose longer side exceeds ``max_side`` shrunk on read.

    A raster file is decoded in its own integer type and shrunk by area averaging
    (:func:`shrink_to`) before it is converted to uint8, so its memory is the decoded file
    once (at most ``MAX_IMAGE_PIXELS`` pixels, checked from the header) and everything after
    holds at most ``max_side`` squared pixels; a DICOM image is shrunk after its conversion.

    Returns:
        ``(image, (height, width))``: uint8 ``(h, w, C)``, ``C`` in {1, 3}, and the size of
        the image the file holds (``(h, w)`` when it was not shrunk).

    Raises:
        DataError: as :func:`read_image`.
    """
    image, size = _load(path, max_side)
    if image.shape[-1] == 4:
        image = np.ascontiguousarray(image[..., :3])
    return image, (int(size[0]), int(size[1]))


def check_proportions(height: int, width: int, where: str) -> None:
    """Refuse an image too small or too elongated to be an ultrasound image.

    Raises:
        DataError: a side below ``MIN_IMAGE_SIZE`` (32 px: the smallest input the models take,
            the U-Nets halving it at each level and VGG-16 pooling it five times, §3.2-§3.3; a
            smaller image would be blown up from fewer pixels than that), or a long side over
            ``MAX_ASPECT_RATIO`` times the short one; naming ``where``, the size and the rule.
    """
    if min(height, width) < MIN_IMAGE_SIZE:
        raise DataError(where, f"image {width}x{height} px is too small: each side must be at least "
                               f"{MIN_IMAGE_SIZE} px, the smallest input the models take (the U-Nets halve it "
                               "at each level, VGG-16 pools it five times)")
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_ASPECT_RATIO:
        raise DataError(where, f"image {width}x{height} px is {ratio:.1f}:1, more elongated than "
                               f"{MAX_ASPECT_RATIO:g}:1: squeezed into the models' square input its lesions "
                               "would be distorted beyond any training image (a strip cut from an image?)")


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
    raw, _ = _load(path)
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


def size_text(image: np.ndarray) -> str:
    """``<width>x<height>`` of an image array, as named in error messages."""
    return f"{image.shape[1]}x{image.shape[0]}"


# --------------------------------------------------------------------------------------------
# Resizing


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
