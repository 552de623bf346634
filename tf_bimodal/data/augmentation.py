"""Training augmentation (paper §3.4): one flip / rotation / scale / shift for B-mode, SE-mode and
mask alike, and a brightness and contrast change per modality.

B-mode, SE-mode and mask show the same tissue, so every geometric augmentation is applied to
the three *identically* (one projective transform); the mask is resampled with nearest
neighbour so it stays binary. All randomness is stateless and seeded: the augmentation's values
are hashed from one seed pair per example and epoch (:func:`uniform_draws`), in elementwise ops
that draw a whole batch at once (:func:`draw_values_batch`).
"""

from __future__ import annotations

import math

import tensorflow as tf

from tf_bimodal.config import AugmentConfig

IMAGE_KEYS = ("bmode", "semode")
"""The image features; the mask is handled apart (nearest-neighbour, never intensity)."""


def transform_matrix(height, width, flip, angle, scale, translation) -> tf.Tensor:
    """The 8 projective-transform parameters of one flip/rotation/scale/translation.

    The image is flipped left-right (if ``flip``), rotated by ``angle`` radians and scaled
    by ``scale`` about its centre, then shifted by ``translation = (dy, dx)`` pixels. As
    ``ImageProjectiveTransformV3`` expects, the result maps *output* pixel coordinates
    ``(x, y)`` to the *input* coordinates sampled there.

    Every argument may also be a batch (``translation`` then (B, 2)); the result is then
    (B, 8).

    Returns:
        float32 (8,): ``[a0, a1, a2, b0, b1, b2, 0, 0]``.
    """
    height = tf.cast(height, tf.float32)
    width = tf.cast(width, tf.float32)
    angle = tf.cast(angle, tf.float32)
    scale = tf.cast(scale, tf.float32)
    translation = tf.cast(translation, tf.float32)
    dy, dx = translation[..., 0], translation[..., 1]
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
    zero = tf.zeros_like(a2)
    return tf.stack([a0, a1, a2, b0, b1, b2, zero, zero], axis=-1)


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
    """``seed`` as an int64 tensor of shape (..., 2) (a ``tf.random.Generator`` gives one pair)."""
    if isinstance(seed, tf.random.Generator):
        return seed.make_seeds(1)[:, 0]
    seed = tf.convert_to_tensor(seed)
    if seed.dtype not in (tf.int32, tf.int64):
        raise ValueError(f"seed must be a tf.random.Generator or int pairs, got dtype {seed.dtype.name}")
    if seed.shape.rank is not None and (seed.shape.rank == 0 or seed.shape[-1] not in (None, 2)):
        raise ValueError(
            f"seed must be a tf.random.Generator or a shape-(2,) int pair, got shape {seed.shape}"
        )
    return tf.cast(seed, tf.int64)


NUM_DRAWS = 9
"""Random values per augmentation (:func:`_draw_values`)."""

_GOLDEN = 0x9E3779B9
_MIX = (0x7FEB352D, 0x846CA68B)


def _mix32(x):
    """A 32-bit integer hash with good avalanche (uint32 in, uint32 out)."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, tf.uint32)))
    x = x * tf.constant(_MIX[0], tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(15, tf.uint32)))
    x = x * tf.constant(_MIX[1], tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, tf.uint32)))


def uniform_draws(seed, count: int) -> tf.Tensor:
    """float32 (..., count) in [0, 1): ``count`` values hashed from each int64 seed pair.

    A counter-based generator in elementwise integer ops: the four 32-bit words of a pair
    are folded, one after the other, into the hash of the value's index. A batch of seed
    pairs is drawn in one pass, and each pair gives the same values alone or in any batch,
    which is what lets the fused training step draw a batch at once and still give every
    example what :func:`augment` draws for it. The top 24 bits of each hash make the float.
    """
    seed = _as_stateless_seed(seed)
    words = tf.bitcast(seed, tf.uint32)  # (..., 2, 2): the low and high words of each int64
    words = tf.reshape(words, tf.concat([tf.shape(seed)[:-1], [4]], axis=0))
    counter = tf.constant([(k * _GOLDEN) & 0xFFFFFFFF for k in range(count)], tf.uint32)
    h = _mix32(counter + words[..., :1])
    for k in range(1, 4):
        h = _mix32(tf.bitwise.bitwise_xor(h, words[..., k : k + 1]) + counter)
    return tf.cast(tf.bitwise.right_shift(h, tf.constant(8, tf.uint32)), tf.float32) * (1.0 / (1 << 24))


def _adjust_intensity(image, intensity):
    delta, factor = intensity[0], intensity[1]
    # One mean over all channels, so contrast keeps the hue of the SE colour map.
    mean = tf.reduce_mean(image)
    return tf.clip_by_value((image - mean) * factor + mean + delta, 0.0, 1.0)


def _draw_values(seed, config: AugmentConfig) -> tf.Tensor:
    """float32 (..., 9): every random value of one :func:`augment` call per seed pair.

    ``[flip draw, angle, scale, shift y, shift x, B brightness, B contrast, SE brightness,
    SE contrast]``, from :func:`uniform_draws`; the shift is a fraction of the side, the image
    flips where the flip draw is below 1/2. ``seed`` is one (2,) pair or a batch (B, 2).
    """
    u = uniform_draws(seed, NUM_DRAWS)
    max_angle = math.radians(config.max_rotation_deg)

    def between(k, low, high):
        return low + (high - low) * u[..., k]

    flip = u[..., 0] if config.flip_left_right else tf.ones_like(u[..., 0])
    return tf.stack(
        [
            flip,
            between(1, -max_angle, max_angle),
            between(2, 1.0 - config.max_scale, 1.0 + config.max_scale),
            between(3, -config.max_translation, config.max_translation),
            between(4, -config.max_translation, config.max_translation),
            between(5, -config.max_brightness, config.max_brightness),
            between(6, 1.0 - config.max_contrast, 1.0 + config.max_contrast),
            between(7, -config.max_brightness, config.max_brightness),
            between(8, 1.0 - config.max_contrast, 1.0 + config.max_contrast),
        ],
        axis=-1,
    )


def augmentation_from_values(values, height, width) -> dict:
    """:func:`draw_augmentation`'s dict from :func:`_draw_values` (one (9,) or a batch (B, 9)):
    the fused training step draws outside its compiled part and builds the transforms inside."""
    translation = values[..., 3:5] * tf.cast(tf.stack([height, width]), tf.float32)
    return {
        "transform": transform_matrix(
            height, width, values[..., 0] < 0.5, values[..., 1], values[..., 2], translation
        ),
        "bmode_intensity": values[..., 5:7],
        "semode_intensity": values[..., 7:9],
    }


def draw_augmentation(seed, config: AugmentConfig, height, width) -> dict:
    """The random parameters of one :func:`augment` call, drawn from a stateless ``seed``.

    Returns:
        ``{"transform": (8,) float32, "bmode_intensity": (2,), "semode_intensity": (2,)}``:
        the :func:`transform_matrix` of the flip / rotation / scale / shift, and per modality
        the brightness shift and contrast factor.
    """
    return augmentation_from_values(_draw_values(seed, config), height, width)


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
        example: a :func:`~tf_bimodal.data.pipeline.normalize`-d example (float images in [0, 1]).
        seed: a shape-(2,) int seed for the stateless ops, or a ``tf.random.Generator`` (one
            seed is drawn from it).
        config: an ``AugmentConfig``; default ``AugmentConfig()``.

    Returns:
        The example with ``bmode``, ``semode`` and ``mask`` transformed; other keys unchanged.

    Raises:
        ValueError: images that are not float (call :func:`~tf_bimodal.data.pipeline.normalize`
            first), or a bad seed.
    """
    config = config or AugmentConfig()
    for key in (*IMAGE_KEYS, "mask"):
        if key in example and not tf.as_dtype(example[key].dtype).is_floating:
            raise ValueError(
                f"augment expects float images; {key!r} is {example[key].dtype}, normalize first"
            )
    reference = example["bmode"] if "bmode" in example else example["mask"]
    drawn = draw_augmentation(seed, config, tf.shape(reference)[0], tf.shape(reference)[1])
    transform = drawn["transform"]

    example = dict(example)
    if config.max_brightness > 0 or config.max_contrast > 0:
        if "bmode" in example:
            example["bmode"] = _adjust_intensity(example["bmode"], drawn["bmode_intensity"])
        if "semode" in example:
            adjusted = _adjust_intensity(example["semode"], drawn["semode_intensity"])
            has_semode = tf.cast(example.get("has_semode", True), tf.bool)
            example["semode"] = tf.where(has_semode, adjusted, example["semode"])

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


def draw_values_batch(seeds, config: AugmentConfig) -> tf.Tensor:
    """(B, 9) float32: :func:`_draw_values` of each of (B, 2) ``seeds``, in one pass.

    Each example gets what :func:`augment` draws from the same seed (:func:`uniform_draws`).
    """
    return _draw_values(seeds, config)
