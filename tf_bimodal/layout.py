"""The layout of the results folder: every file and folder name an experiment writes.

One place for what the experiments write and the exporter (and the report, the benchmarks,
the notebooks) read, as nnU-Net keeps its run layout in one ``paths`` module::

    <output>/                                   DEFAULT_OUTPUT ("runs")
      data/<dataset>/summary.json               the data summary (run_experiments.py alone)
      data/<dataset>/splits.json                the patient-level folds, made once
      data/<dataset>/examples.png
      <dataset>-<preset>/                       one experiment (experiment_dir)
        protocol.json                           the steps run so far, with their settings
        report.md, fig5_segmentation.png, fig6_roc.png
        data/<dataset>/splits.json              the folds every model of the experiment uses
        <run>/                                  one cross-validated model (run_dir)
          run.json                              the settings' cache key
          summary.json                          mean ± SD over folds, timing, provenance
          log.txt                               the run's progress lines
          predicted_masks.npz                   segmenters: a mask per image (for the crops)
          roc.png                               classifiers: test ROC per fold
          fold_<k>/                             one fold (fold_dir)
            metrics.json                        written last: marks the fold finished
            model.keras, history.csv, config.json
            predictions.npz (segmenters) or predictions.csv (classifiers)
        grid_search/                            the grid search of §3.4

A classification run is named after its model for W-MM-U-Net crops, else
``<model>_crop_<crop>`` (:func:`classification_run_name`); a method of Table 3 (§4.2.2) runs in
``table3_<method>`` (:func:`table3_run_name`).

At the bottom of the package: it imports nothing of it.
"""

from __future__ import annotations

import os
import re

DEFAULT_OUTPUT = "runs"
"""The results folder when none is given."""

DATA_FOLDER = "data"
PROTOCOL_FILE = "protocol.json"
REPORT_FILE = "report.md"
RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
SPLITS_FILE = "splits.json"
EXAMPLES_FIGURE = "examples.png"
LOG_FILE = "log.txt"
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
FOLD_CONFIG_FILE = "config.json"
PREDICTED_MASKS_FILE = "predicted_masks.npz"
"""A segmenter's mask for every image of the data set (``fold union``), for cropping (§3.1)."""
FOLD_MASKS_FILE = "predictions.npz"
"""One fold segmenter's binary mask of every image, bit-packed."""
FOLD_PREDICTIONS_FILE = "predictions.csv"
"""One fold classifier's validation and test probabilities, a row per image."""
ROC_FIGURE = "roc.png"
GRID_SEARCH_FOLDER = "grid_search"
WORKERS_FOLDER = "_workers"

CROP_SEGMENTER = "w_mm_unet"
"""The segmenter whose masks crop the classifiers' inputs (``--crop predicted``, §4.1.2)."""

FOLD_PATTERN = re.compile(r"^fold_(\d+)$")


def experiment_name(dataset_name: str, preset: str) -> str:
    """``<dataset>-<preset>``: one data set under one preset."""
    return f"{dataset_name}-{preset}"


def experiment_dir(output: str, dataset_name: str, preset: str) -> str:
    """The folder of one experiment, ``<output>/<dataset>-<preset>``."""
    return os.path.join(output, experiment_name(dataset_name, preset))


def preset_of_experiment(root: str) -> str | None:
    """The preset named by an experiment folder ``<dataset>-<preset>``, or None."""
    name = os.path.basename(os.path.normpath(root))
    return name.rsplit("-", 1)[-1] if "-" in name else None


def dataset_of_experiment(root: str) -> str:
    """The data set named by an experiment folder ``<dataset>-<preset>``."""
    return os.path.basename(os.path.normpath(root)).rsplit("-", 1)[0]


def is_experiment_folder(folder: str) -> bool:
    """Whether ``folder`` is an experiment (``<dataset>-<preset>`` holding its ``protocol.json``
    or its folds under ``data/``)."""
    name = os.path.basename(os.path.normpath(folder))
    holds = os.path.isfile(os.path.join(folder, PROTOCOL_FILE)) or os.path.isdir(os.path.join(folder, DATA_FOLDER))
    return "-" in name and not name.startswith(".") and holds


def experiment_folders(output: str) -> list[str]:
    """The experiment folders directly under the results folder ``output``, sorted."""
    if not os.path.isdir(output):
        return []
    return [path for path in (os.path.join(output, name) for name in sorted(os.listdir(output)))
            if is_experiment_folder(path)]


def data_folder(output: str, dataset_name: str) -> str:
    """Where the data summary and the splits of ``dataset_name`` live under ``output``."""
    return os.path.join(output, DATA_FOLDER, dataset_name)


def splits_path(output: str, dataset_name: str) -> str:
    """The patient-level folds shared by every run under ``output``."""
    return os.path.join(data_folder(output, dataset_name), SPLITS_FILE)


def run_dir(root: str, run: str) -> str:
    """The folder of one cross-validated model of an experiment."""
    return os.path.join(root, run)


def fold_dir(run_folder: str, fold: int) -> str:
    """``<run>/fold_<k>``."""
    return os.path.join(run_folder, f"fold_{fold}")


def classification_run_name(model: str, crop: str) -> str:
    """The folder name of a classification run: the model for W-MM-U-Net crops, else
    ``<model>_crop_<crop>``."""
    return model if crop == "predicted" else f"{model}_crop_{crop}"


TABLE3_RUN_PREFIX = "table3_"
"""The folder of a Table 3 method's run is this prefix and the method's name (``table3_yap``)."""


def table3_run_name(method: str) -> str:
    """The folder name of a Table 3 method's run, ``table3_<method>`` (§4.2.2); its inputs
    (full images or crops) are a setting of the run, recorded in its summary."""
    return f"{TABLE3_RUN_PREFIX}{method}"


def split_run_name(run: str, crops=("predicted", "manual", "none", "predicted_mask_shape", "manual_mask_shape")
                   ) -> tuple[str, str]:
    """``(model, crop)`` of a classification run name (:func:`classification_run_name`'s inverse)."""
    model, separator, crop = run.partition("_crop_")
    if separator and crop in crops:
        return model, crop
    return run, "predicted"


def predicted_masks_path(root: str, segmenter: str = CROP_SEGMENTER) -> str:
    """Where ``--crop predicted`` reads the segmenter's masks in the experiment ``root``."""
    return os.path.join(root, segmenter, PREDICTED_MASKS_FILE)


def fold_models(run_folder: str) -> dict[int, str]:
    """``{k: path}`` of the ``fold_<k>/model.keras`` files under ``run_folder``."""
    found = {}
    for name in os.listdir(run_folder):
        match = FOLD_PATTERN.match(name)
        path = os.path.join(run_folder, name, MODEL_FILE)
        if match and os.path.isfile(path):
            found[int(match.group(1))] = path
    return found
