"""Input-pipeline throughput against what a training step consumes (target: >= 10x).

For the segmentation pipeline (resize, augmentation identical on B-mode, SE-mode and mask,
batching) and the classification pipeline (augmentation, lesion crop with its margin and
resize to the classifier input, fused into one resampling per batch), on the default
phantom (221 pairs at 336 px), this measures:

* the pipeline alone: training images per second when batches are only read (after one
  warm-up epoch, through one iterator over the repeated epochs, as ``fit`` reads them);
* the training step alone: images per second of ``train_on_batch`` of the ``cpu`` preset's
  W-MM-U-Net and MFF on one fixed batch (the pipeline's cost removed);
* their ratio: how many times faster the pipeline produces than the step consumes.

It also compares the classification training crop as one resampling per batch
(``make_dataset``'s default) with augmenting at full size first (``fuse=False``).

The ``cpu`` preset is always measured. ``--paper`` adds the classification pipeline at the
paper's 336-px input against the paper-size MFF step (standard VGG-16 backbones, batch 32),
which on a CPU takes tens of seconds per step, so it is timed over ``--paper-steps`` steps.

The dense float32 matmul peak of the machine is measured in the same run, so the numbers
can be read against it.

Usage::

    python benchmarks/bench_pipeline.py [--epochs 3] [--steps 10] [--paper] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_classification import matmul_peak  # noqa: E402


def _iterate(ds, epochs: int) -> float:
    """Images per second of reading ``epochs`` epochs of ``ds`` (after one warm-up epoch).

    Through one iterator over the repeated dataset, as ``fit`` reads it
    (``tf_bimodal.training.runtime.fit_datasets``).
    """
    batches = int(ds.cardinality())
    if batches < 0:  # unknown: count one pass
        batches = sum(1 for _ in ds)
    iterator = iter(ds.repeat())
    for _ in range(batches):
        next(iterator)
    count, started = 0, time.perf_counter()
    for _ in range(epochs * batches):
        inputs, _labels = next(iterator)
        count += int(next(iter(inputs.values())).shape[0])
    return count / (time.perf_counter() - started)


def _train_rate(model, ds, steps: int) -> float:
    """Images per second of ``train_on_batch`` on the first batch of ``ds`` (after warm-up)."""
    inputs, targets = next(iter(ds))
    batch = int(next(iter(inputs.values())).shape[0])
    for _ in range(2):
        model.train_on_batch(inputs, targets)
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(inputs, targets)
    return steps * batch / (time.perf_counter() - started)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs of each pipeline")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps of each model")
    parser.add_argument("--paper", action="store_true",
                        help="also measure classification at the paper preset's 336-px input")
    parser.add_argument("--paper-steps", type=int, default=2, help="timed steps of the paper-size MFF")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)

    import dataclasses

    import keras
    import tensorflow as tf

    from tf_bimodal.config import (
        CLASSIFICATION_PRESETS,
        SEGMENTATION_PRESETS,
        AugmentConfig,
        CropConfig,
        DataConfig,
    )
    from tf_bimodal.data import dataset as dataset_lib
    from tf_bimodal.data import inputs, pipeline
    from tf_bimodal.data.cropping import scaled_margin
    from tf_bimodal.models.classification.factory import build_classifier, model_input_keys
    from tf_bimodal.models.segmentation.factory import MODEL_INPUTS, build_segmenter
    from tf_bimodal.training.segmentation import compile_segmenter

    peak = matmul_peak("float32")
    data = DataConfig()
    ds, info = dataset_lib.load_dataset(data)
    results = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "dataset_version": str(info.version),
               "matmul_peak_gflops": round(peak["wall"] / 1e9, 1), "pipelines": {}}

    # Segmentation: the cpu preset's B-mode U-Net (VGG-16 encoder) and W-MM-U-Net. The grid
    # search (Table S4) reads the same pipeline at batch sizes 4 to 32: its smallest batch is
    # measured too, where the pipeline's fixed cost per batch weighs most.
    config = SEGMENTATION_PRESETS["cpu"]
    arrays = inputs.resize_arrays(inputs.load_arrays(ds), config.image_size)
    ids = list(arrays["image_id"])
    for model_name, batch_size, what in (("unet_bmode", config.batch_size, "training"),
                                         ("w_mm_unet", config.batch_size, "training"),
                                         ("unet_bmode", 4, "grid search, batch 4")):
        keys = MODEL_INPUTS[model_name]
        run = dataclasses.replace(config, batch_size=batch_size)
        pipeline_ds = inputs.segmentation_dataset(arrays, ids, keys, batch_size, True, augment=config.augment, seed=0)
        produced = _iterate(pipeline_ds, args.epochs)
        keras.utils.set_random_seed(0)
        # Under the pre-stage, build_segmenter stands in equal weights (the step costs the same).
        model = compile_segmenter(build_segmenter(model_name, run, config.image_size), run)
        consumed = _train_rate(model, pipeline_ds, args.steps)
        name = f"segmentation ({model_name}, cpu preset, {config.image_size} px, augmented, {what})"
        results["pipelines"][name] = {
            "pipeline_images_per_s": round(produced, 1), "train_step_images_per_s": round(consumed, 1),
            "ratio": round(produced / consumed, 1),
        }
        del model

    # Classification: MFF on crops around the ground-truth masks (pairs per second).
    arrays = inputs.load_arrays(ds)
    ids = list(arrays["image_id"])
    crop = CropConfig(margin=scaled_margin(data.image_size))
    keys = model_input_keys("mff")
    presets = [("cpu", args.epochs, args.steps)] + ([("paper", 1, args.paper_steps)] if args.paper else [])
    for preset, epochs, steps in presets:
        # The backbones start from random weights here: only the speed is measured.
        config = dataclasses.replace(CLASSIFICATION_PRESETS[preset], backbone_weights="none",
                                     require_backbone_weights=False)
        pipeline_ds = inputs.classification_dataset(
            arrays, ids, keys, config.input_size, crop, config.batch_size, training=True, augment=True, seed=0
        )
        produced = _iterate(pipeline_ds, epochs)
        keras.utils.set_random_seed(0)
        model = build_classifier("mff", config, "standardize")
        model.compile(optimizer=keras.optimizers.SGD(config.learning_rate, momentum=config.momentum))
        consumed = _train_rate(model, pipeline_ds, steps)
        name = f"classification (mff, {preset} preset, {config.input_size} px crops, augmented)"
        results["pipelines"][name] = {
            "pipeline_images_per_s": round(produced, 1), "train_step_images_per_s": round(consumed, 1),
            "ratio": round(produced / consumed, 1),
        }
        del model

    # The training crop in one resampling per batch against augmenting at full size first.
    results["fused_crop"] = {}
    for size in [64] + ([336] if args.paper else []):
        rates = {}
        for fuse in (True, False):
            fused_ds = pipeline.make_dataset(
                tf.data.Dataset.from_tensor_slices(arrays), 16, training=True, augment_config=AugmentConfig(),
                crop=crop, output_size=size, fuse=fuse,
            )
            fused_ds = fused_ds.map(lambda batch: (batch, batch["label"]))
            rates["fused" if fuse else "two_step"] = round(_iterate(fused_ds, 1 if size > 64 else args.epochs), 1)
        rates["speedup"] = round(rates["fused"] / rates["two_step"], 1)
        results["fused_crop"][f"{size} px, batch 16"] = rates

    for name, values in results["pipelines"].items():
        print(f"{name}: pipeline {values['pipeline_images_per_s']} images/s, training step "
              f"{values['train_step_images_per_s']} images/s, ratio {values['ratio']}x (target >= 10x)")
    for name, rates in results["fused_crop"].items():
        print(f"training crop at {name}: one resampling {rates['fused']} pairs/s, augmenting at full size "
              f"first {rates['two_step']} pairs/s ({rates['speedup']}x)")
    print(f"float32 matmul peak in this run: {results['matmul_peak_gflops']} GFLOP/s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return results


if __name__ == "__main__":
    main()
