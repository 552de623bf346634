"""How training runs, not what it computes: tf.distribute, mixed precision, TensorBoard, the
micro-batches. Read by ``tf_bimodal.training.runtime`` and ``tf_bimodal.training.tensorboard``."""

from __future__ import annotations

import dataclasses

from tf_bimodal.config.base import check_choice

STRATEGIES = ("auto", "mirrored", "multi_worker", "one_device")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")
"""Keras dtype policies of ``RuntimeConfig.precision``; ``auto`` is resolved to one of the
others on the machine that trains (:func:`tf_bimodal.training.runtime.resolve_precision`)."""


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """Where and how models train; the design card's "tf.distribute MirroredStrategy on GPUs".

    Attributes:
        strategy: ``auto`` (``MirroredStrategy`` over all local GPUs when there are any, else
            the default strategy), ``mirrored``, ``multi_worker``
            (``MultiWorkerMirroredStrategy`` from the ``TF_CONFIG`` environment variable) or
            ``one_device``. The presets' batch sizes are global: the paper's per-step batch
            (§3.4), split over the replicas.
        precision: Keras dtype policy: ``float32``, ``mixed_bfloat16`` or ``mixed_float16``
            (with loss scaling); model outputs stay float32. Part of a run's cache key, since
            it changes the numbers. ``auto`` measures the machine before the first model and
            becomes one of the three (:func:`tf_bimodal.training.runtime.resolve_precision`):
            mixed bfloat16 on a CPU whose bfloat16 matmuls run at least twice as fast as its
            float32 ones, mixed precision on GPUs with tensor cores, float32 otherwise.
        tensorboard: write TensorBoard logs for every fold.
        image_every: segmentation: write predicted masks to TensorBoard every this many epochs.
        micro_batch: images per replica per forward/backward pass. None: the largest that fits
            the device's memory by the model's estimate
            (:func:`tf_bimodal.training.memory.plan_batch`); the configured batch is then reached by
            accumulating the gradients of ``batch / (micro_batch * replicas)`` passes before
            each optimizer step. Not part of a run's cache key (batch normalisation aside, the
            step is the same; recorded per fold). Every worker of a ``multi_worker`` run must
            reach the same plan: on machines of different memory, set it.
    """

    strategy: str = "auto"
    precision: str = "float32"
    tensorboard: bool = True
    image_every: int = 5
    micro_batch: int | None = None

    def __post_init__(self):
        check_choice("RuntimeConfig", "strategy", self.strategy, STRATEGIES)
        check_choice("RuntimeConfig", "precision", self.precision, PRECISIONS)
        if self.image_every < 1:
            raise ValueError(f"RuntimeConfig: image_every must be >= 1, got {self.image_every}")
        if self.micro_batch is not None and self.micro_batch < 1:
            raise ValueError(
                f"RuntimeConfig: micro_batch must be >= 1 or None (the memory rule), got {self.micro_batch}"
            )

