"""The VGG-16 feature extractor of the classifiers (paper §3.3.2)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_bimodal.models.classification import VGG16Backbone, apply_vgg_block
from tf_bimodal.models.classification.backbone_weights import copy_weights_by_name

from classification_helpers import SIZE, tiny_backbone
from harness import check_config_round_trip, run_model_saving_test, run_model_test


def test_backbone_layer_names_match_keras_applications():
    reference = keras.applications.VGG16(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    backbone = VGG16Backbone(image_shape=(SIZE, SIZE, 3), fc_units=4096)
    names = {layer.name for layer in backbone.layers}
    assert {layer.name for layer in reference.layers if layer.weights} <= names
    assert {"flatten", "fc1", "fc2"} <= names
    assert backbone.is_standard_vgg16 and not tiny_backbone().is_standard_vgg16
    copied = copy_weights_by_name(reference, backbone)
    assert len(copied) == 13
    np.testing.assert_array_equal(
        backbone.get_layer("block5_conv3").kernel.numpy(), reference.get_layer("block5_conv3").kernel.numpy()
    )


def test_backbone_config_round_trip():
    backbone = tiny_backbone(pooled_size=2, kernel_initializer=keras.initializers.HeNormal(seed=1))
    clone = check_config_round_trip(backbone)
    assert [layer.name for layer in clone.layers] == [layer.name for layer in backbone.layers]


def test_backbone_output_and_adaptive_pooling():
    backbone = tiny_backbone(pooled_size=3)
    assert backbone.get_layer("adaptive_pool").output.shape[1:3] == (3, 3)
    assert backbone(np.zeros((2, SIZE, SIZE, 3), "float32")).shape == (2, 16)
    # 336 / 32 pools to 10 x 10, as in PyTorch; adaptive pooling then gives 7 x 7.
    big = VGG16Backbone([2, 2, 2, 2, 2], [1, 1, 1, 1, 1], fc_units=4, image_shape=(336, 336, 3), pooled_size=7)
    assert big.get_layer("block5_pool").output.shape[1:3] == (10, 10)
    assert big.get_layer("fc1").kernel.shape == (7 * 7 * 2, 4)


def test_pooled_features_are_global_average_and_max_of_the_blocks_read():
    backbone = tiny_backbone(features="pooled", pooled_blocks=[2, 4])
    names = {layer.name for layer in backbone.layers}
    assert {"block2_avg", "block2_max", "block4_avg", "block4_max", "pooled_features"} <= names
    assert not names & {"block4_pool", "block5_conv1", "fc1", "flatten"}  # nothing after block 4
    images = np.random.default_rng(0).uniform(size=(2, SIZE, SIZE, 3)).astype("float32")
    features = np.asarray(backbone(images))
    assert features.shape == (2, 2 * (4 + 8))
    conv = keras.Model(backbone.input, backbone.get_layer("block4_conv1").output)(images).numpy()
    np.testing.assert_allclose(features[:, 8:16], conv.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(features[:, 16:24], conv.max(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    clone = check_config_round_trip(backbone)
    assert clone.features == "pooled" and clone.pooled_blocks == [2, 4]
    standard = VGG16Backbone(image_shape=(SIZE, SIZE, 3), fc_units=16, features="pooled")
    assert standard.is_standard_vgg16  # no fully connected layers for the ImageNet weights to miss


HARNESS_CASES = [
    # constructor arguments, input shape, expected feature shape, mixed-precision policies checked
    # (the factory test checks the flattening backbone, nested in every classifier)
    (dict(stackwise_num_filters=[2, 4], stackwise_num_repeats=[1, 2], fc_units=8, image_shape=(16, 16, 3)),
     (16, 16, 3), (None, 8), ()),
    (dict(stackwise_num_filters=[2, 2, 4], stackwise_num_repeats=[1, 1, 1], fc_units=4, image_shape=(20, 20, 1),
          pooled_size=3, fc_dropout=0.0, kernel_initializer="he_normal"), (20, 20, 1), (None, 4),
     ("float16", "bfloat16")),
    (dict(stackwise_num_filters=[2, 4, 4], stackwise_num_repeats=[1, 1, 1], image_shape=(16, 16, 3),
          features="pooled", pooled_blocks=[1, 3]), (16, 16, 3), (None, 12), ("bfloat16",)),
]


@pytest.mark.parametrize("kwargs, input_shape, expected_shape, policies", HARNESS_CASES)
def test_backbone_harness(kwargs, input_shape, expected_shape, policies, tmp_path):
    """Shapes, every layer's dtype under mixed policies (features in the compute dtype), saving."""
    images = np.random.default_rng(0).uniform(size=(2, *input_shape)).astype("float32")
    model = run_model_test(lambda: VGG16Backbone(**kwargs), images, expected_shape,
                           mixed_precision_policies=policies)
    run_model_saving_test(model, images, tmp_path)


@pytest.mark.parametrize(
    "num_layers, max_pool, expected_shape", [(2, True, (None, 8, 8, 4)), (1, False, (None, 16, 16, 4))]
)
def test_vgg_block_harness(num_layers, max_pool, expected_shape):
    def build():
        images = keras.Input((16, 16, 3))
        return keras.Model(images, apply_vgg_block(images, num_layers, 4, max_pool=max_pool, name="block1"))

    model = run_model_test(build, np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype("float32"),
                           expected_shape)
    names = [layer.name for layer in model.layers[1:]]
    assert names == [f"block1_conv{i + 1}" for i in range(num_layers)] + (["block1_pool"] if max_pool else [])


INVALID_BACKBONES = [
    (dict(stackwise_num_filters=[4, 4], stackwise_num_repeats=[1]), "same length"),
    (dict(stackwise_num_filters=[4, 0], stackwise_num_repeats=[1, 1]), "positive ints"),
    (dict(image_shape=(16, 16, 3)), "must be >= 2\\*\\*5"),
    (dict(fc_units=0), "fc_units"),
    (dict(fc_dropout=1.0), "fc_dropout"),
    (dict(pooled_size=0), "pooled_size"),
    (dict(features="conv"), "features must be"),
    (dict(features="pooled", pooled_blocks=[3, 6]), "pooled_blocks must name blocks 1 to 5"),
    (dict(features="pooled", pooled_blocks=[]), "pooled_blocks"),
]


@pytest.mark.parametrize("kwargs, message", INVALID_BACKBONES)
def test_invalid_backbone_arguments(kwargs, message):
    arguments = dict(stackwise_num_filters=[4, 4, 8, 8, 8], stackwise_num_repeats=[1, 1, 1, 1, 1],
                     fc_units=16, image_shape=(SIZE, SIZE, 3))
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        VGG16Backbone(**arguments)
