"""The ``tf.data`` input pipeline: selection, normalization, augmentation, cropping (§3.1, §3.4).

Input is a ``tf.data.Dataset`` of example dicts as the TFDS builder yields them (see
``tf_bimodal.schema``): ``bmode`` uint8 (S, S, 1), ``semode`` uint8 (S, S, 3), ``mask``
uint8 (S, S, 1) in {0, 1}, ``label`` int64, ``image_id`` / ``patient_id`` strings and the
``has_semode`` / ``has_mask`` flags. :func:`make_dataset` turns it into batches of the same
dicts with float32 images in [0, 1].

B-mode, SE-mode and mask show the same tissue, so every geometric augmentation is applied to
the three *identically* (one projective transform); the mask is resampled with nearest
neighbour so it stays binary. All randomness is stateless and seeded, so a run with the same
seed sees the same batches: the augmentation's values are hashed from one seed pair per
example and epoch (:func:`~tf_bimodal.data.augmentation.uniform_draws`), in elementwise ops that draw a
whole batch at once. The augmentation itself lives in :mod:`tf_bimodal.data.augmentation`.
"""

from __future__ import annotations

import tensorflow as tf

from tf_bimodal.config import AugmentConfig, CropConfig
from tf_bimodal.data.augmentation import IMAGE_KEYS, augment, augmentation_from_values, draw_values_batch
from tf_bimodal.data.cropping import crop_pair

DEFAULT_SHUFFLE_BUFFER = 1024
"""Larger than the paper's 212 pairs, so training order is a full shuffle."""

AUTOTUNE = tf.data.AUTOTUNE

BATCHES_REVISION = 4
"""Raised whenever the training batches that a seed gives for a crop or resize change
(2: augmentation, crop and resize fused into one resampling; 3: the fused step sampling the
examples held in memory, the same draws with values that differ by float rounding; 4: the
augmentation's random values hashed from the seed pairs, ``uniform_draws``, in place of
TensorFlow's stateless ops), so that cached runs trained on other batches are not reused."""


# --------------------------------------------------------------------------- normalization


def normalize(example: dict) -> dict:
    """Images to float32 in [0, 1], the mask to float32 in {0, 1}; other keys unchanged.

    uint8 images are divided by 255; float images are taken to be in [0, 1] already, so
    normalizing twice changes nothing.
    """
    example = dict(example)
    for key in IMAGE_KEYS:
        if key in example:
            example[key] = tf.image.convert_image_dtype(example[key], tf.float32)
    if "mask" in example:
        mask = example["mask"]
        example["mask"] = tf.cast(tf.not_equal(mask, tf.zeros([], mask.dtype)), tf.float32)
    return example


# --------------------------------------------------------------------------- selection


def select_ids(ds: tf.data.Dataset, image_ids) -> tf.data.Dataset:
    """Keep the examples whose ``image_id`` is in ``image_ids`` (one part of a split, §3.1).

    Raises:
        ValueError: ``image_ids`` is empty (a split part never is).
    """
    ids = sorted({i.decode("utf-8") if isinstance(i, bytes) else str(i) for i in image_ids})
    if not ids:
        raise ValueError("image_ids is empty; select_ids needs at least one id")
    wanted = tf.constant(ids, tf.string)

    # A vector compare: no lookup-table resource whose lifetime the dataset would depend on,
    # and cheap next to image decoding for the few thousand ids of a split.
    def keep(example):
        return tf.reduce_any(tf.equal(wanted, example["image_id"]))

    return ds.filter(keep)


# --------------------------------------------------------------------------- cropping step


def _static_size(ds: tf.data.Dataset):
    shape = ds.element_spec["bmode"].shape
    if shape.rank != 3 or None in shape[:2]:
        raise ValueError(
            f"cropping needs output_size when the image size is not static (bmode spec {shape})"
        )
    return (int(shape[0]), int(shape[1]))


def _crop_or_resize(example, crop: CropConfig | None, output_size):
    example = dict(example)
    if crop is not None:
        example["bmode"], example["semode"], example["mask"] = crop_pair(
            example["bmode"],
            example["semode"],
            example["mask"],
            margin=crop.margin,
            shape=crop.shape,
            output_size=output_size,
        )
        return example
    for key in IMAGE_KEYS:
        example[key] = tf.image.resize(example[key], output_size, method="bilinear")
    example["mask"] = tf.image.resize(example["mask"], output_size, method="nearest")
    return example


# --------------------------------------------------------------------------- augment + crop in one step


def _lesion_outline(mask) -> dict:
    """Each row's first and last lesion pixel of a (H, W, C) mask, as (y, x) points.

    The bounding box of any affine image of the lesion is the box of the images of these
    points (they include the lesion's convex hull), so the box of the augmented mask can be
    found without resampling the mask.

    Returns:
        ``{"_lesion_points": (2H, 2) float32, "_lesion_valid": (2H,) bool}``.
    """
    nonzero = tf.reduce_any(tf.not_equal(mask, tf.zeros([], mask.dtype)), axis=-1)
    width = tf.shape(nonzero, out_type=tf.int32)[1]
    as_int = tf.cast(nonzero, tf.int32)
    first = tf.argmax(as_int, axis=1, output_type=tf.int32)
    last = width - 1 - tf.argmax(as_int[:, ::-1], axis=1, output_type=tf.int32)
    rows = tf.range(tf.shape(nonzero, out_type=tf.int32)[0])
    points = tf.stack([tf.concat([rows, rows], 0), tf.concat([first, last], 0)], axis=-1)
    found = tf.reduce_any(nonzero, axis=1)
    return {
        "_lesion_points": tf.cast(points, tf.float32),
        "_lesion_valid": tf.concat([found, found], 0),
    }


def _prepare_fused(example: dict, crop: CropConfig | None) -> dict:
    """Per example, once (before the cache): the image means and the lesion outline."""
    example = dict(example)
    for key in IMAGE_KEYS:
        example[f"_{key}_mean"] = tf.reduce_mean(tf.image.convert_image_dtype(example[key], tf.float32))
    if crop is not None:
        example.update(_lesion_outline(example["mask"]))
    return example


def _augmented_boxes(transform, points, valid, margin: int, height: int, width: int):
    """(B, 4) float32 ``(y0, x0, y1, x1)`` crop boxes of the augmented masks (ends exclusive).

    The lesion outline points are mapped forward through the inverse of ``transform`` (which
    maps output to input pixels) and rounded as nearest-neighbour sampling rounds them; points
    that leave the image are clipped to its edge; the box is grown by ``margin`` and clipped
    to the image, as :func:`~tf_bimodal.data.cropping.mask_bounding_box` does. A lesion that
    is empty, or moved wholly out of the image, gives the full image.
    """
    a0, a1, a2, b0, b1, b2 = (transform[:, i : i + 1] for i in range(6))
    det = a0 * b1 - a1 * b0
    dx = points[..., 1] - a2
    dy = points[..., 0] - b2
    x = (b1 * dx - a1 * dy) / det
    y = (a0 * dy - b0 * dx) / det
    inside = valid & (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)
    found = tf.reduce_any(inside, axis=1)
    x = tf.floor(tf.clip_by_value(x, 0.0, width - 1.0) + 0.5)
    y = tf.floor(tf.clip_by_value(y, 0.0, height - 1.0) + 0.5)
    big = tf.constant(1e9, tf.float32)
    y0 = tf.reduce_min(tf.where(valid, y, big), axis=1) - margin
    x0 = tf.reduce_min(tf.where(valid, x, big), axis=1) - margin
    y1 = tf.reduce_max(tf.where(valid, y, -big), axis=1) + 1.0 + margin
    x1 = tf.reduce_max(tf.where(valid, x, -big), axis=1) + 1.0 + margin
    box = tf.stack(
        [
            tf.maximum(y0, 0.0),
            tf.maximum(x0, 0.0),
            tf.minimum(y1, float(height)),
            tf.minimum(x1, float(width)),
        ],
        axis=1,
    )
    full = tf.constant([[0.0, 0.0, float(height), float(width)]])
    return tf.where(found[:, tf.newaxis], box, full)


def _crop_transforms(transform, boxes, output_size):
    """Compose a (B, 8) augmentation with the crop of ``boxes`` resized to ``output_size``.

    The resize samples as ``tf.image.resize`` does (half-pixel centres): output pixel ``i``
    of a box ``[y0, y1)`` reads row ``y0 + (i + 0.5) (y1 - y0) / out - 0.5`` of the
    augmented image, which the augmentation maps to the input image.
    """
    a0, a1, a2, b0, b1, b2 = (transform[:, i] for i in range(6))
    scale_y = (boxes[:, 2] - boxes[:, 0]) / float(output_size[0])
    scale_x = (boxes[:, 3] - boxes[:, 1]) / float(output_size[1])
    offset_y = boxes[:, 0] + 0.5 * scale_y - 0.5
    offset_x = boxes[:, 1] + 0.5 * scale_x - 0.5
    zero = tf.zeros_like(a0)
    return tf.stack(
        [
            a0 * scale_x, a1 * scale_y, a0 * offset_x + a1 * offset_y + a2,
            b0 * scale_x, b1 * scale_y, b0 * offset_x + b1 * offset_y + b2,
            zero, zero,
        ],
        axis=1,
    )


def _sampling_grid(transforms, output_size):
    """The input (x, y) that each output pixel of a (B, 8) batch of transforms reads."""
    rows = tf.range(output_size[0], dtype=tf.float32)[tf.newaxis, :, tf.newaxis]
    cols = tf.range(output_size[1], dtype=tf.float32)[tf.newaxis, tf.newaxis, :]
    t = [tf.reshape(transforms[:, i], [-1, 1, 1]) for i in range(6)]
    return t[0] * cols + t[1] * rows + t[2], t[3] * cols + t[4] * rows + t[5]


def _image_words(images) -> tf.Tensor:
    """(N, H, W, C) images as (N, H, W, K) uint32 words, so a pixel is gathered in few loads.

    uint8 images: four channels per word (channels padded with 0 to a multiple of four);
    float32 images (in [0, 1]): one channel per word (bits kept). :func:`_from_words` undoes it.
    """
    if images.dtype == tf.uint8:
        pad = -int(images.shape[-1]) % 4
        if pad:
            images = tf.pad(images, [[0, 0], [0, 0], [0, 0], [0, pad]])
        shape = tf.concat([tf.shape(images)[:-1], [images.shape[-1] // 4, 4]], axis=0)
        return tf.bitcast(tf.reshape(images, shape), tf.uint32)
    return tf.bitcast(images, tf.uint32)


def _from_words(words, channels: int, as_bytes: bool) -> tf.Tensor:
    """float32 (..., channels) in [0, 1] from gathered (..., K) :func:`_image_words` words."""
    if not as_bytes:
        return tf.bitcast(words, tf.float32)[..., :channels]
    parts = [
        tf.bitwise.bitwise_and(tf.bitwise.right_shift(words, tf.constant(8 * k, tf.uint32)), 255)
        for k in range(4)
    ]
    values = tf.reshape(tf.stack(parts, axis=-1), tf.concat([tf.shape(words)[:-1], [-1]], axis=0))
    return tf.cast(values[..., :channels], tf.float32) / 255.0


def _sample(words, mask, index, x, y, channels: int, as_bytes: bool):
    """Bilinear images and nearest-neighbour mask of stacked examples at (B, h, w) points.

    ``words`` (N, H, W, K) are every example's images (:func:`_image_words`), ``mask``
    (N, H, W) its mask or None to sample none; ``index`` (B,) picks the example each row of
    ``x``, ``y`` reads, so only the output pixels are ever copied. As
    ``ImageProjectiveTransformV3`` with ``fill_mode="CONSTANT"``: pixel centres at integer
    coordinates, and a neighbour outside the image contributes the fill value 0. The mask
    reads the nearest pixel, ``floor(x + 0.5)``, ``floor(y + 0.5)``.

    Returns:
        float32 (B, h, w, channels) images in [0, 1], the (B, h, w, 1) mask in {0, 1}, and
        the (B, h, w, 1) weight that came from inside the image (1 away from the border).
    """
    height, width = (int(d) for d in words.shape[1:3])
    offsets = tf.reshape(tf.cast(index, tf.int32) * (height * width), [-1, 1, 1])
    flat = tf.reshape(words, [-1, words.shape[-1]])

    def pixel(xi, yi):
        inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
        flat_index = offsets + tf.clip_by_value(yi, 0, height - 1) * width
        return inside, flat_index + tf.clip_by_value(xi, 0, width - 1)

    x0, y0 = tf.floor(x), tf.floor(y)
    fx, fy = x - x0, y - y0
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    images, coverage = 0.0, 0.0
    for dy, weight_y in ((0, 1.0 - fy), (1, fy)):
        for dx, weight_x in ((0, 1.0 - fx), (1, fx)):
            inside, at = pixel(x0 + dx, y0 + dy)
            weight = tf.where(inside, weight_x * weight_y, 0.0)[..., tf.newaxis]
            coverage += weight
            images += weight * _from_words(tf.gather(flat, at), channels, as_bytes)
    if mask is None:
        return images, None, coverage
    inside, at = pixel(tf.cast(tf.floor(x + 0.5), tf.int32), tf.cast(tf.floor(y + 0.5), tf.int32))
    lesion = tf.not_equal(tf.gather(tf.reshape(mask, [-1]), at), tf.zeros([], mask.dtype)) & inside
    return images, tf.cast(lesion, tf.float32)[..., tf.newaxis], coverage


def _per_example(values):
    """(B,) to (B, 1, 1, 1), to broadcast over a batch of images."""
    return tf.reshape(values, [-1, 1, 1, 1])


@tf.function(jit_compile=True)
def _fused_resample(values, images, index, means, has_semode, outline, margin, output_size, channels, adjust):
    """Augmentation, crop and resize of the examples ``index`` of ``images``, XLA-compiled.

    ``images`` is ``(words, mask or None, as_bytes)`` and ``means``, ``has_semode`` and
    ``outline`` are those of every example, as :func:`_in_memory` holds them.

    The random draws (``values``, from :func:`~tf_bimodal.data.augmentation.draw_values_batch`) stay outside: XLA's
    random-number kernels need not match TensorFlow's, and the draws must be those of
    :func:`augment`.
    """
    words, mask, as_bytes = images
    height, width = (int(d) for d in words.shape[1:3])
    drawn = augmentation_from_values(values, height, width)
    transform = drawn["transform"]
    means = {key: tf.gather(value, index) for key, value in means.items()}
    has_semode = tf.gather(has_semode, index)
    if outline is not None:
        outline = [tf.gather(part, index) for part in outline]
        boxes = _augmented_boxes(transform, *outline, margin, height, width)
    else:
        boxes = tf.tile(
            tf.constant([[0.0, 0.0, float(height), float(width)]]), [tf.shape(transform)[0], 1]
        )
    x, y = _sampling_grid(_crop_transforms(transform, boxes, output_size), output_size)
    sampled, mask, inside = _sample(words, mask, index, x, y, sum(channels), as_bytes)
    out = {} if mask is None else {"mask": mask}
    for key, part in zip(IMAGE_KEYS, tf.split(sampled, list(channels), axis=-1)):
        if adjust:
            delta, factor = (_per_example(drawn[f"{key}_intensity"][:, i]) for i in range(2))
            offset = _per_example(means[key]) * (1.0 - factor) + delta
            adjusted = tf.clip_by_value(part * factor + offset * inside, 0.0, inside)
            if key == "semode":
                adjusted = tf.where(_per_example(has_semode), adjusted, part)
            part = adjusted
        out[key] = part
    return out


def _in_memory(ds: tf.data.Dataset, crop: CropConfig | None):
    """Every example of ``ds`` in one batch, its images ready for :func:`_sample`.

    Per example, once: the image means (for the contrast change) and, with ``crop``, the
    lesion outline (:func:`_lesion_outline`, its lesion points only, padded to the longest
    outline of ``ds``). B-mode and SE-mode become one (N, H, W, K)
    tensor of :func:`_image_words` (``_words``), the mask one (N, H, W) tensor (``_mask``).

    Returns:
        The stacked examples without their images, with ``_words``, ``_mask``, the image
        ``_channels``, ``_as_bytes`` (whether the words hold uint8 channels) and ``_count``
        (the private arrays padded to a multiple of 64 examples); None for an empty ``ds``.
    """
    chunks = list(ds.map(lambda example: _prepare_fused(example, crop)).batch(4096))
    if not chunks:
        return None
    stacked = {key: tf.concat([chunk[key] for chunk in chunks], axis=0) for key in chunks[0]}
    images = [stacked.pop(key) for key in IMAGE_KEYS]
    as_bytes = all(image.dtype == tf.uint8 for image in images)
    if not as_bytes:
        images = [tf.image.convert_image_dtype(image, tf.float32) for image in images]
    if "_lesion_valid" in stacked:
        # The outline's lesion points first, then as few of the empty rows' as the longest
        # outline leaves (rounded up to a bucket): the crop box of every batch needs only these.
        valid = stacked["_lesion_valid"]
        order = tf.argsort(tf.cast(valid, tf.int32), axis=1, direction="DESCENDING", stable=True)
        longest = int(tf.reduce_max(tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)))
        keep = min(_bucket(longest), int(valid.shape[1]))
        stacked["_lesion_valid"] = tf.gather(valid, order[:, :keep], batch_dims=1)
        stacked["_lesion_points"] = tf.gather(stacked["_lesion_points"], order[:, :keep], batch_dims=1)
    count = int(images[0].shape[0])
    stacked["_count"] = count
    stacked["_has_semode"] = tf.cast(stacked.get("has_semode", tf.ones([count], tf.bool)), tf.bool)
    stacked["_words"] = _image_words(tf.concat(images, axis=-1))
    stacked["_mask"] = stacked.pop("mask")[..., 0]
    # The compiled step's inputs padded to a bucket of examples, so that training sets of
    # different sizes (the folds) share one compilation; the padding is never indexed.
    for key in ("_words", "_mask", "_has_semode", "_bmode_mean", "_semode_mean", "_lesion_points",
                "_lesion_valid"):
        if key in stacked:
            value = stacked[key]
            stacked[key] = tf.pad(value, [[0, _bucket(count) - count]] + [[0, 0]] * (value.shape.rank - 1))
    stacked["_channels"] = tuple(int(image.shape[-1]) for image in images)
    stacked["_as_bytes"] = as_bytes
    return stacked


def _bucket(count: int, step: int = 64) -> int:
    """``count`` rounded up to a multiple of ``step`` (at least ``step``)."""
    return max(-(-count // step), 1) * step


def augment_and_crop_batch(
    stacked: dict, index, values, config: AugmentConfig, crop: CropConfig | None, output_size, keys=None
) -> dict:
    """:func:`augment` then the lesion crop and resize, as one resampling per batch.

    Gives what augmenting at full size and then cropping with
    :func:`~tf_bimodal.data.cropping.crop_pair` gives, with the same random draws per
    example, but samples only the output pixels: the crop box of the augmented mask comes
    from the lesion outline (see :func:`_augmented_boxes`), the crop and resize are folded
    into the augmentation's matrix, and B-mode, SE-mode (bilinear) and mask (nearest) are
    sampled together, at the output size, straight from the examples held in memory, in one
    XLA-compiled step. The full-size images are never copied into a batch. One resampling
    instead of two also blurs less. Intensity changes are applied to the sampled values: they
    are affine, so they commute with bilinear sampling, and pixels from outside the image stay
    0 as in :func:`augment` (up to where the clip to [0, 1] acts on mixed edge pixels).

    Args:
        stacked: every example, as :func:`_in_memory` holds them.
        index: (B,) int, the examples of this batch.
        values: (B, 9) float32, their random draws (:func:`draw_values_batch`).
        config: the ``AugmentConfig`` the draws came from.
        crop: a rectangle ``CropConfig``, or None to resize the whole augmented image.
        output_size: (height, width) of the output.
        keys: the example keys to return (None: all).

    Returns:
        The batch's examples with float32 ``bmode``, ``semode`` in [0, 1] and ``mask`` in
        {0, 1} at ``output_size``; the private keys removed.
    """
    wanted = [key for key in stacked if not key.startswith("_") and (keys is None or key in keys)]
    batch = {key: tf.gather(stacked[key], index) for key in wanted}
    outline = None
    if crop is not None:
        outline = (stacked["_lesion_points"], stacked["_lesion_valid"])
    means = {key: stacked[f"_{key}_mean"] for key in IMAGE_KEYS}
    batch.update(
        _fused_resample(
            values,
            (
                stacked["_words"],
                stacked["_mask"] if keys is None or "mask" in keys else None,
                stacked["_as_bytes"],
            ),
            index,
            means,
            stacked["_has_semode"],
            outline,
            None if crop is None else crop.margin,
            tuple(output_size),
            stacked["_channels"],
            config.max_brightness > 0 or config.max_contrast > 0,
        )
    )
    return batch if keys is None else {key: batch[key] for key in keys}


def _can_fuse(ds: tf.data.Dataset, training, augment_config, crop, output_size) -> bool:
    """Whether :func:`augment_and_crop_batch` can replace augment-then-crop for ``ds``."""
    if not training or augment_config is None or output_size is None:
        return False
    if crop is not None and crop.shape != "rectangle":
        return False  # the mask-shaped crop blanks at full size; see make_dataset
    spec = ds.element_spec
    if not all(key in spec for key in (*IMAGE_KEYS, "mask")):
        return False
    shapes = [spec[key].shape for key in (*IMAGE_KEYS, "mask")]
    if any(shape.rank != 3 or not shape.is_fully_defined() for shape in shapes):
        return False
    return len({tuple(shape[:2]) for shape in shapes}) == 1


# --------------------------------------------------------------------------- the pipeline


def make_dataset(
    ds: tf.data.Dataset,
    batch_size: int,
    training: bool,
    augment_config: AugmentConfig | None = None,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    seed: int = 0,
    crop: CropConfig | None = None,
    output_size=None,
    keys=None,
    image_ids=None,
    cache: bool | str = True,
    fuse: bool = True,
) -> tf.data.Dataset:
    """Batches of normalized (and for training, shuffled and augmented) examples (§3.1, §3.4).

    Steps: :func:`select_ids` (if ``image_ids``), cache, shuffle (training only, reshuffled
    every epoch), :func:`normalize`, :func:`augment` (training only, and only if
    ``augment_config`` is given), the lesion crop (:func:`~tf_bimodal.data.cropping.crop_pair`,
    if ``crop``; cut from the augmented mask, so it follows the moved lesion) or a plain resize
    (if only ``output_size``), key selection, batch, prefetch. Maps run in parallel and keep
    their order; all randomness comes from ``seed``, so a pipeline built twice with the same
    seed yields the same batches, epoch after epoch.

    Training with augmentation and an ``output_size`` (a rectangle crop or a plain resize)
    fuses augmentation, crop and resize into one resampling per batch at the output size
    (:func:`augment_and_crop_batch`): the same random draws, a box within about a pixel of the
    two-step result, and far less work when the output is smaller than the images (at the
    paper's 336 px images and a 64 px input, about 1/30 of the pixels). The selected examples
    are then held in memory as one stacked tensor (the cache) and each batch samples its
    output pixels from it by index, so full-size images are never copied into batches.
    ``fuse=False`` keeps the two steps; the mask-shaped crop, images whose size is not static,
    and a ``cache`` other than True always do.

    Args:
        ds: dataset of example dicts (``tf_bimodal.schema``), unbatched.
        batch_size: examples per batch (paper §3.4: 32); the last batch may be smaller.
        training: shuffle and augment (True) or keep the stored order (False).
        augment_config: an ``AugmentConfig``, or None for no augmentation.
        shuffle_buffer: shuffle buffer size (default 1024, above the paper's 212 pairs).
        seed: seeds the shuffle and the augmentation.
        crop: a ``CropConfig`` to crop around the mask (paper §3.1), or None.
        output_size: (height, width) or int of the output images; with ``crop`` it defaults
            to the input size, without it None keeps the images as they are.
        keys: the example keys to keep (None keeps all).
        image_ids: keep only these image ids (one part of a split); None keeps all.
        cache: True caches in memory after selection, a string caches to that file, False
            does not cache.
        fuse: augment, crop and resize in one step where possible (see above).

    Returns:
        A ``tf.data.Dataset`` of batched dicts.

    Raises:
        ValueError: bad ``batch_size`` / ``shuffle_buffer``, unknown ``keys``, or a crop whose
            output size cannot be known.
    """
    keys, output_size = _checked_arguments(ds, batch_size, training, shuffle_buffer, crop, output_size, keys)
    fused = fuse and cache is True and _can_fuse(ds, training, augment_config, crop, output_size)
    if image_ids is not None:
        ds = select_ids(ds, image_ids)
    stacked = _in_memory(ds, crop) if fused else None
    if stacked is not None:
        return _fused_batches(stacked, batch_size, augment_config, shuffle_buffer, seed, crop, output_size, keys)
    if cache:
        ds = ds.cache() if cache is True else ds.cache(cache)
    return _stepwise_batches(ds, batch_size, training, augment_config, shuffle_buffer, seed, crop, output_size, keys)


def _checked_arguments(ds: tf.data.Dataset, batch_size, training, shuffle_buffer, crop, output_size, keys):
    """``(keys, output_size)`` as :func:`make_dataset` uses them: a tuple of keys or None, and
    ``(height, width)`` (the input size for a crop without one) or None.

    Raises:
        ValueError: bad ``batch_size`` / ``shuffle_buffer`` / ``crop``, unknown ``keys``, or a
            crop whose output size cannot be known.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if training and shuffle_buffer < 1:
        raise ValueError(f"shuffle_buffer must be >= 1, got {shuffle_buffer}")
    if crop is not None and not isinstance(crop, CropConfig):
        raise ValueError(f"crop must be a CropConfig or None, got {type(crop).__name__}")
    if keys is not None:
        keys = tuple(keys)
        unknown = sorted(set(keys) - set(ds.element_spec))
        if unknown:
            raise ValueError(f"keys {unknown} are not in the examples ({sorted(ds.element_spec)})")
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    if crop is not None and output_size is None:
        output_size = _static_size(ds)
    return keys, output_size


def _seed_pairs(seed: int) -> tf.data.Dataset:
    """One fresh stateless seed pair per element and epoch, reproducible from ``seed``."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2, drop_remainder=True)


def _fused_batches(stacked: dict, batch_size, augment_config, shuffle_buffer, seed, crop, output_size, keys):
    """Training batches sampled from the examples held in memory (:func:`_in_memory`).

    The examples stay where they are; shuffled indices select them batch by batch. The draws
    and the resampling run in two parallel maps: the draws op by op, the resampling compiled
    (:func:`augment_and_crop_batch`), and each overlaps the other's next batch.
    """
    indices = tf.data.Dataset.range(stacked["_count"])
    indices = indices.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = tf.data.Dataset.zip(indices, _seed_pairs(seed)).batch(batch_size, drop_remainder=False)
    ds = ds.map(
        lambda index, pairs: (index, draw_values_batch(pairs, augment_config)),
        num_parallel_calls=AUTOTUNE,
    )
    ds = ds.map(
        lambda index, values: augment_and_crop_batch(
            stacked, index, values, augment_config, crop, output_size, keys
        ),
        num_parallel_calls=AUTOTUNE,
    )
    return ds.prefetch(AUTOTUNE)


def _stepwise_batches(ds: tf.data.Dataset, batch_size, training, augment_config, shuffle_buffer, seed, crop,
                      output_size, keys):
    """Shuffle (training), :func:`normalize`, :func:`augment` (training with ``augment_config``),
    crop or resize, key selection, batch and prefetch, one map after the other."""
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(normalize, num_parallel_calls=AUTOTUNE)
    if training and augment_config is not None:
        ds = tf.data.Dataset.zip(ds, _seed_pairs(seed)).map(
            lambda example, pair: augment(example, pair, augment_config),
            num_parallel_calls=AUTOTUNE,
        )
    if crop is not None or output_size is not None:
        ds = ds.map(
            lambda example: _crop_or_resize(example, crop, output_size),
            num_parallel_calls=AUTOTUNE,
        )
    if keys is not None:
        ds = ds.map(lambda example: {key: example[key] for key in keys})
    ds = ds.batch(batch_size, drop_remainder=False)
    return ds.prefetch(AUTOTUNE)


# --------------------------------------------------------------------------- distribution


def with_data_sharding(ds: tf.data.Dataset) -> tf.data.Dataset:
    """``ds`` marked to be sharded by element when a multi-worker strategy distributes it.

    The runners' datasets are built from in-memory arrays (``from_tensor_slices``), which
    have no files to shard by. Each worker then runs the whole (identically seeded) pipeline
    and keeps its share of every global batch; ``AUTO`` would fall back to this after a
    warning. Single-worker strategies ignore the option, so a run on one machine reads the
    same batches as without it.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def replica_batches(num_images: int, batch_size: int, replicas: int) -> int:
    """How many batches of ``num_images`` to hand ``fit`` so that every replica gets an image.

    All ``ceil(num_images / batch_size)`` batches, less a last, partial one of fewer images
    than ``replicas``, which would leave a replica empty (see the module docstring): its
    images are left out of that pass. In training they are another draw each epoch (the
    training set is reshuffled); in validation the same ones every epoch. With one replica
    nothing is left out.

    Raises:
        ValueError: fewer images, or a smaller ``batch_size``, than ``replicas``.
    """
    if num_images < replicas or batch_size < replicas:
        raise ValueError(
            f"{num_images} images in global batches of {batch_size} cannot give each of the {replicas} "
            "replicas an image; use a global batch and a data set of at least one image per replica"
        )
    full, rest = divmod(num_images, batch_size)
    return full + (rest >= replicas)
