"""The mean over EmbraceNet's stacked "mc" draws (paper §3.3.1)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_bimodal.layers.stacked_sample_mean import StackedSampleMean

from harness import run_layer_test


@pytest.mark.parametrize("draws", [1, 2, 5])
def test_mean_over_sample_major_rows(draws):
    batch = 3
    values = np.arange(draws * batch * 2, dtype="float32").reshape(draws * batch, 2)
    reference = np.zeros((batch, 7), "float32")
    output = StackedSampleMean()(values, reference).numpy()
    expected = values.reshape(draws, batch, 2).mean(axis=0)  # row k * N + n is draw k of sample n
    np.testing.assert_allclose(output, expected)
    assert output.shape == (batch, 2)


def test_one_draw_passes_through():
    values = np.random.default_rng(0).random((4, 3)).astype("float32")
    np.testing.assert_array_equal(StackedSampleMean()(values, values).numpy(), values)


def test_symbolic_shape_follows_the_reference():
    probabilities, reference = keras.Input((2,)), keras.Input((5,))
    assert tuple(StackedSampleMean()(probabilities, reference).shape) == (None, 2)


def test_stacked_sample_mean_harness():
    """No fit step: the layer has no weights, and ``fit`` needs one batch size for all inputs."""
    rng = np.random.default_rng(1)
    data = {"inputs": rng.random((6, 2)).astype("float32"), "reference": rng.random((3, 4)).astype("float32")}
    run_layer_test(StackedSampleMean, {}, data, (None, 2), run_training_check=False)
