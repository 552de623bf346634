"""What a request will take on this device, before it runs (§3.4's batches, Tables 1 and 2).

``make_plan(check_fit(request, data, experiment), experiment_data, experiment, output)``
answers, for every model the request trains (:func:`tf_bimodal.experiments.protocol.plan_steps`):

1. its parameters and estimated training memory, fixed and per image
   (:func:`tf_bimodal.training.memory.estimate_training_memory`), and the micro-batch x
   accumulation steps that reach the preset's batch on this device
   (:func:`tf_bimodal.training.memory.plan_batch`). A model that does not fit even at one
   image stops the plan here, before any data work, with what would make it fit;
2. the data's fold sizes (the data set is prepared and its splits made, as ``train`` would),
   hence the micro-batches and optimizer steps per epoch;
3. the time of one micro-batch training step measured on this device (a few steps on random
   inputs at the planned micro-batch after one traced step, or on a CPU at
   :data:`CPU_TIMING_IMAGES` images scaled to it; ``timing="none"`` skips it), and
   from it an estimate of each step's and the request's time (:data:`ESTIMATE_RULE`). Models
   of one graph (MM-U-Net and the W-MM-U-Nets, whose weights are fixed inputs) are timed once.

The methods of Table 3 (``table3``) are built and trained by their own trainers
(``tf_bimodal.training.table3``), outside this memory and step-time model: their rows say so
(:data:`TABLE3_NOT_ESTIMATED`) and the request's estimate covers the other steps alone.

The plan is printed and written to ``<output>/<dataset>-<preset>/plan.json``.
"""

from __future__ import annotations

import logging
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tf_bimodal import layout
from tf_bimodal.config import (
    CLASSIFICATION_MODELS,
    TABLE3_METHODS,
    DataConfig,
    ExperimentConfig,
    model_input_size,
    to_dict,
)
from tf_bimodal.experiments.protocol import plan_steps
from tf_bimodal.io import write_json
from tf_bimodal.models.classification.factory import build_classifier
from tf_bimodal.models.segmentation.factory import build_segmenter
from tf_bimodal.training import memory
from tf_bimodal.training import runtime as runtime_lib
from tf_bimodal.training.classification import compile_classifier
from tf_bimodal.training.segmentation import compile_segmenter

logger = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
TIMINGS = ("measured", "none")
ESTIMATE_RULE = ("every fold runs the preset's maximum epochs (early stopping shortens it), validation a third "
                 "of a training pass per image, one traced first step per fold; the auto-weight pre-stage, "
                 "the data pipeline and prediction not counted")
TABLE3_NOT_ESTIMATED = ("not estimated: a Table 3 method is built and trained by its own trainer "
                        "(tf_bimodal.training.table3), outside this plan's memory and step-time model; it "
                        "runs at most the preset's table3.epochs per network and fold")
"""What a plan says of each Table 3 method's step (``tf-bimodal plan table3``)."""
CPU_TIMING_IMAGES = 2
"""On a CPU, step times are measured at this many images per pass and scaled to the micro-batch."""
VALIDATION_COST = 1 / 3
"""A validation image's cost relative to a training image (a forward pass only)."""


def _build(model_name: str, experiment: ExperimentConfig, data: DataConfig, accumulation_steps: int = 1):
    """The model as the runners build and compile it (random initial weights), and its input size."""
    if model_name in CLASSIFICATION_MODELS:
        config = experiment.classification
        normalization = "standardize" if config.normalization == "auto" else config.normalization
        model = build_classifier(model_name, config, normalization)
        return compile_classifier(model, config, accumulation_steps), config.input_size
    config = experiment.segmentation
    size = model_input_size(config.image_size, data.image_size)
    return compile_segmenter(build_segmenter(model_name, config, size), config, accumulation_steps), size


def random_training_batch(model, images: int) -> tuple:
    """Random inputs for every input of ``model`` (availabilities 1) and targets of its task."""
    rng = np.random.default_rng(0)
    inputs = {}
    for tensor in model.inputs:
        name = tensor.name.split(":")[0]
        shape = (images, *tensor.shape[1:])
        inputs[name] = (np.ones(shape, "float32") if "availability" in name
                        else rng.uniform(size=shape).astype("float32"))
    if len(model.outputs[0].shape) == 4:
        targets = (rng.uniform(size=(images, *model.outputs[0].shape[1:])) > 0.7).astype("float32")
    else:
        targets = np.arange(images) % 2
    return inputs, targets


def _batch_size(model_name: str, experiment: ExperimentConfig) -> int:
    section = experiment.classification if model_name in CLASSIFICATION_MODELS else experiment.segmentation
    return section.batch_size


def fit_models(models, data: DataConfig, experiment: ExperimentConfig) -> dict:
    """Each model's parameters, memory profile and batch plan on this device.

    Raises:
        DoesNotFit: a model that does not fit even at one image per pass (all models are
            checked first; the message names every one that does not fit).
    """
    strategy = runtime_lib.strategy_for(experiment.runtime)
    replicas = strategy.num_replicas_in_sync
    fitted, problems = {}, []
    with runtime_lib.precision(experiment.runtime), strategy.scope():
        for model_name in models:
            keras.backend.clear_session()
            model, size = _build(model_name, experiment, data)
            try:
                plan = memory.training_plan(model, _batch_size(model_name, experiment), experiment.runtime,
                                            replicas, model_name)
            except memory.DoesNotFit as error:
                problems.append(str(error))
                continue
            profile = memory.estimate_training_memory(
                model, compute_bytes=2 if experiment.runtime.precision.startswith("mixed") else 4)
            fitted[model_name] = {"parameters": profile.parameters, "input_size": size,
                                  "fixed_bytes": profile.fixed_bytes, "per_image_bytes": profile.per_image_bytes,
                                  "batch_plan": plan.to_dict(), "describe": plan.describe()}
            logger.info(f"  {model_name}: {profile.parameters / 1e6:.1f} M parameters, about "
                        f"{profile.per_image_bytes / 2**30:.2f} GiB per image + {profile.fixed_bytes / 2**30:.2f} GiB; "
                        f"{plan.describe()}")
    keras.backend.clear_session()
    if problems:
        raise memory.DoesNotFit("; ".join(problems))
    return fitted


def time_step(model_name: str, data: DataConfig, experiment: ExperimentConfig, micro_batch: int,
              steps: int = 2) -> dict:
    """One training pass of ``micro_batch`` images per replica on this device, timed:
    ``{"first": seconds of the first pass (graph tracing included), "step": the fastest of
    ``steps`` later passes}``."""
    strategy = runtime_lib.strategy_for(experiment.runtime)
    tf_logger = tf.get_logger()
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)  # "triggered tf.function retracing": one new model per call
    try:
        with runtime_lib.precision(experiment.runtime), strategy.scope():
            keras.backend.clear_session()
            model, _ = _build(model_name, experiment, data)
            inputs, targets = random_training_batch(model, micro_batch * strategy.num_replicas_in_sync)
            started = time.perf_counter()
            model.train_on_batch(inputs, targets)
            first = time.perf_counter() - started
            times = []
            for _ in range(steps):
                started = time.perf_counter()
                model.train_on_batch(inputs, targets)
                times.append(time.perf_counter() - started)
    finally:
        tf_logger.setLevel(level)
        keras.backend.clear_session()
    return {"first": first, "step": min(times)}


def _epochs(model_name: str, experiment: ExperimentConfig) -> int:
    section = experiment.classification if model_name in CLASSIFICATION_MODELS else experiment.segmentation
    return section.epochs


def _format_seconds(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def check_fit(request: str, data: DataConfig, experiment: ExperimentConfig, crop: str = "predicted") -> dict:
    """The first half of a plan, before any data work: the steps of ``request``, the device's
    memory, and every model's memory and batch plan (:func:`fit_models`).

    Raises:
        DoesNotFit: a model that does not fit this device even at one image.
        ValueError: an unknown request or crop.
    """
    steps = plan_steps(request, crop, experiment.table3.methods)
    models = list(dict.fromkeys(row.model for row in steps if row.model not in TABLE3_METHODS))
    device = memory.device_memory()
    logger.info(f"Plan of {request} ({experiment.name} preset) on this {device['device'].upper()}: "
                f"{device['bytes'] / 2**30:.1f} GiB ({device['source']}), a micro-batch may fill "
                f"{memory.MEMORY_MARGIN:.0%}")
    return {"request": request, "crop": crop, "steps": steps, "models": models, "device": device,
            "fitted": fit_models(models, data, experiment)}


def _timings(checked: dict, data: DataConfig, experiment: ExperimentConfig) -> dict:
    """A measured step time per model (same-graph models timed once; a CPU times a short pass
    and scales it, its step time growing in proportion to the images)."""
    fitted, device = checked["fitted"], checked["device"]
    timings, timed_graphs = {}, {}  # MM-U-Net, W-MM-U-Net (manual, pre-stage) share a graph: timed once
    for model_name in checked["models"]:
        micro = fitted[model_name]["batch_plan"]["micro_batch"]
        graph = (fitted[model_name]["parameters"], fitted[model_name]["per_image_bytes"], micro)
        if graph in timed_graphs:
            timings[model_name] = {**timings[timed_graphs[graph]], "same_graph_as": timed_graphs[graph]}
            continue
        timed_graphs[graph] = model_name
        images = micro if device["device"] == "gpu" else min(micro, CPU_TIMING_IMAGES)
        logger.info(f"  timing {model_name} at {images} image{'s' * (images > 1)} per pass ...")
        measured = time_step(model_name, data, experiment, images, steps=1 if images < micro else 2)
        timings[model_name] = {"first": measured["first"], "step": measured["step"] * micro / images,
                               "timed_images": images}
    return timings


def make_plan(checked: dict, data, experiment: ExperimentConfig, output: str = layout.DEFAULT_OUTPUT,
              timing: str = "measured") -> dict:
    """The plan (see the module's docstring) from :func:`check_fit`'s result and the data
    (:class:`~tf_bimodal.experiments.experiment_data.ExperimentData`: its fold sizes); written
    to ``plan.json`` in the experiment folder.

    Raises:
        ValueError: an unknown timing.
    """
    if timing not in TIMINGS:
        raise ValueError(f"timing must be one of {TIMINGS}, got {timing!r}")
    request, crop, steps = checked["request"], checked["crop"], checked["steps"]
    fitted, device = checked["fitted"], checked["device"]
    folds = [{part: len(fold[part]) for part in ("train", "val", "test")} for fold in data.splits]
    timings = _timings(checked, data.config, experiment) if timing == "measured" else {}
    rows, total = [], 0.0
    for row in steps:
        if row.model in TABLE3_METHODS:
            rows.append({"step": row.name, "model": row.model, "folds": len(folds),
                         "max_epochs": experiment.table3.epochs, "inputs": experiment.table3.inputs,
                         "estimated_seconds": None, "note": TABLE3_NOT_ESTIMATED})
            continue
        fit = fitted[row.model]
        plan = fit["batch_plan"]
        epochs = _epochs(row.model, experiment)
        micro = plan["global_micro_batch"]
        train_batches = [math.ceil(fold["train"] / micro) for fold in folds]
        record = {"step": row.name, "model": row.model, "crop": row.crop,
                  **{k: v for k, v in fit.items() if k != "describe"},
                  "folds": len(folds), "max_epochs": epochs, "micro_batches_per_epoch": train_batches,
                  "optimizer_steps_per_epoch": [b / plan["accumulation_steps"] for b in train_batches]}
        if row.model in timings:
            seconds, first = timings[row.model]["step"], timings[row.model]["first"]
            per_fold = [first + epochs * seconds * (batches + VALIDATION_COST * math.ceil(fold["val"] / micro))
                        for batches, fold in zip(train_batches, folds, strict=True)]
            record.update(micro_step_seconds=seconds, optimizer_step_seconds=seconds * plan["accumulation_steps"],
                          first_step_seconds=first,
                          step_time_source=(
                              "measured on this device (random inputs, after one traced step)"
                              + ("" if timings[row.model]["timed_images"] == plan["micro_batch"] else
                                 f" at {timings[row.model]['timed_images']} images per pass, scaled to "
                                 f"{plan['micro_batch']}")
                              + (f"; the same graph as {timings[row.model]['same_graph_as']}, timed once"
                                 if "same_graph_as" in timings[row.model] else "")),
                          estimated_seconds=sum(per_fold))
            total += sum(per_fold)
        rows.append(record)
    plan_record = {
        "request": request, "crop": crop, "preset": experiment.name, "device": device,
        "memory_margin": memory.MEMORY_MARGIN, "precision": experiment.runtime.precision,
        "replicas": runtime_lib.strategy_for(experiment.runtime).num_replicas_in_sync,
        "data": to_dict(data.config), "split": to_dict(data.split), "folds": folds, "steps": rows,
        "timing": timing,
        "estimated_seconds": total if timings else None,
        "not_estimated": [record["step"] for record in rows if "note" in record],
        "estimate_rule": ESTIMATE_RULE,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    root = data.experiment_dir(output, experiment.name)
    os.makedirs(root, exist_ok=True)
    path = write_json(os.path.join(root, PLAN_FILE), plan_record)
    _log_plan(rows, request, total if timings else None, path)
    return plan_record


def _log_plan(rows: list[dict], request: str, total: float | None, path: str) -> None:
    logger.info(f"{'step':<22} {'params':>8} {'GiB/img':>8} {'micro x acc':>11} {'steps/epoch':>11} "
                f"{'s/opt step':>10} {'estimate':>11}")
    for record in rows:
        if "note" in record:
            logger.info(f"{record['step']:<22} {record['note']}")
            continue
        plan = record["batch_plan"]
        step_seconds = record.get("optimizer_step_seconds")
        logger.info(f"{record['step']:<22} {record['parameters'] / 1e6:7.1f}M {record['per_image_bytes'] / 2**30:8.2f} "
                    f"{plan['micro_batch']:>5} x {plan['accumulation_steps']:<3} "
                    f"{np.mean(record['optimizer_steps_per_epoch']):11.1f} "
                    f"{'-' if step_seconds is None else f'{step_seconds:.2f}':>10} "
                    f"{_format_seconds(record['estimated_seconds']) if step_seconds else '-':>11}")
    if total is not None:
        unestimated = [record["step"] for record in rows if "note" in record]
        logger.info(f"Estimated time of {request}: {_format_seconds(total)} ({ESTIMATE_RULE})"
                    + (f"; without {', '.join(unestimated)}, not estimated" if unestimated else ""))
    logger.info(f"Plan written to {path}")
