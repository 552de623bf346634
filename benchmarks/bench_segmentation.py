"""Training throughput, memory and FLOP efficiency of the five segmenters (paper §3.2, §4.1).

For each model of Table 1 and each size (``paper``: 336 x 336 with the paper preset's
filters; ``cpu``: the cpu preset) this measures, each in a fresh subprocess so that the
memory figures belong to one model:

* training images/s: ``train_on_batch`` steps on random inputs after one warm-up step that
  traces the graph (Adam, Dice loss, as in training);
* peak memory: the process's maximum resident set size (``resource.getrusage``), and that
  minus the resident size just before the model was built (TensorFlow's own footprint);
* FLOPs per image, counted analytically from the layer shapes: 2 x multiply-adds of every
  convolution, transposed convolution and dense layer (elementwise layers - batch norm,
  ReLU, pooling, averaging - are left out, the usual convention; they are a few % of the
  count but, being memory-bound, a larger share of the time). A training step is counted as
  3 x the forward FLOPs (forward, gradient w.r.t. activations, gradient w.r.t. weights).
  TensorFlow's graph profiler count of the forward pass is reported beside it as a check;
* achieved FLOP/s (images/s x training FLOPs per image) as a fraction of the float32
  matmul peak measured in the same run: a 4096 x 4096 ``tf.matmul``, timed at the start,
  at the end and inside each model's process just before its steps; the peak is the best
  of all of them, so that other load on a shared machine does not flatter the fraction
  (the load average is recorded: on a shared machine every rate here is a lower bound);
* with ``paper`` in ``--sizes``: the same fraction for single 3x3 convolutions of the
  model's shapes (forward + backward), the ceiling the whole model cannot pass.

Run (about 10 minutes on 2 CPU cores)::

    python benchmarks/bench_segmentation.py
    python benchmarks/bench_segmentation.py --sizes cpu --models w_mm_unet

The results are printed as a table and written as JSON (``--output``).
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

DEFAULT_BATCH = {"paper": 2, "cpu": 8}
DEFAULT_STEPS = {"paper": 2, "cpu": 20}


def _rss_mib() -> float:
    """Peak resident set size of this process so far (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mib() -> float:
    """Resident set size now (Linux ``/proc``; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return _rss_mib()


class MatmulClock:
    """Times a float32 ``size`` x ``size`` ``tf.matmul``: the reference rate of the machine."""

    def __init__(self, size: int = 4096):
        import tensorflow as tf

        self.size = size
        self.a = tf.random.normal((size, size))
        self.b = tf.random.normal((size, size))
        self.matmul = tf.function(lambda x, y: tf.matmul(x, y))
        self.matmul(self.a, self.b).numpy()

    def gflops(self) -> float:
        """GFLOP/s of one matmul, now."""
        start = time.perf_counter()
        self.matmul(self.a, self.b).numpy()
        return 2.0 * self.size**3 / (time.perf_counter() - start) / 1e9


def matmul_peak_gflops(size: int = 4096, repeats: int = 20) -> float:
    """float32 ``tf.matmul`` throughput of two ``size`` x ``size`` matrices, best of runs."""
    clock = MatmulClock(size)
    return max(clock.gflops() for _ in range(repeats))


CONV_PROBES = (
    # (height = width, channels in, channels out): shapes of the W-MM-U-Net at 336 px
    (336, 1, 64),
    (336, 64, 64),
    (168, 256, 128),
    (84, 512, 256),
    (42, 1024, 512),
    (21, 2048, 1024),
)


def conv_probe(batch: int, repeats: int = 3) -> list:
    """Forward + backward throughput of single 3x3 convolutions of the model's shapes.

    Shows how close the dominant operation alone comes to the matmul peak: the ceiling for
    the whole model, which also runs memory-bound batch norm, ReLU, pooling and concatenation.
    """
    import tensorflow as tf

    rows = []
    for size, channels_in, channels_out in CONV_PROBES:
        x = tf.random.normal((batch, size, size, channels_in))
        kernel = tf.Variable(tf.random.normal((3, 3, channels_in, channels_out)) * 0.01)

        @tf.function
        def step(x, kernel=kernel):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.nn.conv2d(x, kernel, 1, "SAME")
                loss = tf.reduce_sum(y)
            # Return the loss too, or the forward convolution is pruned as dead code.
            return [loss] + tape.gradient(loss, [x, kernel])

        step(x)
        flops = 3 * 2 * 9 * channels_in * channels_out * size * size * batch
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            [value.numpy() for value in step(x)]
            best = min(best, time.perf_counter() - start)
        rows.append({"size": size, "channels_in": channels_in, "channels_out": channels_out,
                     "gflops_per_second": flops / best / 1e9})
    return rows


def analytic_forward_flops(model) -> int:
    """2 x multiply-adds of the conv / transposed-conv / dense layers for one image."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, height, width, channels_in = layer.input.shape
            kh, kw = layer.kernel_size
            total += 2 * kh * kw * channels_in * layer.filters * height * width
        elif isinstance(layer, keras.layers.Conv2D):
            _, height, width, channels_out = layer.output.shape
            kh, kw = layer.kernel_size
            channels_in = layer.input.shape[-1] // layer.groups
            total += 2 * kh * kw * channels_in * channels_out * height * width
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def profiler_forward_flops(model, input_specs):
    """Forward FLOPs of one image as TensorFlow's graph profiler counts them (or None)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        function = tf.function(lambda inputs: model(inputs, training=False))
        concrete = function.get_concrete_function(input_specs)
        frozen = convert_variables_to_constants_v2(concrete)
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        profile = tf.compat.v1.profiler.profile(graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                                options=options)
        return int(profile.total_float_ops)
    except Exception as error:  # the profiler is a legacy API; report, do not fail
        print(f"  profiler FLOPs unavailable: {error}", file=sys.stderr)
        return None


def bench_one(model_name: str, size_name: str, batch: int, steps: int) -> dict:
    """Measure one model at one size (runs in its own process)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from tf_bimodal.config import SEGMENTATION_PRESETS
    from tf_bimodal.models.segmentation.factory import MODEL_INPUTS, build_segmenter
    from tf_bimodal.schema import MODALITY_CHANNELS
    from tf_bimodal.training.segmentation import compile_segmenter

    config = SEGMENTATION_PRESETS[size_name]
    size = config.image_size
    clock = MatmulClock()
    local_peak = max(clock.gflops() for _ in range(5))
    rss_before = _current_rss_mib()
    keras.utils.set_random_seed(0)
    model = compile_segmenter(build_segmenter(model_name, config), config)
    rng = np.random.default_rng(0)
    inputs = {
        key: tf.constant(rng.random((batch, size, size, MODALITY_CHANNELS[key]), dtype=np.float32))
        for key in MODEL_INPUTS[model_name]
    }
    masks = tf.constant((rng.random((batch, size, size, 1)) > 0.7).astype(np.float32))

    start = time.perf_counter()
    model.train_on_batch(inputs, masks)
    warmup_seconds = time.perf_counter() - start
    forward = analytic_forward_flops(model)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(inputs, masks)
    seconds = time.perf_counter() - start

    specs = [
        tf.TensorSpec((1, size, size, MODALITY_CHANNELS[key]), tf.float32, name=key)
        for key in MODEL_INPUTS[model_name]
    ]
    profiled = profiler_forward_flops(model, specs)
    images_per_second = batch * steps / seconds
    return {
        "model": model_name,
        "size": size_name,
        "image_size": size,
        "stackwise_num_filters": list(config.stackwise_num_filters),
        "bottleneck_filters": config.bottleneck_filters,
        "batch": batch,
        "steps": steps,
        "params": int(model.count_params()),
        "warmup_seconds": round(warmup_seconds, 2),
        "seconds_per_step": seconds / steps,
        "images_per_second": images_per_second,
        "forward_gflops_per_image": forward / 1e9,
        "profiler_forward_gflops_per_image": None if profiled is None else profiled / 1e9,
        "training_gflops_per_image": 3 * forward / 1e9,
        "achieved_gflops_per_second": images_per_second * 3 * forward / 1e9,
        "matmul_gflops_per_second_in_process": local_peak,
        "peak_rss_mib": _rss_mib(),
        "peak_rss_above_baseline_mib": _rss_mib() - rss_before,
    }


def main(argv=None):
    from tf_bimodal.config import SEGMENTATION_MODELS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(SEGMENTATION_MODELS), choices=SEGMENTATION_MODELS)
    parser.add_argument("--sizes", nargs="+", default=["cpu", "paper"], choices=["cpu", "paper"])
    parser.add_argument("--batch-paper", type=int, default=DEFAULT_BATCH["paper"])
    parser.add_argument("--batch-cpu", type=int, default=DEFAULT_BATCH["cpu"])
    parser.add_argument("--steps-paper", type=int, default=DEFAULT_STEPS["paper"])
    parser.add_argument("--steps-cpu", type=int, default=DEFAULT_STEPS["cpu"])
    parser.add_argument("--output", default=os.path.join(REPO_ROOT, "benchmarks", "results", "segmentation.json"))
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    batches = {"paper": args.batch_paper, "cpu": args.batch_cpu}
    steps = {"paper": args.steps_paper, "cpu": args.steps_cpu}
    if args.one:
        model_name, size_name = args.one
        print("RESULT " + json.dumps(bench_one(model_name, size_name, batches[size_name], steps[size_name])))
        return 0

    import tensorflow as tf

    started = time.time()
    peak = matmul_peak_gflops()
    print(f"float32 matmul at start: {peak:.0f} GFLOP/s ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
    probes = []
    if "paper" in args.sizes:
        probes = conv_probe(args.batch_paper)
        for row in probes:
            print(f"3x3 conv {row['size']:>3}px {row['channels_in']:>4} -> {row['channels_out']:>4} ch, forward + "
                  f"backward: {row['gflops_per_second']:5.0f} GFLOP/s", flush=True)
    results = []
    for size_name in args.sizes:
        for model_name in args.models:
            command = [sys.executable, os.path.abspath(__file__), "--one", model_name, size_name,
                       f"--batch-{size_name}", str(batches[size_name]), f"--steps-{size_name}", str(steps[size_name])]
            completed = subprocess.run(command, capture_output=True, text=True)
            lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
            if completed.returncode != 0 or not lines:
                print(f"{model_name} {size_name}: failed\n{completed.stderr[-2000:]}")
                continue
            result = json.loads(lines[-1][len("RESULT "):])
            results.append(result)
            print(
                f"{size_name:>5} {result['image_size']:>3}px {model_name:<17} batch {result['batch']:>2}: "
                f"{result['images_per_second']:7.2f} img/s, {result['training_gflops_per_image']:8.2f} GFLOP/img "
                f"(train), {result['achieved_gflops_per_second']:6.0f} GFLOP/s (matmul just before: "
                f"{result['matmul_gflops_per_second_in_process']:4.0f}), peak RSS {result['peak_rss_mib']:6.0f} MiB "
                f"(+{result['peak_rss_above_baseline_mib']:.0f})",
                flush=True,
            )
    peak = max([peak, matmul_peak_gflops()] + [r["matmul_gflops_per_second_in_process"] for r in results])
    print(f"float32 matmul peak over the run: {peak:.0f} GFLOP/s")
    for result in results:
        result["fraction_of_matmul_peak"] = result["achieved_gflops_per_second"] / peak
        print(f"{result['size']:>5} {result['model']:<17} {100 * result['fraction_of_matmul_peak']:5.1f} % of peak")
    for row in probes:
        row["fraction_of_matmul_peak"] = row["gflops_per_second"] / peak
        print(f"3x3 conv {row['size']:>3}px {row['channels_in']:>4} -> {row['channels_out']:>4} ch "
              f"{100 * row['fraction_of_matmul_peak']:5.1f} % of peak")
    report = {
        "matmul_peak_gflops_per_second": peak,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "tensorflow": tf.__version__,
        "results": results,
        "conv_probes": probes,
        "total_seconds": round(time.time() - started, 1),
        "flops_rule": "analytic: 2 x multiply-adds of conv / transposed conv / dense layers; training = 3 x forward",
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"Wrote {args.output} ({report['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
