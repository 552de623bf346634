"""Training memory of a model, the device's memory, and the micro-batch that fits (§3.4).

The paper trains every segmenter with mini-batches of 32 images of 336 x 336 pixels (§3.4). At
that size one training image of the paper W-MM-U-Net keeps gigabytes of layer outputs for the
backward pass, so the paper's batch does not fit in one pass on any single GPU. The runners
therefore split each optimizer step into micro-batches and accumulate their gradients
(:class:`BatchPlan`): the optimizer sees the mean gradient of the whole batch, as the paper's
step does, while each forward/backward pass holds only a micro-batch.

* :func:`estimate_training_memory` predicts a model's peak training memory as a fixed part
  (weights, gradients, optimizer slots, gradient accumulators, the runtime) plus a part per
  image (every layer output of the forward pass, kept for the backward pass, times a factor
  measured on real training steps, :data:`ACTIVATION_FACTORS`: ``benchmarks/bench_memory.py``,
  ``benchmarks/results/memory_paper.json``).
* :func:`device_memory` is the memory of the device at hand: a GPU's total memory, or the
  RAM available on a CPU.
* :func:`plan_batch` picks the largest micro-batch whose estimate fits in a share
  (:data:`MEMORY_MARGIN`) of that memory and the number of accumulation steps that reach the
  configured batch, per replica under ``MirroredStrategy`` and ``MultiWorkerMirroredStrategy``;
  ``RuntimeConfig.micro_batch`` overrides the rule.

**Batch normalisation over micro-batches.** Gradient accumulation makes the optimizer step
follow the mean gradient of the batch, but a batch-normalisation layer still normalises each
micro-batch by that micro-batch's own mean and variance and updates its moving averages once
per micro-batch (``momentum`` applied per micro-batch, so the moving averages follow the same
statistics with more, noisier updates). A step of k accumulated micro-batches of m images is
therefore exactly one step of k * m images for a model without batch normalisation (tested),
and close to it with batch normalisation, whose batch statistics are those of m images. The
same holds for replicas: under ``MirroredStrategy`` each replica normalises its own share.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import subprocess

import keras
import numpy as np

logger = logging.getLogger(__name__)

MEMORY_MARGIN = 0.8
"""Share of the device's memory a planned micro-batch may fill (the rest: allocator
fragmentation, cuDNN / oneDNN work space, the estimate's error)."""

ACTIVATION_FACTORS = {"segmentation": 1.0, "classification": 1.6}
"""Peak bytes per training image over the bytes of the forward pass's layer outputs, for a
model with a per-pixel output (a segmenter) and for the others (a classifier).

Measured on float32 training steps of the paper preset's models at batch sizes 1 and 2 on a
CPU (``benchmarks/bench_memory.py``, ``benchmarks/results/memory_paper.json``, 2026-12-03):
0.70-0.98 for the U-Nets and MM-U-Nets at 32 and 64 filters, 0.59-1.59 for the VGG-16
classifiers (whose EmbraceNet and decision layers keep tensors that are not layer outputs);
the largest of each, rounded up. One factor of 1.6 for all refused the 64-filter W-MM-U-Net
on 24 GiB (21.2 GiB estimated for one image) where it measured 13.3-13.8 GiB. The planned
micro-batch fills at most :data:`MEMORY_MARGIN` of the device on top of it."""

RUNTIME_BYTES = 2 * 2**30
"""The fixed memory of a training process beyond the weight copies: the measured fixed part
minus weights, gradients and optimizer slots was 1.2-2.1 GiB for the paper preset's models
(same benchmark)."""

OPTIMIZER_SLOTS = {"adam": 2, "sgd_momentum": 1, "sgd": 0}
"""Variables an optimizer keeps per weight."""

DEFAULT_GPU_BYTES = 16 * 2**30
"""Assumed memory of a GPU whose size cannot be read (no ``nvidia-smi``)."""


@dataclasses.dataclass(frozen=True)
class MemoryProfile:
    """A model's estimated peak training memory: ``fixed_bytes + images * per_image_bytes``.

    Attributes:
        parameters: the model's weights (trainable and not).
        fixed_bytes: weights, gradients, optimizer slots, accumulators and the runtime.
        per_image_bytes: the part that grows with every image of a micro-batch.
        activation_bytes: the forward pass's layer outputs for one image (before the factor).
    """

    parameters: int
    fixed_bytes: int
    per_image_bytes: int
    activation_bytes: int

    def bytes_at(self, images: int) -> int:
        """Estimated peak bytes of a training step of ``images`` images per replica."""
        return int(self.fixed_bytes + images * self.per_image_bytes)

    def max_images(self, available_bytes: float) -> int:
        """The most images per replica whose estimate fits in ``available_bytes`` (0: none)."""
        room = available_bytes - self.fixed_bytes
        return max(0, int(room // self.per_image_bytes)) if self.per_image_bytes > 0 else 1 << 20


def _output_elements(model) -> int:
    """Elements per image of every layer output of a functional model's forward pass; a
    nested model (e.g. MFF's shared VGG-16, called once per modality) counts once per call."""
    total = 0
    for operation in model.operations:
        if isinstance(operation, keras.layers.InputLayer):
            continue
        calls = operation._inbound_nodes
        if isinstance(operation, keras.Model) and getattr(operation, "operations", None):
            total += _output_elements(operation) * max(1, len(calls))
            continue
        for node in calls:
            for tensor in keras.tree.flatten(node.outputs):
                shape = getattr(tensor, "shape", None)
                if shape and shape[0] is None and all(d is not None for d in shape[1:]):
                    total += int(np.prod(shape[1:], dtype=np.int64))
    return total


def optimizer_slots(optimizer) -> int:
    """The variables ``optimizer`` keeps per weight (Adam 2, SGD with momentum 1, SGD 0)."""
    if isinstance(optimizer, keras.optimizers.Adam):
        return OPTIMIZER_SLOTS["adam"]
    if isinstance(optimizer, keras.optimizers.SGD):
        return OPTIMIZER_SLOTS["sgd_momentum" if optimizer.momentum else "sgd"]
    return OPTIMIZER_SLOTS["adam"]


def estimate_training_memory(model, slots: int = 2, accumulate: bool = True,
                             compute_bytes: int = 4) -> MemoryProfile:
    """The peak training memory of ``model`` (a built functional Keras model), per replica.

    Args:
        model: the model as the runners build it.
        slots: optimizer variables per weight (:func:`optimizer_slots`).
        accumulate: count a gradient accumulator per weight.
        compute_bytes: bytes of the layer outputs' dtype (4 float32, 2 mixed precision).
    """
    parameters = int(model.count_params())
    weight_copies = 2 + slots + int(accumulate)  # weights, gradients, slots, accumulators (float32)
    activation = _output_elements(model) * compute_bytes
    factor = ACTIVATION_FACTORS["segmentation" if len(model.outputs[0].shape) == 4 else "classification"]
    return MemoryProfile(
        parameters=parameters,
        fixed_bytes=int(parameters * 4 * weight_copies + RUNTIME_BYTES),
        per_image_bytes=int(activation * factor),
        activation_bytes=int(activation),
    )


def _gpu_total_bytes() -> int | None:
    """The smallest total memory of the local GPUs, from ``nvidia-smi`` (None without it)."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=20, check=True)
        sizes = [int(float(line)) for line in done.stdout.split() if line.strip()]
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return min(sizes) * 2**20 if sizes else None


def _cpu_available_bytes() -> int:
    """The RAM a new allocation can have now (``MemAvailable``), else the physical RAM."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def device_memory(gpus: int | None = None) -> dict:
    """The memory one replica trains in: ``{"device", "bytes", "source"}``.

    With GPUs (``gpus`` > 0, default: those TensorFlow sees), the smallest GPU's total memory
    (``nvidia-smi``; :data:`DEFAULT_GPU_BYTES` when it cannot be read); else the CPU's
    available RAM (``/proc/meminfo``), which all replicas of a CPU share.
    """
    if gpus is None:
        import tensorflow as tf

        gpus = len(tf.config.list_physical_devices("GPU"))
    if gpus:
        total = _gpu_total_bytes()
        if total is None:
            return {"device": "gpu", "bytes": DEFAULT_GPU_BYTES, "source": "assumed (nvidia-smi unavailable)"}
        return {"device": "gpu", "bytes": total, "source": "nvidia-smi memory.total"}
    return {"device": "cpu", "bytes": _cpu_available_bytes(), "source": "/proc/meminfo MemAvailable"}


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """How one optimizer step of ``batch`` images runs: ``accumulation_steps`` passes of
    ``micro_batch`` images on each of ``replicas`` replicas.

    Attributes:
        batch: the configured (global) batch of one optimizer step (§3.4: 32).
        replicas: replicas in sync.
        micro_batch: images per replica per forward/backward pass.
        accumulation_steps: passes per optimizer step (1: no accumulation).
        source: ``rule`` (:func:`plan_batch`'s fit), ``override`` (``runtime.micro_batch``)
            or ``batch`` (the batch fits in one pass).
        estimated_peak_bytes: the estimate at ``micro_batch`` (None without a profile).
        available_bytes: the device memory the plan fits in, before the margin.
    """

    batch: int
    replicas: int
    micro_batch: int
    accumulation_steps: int
    source: str
    estimated_peak_bytes: int | None = None
    available_bytes: int | None = None

    @property
    def global_micro_batch(self) -> int:
        """Images per pass over all replicas: what the input pipeline batches."""
        return self.micro_batch * self.replicas

    @property
    def effective_batch(self) -> int:
        """Images per optimizer step (the configured batch when it divides evenly)."""
        return self.global_micro_batch * self.accumulation_steps

    def describe(self) -> str:
        text = f"batch {self.batch}"
        if self.accumulation_steps > 1:
            text += (f" = {self.accumulation_steps} accumulated micro-batches of {self.micro_batch}"
                     + (f" x {self.replicas} replicas" if self.replicas > 1 else ""))
        elif self.replicas > 1:
            text += f" = {self.replicas} replicas x {self.micro_batch}"
        if self.estimated_peak_bytes is not None and self.available_bytes:
            text += (f" (estimated peak {self.estimated_peak_bytes / 2**30:.1f} GiB of "
                     f"{self.available_bytes / 2**30:.1f} GiB)")
        return text

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "global_micro_batch": self.global_micro_batch,
                "effective_batch": self.effective_batch}


class DoesNotFit(ValueError):
    """A model's training step does not fit in the device's memory even at one image."""


def _largest_divisor_at_most(value: int, limit: int) -> int:
    return max(d for d in range(1, min(value, limit) + 1) if value % d == 0)


def plan_batch(batch: int, replicas: int = 1, profile: MemoryProfile | None = None,
               available_bytes: float | None = None, micro_batch: int | None = None,
               margin: float = MEMORY_MARGIN, model_name: str = "model") -> BatchPlan:
    """The micro-batch and accumulation steps of an optimizer step of ``batch`` images.

    Each replica gets ``ceil(batch / replicas)`` images per step. With ``micro_batch`` given
    (``RuntimeConfig.micro_batch``) that many images run per pass; otherwise the rule takes
    the largest number of images whose estimated peak (``profile``) fits in ``margin`` of
    ``available_bytes`` (on a CPU the replicas share it), preferring a divisor of the
    replica's share so that every optimizer step holds exactly ``batch`` images. Without a
    profile the whole share runs in one pass.

    Raises:
        DoesNotFit: not even one image fits; the message says what would make it fit.
    """
    per_replica = max(1, math.ceil(batch / replicas))
    estimated = None
    if micro_batch is not None:
        micro, source = min(micro_batch, per_replica), "override"
    elif profile is None or available_bytes is None:
        micro, source = per_replica, "batch"
    else:
        fit = profile.max_images(margin * available_bytes)
        if fit < 1:
            raise DoesNotFit(
                f"{model_name}: one training image needs about {profile.bytes_at(1) / 2**30:.1f} GiB "
                f"({profile.fixed_bytes / 2**30:.1f} GiB fixed + {profile.per_image_bytes / 2**30:.1f} GiB per image) "
                f"but {margin:.0%} of this device's {available_bytes / 2**30:.1f} GiB is "
                f"{margin * available_bytes / 2**30:.1f} GiB; to fit: --precision mixed_bfloat16 (about halves "
                "the per-image part), a narrower model (e.g. --set segmentation.stackwise_num_filters=(32,64,128,256) "
                "--set segmentation.bottleneck_filters=512), a smaller image (--set segmentation.image_size=224 / "
                "classification.input_size=224), or a device with more memory"
            )
        micro = per_replica if fit >= per_replica else _largest_divisor_at_most(per_replica, fit)
        if micro * 2 <= fit < per_replica:  # a divisor far below the fit: take the fit, steps uneven
            micro = fit
        source = "batch" if micro == per_replica else "rule"
    if profile is not None:
        estimated = profile.bytes_at(micro)
    return BatchPlan(batch=batch, replicas=replicas, micro_batch=micro,
                     accumulation_steps=math.ceil(per_replica / micro), source=source,
                     estimated_peak_bytes=estimated,
                     available_bytes=int(available_bytes) if available_bytes else None)


_DEVICE_MEMORY: dict = {}


def training_plan(model, batch: int, runtime=None, replicas: int = 1, model_name: str = "model") -> BatchPlan:
    """:func:`plan_batch` for a built model on this process's device, as the runners use it.

    The device's memory is read once per process (:func:`device_memory`), so that every fold
    of a run gets the same plan; on a CPU the replicas share it. ``runtime``
    (``RuntimeConfig``) gives the precision (mixed: 2-byte layer outputs) and ``micro_batch``.
    """
    precision = getattr(runtime, "precision", "float32")
    profile = estimate_training_memory(model, compute_bytes=2 if precision.startswith("mixed") else 4)
    if "memory" not in _DEVICE_MEMORY:
        _DEVICE_MEMORY["memory"] = device_memory()
    memory = _DEVICE_MEMORY["memory"]
    available = memory["bytes"] / (replicas if memory["device"] == "cpu" else 1)
    return plan_batch(batch, replicas, profile, available, getattr(runtime, "micro_batch", None),
                      model_name=model_name)
