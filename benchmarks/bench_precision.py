"""Training step time of the ``cpu``-preset models under each Keras precision policy.

For the W-MM-U-Net of the ``cpu`` segmentation preset (64 x 64, batch 8) and the MFF of the
``cpu`` classification preset (64 x 64 crops, batch 16), each precision runs in a fresh
subprocess that builds and compiles the model as the runners do (inside
``runtime.precision`` and the strategy's scope), takes two untimed steps (tracing, warm-up)
and then times ``--steps`` ``train_on_batch`` steps on random inputs. The best and the median
step are reported, in wall-clock and in CPU time of the process: other processes on a shared
machine can only slow a step down, and ``--rounds`` alternates the settings so that a change
of load falls on all of them.

Usage::

    python benchmarks/bench_precision.py
    python benchmarks/bench_precision.py --precisions float32 mixed_bfloat16 --steps 15 --rounds 3

This is a script, not a test.
"""

from __future__ import annotations

import argparse
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


def run_one(model_name: str, precision: str, steps: int, strategy: str) -> dict:
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

            config = CLASSIFICATION_PRESETS["cpu"]
            model = build_classifier("mff", config, "standardize")
            model.compile(optimizer=keras.optimizers.SGD(config.learning_rate, momentum=config.momentum,
                                                         weight_decay=config.weight_decay))
            size, batch = config.input_size, config.batch_size
            inputs = {"bmode": rng.uniform(size=(batch, size, size, 1)),
                      "semode": rng.uniform(size=(batch, size, size, 3)), "availability": np.ones((batch, 2))}
            targets = np.arange(batch) % 2
        else:
            from tf_bimodal.models.segmentation.factory import build_segmenter
            from tf_bimodal.training.segmentation import compile_segmenter

            config = SEGMENTATION_PRESETS["cpu"]
            size, batch = config.image_size, config.batch_size
            model = compile_segmenter(build_segmenter(model_name, config, size), config)
            inputs = {"bmode": rng.uniform(size=(batch, size, size, 1)),
                      "semode": rng.uniform(size=(batch, size, size, 3))}
            targets = (rng.uniform(size=(batch, size, size, 1)) > 0.7)
        inputs = {key: value.astype("float32") for key, value in inputs.items()}
        targets = targets.astype("float32") if model_name != "mff" else targets
        for _ in range(2):  # trace + one warm step
            model.train_on_batch(inputs, targets)
        times, cpu_times = [], []
        for _ in range(steps):
            started, cpu_started = time.perf_counter(), time.process_time()
            loss = model.train_on_batch(inputs, targets)
            times.append(time.perf_counter() - started)
            cpu_times.append(time.process_time() - cpu_started)
    return {
        "model": model_name,
        "precision": precision,
        "strategy": type(runtime_lib.strategy_for(runtime)).__name__,
        "batch_size": batch,
        "image_size": size,
        "steps_timed": steps,
        "seconds_per_step_best": float(np.min(times)),
        "seconds_per_step_median": float(np.median(times)),
        "cpu_seconds_per_step_median": float(np.median(cpu_times)),
        "examples_per_second": batch / float(np.median(times)),
        "loss_scale_optimizer": type(model.optimizer).__name__ == "LossScaleOptimizer",
        "final_loss": float(np.ravel(loss)[0]),
        "load_average_1min_at_end": os.getloadavg()[0],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"],
                        choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1, help="repeat every setting, alternating them")
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], args.steps, args.strategy)))
        return 0
    results = []
    # Rounds alternate the settings, so that a change in the machine's load falls on all.
    settings = [(m, p) for _ in range(args.rounds) for m in args.models for p in args.precisions]
    for model_name, precision in settings:
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--one", model_name, precision,
             "--steps", str(args.steps), "--strategy", args.strategy],
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
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
