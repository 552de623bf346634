"""Soft voting over the class probabilities of several classifiers (paper §3.3.3).

Late integration "determines the final decision based on the probabilities for the
classifiers or soft voting" (§3.3.3, Fig. 4b); early integration decides a B/SE pair the same
way from the probabilities of its two images. Only the modalities available for a sample vote.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

NO_VOTER_MESSAGE = "SoftVoting: every sample needs at least one available voter; found one with none"


@keras.saving.register_keras_serializable(package="tf_bimodal")
class SoftVoting(keras.layers.Layer):
    """Mean of ``M`` probability vectors over the voters available for each sample.

    The mean is taken in float32 and returned in the layer's compute dtype; the classifiers
    build it with ``dtype="float32"`` so that their decision stays float32 under a mixed
    policy.

    Call arguments:
        inputs: list of ``M`` tensors ``(batch, num_classes)``.
        availabilities: optional ``(batch, M)`` 0/1 mask; default all available.

    Raises:
        ValueError (eagerly) or ``InvalidArgumentError`` (in a graph): a sample with no
        available voter.
    """

    def call(self, inputs, availabilities=None):
        stacked = ops.stack([ops.cast(p, "float32") for p in inputs], axis=1)  # (batch, M, C)
        if availabilities is None:
            return ops.cast(ops.mean(stacked, axis=1), self.compute_dtype)
        weights = ops.cast(availabilities, "float32")
        total = ops.sum(weights, axis=-1, keepdims=True)
        if tf.executing_eagerly():
            if bool(ops.any(total <= 0.0)):
                raise ValueError(NO_VOTER_MESSAGE)
            checks = []
        else:
            checks = [tf.debugging.assert_greater(ops.reshape(total, (-1,)), 0.0, message=NO_VOTER_MESSAGE)]
        with tf.control_dependencies(checks):
            weights = tf.identity(weights / ops.maximum(total, 1e-12))
        return ops.cast(ops.sum(stacked * weights[:, :, None], axis=1), self.compute_dtype)

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return tuple(input_shape[0])
