"""Peak training memory of the paper preset's models, and the paper's batch by accumulation.

Every model of Tables 1 and 2 is built and compiled as the runners build it (paper preset,
336-px inputs, float32) and trained on random inputs in a fresh subprocess, at two batch sizes
(``--batches``, default 1 and 2), so that the peak resident memory (``ru_maxrss``) separates
into a fixed part and a part per image::

    per_image = (peak(b2) - peak(b1)) / (b2 - b1),    fixed = peak(b1) - b1 * per_image

Each row also holds the estimate of :func:`tf_bimodal.training.memory.estimate_training_memory`
(the layer outputs of one image, the weights), so that the estimate's factor can be checked
against the measurement. The segmenters run at the preset's width and at ``--filters``
(first-level widths; default 32 and 64: IVD-Net's code and U-Net's). A model whose second
batch would not fit in this machine's memory by the first measurement is measured at batch 1
only and says so.

``--accumulate`` then runs whole optimizer steps of the paper's batch (32 images) for the
given models, split into the micro-batch the memory rule picks on this machine
(:func:`tf_bimodal.training.memory.training_plan`, or ``--micro-batch``), with the gradients
accumulated (:mod:`tf_bimodal.models.accumulation`): the peak memory, the time of the step
and the optimizer's step count (1) are recorded.

Usage::

    python benchmarks/bench_memory.py --json benchmarks/results/memory_paper.json
    python benchmarks/bench_memory.py --models w_mm_unet mff --batches --accumulate w_mm_unet mff \\
        --json benchmarks/results/accumulation_paper.json

This is a script, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

GIB = 2**30


def _rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def build_compiled(model_name: str, filters: int | None, accumulation_steps: int = 1):
    """The paper preset's ``model_name``, compiled as the runners compile it (random weights:
    the weights' values do not change the memory)."""
    import dataclasses

    from tf_bimodal.config import CLASSIFICATION_MODELS, CLASSIFICATION_PRESETS, SEGMENTATION_PRESETS

    if model_name in CLASSIFICATION_MODELS:
        from tf_bimodal.models.classification.factory import build_classifier
        from tf_bimodal.training.classification import compile_classifier

        config = dataclasses.replace(CLASSIFICATION_PRESETS["paper"], backbone_weights="none",
                                     require_backbone_weights=False)
        model = build_classifier(model_name, config, "standardize")
        return compile_classifier(model, config, accumulation_steps), config.input_size, config.batch_size
    from tf_bimodal.models.segmentation.factory import build_segmenter
    from tf_bimodal.training.segmentation import compile_segmenter

    config = SEGMENTATION_PRESETS["paper"]
    if filters:
        widths = tuple(filters * 2**level for level in range(len(config.stackwise_num_filters)))
        config = dataclasses.replace(config, stackwise_num_filters=widths, bottleneck_filters=2 * widths[-1])
    model = build_segmenter(model_name, config, config.image_size)
    return compile_segmenter(model, config, accumulation_steps), config.image_size, config.batch_size


def measure(model_name: str, batch: int, filters: int | None) -> dict:
    """Two training steps at ``batch`` images in this process: peak memory and step time."""
    import keras

    from tf_bimodal.experiments.plan import random_training_batch
    from tf_bimodal.training.memory import estimate_training_memory

    keras.utils.set_random_seed(0)
    rss_start = _rss_bytes()
    started = time.perf_counter()
    model, size, _ = build_compiled(model_name, filters)
    built = time.perf_counter() - started
    rss_built = _rss_bytes()
    inputs, targets = random_training_batch(model, batch)
    started = time.perf_counter()
    model.train_on_batch(inputs, targets)
    first = time.perf_counter() - started
    started = time.perf_counter()
    model.train_on_batch(inputs, targets)
    step = time.perf_counter() - started
    profile = estimate_training_memory(model)
    return {
        "model": model_name, "batch": batch, "image_size": size, "filters": filters,
        "parameters": profile.parameters, "activation_bytes_per_image": profile.activation_bytes,
        "estimate_fixed_bytes": profile.fixed_bytes, "estimate_per_image_bytes": profile.per_image_bytes,
        "rss_after_import_bytes": rss_start, "rss_after_build_bytes": rss_built, "peak_bytes": _rss_bytes(),
        "build_seconds": built, "first_step_seconds": first, "step_seconds": step,
    }


def accumulate(model_name: str, filters: int | None, micro_batch: int | None) -> dict:
    """One optimizer step of the preset's batch, as micro-batches with accumulated gradients."""
    import keras
    import numpy as np
    import tensorflow as tf

    from tf_bimodal.config import RuntimeConfig
    from tf_bimodal.experiments.plan import random_training_batch
    from tf_bimodal.training.memory import training_plan

    keras.utils.set_random_seed(0)
    probe, _, batch = build_compiled(model_name, filters)
    plan = training_plan(probe, batch, RuntimeConfig(micro_batch=micro_batch), 1, model_name)
    del probe
    keras.backend.clear_session()
    model, size, _ = build_compiled(model_name, filters, plan.accumulation_steps)
    inputs, targets = random_training_batch(model, plan.effective_batch)
    data = tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(plan.micro_batch)
    started = time.perf_counter()
    model.fit(data, epochs=1, verbose=0, shuffle=False)
    seconds = time.perf_counter() - started
    return {
        "model": model_name, "image_size": size, "filters": filters, "plan": plan.to_dict(),
        "optimizer_steps": int(np.asarray(model.optimizer.iterations)), "optimizer": type(model.optimizer).__name__,
        "peak_bytes": _rss_bytes(), "seconds_per_optimizer_step": seconds,
        "note": "the first (traced) optimizer step: tracing included",
    }


def _child(args: list[str]) -> dict | None:
    done = subprocess.run([sys.executable, os.path.abspath(__file__), *args], capture_output=True, text=True,
                          check=False)
    if done.returncode:
        print(f"  failed ({' '.join(args)}): {done.stderr.strip().splitlines()[-1:] or done.returncode}",
              file=sys.stderr, flush=True)
        return {"failed": done.returncode, "stderr_tail": done.stderr[-1500:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _physical_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def main(argv=None) -> int:
    from tf_bimodal.config import CLASSIFICATION_MODELS, SEGMENTATION_MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[*SEGMENTATION_MODELS, *CLASSIFICATION_MODELS],
                        choices=[*SEGMENTATION_MODELS, *CLASSIFICATION_MODELS])
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 2],
                        help="two batch sizes (none: skip the memory table)")
    parser.add_argument("--filters", nargs="+", type=int, default=[32, 64], help="segmenters' first-level widths")
    parser.add_argument("--accumulate", nargs="*", default=[], help="models to run one batch-32 step of")
    parser.add_argument("--micro-batch", type=int, default=None, help="--accumulate: instead of the memory rule")
    parser.add_argument("--json", default=None)
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "BATCH", "FILTERS"), help=argparse.SUPPRESS)
    parser.add_argument("--one-accumulate", nargs=3, metavar=("MODEL", "FILTERS", "MICRO"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    none = lambda text: None if text == "none" else int(text)  # noqa: E731
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), none(args.one[2]))))
        return 0
    if args.one_accumulate:
        model_name, filters, micro = args.one_accumulate
        print(json.dumps(accumulate(model_name, none(filters), none(micro))))
        return 0
    from tf_bimodal.training.runtime import matmul_rates

    record = {"command": "python benchmarks/bench_memory.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d"), "machine_memory_bytes": _physical_bytes(),
              "matmul_peak_gflops": {k: v / 1e9 for k, v in matmul_rates().items()}, "rows": [], "profiles": [],
              "accumulation": []}
    small, large = (sorted(args.batches) + [None, None])[:2]
    for model_name in args.models:
        widths = args.filters if model_name in SEGMENTATION_MODELS else [None]
        for filters in widths:
            if small is None:
                break
            first = _child(["--one", model_name, str(small), str(filters or "none")])
            record["rows"].append(first)
            if "failed" in first:
                continue
            per_image_guess = first["estimate_per_image_bytes"]
            profile = {"model": model_name, "filters": filters, "image_size": first["image_size"],
                       "parameters": first["parameters"]}
            if large and first["peak_bytes"] + (large - small) * per_image_guess < 0.9 * _physical_bytes():
                second = _child(["--one", model_name, str(large), str(filters or "none")])
                record["rows"].append(second)
                if "failed" not in second:
                    per_image = (second["peak_bytes"] - first["peak_bytes"]) / (large - small)
                    profile.update(per_image_bytes=per_image, fixed_bytes=first["peak_bytes"] - small * per_image,
                                   method=f"batches {small} and {large}",
                                   factor=per_image / first["activation_bytes_per_image"])
            else:
                profile.update(method=f"batch {small} only: batch {large} would exceed 90 % of this machine's memory",
                               peak_bytes_batch_1=first["peak_bytes"])
            record["profiles"].append(profile)
            text = (f"{model_name:17s} F={filters or '-':<3} {first['parameters'] / 1e6:6.1f} M params, "
                    f"peak at batch {small} {first['peak_bytes'] / GIB:5.1f} GiB, step {first['step_seconds']:6.2f} s")
            if "per_image_bytes" in profile:
                text += (f"; per image {profile['per_image_bytes'] / GIB:5.2f} GiB, fixed "
                         f"{profile['fixed_bytes'] / GIB:5.2f} GiB (layer outputs x {profile['factor']:.2f})")
            print(text, flush=True)
    for model_name in args.accumulate:
        widths = args.filters if model_name in SEGMENTATION_MODELS else [None]
        for filters in widths:
            row = _child(["--one-accumulate", model_name, str(filters or "none"), str(args.micro_batch or "none")])
            record["accumulation"].append(row)
            if "failed" not in row:
                plan = row["plan"]
                print(f"{model_name:17s} F={filters or '-':<3} batch {plan['effective_batch']} = "
                      f"{plan['accumulation_steps']} x {plan['micro_batch']}: peak {row['peak_bytes'] / GIB:5.1f} GiB, "
                      f"{row['seconds_per_optimizer_step']:6.1f} s per optimizer step, "
                      f"{row['optimizer_steps']} optimizer step(s)", flush=True)
    record["matmul_peak_gflops_end"] = {k: v / 1e9 for k, v in matmul_rates().items()}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
