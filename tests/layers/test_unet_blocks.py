"""U-Net building blocks and argument checks shared by the segmenters (paper §3.2, Fig. 2)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_bimodal.layers.unet_blocks import (
    apply_average_up_block,
    apply_conv_block,
    apply_down_sample,
    apply_segmentation_head,
    apply_up_block,
    check_filters,
    check_image_size,
)

from harness import run_model_test

RNG = np.random.default_rng(0)


def one_level_unet(channels: int, filters: int, use_batch_norm: bool) -> keras.Model:
    """Conv block, down-sampling, up block with the skip, head: every block once."""
    image = keras.Input((16, 16, channels), name="image")
    skip = apply_conv_block(image, filters, use_batch_norm, name="encoder")
    bottom = apply_conv_block(apply_down_sample(skip, name="encoder"), 2 * filters, use_batch_norm, name="bottleneck")
    x = apply_up_block(bottom, skip, filters, use_batch_norm, name="decoder")
    return keras.Model(image, [skip, bottom, x, apply_segmentation_head(x)])


@pytest.mark.parametrize(
    "channels, filters, use_batch_norm",
    [(1, 4, True), (3, 2, False)],
)
def test_unet_blocks_harness(channels, filters, use_batch_norm):
    run_model_test(
        lambda: one_level_unet(channels, filters, use_batch_norm),
        RNG.random((2, 16, 16, channels), dtype=np.float32),
        [(None, 16, 16, filters), (None, 8, 8, 2 * filters), (None, 16, 16, filters), (None, 16, 16, 1)],
        # The head is float32 under any policy (its docstring: the Dice loss needs exact sums).
        expected_output_dtype=[None, None, None, "float32"],
    )


def test_block_layer_names():
    model = one_level_unet(1, 2, True)
    for name in ("encoder_conv1", "encoder_bn2", "encoder_relu2", "encoder_pool", "decoder_upconv",
                 "decoder_concat", "decoder_conv2", "mask"):
        model.get_layer(name)
    assert model.get_layer("encoder_conv1").use_bias is False
    assert one_level_unet(1, 2, False).get_layer("encoder_conv1").use_bias is True


@pytest.mark.parametrize(
    "filters, bottleneck, rule",
    [
        ([], 8, "at least one stage"),
        ([4, 0], 8, "integer >= 1"),
        ([4, 2.5], 8, "integer >= 1"),
        ([4], 0, "bottleneck_filters must be an integer >= 1"),
        ([4], 1.5, "bottleneck_filters must be an integer >= 1"),
    ],
)
def test_check_filters_rejects(filters, bottleneck, rule):
    with pytest.raises(ValueError, match=rule):
        check_filters(filters, bottleneck, "where")


def test_check_filters_returns_ints():
    assert check_filters((4.0, 8), 16.0, "where") == ([4, 8], 16)


@pytest.mark.parametrize(
    "image_size, num_levels, expected",
    [(None, 3, None), (32, 2, (32, 32)), ((16, 48), 4, (16, 48)), ((None, 32), 5, (None, 32))],
)
def test_check_image_size_accepts(image_size, num_levels, expected):
    assert check_image_size(image_size, num_levels, "where") == expected


@pytest.mark.parametrize(
    "image_size, num_levels, rule",
    [
        (34, 2, "multiples of 2\\*\\*2 = 4"),
        (2, 2, "multiples of 2\\*\\*2 = 4"),
        ((32, 33), 1, "multiples of 2\\*\\*1 = 2"),
        ((32, 32, 3), 1, "an int or \\(height, width\\)"),
    ],
)
def test_check_image_size_rejects(image_size, num_levels, rule):
    with pytest.raises(ValueError, match=rule):
        check_image_size(image_size, num_levels, "where")


def test_average_up_block_is_ivdnet_skip_fusion():
    """``(up + f_1 + ... + f_P) / (P + 1)``, then the conv block reads ``filters`` channels."""
    bottom = keras.Input((4, 4, 6), name="bottom")
    skips = [keras.Input((8, 8, 3), name=f"skip{p}") for p in range(3)]
    x = apply_average_up_block(bottom, skips, 3, use_batch_norm=False, name="decoder")
    model = keras.Model([bottom, *skips], x)
    probe = keras.Model([bottom, *skips], [model.get_layer("decoder_upconv").output,
                                           model.get_layer("decoder_skip_average").output])
    data = [RNG.random((2, 4, 4, 6), dtype=np.float32)] + [RNG.random((2, 8, 8, 3), dtype=np.float32) for _ in skips]
    up, fused = probe(data)
    np.testing.assert_allclose(fused, (np.asarray(up) + sum(data[1:])) / 4, rtol=1e-5, atol=1e-6)
    assert model.get_layer("decoder_conv1").kernel.shape == (3, 3, 3, 3)


def test_average_up_block_harness():
    def build():
        bottom = keras.Input((4, 4, 4))
        skips = [keras.Input((8, 8, 2)) for _ in range(2)]
        return keras.Model([bottom, *skips], apply_average_up_block(bottom, skips, 2, True, name="decoder"))

    data = [RNG.random((2, 4, 4, 4), dtype=np.float32), *(RNG.random((2, 8, 8, 2), dtype=np.float32) for _ in "ab")]
    run_model_test(build, data, (None, 8, 8, 2))
