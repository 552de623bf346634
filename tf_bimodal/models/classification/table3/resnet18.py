"""ResNet-18 (He et al. 2016) as torchvision builds it, with a width multiplier: the backbone of
Wang et al. and one of the two networks of Misra et al. 2021 in Table 3 (§4.2.2).

Layer names follow torchvision's module names (``conv1``, ``bn1``, ``layer1_0_conv1``,
``layer2_1_bn2``, ``layer3_0_downsample_conv``, ...), so "frozen up to ``layer2``" (Misra 2021)
is a rule on names (:data:`RESNET18_STAGES`).
"""

from __future__ import annotations

import keras

from tf_bimodal.models.base import ConfiguredModel
from tf_bimodal.models.classification.table3.common import (
    apply_imagenet_normalization,
    check_backbone_arguments,
    scaled,
)

RESNET18_FILTERS = (64, 128, 256, 512)
RESNET18_STAGES = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")
"""The name prefixes of the stem and the four stages, in order."""

BATCH_NORM = dict(epsilon=1e-5, momentum=0.9)
"""torchvision's BatchNorm2d (momentum 0.1 in PyTorch's convention)."""


def apply_basic_block(x, filters: int, stride: int, name: str):
    """Two 3x3 convolutions with batch norm and a shortcut (a 1x1 convolution when the shape
    changes): layers ``{name}_conv1``, ``_bn1``, ``_conv2``, ``_bn2``, ``_downsample_conv``,
    ``_downsample_bn``, ``_add``, ``_out``."""
    shortcut = x
    y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = keras.layers.BatchNormalization(name=f"{name}_bn1", **BATCH_NORM)(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = keras.layers.BatchNormalization(name=f"{name}_bn2", **BATCH_NORM)(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_downsample_conv")(x)
        shortcut = keras.layers.BatchNormalization(name=f"{name}_downsample_bn", **BATCH_NORM)(shortcut)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


@keras.saving.register_keras_serializable(package="tf_bimodal")
class ResNet18Backbone(ConfiguredModel):
    """ResNet-18 from a ``(S, S, 3)`` image in [0, 1] to its ``512 * width`` pooled features.

    torchvision's layout: 7x7/2 convolution, 3x3/2 max-pool, four stages of two basic blocks
    (64, 128, 256, 512 filters times ``width``; stride 2 from the second stage), global
    average pooling (``avgpool``). The ImageNet ``torch`` normalisation is its first layer.

    Args:
        width: multiplier of every filter count, in (0, 1] (1: the original).
        image_size: input side, >= 32.
    """

    def __init__(self, width: float = 1.0, image_size: int = 224, **kwargs):
        width, image_size = check_backbone_arguments("ResNet18Backbone", width, image_size)
        inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
        x = apply_imagenet_normalization(inputs, "torch", name="imagenet_normalization")
        x = keras.layers.Conv2D(scaled(64, width), 7, strides=2, padding="same", use_bias=False, name="conv1")(x)
        x = keras.layers.BatchNormalization(name="bn1", **BATCH_NORM)(x)
        x = keras.layers.ReLU(name="relu")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="maxpool")(x)
        for stage, filters in enumerate(RESNET18_FILTERS, start=1):
            for block in range(2):
                stride = 2 if stage > 1 and block == 0 else 1
                x = apply_basic_block(x, scaled(filters, width), stride, name=f"layer{stage}_{block}")
        outputs = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self._record_config(width=width, image_size=image_size)
