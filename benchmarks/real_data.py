"""Accuracy and time of the CPU preset on real breast ultrasound (BUSI or BUS-BRA), five leak-free folds.

Runs, one after the other and each timed from the first to the last fold:

* ``unet_bmode``: the B-mode U-Net of Table 1 (§4.1.1). Reported: Dice (and IoU, precision,
  recall) on the test images *with a lesion*, mean ± SD over the folds; the share of
  lesion-free (``normal``) test images whose predicted mask is empty; the score over all test
  images as the package reports it (a lesion-free image scores 1 when predicted empty); the
  fold union where the split scheme defines one.
* ``vgg16_bmode`` with ``crop="manual"``: the B-mode VGG-16 of Table 2 on benign vs
  malignant crops around the ground-truth masks (§3.1). Reported: AUC, accuracy, sensitivity
  and specificity, mean ± SD over the folds (per image: BUSI has no patient ids). With
  ``--classifier linear`` it is the linear read-out of frozen pre-trained features
  (``tf_bimodal.config.LINEAR_READOUT``) instead of the preset's VGG-16.

BUSI has near-duplicate images and no patient ids; the data set groups near-duplicates into
pseudo-patients (:mod:`tf_bimodal.data.duplicates`), so a split never puts one scan on both
sides. The default split is the rotating five-fold scheme (``--split kfold``: every image is
tested once), each fold validating on 12.5 % of its non-test pseudo-patients (70/10/20 %).
``--split paper`` holds one test set out and reports the fold union as well.

BUS-BRA (``--data busbra``) has patient ids and its own patient-grouped five folds; its default
split is ``--split official`` (those folds as test sets, validation drawn patient-grouped inside
each fold's training part, ``--val-fraction`` of its patients). It has no lesion-free images.

Usage (about 40 minutes on 2 CPU cores)::

    python benchmarks/real_data.py --manual-dir ../shared/data/busi_dev
    python benchmarks/real_data.py --manual-dir /data/BUSI --models unet_bmode --split paper
    python benchmarks/real_data.py --models vgg16_bmode --classifier linear --json busi_dev_linear.json
    python benchmarks/real_data.py --data busbra --models vgg16_bmode --classifier linear

Writes the key numbers, the settings, the machine and the wall times to ``--json``
(default ``benchmarks/results/busi_dev.json`` or ``busbra_dev.json``); the runs themselves (reports, summaries,
logs) stay under ``--output``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

MODELS = ("unet_bmode", "vgg16_bmode")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


DATA_KEYS = ("dataset", "dataset_version", "num_images", "num_patients", "benign", "malignant", "normal",
             "busi_duplicates", "devices", "birads")
"""What of the data summary (``workflow.describe_data``) the record keeps."""


def _mean_sd(entry, per_fold=None) -> dict | None:
    if not entry:
        return None
    return {"mean": entry["mean"], "sd": entry["sd"], "per_fold": per_fold}


def _fold_values(summary: dict, part: str, metric: str) -> list | None:
    values = [(fold.get(part) or {}).get(metric) for fold in summary.get("folds", [])]
    return values if values and all(v is not None for v in values) else None


def segmentation_numbers(summary: dict) -> dict:
    lesion = summary.get("lesion_images") or {}
    return {
        **{f"lesion_{name}": _mean_sd(lesion.get(name), _fold_values(summary, "test_lesion", name))
           for name in ("dice", "iou", "precision", "recall")},
        "lesion_images_missed": (summary.get("lesion_images_missed") or {}).get("missed_share"),
        "lesion_images_predicted_empty": (summary.get("lesion_images_missed") or {}).get("empty_share"),
        "normal_images_predicted_empty": (summary.get("normal_images") or {}).get("empty_share"),
        "all_images_dice": _mean_sd(summary.get("dice"), _fold_values(summary, "test", "dice")),
        "fold_union": summary.get("fold_union"),
        "fold_union_reason": summary.get("fold_union_reason"),
        "best_epochs": [fold.get("best_epoch") for fold in summary.get("folds", [])],
        "encoder_weights": (summary.get("folds") or [{}])[0].get("encoder_weights"),
    }


def classification_numbers(summary: dict) -> dict:
    wanted = ("auc", "accuracy", "sensitivity", "specificity")
    numbers = {}
    for level in ("image_wise", "patient_wise"):
        metrics = summary.get(level) or {}
        numbers[level] = {name: _mean_sd(metrics.get(name), _fold_values(summary, level, name))
                          for name in wanted if isinstance(metrics.get(name), dict)}
    numbers["backbone_weights"] = summary.get("backbone_weights")
    numbers["best_epochs"] = [fold.get("best_epoch") for fold in summary.get("folds", [])]
    return numbers


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="busi", choices=("busi", "busbra"),
                        help="the real B-mode set: BUSI (default) or BUS-BRA in its release layout")
    parser.add_argument("--manual-dir", default=None,
                        help="the data set's folder (default: ../shared/data/busi_dev or busbra_dev)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--split", default=None, choices=("kfold", "paper", "official"),
                        help="official: BUS-BRA's own patient-grouped test folds (default for --data busbra)")
    parser.add_argument("--val-fraction", type=float, default=0.125,
                        help="kfold, official: share of the non-test patients each fold validates on "
                             "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(REPO_ROOT, "runs", "real_data"))
    parser.add_argument("--data-dir", default=None, help="TFDS data dir (default: TFDS's)")
    parser.add_argument("--json", default=None,
                        help="the results file (default: benchmarks/results/busi_dev.json or busbra_dev.json)")
    parser.add_argument("--classifier", default="trained", choices=("trained", "linear"),
                        help="the VGG-16: the preset's, trained (default), or the linear read-out of frozen "
                             "pre-trained features (tf_bimodal.config.LINEAR_READOUT)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="change one setting of the preset, as run_experiments.py --set does (repeatable)")
    args = parser.parse_args(argv)
    folder = {"busi": "busi_dev", "busbra": "busbra_dev"}[args.data]
    args.manual_dir = args.manual_dir or os.path.join(REPO_ROOT, "..", "shared", "data", folder)
    args.split = args.split or ("official" if args.data == "busbra" else "kfold")
    args.json = args.json or os.path.join(REPO_ROOT, "benchmarks", "results", f"{folder}.json")

    from tf_bimodal import workflow
    from tf_bimodal.config import LINEAR_READOUT, DataConfig, RuntimeConfig, SplitConfig, to_dict
    from tf_bimodal.experiments.protocol import experiment_dir

    data = DataConfig(source=args.data, manual_dir=os.path.abspath(args.manual_dir), data_dir=args.data_dir)
    split = SplitConfig(scheme=args.split, seed=args.seed,
                        val_fraction=None if args.split == "paper" else args.val_fraction)
    experiment = workflow.resolve(args.preset, RuntimeConfig(tensorboard=False), args.overrides)
    if args.classifier == "linear":
        experiment = dataclasses.replace(
            experiment, classification=dataclasses.replace(experiment.classification, **LINEAR_READOUT)
        )
    started = datetime.datetime.now(datetime.timezone.utc)
    record = {
        "date": started.strftime("%Y-%m-%d"),
        "command": "python benchmarks/real_data.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "manual_dir": data.manual_dir,
        "preset": args.preset,
        "classifier": args.classifier,
        "split": to_dict(split),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "load_average_at_start": os.getloadavg()[0]},
        "segmentation_config": to_dict(experiment.segmentation),
        "classification_config": to_dict(experiment.classification),
        "models": {},
    }
    summary = workflow.describe_data(data, split, args.output)
    record["data"] = {key: summary[key] for key in DATA_KEYS if key in summary}
    for model in args.models:
        crop = "manual"
        began = time.perf_counter()
        workflow.run(model=model, data=data, split=split, preset=experiment, crop=crop, output=args.output,
                     command=record["command"])
        seconds = time.perf_counter() - began
        root = experiment_dir(args.output, data, experiment.name)
        run_summary = _latest_summary(root, model)
        numbers = segmentation_numbers(run_summary) if model == "unet_bmode" else classification_numbers(run_summary)
        record["models"][model] = {"wall_seconds": round(seconds, 1), "crop": None if model == "unet_bmode" else crop,
                                   "summary": run_summary.get("_path"), **numbers}
        print(json.dumps({model: record["models"][model]}, indent=2, default=str))
    record["machine"]["load_average_at_end"] = os.getloadavg()[0]
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as handle:
        json.dump(record, handle, indent=2, default=str)
    print(f"wrote {args.json}")
    return record


def _latest_summary(root: str, model: str) -> dict:
    """The newest ``summary.json`` under ``root`` whose run is ``model``."""
    found = []
    for folder, _, files in os.walk(root):
        if "summary.json" in files:
            path = os.path.join(folder, "summary.json")
            with open(path) as handle:
                summary = json.load(handle)
            if summary.get("model") == model:
                found.append((os.path.getmtime(path), path, summary))
    if not found:
        raise FileNotFoundError(f"no summary.json of {model} under {root}")
    _, path, summary = max(found)
    summary["_path"] = os.path.relpath(path, REPO_ROOT)
    return summary


if __name__ == "__main__":
    main()
