"""tf.distribute strategies and mixed precision for training (the design card; issue: delivery).

The paper trained on one GPU (§3.4); this module lets the same runners use every local GPU,
several machines, or lower-precision arithmetic, chosen by a ``RuntimeConfig``:

* :func:`strategy_for` gives the ``tf.distribute.Strategy`` to build and compile models
  under (created once per process and reused).
* :func:`precision` is a context that sets the Keras dtype policy while models are built
  and trained; :func:`clear_session` clears Keras' state between folds without losing it.
* :func:`is_chief` and :func:`worker_output` tell a multi-worker run where each worker
  writes; :func:`tf_bimodal.data.pipeline.with_data_sharding` marks an in-memory dataset for
  sharding by element.
* :func:`tf_bimodal.data.pipeline.replica_batches` counts the batches that leave no replica empty.
* :func:`describe` is what a run records about where it trained.

**Global batch.** The presets' batch sizes are global: the paper's per-step batch (§3.4).
The runners batch their ``tf.data.Dataset`` with it and hand it to ``Model.fit``, which (the
TensorFlow backend's ``TFEpochIterator``) passes it through
``strategy.experimental_distribute_dataset``: every global batch is split into
``num_replicas_in_sync`` per-replica batches of ``global / replicas`` images, each replica's
loss is divided by the number of replicas (``keras.losses.Loss`` reductions do this), and
the gradients are summed across replicas. One step therefore follows the mean gradient of
the whole global batch, as on one device, and ``fit`` reports the mean loss over it. (A
model that computes its loss itself, overriding ``compute_loss`` without a
``keras.losses.Loss``, must divide it by ``num_replicas_in_sync`` too, or its steps grow
with the number of replicas and ``fit`` reports its loss times that number.) The runners keep
an epoch's last, partial batch when it has at least one image per replica
(:func:`~tf_bimodal.data.pipeline.replica_batches`); it is split as evenly as it goes, and since each replica averages
over its own images, those images weigh unequally in that one step (3 images on 2 replicas:
1/4, 1/4, 1/2), unlike on one device. A replica left with no image at all fails on the CPU
with oneDNN ("input depth must be evenly divisible by filter depth" or "Incompatible
shapes", TensorFlow 2.21) and, without oneDNN, turns the weights of a model with batch
normalization into NaN; so the runners leave such a last batch out (:func:`~tf_bimodal.data.pipeline.replica_batches`).
With ``multi_worker``, the first batch of a dataset must also split evenly (``fit`` and
``evaluate`` reduce it across the replicas before the first step, and fail with "Shape
mismatch in the collective instance" otherwise): keep global batches a multiple of the
number of replicas.

**Several workers** (``strategy="multi_worker"``): every worker runs the *same* program on
the *same* data with the *same* seeds; ``fit`` shards the dataset (here by element, see
:func:`~tf_bimodal.data.pipeline.with_data_sharding`), so each worker reads the whole pipeline and keeps its share
of every global batch. Two rules follow:

1. The strategy must exist before any other TensorFlow op runs in the process (it
   configures the collective ops of the eager context), so call :func:`strategy_for` first;
   the runners do so on entry.
2. Only the chief writes the results (:func:`is_chief`): the runners send every other
   worker's files to a private folder (:func:`worker_output`), where it keeps its own copy
   of the run. Since the runners reuse finished runs and folds from their output folder,
   every worker's folder must be in the same state when a run starts (all fresh, or all
   left by the same interrupted run); otherwise one worker skips a fold that another
   trains, and the second waits for the first forever. Prepare the TFDS data once before
   starting the workers if they share a ``data_dir``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import time
import warnings

import keras
import tensorflow as tf

from tf_bimodal.config import RuntimeConfig

logger = logging.getLogger(__name__)

TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}'
)
"""The shape of the ``TF_CONFIG`` that ``strategy="multi_worker"`` reads (one per worker: the
same ``cluster`` everywhere, ``task.index`` its own position in the ``worker`` list)."""

WORKER_JOBS = ("chief", "worker")
"""The jobs of a ``MultiWorkerMirroredStrategy`` cluster (``chief`` is optional)."""

WORKERS_DIR = "_workers"
"""Subfolder of the output where non-chief workers keep their copy of a run."""

_STRATEGIES: dict = {}


def _runtime(runtime: RuntimeConfig | None) -> RuntimeConfig:
    return runtime if runtime is not None else RuntimeConfig()


# --------------------------------------------------------------------------- cluster


def _tf_config_error(problem: str) -> ValueError:
    return ValueError(
        f"strategy 'multi_worker' (tf.distribute.MultiWorkerMirroredStrategy) reads the cluster from "
        f"the TF_CONFIG environment variable, but {problem}. Set TF_CONFIG on every worker to JSON "
        f"like {TF_CONFIG_EXAMPLE}: the same 'cluster' (host:port of every worker, optionally one "
        "'chief') on all of them, and in 'task' this worker's job and its index in that job's list"
    )


def tf_config() -> dict:
    """The ``TF_CONFIG`` of this process, checked for what ``MultiWorkerMirroredStrategy`` needs.

    Returns:
        The parsed dict: ``{"cluster": {job: [address, ...]}, "task": {"type", "index"}}``.

    Raises:
        ValueError: ``TF_CONFIG`` unset, not JSON, or not of the shape of ``TF_CONFIG_EXAMPLE``
            (no ``chief`` / ``worker`` job, an address that is not ``host:port``, a task not in
            the cluster); the message names the variable and the expected shape.
    """
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        raise _tf_config_error("TF_CONFIG is not set")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise _tf_config_error(f"TF_CONFIG is not valid JSON ({error}): {text!r}") from None
    if not isinstance(config, dict):
        raise _tf_config_error(f"TF_CONFIG is a JSON {type(config).__name__}, not an object")
    cluster = config.get("cluster")
    if not isinstance(cluster, dict) or not any(cluster.get(job) for job in WORKER_JOBS):
        raise _tf_config_error(f"its 'cluster' has no 'worker' (or 'chief') list: {cluster!r}")
    for job, addresses in cluster.items():
        if job not in WORKER_JOBS:
            raise _tf_config_error(f"its cluster has a {job!r} job; only {WORKER_JOBS} are used")
        if not isinstance(addresses, list) or not all(
            isinstance(address, str) and address.rpartition(":")[2].isdigit() for address in addresses
        ):
            raise _tf_config_error(f"cluster[{job!r}] must be a list of 'host:port' strings, got {addresses!r}")
    if len(cluster.get("chief") or []) > 1:
        raise _tf_config_error(f"its cluster has {len(cluster['chief'])} chiefs; at most one is allowed")
    task = config.get("task")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise _tf_config_error(f"its 'task' must name a job of the cluster ({sorted(cluster)}), got {task!r}")
    index = task.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[task["type"]]):
        raise _tf_config_error(
            f"task index {index!r} is not a position in cluster[{task['type']!r}] "
            f"({len(cluster[task['type']])} addresses)"
        )
    return config


def is_chief(runtime: RuntimeConfig | None = None) -> bool:
    """Whether this process writes the results of the run (the chief worker).

    True unless ``runtime.strategy == "multi_worker"``; there, the ``chief`` task, or worker 0
    when the cluster has no chief (``MultiWorkerMirroredStrategy``'s own rule). Read from
    ``TF_CONFIG``, so it needs no strategy and runs no TensorFlow op.

    Raises:
        ValueError: a multi-worker runtime without a valid ``TF_CONFIG`` (see :func:`tf_config`).
    """
    if _runtime(runtime).strategy != "multi_worker":
        return True
    config = tf_config()
    task_type, index = config["task"]["type"], config["task"]["index"]
    if task_type == "chief":
        return True
    return task_type == "worker" and index == 0 and not config["cluster"].get("chief")


def worker_output(output: str, runtime: RuntimeConfig | None = None) -> str:
    """Where this worker writes a run's results: ``output`` on the chief (and in any
    single-worker run), ``<output>/_workers/<job>_<index>`` on the other workers.

    Every worker trains in step with the others, so each keeps a complete copy of the run
    (splits, fold folders, backups to resume from); only the chief's is the result.
    """
    if is_chief(runtime):
        return output
    task = tf_config()["task"]
    return os.path.join(output, WORKERS_DIR, f"{task['type']}_{task['index']}")


# --------------------------------------------------------------------------- strategies


class KerasMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """``MultiWorkerMirroredStrategy`` whose ``reduce`` takes what Keras 3's ``fit`` gives it.

    With more than one worker, ``Model.fit`` of Keras 3.15 fails on the plain strategy
    (keras-team/keras#20585, tensorflow/tensorflow#72388): before the first step it reduces a
    whole ``(inputs, targets)`` batch in one ``strategy.reduce`` call, which this strategy,
    unlike ``MirroredStrategy``, does not map over nested structures; and after every step it
    reduces the scalar logs (loss, metrics) with ``axis=0``, which a scalar does not have.
    Here ``reduce`` maps over nests and reduces scalars across replicas only (``axis=None``),
    giving the mean of the replicas' values, as ``MirroredStrategy`` does in Keras. Only
    calls that the parent refuses behave differently.
    """

    def reduce(self, reduce_op, value, axis):
        parent = super()

        def reduce_one(item):
            local = self.experimental_local_results(item)[0]
            scalar = tf.TensorShape(getattr(local, "shape", ())).rank == 0
            return parent.reduce(reduce_op, item, axis=None if scalar else axis)

        return tf.nest.map_structure(reduce_one, value)


def _create_strategy(name: str) -> tf.distribute.Strategy:
    if name == "multi_worker":
        tf_config()  # a clear error before TensorFlow's own
        try:
            return KerasMultiWorkerMirroredStrategy()
        except RuntimeError as error:
            if "program startup" not in str(error):
                raise
            raise RuntimeError(
                "strategy 'multi_worker': MultiWorkerMirroredStrategy must be created before any "
                "other TensorFlow op runs in this process (it configures the collective ops of "
                "the eager context); call tf_bimodal.training.runtime.strategy_for(runtime) at "
                "the start of the program"
            ) from error
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if gpus else tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    raise ValueError(f"unknown strategy {name!r}")  # RuntimeConfig refuses it first


def strategy_for(runtime: RuntimeConfig | None = None) -> tf.distribute.Strategy:
    """The ``tf.distribute.Strategy`` that ``runtime.strategy`` names, created once per process.

    * ``auto``: ``MirroredStrategy`` over all local GPUs when TensorFlow sees any, else the
      default strategy (no distribution, the default device).
    * ``mirrored``: ``MirroredStrategy`` over all local GPUs; on a machine without one, a
      single replica on the CPU.
    * ``multi_worker``: ``MultiWorkerMirroredStrategy`` (synchronous all-reduce across the
      workers of ``TF_CONFIG``, over all local GPUs of each), as
      :class:`KerasMultiWorkerMirroredStrategy`, which Keras 3's ``fit`` can use. It must be
      created before any other TensorFlow op in the process, so call this first (the
      runners do, on entry).
    * ``one_device``: ``OneDeviceStrategy`` on the first GPU, or on the CPU without one.

    Build and compile models inside ``strategy_for(runtime).scope()``; ``fit`` then splits
    each global batch over ``num_replicas_in_sync`` replicas (see the module docstring).
    Call it outside any other strategy's scope (``auto`` on a CPU returns the current
    strategy).

    Raises:
        ValueError: ``multi_worker`` without a valid ``TF_CONFIG`` (see :func:`tf_config`).
        RuntimeError: ``multi_worker`` created after other TensorFlow ops ran.
    """
    name = _runtime(runtime).strategy
    if name not in _STRATEGIES:
        _STRATEGIES[name] = _create_strategy(name)
    return _STRATEGIES[name]


# --------------------------------------------------------------------------- fit inputs


def fit_datasets(train_ds: tf.data.Dataset, val_ds: tf.data.Dataset | None = None) -> dict:
    """The data arguments of ``Model.fit``, with one training iterator for the whole fit.

    A training dataset of a known number of batches is repeated and ``fit`` is told its
    batches per epoch (``steps_per_epoch``), so Keras keeps one iterator for the whole fit
    instead of a new one every epoch (``TFEpochIterator`` makes a new one when it is not
    given ``steps_per_epoch``). A new iterator instantiates every map function of the
    pipeline again (graph optimization, and the XLA compilation of the fused training crop,
    :func:`tf_bimodal.data.pipeline.augment_and_crop_batch`): about 0.5-0.9 s per epoch on
    2 cores, more than a whole epoch of the ``cpu`` classifiers. The batches are those of a
    new iterator per epoch: the pipeline reshuffles and redraws on every pass.

    The validation dataset is passed as it is: ``fit``'s evaluation makes a new iterator at
    every epoch whatever it is given (Keras 3.15 resets it), and a new one of the plain,
    unaugmented validation pipeline costs about 10 ms; repeated, dropping the old iterator
    stalled for about 9 s in most epochs of a 96-px U-Net on BUSI (measured 2026-11-30:
    20 s epochs against 11 s). A training dataset of unknown length is passed as it is.

    Returns:
        ``{"x", "steps_per_epoch" (when known), "validation_data"}`` for
        ``fit(**fit_datasets(train_ds, val_ds), ...)``.
    """
    batches = int(train_ds.cardinality())
    if batches > 0:
        return {"x": train_ds.repeat(), "steps_per_epoch": batches, "validation_data": val_ds}
    return {"x": train_ds, "validation_data": val_ds}


# --------------------------------------------------------------------------- precision

AUTO_BFLOAT16_MIN_SPEEDUP = 2.0
"""``precision="auto"`` on a CPU picks ``mixed_bfloat16`` when a bfloat16 matmul runs at least
this many times as fast as a float32 one. A model step gains at most about what its matmuls gain (casts,
batch norm and other memory-bound ops do not speed up): on a 2-core AMD EPYC with AVX512_BF16
and no AMX the 2048 x 2048 ratio was 1.7-1.9 and the steps 1.09-1.95x faster
(benchmarks/README.md, mixed precision), so ``auto`` stays on float32 there; an Intel Xeon with AMX measured 2.4-3.2 at
4096 x 4096."""

_MATMUL_SIDE = 2048


def matmul_rates(side: int = _MATMUL_SIDE, rounds: int = 3, repeats: int = 4) -> dict:
    """Best FLOP/s of a ``side`` x ``side`` ``tf.matmul`` on the CPU in float32 and bfloat16.

    The two dtypes alternate, ``rounds`` times ``repeats`` products each, and each keeps its
    best: other load on the machine can only slow a product down, and alternating spreads a
    change of load over both.
    """
    best = {"float32": float("inf"), "bfloat16": float("inf")}
    with tf.device("/CPU:0"):
        operands = {name: tf.cast(tf.random.uniform((side, side)), name) for name in best}
        matmul = tf.function(lambda x: tf.matmul(x, x))
        for operand in operands.values():
            matmul(operand).numpy()  # trace and warm up
        for _ in range(rounds):
            for name, operand in operands.items():
                for _ in range(repeats):
                    start = time.perf_counter()
                    matmul(operand).numpy()
                    best[name] = min(best[name], time.perf_counter() - start)
    return {name: 2.0 * side**3 / seconds for name, seconds in best.items()}


@functools.lru_cache(maxsize=1)
def measure_precision() -> dict:
    """What ``precision="auto"`` chooses on this machine, and why (measured once per process).

    With GPUs: ``mixed_bfloat16`` when every GPU has compute capability 8.0 or more (bfloat16
    tensor cores, no loss scaling), ``mixed_float16`` from 7.0 (float16 tensor cores), else
    ``float32``. Without: ``mixed_bfloat16`` when the CPU's bfloat16 matmul is at least
    ``AUTO_BFLOAT16_MIN_SPEEDUP`` times as fast as its float32 one (AMX, or a wide
    AVX512_BF16 unit), measured on ``2048 x 2048`` matmuls (:func:`matmul_rates`); a CPU without bfloat16
    instructions emulates them, far slower, and stays on ``float32``.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0)
                        for gpu in gpus]
        lowest = min(tuple(capability) for capability in capabilities)
        choice = "mixed_bfloat16" if lowest >= (8, 0) else "mixed_float16" if lowest >= (7, 0) else "float32"
        measured = {"precision": choice, "device": "GPU", "compute_capability": list(lowest)}
        logger.info(f"Precision auto: {choice} ({_describe_measurement(measured)})")
        return measured
    rates = matmul_rates()
    float32, bfloat16 = rates["float32"], rates["bfloat16"]
    ratio = bfloat16 / float32
    measured = {
        "precision": "mixed_bfloat16" if ratio >= AUTO_BFLOAT16_MIN_SPEEDUP else "float32",
        "device": "CPU",
        "matmul_gflops": {"float32": round(float32 / 1e9, 1), "bfloat16": round(bfloat16 / 1e9, 1)},
        "bfloat16_speedup": round(ratio, 2),
        "min_speedup": AUTO_BFLOAT16_MIN_SPEEDUP,
    }
    logger.info(f"Precision auto: {measured['precision']} ({_describe_measurement(measured)})")
    return measured


def resolve_precision(runtime: RuntimeConfig) -> RuntimeConfig:
    """``runtime`` with ``precision="auto"`` replaced by what :func:`measure_precision` chooses.

    Other precisions pass unchanged. With ``strategy="multi_worker"`` the strategy is created
    first (it must precede every other TensorFlow op in the process).
    """
    if runtime.precision != "auto":
        return runtime
    if runtime.strategy == "multi_worker":
        strategy_for(dataclasses.replace(runtime, precision="float32"))
    measured = measure_precision()
    return dataclasses.replace(runtime, precision=measured["precision"])


def resolved_precision(runtime: RuntimeConfig | None) -> str:
    """The precision of a runtime that the entry point has resolved (:func:`resolve_precision`,
    called once by :func:`tf_bimodal.workflow.resolve`); lower layers only read it.

    Raises:
        ValueError: ``precision="auto"``, not resolved yet.
    """
    name = _runtime(runtime).precision
    if name == "auto":
        raise ValueError("runtime.precision is 'auto': resolve it once before training "
                         "(tf_bimodal.workflow.resolve, or tf_bimodal.training.runtime.resolve_precision)")
    return name


def _describe_measurement(measured: dict) -> str:
    if measured["device"] == "GPU":
        return f"GPU compute capability {'.'.join(map(str, measured['compute_capability']))}"
    rates = measured["matmul_gflops"]
    return (f"CPU matmul {rates['bfloat16']:.0f} GFLOP/s in bfloat16 against {rates['float32']:.0f} in float32, "
            f"{measured['bfloat16_speedup']:.2f}x; mixed bfloat16 from {measured['min_speedup']:.1f}x")



@contextlib.contextmanager
def precision(runtime: RuntimeConfig | None = None):
    """Set the Keras dtype policy ``runtime.precision`` inside the block, restore it after.

    Layers built inside compute in the policy's dtype (float16 or bfloat16 for the ``mixed_``
    policies) and keep float32 variables; the models' output heads are float32 layers, so
    losses and metrics see float32 probabilities.

    ``mixed_float16`` gets dynamic loss scaling from Keras itself: ``Model.compile`` (whose
    ``auto_scale_loss`` defaults to True, ``keras/src/trainers/trainer.py`` in Keras 3.15)
    wraps the optimizer in ``keras.optimizers.LossScaleOptimizer`` when the *model's* dtype
    policy is ``mixed_float16``, i.e. when the model was built inside this block. That
    optimizer scales the loss (initially by 2**15), skips a step and halves the scale on
    non-finite gradients, and doubles it after 2000 finite steps. ``mixed_bfloat16`` needs
    no scaling (bfloat16 has float32's exponent range).

    The policy is Keras global state, kept per thread, and ``keras.backend.clear_session()``
    resets it to float32: clear the session inside the block with :func:`clear_session`.

    On a machine without a GPU, ``mixed_float16`` warns: TensorFlow's float16 CPU kernels
    are slow (the ``cpu`` presets' W-MM-U-Net and MFF training steps took 50 and 85 times as
    long as in float32 on a 2-core AVX-512 machine), while ``mixed_bfloat16`` took 0.95 and
    0.75 of float32's time there (``benchmarks/bench_precision.py``).
    """
    name = resolved_precision(runtime)
    if name == "mixed_float16" and not tf.config.list_physical_devices("GPU"):
        warnings.warn(
            "precision 'mixed_float16' without a GPU: TensorFlow's float16 CPU kernels are far "
            "slower than float32; use 'mixed_bfloat16' on a CPU",
            stacklevel=3,
        )
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def clear_session(runtime: RuntimeConfig | None = None):
    """``keras.backend.clear_session()`` that keeps the dtype policy of ``runtime.precision``.

    Keras keeps the global dtype policy in the state that ``clear_session`` discards, so a
    model built after a plain ``clear_session`` inside :func:`precision` would be float32.
    """
    keras.backend.clear_session()
    keras.config.set_dtype_policy(resolved_precision(runtime))


# --------------------------------------------------------------------------- record


def _local_devices(strategy) -> list:
    try:
        return [str(device) for device in strategy.extended.worker_devices]
    except RuntimeError:  # the default strategy has none: TensorFlow's placement decides
        return ["default"]


def describe(runtime: RuntimeConfig | None = None) -> dict:
    """What a run records about where it trained (``"runtime"`` of its ``summary.json``).

    ``replicas`` counts all replicas of all workers: each global batch is split over them.
    """
    runtime = _runtime(runtime)
    resolved_precision(runtime)
    strategy = strategy_for(runtime)
    workers = 1
    if runtime.strategy == "multi_worker":
        cluster = tf_config()["cluster"]
        workers = sum(len(cluster.get(job) or []) for job in WORKER_JOBS)
    policy = keras.mixed_precision.DTypePolicy(runtime.precision)
    return {
        "strategy": runtime.strategy,
        "strategy_class": type(strategy).__name__,
        "replicas": int(strategy.num_replicas_in_sync),
        "workers": workers,
        "devices": _local_devices(strategy),
        "precision": runtime.precision,
        "compute_dtype": policy.compute_dtype,
        "variable_dtype": policy.variable_dtype,
        "loss_scaling": (
            "dynamic (keras LossScaleOptimizer from Model.compile(auto_scale_loss=True))"
            if runtime.precision == "mixed_float16" else None
        ),
        "batch_size": "global: each step's batch is split over the replicas",
    }
