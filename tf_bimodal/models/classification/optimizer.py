"""The classifiers' optimiser: SGD with momentum and weight decay (paper §3.4).

"The momentum and weight decay were set to 0.8 and 0.0001, respectively. We choose stochastic
gradient descent (SGD) as the optimization solver" (§3.4). In the frameworks of the paper's
time (PyTorch's ``torch.optim.SGD``, Caffe's ``weight_decay``) weight decay is an L2 penalty:
``weight_decay * w`` is added to the gradient, so it passes through the momentum. PyTorch's
update, with velocity ``v`` (zero at the start), is::

    g = grad + weight_decay * w
    v = momentum * v + g
    w = w - learning_rate * v

Keras 3's ``SGD(weight_decay=...)`` is *decoupled* decay instead: each step first shrinks
``w`` by ``learning_rate * weight_decay * w``, outside the momentum. With momentum 0.8 the two
differ about five-fold in the steady-state shrinkage (``1 / (1 - momentum)``).

:class:`SGDWithL2` is the PyTorch form; :func:`classification_optimizer` builds the one
``ClassificationConfig.weight_decay_mode`` asks for. The L2 term acts on every variable the
optimiser updates (every trainable variable of the model: convolution and dense kernels,
biases, the EmbraceNet docking layers, the decision network), as PyTorch's does for
``model.parameters()``; the models have no batch normalisation. It is not part of the loss, so
the logged training and validation losses are those of Eq. (1) alone.
"""

from __future__ import annotations

import keras
from keras import ops

from tf_bimodal.config import WEIGHT_DECAY_MODES, ClassificationConfig
from tf_bimodal.models.accumulation import AccumulatingSGD, GradientAccumulation


@keras.saving.register_keras_serializable(package="tf_bimodal")
class SGDWithL2(keras.optimizers.SGD):
    """SGD (with optional momentum) whose weight decay is L2 through the gradient (§3.4).

    Each update step adds ``l2_weight_decay * w`` to the gradient of ``w`` and then runs
    Keras' SGD step, which with a constant learning rate is PyTorch's ``torch.optim.SGD``
    with ``weight_decay=l2_weight_decay``, ``dampening=0`` (Keras keeps ``-learning_rate * v``
    where PyTorch keeps ``v``). Under a loss-scaling or distributed wrapper the term is added
    to the unscaled, all-reduced gradient, once per variable.

    Args:
        learning_rate, momentum, nesterov: as ``keras.optimizers.SGD``.
        l2_weight_decay: the L2 coefficient (paper: 1e-4), >= 0.
        **kwargs: other ``keras.optimizers.Optimizer`` arguments; Keras' own (decoupled)
            ``weight_decay`` is refused, so that the two are never combined by mistake.

    Raises:
        ValueError: a negative ``l2_weight_decay``, or a ``weight_decay`` argument.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, l2_weight_decay=0.0, **kwargs):
        if kwargs.get("weight_decay"):
            raise ValueError(
                "SGDWithL2: weight_decay is Keras' decoupled decay; give the L2 coefficient as "
                f"l2_weight_decay instead, got weight_decay={kwargs['weight_decay']!r}"
            )
        kwargs.pop("weight_decay", None)
        if l2_weight_decay < 0:
            raise ValueError(f"SGDWithL2: l2_weight_decay must be >= 0, got {l2_weight_decay}")
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, **kwargs)
        self.l2_weight_decay = float(l2_weight_decay)

    def update_step(self, gradient, variable, learning_rate):
        if self.l2_weight_decay:
            gradient = ops.add(
                ops.cast(gradient, variable.dtype),
                ops.multiply(ops.cast(self.l2_weight_decay, variable.dtype), variable),
            )
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["l2_weight_decay"] = self.l2_weight_decay
        return config


@keras.saving.register_keras_serializable(package="tf_bimodal")
class AccumulatingSGDWithL2(GradientAccumulation, SGDWithL2):
    """:class:`SGDWithL2` stepping once per ``accumulation_steps`` micro-batches
    (:class:`~tf_bimodal.models.accumulation.GradientAccumulation`); the L2 term is added to
    the mean gradient, once per step."""


def classification_optimizer(config: ClassificationConfig, accumulation_steps: int = 1) -> keras.optimizers.Optimizer:
    """The SGD of ``config`` (§3.4): ``learning_rate``, ``momentum`` and ``weight_decay``,
    the decay as ``config.weight_decay_mode`` says: ``"l2"`` a :class:`SGDWithL2`,
    ``"decoupled"`` Keras' ``SGD(weight_decay=...)``. With ``accumulation_steps`` > 1 the
    optimizer steps once per that many micro-batches, on their mean gradient
    (:mod:`tf_bimodal.models.accumulation`); the decay then acts once per step.

    Raises:
        ValueError: an unknown ``weight_decay_mode``.
    """
    if config.weight_decay_mode not in WEIGHT_DECAY_MODES:
        raise ValueError(
            f"weight_decay_mode must be one of {WEIGHT_DECAY_MODES}, got {config.weight_decay_mode!r}"
        )
    accumulation = {"accumulation_steps": accumulation_steps} if accumulation_steps > 1 else {}
    if config.weight_decay_mode == "l2":
        return (AccumulatingSGDWithL2 if accumulation else SGDWithL2)(
            learning_rate=config.learning_rate, momentum=config.momentum, l2_weight_decay=config.weight_decay,
            **accumulation,
        )
    return (AccumulatingSGD if accumulation else keras.optimizers.SGD)(
        learning_rate=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay or None,
        **accumulation,
    )
