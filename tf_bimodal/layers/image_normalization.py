"""Pixel normalization in front of a VGG-16 (paper §3.3.2).

The ImageNet weights of ``keras.applications.VGG16`` expect "caffe" preprocessing: BGR
channel order with the ImageNet channel means subtracted, values otherwise in [0, 255]. A
randomly initialised network trains better on inputs of unit scale, hence ``"standardize"``.
Inputs follow the package's pipeline convention (``tf_bimodal.data.pipeline.normalize``):
float images with values in [0, 1].
"""

from __future__ import annotations

import keras
from keras import ops

NORMALIZATION_MODES = ("caffe", "standardize")
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
"""Channel means (B, G, R) of ``keras.applications.vgg16.preprocess_input``."""


@keras.saving.register_keras_serializable(package="tf_bimodal")
class ImageNormalization(keras.layers.Layer):
    """Map RGB images with values in [0, 1] to a VGG-16's input convention.

    Args:
        mode: ``"caffe"``: scaled to [0, 255], RGB -> BGR, minus :data:`IMAGENET_BGR_MEAN`
            (``keras.applications.vgg16.preprocess_input`` of the 8-bit image; use with
            ImageNet weights), or ``"standardize"``: ``2 x - 1``, in [-1, 1] (for random
            initialisation).

    Raises:
        ValueError: an unknown ``mode``, or ``"caffe"`` on an input without 3 channels.
    """

    def __init__(self, mode: str = "standardize", **kwargs):
        super().__init__(**kwargs)
        if mode not in NORMALIZATION_MODES:
            raise ValueError(
                f"ImageNormalization: mode must be one of {NORMALIZATION_MODES}, got {mode!r}"
            )
        self.mode = mode

    def build(self, input_shape):
        if self.mode == "caffe" and input_shape[-1] != 3:
            raise ValueError(
                f"ImageNormalization: caffe mode needs 3 (RGB) channels, got {input_shape[-1]}"
            )
        self.built = True

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        if self.mode == "standardize":
            return inputs * 2.0 - 1.0
        bgr = ops.flip(inputs * 255.0, axis=-1)
        return bgr - ops.cast(ops.convert_to_tensor(IMAGENET_BGR_MEAN), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode)
        return config
