"""Training augmentation: one transform for B-mode, SE-mode and mask, intensity per modality,
stateless seeded draws (§3.4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.config import AugmentConfig
from tf_bimodal.data.augmentation import (
    apply_transform,
    augment,
    draw_augmentation,
    draw_values_batch,
    transform_matrix,
    uniform_draws,
)
from tf_bimodal.data.pipeline import normalize

from helpers import geometry_only_augment, pattern_example

SIZE = 32


# --------------------------------------------------------------------------- augment


def test_transform_matrix_identity_and_flip_are_exact():
    image = tf.constant(np.random.default_rng(0).random((SIZE, 24, 2)), tf.float32)
    identity = transform_matrix(SIZE, 24, False, 0.0, 1.0, (0.0, 0.0))
    np.testing.assert_allclose(apply_transform(image, identity, "BILINEAR"), image, atol=1e-6)
    flip = transform_matrix(SIZE, 24, True, 0.0, 1.0, (0.0, 0.0))
    np.testing.assert_allclose(
        apply_transform(image, flip, "BILINEAR"), image.numpy()[:, ::-1], atol=1e-6
    )
    shift = transform_matrix(SIZE, 24, False, 0.0, 1.0, (3.0, 2.0))  # down 3, right 2
    moved = apply_transform(image, shift, "NEAREST").numpy()
    np.testing.assert_allclose(moved[3:, 2:], image.numpy()[:-3, :-2], atol=1e-6)
    assert not moved[:3].any() and not moved[:, :2].any()  # fill value 0


def test_quarter_turn_matches_rot90():
    image = tf.constant(np.random.default_rng(1).random((SIZE, SIZE, 1)), tf.float32)
    turn = transform_matrix(SIZE, SIZE, False, math.pi / 2, 1.0, (0.0, 0.0))
    turned = apply_transform(image, turn, "NEAREST").numpy()
    assert any(np.allclose(turned, np.rot90(image.numpy(), k)) for k in (1, 3))


@pytest.mark.parametrize("seed", [(0, 0), (1, 2), (7, 3), (11, 5)])
def test_augment_moves_bmode_semode_and_mask_together(seed):
    original = normalize(pattern_example())
    augmented = augment(original, tf.constant(seed), geometry_only_augment())
    bmode = augmented["bmode"].numpy()[..., 0]
    semode = augmented["semode"].numpy()
    mask = augmented["mask"].numpy()[..., 0]
    assert not np.array_equal(mask, original["mask"].numpy()[..., 0])  # it did move
    assert set(np.unique(mask)) <= {0.0, 1.0}  # nearest keeps it binary
    for channel in range(3):
        np.testing.assert_allclose(semode[..., channel], bmode, atol=1e-6)
    # Bilinear of a binary image is >= 0.25 where the nearest source pixel is 1 and <= 0.75
    # where it is 0; a mask moved differently from the images would break this.
    assert np.all(bmode[mask == 1] >= 0.25 - 1e-5)
    assert np.all(bmode[mask == 0] <= 0.75 + 1e-5)
    assert mask.sum() > 0


def test_flip_only_gives_original_or_mirror():
    config = AugmentConfig(
        max_rotation_deg=0.0, max_scale=0.0, max_translation=0.0,
        max_brightness=0.0, max_contrast=0.0,
    )
    original = normalize(pattern_example())
    outcomes = set()
    for seed in range(12):
        mask = augment(original, tf.constant([seed, 0]), config)["mask"].numpy()
        if np.array_equal(mask, original["mask"].numpy()):
            outcomes.add("same")
        else:
            np.testing.assert_array_equal(mask, original["mask"].numpy()[:, ::-1])
            outcomes.add("flipped")
    assert outcomes == {"same", "flipped"}


def test_intensity_changes_images_only():
    config = AugmentConfig(
        flip_left_right=False, max_rotation_deg=0.0, max_scale=0.0, max_translation=0.0,
        max_brightness=0.2, max_contrast=0.2,
    )
    original = normalize(pattern_example())
    # Mid-grey values, so clipping at 0 and 1 cannot hide a change.
    original["bmode"] = 0.25 + 0.5 * original["bmode"]
    original["semode"] = 0.25 + 0.5 * original["semode"]
    augmented = augment(original, tf.constant([3, 4]), config)
    np.testing.assert_array_equal(augmented["mask"], original["mask"])
    assert not np.allclose(augmented["bmode"], original["bmode"])
    assert not np.allclose(augmented["semode"], original["semode"])
    for key in ("bmode", "semode"):
        values = augmented[key].numpy()
        assert 0.0 <= values.min() <= values.max() <= 1.0


def test_absent_semode_stays_zero():
    original = normalize(pattern_example(has_semode=False))
    augmented = augment(original, tf.constant([5, 6]), AugmentConfig(max_brightness=0.5))
    assert not np.any(augmented["semode"].numpy())


def test_augment_is_deterministic_by_seed():
    original = normalize(pattern_example())
    first = augment(original, tf.constant([1, 2]), AugmentConfig())
    second = augment(original, tf.constant([1, 2]), AugmentConfig())
    other = augment(original, tf.constant([2, 1]), AugmentConfig())
    for key in ("bmode", "semode", "mask"):
        np.testing.assert_array_equal(first[key], second[key])
    assert not np.array_equal(first["bmode"], other["bmode"])
    generated = [
        augment(original, tf.random.Generator.from_seed(9), AugmentConfig())["bmode"]
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*generated)


def test_augment_refuses_unnormalized_images_and_bad_seeds():
    with pytest.raises(ValueError, match="normalize first"):
        augment({k: tf.constant(v) for k, v in pattern_example().items()}, tf.constant([0, 0]))
    with pytest.raises(ValueError, match="seed"):
        augment(normalize(pattern_example()), tf.constant([1, 2, 3]))


def test_uniform_draws_are_uniform_independent_and_the_same_per_pair_or_batch():
    seeds = tf.constant(np.random.default_rng(0).integers(-2**62, 2**62, size=(20000, 2)), tf.int64)
    u = uniform_draws(seeds, 9).numpy()
    assert u.shape == (20000, 9) and u.dtype == np.float32
    assert u.min() >= 0.0 and u.max() < 1.0
    np.testing.assert_allclose(u.mean(axis=0), 0.5, atol=0.01)
    np.testing.assert_allclose(u.std(axis=0), 1 / math.sqrt(12), atol=0.005)
    for k in range(10):  # a 10-bin histogram of every draw flat within 4 binomial SDs
        share = ((u >= k / 10) & (u < (k + 1) / 10)).mean(axis=0)
        np.testing.assert_allclose(share, 0.1, atol=0.0085)
    correlation = np.corrcoef(u.T) - np.eye(9)
    assert np.abs(correlation).max() < 0.03
    # Neighbouring seeds (counters) are not correlated either.
    counters = tf.stack([tf.range(20000, dtype=tf.int64), tf.zeros(20000, tf.int64)], axis=1)
    v = uniform_draws(counters, 1).numpy()[:, 0]
    assert abs(np.corrcoef(v[:-1], v[1:])[0, 1]) < 0.03 and abs(v.mean() - 0.5) < 0.01
    # One pair gives the same values alone as inside any batch.
    np.testing.assert_array_equal(uniform_draws(seeds[7], 9).numpy(), u[7])
    np.testing.assert_array_equal(uniform_draws(seeds[5:9], 9).numpy(), u[5:9])


def test_batch_draws_are_the_per_example_draws_and_respect_the_ranges():
    config = AugmentConfig(max_rotation_deg=10.0, max_scale=0.1, max_translation=0.05,
                           max_brightness=0.2, max_contrast=0.3)
    seeds = tf.constant(np.random.default_rng(1).integers(0, 2**40, size=(256, 2)), tf.int64)
    values = draw_values_batch(seeds, config).numpy()
    assert values.shape == (256, 9)
    for i in (0, 100):  # what augment() draws for one example
        drawn = draw_augmentation(seeds[i], config, SIZE, SIZE)
        np.testing.assert_array_equal(drawn["bmode_intensity"].numpy(), values[i, 5:7])
        np.testing.assert_array_equal(drawn["semode_intensity"].numpy(), values[i, 7:9])
    limits = [(0, 1), (-math.radians(10), math.radians(10)), (0.9, 1.1), (-0.05, 0.05), (-0.05, 0.05),
              (-0.2, 0.2), (0.7, 1.3), (-0.2, 0.2), (0.7, 1.3)]
    for k, (low, high) in enumerate(limits):
        assert low <= values[:, k].min() and values[:, k].max() <= high
        assert values[:, k].max() - values[:, k].min() > 0.8 * (high - low)
    no_flip = draw_values_batch(seeds, AugmentConfig(flip_left_right=False)).numpy()
    assert (no_flip[:, 0] == 1.0).all()
    with pytest.raises(ValueError, match="seed"):
        uniform_draws(tf.constant([0.5, 1.5]), 9)
