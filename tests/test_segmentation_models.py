"""Segmenters (paper §3.2, §4.1.1): shapes, argument checks, names, serialization, training."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.config import SEGMENTATION_MODELS, SegmentationConfig
from tf_bimodal.models.segmentation import MultimodalUNet, UNet, build_segmenter
from tf_bimodal.models.segmentation.factory import MODEL_INPUTS, default_manual_weights
from tf_bimodal.training.segmentation import compile_segmenter

TINY = dict(stackwise_num_filters=(4, 8), bottleneck_filters=8)
TINY_CONFIG = SegmentationConfig(image_size=32, auto_weight_filters=(4,), batch_size=4, learning_rate=1e-2, **TINY)
RNG = np.random.default_rng(0)


def random_inputs(channels, batch=2, size=32):
    return [RNG.random((batch, size, size, c), dtype=np.float32) for c in channels]


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    "input_channels, colour_mode, weighting, num_paths",
    [
        ((1,), "channels", "equal", 1),
        ((3,), "channels", "auto", 3),
        ((1, 3), "channels", "equal", 4),  # the paper: B-mode + RGB SE = 4 paths
        ((1, 3), "channels", "auto", 4),
        ((1, 3), "strain", "auto", 2),
        ((1, 1, 1), "channels", "equal", 3),
        ((1, 3, 3, 1), "channels", "auto", 8),
        ((1, 3, 1, 3, 1), "strain", "equal", 5),
    ],
)
def test_multimodal_unet_output_shape_for_1_to_5_inputs(input_channels, colour_mode, weighting, num_paths):
    names = [f"modality{i}" for i in range(len(input_channels))]
    model = MultimodalUNet(
        input_names=names, input_channels=input_channels, colour_mode=colour_mode,
        weighting=weighting, auto_weight_filters=(4,), **TINY,
    )
    assert len(model.path_names) == num_paths
    output = model(random_inputs(input_channels))
    assert tuple(output.shape) == (2, 32, 32, 1)
    assert tuple(model.output.shape) == (None, None, None, 1)
    weights = np.asarray(model.modality_weights_model(random_inputs(input_channels)))
    assert weights.shape == (2, num_paths)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("channels, size", [(1, 32), (3, 32), (1, 48)])
def test_unet_output_shape(channels, size):
    model = UNet(input_channels=channels, image_size=size, **TINY)
    assert tuple(model(random_inputs([channels], size=size)).shape) == (2, size, size, 1)
    assert model.modality_weights_model is None


@pytest.mark.parametrize("model_name", SEGMENTATION_MODELS)
def test_factory_builds_each_table1_model(model_name):
    model = build_segmenter(model_name, TINY_CONFIG)
    assert model.name == model_name
    inputs = {"bmode": random_inputs([1])[0], "semode": random_inputs([3])[0], "mask": random_inputs([1])[0]}
    assert tuple(model(inputs).shape) == (2, 32, 32, 1)
    assert [tensor.name for tensor in model.inputs] == list(MODEL_INPUTS[model_name])


def test_default_manual_weights_split_each_modality_over_its_paths():
    np.testing.assert_allclose(default_manual_weights(["bmode", "semode"], [1, 3]), [1 / 2, 1 / 6, 1 / 6, 1 / 6])
    model = build_segmenter("w_mm_unet_manual", TINY_CONFIG)
    np.testing.assert_allclose(model.modality_weights, [1 / 2, 1 / 6, 1 / 6, 1 / 6])
    custom = build_segmenter("w_mm_unet_manual", dataclasses.replace(TINY_CONFIG, manual_weights=(2, 1, 1, 0.5)))
    np.testing.assert_allclose(custom.modality_weights, np.array([2, 1, 1, 0.5]) / 4.5)


# --------------------------------------------------------------------------- invalid arguments


@pytest.mark.parametrize(
    "kwargs, rule",
    [
        ({"input_names": [], "input_channels": []}, "at least one input"),
        ({"input_names": ["a", "b"], "input_channels": [1]}, "one entry per input"),
        ({"input_names": ["a", "a"], "input_channels": [1, 1]}, "must be unique"),
        ({"input_channels": (1, 2)}, "1 \\(grey\\) or 3 \\(RGB colour\\) channels, got 2"),
        ({"colour_mode": "hsv"}, "colour_mode must be one of"),
        ({"weighting": "learned"}, "weighting must be one of"),
        ({"weighting": "manual"}, "needs modality_weights"),
        ({"weighting": "manual", "modality_weights": [1, 1]}, "one weight per modal path \\(4 paths\\), got 2"),
        ({"weighting": "manual", "modality_weights": [1, 1, 0, 1]}, "finite and > 0"),
        ({"weighting": "manual", "modality_weights": [1, 1, -1, 1]}, "finite and > 0"),
        ({"weighting": "equal", "modality_weights": [1, 1, 1, 1]}, "only with weighting='manual'"),
        ({"weighting": "auto", "auto_weight_filters": []}, "auto_weight_filters needs"),
        ({"stackwise_num_filters": []}, "at least one stage"),
        ({"stackwise_num_filters": [4, 0]}, "integer >= 1"),
        ({"bottleneck_filters": 0}, "bottleneck_filters must be an integer >= 1"),
        ({"image_size": 34}, "multiples of 2\\*\\*2 = 4"),
        ({"image_size": 2}, "multiples of 2\\*\\*2 = 4"),
    ],
)
def test_multimodal_unet_rejects_bad_arguments(kwargs, rule):
    arguments = {**TINY, **kwargs}
    with pytest.raises(ValueError, match=rule):
        MultimodalUNet(**arguments)


@pytest.mark.parametrize(
    "kwargs, rule",
    [
        ({"input_channels": 2}, "input_channels must be 1 \\(grey\\) or 3"),
        ({"image_size": 18}, "multiples of 2\\*\\*2 = 4"),
        ({"stackwise_num_filters": [8, 16, 32], "image_size": 36}, "multiples of 2\\*\\*3 = 8"),
    ],
)
def test_unet_rejects_bad_arguments(kwargs, rule):
    with pytest.raises(ValueError, match=rule):
        UNet(**{**TINY, **kwargs})


def test_factory_rejects_unknown_model():
    with pytest.raises(ValueError, match="segmentation model must be one of"):
        build_segmenter("deeplab", TINY_CONFIG)


# --------------------------------------------------------------------------- structure


def test_layers_are_named_by_path_level_and_role():
    model = build_segmenter("w_mm_unet", TINY_CONFIG)
    assert model.path_names == ["bmode", "semode_red", "semode_green", "semode_blue"]
    for name in (
        "bmode_colour_processing", "semode_colour_processing", "path1_level1_conv1", "path4_level2_conv2",
        "level2_hyper_dense_concat", "bottleneck_hyper_dense_concat", "bottleneck_conv2", "skip_level2_average",
        "skip_level1_weighted", "decoder_level1_upconv", "auto_weight_stem_conv", "auto_weight_logits",
        "modality_weights", "mask",
    ):
        assert model.get_layer(name) is not None, name


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


# --------------------------------------------------------------------------- serialization


@pytest.mark.parametrize("model_name", SEGMENTATION_MODELS)
def test_save_and_reload_gives_identical_outputs(model_name, tmp_path):
    model = build_segmenter(model_name, TINY_CONFIG)
    inputs = {"bmode": random_inputs([1])[0], "semode": random_inputs([3])[0]}
    expected = np.asarray(model(inputs, training=False))
    path = str(tmp_path / f"{model_name}.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(model)
    assert restored.get_config() == model.get_config()
    np.testing.assert_allclose(restored(inputs, training=False), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "model_name, config",
    [
        ("unet_semode", TINY_CONFIG),
        ("w_mm_unet_manual", TINY_CONFIG),
        ("w_mm_unet", dataclasses.replace(TINY_CONFIG, dense_across_levels=True, colour_mode="strain")),
    ],
)
def test_config_round_trip(model_name, config):
    model = build_segmenter(model_name, config)
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    inputs = {"bmode": random_inputs([1])[0], "semode": random_inputs([3])[0]}
    np.testing.assert_allclose(clone(inputs), model(inputs), rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- training


def _blob_batch(batch=4, size=32):
    """B-mode with a dark disc, SE red inside the disc and blue outside, mask = the disc."""
    yy, xx = np.mgrid[:size, :size]
    masks, bmodes, semodes = [], [], []
    for index in range(batch):
        cy, cx, radius = 10 + 3 * index, 12 + 2 * index, 6 + index
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < radius**2).astype(np.float32)
        masks.append(disc[..., None])
        bmodes.append((0.7 - 0.5 * disc + 0.05 * RNG.random((size, size)))[..., None])
        semodes.append(np.stack([disc, 0.3 * np.ones_like(disc), 1 - disc], axis=-1))
    return {"bmode": np.float32(bmodes), "semode": np.float32(semodes)}, np.float32(masks)


@pytest.mark.parametrize("model_name", ["unet_bmode", "mm_unet", "w_mm_unet"])
def test_training_steps_lower_the_loss(model_name):
    keras.utils.set_random_seed(1)
    model = compile_segmenter(build_segmenter(model_name, TINY_CONFIG), TINY_CONFIG)
    inputs, masks = _blob_batch()
    # train_on_batch returns the loss of the batch before that step's update (training mode,
    # so batch normalization uses the batch statistics in both).
    losses = [float(model.train_on_batch(inputs, masks, return_dict=True)["loss"]) for _ in range(4)]
    assert losses[-1] < losses[0], losses
    if model_name == "w_mm_unet":
        kernel = model.get_layer("auto_weight_logits").kernel
        assert float(tf.reduce_max(tf.abs(kernel))) > 0, "the zero-initialised weight logits must learn"
