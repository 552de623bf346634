"""EmbraceNet: docking and embracement of per-modality feature vectors (paper §3.3.1).

Choi & Lee, "EmbraceNet: a robust deep learning architecture for multimodal classification",
Information Fusion 51 (2019) 259-270; used by Misra et al. 2022 to fuse the 4096-d VGG-16
features of B-mode and SE-mode images (§3.3.1, §3.3.3 "EmbraceNet integration", Fig. 4e).

For ``M`` modalities with feature vectors ``f_1 .. f_M`` (sizes may differ):

1. **Docking**: ``d_m = ReLU(W_m f_m + b_m)``, each of size ``embracement_size`` (4096 in the
   paper), one Dense layer per modality.
2. **Embracement**: for every feature index ``k`` a modality ``r_k`` is drawn from the
   multinomial ``p = (p_1 .. p_M)`` restricted to the modalities available for the sample
   (``p_m * a_m`` renormalised, ``a`` the availability mask); the embraced vector is
   ``e_k = d_{r_k, k}``.

Availability is per sample, which lets a model trained on B-mode + SE-mode classify an example
that has only a B-mode image (e.g. BUSI): the SE-mode features are never selected.

Inference (``training=False``) offers two rules, chosen by ``inference``:

* ``"expected"`` (default): the deterministic expected value of the embracement,
  ``e = sum_m p_m a_m d_m / sum_m p_m a_m``, the same rule dropout uses at inference (the
  training-time sampling is replaced by its mean). Predictions are then reproducible, which
  the evaluation protocol needs: the Youden threshold is chosen on validation predictions and
  applied to test predictions (§3.3.1), and a saved model must reload to identical outputs.
* ``"sample"``: draw modalities at inference too, as the reference implementation of Choi &
  Lee does; outputs then vary from call to call (average several calls for a Monte-Carlo
  estimate).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

INFERENCE_MODES = ("expected", "sample")

NO_MODALITY_MESSAGE = (
    "EmbraceNet: every sample needs at least one available modality with a positive "
    "selection probability; found a sample whose availability * selection_probabilities "
    "sums to 0"
)


@keras.saving.register_keras_serializable(package="tf_bimodal")
class EmbraceNet(keras.layers.Layer):
    """Docking + embracement fusion of ``M >= 2`` modality feature vectors (§3.3.1).

    Args:
        embracement_size: size of the docked and of the embraced vectors (paper: 4096).
        inference: rule at ``training=False``: ``"expected"`` (default, deterministic, see the
            module docstring) or ``"sample"`` (stochastic, as the reference implementation).
        docking_activation: activation of the docking layers (default ``"relu"``, as Choi &
            Lee).
        kernel_initializer: initializer of the docking kernels.
        seed: int or None; seeds the ``keras.random.SeedGenerator`` of the embracement draws.

    Call arguments:
        inputs: list of ``M`` tensors ``(batch, features_m)``.
        availabilities: optional ``(batch, M)`` 0/1 (or bool) mask of the modalities present
            for each sample; default: all available.
        selection_probabilities: optional ``(batch, M)`` non-negative weights ``p``; default
            uniform. They are multiplied by ``availabilities`` and renormalised per sample.
        training: sample (True) or apply the ``inference`` rule (False / None).

    Returns:
        ``(batch, embracement_size)`` embraced vector.

    Raises:
        ValueError: bad constructor arguments, fewer than 2 inputs, inputs that are not rank
            2, or (eagerly) a sample with no available modality. Inside a graph the last case
            fails a ``tf.debugging`` assertion with the same message (``InvalidArgumentError``);
            it never produces NaN.
    """

    def __init__(
        self,
        embracement_size: int = 4096,
        inference: str = "expected",
        docking_activation: str = "relu",
        kernel_initializer="glorot_uniform",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(embracement_size, int) or isinstance(embracement_size, bool) or embracement_size < 1:
            raise ValueError(
                f"EmbraceNet: embracement_size must be a positive int, got {embracement_size!r}"
            )
        if inference not in INFERENCE_MODES:
            raise ValueError(
                f"EmbraceNet: inference must be one of {INFERENCE_MODES}, got {inference!r}"
            )
        self.embracement_size = embracement_size
        self.inference = inference
        self.docking_activation = docking_activation
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.dockings = []

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 2 or not all(
            isinstance(shape, (list, tuple)) for shape in input_shape
        ):
            raise ValueError(
                "EmbraceNet: inputs must be a list of at least 2 feature tensors, got input "
                f"shape {input_shape}"
            )
        for index, shape in enumerate(input_shape):
            if len(shape) != 2 or shape[-1] is None:
                raise ValueError(
                    "EmbraceNet: every input must be (batch, features) with a known feature "
                    f"size, got shape {tuple(shape)} for input {index}"
                )
        self.num_modalities = len(input_shape)
        self.dockings = []
        for index, shape in enumerate(input_shape):
            docking = keras.layers.Dense(
                self.embracement_size,
                activation=self.docking_activation,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name=f"docking_{index}",
            )
            docking.build(tuple(shape))
            self.dockings.append(docking)
        self.built = True

    def _normalized_probabilities(self, batch_size, availabilities, selection_probabilities):
        """(batch, M) float32 probabilities restricted to available modalities."""
        if selection_probabilities is None:
            weights = ops.ones((batch_size, self.num_modalities), dtype="float32")
        else:
            weights = ops.cast(selection_probabilities, "float32")
        if availabilities is not None:
            weights = weights * ops.cast(availabilities, "float32")
        total = ops.sum(weights, axis=-1, keepdims=True)
        if tf.executing_eagerly():
            if bool(ops.any(total <= 0.0)):
                raise ValueError(NO_MODALITY_MESSAGE)
            checks = []
        else:
            checks = [
                tf.debugging.assert_greater(
                    ops.reshape(total, (-1,)),
                    tf.constant(0.0, "float32"),
                    message=NO_MODALITY_MESSAGE,
                )
            ]
        with tf.control_dependencies(checks):
            # The maximum only guards the division; the assertion above has already failed
            # for a sample whose total is 0.
            return tf.identity(weights / ops.maximum(total, 1e-12))

    def call(self, inputs, availabilities=None, selection_probabilities=None, training=None):
        if len(inputs) != self.num_modalities:
            raise ValueError(
                f"EmbraceNet: built for {self.num_modalities} modalities, called with "
                f"{len(inputs)}"
            )
        docked = [docking(features) for docking, features in zip(self.dockings, inputs)]
        stacked = ops.stack(docked, axis=-1)  # (batch, embracement_size, M)
        batch_size = ops.shape(stacked)[0]
        probabilities = self._normalized_probabilities(
            batch_size, availabilities, selection_probabilities
        )
        if training or self.inference == "sample":
            logits = ops.log(ops.maximum(probabilities, 1e-30))
            # A zero probability must never be drawn: give it a logit far below any other.
            logits = ops.where(probabilities > 0.0, logits, -1e9)
            choices = keras.random.categorical(
                logits, self.embracement_size, seed=self.seed_generator
            )  # (batch, embracement_size)
            toggles = ops.one_hot(choices, self.num_modalities, dtype=stacked.dtype)
        else:
            toggles = ops.cast(probabilities, stacked.dtype)[:, None, :]
        return ops.sum(stacked * toggles, axis=-1)

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return (input_shape[0][0], self.embracement_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            embracement_size=self.embracement_size,
            inference=self.inference,
            docking_activation=self.docking_activation,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            seed=self.seed,
        )
        return config
