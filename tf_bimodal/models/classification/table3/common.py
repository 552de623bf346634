"""What the backbones of Table 3 share (§4.2.2): the width rule, the argument checks and the
ImageNet pixel normalisations."""

from __future__ import annotations

import keras

from tf_bimodal.layers.image_normalization import ImageNormalization


def scaled(count: int, width: float) -> int:
    """``count`` filters or units times ``width``, rounded, at least 1."""
    return max(1, int(round(count * width)))


def check_backbone_arguments(owner: str, width, image_size, minimum: int = 32) -> tuple[float, int]:
    """``width`` in (0, 1] and ``image_size`` an int >= ``minimum``, as a ``ValueError`` naming
    ``owner`` and the rule otherwise; returns them as float and int."""
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0.0 < width <= 1.0:
        raise ValueError(f"{owner}: width must be in (0, 1], got {width!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < minimum:
        raise ValueError(f"{owner}: image_size must be an int >= {minimum}, got {image_size!r}")
    return float(width), int(image_size)


TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)


def apply_imagenet_normalization(x, mode: str, name: str):
    """Pixels in [0, 1] to the convention of ImageNet weights: ``torch`` ((x - mean) / std per
    channel), ``tf`` (to [-1, 1]) or ``caffe`` (BGR, mean subtracted, 0-255)."""
    if mode == "torch":
        variance = [std**2 for std in TORCH_STD]
        return keras.layers.Normalization(mean=list(TORCH_MEAN), variance=variance, name=name)(x)
    if mode == "tf":
        return keras.layers.Rescaling(2.0, offset=-1.0, name=name)(x)
    if mode == "caffe":
        return ImageNormalization("caffe", name=name)(x)
    raise ValueError(f"apply_imagenet_normalization: mode must be 'torch', 'tf' or 'caffe', got {mode!r}")
