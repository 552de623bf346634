"""AlexNet (Krizhevsky et al. 2012) as torchvision builds it, with a width multiplier: the
backbone of Yap et al., one of Kumar et al.'s two networks and one of Misra et al. 2021's in
Table 3 (§4.2.2).

Layer names: ``conv1`` ... ``conv5``, ``pool1``, ``pool2``, ``pool5``, ``avgpool``, ``fc6``,
``fc7`` (the 4096 features, before the class layer the tasks add), so "conv1-4 frozen"
(Misra 2021) is a rule on names.
"""

from __future__ import annotations

import keras

from tf_bimodal.layers.adaptive_pooling import AdaptiveAveragePooling2D
from tf_bimodal.models.base import ConfiguredModel
from tf_bimodal.models.classification.table3.common import (
    apply_imagenet_normalization,
    check_backbone_arguments,
    scaled,
)

ALEXNET_CONVOLUTIONS = ((64, 11, 4, 2), (192, 5, 1, 2), (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1))
"""(filters, kernel, stride, padding) of torchvision's five convolutions."""

ALEXNET_FC_UNITS = 4096
ALEXNET_POOLED_SIZE = 6
"""torchvision's ``AdaptiveAvgPool2d((6, 6))`` before ``fc6``."""


def apply_max_pool(x, name: str):
    """torchvision's 3x3/2 max-pool, unpadded; a map smaller than 3x3 (inputs under ~63 px) is
    padded instead, so that small inputs still pass."""
    padding = "valid" if min(x.shape[1], x.shape[2]) >= 3 else "same"
    return keras.layers.MaxPooling2D(3, strides=2, padding=padding, name=name)(x)


@keras.saving.register_keras_serializable(package="tf_bimodal")
class AlexNetBackbone(ConfiguredModel):
    """AlexNet from a ``(S, S, 3)`` image in [0, 1] to its ``4096 * width`` ``fc7`` features.

    torchvision's layout (no local response normalisation): five ReLU convolutions (64, 192,
    384, 256, 256 filters times ``width``; 11x11/4 padded 2, 5x5 padded 2, then 3x3), 3x3/2
    max-pools after the first, second and fifth, adaptive average pooling to 6x6, then
    dropout, ``fc6``, dropout, ``fc7`` (ReLU, ``4096 * width`` units each). The ImageNet
    ``torch`` normalisation is its first layer.

    Args:
        width: multiplier of every filter and unit count, in (0, 1] (1: the original).
        image_size: input side, >= 32.
        dropout: the rate of the two dropouts (0.5 as the original); inactive at
            ``training=False``.
    """

    def __init__(self, width: float = 1.0, image_size: int = 224, dropout: float = 0.5, **kwargs):
        width, image_size = check_backbone_arguments("AlexNetBackbone", width, image_size)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"AlexNetBackbone: dropout must be in [0, 1), got {dropout!r}")
        inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
        x = apply_imagenet_normalization(inputs, "torch", name="imagenet_normalization")
        for index, (filters, kernel, stride, padding) in enumerate(ALEXNET_CONVOLUTIONS, start=1):
            x = keras.layers.ZeroPadding2D(padding, name=f"conv{index}_pad")(x)
            x = keras.layers.Conv2D(scaled(filters, width), kernel, strides=stride, activation="relu",
                                    name=f"conv{index}")(x)
            if index in (1, 2, 5):
                x = apply_max_pool(x, name=f"pool{index}")
        x = AdaptiveAveragePooling2D(ALEXNET_POOLED_SIZE, name="avgpool")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        for layer in ("fc6", "fc7"):
            x = keras.layers.Dropout(dropout, name=f"{layer}_dropout")(x)
            x = keras.layers.Dense(scaled(ALEXNET_FC_UNITS, width), activation="relu", name=layer)(x)
        super().__init__(inputs=inputs, outputs=x, **kwargs)
        self._record_config(width=width, image_size=image_size, dropout=float(dropout))
