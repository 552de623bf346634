"""The ``tf.data`` input pipeline: selection, normalization, augmentation, cropping (§3.1, §3.4).

Input is a ``tf.data.Dataset`` of example dicts as the TFDS builder yields them (see
``tf_bimodal.data.schema``): ``bmode`` uint8 (S, S, 1), ``semode`` uint8 (S, S, 3), ``mask``
uint8 (S, S, 1) in {0, 1}, ``label`` int64, ``image_id`` / ``patient_id`` strings and the
``has_semode`` / ``has_mask`` flags. :func:`make_dataset` turns it into batches of the same
dicts with float32 images in [0, 1].

B-mode, SE-mode and mask show the same tissue, so every geometric augmentation is applied to
the three *identically* (one projective transform); the mask is resampled with nearest
neighbour so it stays binary. All randomness is stateless and seeded, so a run with the same
seed sees the same batches.
"""

from __future__ import annotations

import math

import tensorflow as tf

from tf_bimodal.config import AugmentConfig, CropConfig
from tf_bimodal.data.cropping import crop_pair

IMAGE_KEYS = ("bmode", "semode")
"""The image features; the mask is handled apart (nearest-neighbour, never intensity)."""

DEFAULT_SHUFFLE_BUFFER = 1024
"""Larger than the paper's 212 pairs, so training order is a full shuffle."""

AUTOTUNE = tf.data.AUTOTUNE


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


# --------------------------------------------------------------------------- augmentation


def transform_matrix(height, width, flip, angle, scale, translation) -> tf.Tensor:
    """The 8 projective-transform parameters of one flip/rotation/scale/translation.

    The image is flipped left-right (if ``flip``), rotated by ``angle`` radians and scaled
    by ``scale`` about its centre, then shifted by ``translation = (dy, dx)`` pixels. As
    ``ImageProjectiveTransformV3`` expects, the result maps *output* pixel coordinates
    ``(x, y)`` to the *input* coordinates sampled there.

    Returns:
        float32 (8,): ``[a0, a1, a2, b0, b1, b2, 0, 0]``.
    """
    height = tf.cast(height, tf.float32)
    width = tf.cast(width, tf.float32)
    angle = tf.cast(angle, tf.float32)
    scale = tf.cast(scale, tf.float32)
    dy = tf.cast(translation[0], tf.float32)
    dx = tf.cast(translation[1], tf.float32)
    flip_sign = tf.where(tf.cast(flip, tf.bool), -1.0, 1.0)
    center_x = (width - 1.0) / 2.0
    center_y = (height - 1.0) / 2.0
    cos, sin = tf.cos(angle), tf.sin(angle)
    # input - c = F R(-angle) (output - c - t) / scale, F = diag(flip_sign, 1).
    a0, a1 = flip_sign * cos / scale, flip_sign * sin / scale
    b0, b1 = -sin / scale, cos / scale
    shifted_x, shifted_y = center_x + dx, center_y + dy
    a2 = center_x - a0 * shifted_x - a1 * shifted_y
    b2 = center_y - b0 * shifted_x - b1 * shifted_y
    return tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])


def apply_transform(image, transform, interpolation: str) -> tf.Tensor:
    """Resample one (H, W, C) float image through a :func:`transform_matrix` result.

    Args:
        image: (H, W, C) float32.
        transform: (8,) float32, output-to-input coordinates.
        interpolation: ``"BILINEAR"`` for images, ``"NEAREST"`` for masks.

    Returns:
        (H, W, C) float32; pixels sampled from outside the image are 0.
    """
    output_shape = tf.shape(image)[:2]
    transformed = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis],
        transforms=transform[tf.newaxis],
        output_shape=output_shape,
        fill_value=tf.constant(0.0, tf.float32),
        interpolation=interpolation,
        fill_mode="CONSTANT",
    )
    return transformed[0]


def _as_stateless_seed(seed) -> tf.Tensor:
    if isinstance(seed, tf.random.Generator):
        return seed.make_seeds(1)[:, 0]
    seed = tf.convert_to_tensor(seed)
    if seed.dtype not in (tf.int32, tf.int64):
        seed = tf.cast(seed, tf.int64)
    if not seed.shape.is_compatible_with([2]):
        raise ValueError(
            f"seed must be a tf.random.Generator or a shape-(2,) int pair, got shape {seed.shape}"
        )
    return seed


def _adjust_intensity(image, seed, config: AugmentConfig):
    brightness_seed, contrast_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    delta = tf.random.stateless_uniform(
        [], brightness_seed, -config.max_brightness, config.max_brightness
    )
    factor = tf.random.stateless_uniform(
        [], contrast_seed, 1.0 - config.max_contrast, 1.0 + config.max_contrast
    )
    # One mean over all channels, so contrast keeps the hue of the SE colour map.
    mean = tf.reduce_mean(image)
    return tf.clip_by_value((image - mean) * factor + mean + delta, 0.0, 1.0)


def augment(example: dict, seed, config: AugmentConfig | None = None) -> dict:
    """Random training augmentation, identical geometry for B-mode, SE-mode and mask.

    One random transform (left-right flip with probability 1/2 if enabled, rotation up to
    ``max_rotation_deg``, scale in ``1 +- max_scale``, shift up to ``max_translation`` of the
    side) is built as a single projective matrix and applied to B-mode and SE-mode (bilinear)
    and to the mask (nearest neighbour, so it stays in {0, 1}); pixels that come from outside
    the image are 0. Brightness (``+- max_brightness``) and contrast (``1 +- max_contrast``)
    change the images only, drawn apart for B and SE because each modality has its own gain
    on the scanner; SE is left untouched where ``has_semode`` is False so absent SE stays 0.
    Intensity is changed before the geometry, so the fill stays exactly 0.

    Args:
        example: a :func:`normalize`-d example (float images in [0, 1]).
        seed: a shape-(2,) int seed for the stateless ops, or a ``tf.random.Generator`` (one
            seed is drawn from it).
        config: an ``AugmentConfig``; default ``AugmentConfig()``.

    Returns:
        The example with ``bmode``, ``semode`` and ``mask`` transformed; other keys unchanged.

    Raises:
        ValueError: images that are not float (call :func:`normalize` first), or a bad seed.
    """
    config = config or AugmentConfig()
    for key in (*IMAGE_KEYS, "mask"):
        if key in example and not tf.as_dtype(example[key].dtype).is_floating:
            raise ValueError(
                f"augment expects float images; {key!r} is {example[key].dtype}, normalize first"
            )
    seed = _as_stateless_seed(seed)
    seeds = tf.random.experimental.stateless_split(seed, 6)
    flip_seed, angle_seed, scale_seed, shift_seed, bmode_seed, semode_seed = tf.unstack(seeds)

    example = dict(example)
    if config.max_brightness > 0 or config.max_contrast > 0:
        if "bmode" in example:
            example["bmode"] = _adjust_intensity(example["bmode"], bmode_seed, config)
        if "semode" in example:
            adjusted = _adjust_intensity(example["semode"], semode_seed, config)
            has_semode = tf.cast(example.get("has_semode", True), tf.bool)
            example["semode"] = tf.where(has_semode, adjusted, example["semode"])

    reference = example["bmode"] if "bmode" in example else example["mask"]
    height = tf.shape(reference)[0]
    width = tf.shape(reference)[1]
    if config.flip_left_right:
        flip = tf.random.stateless_uniform([], flip_seed) < 0.5
    else:
        flip = tf.constant(False)
    max_angle = math.radians(config.max_rotation_deg)
    angle = tf.random.stateless_uniform([], angle_seed, -max_angle, max_angle)
    scale = tf.random.stateless_uniform(
        [], scale_seed, 1.0 - config.max_scale, 1.0 + config.max_scale
    )
    shift = tf.random.stateless_uniform(
        [2], shift_seed, -config.max_translation, config.max_translation
    )
    translation = shift * tf.cast(tf.stack([height, width]), tf.float32)
    transform = transform_matrix(height, width, flip, angle, scale, translation)

    present = [key for key in IMAGE_KEYS if key in example]
    if present:
        # One call for both modalities: the same matrix, the same sampling.
        channels = [example[key].shape[-1] for key in present]
        stacked = tf.concat([example[key] for key in present], axis=-1)
        moved = apply_transform(stacked, transform, "BILINEAR")
        for key, part in zip(present, tf.split(moved, channels, axis=-1)):
            example[key] = part
    if "mask" in example:
        example["mask"] = apply_transform(example["mask"], transform, "NEAREST")
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
) -> tf.data.Dataset:
    """Batches of normalized (and for training, shuffled and augmented) examples (§3.1, §3.4).

    Steps: :func:`select_ids` (if ``image_ids``), cache, shuffle (training only, reshuffled
    every epoch), :func:`normalize`, :func:`augment` (training only, and only if
    ``augment_config`` is given), the lesion crop (:func:`~tf_bimodal.data.cropping.crop_pair`,
    if ``crop``; cut from the augmented mask, so it follows the moved lesion) or a plain resize
    (if only ``output_size``), key selection, batch, prefetch. Maps run in parallel and keep
    their order; all randomness comes from ``seed``, so a pipeline built twice with the same
    seed yields the same batches, epoch after epoch.

    Args:
        ds: dataset of example dicts (``tf_bimodal.data.schema``), unbatched.
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

    Returns:
        A ``tf.data.Dataset`` of batched dicts.

    Raises:
        ValueError: bad ``batch_size`` / ``shuffle_buffer``, unknown ``keys``, or a crop whose
            output size cannot be known.
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

    if image_ids is not None:
        ds = select_ids(ds, image_ids)
    if cache:
        ds = ds.cache() if cache is True else ds.cache(cache)
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(normalize, num_parallel_calls=AUTOTUNE)
    if training and augment_config is not None:
        # One fresh stateless seed pair per example and epoch, reproducible from ``seed``.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(
            2, drop_remainder=True
        )
        ds = tf.data.Dataset.zip(ds, seeds).map(
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
