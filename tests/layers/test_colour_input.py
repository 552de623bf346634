"""The colour input processing layer of W-MM-U-Net (paper §3.2.1)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_bimodal.layers.colour_input import ColourInputProcessing, strain_from_colour

from harness import check_config_round_trip, dtype_policy, run_layer_test

RNG = np.random.default_rng(0)


def rgb_image(*pixels):
    """A (1, 1, len(pixels), 3) float image of the given 0-255 RGB pixels."""
    return np.asarray(pixels, np.float32).reshape(1, 1, len(pixels), 3) / 255.0


# --------------------------------------------------------------------------- harness

HARNESS_CASES = [
    # init kwargs, input shape, expected output shapes
    ({"mode": "channels"}, (2, 16, 16, 1), [(None, 16, 16, 1)]),
    ({"mode": "channels"}, (2, 16, 16, 3), [(None, 16, 16, 1)] * 3),
    ({"mode": "strain", "min_saturation": 0.3}, (2, 16, 16, 3), [(None, 16, 16, 1)]),
]


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", HARNESS_CASES)
def test_colour_layer_harness(kwargs, input_shape, expected_shape):
    # No weights: the fit step checks that the layer runs in a compiled training step.
    run_layer_test(ColourInputProcessing, kwargs, RNG.random(input_shape, dtype=np.float32), expected_shape)


# --------------------------------------------------------------------------- behaviour


@pytest.mark.parametrize(
    "mode, channels, expected_paths",
    [
        ("channels", 1, 1),
        ("channels", 3, 3),
        ("strain", 1, 1),
        ("strain", 3, 1),
    ],
)
def test_colour_layer_number_and_shape_of_paths(mode, channels, expected_paths):
    layer = ColourInputProcessing(mode=mode)
    image = RNG.random((2, 8, 8, channels), dtype=np.float32)
    paths = layer(image)
    assert isinstance(paths, list) and len(paths) == expected_paths == layer.num_outputs(channels)
    assert all(tuple(path.shape) == (2, 8, 8, 1) for path in paths)
    symbolic = layer(keras.Input((8, 8, channels)))
    assert [tuple(p.shape) for p in symbolic] == [(None, 8, 8, 1)] * expected_paths


def test_colour_layer_passes_grey_through_and_splits_rgb_in_order():
    grey = RNG.random((2, 4, 4, 1), dtype=np.float32)
    np.testing.assert_array_equal(ColourInputProcessing()(grey)[0], grey)
    colour = RNG.random((2, 4, 4, 3), dtype=np.float32)
    red, green, blue = ColourInputProcessing(mode="channels")(colour)
    np.testing.assert_array_equal(red[..., 0], colour[..., 0])
    np.testing.assert_array_equal(green[..., 0], colour[..., 1])
    np.testing.assert_array_equal(blue[..., 0], colour[..., 2])


def test_strain_inversion_orders_red_above_green_above_blue():
    # red (soft), yellow, green (average), cyan-blue, blue (hard), a grey pixel, black
    pixels = rgb_image((230, 0, 0), (250, 235, 0), (0, 220, 0), (0, 110, 255), (0, 0, 200), (128, 128, 128), (0, 0, 0))
    strain = np.asarray(ColourInputProcessing(mode="strain")(pixels)[0]).reshape(-1)
    red, yellow, green, light_blue, blue, grey, black = strain
    assert red > yellow > green > light_blue > blue
    np.testing.assert_allclose([red, green, blue, grey, black], [1.0, 0.5, 0.0, 0.5, 0.5], atol=1e-6)


def test_strain_inversion_inverts_the_phantom_colour_map():
    from tf_bimodal.data.phantom import strain_to_rgb

    true_strain = np.linspace(0.0, 1.0, 101, dtype=np.float32)
    colours = strain_to_rgb(true_strain).astype(np.float32)[None, None] / 255.0
    decoded = np.asarray(strain_from_colour(colours)).reshape(-1)
    assert np.all(np.diff(decoded) >= -1e-6), "decoded strain must rise with the true strain"
    assert decoded[0] < 0.05 and decoded[-1] > 0.95 and abs(decoded[50] - 0.5) < 0.05


@pytest.mark.parametrize("policy, ulp", [("float16", 2.0**-11), ("bfloat16", 2.0**-8)])
def test_strain_under_mixed_precision_is_the_float32_strain_rounded(policy, ulp):
    """The hue is computed in float32: the strain of the (autocast) input is only rounded."""
    colours = RNG.random((2, 8, 8, 3), dtype=np.float32)
    rounded_input = np.asarray(keras.ops.cast(keras.ops.cast(colours, policy), "float32"))
    reference = np.asarray(strain_from_colour(rounded_input))
    with dtype_policy(policy):
        (strain,) = ColourInputProcessing(mode="strain")(colours)
    assert keras.backend.standardize_dtype(strain.dtype) == policy
    np.testing.assert_allclose(np.asarray(keras.ops.cast(strain, "float32")), reference, rtol=0, atol=ulp / 2)
    assert keras.backend.standardize_dtype(strain_from_colour(keras.ops.cast(colours, policy)).dtype) == policy


# --------------------------------------------------------------------------- arguments and config


@pytest.mark.parametrize(
    "kwargs, channels, rule",
    [
        ({"mode": "hue"}, 3, "mode must be one of"),
        ({"min_saturation": 0.0}, 3, "min_saturation must be in"),
        ({"min_saturation": 1.5}, 3, "min_saturation must be in"),
        ({}, 2, "1 \\(grey\\) or 3 \\(RGB colour\\) channels, got 2"),
        ({}, 4, "1 \\(grey\\) or 3 \\(RGB colour\\) channels, got 4"),
    ],
)
def test_colour_layer_rejects_bad_arguments(kwargs, channels, rule):
    with pytest.raises(ValueError, match=rule):
        ColourInputProcessing(**kwargs)(np.zeros((1, 4, 4, channels), np.float32))


def test_colour_layer_serializes():
    restored = check_config_round_trip(
        ColourInputProcessing(mode="strain", min_saturation=0.3, name="semode_colour_processing")
    )
    assert restored.mode == "strain" and restored.min_saturation == 0.3
