"""The auto-weight ResNet of W-MM-U-Net (paper §3.2.2)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_bimodal.models.segmentation import build_segmenter
from tf_bimodal.models.segmentation.auto_weight import apply_auto_weight_resnet, apply_residual_block

from harness import run_model_test
from segmentation_helpers import TINY_CONFIG, random_inputs

RNG = np.random.default_rng(0)


def test_auto_weights_start_equal_and_top_skip_is_then_the_average():
    model = build_segmenter("w_mm_unet", TINY_CONFIG)
    inputs = random_inputs([1, 3])
    np.testing.assert_allclose(model.modality_weights_model(inputs), 0.25, rtol=1e-6)
    probe = keras.Model(
        model.inputs,
        [model.get_layer("skip_level1_weighted").output]
        + [model.get_layer(f"path{p}_level1_relu2").output for p in (1, 2, 3, 4)],
    )
    skip, *paths = probe(inputs)
    np.testing.assert_allclose(skip, np.mean(paths, axis=0), rtol=1e-5, atol=1e-6)


RESNET_CASES = [
    # stacked paths P, stage filters, batch norm, input side
    (4, (4,), True, 16),
    (2, (2, 4, 4), False, 32),
]


@pytest.mark.parametrize("num_paths, filters, use_batch_norm, side", RESNET_CASES)
def test_auto_weight_resnet_harness(num_paths, filters, use_batch_norm, side):
    """(batch, P) weights, summing to 1, float32 under any policy (the softmax is float32)."""

    def build():
        stacked = keras.Input((side, side, num_paths), name="stacked")
        return keras.Model(stacked, apply_auto_weight_resnet(stacked, num_paths, filters, use_batch_norm))

    data = RNG.random((3, side, side, num_paths), dtype=np.float32)
    model = run_model_test(build, data, (None, num_paths), expected_output_dtype="float32")
    np.testing.assert_allclose(np.asarray(model(data)), 1.0 / num_paths, rtol=1e-6)  # zero logits
    assert model.get_layer("auto_weight_logits").kernel.shape == (filters[-1], num_paths)


RESIDUAL_CASES = [
    # input shape, filters, stride, expected output shape, has a projection shortcut
    ((16, 16, 4), 4, 1, (None, 16, 16, 4), False),
    ((16, 16, 4), 8, 1, (None, 16, 16, 8), True),
    ((15, 15, 2), 4, 2, (None, 8, 8, 4), True),  # odd sides: "same" padding rounds up
]


@pytest.mark.parametrize("input_shape, filters, stride, expected_shape, projection", RESIDUAL_CASES)
def test_residual_block_harness(input_shape, filters, stride, expected_shape, projection):
    def build():
        x = keras.Input(input_shape)
        return keras.Model(x, apply_residual_block(x, filters, stride, True, name="block"))

    model = run_model_test(build, RNG.random((2, *input_shape), dtype=np.float32), expected_shape)
    names = {layer.name for layer in model.layers}
    assert ("block_shortcut" in names) == projection
    assert ("block_shortcut_pool" in names) == (stride != 1)
