"""Gradient accumulation that works under ``tf.distribute`` (§3.4's batch in micro-batches).

The paper steps its optimizers on mini-batches of 32 (§3.4). When 32 images do not fit in one
forward/backward pass, the runners pass ``accumulation_steps`` micro-batches and step the
optimizer once on their mean gradient (:mod:`tf_bimodal.training.memory`).

Keras 3's own ``gradient_accumulation_steps`` branches between "accumulate" and "update" with a
conditional around the whole update, and that update all-reduces across replicas: under
``MirroredStrategy`` or ``MultiWorkerMirroredStrategy`` (TensorFlow 2.21, Keras 3.15) it fails
with "`merge_call` called while defining a new graph or a tf.function". The optimizers here move
the branch inside each variable's update instead: every micro-batch's gradients are all-reduced
as usual (no conditional around a synchronisation), and each replica then either adds them to
its accumulator or, every ``accumulation_steps``-th micro-batch, applies the optimizer's own
update to their mean. ``iterations`` counts optimizer steps (learning-rate schedules and Adam's
bias correction see the same step numbers as without accumulation). Decoupled weight decay
(``weight_decay``) is applied with the update, once per step.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


class GradientAccumulation:
    """Mixin for a Keras optimizer: step once per ``accumulation_steps`` micro-batches, on the
    mean of their (all-reduced) gradients.

    Args:
        accumulation_steps: micro-batches per optimizer step, >= 1 (1: an ordinary optimizer).
        **kwargs: the optimizer's own arguments (Keras' ``gradient_accumulation_steps`` is refused:
            it does not work under ``tf.distribute``).
    """

    def __init__(self, *args, accumulation_steps: int = 1, **kwargs):
        if kwargs.get("gradient_accumulation_steps"):
            raise ValueError(
                f"{type(self).__name__}: give accumulation_steps, not gradient_accumulation_steps (Keras' own "
                "accumulation fails under tf.distribute)"
            )
        kwargs.pop("gradient_accumulation_steps", None)
        if int(accumulation_steps) < 1:
            raise ValueError(f"{type(self).__name__}: accumulation_steps must be >= 1, got {accumulation_steps}")
        super().__init__(*args, **kwargs)
        self.accumulation_steps = int(accumulation_steps)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._micro_accumulators = (
            self.add_optimizer_variables(variables, "micro_accumulator") if self.accumulation_steps > 1 else []
        )

    @property
    def iterations(self):
        """Optimizer steps taken (micro-batches // ``accumulation_steps``)."""
        if getattr(self, "accumulation_steps", 1) > 1:
            return ops.floor_divide(self._iterations, self.accumulation_steps)
        return self._iterations

    def _apply_weight_decay(self, variables):
        if getattr(self, "accumulation_steps", 1) == 1:
            super()._apply_weight_decay(variables)
        # else: applied in update_step, with the update.

    def update_step(self, gradient, variable, learning_rate):
        if self.accumulation_steps == 1:
            return super().update_step(gradient, variable, learning_rate)
        accumulator = self._micro_accumulators[self._get_variable_index(variable)]
        steps = self.accumulation_steps
        gradient = ops.cast(gradient, accumulator.dtype)

        def apply():
            mean = ops.divide(ops.add(accumulator, gradient), ops.cast(steps, accumulator.dtype))
            if self.weight_decay is not None and self._use_weight_decay(variable):
                rate = ops.cast(learning_rate, variable.dtype)
                variable.assign_sub(variable * ops.cast(self.weight_decay, variable.dtype) * rate)
            super(GradientAccumulation, self).update_step(mean, variable, learning_rate)
            accumulator.assign(ops.zeros_like(accumulator))
            return tf.constant(True)

        def accumulate():
            accumulator.assign_add(gradient)
            return tf.constant(False)

        tf.cond(ops.equal((self._iterations + 1) % steps, 0), apply, accumulate)

    def get_config(self):
        return {**super().get_config(), "accumulation_steps": self.accumulation_steps}


@keras.saving.register_keras_serializable(package="tf_bimodal")
class AccumulatingAdam(GradientAccumulation, keras.optimizers.Adam):
    """Adam stepping once per ``accumulation_steps`` micro-batches (:class:`GradientAccumulation`)."""


@keras.saving.register_keras_serializable(package="tf_bimodal")
class AccumulatingSGD(GradientAccumulation, keras.optimizers.SGD):
    """SGD stepping once per ``accumulation_steps`` micro-batches (:class:`GradientAccumulation`)."""
