"""Training throughput of the classifiers (paper §3.3) against the machine's matmul peak.

For each model (MFF, the four integration baselines of Table 2 and the single-modal VGG-16)
and setting (input size 224 / 336, float32 / mixed bfloat16) a fresh subprocess builds the
paper-size model (standard VGG-16 backbones, 4096-d features; for MFF an EmbraceNet 4096 and
the decision network 1024-256-2), trains it on random pairs for a few steps and reports:

* pairs/s and images/s (two images, B-mode and SE-mode, per pair);
* forward FLOPs per pair, counted from the layers (a multiply-add is 2 FLOPs; a conv is
  ``2 * H_out * W_out * k * k * C_in * C_out``, a dense layer ``2 * in * out``); a training
  step is taken as 3x the forward pass (forward + the two backward products);
* achieved FLOP/s as a fraction of the dense matmul peak measured in the same process and
  precision (``tf.matmul`` of 4096 x 4096 matrices), before and after the timed steps; both
  the step time and the peak are the best of several runs, since other processes on the
  machine can only slow either down;
* peak resident memory of the subprocess (``ru_maxrss``);
* the same fraction in FLOPs per CPU-second of this process (``time.process_time``) for both
  the model and the matmul: on a machine shared with other jobs the wall-clock fraction
  swings with their load, while the CPU-time fraction measures the work done per CPU
  second this process actually got (spin-waiting threads count against it, so it errs low);
* the 1-minute load average at the end.

Usage::

    python benchmarks/bench_classification.py                 # all settings, a few steps each
    python benchmarks/bench_classification.py --steps 5 --sizes 224 --precisions float32
    python benchmarks/bench_classification.py --models mff mff_early
    python benchmarks/bench_classification.py --json results.json

This is a script, not a test; on the 2-core CPU one setting takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODELS = ("mff", "mff_early", "mff_late", "mff_stack", "mff_intermediate", "vgg16_bmode")
"""MFF, the integration baselines of Table 2, and one single-modal VGG-16 (the SE one differs
only in its three input channels)."""


def matmul_peak(dtype: str, size: int = 4096, repeats: int = 8, trials: int = 5) -> dict:
    """Dense matmul FLOP rates (2 n^3 per product) in ``dtype``, best of ``trials`` runs.

    The products are chained (each multiplies the previous result), so the graph optimiser
    can neither merge identical products nor skip unused parts of them.

    Returns:
        ``{"wall": FLOP per wall-clock second, "cpu": FLOP per CPU second of this process}``.
    """
    import tensorflow as tf

    b = tf.cast(tf.random.normal((size, size)) / size**0.5, dtype)
    start = tf.cast(tf.random.normal((size, size)), dtype)

    @tf.function
    def chain(x):
        for _ in range(repeats):
            x = tf.matmul(x, b)
        return tf.reduce_sum(tf.cast(x, tf.float32))

    chain(start).numpy()
    best_wall = best_cpu = float("inf")
    for _ in range(trials):
        wall, cpu = time.perf_counter(), time.process_time()
        chain(start).numpy()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    flops = 2.0 * size**3 * repeats
    return {"wall": flops / best_wall, "cpu": flops / best_cpu}


def forward_flops(model) -> float:
    """Forward FLOPs of one example through ``model`` (nested models counted per call)."""
    import keras

    total = 0.0
    for layer in model.layers:
        calls = max(1, len(getattr(layer, "_inbound_nodes", [])))
        if isinstance(layer, keras.Model):
            total += calls * forward_flops(layer)
        elif isinstance(layer, keras.layers.Conv2D):
            out_h, out_w, out_c = layer.output.shape[1:]
            k_h, k_w, in_c, _ = layer.kernel.shape
            total += calls * 2.0 * out_h * out_w * k_h * k_w * in_c * out_c
        elif isinstance(layer, keras.layers.Dense):
            fan_in, fan_out = layer.kernel.shape
            total += calls * 2.0 * fan_in * fan_out
        elif type(layer).__name__ == "EmbraceNet":
            for docking in layer.dockings:
                fan_in, fan_out = docking.kernel.shape
                total += 2.0 * fan_in * fan_out
    return total


def run_one(model_name: str, size: int, precision: str, batch_size: int, steps: int) -> dict:
    """Build, warm up and time ``steps`` training steps in this process."""
    import keras
    import numpy as np

    if precision == "bfloat16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    from tf_bimodal.config import ClassificationConfig
    from tf_bimodal.models.classification.factory import build_classifier, model_input_keys

    peak_dtype = "bfloat16" if precision == "bfloat16" else "float32"
    peak_before = matmul_peak(peak_dtype)
    config = ClassificationConfig(input_size=size, backbone_weights="none")
    built = time.perf_counter()
    model = build_classifier(model_name, config, "standardize")
    model.compile(optimizer=keras.optimizers.SGD(1e-4, momentum=0.8, weight_decay=1e-4))
    rng = np.random.default_rng(0)
    inputs = {
        "bmode": rng.uniform(size=(batch_size, size, size, 1)).astype("float32"),
        "semode": rng.uniform(size=(batch_size, size, size, 3)).astype("float32"),
        "availability": np.ones((batch_size, 2), "float32"),
    }
    inputs = {key: inputs[key] for key in model_input_keys(model_name)}
    labels = np.arange(batch_size) % 2
    for _ in range(2):  # trace + one warm step
        model.train_on_batch(inputs, labels)
    warm_seconds = time.perf_counter() - built
    times, cpu_times = [], []
    for _ in range(steps):
        wall, cpu = time.perf_counter(), time.process_time()
        model.train_on_batch(inputs, labels)
        times.append(time.perf_counter() - wall)
        cpu_times.append(time.process_time() - cpu)
    # Best of the timed steps against the best matmul rate measured before and after them:
    # other processes on the machine only ever slow either down.
    step = float(np.min(times))
    step_cpu = float(np.min(cpu_times))
    peak_after = matmul_peak(peak_dtype)
    peak = max(peak_before["wall"], peak_after["wall"])
    peak_cpu = max(peak_before["cpu"], peak_after["cpu"])
    flops_pair = forward_flops(model)
    images_per_pair = 2 if model_name.startswith("mff") else 1
    achieved = 3.0 * flops_pair * batch_size / step
    achieved_cpu = 3.0 * flops_pair * batch_size / step_cpu
    return {
        "model": model_name,
        "input_size": size,
        "precision": precision,
        "batch_size": batch_size,
        "steps_timed": steps,
        "seconds_per_step": step,
        "seconds_per_step_median": float(np.median(times)),
        "pairs_per_second": batch_size / step if images_per_pair == 2 else None,
        "images_per_second": images_per_pair * batch_size / step,
        "forward_gflops_per_example": flops_pair / 1e9,
        "train_gflops_per_image": 3.0 * flops_pair / images_per_pair / 1e9,
        "achieved_gflops_per_second": achieved / 1e9,
        "matmul_peak_gflops_per_second": peak / 1e9,
        "fraction_of_peak": achieved / peak,
        "cpu_seconds_per_step": step_cpu,
        "achieved_gflops_per_cpu_second": achieved_cpu / 1e9,
        "matmul_peak_gflops_per_cpu_second": peak_cpu / 1e9,
        "fraction_of_peak_cpu_time": achieved_cpu / peak_cpu,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "build_and_warmup_seconds": warm_seconds,
        "load_average_1min_at_end": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
        "parameters": int(model.count_params()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 336])
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per step (default 8)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per setting (after 2 warm-up steps)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--single", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.single:
        model_name, size, precision = args.single.split(",")
        print(json.dumps(run_one(model_name, int(size), precision, args.batch_size, args.steps)))
        return 0

    results = []
    header = (f"{'model':<16} {'size':>4} {'precision':<9} {'s/step':>7} {'img/s':>6} {'GFLOP/img':>9} "
              f"{'GFLOP/s':>8} {'peak':>6} {'of peak':>7} {'of peak (CPU time)':>18} {'RSS GiB':>7}")
    print(f"load average (1, 5, 15 min): {os.getloadavg()}, {os.cpu_count()} CPUs", flush=True)
    print(header, flush=True)
    for model_name in args.models:
        for precision in args.precisions:
            for size in args.sizes:
                command = [sys.executable, os.path.abspath(__file__), "--single", f"{model_name},{size},{precision}",
                           "--batch-size", str(args.batch_size), "--steps", str(args.steps)]
                env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                           TF_CPP_MIN_LOG_LEVEL="3")
                finished = subprocess.run(command, capture_output=True, text=True, env=env)
                if finished.returncode != 0:
                    print(f"{model_name} {size} {precision}: failed\n{finished.stderr[-2000:]}", flush=True)
                    continue
                result = json.loads(finished.stdout.strip().splitlines()[-1])
                results.append(result)
                print(f"{model_name:<16} {size:>4} {precision:<9} {result['seconds_per_step']:>7.2f} "
                      f"{result['images_per_second']:>6.2f} {result['train_gflops_per_image']:>9.1f} "
                      f"{result['achieved_gflops_per_second']:>8.1f} {result['matmul_peak_gflops_per_second']:>6.0f} "
                      f"{100 * result['fraction_of_peak']:>6.1f}% {100 * result['fraction_of_peak_cpu_time']:>17.1f}% "
                      f"{result['peak_rss_gib']:>7.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
