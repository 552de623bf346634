"""The ``paper`` preset on one GPU: matmul peaks, planned training steps, one fold, protocol time.

One script, one JSON (``benchmarks/results/gpu.json``, ``--json``), within a hard time budget
(``--budget-s``, default 450 s, so that the whole check fits in 8 minutes on one GPU):

1. **device**: name, memory, driver and compute capability
   (``tf.config.experimental.get_device_details``, ``nvidia-smi`` when present), CUDA / cuDNN
   of the TensorFlow build, TensorFlow, Keras and package versions, the date;
2. **matmul peaks**: chained ``n x n`` products (``bench_classification.matmul_peak``, best of
   several runs) in float32 with TensorFloat-32 as TensorFlow has it (recorded, on by default
   on Ampere and later), float32 with TF32 off, bfloat16 and float16;
3. **training steps at the plan** of every distinct architecture of Tables 1 and 2
   (``STEP_MODELS``, most wanted first: W-MM-U-Net and MFF, then the other segmenters, then the
   other classifiers; W-MM-U-Net with manual weights has MM-U-Net's graph and the SE-mode
   VGG-16 the B-mode one's), in float32 and mixed_bfloat16 without XLA (``--precisions``
   adds mixed_float16, ``--xla`` the same settings with ``jit_compile`` after them). Each
   model is built, planned and compiled as the runners do it: ``runtime.precision``, the
   strategy's scope, ``tf_bimodal.training.memory.training_plan`` on the device at hand (the
   micro-batch the memory rule fits, and the accumulation steps that reach the paper's batch
   of 32, §3.4), then ``compile_segmenter`` / ``compile_classifier`` with those steps. After
   one untimed optimizer step (tracing), whole optimizer steps of 32 images, each made of
   ``accumulation_steps`` micro-batches, are timed. Recorded per setting: the micro-batch and
   accumulation steps, the plan's estimated peak memory beside the measured one
   (``get_memory_info("GPU:0")["peak"]`` after ``reset_memory_stats``; on a CPU the process's
   peak resident size), seconds per optimizer step, examples/s and images/s, and TFLOP/s from
   the analytic FLOP count (``bench_segmentation.analytic_forward_flops``,
   ``bench_classification.forward_flops``; training = 3 x forward) with its share of the
   matmul peak of the same precision measured in the same run. The settings run one after
   the other in a worker process; an out-of-memory error (or a plan that does not fit) is
   that setting's error record and the next setting goes on; a worker that dies is replaced
   by a fresh one for the settings after the one it died in. There is no search for the
   largest batch: the micro-batch is the memory rule's, and its estimate stands beside the
   measured peak, which checks the rule;
4. **one short fold end to end** on the phantom with the package's own entry points: the
   ``paper`` preset (``resolve_experiment``) cut to a couple of epochs, a two-fold split (the
   exporter needs a finished run, and two folds is the fewest a split has), then
   ``workflow.run`` for the data, for ``mff`` (W-MM-U-Net masks first: train, predict, crop,
   classify; each at the micro-batch the runners plan, recorded from the folds' metrics) and
   for the export, and one pair through the exported CAD pipeline;
5. **the paper protocol's time** on this GPU (Table 1, Table 2, the grid search of Table S4)
   from the measured optimizer-step times and their plans, with the assumptions written
   beside it.

The classifiers' VGG-16s start from random weights (``backbone_weights="none"``,
``require_backbone_weights=False``): a GPU machine may have no network to fetch the ImageNet
weights, and the check measures speed and memory, which the weights' values do not change.

Each part gets a share of the budget (``BUDGET_SHARES``); time a part leaves unused goes to the
parts after it. A part, or a training setting, that would not fit in what is left is skipped
and recorded as skipped (the settings' order decides which go first); every subprocess is
killed at its part's deadline. ``--parts`` runs a subset (e.g. ``--parts end_to_end`` gives
the fold the whole budget), ``--models`` some of the architectures.

``--tiny`` runs every part at the ``quick`` preset's sizes (32-px images, a batch of 4 in
micro-batches of 2, 2 timed optimizer steps, 256 x 256 matmuls, a 32-px fold) on whatever
device there is, for tests: the settings then share two workers, which run side by side with
the fold's. On a machine without a GPU only ``--tiny`` runs, and records
``"device": "CPU (tiny mode)"``.

Usage::

    python benchmarks/gpu_check.py                                  # on a GPU, ~8 minutes
    python benchmarks/gpu_check.py --parts end_to_end --budget-s 580
    python benchmarks/gpu_check.py --parts steps --models w_mm_unet mff --precisions float32 mixed_bfloat16 \\
        mixed_float16 --xla
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

PARTS = ("probe", "steps", "end_to_end")
"""The parts that run, in order (the estimate needs no time of its own)."""

BUDGET_SHARES = {"probe": 0.08, "steps": 0.54, "end_to_end": 0.38}
"""Each part's share of ``--budget-s``, held back for it while the parts before it run."""

SEGMENTERS = ("w_mm_unet", "mm_unet", "unet_bmode", "unet_semode")
STEP_MODELS = ("w_mm_unet", "mff", "mm_unet", "unet_bmode", "unet_semode",
               "mff_intermediate", "mff_early", "mff_late", "mff_stack", "vgg16_bmode")
"""The distinct architectures of Tables 1 and 2, most wanted first (the segmenters, five folds
of 100 epochs each, dominate the protocol's time)."""

FIRST_MODELS = ("w_mm_unet", "mff")
"""Models whose every setting comes before any other model's (``step_order``)."""

STAND_INS = {"w_mm_unet_manual": "mm_unet", "vgg16_semode": "vgg16_bmode"}
"""Protocol models timed by a model of the same graph (the SE-mode VGG-16's first
convolution reads three channels instead of one)."""

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
DEFAULT_PRECISIONS = ("float32", "mixed_bfloat16")
MATMUL_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
"""The matmul peak a training precision is compared with (float32 with TF32 as TensorFlow has it)."""

SIZES = {
    # preset, batch of an optimizer step (None: the preset's, §3.4: 32), micro-batch (None: the
    # memory rule's), timed optimizer steps, matmul side, expected seconds of a setting per model
    # family (before one has been measured), smallest useful e2e allowance.
    "full": {"preset": "paper", "batch": None, "micro_batch": None, "steps": 3, "matmul": 8192,
             "setting_seconds": {"segmenter": 40.0, "classifier": 20.0}, "min_fold_seconds": 60.0},
    "tiny": {"preset": "quick", "batch": 4, "micro_batch": 2, "steps": 2, "matmul": 256,
             "setting_seconds": {"segmenter": 5.0, "classifier": 5.0}, "min_fold_seconds": 10.0},
}

XLA_FACTOR = 2.0
"""Expected time of a setting with XLA over one without, before one has been measured."""

WORKER_START_SECONDS = 8.0
"""A worker's start (Python, TensorFlow, the device) before its first setting."""

FOLD_PHANTOM = {"num_benign_patients": 3, "num_malignant_patients": 3, "min_pairs_per_patient": 2,
                "max_pairs_per_patient": 2, "seed": 11}
"""The end-to-end fold's phantom: 12 pairs, enough for a two-fold split with a held-out test set."""

FOLD_OVERRIDES = {
    # ImageNet weights would be downloaded (a GPU machine may have no network); the speed is the same.
    "full": ("segmentation.epochs=2", "segmentation.auto_weight_epochs=1", "classification.epochs=2",
             "classification.backbone_weights=none", "classification.require_backbone_weights=false"),
    "tiny": ("segmentation.epochs=1", "classification.epochs=1"),
}

TABLE2_BACKBONE_PASSES = {"mff": 2, "mff_early": 2, "mff_late": 2, "mff_stack": 1, "mff_intermediate": 2,
                          "vgg16_bmode": 1, "vgg16_semode": 1}
"""VGG-16 passes per pair of each Table 2 model (the forward FLOP counts of
``bench_classification.py``: stack-wise integration and the single-modal VGG-16s run one
backbone pass, the others two); a model not measured is taken at MFF's step time x passes / 2."""

VALIDATION_COST = 1 / 3
"""A validation or test image's cost relative to a training image (a forward pass only), as
``tf_bimodal.experiments.plan`` takes it."""

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


def _family(model_name: str) -> str:
    return "segmenter" if model_name in SEGMENTERS else "classifier"


def _build_for_training(model_name: str, preset: str, runtime, batch: int | None):
    """The paper (or tiny) model built, planned and compiled as the runners do it: the model, its
    input size, its plan (:func:`tf_bimodal.training.memory.training_plan`) and the strategy's name."""
    import dataclasses

    import keras

    from tf_bimodal.config import EXPERIMENT_PRESETS
    from tf_bimodal.training import runtime as runtime_lib
    from tf_bimodal.training.memory import training_plan

    experiment = EXPERIMENT_PRESETS[preset]
    strategy = runtime_lib.strategy_for(runtime)
    with runtime_lib.precision(runtime), strategy.scope():
        keras.utils.set_random_seed(0)
        if _family(model_name) == "classifier":
            from tf_bimodal.models.classification.factory import build_classifier
            from tf_bimodal.training.classification import compile_classifier

            config = dataclasses.replace(experiment.classification, backbone_weights="none",
                                         require_backbone_weights=False)
            normalization = "standardize" if config.normalization == "auto" else config.normalization
            model = build_classifier(model_name, config, normalization)
            plan = training_plan(model, batch or config.batch_size, runtime, strategy.num_replicas_in_sync, model_name)
            compile_classifier(model, config, plan.accumulation_steps)
            size = config.input_size
        else:
            from tf_bimodal.models.segmentation.factory import build_segmenter
            from tf_bimodal.training.segmentation import compile_segmenter

            config = experiment.segmentation
            model = build_segmenter(model_name, config, config.image_size)
            plan = training_plan(model, batch or config.batch_size, runtime, strategy.num_replicas_in_sync, model_name)
            compile_segmenter(model, config, plan.accumulation_steps)
            size = config.image_size
    return model, size, plan, type(strategy).__name__


def _forward_flops(model_name: str, model) -> float | None:
    """Analytic forward FLOPs of one example (``FLOPS_RULE``), or None where the count fails."""
    from bench_classification import forward_flops
    from bench_segmentation import analytic_forward_flops

    try:
        flops = analytic_forward_flops(model) if _family(model_name) == "segmenter" else forward_flops(model)
    except (AttributeError, TypeError, ValueError):
        return None
    return float(flops) if flops > 0 else None


def _loss_value(logs) -> float:
    import numpy as np

    if isinstance(logs, dict):
        logs = logs.get("loss", next(iter(logs.values())))
    return float(np.ravel(logs)[0])


def steps_task(spec: dict) -> dict:
    """Time ``spec["steps"]`` optimizer steps of one model, precision and XLA setting at its plan."""
    model_name, precision, xla = spec["model"], spec["precision"], spec["xla"]
    if model_name not in STEP_MODELS or precision not in PRECISIONS:
        raise ValueError(f"steps: model must be one of {STEP_MODELS} and precision one of {PRECISIONS}, "
                         f"got {model_name!r} and {precision!r}")
    import numpy as np

    from tf_bimodal.config import RuntimeConfig
    from tf_bimodal.experiments.plan import random_training_batch

    runtime = RuntimeConfig(strategy=spec["strategy"], precision=precision, tensorboard=False,
                            micro_batch=spec.get("micro_batch"))
    _reset_memory()
    started = time.perf_counter()
    model, size, plan, strategy_name = _build_for_training(model_name, spec["preset"], runtime, spec.get("batch"))
    model.jit_compile = xla
    build_seconds = time.perf_counter() - started
    flops = _forward_flops(model_name, model)
    inputs, targets = random_training_batch(model, plan.effective_batch)
    step_size = plan.global_micro_batch
    micro_batches = [({key: value[start:start + step_size] for key, value in inputs.items()},
                      targets[start:start + step_size]) for start in range(0, plan.effective_batch, step_size)]

    def optimizer_step():
        for micro_inputs, micro_targets in micro_batches:
            logs = model.train_on_batch(micro_inputs, micro_targets)  # returns numbers: the pass has finished
        return logs

    started = time.perf_counter()
    optimizer_step()  # trace (and XLA-compile)
    first_step_seconds = time.perf_counter() - started
    times = []
    for _ in range(spec["steps"]):
        started = time.perf_counter()
        logs = optimizer_step()
        times.append(time.perf_counter() - started)
    step = float(np.median(times))
    examples_per_second = plan.effective_batch / step
    images_per_example = sum(1 for tensor in model.inputs if "availability" not in tensor.name)
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    record = {
        "status": "ok", "model": model_name, "precision": precision, "xla": xla,
        "jit_compile": bool(model.jit_compile), "strategy": strategy_name, "image_size": size,
        "batch": plan.batch, "micro_batch": plan.micro_batch, "accumulation_steps": plan.accumulation_steps,
        "replicas": plan.replicas, "global_micro_batch": plan.global_micro_batch,
        "effective_batch": plan.effective_batch, "plan_source": plan.source, "plan": plan.describe(),
        "estimated_peak_memory_gib": (plan.estimated_peak_bytes / 2**30
                                      if plan.estimated_peak_bytes is not None else None),
        "plan_memory_gib": plan.available_bytes / 2**30 if plan.available_bytes else None,
        "optimizer": type(optimizer).__name__,
        "optimizer_steps_taken": int(np.asarray(optimizer.iterations)),
        "optimizer_steps_timed": len(times), "build_seconds": build_seconds, "first_step_seconds": first_step_seconds,
        "seconds_per_optimizer_step_median": step, "seconds_per_optimizer_step_best": float(np.min(times)),
        "seconds_per_micro_step": step / plan.accumulation_steps,
        "examples_per_second": examples_per_second,
        "images_per_second": images_per_example * examples_per_second,
        "example": ("an image" if images_per_example == 1 else f"{images_per_example} images (B-mode and SE-mode)"),
        "forward_gflops_per_example": flops / 1e9 if flops else None,
        "train_tflops_per_second": examples_per_second * 3 * flops / 1e12 if flops else None,
        "params": int(model.count_params()),
        "loss_scale_optimizer": type(model.optimizer).__name__ == "LossScaleOptimizer",
        "final_loss": _loss_value(logs),
    }
    if xla and not model.jit_compile:
        record["note"] = "Keras refused jit_compile for this model (model_supports_jit): measured without XLA"
    record.update(_peak_memory())
    if record["estimated_peak_memory_gib"]:
        record["measured_over_estimated_peak"] = record["peak_memory_gib"] / record["estimated_peak_memory_gib"]
    return record


def _tree_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(folder, name)) for folder, _, names in os.walk(path) for name in names)


def _fold_batch_plan(run_folder: str) -> dict | None:
    """The batch plan the runner recorded for the first fold of a run (None if it did not)."""
    from tf_bimodal import layout

    path = os.path.join(layout.fold_dir(run_folder, 0), layout.METRICS_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle).get("batch_plan")


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
    record["batch_plans"] = {run: _fold_batch_plan(layout.run_dir(root, run)) for run in ("w_mm_unet", "mff")}
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


def _setting_key(task: dict) -> tuple:
    return _family(task["model"]), bool(task["xla"])


def run_worker(tasks: list) -> int:
    """Run ``tasks`` in this process, one ``RESULT`` line each; a failing task does not stop the others.

    A ``steps`` task with a ``deadline_s`` (seconds from the worker's start) is skipped when its
    expected time would pass it: ``expected_s``, or the time of the last setting of the same
    model family and XLA flag this worker has measured.
    """
    started = time.monotonic()
    measured = {}
    for task in tasks:
        task_started = time.monotonic()
        try:
            if task["kind"] == "probe":
                record = probe_task(task)
            elif task["kind"] == "steps":
                expected = measured.get(_setting_key(task), task.get("expected_s", 0.0))
                left = started + task["deadline_s"] - task_started if "deadline_s" in task else math.inf
                if expected > left:
                    record = _skipped(f"budget: about {expected:.0f} s needed, {max(left, 0):.0f} s left",
                                      **_known(task))
                else:
                    record = steps_task(task)
                    measured[_setting_key(task)] = time.monotonic() - task_started
            elif task["kind"] == "end_to_end":
                record = end_to_end_task(task)
            else:
                raise ValueError(f"worker: unknown task kind {task['kind']!r}")
        except Exception as error:
            record = {**_known(task), **_error_record(error)}
        record["task_seconds"] = time.monotonic() - task_started
        _result(task["id"], record)
        if task["kind"] == "steps" and "keras" in sys.modules:
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
        what it had reported so far (the fold's finished stages) and the end of the worker's
        standard error; only finished tasks' records have ``task_seconds``.
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
            record = {**(record or {}), **_known(task), "status": "error", "oom": False}
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


def step_order(models=STEP_MODELS, precisions=DEFAULT_PRECISIONS, xla: bool = False) -> list:
    """The training settings ``(model, precision, xla)``, most wanted first: every precision of
    ``FIRST_MODELS``, then the other models one precision after the other (float32, the
    package's default, first as given); with ``xla`` the same settings with XLA after them."""
    order = []
    for with_xla in (False, True) if xla else (False,):
        order += [(model, precision, with_xla) for model in models if model in FIRST_MODELS
                  for precision in precisions]
        order += [(model, precision, with_xla) for precision in precisions for model in models
                  if model not in FIRST_MODELS]
    return order


def step_specs(sizes: dict, strategy: str, order=None) -> list:
    """One task per training setting, in ``order`` (default: :func:`step_order`'s)."""
    return [{"id": f"steps/{model}/{precision}/{'xla' if xla else 'no_xla'}", "kind": "steps", "model": model,
             "precision": precision, "xla": xla, "batch": sizes["batch"], "micro_batch": sizes["micro_batch"],
             "steps": sizes["steps"], "preset": sizes["preset"], "strategy": strategy}
            for model, precision, xla in (order if order is not None else step_order())]


def fold_spec(sizes: dict, mode: str, precision: str, workdir: str, image_size: int) -> dict:
    return {"id": "end_to_end", "kind": "end_to_end", "preset": sizes["preset"], "overrides": FOLD_OVERRIDES[mode],
            "precision": precision, "image_size": image_size, "workdir": workdir}


def _expected_seconds(sizes: dict) -> dict:
    return {(family, xla): seconds * (XLA_FACTOR if xla else 1.0)
            for family, seconds in sizes["setting_seconds"].items() for xla in (False, True)}


def run_steps(tasks: list, sizes: dict, budget: Budget) -> dict:
    """The settings in order in one worker, which skips a setting that would not fit in the
    steps' allowance (its expected time: the last one measured of its model family and XLA
    flag, before that ``sizes["setting_seconds"]``). A worker that dies (or is killed at the
    deadline) leaves its setting an error record; a fresh worker takes the settings after it
    while time is left."""
    expected = _expected_seconds(sizes)
    records, queue = {}, list(tasks)
    while queue:
        allowance = budget.allowance("steps")
        need = WORKER_START_SECONDS + expected[_setting_key(queue[0])]
        if allowance < need:
            records.update({task["id"]: _skipped(f"budget: about {need:.0f} s needed, {max(allowance, 0):.0f} s left",
                                                 **_known(task)) for task in queue})
            break
        done = run_job([{**task, "deadline_s": allowance - 5.0, "expected_s": expected[_setting_key(task)]}
                        for task in queue], allowance)
        finished = sum(1 for task in queue if "task_seconds" in done[task["id"]])  # the worker runs them in order
        for task in queue[:finished + 1]:  # those it finished, and the one it died in
            records[task["id"]] = done[task["id"]]
            if done[task["id"]].get("status") == "ok":
                expected[_setting_key(task)] = done[task["id"]]["task_seconds"]
        queue = queue[finished + 1:]
    return records


def ordered_settings(tasks: list, records: dict, peaks: dict) -> list:
    """Every training setting's record in the order of ``tasks``, with its share of the matmul peak."""
    settings = []
    for task in tasks:
        record = records[task["id"]]
        if record.get("status") == "ok":
            key = MATMUL_DTYPE[record["precision"]]
            peak = peaks.get(key)
            achieved = record.get("train_tflops_per_second")
            record["matmul_peak_key"] = key
            record["share_of_matmul_peak"] = achieved / peak if peak and achieved else None
        settings.append(record)
    return settings


def _describe_setting(record: dict) -> str:
    name = f"{record.get('model')} {record.get('precision')}{' XLA' if record.get('xla') else ''}"
    if record.get("status") != "ok":
        return f"{name}: {record.get('status')} ({(record.get('reason') or record.get('error') or '')[:160]})"
    share, tflops = record.get("share_of_matmul_peak"), record.get("train_tflops_per_second")
    estimate = record.get("estimated_peak_memory_gib")
    return (f"{name}: batch {record['effective_batch']} = {record['accumulation_steps']} x {record['micro_batch']}, "
            f"{record['seconds_per_optimizer_step_median']:.2f} s per optimizer step, "
            f"{record['images_per_second']:.1f} images/s"
            + (f", {tflops:.3g} TFLOP/s" if tflops is not None else "")
            + (f" ({100 * share:.1f} % of the matmul peak)" if share is not None else "")
            + f", peak {record['peak_memory_gib']:.2f} GiB"
            + (f" (plan: {estimate:.2f} GiB)" if estimate is not None else "")
            + f", first step {record['first_step_seconds']:.1f} s")


def _default_setting(settings, model: str):
    """The measured float32 setting of ``model`` without XLA, the package's default (or None)."""
    return next((s for s in settings if s.get("model") == model and s.get("precision") == "float32"
                 and not s.get("xla") and s.get("status") == "ok"), None)


def _rate(record: dict, source: str, factor: float = 1.0) -> dict:
    """What the estimate takes from a measured setting: a micro-batch pass's seconds (x ``factor``) and its plan."""
    return {"source": source, "precision": record["precision"], "xla": record["xla"],
            "micro_batch": record["micro_batch"], "accumulation_steps": record["accumulation_steps"],
            "global_micro_batch": record["global_micro_batch"],
            "seconds_per_optimizer_step": record["seconds_per_optimizer_step_median"] * factor,
            "seconds_per_micro_step": record["seconds_per_micro_step"] * factor}


def _model_rate(model: str, measured: dict, unet_flops: dict) -> dict:
    """The rate of a protocol model: its own measurement, its stand-in's (``STAND_INS``), or
    W-MM-U-Net's scaled by the analytic FLOPs (segmenters) / MFF's by the VGG-16 passes."""
    name = STAND_INS.get(model, model)
    if measured.get(name) is not None:
        return _rate(measured[name], "measured" if name == model else f"measured on {name} (the same graph)")
    if model in TABLE2_BACKBONE_PASSES:
        passes = TABLE2_BACKBONE_PASSES[model]
        return _rate(measured["mff"], f"MFF's x {passes} VGG-16 pass(es) / 2", passes / 2)
    wmm = measured["w_mm_unet"]
    wmm_flops = wmm.get("forward_gflops_per_example")
    if model in unet_flops and wmm_flops:
        return _rate(wmm, "W-MM-U-Net's x the analytic FLOPs' ratio", unet_flops[model] / wmm_flops)
    return _rate(wmm, "W-MM-U-Net's")


def fold_seconds(rate: dict, epochs: int, overhead: float, sizes: tuple, batch: int | None = None) -> float:
    """One fold's seconds: ``epochs`` of the training pairs in micro-batches of the plan and the
    validation pairs at ``VALIDATION_COST`` of that, the test pairs predicted once, and
    ``overhead``. A ``batch`` below the plan's micro-batch runs in one pass of that many images,
    at the plan's seconds per image."""
    train, val, test = sizes
    micro, seconds = rate["global_micro_batch"], rate["seconds_per_micro_step"]
    if batch is not None and batch < micro:
        micro, seconds = batch, seconds * batch / micro

    def passes(pairs):
        return math.ceil(pairs / micro)

    return (epochs * seconds * (passes(train) + VALIDATION_COST * passes(val))
            + VALIDATION_COST * seconds * passes(test) + overhead)


def estimate_protocol(settings: list, probe: dict, fold: dict | None, preset: str, tiny: bool) -> dict:
    """Hours of Table 1, Table 2 and the grid search (Table S4) from the measured optimizer steps."""
    from tf_bimodal.config import EXPERIMENT_PRESETS, SEGMENTATION_MODELS, TABLE2_ROWS, SplitConfig

    experiment = EXPERIMENT_PRESETS[preset]
    folds = SplitConfig().num_folds
    sizes = SplitConfig().paper_sizes  # pairs per fold of the paper's protocol (§3.1, §3.4)
    train, val, test = sizes
    unet_flops = (probe or {}).get("forward_gflops_per_image") or {}
    overhead_seg = overhead_cls = 0.0
    overhead_note = "no end-to-end fold measured: per-fold overhead (build, tracing, prediction, saving) taken as 0"
    if fold and fold.get("status") == "ok":
        steps = {step["name"]: step["seconds"] for step in fold.get("steps", [])}
        overhead_seg = steps.get("w_mm_unet", 0.0) / fold["folds"]
        overhead_cls = steps.get("mff", 0.0) / fold["folds"]
        overhead_note = (f"per-fold overhead from the end-to-end fold (its few epochs on {fold.get('pairs')} pairs "
                         f"included): segmenter {overhead_seg:.0f} s, classifier {overhead_cls:.0f} s")
    choices = {"package default (float32, no XLA)": _default_setting, "fastest measured setting": _fastest}
    grid = experiment.grid_search
    seg_epochs, cls_epochs = experiment.segmentation.epochs, experiment.classification.epochs
    grid_epochs = grid.epochs or seg_epochs
    estimates = {}
    for label, choose in choices.items():
        measured = {model: choose(settings, model) for model in STEP_MODELS}
        if measured["w_mm_unet"] is None or measured["mff"] is None:
            estimates[label] = {"status": "not measured"}
            continue
        table2_models = list(dict.fromkeys(row.model for row in TABLE2_ROWS))
        rates = {model: _model_rate(model, measured, unet_flops)
                 for model in [*SEGMENTATION_MODELS, *table2_models]}
        table1 = {model: folds * fold_seconds(rates[model], seg_epochs, overhead_seg, sizes)
                  for model in SEGMENTATION_MODELS}
        table2 = {row.name: folds * fold_seconds(rates[row.model], cls_epochs, overhead_cls, sizes)
                  for row in TABLE2_ROWS}
        per_batch = len(grid.learning_rates) * len(grid.losses)
        grid_seconds = {model: per_batch * sum(fold_seconds(rates[model], grid_epochs, overhead_seg, sizes, batch)
                                               for batch in grid.batch_sizes)
                        for model in grid.models}
        hours = {"table1": sum(table1.values()) / 3600, "table2": sum(table2.values()) / 3600,
                 "grid_search": sum(grid_seconds.values()) / 3600}
        hours["total"] = sum(hours.values())
        estimates[label] = {
            "status": "ok", "hours": hours, "rates_by_model": rates,
            "table1_hours_by_model": {k: v / 3600 for k, v in table1.items()},
            "table2_hours_by_run": {k: v / 3600 for k, v in table2.items()},
            "grid_search_hours_by_model": {k: v / 3600 for k, v in grid_seconds.items()},
        }
    return {
        "preset": preset,
        "estimates": estimates,
        "assumptions": [
            f"pairs per fold as the paper (§3.1, §3.4): {train} train, {val} validation, {test} test; {folds} folds",
            f"every run trains its full epochs (segmenters {seg_epochs}, classifiers {cls_epochs}, grid settings "
            f"{grid_epochs}): early stopping can only shorten it, so this is an upper bound",
            "each model at its plan on this device (micro-batch x accumulation steps to the batch of 32, "
            "tf_bimodal.training.memory.training_plan) and its measured seconds per optimizer step: an epoch is "
            "ceil(pairs / micro-batch) micro-batch passes of the training pairs, each an optimizer step's time / the "
            f"accumulation steps, plus the validation pairs' passes at {VALIDATION_COST:.2f} of that (a forward pass); "
            "the test pairs are predicted once per fold, as tf-bimodal plan estimates",
            f"models not measured take a stand-in: the same graph ({STAND_INS}); else segmenters W-MM-U-Net's time x "
            "the analytic FLOPs' ratio (the probe's U-Net counts) and Table 2 models MFF's x their VGG-16 passes per "
            f"pair / 2 ({TABLE2_BACKBONE_PASSES}); rates_by_model says which; the auto-weight pre-stage ResNet is "
            "left out (its FLOPs are under 0.1 % of W-MM-U-Net's)",
            "Table 2: the nine runs of TABLE2_ROWS; the W-MM-U-Net masks come from Table 1's run",
            f"grid search (Table S4): {grid.num_settings} settings x {len(grid.models)} models on one fold; a batch "
            "below the planned micro-batch runs in one pass at the same seconds per image (small batches use the "
            "GPU less well, so the grid is underestimated)",
            overhead_note,
            "one GPU, no data-pipeline stalls (benchmarks/bench_pipeline.py: the pipeline outruns the step)",
        ] + (["tiny mode: quick-preset models on the machine at hand; the numbers are no estimate of the paper's run"]
             if tiny else []),
    }


def _run_tiny(args, tasks: list, sizes, budget: Budget, workdir: str) -> tuple:
    """Tiny mode: three workers side by side (on a small CPU most of the time is single-threaded
    tracing): the fold; the probe and the segmenters' settings; the classifiers' settings."""
    jobs = [Job([fold_spec(sizes, "tiny", args.fold_precision, workdir, 32)])] if "end_to_end" in args.parts else []
    steps = tasks if "steps" in args.parts else []
    deadline = {"deadline_s": budget.allowance() - 5.0}
    for family in ("segmenter", "classifier"):
        group = [probe_spec(sizes, "tiny")] if family == "segmenter" else []
        group += [{**task, **deadline, "expected_s": _expected_seconds(sizes)[_setting_key(task)]}
                  for task in steps if _family(task["model"]) == family]
        if group:
            jobs.append(Job(group))
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
    parser.add_argument("--models", nargs="+", choices=STEP_MODELS, default=list(STEP_MODELS),
                        help="models of the training steps (default: all, in the order given here)")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(DEFAULT_PRECISIONS),
                        help="precisions of the training steps (default %(default)s)")
    parser.add_argument("--xla", action="store_true", help="also time every setting with XLA (jit_compile), last")
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

    tasks = step_specs(sizes, args.strategy, step_order(args.models, args.precisions, args.xla))
    fold, records = None, {}
    if args.tiny:
        records, fold = _run_tiny(args, tasks, sizes, budget, workdir)
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

    if "steps" not in parts:
        records.update({task["id"]: _skipped("not requested (--parts)", **_known(task)) for task in tasks})
    elif not args.tiny:
        records = run_steps(tasks, sizes, budget)
    settings = ordered_settings(tasks, records, peaks)
    for record in settings:
        _print("  " + _describe_setting(record))
    report["training_steps"] = {
        "preset": sizes["preset"], "strategy": args.strategy,
        "batch": sizes["batch"] or "the preset's (§3.4: 32)",
        "micro_batch": sizes["micro_batch"] or "the memory rule's (tf_bimodal.training.memory.training_plan)",
        "models": args.models, "precisions": args.precisions, "xla": args.xla,
        "note": "median of the timed optimizer steps (each of accumulation_steps micro-batches) after one traced "
                "optimizer step, random inputs; share = training TFLOP/s / the matmul peak of the same precision "
                "(float32: TF32 as recorded); the settings are in the order they ran",
        "settings": settings,
    }

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
        plans = ", ".join(f"{run} {plan['accumulation_steps']} x {plan['micro_batch']}"
                          for run, plan in (fold.get("batch_plans") or {}).items() if plan)
        _print(f"  end-to-end fold: {fold.get('status')}" + (f" (stages: {stages})" if stages else "")
               + (f" (batch plans: {plans})" if plans else "")
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
