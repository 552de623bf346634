"""Table 3's backbones (§4.2.2): the written-here ResNet-18, AlexNet and GoogLeNet, the narrowed
``keras.applications`` ones, and the factory."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_bimodal.models.classification.table3 import AlexNetBackbone, GoogLeNetBackbone, ResNet18Backbone, build_backbone
from tf_bimodal.models.classification.table3.backbones import imagenet_weights_path, narrowed

from harness import check_config_round_trip, run_model_saving_test

SIZE, WIDTH = 32, 0.0625


def images(size=SIZE, count=2):
    return np.random.default_rng(0).uniform(size=(count, size, size, 3)).astype("float32")


@pytest.mark.parametrize("cls, features", [(ResNet18Backbone, 32), (AlexNetBackbone, 256), (GoogLeNetBackbone, 64)])
def test_custom_backbone_round_trip(cls, features, tmp_path):
    backbone = cls(width=WIDTH, image_size=SIZE)
    assert backbone(images()).shape == (2, features)  # 512, 4096, 1024 times the width
    check_config_round_trip(backbone)
    run_model_saving_test(backbone, images(), tmp_path)


def test_alexnet_matches_torchvision_maps_at_224():
    backbone = AlexNetBackbone(width=WIDTH, image_size=224)
    assert backbone.get_layer("conv1").output.shape[1] == 55
    assert backbone.get_layer("pool5").output.shape[1] == 6


def test_resnet18_has_torchvision_layer_names():
    backbone = ResNet18Backbone(width=WIDTH, image_size=SIZE)
    names = {layer.name for layer in backbone.layers}
    assert {"conv1", "bn1", "layer1_0_conv1", "layer2_0_downsample_conv", "layer4_1_bn2", "avgpool"} <= names
    assert backbone.count_params() < ResNet18Backbone(width=0.125, image_size=SIZE).count_params()


@pytest.mark.parametrize("kwargs", [dict(width=0.0), dict(width=1.5), dict(image_size=16), dict(image_size=32.0)])
def test_custom_backbone_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="ResNet18Backbone"):
        ResNet18Backbone(**{"width": WIDTH, "image_size": SIZE, **kwargs})


def test_narrowed_application_scales_filters_and_round_trips(tmp_path):
    backbone = build_backbone("vgg16", SIZE, width=WIDTH)
    assert backbone(images()).shape == (2, 32)  # 512 x 0.0625
    run_model_saving_test(backbone, images(), tmp_path)
    wide = keras.applications.VGG16(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    assert narrowed(wide, 1.0) is wide


def test_inceptionv3_needs_75_pixels():
    with pytest.raises(ValueError, match=">= 75"):
        build_backbone("inceptionv3", 64, width=WIDTH)


def test_factory_refuses_unknown_names_and_weights_it_cannot_have(tmp_path):
    with pytest.raises(ValueError, match="backbone must be one of"):
        build_backbone("resnet50", SIZE)
    with pytest.raises(ValueError, match="no ImageNet weights for alexnet"):
        build_backbone("alexnet", SIZE, weights_path=str(tmp_path / "x.h5"))
    with pytest.raises(ValueError, match="does not exist"):
        build_backbone("densenet169", SIZE, weights_path=str(tmp_path / "missing.h5"))
    assert imagenet_weights_path("alexnet") is None
    assert imagenet_weights_path("densenet169").endswith("densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5")
