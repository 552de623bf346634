"""Segmentation layers: colour input processing (§3.2.1), weighted skip (§3.2.3), hyper-dense
contraction (§3.2.2)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_bimodal.layers.colour_input import ColourInputProcessing, strain_from_colour
from tf_bimodal.layers.hyper_dense import apply_hyper_dense_contraction
from tf_bimodal.layers.weighted_skip import FixedModalityWeights, WeightedSkip, normalise_weights

RNG = np.random.default_rng(0)


def rgb_image(*pixels):
    """A (1, 1, len(pixels), 3) float image of the given 0-255 RGB pixels."""
    return np.asarray(pixels, np.float32).reshape(1, 1, len(pixels), 3) / 255.0


def round_trip(layer):
    config = layer.get_config()
    restored = type(layer).from_config(config)
    assert restored.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"].startswith("tf_bimodal>")
    return keras.saving.deserialize_keras_object(serialized)


# --------------------------------------------------------------------------- colour input


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
    restored = round_trip(ColourInputProcessing(mode="strain", min_saturation=0.3, name="semode_colour_processing"))
    assert restored.mode == "strain" and restored.min_saturation == 0.3


# --------------------------------------------------------------------------- weighted skip


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
    restored = round_trip(layer)
    np.testing.assert_allclose(restored.modality_weights, [0.5, 0.25, 0.25])


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
        normalise_weights(weights, num_paths)


def test_weighted_skip_serializes():
    round_trip(WeightedSkip(name="skip_level1_weighted"))


# --------------------------------------------------------------------------- hyper-dense contraction


def test_hyper_dense_contraction_connects_all_paths():
    paths = [keras.Input((16, 16, 1), name=f"in{i}") for i in range(3)]
    features, bottom = apply_hyper_dense_contraction(paths, [4, 6], use_batch_norm=False)
    assert [[tuple(f.shape) for f in level] for level in features] == [
        [(None, 16, 16, 4)] * 3,
        [(None, 8, 8, 6)] * 3,
    ]
    assert tuple(bottom.shape) == (None, 4, 4, 18)
    model = keras.Model(paths, bottom)
    for path in (1, 2, 3):
        # level 2 of every path reads all three paths' pooled level-1 features (3 x 4 channels)
        assert model.get_layer(f"path{path}_level2_conv1").kernel.shape == (3, 3, 12, 6)
        assert model.get_layer(f"path{path}_level1_conv1").kernel.shape == (3, 3, 1, 4)
    assert model.get_layer("level2_hyper_dense_concat") is not None
    assert model.get_layer("bottleneck_hyper_dense_concat") is not None


def test_dense_across_levels_carries_each_level_input_forward():
    paths = [keras.Input((16, 16, 1), name=f"in{i}") for i in range(2)]
    features, bottom = apply_hyper_dense_contraction(paths, [4, 6, 8], use_batch_norm=False, dense_across_levels=True)
    model = keras.Model(paths, bottom)
    # level 2: 2 x 4 pooled outputs; level 3: 2 x 6 outputs + the pooled level-2 input (8)
    assert model.get_layer("path1_level2_conv1").kernel.shape == (3, 3, 8, 6)
    assert model.get_layer("path2_level3_conv1").kernel.shape == (3, 3, 20, 8)
    assert tuple(bottom.shape) == (None, 2, 2, 2 * 8 + 20)
