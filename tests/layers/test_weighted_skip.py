"""The weighted skip connection of W-MM-U-Net and its fixed modality weights (paper §3.2.3)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_bimodal.layers.weighted_skip import FixedModalityWeights, WeightedSkip, normalize_weights

from harness import check_config_round_trip, dtype_policy, run_layer_test

RNG = np.random.default_rng(0)


# --------------------------------------------------------------------------- harness

WEIGHTED_SKIP_CASES = [
    # number of paths P, feature shape, expected output shape
    (1, (2, 16, 16, 4), (None, 16, 16, 4)),
    (4, (3, 8, 8, 2), (None, 8, 8, 2)),  # the paper: B-mode + R, G, B of the SE image
]


@pytest.mark.parametrize("num_paths, feature_shape, expected_shape", WEIGHTED_SKIP_CASES)
def test_weighted_skip_harness(num_paths, feature_shape, expected_shape):
    features = [RNG.random(feature_shape, dtype=np.float32) for _ in range(num_paths)]
    weights = RNG.random((feature_shape[0], num_paths), dtype=np.float32) + 0.1
    run_layer_test(WeightedSkip, {}, {"features": features, "weights": weights}, expected_shape)


FIXED_WEIGHTS_CASES = [
    # init kwargs, reference input shape, expected output shape
    ({"modality_weights": [1.0]}, (2, 16, 16, 1), (None, 1)),
    ({"modality_weights": [2, 1, 1, 1]}, (3, 4), (None, 4)),
]


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", FIXED_WEIGHTS_CASES)
def test_fixed_modality_weights_harness(kwargs, input_shape, expected_shape):
    run_layer_test(FixedModalityWeights, kwargs, RNG.random(input_shape, dtype=np.float32), expected_shape)


@pytest.mark.parametrize("policy", ["float16", "bfloat16"])
def test_fixed_modality_weights_follow_the_compute_dtype(policy):
    """Under a mixed policy the weights have the dtype of the skip features they weight."""
    with dtype_policy(policy):
        weights = FixedModalityWeights([0.5, 1 / 6, 1 / 6, 1 / 6])(np.zeros((2, 4, 4, 1), np.float32))
    assert keras.backend.standardize_dtype(weights.dtype) == policy
    values = np.asarray(keras.ops.cast(weights, "float32"))
    np.testing.assert_allclose(values, [[0.5, 1 / 6, 1 / 6, 1 / 6]] * 2, rtol=1e-2)


# --------------------------------------------------------------------------- behaviour


def test_weighted_skip_with_equal_weights_is_the_average():
    features = [RNG.random((2, 4, 4, 3), dtype=np.float32) for _ in range(4)]
    weights = np.full((2, 4), 0.25, np.float32)
    out = WeightedSkip()(features, weights)
    np.testing.assert_allclose(out, np.mean(features, axis=0), rtol=1e-6)


def test_weighted_skip_uses_per_image_weights_normalised():
    ones, twos = np.ones((2, 2, 2, 1), np.float32), 2 * np.ones((2, 2, 2, 1), np.float32)
    weights = np.array([[1.0, 3.0], [2.0, 0.0]], np.float32)  # rows normalised to [.25, .75], [1, 0]
    out = np.asarray(WeightedSkip()([ones, twos], weights))
    np.testing.assert_allclose(out[0], 1.75)
    np.testing.assert_allclose(out[1], 1.0)


def test_weighted_skip_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="one weight per feature map, got 3 weights for 2"):
        WeightedSkip()([keras.Input((4, 4, 2)), keras.Input((4, 4, 2))], keras.Input((3,)))
    with pytest.raises(ValueError, match="same shape"):
        WeightedSkip()([keras.Input((4, 4, 2)), keras.Input((4, 4, 3))], keras.Input((2,)))


def test_fixed_modality_weights_broadcast_and_normalise():
    layer = FixedModalityWeights([2.0, 1.0, 1.0])
    out = np.asarray(layer(np.zeros((3, 4, 4, 1), np.float32)))
    np.testing.assert_allclose(out, [[0.5, 0.25, 0.25]] * 3)
    restored = check_config_round_trip(layer)
    np.testing.assert_allclose(restored.modality_weights, [0.5, 0.25, 0.25])


# --------------------------------------------------------------------------- arguments and config


@pytest.mark.parametrize(
    "weights, num_paths, rule",
    [
        ([], None, "at least one weight"),
        ([0.5, 0.5], 4, "one weight per modal path \\(4 paths\\), got 2"),
        ([1.0, 0.0], 2, "finite and > 0"),
        ([1.0, -1.0], 2, "finite and > 0"),
        ([1.0, float("nan")], 2, "finite and > 0"),
    ],
)
def test_modality_weights_validation(weights, num_paths, rule):
    with pytest.raises(ValueError, match=rule):
        normalize_weights(weights, num_paths)


@pytest.mark.parametrize(
    "kwargs, rule",
    [
        ({"modality_weights": None}, "at least one weight"),
        ({"modality_weights": []}, "at least one weight"),
        ({"modality_weights": [1.0, float("inf")]}, "finite and > 0"),
        ({"modality_weights": [0.0]}, "finite and > 0"),
    ],
)
def test_fixed_modality_weights_rejects_bad_arguments(kwargs, rule):
    with pytest.raises(ValueError, match=f"FixedModalityWeights: .*{rule}"):
        FixedModalityWeights(**kwargs)


def test_weighted_skip_serializes():
    check_config_round_trip(WeightedSkip(name="skip_level1_weighted"))
