"""Training step time of the W-MM-U-Net and the MFF under each Keras precision policy.

For the W-MM-U-Net and the MFF of a preset (``--preset cpu``: the ``cpu`` presets' sizes and
batches; ``--preset paper``: the paper's 336-px models, batch ``--batch``, default 2),
each precision runs in a fresh
subprocess that builds and compiles the model as the runners do (inside
``runtime.precision`` and the strategy's scope), takes two untimed steps (tracing, warm-up)
and then times ``--steps`` ``train_on_batch`` steps on random inputs. The best and the median
step are reported, in wall-clock and in CPU time of the process: other processes on a shared
machine can only slow a step down, and ``--rounds`` alternates the settings so that a change
of load falls on all of them.

Usage::

    python benchmarks/bench_precision.py
    python benchmarks/bench_precision.py --precisions float32 mixed_bfloat16 --steps 15 --rounds 3
    python benchmarks/bench_precision.py --preset paper --steps 3

Every training step's loss is recorded (the same fixed batch, the same initial weights in
every precision), so the loss curves of the precisions can be compared. The float32 and
bfloat16 matmul peaks of the machine (``tf_bimodal.training.runtime.matmul_rates``) are
measured at the start and the end of the run.

This is a script, not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

MODELS = ("w_mm_unet", "mff")


def run_one(model_name: str, precision: str, steps: int, strategy: str, preset: str = "cpu",
            batch: int | None = None, filters: int | None = None) -> dict:
    """Build, warm up and time ``steps`` training steps in this process."""
    import keras
    import numpy as np

    from tf_bimodal.config import CLASSIFICATION_PRESETS, SEGMENTATION_PRESETS, RuntimeConfig
    from tf_bimodal.training import runtime as runtime_lib

    runtime = RuntimeConfig(strategy=strategy, precision=precision, tensorboard=False)
    rng = np.random.default_rng(0)
    with runtime_lib.precision(runtime), runtime_lib.strategy_for(runtime).scope():
        keras.utils.set_random_seed(0)
        if model_name == "mff":
            from tf_bimodal.models.classification.factory import build_classifier

            config = CLASSIFICATION_PRESETS[preset]
            model = build_classifier("mff", config, "standardize")
            model.compile(optimizer=keras.optimizers.SGD(config.learning_rate, momentum=config.momentum,
                                                         weight_decay=config.weight_decay))
            size, batch = config.input_size, batch or config.batch_size
            inputs = {"bmode": rng.uniform(size=(batch, size, size, 1)),
                      "semode": rng.uniform(size=(batch, size, size, 3)), "availability": np.ones((batch, 2))}
            targets = np.arange(batch) % 2
        else:
            from tf_bimodal.models.segmentation.factory import build_segmenter
            from tf_bimodal.training.segmentation import compile_segmenter

            config = SEGMENTATION_PRESETS[preset]
            if filters:  # the first level's width F: F, 2F, ... per path, bottleneck 2x the last
                widths = tuple(filters * 2**level for level in range(len(config.stackwise_num_filters)))
                config = dataclasses.replace(config, stackwise_num_filters=widths, bottleneck_filters=2 * widths[-1])
            size, batch = config.image_size, batch or config.batch_size
            # Under the pre-stage, build_segmenter stands in equal weights (the step costs the same).
            model = compile_segmenter(build_segmenter(model_name, config, size), config)
            inputs = {"bmode": rng.uniform(size=(batch, size, size, 1)),
                      "semode": rng.uniform(size=(batch, size, size, 3))}
            targets = (rng.uniform(size=(batch, size, size, 1)) > 0.7)
        inputs = {key: value.astype("float32") for key, value in inputs.items()}
        targets = targets.astype("float32") if model_name != "mff" else targets
        for _ in range(2):  # trace + one warm step
            model.train_on_batch(inputs, targets)
        times, cpu_times, losses = [], [], []
        for _ in range(steps):
            started, cpu_started = time.perf_counter(), time.process_time()
            loss = model.train_on_batch(inputs, targets)
            times.append(time.perf_counter() - started)
            cpu_times.append(time.process_time() - cpu_started)
            losses.append(float(np.ravel(loss)[0]))
    return {
        "model": model_name,
        "preset": preset,
        "precision": precision,
        "strategy": type(runtime_lib.strategy_for(runtime)).__name__,
        "batch_size": batch,
        "stackwise_num_filters": list(config.stackwise_num_filters),
        "image_size": size,
        "steps_timed": steps,
        "seconds_per_step_best": float(np.min(times)),
        "seconds_per_step_median": float(np.median(times)),
        "cpu_seconds_per_step_median": float(np.median(cpu_times)),
        "examples_per_second": batch / float(np.median(times)),
        "loss_scale_optimizer": type(model.optimizer).__name__ == "LossScaleOptimizer",
        "final_loss": losses[-1],
        "losses": losses,
        "load_average_1min_at_end": os.getloadavg()[0],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"],
                        choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--preset", default="cpu", choices=("cpu", "paper"))
    parser.add_argument("--batch", type=int, default=None, help="images per step (default: cpu preset's; paper: 2)")
    parser.add_argument("--filters", type=int, default=None,
                        help="segmenters: first-level width F (F, 2F, ...), e.g. 32 as IVD-Net (default: preset's)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1, help="repeat every setting, alternating them")
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], args.steps, args.strategy, args.preset, args.batch,
                                 args.filters)))
        return 0
    from tf_bimodal.training.runtime import matmul_rates

    batch = args.batch or (2 if args.preset == "paper" else None)
    peaks = [matmul_rates()]
    results = []
    # Rounds alternate the settings, so that a change in the machine's load falls on all.
    settings = [(m, p) for _ in range(args.rounds) for m in args.models for p in args.precisions]
    for model_name, precision in settings:
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--one", model_name, precision,
             "--steps", str(args.steps), "--strategy", args.strategy, "--preset", args.preset]
            + (["--batch", str(batch)] if batch else []) + (["--filters", str(args.filters)] if args.filters else []),
            capture_output=True, text=True, check=False,
        )
        if done.returncode:
            print(f"{model_name} {precision}: failed\n{done.stderr[-3000:]}", file=sys.stderr)
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(result)
        print(f"{model_name:10s} {precision:15s} best {1000 * result['seconds_per_step_best']:7.1f} ms/step, "
              f"median {1000 * result['seconds_per_step_median']:7.1f} ms/step, "
              f"CPU {1000 * result['cpu_seconds_per_step_median']:7.1f} ms/step "
              f"({result['examples_per_second']:.1f} examples/s, batch {result['batch_size']}, "
              f"{result['image_size']} px, load {result['load_average_1min_at_end']:.1f})", flush=True)
    peaks.append(matmul_rates())
    peak = {name: max(rates[name] for rates in peaks) / 1e9 for name in peaks[0]}
    print(f"matmul peak (2048 x 2048, best of start and end): float32 {peak['float32']:.0f} GFLOP/s, "
          f"bfloat16 {peak['bfloat16']:.0f} GFLOP/s")
    for model_name in args.models:
        steps = {}  # each precision's fastest median over the rounds
        for r in results:
            if r["model"] == model_name:
                steps[r["precision"]] = min(steps.get(r["precision"], float("inf")), r["seconds_per_step_median"])
        if "float32" in steps and "mixed_bfloat16" in steps:
            speedup = steps["float32"] / steps["mixed_bfloat16"]
            print(f"{model_name}: mixed_bfloat16 step {speedup:.2f}x as fast as float32")
    if args.json:
        arguments = argv if argv is not None else sys.argv[1:]
        record = {"command": "python benchmarks/bench_precision.py " + " ".join(arguments),
                  "matmul_peak_gflops": peak, "results": results}
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
