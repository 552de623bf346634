"""Adaptive average pooling to a fixed grid, as torchvision's VGG-16 (paper §3.1, §3.3.2)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_bimodal.layers.adaptive_pooling import AdaptiveAveragePooling2D, adaptive_pooling_matrix

from harness import check_config_round_trip, run_layer_test


def _torch_adaptive_average(values, output_size):
    """PyTorch's AdaptiveAvgPool2d bins, written out: floor(i n / m) .. ceil((i + 1) n / m)."""
    height, width = values.shape[1:3]
    out = np.zeros((values.shape[0], output_size, output_size, values.shape[3]))
    for i in range(output_size):
        h0, h1 = (i * height) // output_size, -((-(i + 1) * height) // output_size)
        for j in range(output_size):
            w0, w1 = (j * width) // output_size, -((-(j + 1) * width) // output_size)
            out[:, i, j] = values[:, h0:h1, w0:w1].mean(axis=(1, 2))
    return out


POOLING_CASES = [
    # input (H, W), output size
    ((10, 10), 7),  # a 336-pixel VGG-16 input, pooled as torchvision does
    ((7, 7), 7),  # 224 pixels: the identity
    ((2, 3), 7),  # smaller than the grid: inputs repeat
    ((9, 5), 3),
]


@pytest.mark.parametrize("size, output_size", POOLING_CASES)
def test_adaptive_pooling_matches_pytorch_bins(size, output_size):
    values = np.random.default_rng(0).normal(size=(2, *size, 3)).astype("float32")
    pooled = AdaptiveAveragePooling2D(output_size)(values).numpy()
    np.testing.assert_allclose(pooled, _torch_adaptive_average(values, output_size), rtol=1e-5, atol=1e-6)


def test_adaptive_pooling_identity_and_rows_sum_to_one():
    np.testing.assert_array_equal(adaptive_pooling_matrix(7, 7), np.eye(7, dtype="float32"))
    np.testing.assert_allclose(adaptive_pooling_matrix(10, 7).sum(axis=1), 1.0, rtol=1e-6)


HARNESS_CASES = [
    # init kwargs, input shape, expected output shape
    (dict(output_size=7), (2, 10, 10, 3), (None, 7, 7, 3)),
    (dict(output_size=4), (2, 2, 3, 1), (None, 4, 4, 1)),
]


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", HARNESS_CASES)
def test_adaptive_pooling_harness(kwargs, input_shape, expected_shape):
    values = np.random.default_rng(0).normal(size=input_shape).astype("float32")
    run_layer_test(AdaptiveAveragePooling2D, kwargs, values, expected_shape)


@pytest.mark.parametrize("kwargs", [dict(output_size=0), dict(output_size=2.0)])
def test_adaptive_pooling_invalid(kwargs):
    with pytest.raises(ValueError, match="output_size"):
        AdaptiveAveragePooling2D(**kwargs)


@pytest.mark.parametrize("input_shape", [(None, 8, 3), (None, None, 8, 3)])
def test_adaptive_pooling_needs_rank_4_and_static_sides(input_shape):
    with pytest.raises(ValueError, match="known H and W"):
        AdaptiveAveragePooling2D(2)(keras.Input(batch_shape=input_shape))


def test_layer_config_round_trip():
    check_config_round_trip(AdaptiveAveragePooling2D(name="probe", output_size=5))
