"""What every classifier of §3.3 shares: inputs, heads, config, the weighted multi-output loss,
compile defaults.

Every classifier is a functional ``keras.Model`` whose inputs are a dict among ``"bmode"``
``(S, S, 1)``, ``"semode"`` ``(S, S, 3)`` (float, values in [0, 1]) and ``"availability"``
``(2,)`` (1 where the modality exists for the sample), and whose outputs are a dict with
``"decision"``, the ``(batch, num_classes)`` class probabilities that are evaluated, and, for
some, per-modality probabilities named after the modality.

The loss is a weighted sum of cross-entropies over the outputs (Eq. 1 for the MFF,
``l = l_i + lambda * l_d`` with ``l_i`` the sum of the per-modality terms). A per-modality term
averages only over the samples where that modality is available, so a B-mode-only example
never trains the SE-mode head. Labels ``y`` are class indices (0 benign, 1 malignant).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from tf_bimodal.config import ClassificationConfig
from tf_bimodal.layers.image_normalization import ImageNormalization
from tf_bimodal.layers.soft_voting import SoftVoting
from tf_bimodal.models.base import ConfiguredModel
from tf_bimodal.models.classification.optimizer import classification_optimizer


def modality_input(name: str, image_size: int, channels: int):
    """A named ``keras.Input`` for one modality image."""
    return keras.Input(shape=(image_size, image_size, channels), name=name)


def modality_inputs(modalities: dict, image_size: int, availability: bool = False) -> dict:
    """``{name: keras.Input}`` for each modality of ``{name: channels}``, and with
    ``availability`` the ``(M,)`` ``"availability"`` input (1 where the modality exists)."""
    inputs = {name: modality_input(name, image_size, channels) for name, channels in modalities.items()}
    if availability:
        inputs["availability"] = keras.Input(shape=(len(modalities),), name="availability")
    return inputs


def apply_modality_preprocessing(x, channels: int, normalization: str, name: str):
    """Grey -> RGB by channel repetition (§3.3.2: one RGB VGG-16 for both), then normalise.

    Layers: ``{name}_to_rgb`` (only for 1-channel inputs) and ``{name}_normalization``.
    """
    if channels == 1:
        x = keras.layers.Concatenate(axis=-1, name=f"{name}_to_rgb")([x, x, x])
    elif channels != 3:
        raise ValueError(f"modality {name!r}: images must have 1 or 3 channels, got {channels}")
    return ImageNormalization(normalization, name=f"{name}_normalization")(x)


def apply_modalities_preprocessing(inputs: dict, modalities: dict, normalization: str) -> dict:
    """:func:`apply_modality_preprocessing` of each modality of ``{name: channels}``."""
    return {
        name: apply_modality_preprocessing(inputs[name], channels, normalization, name=name)
        for name, channels in modalities.items()
    }


def availability_columns(modalities) -> dict:
    """``{modality: column}``: the column of the ``availability`` input of each modality."""
    return {name: column for column, name in enumerate(modalities)}


def apply_decision_network(x, hidden_units=(1024, 256), num_classes=2, dropout=0.5, name="decision"):
    """The decision network (DN, §3.3.1): three FC layers and a softmax.

    Layers ``{name}_fc1``, ``{name}_fc2`` (ReLU, each followed by dropout) and
    ``{name}_predictions`` (the third FC layer, ``num_classes`` units, softmax in float32).
    """
    for index, units in enumerate(hidden_units):
        x = keras.layers.Dense(units, activation="relu", name=f"{name}_fc{index + 1}")(x)
        x = keras.layers.Dropout(dropout, name=f"{name}_fc{index + 1}_dropout")(x)
    return keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name=f"{name}_predictions"
    )(x)


def apply_softmax_head(x, num_classes=2, name="predictions"):
    """One FC layer with softmax, VGG-16's own classifier layer (float32 output)."""
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name=name)(x)


def with_soft_voting(outputs: dict, availability) -> dict:
    """``{"decision": ..., **outputs}``: the mean of the available modalities' probabilities
    (layer ``soft_voting``, float32) before the per-modality outputs (§3.3.3)."""
    decision = SoftVoting(dtype="float32", name="soft_voting")(list(outputs.values()), availabilities=availability)
    return {"decision": decision, **outputs}


def check_common_arguments(owner, num_classes, normalization):
    """Check the arguments every classifier takes: ``num_classes`` an int >= 2 and
    ``normalization`` ``"caffe"`` or ``"standardize"``; ``owner`` names the class in the error."""
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"{owner}: num_classes must be an int >= 2, got {num_classes!r}")
    if normalization not in ("caffe", "standardize"):
        raise ValueError(
            f"{owner}: normalization must be 'caffe' or 'standardize', got {normalization!r}"
        )


def default_optimizer():
    """SGD with the registry's defaults (§3.4: momentum 0.8, L2 weight decay 1e-4; see
    :func:`tf_bimodal.models.classification.optimizer.classification_optimizer`)."""
    return classification_optimizer(ClassificationConfig())


class ClassifierTask(ConfiguredModel):
    """Base of the classifiers: shared arguments, config, the weighted, availability-masked
    loss and compile defaults.

    Subclasses build their functional graph and pass it here with ``config``, their
    constructor arguments in the order ``get_config`` lists them (the shared ones:
    ``normalization``, ``num_classes`` and, with a decision network, ``decision_units``,
    ``decision_dropout``), the weight of each output in the loss and, for per-modality
    outputs, the column of ``availability`` that masks it. Backbones are serialised in the
    config as Keras models.

    Args:
        inputs, outputs: the functional graph (dicts; ``outputs`` holds ``"decision"``).
        config: ``{argument: value}`` that the attributes and ``get_config`` hold; a
            ``decision_units`` sequence is kept as a tuple.
        output_loss_weights: ``{output: weight}`` of the loss (Eq. 1).
        output_modality_columns: ``{output: availability column}`` for per-modality outputs.
        **kwargs: ``name``, ``trainable``.
    """

    sub_model_arguments = ("backbone", "bmode_backbone", "semode_backbone")

    def __init__(self, inputs, outputs, *, config: dict, output_loss_weights: dict,
                 output_modality_columns: dict | None = None, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        config = dict(config)
        if "decision_units" in config:
            config["decision_units"] = tuple(config["decision_units"])
        self._record_config(**config)
        self._init_loss(output_loss_weights, output_modality_columns)

    def _init_loss(self, output_loss_weights: dict, output_modality_columns: dict | None = None):
        self.output_loss_weights = dict(output_loss_weights)
        self.output_modality_columns = dict(output_modality_columns or {})
        self.term_trackers = {
            output: keras.metrics.Mean(name=f"{output}_loss")
            for output, weight in self.output_loss_weights.items()
            if weight
        }
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    def loss_terms(self, x, y, y_pred, sample_weight=None) -> dict:
        """Each output's mean cross-entropy and the weighted total (no regularisation).

        Returns:
            ``{output_name: term, ..., "total": sum_k weight_k * term_k}``; a per-modality term
            is averaged over the samples where that modality is available.
        """
        labels = ops.reshape(ops.cast(y, "int32"), (-1,))
        availability = x.get("availability") if isinstance(x, dict) else None
        base_weights = (
            ops.ones_like(ops.cast(labels, "float32"))
            if sample_weight is None
            else ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        )
        terms = {}
        total = 0.0
        for output, weight in self.output_loss_weights.items():
            per_sample = keras.losses.sparse_categorical_crossentropy(
                labels, ops.cast(y_pred[output], "float32")
            )
            sample_weights = base_weights
            column = self.output_modality_columns.get(output)
            if column is not None and availability is not None:
                sample_weights = sample_weights * ops.cast(availability[:, column], "float32")
            term = ops.sum(per_sample * sample_weights) / ops.maximum(ops.sum(sample_weights), 1.0)
            terms[output] = term
            if weight:
                total = total + weight * term
        terms["total"] = ops.convert_to_tensor(total, "float32")
        return terms

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        terms = self.loss_terms(x, y, y_pred, sample_weight)
        for output, tracker in self.term_trackers.items():
            tracker.update_state(terms[output])
        self.accuracy_tracker.update_state(
            ops.reshape(ops.cast(y, "int32"), (-1,)), y_pred["decision"]
        )
        total = terms["total"]
        if self.losses:
            total = total + ops.sum([ops.cast(loss, "float32") for loss in self.losses])
        # As Keras' own losses: under tf.distribute each replica's loss is divided by the
        # number of replicas, since the replicas' gradients are summed; Keras' loss tracker
        # multiplies it back for the logs.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            total = total / replicas
        return total

    def compile(self, optimizer="auto", **kwargs):
        """Compile with :func:`default_optimizer` unless another optimizer is given.

        The loss is the model's own (:meth:`loss_terms`); a ``loss`` argument is refused.
        """
        if "loss" in kwargs:
            raise ValueError(
                f"{type(self).__name__}.compile: the loss is defined by the model (Eq. 1); "
                "do not pass loss="
            )
        if optimizer == "auto":
            optimizer = default_optimizer()
        super().compile(optimizer=optimizer, **kwargs)
        # Built now, a saved model always holds the full optimizer state, trained or not,
        # so it reloads through compile_from_config without a variable-count mismatch.
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def compile_from_config(self, config):
        """Recompile a reloaded model with its saved optimizer (and its state)."""
        config = keras.saving.deserialize_keras_object(config)
        config.pop("loss", None)
        config.pop("loss_weights", None)
        self.compile(**{key: value for key, value in config.items() if value is not None})
