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
   ``e_k = d_{r_k, k}``. This is the rule of the reference implementations (TF1 and
   PyTorch), which draw in training and at test time alike.

Availability is per sample, which lets a model trained on B-mode + SE-mode classify an example
that has only a B-mode image (e.g. BUSI): the SE-mode features are never selected.

Training (``training=True``) always draws, from the layer's ``keras.random.SeedGenerator``.
Inference (``training`` False or None) follows ``inference``:

* ``"sample"``: one fresh draw per call, exactly the reference implementation. Outputs vary
  from call to call, so the validation predictions that choose the Youden threshold (§3.3.1)
  and the test predictions it is applied to come from different draws, and a saved model
  does not reload to the same outputs (Keras does not save a ``SeedGenerator``'s state).
* ``"expected"``: the deterministic expected value of the embracement,
  ``e = sum_m p_m a_m d_m / sum_m p_m a_m``, the rule dropout uses at inference. One pass,
  reproducible; but the decision network then sees a mixture of the modalities' features
  that it never saw in training, and ``DN(E[e])`` is not ``E[DN(e)]``.
* ``"mc"``: ``mc_samples`` = K draws of the reference's rule, returned stacked along the batch
  axis, sample-major: row ``k * N + n`` is draw ``k`` of sample ``n``, so the output has
  ``K * N`` rows. The model applies its decision network to every row and averages the K
  probabilities of each sample with
  :class:`~tf_bimodal.layers.stacked_sample_mean.StackedSampleMean`: a Monte-Carlo estimate of
  the reference's expected prediction. The draws are stateless and seeded by ``seed`` (0 when
  None): the Gumbel-max trick with one fixed ``(K, embracement_size, M)`` noise tensor shared by
  every sample, so a sample's K draws depend on nothing but the seed and its own
  probabilities (not on its batch or its place in it), and a saved model reproduces its
  outputs and the threshold chosen on them.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from tf_bimodal.layers.options import EMBRACENET_INFERENCE_MODES

INFERENCE_MODES = EMBRACENET_INFERENCE_MODES
"""``("sample", "expected", "mc")``, the rules at inference (module docstring)."""

NO_MODALITY_MESSAGE = (
    "EmbraceNet: every sample needs at least one available modality with a positive "
    "selection probability; found a sample whose availability * selection_probabilities "
    "sums to 0"
)

IMPOSSIBLE_LOGIT = -1e9
"""The logit of a modality with probability 0: below any logit plus Gumbel noise."""


@keras.saving.register_keras_serializable(package="tf_bimodal")
class EmbraceNet(keras.layers.Layer):
    """Docking + embracement fusion of ``M >= 2`` modality feature vectors (§3.3.1).

    Args:
        embracement_size: size of the docked and of the embraced vectors (paper: 4096).
        inference: rule at inference (module docstring): ``"expected"`` (default here, the
            one that keeps the batch), ``"sample"`` (as the reference) or ``"mc"`` (K stacked
            seeded draws; needs a :class:`StackedSampleMean` after the decision network).
        mc_samples: K of ``"mc"``, an int >= 1; default 16.
        docking_activation: activation of the docking layers (default ``"relu"``, as Choi &
            Lee).
        kernel_initializer: initializer of the docking kernels.
        seed: int or None; seeds the ``keras.random.SeedGenerator`` of the training (and
            ``"sample"``) draws, and is the fixed seed of the ``"mc"`` draws (0 when None).

    Call arguments:
        inputs: list of ``M`` tensors ``(batch, features_m)``.
        availabilities: optional ``(batch, M)`` 0/1 (or bool) mask of the modalities present
            for each sample; default: all available.
        selection_probabilities: optional ``(batch, M)`` non-negative weights ``p``; default
            uniform. They are multiplied by ``availabilities`` and renormalised per sample.
        training: draw (True) or apply the ``inference`` rule (False / None).

    Returns:
        ``(batch, embracement_size)`` embraced vectors; with ``inference="mc"`` at inference
        ``(mc_samples * batch, embracement_size)``, sample-major.

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
        mc_samples: int = 16,
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
        if not isinstance(mc_samples, int) or isinstance(mc_samples, bool) or mc_samples < 1:
            raise ValueError(f"EmbraceNet: mc_samples must be an int >= 1, got {mc_samples!r}")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"EmbraceNet: seed must be an int or None, got {seed!r}")
        self.embracement_size = embracement_size
        self.inference = inference
        self.mc_samples = mc_samples
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

    def _drawn_toggles(self, probabilities, dtype):
        """(batch, size, M) one-hot selections drawn from the layer's seed generator."""
        logits = ops.log(ops.maximum(probabilities, 1e-30))
        # A zero probability must never be drawn: give it a logit far below any other.
        logits = ops.where(probabilities > 0.0, logits, IMPOSSIBLE_LOGIT)
        choices = keras.random.categorical(logits, self.embracement_size, seed=self.seed_generator)
        return ops.one_hot(choices, self.num_modalities, dtype=dtype)

    def seeded_choices(self, probabilities):
        """(K, batch, size) modality indices of the ``"mc"`` draws (Gumbel-max, stateless).

        ``argmax_m(log p_m + g_{k, j, m})`` with standard Gumbel noise ``g`` drawn once, from
        the fixed seed, for all samples: an exact draw from ``p`` per feature ``j`` and draw
        ``k``, and the same draw for the same probabilities in any batch.
        """
        seed = tf.constant([0 if self.seed is None else self.seed, 0], tf.int32)
        uniform = tf.random.stateless_uniform(
            (self.mc_samples, 1, self.embracement_size, self.num_modalities), seed,
            minval=1e-20, maxval=1.0, dtype=tf.float32,
        )
        gumbel = -ops.log(-ops.log(uniform))
        logits = ops.log(ops.maximum(probabilities, 1e-30))
        logits = ops.where(probabilities > 0.0, logits, IMPOSSIBLE_LOGIT)
        return ops.argmax(logits[None, :, None, :] + gumbel, axis=-1)

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
            toggles = self._drawn_toggles(probabilities, stacked.dtype)
        elif self.inference == "expected":
            toggles = ops.cast(probabilities, stacked.dtype)[:, None, :]
        else:
            toggles = ops.one_hot(self.seeded_choices(probabilities), self.num_modalities, dtype=stacked.dtype)
            embraced = ops.sum(stacked[None] * toggles, axis=-1)  # (K, batch, size)
            return ops.reshape(embraced, (-1, self.embracement_size))
        return ops.sum(stacked * toggles, axis=-1)

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return (input_shape[0][0], self.embracement_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            embracement_size=self.embracement_size,
            inference=self.inference,
            mc_samples=self.mc_samples,
            docking_activation=self.docking_activation,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            seed=self.seed,
        )
        return config
