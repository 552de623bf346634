"""The ``paper`` preset on one GPU: matmul peaks, training steps, largest batch, one fold, protocol time.

One script, one JSON (``benchmarks/results/gpu.json``, ``--json``), within a hard time budget
(``--budget-s``, default 450 s, so that the whole check fits in 8 minutes on one GPU):

1. **device**: name, memory, driver and compute capability
   (``tf.config.experimental.get_device_details``, ``nvidia-smi`` when present), CUDA / cuDNN
   of the TensorFlow build, TensorFlow, Keras and package versions, the date;
2. **matmul peaks**: chained ``n x n`` products (``bench_classification.matmul_peak``, best of
   several runs) in float32 with TensorFloat-32 as TensorFlow has it (recorded, on by default
   on Ampere and later), float32 with TF32 off, bfloat16 and float16;
3. **training steps** of the paper preset's W-MM-U-Net (336 px, IVD-Net contraction, §3.2) and
   MFF (336-px VGG-16 pair, EmbraceNet, §3.3) in float32, mixed_bfloat16 and mixed_float16,
   each without and with XLA (``jit_compile``), each in a fresh subprocess, built and compiled
   as the runners do (``runtime.precision``, the strategy's scope, ``compile_segmenter`` /
   ``compile_classifier``): images/s, TFLOP/s from the analytic FLOP count
   (``bench_segmentation.analytic_forward_flops``, ``bench_classification.forward_flops``;
   training = 3 x forward), its share of the matmul peak of the same precision, and the peak
   memory of the setting (``get_memory_info(...)["peak"]`` after ``reset_memory_stats``). An
   out-of-memory or XLA failure is recorded as that setting's error and the check goes on;
4. **largest batch** of W-MM-U-Net and of MFF in their fastest measured precision (without
   XLA, which would recompile for every size): doubling from the timing batch until
   out-of-memory, the time left or ``MAX_BATCH_CAP``;
5. **one short fold end to end** on the phantom with the package's own entry points: the
   ``paper`` preset (``resolve_experiment``) cut to a couple of epochs, a two-fold split (the
   exporter needs a finished run, and two folds is the fewest a split has), then
   ``workflow.run`` for the data, for ``mff`` (W-MM-U-Net masks first: train, predict, crop,
   classify) and for the export, and one pair through the exported CAD pipeline;
6. **the paper protocol's time** on this GPU from the measured steps (Table 1, Table 2, the
   grid search of Table S4), with the assumptions written beside it.

Each part gets a share of the budget (``BUDGET_SHARES``); time a part leaves unused goes to the
parts after it. A part, or a training setting, that would not fit in what is left is skipped
and recorded as skipped; every subprocess is killed at its part's deadline. ``--parts`` runs a
subset (e.g. ``--parts end_to_end`` gives the fold the whole budget).

``--tiny`` runs every part at the ``quick`` preset's sizes (32-px images, 2 timed steps,
256 x 256 matmuls, a 32-px fold) on whatever device there is, for tests: the settings of one
model then share a worker, and the workers run side by side (most of a tiny run is
single-threaded tracing and compiling: about 3 CPU-minutes). On a machine without a GPU only
``--tiny`` runs, and records ``"device": "CPU (tiny mode)"``.

Usage::

    python benchmarks/gpu_check.py                                  # on a GPU, ~8 minutes
    python benchmarks/gpu_check.py --parts end_to_end --budget-s 580
    python benchmarks/gpu_check.py --tiny --json /tmp/gpu_tiny.json  # on a CPU, a test run
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BENCHMARKS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCHMARKS_DIR)
for _path in (REPO_ROOT, BENCHMARKS_DIR):
    if _path not in sys.path:
        sys.path.insert(0, _path)

DEFAULT_JSON = os.path.join(BENCHMARKS_DIR, "results", "gpu.json")

PARTS = ("probe", "steps", "max_batch", "end_to_end")
"""The parts that run, in order (the estimate needs no time of its own)."""

BUDGET_SHARES = {"probe": 0.08, "steps": 0.42, "max_batch": 0.12, "end_to_end": 0.38}
"""Each part's share of ``--budget-s``, held back for it while the parts before it run."""

MODELS = ("w_mm_unet", "mff")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
MATMUL_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
"""The matmul peak a training precision is compared with (float32 with TF32 as TensorFlow has it)."""

STEP_ORDER = (
    ("w_mm_unet", "mixed_bfloat16", False), ("mff", "mixed_bfloat16", False),
    ("w_mm_unet", "float32", False), ("mff", "float32", False),
    ("w_mm_unet", "mixed_bfloat16", True), ("mff", "mixed_bfloat16", True),
    ("w_mm_unet", "mixed_float16", False), ("mff", "mixed_float16", False),
    ("w_mm_unet", "float32", True), ("mff", "float32", True),
    ("w_mm_unet", "mixed_float16", True), ("mff", "mixed_float16", True),
)
"""Training settings, most wanted first: when the budget runs short the last ones are skipped."""

SIZES = {
    # preset, timing batch per model, timed steps, matmul side, expected seconds of a setting
    # (without / with XLA, before one has been measured), smallest useful e2e allowance.
    "full": {"preset": "paper", "batch": {"w_mm_unet": 16, "mff": 32}, "steps": 5, "matmul": 8192,
             "setting_seconds": {False: 60.0, True: 120.0}, "min_fold_seconds": 60.0},
    "tiny": {"preset": "quick", "batch": {"w_mm_unet": 2, "mff": 2}, "steps": 2, "matmul": 256,
             "setting_seconds": {False: 5.0, True: 10.0}, "min_fold_seconds": 10.0},
}

MAX_BATCH_CAP = {"full": 1024, "tiny": 8}
"""The doubling search stops here even when memory is left."""

FOLD_PHANTOM = {"num_benign_patients": 3, "num_malignant_patients": 3, "min_pairs_per_patient": 2,
                "max_pairs_per_patient": 2, "seed": 11}
"""The end-to-end fold's phantom: 12 pairs, enough for a two-fold split with a held-out test set."""

FOLD_OVERRIDES = {
    # ImageNet weights would be downloaded (a GPU machine may have no network); the speed is the same.
    "full": ("segmentation.epochs=2", "segmentation.auto_weight_epochs=1", "classification.epochs=2",
             "classification.backbone_weights=none"),
    "tiny": ("segmentation.epochs=1", "classification.epochs=1"),
}

TABLE2_BACKBONE_PASSES = {"mff": 2, "mff_early": 2, "mff_late": 2, "mff_stack": 1, "mff_intermediate": 2,
                          "vgg16_bmode": 1, "vgg16_semode": 1}
"""VGG-16 passes per pair of each Table 2 model (the forward FLOP counts of
``bench_classification.py``: stack-wise integration and the single-modal VGG-16s run one
backbone pass, the others two); a model's step time is taken as MFF's x passes / 2."""

FLOPS_RULE = ("analytic: 2 x multiply-adds of conv / transposed conv / dense layers (elementwise layers left out); "
              "training step = 3 x forward")


# =========================================================================== worker side
# Everything that imports TensorFlow runs in a subprocess (``--worker``): the parent never
# touches the GPU, so each setting starts with the whole memory and a failure stays its own.


def _result(task_id: str, record: dict) -> None:
    print("RESULT " + json.dumps({"id": task_id, "record": record}), flush=True)


def _reset_memory() -> None:
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        tf.config.experimental.reset_memory_stats("GPU:0")


def _peak_memory() -> dict:
    """Peak GPU memory since the last reset; on a CPU the process's peak resident size (the CPU
    allocator's own count misses the oneDNN buffers)."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        try:
            peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
            return {"peak_memory_gib": peak / 2**30, "memory_source": "get_memory_info('GPU:0')['peak']"}
        except (ValueError, RuntimeError):
            pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak_memory_gib": rss / 2**30, "memory_source": "ru_maxrss (the process's peak, not reset)"}


def _is_oom(error: BaseException) -> bool:
    text = f"{type(error).__name__} {error}"
    return any(word in text for word in ("ResourceExhausted", "OOM", "out of memory", "Out of memory"))


def _error_record(error: BaseException) -> dict:
    text = f"{type(error).__name__}: {error}"
    return {"status": "error", "oom": _is_oom(error), "error": text[:1500]}


def _device_record(mode: str) -> dict:
    import keras
    import tensorflow as tf

    import tf_bimodal

    gpus = tf.config.list_physical_devices("GPU")
    record = {
        "gpus": len(gpus),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "tf_bimodal": tf_bimodal.__version__,
                     "python": platform.python_version()},
        "host": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "tensor_float_32_execution": bool(tf.config.experimental.tensor_float_32_execution_enabled()),
    }
    build = dict(tf.sysconfig.get_build_info())
    record["versions"].update({key: build.get(key) for key in ("cuda_version", "cudnn_version")})
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        capability = details.get("compute_capability")
        record["device_details"] = {"name": details.get("device_name"),
                                    "compute_capability": list(capability) if capability else None}
        record["device"] = details.get("device_name") or gpus[0].name
        record["device_details"].update(_nvidia_smi())
    else:
        record["device_details"] = {"name": platform.processor() or platform.machine()}
        record["device"] = "CPU"
    if mode == "tiny":
        record["device"] += " (tiny mode)"
    return record


def _nvidia_smi() -> dict:
    """Memory and driver of GPU 0 from ``nvidia-smi`` (TensorFlow reports neither)."""
    if not shutil.which("nvidia-smi"):
        return {}
    try:
        query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits",
                 "--id=0"]
        out = subprocess.run(query, capture_output=True, text=True, timeout=30, check=True).stdout
        name, memory, driver = (field.strip() for field in out.strip().splitlines()[0].split(","))
        return {"memory_gib": float(memory) / 1024, "driver_version": driver, "nvidia_smi_name": name}
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as error:
        return {"nvidia_smi_error": str(error)[:300]}


def probe_task(spec: dict) -> dict:
    """The device, the versions, the matmul peaks and the FLOPs of the Table 1 U-Nets."""
    import tensorflow as tf
    from bench_classification import matmul_peak
    from bench_segmentation import analytic_forward_flops

    from tf_bimodal.config import EXPERIMENT_PRESETS
    from tf_bimodal.models.segmentation.factory import build_segmenter

    record = _device_record(spec["mode"])
    size, trials = spec["matmul"], spec["trials"]
    peaks = {}
    for dtype in ("float32", "bfloat16", "float16"):
        peaks[dtype] = matmul_peak(dtype, size=size, repeats=8, trials=trials)["wall"] / 1e12
    tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    peaks["float32_no_tf32"] = matmul_peak("float32", size=size, repeats=8, trials=trials)["wall"] / 1e12
    tf.config.experimental.enable_tensor_float_32_execution(tf32)
    record["matmul_peaks"] = {
        "size": size, "chained_products": 8, "trials": trials, "tflops_per_second": peaks,
        "note": "best of the trials; float32 with TensorFloat-32 as TensorFlow has it (tensor_float_32_execution)",
    }
    segmentation = EXPERIMENT_PRESETS[spec["preset"]].segmentation
    record["forward_gflops_per_image"] = {
        name: analytic_forward_flops(build_segmenter(name, segmentation)) / 1e9
        for name in ("unet_bmode", "unet_semode")
    }
    return record


def _build_for_training(model_name: str, preset: str, precision: str, strategy: str, xla: bool):
    """The paper (or tiny) model built, compiled and set to ``xla`` as the runners build it."""
    import dataclasses

    import keras
    from bench_classification import forward_flops
    from bench_segmentation import analytic_forward_flops

    from tf_bimodal.config import EXPERIMENT_PRESETS, RuntimeConfig
    from tf_bimodal.training import runtime as runtime_lib

    experiment = EXPERIMENT_PRESETS[preset]
    runtime = RuntimeConfig(strategy=strategy, precision=precision, tensorboard=False)
    strategy_object = runtime_lib.strategy_for(runtime)
    with runtime_lib.precision(runtime), strategy_object.scope():
        keras.utils.set_random_seed(0)
        if model_name == "mff":
            from tf_bimodal.models.classification.factory import build_classifier
            from tf_bimodal.training.classification import compile_classifier

            config = dataclasses.replace(experiment.classification, backbone_weights="none")
            model = compile_classifier(build_classifier("mff", config, "standardize"), config)
            size = config.input_size
            flops = forward_flops(model)
        else:
            from tf_bimodal.models.segmentation.factory import build_segmenter
            from tf_bimodal.training.segmentation import compile_segmenter

            config = experiment.segmentation
            model = compile_segmenter(build_segmenter(model_name, config), config)
            size = config.image_size
            flops = analytic_forward_flops(model)
        model.jit_compile = xla
    return model, size, flops, type(strategy_object).__name__


def _batch(model_name: str, size: int, batch: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    if model_name == "mff":
        inputs = {"bmode": rng.random((batch, size, size, 1), dtype=np.float32),
                  "semode": rng.random((batch, size, size, 3), dtype=np.float32),
                  "availability": np.ones((batch, 2), np.float32)}
        return inputs, np.arange(batch) % 2
    inputs = {"bmode": rng.random((batch, size, size, 1), dtype=np.float32),
              "semode": rng.random((batch, size, size, 3), dtype=np.float32)}
    return inputs, (rng.random((batch, size, size, 1)) > 0.7).astype(np.float32)


def _loss_value(logs) -> float:
    import numpy as np

    if isinstance(logs, dict):
        logs = logs.get("loss", next(iter(logs.values())))
    return float(np.ravel(logs)[0])


def steps_task(spec: dict) -> dict:
    """Time ``spec["steps"]`` training steps of one model, precision and XLA setting."""
    import numpy as np

    model_name, precision, xla = spec["model"], spec["precision"], spec["xla"]
    if model_name not in MODELS or precision not in PRECISIONS:
        raise ValueError(f"steps: model must be one of {MODELS} and precision one of {PRECISIONS}, "
                         f"got {model_name!r} and {precision!r}")
    batch = spec["batch"]
    _reset_memory()
    started = time.perf_counter()
    model, size, flops, strategy_name = _build_for_training(model_name, spec["preset"], precision, spec["strategy"],
                                                            xla)
    build_seconds = time.perf_counter() - started
    inputs, targets = _batch(model_name, size, batch)
    started = time.perf_counter()
    model.train_on_batch(inputs, targets)  # trace (and XLA-compile)
    first_step_seconds = time.perf_counter() - started
    model.train_on_batch(inputs, targets)
    times = []
    for _ in range(spec["steps"]):
        started = time.perf_counter()
        logs = model.train_on_batch(inputs, targets)  # returns numbers: the step has finished
        times.append(time.perf_counter() - started)
    step = float(np.median(times))
    examples_per_second = batch / step
    images_per_example = 2 if model_name == "mff" else 1
    achieved = examples_per_second * 3 * flops
    record = {
        "status": "ok", "model": model_name, "precision": precision, "xla": xla,
        "jit_compile": bool(model.jit_compile), "strategy": strategy_name, "image_size": size, "batch": batch,
        "steps_timed": len(times), "build_seconds": build_seconds, "first_step_seconds": first_step_seconds,
        "seconds_per_step_median": step, "seconds_per_step_best": float(np.min(times)),
        "examples_per_second": examples_per_second,
        "images_per_second": images_per_example * examples_per_second,
        "example": "B/SE pair" if model_name == "mff" else "B/SE image pair at the segmenter's input",
        "forward_gflops_per_example": flops / 1e9,
        "train_tflops_per_second": achieved / 1e12,
        "params": int(model.count_params()),
        "loss_scale_optimizer": type(model.optimizer).__name__ == "LossScaleOptimizer",
        "final_loss": _loss_value(logs),
    }
    if xla and not model.jit_compile:
        record["note"] = "Keras refused jit_compile for this model (model_supports_jit): measured without XLA"
    record.update(_peak_memory())
    return record


def max_batch_task(spec: dict, deadline: float) -> dict:
    """Double the batch from ``spec["start"]`` until out-of-memory, ``spec["cap"]`` or ``deadline``."""
    model_name = spec["model"]
    model, size, _, _ = _build_for_training(model_name, spec["preset"], spec["precision"], spec["strategy"], False)
    record = {"status": "ok", "model": model_name, "precision": spec["precision"], "xla": False, "tries": [],
              "largest_fitting_batch": None, "stopped_by": None}
    _result(spec["id"], record)
    batch, last_seconds = spec["start"], None
    while True:
        if batch > spec["cap"]:
            record["stopped_by"] = f"cap {spec['cap']}"
            break
        if last_seconds is not None and time.monotonic() + 2.5 * last_seconds > deadline:
            record["stopped_by"] = "time"
            break
        inputs, targets = _batch(model_name, size, batch)
        _reset_memory()
        started = time.perf_counter()
        try:
            model.train_on_batch(inputs, targets)
            model.train_on_batch(inputs, targets)
        except Exception as error:  # out of memory ends the search; anything else is reported
            record["tries"].append({"batch": batch, "fits": False, **_error_record(error)})
            record["stopped_by"] = "out of memory" if _is_oom(error) else "error"
            break
        last_seconds = time.perf_counter() - started
        record["tries"].append({"batch": batch, "fits": True, "seconds_two_steps": last_seconds, **_peak_memory()})
        record["largest_fitting_batch"] = batch
        _result(spec["id"], record)  # what is known so far, in case the process is killed
        del inputs, targets
        batch *= 2
    return record


def _tree_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(folder, name)) for folder, _, names in os.walk(path) for name in names)


def end_to_end_task(spec: dict) -> dict:
    """Data, training and prediction of ``mff`` (W-MM-U-Net masks first), export, one served pair."""
    import numpy as np
    import tensorflow as tf

    from tf_bimodal import layout, workflow
    from tf_bimodal.config import DataConfig, PhantomConfig, RuntimeConfig, SplitConfig, resolve_experiment
    from tf_bimodal.experiments.protocol import experiment_dir

    workdir = spec["workdir"]
    experiment = resolve_experiment(spec["preset"], overrides=list(spec["overrides"]),
                                    runtime=RuntimeConfig(precision=spec["precision"], tensorboard=False))
    data = DataConfig(source="phantom", image_size=spec["image_size"], data_dir=os.path.join(workdir, "tfds"),
                      phantom=PhantomConfig(image_size=spec["image_size"], **FOLD_PHANTOM))
    split = SplitConfig(num_folds=2)
    output, export_dir = os.path.join(workdir, "runs"), os.path.join(workdir, "export")
    record = {"status": "running", "preset": spec["preset"], "overrides": list(experiment.overrides),
              "precision": spec["precision"], "image_size": spec["image_size"], "phantom": FOLD_PHANTOM,
              "folds": split.num_folds, "request": "mff (crop predicted: W-MM-U-Net first)", "stages": {}}

    def stage(name, function):
        started = time.perf_counter()
        value = function()
        record["stages"][name] = {"seconds": time.perf_counter() - started}
        _result(spec["id"], record)
        return value

    summary = stage("data", lambda: workflow.run(data=data, split=split, output=output))
    record["pairs"] = summary["num_images"]
    result = stage("train_predict", lambda: workflow.run(model="mff", data=data, split=split, preset=experiment,
                                                         output=output))
    record["steps"] = [{key: step.get(key) for key in ("name", "status", "seconds")} for step in result["steps"]]
    root = experiment_dir(output, data, experiment.name)
    record["predictions"] = {
        "w_mm_unet_masks": os.path.isfile(layout.predicted_masks_path(root)),
        "mff_fold_predictions": all(
            os.path.isfile(os.path.join(layout.fold_dir(layout.run_dir(root, "mff"), k), layout.FOLD_PREDICTIONS_FILE))
            for k in range(split.num_folds)),
    }
    exported = stage("export", lambda: workflow.run(data=data, split=split, preset=experiment, output=output,
                                                    export=export_dir))
    record["export"] = {
        "parts": sorted(part for part in exported.get("parts", [])),
        "saved_models": {name: _tree_bytes(os.path.join(export_dir, name)) / 2**20
                         for name in sorted(os.listdir(export_dir)) if os.path.isdir(os.path.join(export_dir, name))},
        "export_json": os.path.isfile(os.path.join(export_dir, "export.json")),
        "unit": "MiB",
    }

    def serve():
        pipeline = tf.saved_model.load(os.path.join(export_dir, "cad_pipeline"))
        rng = np.random.default_rng(0)
        side = spec["image_size"]
        out = pipeline.signatures["serving_default"](
            bmode=tf.constant(rng.integers(0, 256, (side, side), dtype=np.uint8)),
            semode=tf.constant(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)))
        return {"p_malignant": float(np.ravel(out["p_malignant"].numpy())[0]),
                "mask_shape": list(out["mask"].shape)}

    record["served_pair"] = stage("serve", serve)
    record["status"] = "ok"
    record["seconds"] = sum(item["seconds"] for item in record["stages"].values())
    return record


def _fastest(settings, model: str):
    """The measured training setting of ``model`` with the most examples per second (or None)."""
    ok = [s for s in settings if s.get("model") == model and s.get("status") == "ok"]
    return max(ok, key=lambda s: s["examples_per_second"]) if ok else None


def run_worker(tasks: list) -> int:
    """Run ``tasks`` in this process, one ``RESULT`` line each; a failing task does not stop the others.

    A ``max_batch`` task whose precision is ``"fastest"`` takes the fastest setting among the
    ``steps`` tasks this process has run before it.
    """
    started = time.monotonic()
    finished = []
    for task in tasks:
        task_started = time.monotonic()
        try:
            if task["kind"] == "probe":
                record = probe_task(task)
            elif task["kind"] == "steps":
                record = steps_task(task)
            elif task["kind"] == "max_batch":
                if task["precision"] == "fastest":
                    best = _fastest(finished, task["model"])
                    task = {**task, "precision": best["precision"] if best else "float32"}
                record = max_batch_task(task, started + task["deadline_s"])
            elif task["kind"] == "end_to_end":
                record = end_to_end_task(task)
            else:
                raise ValueError(f"worker: unknown task kind {task['kind']!r}")
        except Exception as error:
            record = {**_known(task), **_error_record(error)}
        record["task_seconds"] = time.monotonic() - task_started
        finished.append(record)
        _result(task["id"], record)
        if task["kind"] in ("steps", "max_batch") and "keras" in sys.modules:
            sys.modules["keras"].backend.clear_session()
    return 0


# =========================================================================== parent side


def _known(task: dict) -> dict:
    return {key: task[key] for key in ("model", "precision", "xla") if key in task}


def _skipped(reason: str, **known) -> dict:
    return {**known, "status": "skipped", "reason": reason}


def _print(text: str) -> None:
    print(text, flush=True)


class Budget:
    """The overall deadline, with each later part's share held back (``BUDGET_SHARES``)."""

    def __init__(self, seconds: float, parts):
        self.seconds = seconds
        self.started = time.monotonic()
        shares = sum(BUDGET_SHARES[part] for part in parts)
        self.reserve = {part: seconds * BUDGET_SHARES[part] / shares for part in parts}
        self.parts = list(parts)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def allowance(self, part: str | None = None) -> float:
        """Seconds ``part`` may use now: what is left less the shares of the parts after it
        (``None``: all that is left)."""
        later = self.parts[self.parts.index(part) + 1:] if part else []
        return self.seconds - self.elapsed() - sum(self.reserve[p] for p in later) - 3.0


class Job:
    """``tasks`` running in one fresh worker process (``--worker``), its output in files."""

    def __init__(self, tasks: list):
        self.tasks = tasks
        self.stdout = tempfile.TemporaryFile(mode="w+")
        self.stderr = tempfile.TemporaryFile(mode="w+")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")]))
        self.started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(tasks)],
                                        stdout=self.stdout, stderr=self.stderr, text=True, env=env)

    def records(self, timeout: float) -> dict:
        """Wait at most ``timeout`` seconds (then kill it); ``{task id: record}`` for every task.

        A task the worker did not finish (it crashed, or was killed) is an error record holding
        what it had reported so far (the largest batch that fitted, the fold's finished stages)
        and the end of the worker's standard error.
        """
        problem = None
        try:
            if self.process.wait(timeout=max(1.0, timeout)):
                problem = f"worker exited with status {self.process.returncode}"
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            problem = f"killed at the budget's deadline after {time.monotonic() - self.started:.0f} s"
        self.stdout.seek(0)
        self.stderr.seek(0)
        stdout, stderr = self.stdout.read(), _without_noise(self.stderr.read())
        self.stdout.close()
        self.stderr.close()
        records = {}
        for line in stdout.splitlines():
            if line.startswith("RESULT "):
                item = json.loads(line[len("RESULT "):])
                records[item["id"]] = item["record"]
        for task in self.tasks:
            record = records.get(task["id"])
            if record is not None and "task_seconds" in record:
                continue  # finished, well or with its own error
            record = {**(record or {}), **_known(task)}
            if task["kind"] == "max_batch" and record.get("largest_fitting_batch"):
                record["stopped_by"] = problem or "no result"
            else:
                record.update(status="error", oom=False)
            record["error"] = f"{problem or 'no result'}; the worker's stderr ends: {stderr[-1200:]}"
            records[task["id"]] = record
        return records


NOISE = ("I0000 ", "W0000 ", "WARNING: All log messages", "To enable the following", "oneDNN custom operations")
"""Starts of TensorFlow's start-up lines, left out of the stderr quoted in error records."""


def _without_noise(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if line.strip() and not line.lstrip().startswith(NOISE)
                     and not any(word in line for word in ("oneDNN custom operations", "cuda drivers", "cuInit")))


def run_job(tasks: list, timeout: float) -> dict:
    """Run ``tasks`` in one fresh worker process, at most ``timeout`` seconds (:class:`Job`)."""
    return Job(tasks).records(timeout)


def probe_spec(sizes: dict, mode: str) -> dict:
    return {"id": "probe", "kind": "probe", "mode": mode, "preset": sizes["preset"], "matmul": sizes["matmul"],
            "trials": 3 if mode == "tiny" else 5}


def step_specs(sizes: dict, strategy: str) -> list:
    """One task per training setting, in ``STEP_ORDER``."""
    return [{"id": f"steps/{model}/{precision}/{'xla' if xla else 'no_xla'}", "kind": "steps", "model": model,
             "precision": precision, "xla": xla, "batch": sizes["batch"][model], "steps": sizes["steps"],
             "preset": sizes["preset"], "strategy": strategy} for model, precision, xla in STEP_ORDER]


def max_batch_specs(sizes: dict, mode: str, strategy: str, settings) -> list:
    """One doubling search per model, in its fastest measured precision (``"fastest"``: the
    worker picks it from the settings it measured itself)."""
    specs = []
    for model in MODELS:
        best = _fastest(settings, model) if settings is not None else None
        precision = "fastest" if settings is None else (best["precision"] if best else "float32")
        specs.append({"id": f"max_batch/{model}", "kind": "max_batch", "model": model, "preset": sizes["preset"],
                      "precision": precision, "strategy": strategy, "start": sizes["batch"][model],
                      "cap": MAX_BATCH_CAP[mode]})
    return specs


def fold_spec(sizes: dict, mode: str, precision: str, workdir: str, image_size: int) -> dict:
    return {"id": "end_to_end", "kind": "end_to_end", "preset": sizes["preset"], "overrides": FOLD_OVERRIDES[mode],
            "precision": precision, "image_size": image_size, "workdir": workdir}


def run_steps(tasks: list, sizes: dict, budget: Budget) -> dict:
    """Each setting in its own worker, most wanted first; one that would not fit in the steps'
    allowance is skipped. The expected time of a setting is the last one measured for its
    model and XLA flag (before that, ``sizes["setting_seconds"]``)."""
    expected = {(model, xla): sizes["setting_seconds"][xla] for model in MODELS for xla in (False, True)}
    records = {}
    for task in tasks:
        allowance = budget.allowance("steps")
        need = expected[(task["model"], task["xla"])]
        if allowance < need:
            records[task["id"]] = _skipped(f"budget: about {need:.0f} s needed, {max(allowance, 0):.0f} s left",
                                           **_known(task))
            continue
        records[task["id"]] = run_job([task], allowance)[task["id"]]
        if records[task["id"]].get("task_seconds"):
            expected[(task["model"], task["xla"])] = records[task["id"]]["task_seconds"] + 8.0  # + the start
    return records


def run_max_batch(tasks: list, sizes: dict, budget: Budget) -> dict:
    """The searches one after the other, each with an equal part of the allowance."""
    records = {}
    for index, task in enumerate(tasks):
        share = budget.allowance("max_batch") / (len(tasks) - index)
        if share < 2 * sizes["setting_seconds"][False]:
            records[task["id"]] = _skipped(f"budget: {max(share, 0):.0f} s left", **_known(task))
            continue
        records.update(run_job([{**task, "deadline_s": share - 5.0}], share))
    return records


def ordered_settings(records: dict, peaks: dict) -> list:
    """Every training setting's record (model, precision, without then with XLA), with its share of the peak."""
    settings = []
    for model in MODELS:
        for precision in PRECISIONS:
            for xla in (False, True):
                record = records[f"steps/{model}/{precision}/{'xla' if xla else 'no_xla'}"]
                if record.get("status") == "ok":
                    key = MATMUL_DTYPE[precision]
                    peak = peaks.get(key)
                    record["matmul_peak_key"] = key
                    record["share_of_matmul_peak"] = record["train_tflops_per_second"] / peak if peak else None
                settings.append(record)
    return settings


def _describe_setting(record: dict) -> str:
    name = f"{record.get('model')} {record.get('precision')}{' XLA' if record.get('xla') else ''}"
    if record.get("status") != "ok":
        return f"{name}: {record.get('status')} ({(record.get('reason') or record.get('error') or '')[:160]})"
    share = record.get("share_of_matmul_peak")
    return (f"{name}: {record['images_per_second']:.1f} images/s, {record['train_tflops_per_second']:.3g} TFLOP/s"
            + (f" ({100 * share:.1f} % of the matmul peak)" if share is not None else "")
            + f", {record['peak_memory_gib']:.2f} GiB, first step {record['first_step_seconds']:.1f} s")


def estimate_protocol(settings: list, probe: dict, fold: dict | None, preset: str, tiny: bool) -> dict:
    """Hours of Table 1, Table 2 and the grid search (Table S4) from the measured steps."""
    from tf_bimodal.config import EXPERIMENT_PRESETS, SEGMENTATION_MODELS, TABLE2_ROWS, SplitConfig

    experiment = EXPERIMENT_PRESETS[preset]
    folds = SplitConfig().num_folds
    train, val, test = SplitConfig().paper_sizes  # pairs per fold of the paper's protocol (§3.1, §3.4)
    wmm_flops = next((s["forward_gflops_per_example"] for s in settings
                      if s["model"] == "w_mm_unet" and s.get("status") == "ok"), None)
    unet_flops = (probe or {}).get("forward_gflops_per_image") or {}
    overhead_seg = overhead_cls = 0.0
    overhead_note = "no end-to-end fold measured: per-fold overhead (build, tracing, prediction, saving) taken as 0"
    if fold and fold.get("status") == "ok":
        steps = {step["name"]: step["seconds"] for step in fold.get("steps", [])}
        overhead_seg = steps.get("w_mm_unet", 0.0) / fold["folds"]
        overhead_cls = steps.get("mff", 0.0) / fold["folds"]
        overhead_note = (f"per-fold overhead from the end-to-end fold (its few epochs on {fold.get('pairs')} pairs "
                         f"included): segmenter {overhead_seg:.0f} s, classifier {overhead_cls:.0f} s")
    choices = {"package default (float32, no XLA)": lambda model: next(
        (s for s in settings if s["model"] == model and s["precision"] == "float32" and not s["xla"]
         and s.get("status") == "ok"), None),
        "fastest measured setting": lambda model: _fastest(settings, model)}
    estimates = {}
    for label, choose in choices.items():
        seg, cls = choose("w_mm_unet"), choose("mff")
        if seg is None or cls is None:
            estimates[label] = {"status": "not measured"}
            continue
        seg_rate = seg["examples_per_second"]

        def rate(model, seg_rate=seg_rate):
            """Training images/s of a Table 1 model: W-MM-U-Net's, scaled by the FLOPs."""
            if model in unet_flops and wmm_flops:
                return seg_rate * wmm_flops / unet_flops[model]
            return seg_rate  # MM-U-Net and W-MM-U-Net (manual) have W-MM-U-Net's graph

        def fold_seconds(images_per_second, epochs, overhead):
            # An epoch trains on the training pairs and validates (a forward pass, a third of a
            # training step) on the validation pairs; the test pairs are predicted once.
            return epochs * (train + val / 3) / images_per_second + test / 3 / images_per_second + overhead

        seg_epochs, cls_epochs = experiment.segmentation.epochs, experiment.classification.epochs
        table1 = {model: folds * fold_seconds(rate(model), seg_epochs, overhead_seg) for model in SEGMENTATION_MODELS}
        pair_rate = cls["examples_per_second"]
        table2 = {row.name: folds * fold_seconds(pair_rate * 2 / TABLE2_BACKBONE_PASSES[row.model], cls_epochs,
                                                 overhead_cls) for row in TABLE2_ROWS}
        grid = experiment.grid_search
        grid_epochs = grid.epochs or seg_epochs
        grid_seconds = {model: grid.num_settings * fold_seconds(rate(model), grid_epochs, overhead_seg)
                        for model in grid.models}
        hours = {"table1": sum(table1.values()) / 3600, "table2": sum(table2.values()) / 3600,
                 "grid_search": sum(grid_seconds.values()) / 3600}
        hours["total"] = sum(hours.values())
        estimates[label] = {
            "status": "ok", "hours": hours,
            "segmenter_setting": {k: seg[k] for k in ("precision", "xla", "batch", "examples_per_second")},
            "classifier_setting": {k: cls[k] for k in ("precision", "xla", "batch", "examples_per_second")},
            "table1_hours_by_model": {k: v / 3600 for k, v in table1.items()},
            "table2_hours_by_run": {k: v / 3600 for k, v in table2.items()},
            "grid_search_hours_by_model": {k: v / 3600 for k, v in grid_seconds.items()},
        }
    return {
        "preset": preset,
        "estimates": estimates,
        "assumptions": [
            f"pairs per fold as the paper (§3.1, §3.4): {train} train, {val} validation, {test} test; {folds} folds",
            f"every run trains its full epochs (segmenters {experiment.segmentation.epochs}, classifiers "
            f"{experiment.classification.epochs}, grid settings {experiment.grid_search.epochs or 'the preset'}'s): "
            "early stopping can only shorten it, so this is an upper bound",
            "an epoch = training pairs at the measured training rate + validation pairs at 3x that rate (a forward "
            "pass is a third of a training step); the test pairs are predicted once per fold",
            "U-Nets (Table 1 rows 1-2) run at W-MM-U-Net's measured rate scaled by the analytic FLOPs; MM-U-Net and "
            "W-MM-U-Net (manual) have W-MM-U-Net's graph; the auto-weight pre-stage ResNet is left out (its FLOPs are "
            "under 0.1 % of W-MM-U-Net's)",
            "Table 2: the nine runs of TABLE2_ROWS; each model's step time is MFF's x its VGG-16 passes per pair / 2 "
            f"({TABLE2_BACKBONE_PASSES}); the W-MM-U-Net masks come from Table 1's run",
            f"grid search (Table S4): {experiment.grid_search.num_settings} settings x "
            f"{len(experiment.grid_search.models)} models on one fold, each at the timing batch's rate (small "
            "batches are slower, so the grid is underestimated)",
            "the timing batches (W-MM-U-Net and MFF, see training_steps) stand for the paper's batch of 32",
            overhead_note,
            "one GPU, no data-pipeline stalls (benchmarks/bench_pipeline.py: the pipeline outruns the step)",
        ] + (["tiny mode: quick-preset models on the machine at hand; the numbers are no estimate of the paper's run"]
             if tiny else []),
    }


def _run_tiny(args, sizes, budget: Budget, workdir: str) -> tuple:
    """Tiny mode: three workers side by side (on a small CPU most of the time is single-threaded
    tracing): the fold; W-MM-U-Net's settings and search; the probe and MFF's settings and search.
    Each search takes the fastest precision its worker measured."""
    jobs = [Job([fold_spec(sizes, "tiny", args.fold_precision, workdir, 32)])] if "end_to_end" in args.parts else []
    steps = step_specs(sizes, args.strategy) if "steps" in args.parts else []
    searches = max_batch_specs(sizes, "tiny", args.strategy, None if steps else []) \
        if "max_batch" in args.parts else []
    for model in MODELS:
        tasks = [probe_spec(sizes, "tiny")] if model == "mff" else []
        tasks += [task for task in steps if task["model"] == model]
        tasks += [{**task, "deadline_s": budget.allowance() - 5.0} for task in searches if task["model"] == model]
        if tasks:
            jobs.append(Job(tasks))
    records = {}
    for job in jobs:
        records.update(job.records(budget.allowance()))
    return records, records.get("end_to_end")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=DEFAULT_JSON, help="where to write the results (default %(default)s)")
    parser.add_argument("--budget-s", type=float, default=450.0, help="hard limit for the whole check, seconds")
    parser.add_argument("--tiny", action="store_true", help="quick-preset sizes, for a test run on a CPU")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="parts to run (the probe always runs; the estimate uses what ran)")
    parser.add_argument("--strategy", default="auto", help="RuntimeConfig.strategy of the timed steps (as the runners)")
    parser.add_argument("--fold-precision", default="float32", choices=PRECISIONS,
                        help="precision of the end-to-end fold (default: the package's)")
    parser.add_argument("--workdir", default=None, help="folder for the fold's data, runs and export (default: temp)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        return run_worker(json.loads(args.worker))
    if args.budget_s <= 0:
        parser.error(f"--budget-s must be > 0, got {args.budget_s}")
    from tf_bimodal.schema import DEFAULT_IMAGE_SIZE

    mode = "tiny" if args.tiny else "full"
    sizes = SIZES[mode]
    parts = [part for part in PARTS if part == "probe" or part in args.parts]
    budget = Budget(args.budget_s, parts)
    command = " ".join(["python benchmarks/gpu_check.py", *(sys.argv[1:] if argv is None else argv)])
    report = {"script": "benchmarks/gpu_check.py", "command": command, "mode": mode,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "preset": sizes["preset"], "flops_rule": FLOPS_RULE}
    workdir = args.workdir or tempfile.mkdtemp(prefix="gpu_check_fold_")
    os.makedirs(workdir, exist_ok=True)
    _print(f"gpu_check ({mode}): budget {args.budget_s:.0f} s, parts {', '.join(parts)}")

    fold, max_batch, records = None, {}, {}
    if args.tiny:
        records, fold = _run_tiny(args, sizes, budget, workdir)
        probe = records["probe"]
    else:
        # Without the probe nothing else runs: it may take more than its share (the later parts get less).
        probe = run_job([probe_spec(sizes, mode)], max(budget.allowance("probe"), min(120.0, budget.allowance())))[
            "probe"]
    if probe.get("status") == "error":
        print(f"gpu_check: the probe failed: {probe.get('error')}", file=sys.stderr)
        return 1
    if not probe["gpus"] and not args.tiny:
        print("gpu_check: TensorFlow sees no GPU; this check is for a GPU (use --tiny to test it on a CPU)",
              file=sys.stderr)
        return 2
    for key in ("device", "device_details", "versions", "host", "tensor_float_32_execution", "matmul_peaks"):
        report[key] = probe[key]
    peaks = probe["matmul_peaks"]["tflops_per_second"]
    _print(f"device {probe['device']}; matmul peaks (TFLOP/s): "
           + ", ".join(f"{key} {value:.3g}" for key, value in peaks.items())
           + f"; TF32 {'on' if probe['tensor_float_32_execution'] else 'off'}")

    tasks = step_specs(sizes, args.strategy)
    if "steps" not in parts:
        records.update({task["id"]: _skipped("not requested (--parts)", **_known(task)) for task in tasks})
    elif not args.tiny:
        records = run_steps(tasks, sizes, budget)
    settings = ordered_settings(records, peaks)
    for record in settings:
        _print("  " + _describe_setting(record))
    report["training_steps"] = {
        "preset": sizes["preset"], "strategy": args.strategy, "timing_batch": sizes["batch"],
        "note": "median of the timed steps after a tracing step and a warm-up step, random inputs; share = "
                "training TFLOP/s / the matmul peak of the same precision (float32: TF32 as recorded)",
        "settings": settings,
    }

    if "max_batch" in parts:
        if args.tiny:
            max_batch = {task["model"]: records[task["id"]] for task in max_batch_specs(sizes, mode, args.strategy, [])}
        else:
            searched = run_max_batch(max_batch_specs(sizes, mode, args.strategy, settings), sizes, budget)
            max_batch = {record_id.split("/", 1)[1]: record for record_id, record in searched.items()}
        for model, record in max_batch.items():
            _print(f"  largest batch of {model} in {record.get('precision')}: {record.get('largest_fitting_batch')} "
                   f"(stopped by {record.get('stopped_by') or record.get('reason') or record.get('error', '')[:200]})")
    report["max_batch"] = {"start": sizes["batch"], "cap": MAX_BATCH_CAP[mode], "xla": False, "models": max_batch}

    if "end_to_end" in parts and not args.tiny:
        allowance = budget.allowance("end_to_end")
        if allowance < sizes["min_fold_seconds"]:
            fold = _skipped(f"budget: {max(allowance, 0):.0f} s left")
        else:
            fold = run_job([fold_spec(sizes, mode, args.fold_precision, workdir, DEFAULT_IMAGE_SIZE)],
                           allowance)["end_to_end"]
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    report["end_to_end_fold"] = fold or _skipped("not requested (--parts)")
    if fold is not None:
        stages = ", ".join(f"{name} {stage['seconds']:.0f} s" for name, stage in fold.get("stages", {}).items())
        _print(f"  end-to-end fold: {fold.get('status')}" + (f" (stages: {stages})" if stages else "")
               + ("" if fold.get("status") == "ok" else f": {(fold.get('reason') or fold.get('error', ''))[:300]}"))

    report["protocol_estimate"] = estimate_protocol(settings, probe, fold, sizes["preset"], args.tiny)
    for label, estimate in report["protocol_estimate"]["estimates"].items():
        if estimate.get("status") == "ok":
            hours = estimate["hours"]
            _print(f"  protocol, {label}: Table 1 {hours['table1']:.1f} h, Table 2 {hours['table2']:.1f} h, "
                   f"grid search {hours['grid_search']:.1f} h, total {hours['total']:.1f} h")
    report["budget"] = {"budget_s": args.budget_s, "elapsed_s": budget.elapsed(), "parts": parts,
                        "shares": {part: BUDGET_SHARES[part] for part in parts}}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as handle:
        json.dump(_finite(report), handle, indent=2, allow_nan=False)
    _print(f"Wrote {args.json} ({budget.elapsed():.0f} s)")
    return 0


def _finite(value):
    """``value`` with every NaN or infinity replaced by None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
