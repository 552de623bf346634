"""The weighted skip connection of W-MM-U-Net (paper §3.2.3, Fig. 2d-e).

MM-U-Net (IVD-Net) combines the skip connections of its several contraction paths by
averaging them. W-MM-U-Net instead weights the paths by the importance of their modality
in the *uppermost* skip connection, "before the information for each contraction path was
mixed" by the hyper-dense connections (§3.2.3). With equal weights the weighted sum is the
average, so MM-U-Net is the special case ``weights = 1 / P``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="tf_bimodal")
class WeightedSkip(keras.layers.Layer):
    """Weighted sum of P same-shaped feature maps with per-image modality weights (§3.2.3).

    ``call(features, weights)``: ``features`` is a list of P tensors (batch, H, W, C);
    ``weights`` is (batch, P), non-negative. The weights are normalised to sum 1 per image
    (the auto-weight softmax already does; fixed weights are normalised in
    :class:`FixedModalityWeights`), and the output is ``sum_p w[:, p] * features[p]``.
    """

    def build(self, features_shape, weights_shape=None):
        if not isinstance(features_shape, (list, tuple)) or not features_shape:
            raise ValueError("WeightedSkip: features must be a non-empty list of tensors")
        first = tuple(features_shape[0])
        for shape in features_shape[1:]:
            if tuple(shape)[1:] != first[1:]:
                raise ValueError(
                    f"WeightedSkip: all features must have the same shape, got {list(map(tuple, features_shape))}"
                )
        if weights_shape is not None and weights_shape[-1] is not None and weights_shape[-1] != len(features_shape):
            raise ValueError(
                f"WeightedSkip: need one weight per feature map, got {weights_shape[-1]} weights "
                f"for {len(features_shape)} feature maps"
            )
        self.built = True

    def call(self, features, weights):
        weights = ops.cast(weights, features[0].dtype)
        weights = weights / ops.sum(weights, axis=-1, keepdims=True)
        total = None
        for index, feature in enumerate(features):
            term = feature * weights[:, index, None, None, None]
            total = term if total is None else total + term
        return total

    def compute_output_shape(self, features_shape, weights_shape=None):
        return tuple(features_shape[0])


@keras.saving.register_keras_serializable(package="tf_bimodal")
class FixedModalityWeights(keras.layers.Layer):
    """Constant modality weights, broadcast to (batch, P) (MM-U-Net and manual W-MM-U-Net).

    The weights are validated (P >= 1 values, all finite and > 0) and normalised to sum 1.
    The layer is called on any batched tensor only to read its batch size. The output has the
    layer's compute dtype, as the skip features it weights (float16 under ``mixed_float16``).

    Args:
        modality_weights: P positive numbers, one per modal path.
    """

    def __init__(self, modality_weights, **kwargs):
        super().__init__(**kwargs)
        self.modality_weights = normalize_weights(modality_weights, where="FixedModalityWeights")

    def call(self, reference):
        batch = ops.shape(reference)[0]
        weights = ops.convert_to_tensor(np.asarray(self.modality_weights), dtype=self.compute_dtype)
        return ops.broadcast_to(weights[None, :], (batch, len(self.modality_weights)))

    def compute_output_shape(self, reference_shape):
        return (reference_shape[0], len(self.modality_weights))

    def get_config(self):
        config = super().get_config()
        config.update(modality_weights=list(self.modality_weights))
        return config


def normalize_weights(modality_weights, num_paths=None, where="modality_weights"):
    """Validate positive weights (and their count if ``num_paths``); return them summing to 1."""
    values = np.asarray(modality_weights, dtype="float64").reshape(-1) if modality_weights is not None else None
    if values is None or values.size == 0:
        raise ValueError(f"{where}: needs at least one weight, got {modality_weights!r}")
    if num_paths is not None and values.size != num_paths:
        raise ValueError(
            f"{where}: needs one weight per modal path ({num_paths} paths), got {values.size} "
            f"weights {list(values)}"
        )
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"{where}: every weight must be finite and > 0, got {list(values)}")
    if abs(values.sum() - 1.0) > 1e-12:  # leave normalised weights bit-identical
        values = values / values.sum()
    return [float(v) for v in values]
