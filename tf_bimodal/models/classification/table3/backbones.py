"""The backbones of Table 3's methods (§4.2.2) and the one factory that builds them by name.

Every backbone is a functional model from a ``(S, S, 3)`` image with values in [0, 1] to a
feature vector: its pixel normalisation is its first layer, so a classifier or an ensemble
feeds it RGB images in [0, 1] and nothing else.

* ``vgg16``, ``densenet169``, ``inceptionv3``: ``keras.applications`` without their top,
  globally average-pooled, built with ``weights=None`` or from a local weights file
  (:data:`IMAGENET_NOTOP_FILES`, looked for in Keras's cache); nothing here downloads. They
  are built at the originals' width (the ImageNet files fit only those): ``width`` does not
  apply to them.
* ``resnet18``, ``alexnet``, ``googlenet``: written here (``resnet18.py``, ``alexnet.py``,
  ``googlenet.py``) with a ``width`` multiplier of every filter count and unit count; Keras
  ships no ImageNet weights for them.

Normalisation: the ImageNet convention the original weights were trained with (``caffe`` for
VGG-16, ``tf`` for InceptionV3, ``torch`` mean and deviation for the rest, as torchvision's
models that the written-here backbones follow).
"""

from __future__ import annotations

import os

import keras

from tf_bimodal.models.classification.backbone_weights import keras_cache_dir
from tf_bimodal.models.classification.table3.alexnet import AlexNetBackbone
from tf_bimodal.models.classification.table3.common import (
    apply_imagenet_normalization,
    check_backbone_arguments,
    scaled,
)
from tf_bimodal.models.classification.table3.googlenet import GoogLeNetBackbone
from tf_bimodal.models.classification.table3.resnet18 import ResNet18Backbone

APPLICATION_BACKBONES = ("vgg16", "densenet169", "inceptionv3")
"""Backbones taken from ``keras.applications`` (ImageNet weights exist as Keras files)."""

CUSTOM_BACKBONES = ("resnet18", "alexnet", "googlenet")
"""Backbones written here, with a width multiplier (no Keras ImageNet weights exist)."""

BACKBONES = APPLICATION_BACKBONES + CUSTOM_BACKBONES

IMAGENET_NOTOP_FILES = {
    "vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "densenet169": "densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "inceptionv3": "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
"""The file ``keras.applications`` reads each backbone's ImageNet weights (without top) from,
in Keras's cache (:func:`~tf_bimodal.models.classification.backbone_weights.keras_cache_dir`)."""

MINIMUM_INPUT_SIZE = {"inceptionv3": 75, "densenet169": 32, "vgg16": 32}
"""The smallest side ``keras.applications`` accepts for each; the written-here backbones take
32 px and more."""


def imagenet_weights_path(backbone: str) -> str | None:
    """Where the ImageNet weights of ``backbone`` would be (Keras's cache), or None when Keras
    has none for it (``resnet18``, ``alexnet``, ``googlenet``)."""
    file = IMAGENET_NOTOP_FILES.get(backbone)
    return None if file is None else os.path.join(keras_cache_dir(), file)


_APPLICATIONS = {
    "vgg16": ("VGG16", "caffe"),
    "densenet169": ("DenseNet169", "torch"),
    "inceptionv3": ("InceptionV3", "tf"),
}


def narrowed(network: keras.Model, width: float) -> keras.Model:
    """A copy of the functional ``network`` with every convolution's filters times ``width``
    (:func:`~.common.scaled`), rebuilt from its config with new, random weights.

    Every layer that depends on channels (batch norms, concatenations, additions, poolings)
    follows from its inputs; a depthwise convolution keeps its multiplier. Width 1 returns
    ``network`` itself.
    """
    if width == 1.0:
        return network
    config = network.get_config()
    for layer in config["layers"]:
        layer.pop("build_config", None)  # the saved input shapes are the wide ones
        if layer["class_name"] in ("Conv2D", "SeparableConv2D"):
            layer["config"]["filters"] = scaled(layer["config"]["filters"], width)
        elif layer["class_name"] == "Dense":
            layer["config"]["units"] = scaled(layer["config"]["units"], width)
    return keras.Model.from_config(config)


def application_backbone(backbone: str, image_size: int, width: float = 1.0, weights_path: str | None = None,
                         name: str | None = None) -> keras.Model:
    """A ``keras.applications`` backbone: normalisation, the network without top, global
    average pooling (VGG-16: 512, DenseNet-169: 1664, InceptionV3: 2048 features, times
    ``width``).

    Args:
        backbone: one of :data:`APPLICATION_BACKBONES`.
        image_size: the input side (at least :data:`MINIMUM_INPUT_SIZE`).
        width: multiplier of every convolution's filters (:func:`narrowed`); ImageNet
            weights fit only 1.
        weights_path: a local Keras weights file (no top) to start from, or None (random).

    Raises:
        ValueError: an unknown backbone, a too small input, a path with no file, or weights
            with a width below 1.
    """
    if backbone not in _APPLICATIONS:
        raise ValueError(f"application_backbone: backbone must be one of {APPLICATION_BACKBONES}, got {backbone!r}")
    width, image_size = check_backbone_arguments("application_backbone", width, image_size,
                                                 minimum=MINIMUM_INPUT_SIZE[backbone])
    if weights_path is not None and not os.path.isfile(weights_path):
        raise ValueError(f"application_backbone: the weights file {weights_path} does not exist")
    if weights_path is not None and width != 1.0:
        raise ValueError(f"application_backbone: ImageNet weights fit {backbone} at width 1 only, got width {width}")
    constructor, mode = _APPLICATIONS[backbone]
    shape = (image_size, image_size, 3)
    inputs = keras.Input(shape=shape, name="image")
    x = apply_imagenet_normalization(inputs, mode, name="imagenet_normalization")
    network = getattr(keras.applications, constructor)(
        include_top=False, weights=weights_path, input_shape=shape, pooling="avg", name=backbone
    )
    return keras.Model(inputs, narrowed(network, width)(x), name=name or f"{backbone}_backbone")


def build_backbone(backbone: str, image_size: int, width: float = 1.0, weights_path: str | None = None,
                   name: str | None = None) -> keras.Model:
    """The backbone ``backbone`` (one of :data:`BACKBONES`) on ``(image_size, image_size, 3)``
    inputs in [0, 1], its filters (and units) times ``width``; ``weights_path`` (a local
    ImageNet file, width 1) applies to the ``keras.applications`` ones only.

    Raises:
        ValueError: an unknown name; weights for a backbone that has none in Keras.
    """
    if backbone in APPLICATION_BACKBONES:
        return application_backbone(backbone, image_size, width, weights_path, name=name)
    if backbone not in CUSTOM_BACKBONES:
        raise ValueError(f"build_backbone: backbone must be one of {BACKBONES}, got {backbone!r}")
    if weights_path is not None:
        raise ValueError(f"build_backbone: Keras has no ImageNet weights for {backbone}; got {weights_path}")
    classes = {"resnet18": ResNet18Backbone, "alexnet": AlexNetBackbone, "googlenet": GoogLeNetBackbone}
    return classes[backbone](width=width, image_size=image_size, name=name or f"{backbone}_backbone")


def feature_size(backbone: keras.Model) -> int:
    """The length of the feature vector ``backbone`` gives."""
    return int(backbone.output.shape[-1])
