"""Adaptive average pooling to a fixed grid, as PyTorch's ``AdaptiveAvgPool2d``.

torchvision's VGG-16 pools the last feature map to 7 x 7 before its fully connected layers,
so the ImageNet FC weights (25088 x 4096) fit any input size; the paper feeds 336 x 336 images
(§3.1) to a pre-trained VGG-16 (§3.3.2), whose last feature map is 10 x 10. This layer gives
the Keras VGG-16 (:class:`tf_bimodal.models.classification.VGG16Backbone`) the same property.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def adaptive_pooling_matrix(input_size: int, output_size: int) -> np.ndarray:
    """(output_size, input_size) averaging matrix with PyTorch's bin edges.

    Bin ``i`` averages inputs ``floor(i * n / m)`` to ``ceil((i + 1) * n / m) - 1``; bins may
    overlap (and repeat inputs when ``output_size > input_size``).
    """
    matrix = np.zeros((output_size, input_size), dtype=np.float32)
    for i in range(output_size):
        start = (i * input_size) // output_size
        end = -((-(i + 1) * input_size) // output_size)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


@keras.saving.register_keras_serializable(package="tf_bimodal")
class AdaptiveAveragePooling2D(keras.layers.Layer):
    """Average-pool a ``(batch, H, W, C)`` map to ``(batch, output_size, output_size, C)``.

    Args:
        output_size: side of the output grid (torchvision VGG: 7). ``H`` and ``W`` must be
            known when the layer is built.

    Raises:
        ValueError: ``output_size`` < 1, or an input that is not rank 4 with static H and W.
    """

    def __init__(self, output_size: int = 7, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(output_size, int) or isinstance(output_size, bool) or output_size < 1:
            raise ValueError(
                f"AdaptiveAveragePooling2D: output_size must be a positive int, got {output_size!r}"
            )
        self.output_size = output_size

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                "AdaptiveAveragePooling2D: input must be (batch, H, W, C) with known H and W, "
                f"got {tuple(input_shape)}"
            )
        self._rows = adaptive_pooling_matrix(int(input_shape[1]), self.output_size)
        self._cols = adaptive_pooling_matrix(int(input_shape[2]), self.output_size)
        self.built = True

    def call(self, inputs):
        rows = ops.cast(self._rows, inputs.dtype)
        cols = ops.cast(self._cols, inputs.dtype)
        return ops.einsum("ih,bhwc,jw->bijc", rows, inputs, cols)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_size, self.output_size, input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(output_size=self.output_size)
        return config
