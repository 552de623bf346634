"""Latency of the exported CAD pipeline against the forward passes it is made of (§3.1-§3.3).

The exported ``cad_pipeline`` SavedModel runs, per B/SE pair: input checks, resize to the
segmenter's size, the K fold segmenters, resize of their probabilities to the input size and
the fold vote, the crop box, crop and resize of both images, and the K fold classifiers. Its
latency per pair is compared with the sum of the forward passes it cannot avoid:

* ``models_savedmodel``: the exported ``segmenter`` (K fold models at the model size) plus the
  exported ``classifier`` (K fold models on crops), both SavedModels, batch 1;
* ``models_keras``: the K + K Keras fold models, each wrapped in one ``tf.function``, batch 1.

The target is a pipeline no slower than 1.2x the first sum (the preprocessing adds resizes
and slicing, no model work). Every timing is the median of ``--repeats`` calls after warm-up,
the four measurements interleaved call by call so that they share the machine's load.

Usage::

    python benchmarks/bench_export.py --root runs/phantom-cpu          # a trained experiment
    python benchmarks/bench_export.py                                  # trains a tiny one first
    python benchmarks/bench_export.py --root runs/phantom-cpu --json results/export.json

This is a script, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)


def _interleaved_medians(functions: dict, repeats: int, warmup: int = 3) -> dict:
    """Median seconds per call of each function, the calls interleaved round by round.

    Interleaving exposes every function to the same background load, so on a shared
    machine their ratio is steadier than that of back-to-back measurements.
    """
    for _ in range(warmup):
        for function in functions.values():
            function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def _tiny_experiment(workdir: str) -> str:
    from tf_bimodal.config import DataConfig, PhantomConfig, RuntimeConfig, SplitConfig, resolve_experiment
    from tf_bimodal.experiments.protocol import run_protocol

    data = DataConfig(source="phantom", image_size=64, data_dir=os.path.join(workdir, "tfds"),
                      phantom=PhantomConfig(num_benign_patients=4, num_malignant_patients=4,
                                            min_pairs_per_patient=2, max_pairs_per_patient=3, seed=8))
    experiment = resolve_experiment("quick", runtime=RuntimeConfig(tensorboard=False))
    result = run_protocol("mff", data, SplitConfig(num_folds=2), experiment, os.path.join(workdir, "runs"))
    return result["experiment_dir"]


def benchmark(root: str, export_dir: str, repeats: int = 30, image_size: int | None = None,
              reuse_export: bool = False) -> dict:
    import numpy as np
    import tensorflow as tf

    from tf_bimodal.export import export_experiment, find_classifier, find_segmenter, load_fold_models

    started = time.time()
    record_path = os.path.join(export_dir, "export.json")
    if reuse_export and os.path.isfile(record_path):
        with open(record_path) as handle:
            record = json.load(handle)
        export_seconds = record.get("seconds")
    else:
        record = export_experiment(root, export_dir)
        export_seconds = time.time() - started
    size = image_size or record["segmenter"]["data_size"]
    model_size = record["segmenter"]["model_size"]
    input_size = record["classifier"]["input_size"]
    rng = np.random.default_rng(0)
    bmode = tf.constant(rng.integers(0, 256, (size, size), dtype=np.uint8))
    semode = tf.constant(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    model_bmode = tf.constant(rng.integers(0, 256, (1, model_size, model_size, 1), dtype=np.uint8))
    model_semode = tf.constant(rng.integers(0, 256, (1, model_size, model_size, 3), dtype=np.uint8))
    crops = {"bmode": tf.constant(rng.random((1, input_size, input_size, 1), dtype=np.float32)),
             "semode": tf.constant(rng.random((1, input_size, input_size, 3), dtype=np.float32)),
             "availability": tf.ones([1, 2])}

    cad = tf.saved_model.load(os.path.join(export_dir, "cad_pipeline")).signatures["serving_default"]
    segmenter = tf.saved_model.load(os.path.join(export_dir, "segmenter")).signatures["serving_default"]
    classifier = tf.saved_model.load(os.path.join(export_dir, "classifier")).signatures["serving_default"]
    classifier_inputs = {key: crops[key] for key in record["classifier"]["inputs"]}
    seg_models = load_fold_models(find_segmenter(root).model_paths)
    cls_models = load_fold_models(find_classifier(root).model_paths)
    seg_feed = {key: tf.cast(value, tf.float32) / 255.0 for key, value in
                (("bmode", model_bmode), ("semode", model_semode)) if key in record["segmenter"]["inputs"]}
    seg_calls = [tf.function(lambda x, m=m: m(x, training=False)) for m in seg_models]
    cls_calls = [tf.function(lambda x, m=m: m(x, training=False)["decision"]) for m in cls_models]

    def keras_forward():
        for call in seg_calls:
            call(seg_feed).numpy()
        for call in cls_calls:
            call(classifier_inputs).numpy()

    medians = _interleaved_medians({
        "cad": lambda: cad(bmode=bmode, semode=semode)["p_malignant"].numpy(),
        "segmenter": lambda: segmenter(bmode=model_bmode, semode=model_semode)["mask"].numpy(),
        "classifier": lambda: classifier(**classifier_inputs)["p_malignant"].numpy(),
        "keras": keras_forward,
    }, repeats)
    cad_seconds, segmenter_seconds = medians["cad"], medians["segmenter"]
    classifier_seconds, keras_seconds = medians["classifier"], medians["keras"]
    models_seconds = segmenter_seconds + classifier_seconds
    return {
        "experiment": os.path.abspath(root),
        "synthetic": record["synthetic"],
        "image_size": size,
        "model_size": model_size,
        "classifier_input_size": input_size,
        "folds": {"segmenter": len(record["segmenter"]["folds"]), "classifier": len(record["classifier"]["folds"])},
        "repeats": repeats,
        "export_seconds": None if export_seconds is None else round(export_seconds, 1),
        "ms_per_pair": {
            "cad_pipeline": round(1e3 * cad_seconds, 2),
            "segmenter_savedmodel": round(1e3 * segmenter_seconds, 2),
            "classifier_savedmodel": round(1e3 * classifier_seconds, 2),
            "models_savedmodel": round(1e3 * models_seconds, 2),
            "models_keras": round(1e3 * keras_seconds, 2),
        },
        "ratio_to_models_savedmodel": round(cad_seconds / models_seconds, 3),
        "ratio_to_models_keras": round(cad_seconds / keras_seconds, 3),
        "target_ratio": 1.2,
        "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                    "cpus": os.cpu_count()},
        "load_average_1min": round(os.getloadavg()[0], 2),
        "versions": record["versions"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=None, help="a trained experiment (default: train a tiny one first)")
    parser.add_argument("--export-dir", default=None, help="where to export (default: a temporary folder)")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per measurement")
    parser.add_argument("--image-size", type=int, default=None, help="side of the served pair (default: data size)")
    parser.add_argument("--reuse-export", action="store_true",
                        help="time the export already in --export-dir instead of exporting again")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        root = args.root or _tiny_experiment(workdir)
        export_dir = args.export_dir or os.path.join(workdir, "export")
        results = benchmark(root, export_dir, repeats=args.repeats, image_size=args.image_size,
                            reuse_export=args.reuse_export)
    print(json.dumps(results, indent=2))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
