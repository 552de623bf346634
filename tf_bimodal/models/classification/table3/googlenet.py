"""GoogLeNet (Inception v1, Szegedy et al. 2015) with a width multiplier: the second of Kumar
et al.'s two networks in Table 3 (§4.2.2).

The paper's layout with torchvision's batch-normalised convolutions (``BasicConv2d``: convolution
without bias, batch norm, ReLU) and without the local response normalisation and the two
auxiliary classifiers (used by the original only to help training). The third branch of each
Inception module is a 5x5 convolution as in the paper (torchvision keeps a 3x3 there for its
weights' sake). Layer names: ``conv1``, ``conv2``, ``conv3``, ``inception3a`` ... ``inception5b``
(``{module}_branch{1-4}_...``), ``avgpool``.
"""

from __future__ import annotations

import keras

from tf_bimodal.models.base import ConfiguredModel
from tf_bimodal.models.classification.table3.common import (
    apply_imagenet_normalization,
    check_backbone_arguments,
    scaled,
)

INCEPTION_MODULES = (
    ("inception3a", (64, 96, 128, 16, 32, 32)),
    ("inception3b", (128, 128, 192, 32, 96, 64)),
    ("pool3", None),
    ("inception4a", (192, 96, 208, 16, 48, 64)),
    ("inception4b", (160, 112, 224, 24, 64, 64)),
    ("inception4c", (128, 128, 256, 24, 64, 64)),
    ("inception4d", (112, 144, 288, 32, 64, 64)),
    ("inception4e", (256, 160, 320, 32, 128, 128)),
    ("pool4", None),
    ("inception5a", (256, 160, 320, 32, 128, 128)),
    ("inception5b", (384, 192, 384, 48, 128, 128)),
)
"""Table 1 of Szegedy et al.: per module (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool
projection); ``None`` marks a 3x3/2 max-pool."""


def apply_basic_conv(x, filters: int, kernel: int, name: str, strides: int = 1):
    """Convolution (no bias), batch norm (epsilon 1e-3) and ReLU: ``{name}``, ``{name}_bn``,
    ``{name}_relu``."""
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = keras.layers.BatchNormalization(epsilon=1e-3, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def apply_inception_module(x, filters, width: float, name: str):
    """The four branches of an Inception module, concatenated (``{name}_concat``)."""
    one, reduce3, three, reduce5, five, projection = (scaled(count, width) for count in filters)
    branch1 = apply_basic_conv(x, one, 1, f"{name}_branch1")
    branch2 = apply_basic_conv(apply_basic_conv(x, reduce3, 1, f"{name}_branch2_reduce"), three, 3, f"{name}_branch2")
    branch3 = apply_basic_conv(apply_basic_conv(x, reduce5, 1, f"{name}_branch3_reduce"), five, 5, f"{name}_branch3")
    pooled = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_branch4_pool")(x)
    branch4 = apply_basic_conv(pooled, projection, 1, f"{name}_branch4")
    return keras.layers.Concatenate(name=f"{name}_concat")([branch1, branch2, branch3, branch4])


@keras.saving.register_keras_serializable(package="tf_bimodal")
class GoogLeNetBackbone(ConfiguredModel):
    """GoogLeNet from a ``(S, S, 3)`` image in [0, 1] to its ``1024 * width`` pooled features.

    7x7/2 convolution, 3x3/2 max-pool, 1x1 and 3x3 convolutions, 3x3/2 max-pool, nine
    Inception modules (:data:`INCEPTION_MODULES`, max-pools padded ``same``), global average
    pooling and dropout (0.4 as the original; inactive at ``training=False``). The ImageNet
    ``torch`` normalisation is its first layer.

    Args:
        width: multiplier of every filter count, in (0, 1] (1: the original).
        image_size: input side, >= 32.
        dropout: the rate of the dropout after pooling.
    """

    def __init__(self, width: float = 1.0, image_size: int = 224, dropout: float = 0.4, **kwargs):
        width, image_size = check_backbone_arguments("GoogLeNetBackbone", width, image_size)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"GoogLeNetBackbone: dropout must be in [0, 1), got {dropout!r}")
        inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
        x = apply_imagenet_normalization(inputs, "torch", name="imagenet_normalization")
        x = apply_basic_conv(x, scaled(64, width), 7, "conv1", strides=2)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
        x = apply_basic_conv(x, scaled(64, width), 1, "conv2")
        x = apply_basic_conv(x, scaled(192, width), 3, "conv3")
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
        for name, filters in INCEPTION_MODULES:
            if filters is None:
                x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=name)(x)
            else:
                x = apply_inception_module(x, filters, width, name)
        x = keras.layers.GlobalAveragePooling2D(name="avgpool")(x)
        x = keras.layers.Dropout(dropout, name="dropout")(x)
        super().__init__(inputs=inputs, outputs=x, **kwargs)
        self._record_config(width=width, image_size=image_size, dropout=float(dropout))
