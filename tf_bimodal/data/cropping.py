"""Lesion cropping around a mask (paper §3.1, Fig. S2).

The classifiers of the paper read B-mode and SE-mode images cropped around the lesion, with a
margin of 50 pixels, either to a rectangle or to the mask's shape (§3.1, Fig. S2). The mask
comes from a radiologist or from the segmentation model.

Everything here is TensorFlow ops only, so it runs eagerly on NumPy arrays or tensors and
inside ``tf.data`` maps and ``tf.function`` graphs (and so in an exported SavedModel). The
margin and the crop shape are Python values fixed when the graph is built.

Conventions:
    * Boxes are ``(y0, x0, y1, x1)`` int32 with *exclusive* ends, as in slicing
      ``image[y0:y1, x0:x1]``.
    * An empty mask (no lesion marked, e.g. ``has_mask`` False) gives the full image: cropping
      never fails inside a graph, and the model simply sees the uncropped image.
    * ``shape="mask"`` blanks pixels whose Chebyshev distance to the mask exceeds the margin,
      that is, it keeps the mask dilated by a ``(2 * margin + 1)`` *square*, computed as a
      separable max-pool. A square matches the rectangular margin of the box.
"""

from __future__ import annotations

import numbers

import tensorflow as tf

from tf_bimodal.config import CropConfig
from tf_bimodal.schema import DEFAULT_IMAGE_SIZE

CROP_SHAPES = ("rectangle", "mask")


PAPER_MARGIN = 50
"""The paper's crop margin, in pixels of its 336-pixel images (§3.1); :func:`scaled_margin`
gives it at any other side. The one home of the margin: the runs, the report and the exported
pipeline all use it through :func:`scaled_margin`."""

MARGIN_RULE = (
    f"{PAPER_MARGIN} px at {DEFAULT_IMAGE_SIZE} px (§3.1), scaled to the image size: "
    f"round({PAPER_MARGIN} * side / {DEFAULT_IMAGE_SIZE})"
)
"""The crop margin rule, as the runs and the exported pipeline record it."""


def scaled_margin(size, margin: int = PAPER_MARGIN, reference_size: int = DEFAULT_IMAGE_SIZE):
    """The paper's crop margin (§3.1: 50 px at its 336-px images) for a side of ``size`` pixels.

    ``round(margin * size / reference_size)``, rounding half to even (Python's ``round``,
    ``tf.round``): a Python int for an int ``size``, an int32 tensor for a tensor (the
    exported pipeline computes it in its graph, per image and per axis).
    """
    if tf.is_tensor(size):
        scaled = tf.cast(tf.cast(size, tf.int64) * margin, tf.float64) / float(reference_size)
        return tf.cast(tf.round(scaled), tf.int32)
    return int(round(margin * size / reference_size))


def _validated_margin(margin) -> int:
    if isinstance(margin, bool) or not isinstance(margin, numbers.Integral):
        static = tf.get_static_value(margin) if tf.is_tensor(margin) else None
        if static is None or getattr(static, "ndim", 0) != 0:
            raise ValueError(f"margin must be a non-negative int (pixels), got {margin!r}")
        margin = static
    margin = int(margin)
    if margin < 0:
        raise ValueError(f"margin must be >= 0 pixels, got {margin}")
    return margin


def _validated_output_size(output_size):
    if output_size is None:
        return None
    if isinstance(output_size, numbers.Integral):
        output_size = (int(output_size), int(output_size))
    output_size = tuple(int(s) for s in output_size)
    if len(output_size) != 2 or min(output_size) < 1:
        raise ValueError(
            f"output_size must be an int or (height, width) of positive ints, got {output_size!r}"
        )
    return output_size


def _any_nonzero_2d(mask: tf.Tensor) -> tf.Tensor:
    """(H, W) bool of a (H, W) or (H, W, C) mask: nonzero in any channel."""
    nonzero = tf.not_equal(mask, tf.zeros([], mask.dtype))
    if nonzero.shape.rank == 3:
        nonzero = tf.reduce_any(nonzero, axis=-1)
    return nonzero


def mask_bounding_box(mask, margin: int = CropConfig.margin):
    """The box of a mask's nonzero pixels grown by ``margin``, clipped to the image (§3.1).

    Args:
        mask: (H, W) or (H, W, C) array or tensor, any dtype; nonzero marks the lesion.
        margin: pixels added on every side (paper §3.1: 50), a non-negative Python int.

    Returns:
        ``(y0, x0, y1, x1)``, four int32 scalar tensors, ends exclusive. An empty mask gives
        the full image ``(0, 0, H, W)``.

    Raises:
        ValueError: negative margin, or a mask that is not rank 2 or 3.
    """
    margin = _validated_margin(margin)
    mask = tf.convert_to_tensor(mask)
    if mask.shape.rank not in (2, 3):
        raise ValueError(f"mask must be (H, W) or (H, W, C), got shape {mask.shape}")
    nonzero = _any_nonzero_2d(mask)
    height = tf.shape(nonzero, out_type=tf.int32)[0]
    width = tf.shape(nonzero, out_type=tf.int32)[1]
    rows = tf.reduce_any(nonzero, axis=1)
    cols = tf.reduce_any(nonzero, axis=0)
    # argmax over an int vector gives the first nonzero; over the reversed vector, the last.
    first_row = tf.argmax(tf.cast(rows, tf.int32), output_type=tf.int32)
    last_row = height - 1 - tf.argmax(tf.cast(rows[::-1], tf.int32), output_type=tf.int32)
    first_col = tf.argmax(tf.cast(cols, tf.int32), output_type=tf.int32)
    last_col = width - 1 - tf.argmax(tf.cast(cols[::-1], tf.int32), output_type=tf.int32)
    y0 = tf.maximum(first_row - margin, 0)
    x0 = tf.maximum(first_col - margin, 0)
    y1 = tf.minimum(last_row + 1 + margin, height)
    x1 = tf.minimum(last_col + 1 + margin, width)
    found = tf.reduce_any(rows)
    zero = tf.zeros([], tf.int32)
    return (
        tf.where(found, y0, zero),
        tf.where(found, x0, zero),
        tf.where(found, y1, height),
        tf.where(found, x1, width),
    )


def dilate_square(mask, margin: int) -> tf.Tensor:
    """Binary dilation of a (H, W, C) mask by a ``(2 * margin + 1)`` square, as max-pools.

    The square is separable, so it is one vertical and one horizontal max-pool; both use
    ``SAME`` padding, so pixels outside the image count as background.

    Returns:
        float32 (H, W, C) in {0, 1}.
    """
    margin = _validated_margin(margin)
    mask = tf.convert_to_tensor(mask)
    if mask.shape.rank != 3:
        raise ValueError(f"mask must be (H, W, C), got shape {mask.shape}")
    mask = tf.cast(tf.not_equal(mask, tf.zeros([], mask.dtype)), tf.float32)
    if margin == 0:
        return mask
    window = 2 * margin + 1
    batched = mask[tf.newaxis]
    batched = tf.nn.max_pool2d(batched, ksize=[1, window, 1, 1], strides=1, padding="SAME")
    batched = tf.nn.max_pool2d(batched, ksize=[1, 1, window, 1], strides=1, padding="SAME")
    return batched[0]


def _resize(image, output_size, method):
    dtype = image.dtype
    resized = tf.image.resize(image, output_size, method=method)
    if dtype.is_integer:
        return tf.saturate_cast(tf.round(resized), dtype)
    return tf.cast(resized, dtype)


def _static_hw(tensor):
    return tuple(tensor.shape[:2])


def _check_same_size(bmode, semode, mask):
    sizes = {"bmode": _static_hw(bmode), "semode": _static_hw(semode), "mask": _static_hw(mask)}
    known = {name: hw for name, hw in sizes.items() if None not in hw}
    if len(set(known.values())) > 1:
        raise ValueError(
            "bmode, semode and mask must have the same height and width, got "
            + ", ".join(f"{name} {hw}" for name, hw in sizes.items())
        )
    if len(known) == 3:
        return []
    # Sizes only known at run time: check them in the graph.
    b_hw = tf.shape(bmode)[:2]
    return [
        tf.debugging.assert_equal(
            b_hw, tf.shape(other)[:2], message="bmode, semode and mask differ in height/width"
        )
        for other in (semode, mask)
    ]


def _crop_one(bmode, semode, mask, margin, shape, output_size):
    checks = _check_same_size(bmode, semode, mask)
    with tf.control_dependencies(checks):
        y0, x0, y1, x1 = mask_bounding_box(mask, margin)
    bmode_crop = bmode[y0:y1, x0:x1]
    semode_crop = semode[y0:y1, x0:x1]
    mask_crop = mask[y0:y1, x0:x1]
    if shape == "mask":
        mask_3d = mask_crop if mask_crop.shape.rank == 3 else mask_crop[..., tf.newaxis]
        # Every mask pixel lies inside the box, so dilating the cropped mask is exact.
        near = dilate_square(tf.reduce_max(tf.cast(mask_3d, tf.float32), -1, keepdims=True), margin)
        # An empty mask keeps the full image rather than blanking it (see module docstring).
        keep = tf.logical_or(near > 0, tf.logical_not(tf.reduce_any(near > 0)))
        bmode_crop = tf.where(keep, bmode_crop, tf.zeros_like(bmode_crop))
        semode_crop = tf.where(keep, semode_crop, tf.zeros_like(semode_crop))
    if output_size is not None:
        bmode_crop = _resize(bmode_crop, output_size, "bilinear")
        semode_crop = _resize(semode_crop, output_size, "bilinear")
        if mask_crop.shape.rank == 2:
            mask_crop = _resize(mask_crop[..., tf.newaxis], output_size, "nearest")[..., 0]
        else:
            mask_crop = _resize(mask_crop, output_size, "nearest")
    return bmode_crop, semode_crop, mask_crop


def crop_pair(
    bmode,
    semode,
    mask,
    margin: int = CropConfig.margin,
    shape: str = CropConfig.shape,
    output_size=None,
):
    """Crop B-mode and SE-mode identically around the lesion mask (paper §3.1, Fig. S2).

    The box is :func:`mask_bounding_box` (mask plus ``margin`` pixels, clipped to the image);
    the same box cuts B-mode, SE-mode and the mask. ``shape="mask"`` also sets to zero the
    image pixels farther than ``margin`` from the mask (Chebyshev distance, i.e. dilation by a
    ``(2 * margin + 1)`` square); the returned mask is never blanked. An empty mask gives the
    full, unblanked image.

    Args:
        bmode: (H, W, Cb) image, or a batch (N, H, W, Cb); any dtype.
        semode: (H, W, Cs) image (or batch) of the same height and width.
        mask: (H, W, 1) or (H, W) mask (or batch); nonzero marks the lesion.
        margin: pixels around the mask; default ``CropConfig.margin`` (50, paper §3.1).
        shape: ``"rectangle"`` (default, ``CropConfig.shape``) or ``"mask"``.
        output_size: None (crops keep their size, which varies) or an int / (height, width)
            to resize to: bilinear for the images, nearest for the mask. Integer images are
            rounded back to their dtype. Required for batches, whose crops must stack.

    Returns:
        ``(bmode_crop, semode_crop, mask_crop)``, each with its input's dtype and rank.

    Raises:
        ValueError: negative margin, unknown shape, ranks or sizes that do not match, or a
            batch without ``output_size``.
    """
    margin = _validated_margin(margin)
    if shape not in CROP_SHAPES:
        raise ValueError(f"shape must be one of {CROP_SHAPES}, got {shape!r}")
    output_size = _validated_output_size(output_size)
    bmode = tf.convert_to_tensor(bmode)
    semode = tf.convert_to_tensor(semode)
    mask = tf.convert_to_tensor(mask)
    rank = bmode.shape.rank
    if rank not in (3, 4) or semode.shape.rank != rank:
        raise ValueError(
            "bmode and semode must both be (H, W, C) or both (N, H, W, C), got shapes "
            f"{bmode.shape} and {semode.shape}"
        )
    if mask.shape.rank not in (rank - 1, rank):
        raise ValueError(
            f"mask must be {'(N, H, W, 1) or (N, H, W)' if rank == 4 else '(H, W, 1) or (H, W)'}"
            f", got shape {mask.shape}"
        )
    if rank == 3:
        return _crop_one(bmode, semode, mask, margin, shape, output_size)

    if output_size is None:
        raise ValueError("a batch of crops needs output_size: crops differ in size and must stack")
    static_n = {bmode.shape[0], semode.shape[0], mask.shape[0]} - {None}
    if len(static_n) > 1:
        raise ValueError(
            f"bmode, semode and mask batches differ in size: {bmode.shape[0]}, "
            f"{semode.shape[0]}, {mask.shape[0]}"
        )
    return tf.map_fn(
        lambda pair: _crop_one(*pair, margin, shape, output_size),
        (bmode, semode, mask),
        fn_output_signature=(
            tf.TensorSpec([*output_size, bmode.shape[-1]], bmode.dtype),
            tf.TensorSpec([*output_size, semode.shape[-1]], semode.dtype),
            tf.TensorSpec([*output_size, *mask.shape[3:]], mask.dtype),
        ),
    )
