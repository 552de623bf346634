"""EmbraceNet's three rules at inference on the same trained MFF models (paper §3.3.1).

The rule at inference (``ClassificationConfig.embracenet_inference``, see
``tf_bimodal.layers.embracenet``) does not change training, which always draws. This script
trains the MFF once per fold (``run_classification``, the fold models saved) and then scores
every fold model under each rule:

* ``sample``: one fresh multinomial draw per call (the reference implementation), the Youden
  threshold chosen on one draw of the validation predictions and applied to another draw of
  the test predictions, as a run with this rule does; repeated ``--repeats`` times with
  different draws to show how much the outcome moves with the draw alone;
* ``expected``: the expected embracement, one deterministic pass;
* ``mc``: the decision network's probabilities averaged over K seeded draws.

Per rule and fold: image-wise accuracy at the fold's Youden threshold, AUC, Brier score and
the expected calibration error (ECE, 10 equal-width bins of the malignancy probability), and
patient-wise accuracy (majority vote, a tie to malignant); mean ± SD (population) over folds.

Usage (about 10 minutes on 2 shared CPU cores)::

    nice -n 10 python benchmarks/bench_embracenet_inference.py --output /tmp/embracenet_bench

Options set the preset (``cpu``), the crop (``manual``: the phantom's ground-truth masks, so no
segmenter has to run first), K and the epochs; ``--json`` writes the numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

RULES = ("sample", "expected", "mc")
ECE_BINS = 10


def calibration(labels, probabilities, bins: int = ECE_BINS) -> dict:
    """Brier score and expected calibration error of malignancy probabilities."""
    import numpy as np

    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    brier = float(np.mean((probabilities - labels) ** 2))
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for index in range(bins):
        chosen = which == index
        if chosen.any():
            ece += chosen.mean() * abs(probabilities[chosen].mean() - labels[chosen].mean())
    return {"brier": brier, "ece": float(ece)}


def score(labels, val_labels, val_probabilities, test_probabilities, patient_ids) -> dict:
    """One fold's numbers under one rule (threshold on validation, metrics on test)."""
    from tf_bimodal.evaluation.classification import evaluate_predictions, youden_threshold

    threshold = youden_threshold(val_labels, val_probabilities)["threshold"]
    metrics = evaluate_predictions(labels, test_probabilities, patient_ids, threshold)
    return {
        "accuracy": metrics["image"]["accuracy"],
        "auc": metrics["image"]["auc"],
        "patient_accuracy": metrics["patient"]["accuracy"],
        "threshold": float(threshold),
        **calibration(labels, test_probabilities),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="/tmp/embracenet_inference_bench")
    parser.add_argument("--preset", default="cpu", choices=("cpu", "quick"))
    parser.add_argument("--crop", default="manual")
    parser.add_argument("--epochs", type=int, default=None, help="classification epochs (default: the preset's)")
    parser.add_argument("--mc-samples", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5, help="independent 'sample' evaluations per fold")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from tf_bimodal.config import CropConfig, DataConfig, SplitConfig, crop_masks, crop_shape, resolve_experiment
    from tf_bimodal.data import inputs
    from tf_bimodal.data.cropping import scaled_margin
    from tf_bimodal.experiments.classification import run_classification, usable_images
    from tf_bimodal.experiments.experiment_data import resolve_data
    from tf_bimodal.layers.embracenet import EmbraceNet
    from tf_bimodal.models.classification.factory import model_input_keys
    from tf_bimodal.training.classification import predict_probabilities

    started = time.time()
    base = resolve_experiment(args.preset)
    changes = dict(embracenet_inference="mc", embracenet_mc_samples=args.mc_samples)
    if args.epochs:
        changes["epochs"] = args.epochs
    experiment = dataclasses.replace(base, classification=dataclasses.replace(base.classification, **changes))
    data, split = DataConfig(), SplitConfig(scheme="paper", num_folds=5)
    summary = run_classification("mff", data, split, experiment, args.output, crop=args.crop)
    train_seconds = time.time() - started

    experiment_data = resolve_data(data, split, args.output)
    arrays, _ = inputs.apply_crop_masks(experiment_data.arrays, crop_masks(args.crop), None)
    usable, _ = usable_images(arrays, "mff")
    usable_ids = set(arrays["image_id"][usable].tolist())
    shape = crop_shape(args.crop)
    crop_config = None if shape is None else CropConfig(margin=scaled_margin(data.image_size), shape=shape)
    config = experiment.classification
    keys = model_input_keys("mff")
    run_folder = os.path.join(args.output, summary.get("run", "mff_crop_manual"))
    results = {rule: [] for rule in RULES}
    sample_spread = []
    for split_record in experiment_data.splits:
        fold = split_record["fold"]
        model = keras.saving.load_model(os.path.join(run_folder, f"fold_{fold}", "model.keras"))
        layer = next(layer for layer in model.layers if isinstance(layer, EmbraceNet))

        def predict(part, fold_record=split_record, fold_model=model):
            ids = [i for i in fold_record[part] if i in usable_ids]
            ds = inputs.classification_dataset(arrays, ids, keys, config.input_size, crop_config, with_metadata=True)
            return predict_probabilities(fold_model, ds)

        for rule in RULES:
            layer.inference = rule
            repeats = args.repeats if rule == "sample" else 1
            fold_scores = []
            for _ in range(repeats):
                val, test = predict("val"), predict("test")
                fold_scores.append(score(test["label"], val["label"], val["probability"], test["probability"],
                                         test["patient_id"]))
            results[rule].append(fold_scores[0])
            if rule == "sample":
                sample_spread.append(float(np.std([s["accuracy"] for s in fold_scores])))
            if rule == "mc":  # the same call twice gives the same numbers
                again = predict("test")["probability"]
                assert np.array_equal(again, predict("test")["probability"])
        print(f"fold {fold}: " + "; ".join(
            f"{rule} acc {results[rule][-1]['accuracy']:.3f} auc {results[rule][-1]['auc']:.3f}" for rule in RULES),
            flush=True)

    table = {}
    for rule in RULES:
        table[rule] = {}
        for metric in ("accuracy", "auc", "patient_accuracy", "brier", "ece"):
            values = [r[metric] for r in results[rule]]
            table[rule][metric] = {"mean": float(np.nanmean(values)), "sd": float(np.nanstd(values)), "values": values}
    print(f"\nMFF, preset {args.preset} (epochs {config.epochs}), crop {args.crop}, 5 folds; K = {args.mc_samples}; "
          f"training {train_seconds:.0f} s, total {time.time() - started:.0f} s")
    print("| rule | accuracy (%) | AUC (%) | patient accuracy (%) | Brier | ECE |")
    print("|---|---|---|---|---|---|")
    for rule in RULES:
        row = table[rule]
        print(f"| {rule} | " + " | ".join(
            f"{100 * row[m]['mean']:.1f} ± {100 * row[m]['sd']:.1f}" for m in ("accuracy", "auc", "patient_accuracy"))
            + " | " + " | ".join(f"{row[m]['mean']:.3f} ± {row[m]['sd']:.3f}" for m in ("brier", "ece")) + " |")
    print(f"'sample': SD of the test accuracy over {args.repeats} draws of the same fold model, mean over folds: "
          f"{100 * float(np.mean(sample_spread)):.1f} points")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"table": table, "sample_accuracy_sd_over_draws": sample_spread, "args": vars(args),
                       "seconds": time.time() - started}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
