"""The mean over draws stacked along the batch axis (paper §3.3.1; EmbraceNet ``"mc"``).

EmbraceNet's ``inference="mc"`` returns K embracements of each of the N samples stacked along
the batch axis, sample-major (row ``k * N + n``); the decision network runs on all ``K * N``
rows, and this layer folds its probabilities back to one row per sample, the mean over the
sample's K draws. With any other rule the batch arrives unstacked (K = 1) and the layer
passes it through, so a model keeps one graph whatever its EmbraceNet's rule.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tf_bimodal")
class StackedSampleMean(keras.layers.Layer):
    """``(K * N, ...)`` sample-major draws -> ``(N, ...)`` means; N from a reference tensor.

    ``call(inputs, reference)``: ``inputs`` has ``K * N`` rows for some K >= 1, ``reference``
    any tensor whose first dimension is N (the model's batch, e.g. its ``availability``
    input). Output: ``mean_k inputs[k * N + n]`` for each ``n``.
    """

    def call(self, inputs, reference):
        batch = ops.shape(reference)[0]
        stacked = ops.reshape(inputs, (-1, batch, *inputs.shape[1:]))
        return ops.mean(stacked, axis=0)

    def compute_output_shape(self, inputs_shape, reference_shape):
        return (reference_shape[0], *inputs_shape[1:])
