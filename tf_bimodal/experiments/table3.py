"""Table 3: the six earlier methods on the experiment's folds (paper §4.2.2).

``run_table3_method(method, data, split, experiment, output)`` cross-validates one method of
``TABLE3_METHODS`` (Yap, Fujioka, Zhang, Kumar, Wang, Misra 2021) through the one driver
(:mod:`tf_bimodal.experiments.cross_validation`) on the same patient-level folds as every model
of the experiment, and writes into ``<output>/table3_<method>/``
(:func:`tf_bimodal.layout.table3_run_name`)::

    summary.json                 patient-wise mean ± SD over folds (main numbers), image-wise too,
                                 thresholds, backbone weights, the inputs, each fold's fit record
    roc.png                      test ROC curve of every fold
    log.txt                      the run's progress lines
    fold_<k>/metrics.json        that fold's image- and patient-wise test metrics (written last)
    fold_<k>/predictions.csv     validation and test probabilities per image
    fold_<k>/config.json         the fold's settings and its fit record
    fold_<k>/...                 what the method saves (its networks, its SVMs)

:func:`run_table3` runs every method of ``Table3Config.methods``. The protocol is Table 2's
(§4.2.2: "the same full breast US images", two-tailed paired t-tests against MFF): each method
is fitted on the fold's training images (selecting on its validation images as it does), the
decision threshold is the Youden index on the validation images (§3.3.1), the test images are
classified and voted per patient, a tie going to malignant (§4.2). Only benign and malignant
images take part; a method that reads SE-mode images uses the images that have one.

Inputs (``Table3Config.inputs``): ``full`` (the default: §4.2.2 says the methods were run "on the
same full breast US images") resizes the whole B-mode and SE-mode images to the method's input
side; ``crop`` gives the methods the crops MFF reads in the experiment: rectangles around the
W-MM-U-Net masks (``<output>/w_mm_unet/predicted_masks.npz``, the same fold-union masks) plus the
paper's margin (50 px at 336 px, scaled; :func:`tf_bimodal.data.cropping.scaled_margin`). The
images come from the experiment's arrays, read once per request; each method's inputs are
made once per run, float32 in [0, 1], B-mode (N, S, S, 1) and SE-mode (N, S, S, 3).

The methods are reached only through their contract (``tf_bimodal.training.table3``:
``build_method``, ``method_input_size``, ``method_modalities``, ``check_weights``), imported
when a run starts; ``method_factory`` puts any object with those four functions in its place.
Required ImageNet weights are checked for every requested method before anything trains
(:func:`check_table3_weights`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Sequence

import numpy as np

from tf_bimodal import layout
from tf_bimodal.config import (
    TABLE3_METHODS,
    TABLE3_ROWS,
    CropConfig,
    DataConfig,
    ExperimentConfig,
    SplitConfig,
    Table3Config,
    to_dict,
)
from tf_bimodal.data import inputs, pipeline
from tf_bimodal.data.cropping import MARGIN_RULE, scaled_margin
from tf_bimodal.evaluation.classification import METRIC_NAMES, evaluate_predictions, summarize_folds, youden_threshold
from tf_bimodal.evaluation.figures import save_roc_figure
from tf_bimodal.evaluation.predictions import read_test_predictions, write_predictions
from tf_bimodal.experiments.classification import masks_fingerprint, summarize_weight_records
from tf_bimodal.experiments.cross_validation import Fold, FoldTask, cross_validate, experiment_runtime, run_cache_key
from tf_bimodal.experiments.experiment_data import ExperimentData, experiment_data
from tf_bimodal.io import write_json
from tf_bimodal.schema import SYNTHETIC_NOTICE
from tf_bimodal.training import runtime as runtime_lib
from tf_bimodal.training.tensorboard import write_fold_summary

logger = logging.getLogger(__name__)

__all__ = ["Table3Task", "Table3WeightsMissing", "check_table3_weights", "method_factory_or_default",
           "method_images", "preset_notice", "run_table3", "run_table3_method", "usable_images"]

NETWORKS = {row.model: row.network for row in TABLE3_ROWS}
"""Each method's row title in Table 3 (``Yap et al.``, ...)."""

INPUTS_RULE = {
    "full": "the full images resized to the method's input side (§4.2.2: \"the same full breast US images\")",
    "crop": "the crops MFF reads: rectangles around the W-MM-U-Net masks plus the margin, resized to the "
            "method's input side (§3.1)",
}


class Table3WeightsMissing(ValueError):
    """Required ImageNet weights of Table 3 methods are missing: one line naming each method,
    the file looked for and ``--set table3.backbone_weights=none``."""


def method_factory_or_default(method_factory=None):
    """``method_factory``, or the methods' own package ``tf_bimodal.training.table3`` (imported
    now, so that nothing of it loads before a Table 3 run is asked for)."""
    if method_factory is not None:
        return method_factory
    from tf_bimodal.training import table3

    return table3


def check_table3_weights(config: Table3Config, method_factory=None) -> None:
    """Stop before anything trains when a requested method needs ImageNet weights that are
    missing (the weights policy of MFF's VGG-16: never train from random weights silently).
    Each missing method is logged on its own line; nothing is downloaded.

    Raises:
        Table3WeightsMissing: a ``ValueError``, its message one line with every method's line.
    """
    lines = list(method_factory_or_default(method_factory).check_weights(config))
    if not lines:
        return
    for line in lines:
        logger.error(line)
    raise Table3WeightsMissing(f"Table 3: {len(lines)} method(s) lack their ImageNet weights: " + "; ".join(lines))


def usable_images(arrays: dict, modalities: Sequence[str]) -> tuple[np.ndarray, dict]:
    """Boolean mask of the images a method reading ``modalities`` can use, and the counts left out."""
    binary = np.isin(arrays["label"], inputs.BINARY_CLASSES)
    usable = binary.copy()
    excluded = {"normal (no lesion; not part of benign vs malignant)": int(np.sum(~binary))}
    if "semode" in modalities:
        usable &= arrays["has_semode"]
        excluded["without SE-mode (this method reads SE-mode)"] = int(np.sum(binary & ~arrays["has_semode"]))
    return usable, excluded


def method_images(arrays: dict, image_ids, modalities: Sequence[str], size: int,
                  crop_config: CropConfig | None) -> dict:
    """The methods' inputs of ``image_ids``: ``{modality: float32 (N, size, size, C) in [0, 1],
    "label", "image_id", "patient_id"}``, through the classifiers' pipeline (the crop, or a plain
    resize; :func:`tf_bimodal.data.inputs.classification_dataset`), in the arrays' order."""
    dataset = inputs.classification_dataset(arrays, list(image_ids), tuple(modalities), size, crop_config,
                                            with_metadata=True)
    columns = {}
    for batch, _ in dataset.as_numpy_iterator():
        for key, values in batch.items():
            columns.setdefault(key, []).append(values)
    images = {key: np.concatenate(values) for key, values in columns.items()}
    for key in ("image_id", "patient_id"):
        images[key] = np.array([value.decode() if isinstance(value, bytes) else str(value) for value in images[key]])
    images["label"] = images["label"].astype(np.int64)
    return images


def preset_notice(config: Table3Config, preset: str) -> str | None:
    """A warning line for settings far from the originals' (narrower networks, other sizes, no
    ImageNet weights), as the ``cpu`` and ``quick`` presets are; None for the originals'."""
    if (config.width, config.input_size, config.backbone_weights) == (1.0, None, "imagenet"):
        return None
    return (f"{preset.upper()} PRESET: Table 3's networks at width {config.width:g}, "
            f"{config.input_size or 'the originals'} px inputs, at most {config.epochs} epochs, backbone weights "
            f"{config.backbone_weights!r}: not the originals' setting (full width, their sizes, ImageNet weights)")


def _percent(stat: dict) -> str:
    if stat["mean"] is None or math.isnan(stat["mean"]):
        return "n/a"
    return f"{100 * stat['mean']:.2f} ± {100 * stat['sd']:.2f} %"


class Table3Task(FoldTask):
    """One method of Table 3 on every fold: fit, Youden threshold on validation, classify the
    test images and vote per patient (§4.2.2, the protocol of Table 2)."""

    def __init__(self, method: str, config: Table3Config, factory, data: ExperimentData, arrays: dict,
                 usable_ids: set, crop_config: CropConfig | None, inputs_record: dict, excluded: dict,
                 run_folder: str, preset: str, runtime=None):
        self.method, self.config, self.factory = method, config, factory
        self.run_name = layout.table3_run_name(method)
        self.seed = config.seed
        self.modalities = tuple(factory.method_modalities(method))
        self.input_size = int(factory.method_input_size(method, config))
        self.data, self.arrays, self.usable_ids = data, arrays, usable_ids
        self.crop_config, self.inputs_record, self.excluded = crop_config, inputs_record, excluded
        self.run_folder, self.preset, self.runtime = run_folder, preset, runtime
        self.roc_curves = {}
        self._images, self._position = None, {}

    @property
    def images(self) -> dict:
        """Every usable image at the method's input side, made on the first fold that trains."""
        if self._images is None:
            ids = [i for i in self.arrays["image_id"] if i in self.usable_ids]
            self._images = method_images(self.arrays, ids, self.modalities, self.input_size, self.crop_config)
            self._position = {image_id: i for i, image_id in enumerate(self._images["image_id"])}
        return self._images

    def part(self, image_ids) -> dict:
        """The inputs of ``image_ids`` (one part of a fold), as the methods take them."""
        images = self.images
        rows = np.array([self._position[i] for i in image_ids if i in self._position], np.int64)
        return {key: values[rows] for key, values in images.items()}

    def reuse_fold(self, fold: Fold, result: dict) -> bool:
        path = os.path.join(fold.folder, layout.FOLD_PREDICTIONS_FILE)
        if not os.path.isfile(path):
            return False
        self.roc_curves[f"fold {fold.fold}"] = tuple(read_test_predictions(path).values())
        return True

    def train_fold(self, fold: Fold) -> dict:
        parts = {name: self.part(ids) for name, ids in fold.parts.items()}
        if not all(len(part["label"]) for part in parts.values()):
            raise ValueError(f"{self.run_name} fold {fold.fold}: after exclusions it has "
                             + ", ".join(f"{len(p['label'])} {name}" for name, p in parts.items())
                             + " images; every part needs at least one")
        logger.info(f"{fold.label}: train {len(parts['train']['label'])}, val {len(parts['val']['label'])}, "
                    f"test {len(parts['test']['label'])} images, {'+'.join(self.modalities)} at "
                    f"{self.input_size} px ({self.config.inputs})")
        method = self.factory.build_method(self.method, self.config, fold.seed)
        fit = method.fit(parts["train"], parts["val"], fold.folder, label=fold.label)
        predictions = {}
        for name in ("val", "test"):
            part = parts[name]
            probability = np.asarray(method.predict({m: part[m] for m in self.modalities}), np.float64).reshape(-1)
            predictions[name] = {key: part[key] for key in ("image_id", "patient_id", "label")}
            predictions[name]["probability"] = probability
        threshold = youden_threshold(predictions["val"]["label"], predictions["val"]["probability"])
        if threshold["reason"]:
            logger.info(f"{fold.label}: threshold {threshold['threshold']} ({threshold['reason']})")
        test = predictions["test"]
        metrics = evaluate_predictions(test["label"], test["probability"], test["patient_id"], threshold["threshold"])
        write_fold_summary(fold.folder, test["label"], test["probability"], threshold["threshold"], self.runtime)
        method.save(fold.folder)
        write_predictions(os.path.join(fold.folder, layout.FOLD_PREDICTIONS_FILE), predictions,
                          threshold["threshold"])
        self.roc_curves[f"fold {fold.fold}"] = (test["label"], test["probability"])
        write_json(os.path.join(fold.folder, layout.FOLD_CONFIG_FILE), {
            "method": self.method, "fold": fold.fold, "table3": to_dict(self.config),
            "data": to_dict(self.data.config), "split": to_dict(self.data.split), "inputs": self.inputs_record,
            "fit": fit, "seed": fold.seed,
        })
        return {
            "patient_wise": metrics["patient"],
            "image_wise": metrics["image"],
            "threshold": threshold,
            "num_images": {name: int(len(part["label"])) for name, part in parts.items()},
            "num_patients": {name: len(set(predictions[name]["patient_id"])) for name in ("val", "test")},
            "best_epoch": fit.get("best_epoch"),
            "epochs_run": fit.get("epochs_run"),
            "backbone_weights": {self.method: fit.get("backbone_weights")},
            "fit": fit,
            "seed": fold.seed,
        }

    def fold_line(self, result: dict) -> str:
        patient = result["patient_wise"]
        return (f"threshold {result['threshold']['threshold']:.3f}, best epoch {result.get('best_epoch')}; "
                "test patient-wise " + " ".join(f"{name} {patient[name]:.3f}" for name in METRIC_NAMES))

    def summarize(self, results: list[dict], timing: dict) -> dict:
        patient_summary = summarize_folds([r["patient_wise"] for r in results])
        network = NETWORKS[self.method]
        title = f"{network} (Table 3): test ROC per fold, {self.data.name}" + (" (SYNTHETIC)" if self.data.synthetic
                                                                                else "")
        roc_path = save_roc_figure(self.roc_curves, os.path.join(self.run_folder, layout.ROC_FIGURE), title=title)
        weights = summarize_weight_records([r["backbone_weights"] for r in results if r.get("backbone_weights")
                                            and all(r["backbone_weights"].values())])
        logger.info(f"{self.run_name}: patient-wise over {len(results)} folds: "
                    + ", ".join(f"{name} {_percent(patient_summary[name])}" for name in METRIC_NAMES)
                    + f" (total {timing['total_seconds']:.0f} s)")
        logger.info(f"Wrote {os.path.join(self.run_folder, layout.SUMMARY_FILE)} and {roc_path}")
        config = {key: value for key, value in to_dict(self.config).items() if key != "methods"}
        return {
            "method": self.method,
            "run": self.run_name,
            "description": f"{network}, Table 3 (§4.2.2)",
            "modalities": list(self.modalities),
            **self.data.record(self.input_size),
            "preset": self.preset,
            "preset_notice": preset_notice(self.config, self.preset),
            "runtime": runtime_lib.describe(self.runtime),
            **{name: patient_summary[name] for name in METRIC_NAMES},
            "evaluation": "patient-wise: majority vote of the images, a tie going to malignant (§4.2); "
                          "mean ± population SD over the folds' test sets",
            "image_wise": summarize_folds([r["image_wise"] for r in results]),
            "thresholds": [r["threshold"]["threshold"] for r in results],
            "threshold_rule": "Youden index on each fold's validation images (§3.3.1); malignant if p >= threshold",
            "backbone_weights": weights,
            "inputs": self.inputs_record,
            "excluded_images": self.excluded,
            "folds": [
                {name: r.get(name) for name in ("fold", "seed", "num_images", "num_patients", "best_epoch",
                                                "epochs_run", "seconds", "fit")}
                for r in results
            ],
            "roc_figure": roc_path,
            "config": {"table3": config, "data": to_dict(self.data.config), "split": to_dict(self.data.split)},
        }


def _inputs_setting(config: Table3Config, arrays: dict, output: str, data_size: int, size: int
                    ) -> tuple[dict, CropConfig | None, dict]:
    """The arrays (with the W-MM-U-Net masks for ``crop``), the crop and its record."""
    if config.inputs == "full":
        return arrays, None, {"inputs": "full", "rule": INPUTS_RULE["full"], "masks": None, "margin_px": None,
                              "input_size": size}
    masks_path = inputs.check_predicted_masks(layout.predicted_masks_path(output), layout.CROP_SEGMENTER)
    arrays, record = inputs.apply_crop_masks(arrays, "predicted", masks_path)
    crop_config = CropConfig(margin=scaled_margin(data_size), shape="rectangle")
    return arrays, crop_config, {"inputs": "crop", "rule": INPUTS_RULE["crop"], "masks": record["masks"],
                                 "masks_fingerprint": masks_fingerprint(masks_path), "margin_px": crop_config.margin,
                                 "margin_rule": MARGIN_RULE, "shape": "rectangle", "input_size": size}


def run_table3_method(
    method: str,
    data: DataConfig | ExperimentData,
    split: SplitConfig | None,
    experiment: ExperimentConfig,
    output: str,
    folds: Sequence[int] | None = None,
    method_factory=None,
) -> dict:
    """Cross-validate one method of Table 3 (§4.2.2) and write its results (module docstring).

    Args:
        method: one of ``TABLE3_METHODS``.
        data: the data set, resolved once per request (``ExperimentData``), or a ``DataConfig``
            that this call resolves.
        split: the patient-level split settings (None: the data's own).
        experiment: the resolved settings; its ``table3`` section (``Table3Config``) says how.
        output: the experiment's folder.
        folds: train only these folds (one fold per job); the summary is written once every
            fold is finished.
        method_factory: the methods' contract (default ``tf_bimodal.training.table3``).

    Returns:
        The summary written to ``<output>/table3_<method>/summary.json`` (a ``"partial"`` record
        until every fold is finished).

    Raises:
        ValueError: an unknown method; a method that reads SE-mode images on data without any.
        Table3WeightsMissing: the method needs ImageNet weights that are missing.
        FileNotFoundError: ``inputs="crop"`` before the W-MM-U-Net masks exist.
    """
    if method not in TABLE3_METHODS:
        raise ValueError(f"method must be one of {TABLE3_METHODS}, got {method!r}")
    factory = method_factory_or_default(method_factory)
    with experiment_runtime(experiment, output, "run_table3_method") as output:
        config = dataclasses.replace(experiment.table3, methods=(method,))
        check_table3_weights(config, factory)
        resolved = experiment_data(data, split, output)
        modalities = tuple(factory.method_modalities(method))
        size = int(factory.method_input_size(method, config))
        logger.info(f"Table 3: {NETWORKS[method]} ({'+'.join(modalities)}, {size} px, {config.inputs} images) on "
                    f"{resolved.name} (preset {experiment.name})")
        if resolved.synthetic:
            logger.info(SYNTHETIC_NOTICE)
        if preset_notice(config, experiment.name):
            logger.info(preset_notice(config, experiment.name))
        arrays, crop_config, inputs_record = _inputs_setting(config, resolved.arrays, output, resolved.data_size, size)
        usable, excluded = usable_images(arrays, modalities)
        if not np.any(usable):
            raise ValueError(f"{method} reads {' and '.join(modalities)} images, but data set {resolved.name!r} "
                             "has no benign or malignant image with them (SE-mode: B-mode-only data such as BUSI)")
        for reason, count in excluded.items():
            if count:
                logger.info(f"  excluded {count} images: {reason}")
        run_folder = layout.run_dir(output, layout.table3_run_name(method))
        settings = {key: value for key, value in to_dict(config).items() if key != "methods"}
        key = run_cache_key({
            "step": "table3", "method": method, "config": settings, "batches": pipeline.BATCHES_REVISION,
            "masks": inputs_record.get("masks_fingerprint"),
        }, resolved, experiment.runtime)
        task = Table3Task(method, config, factory, resolved, arrays, set(arrays["image_id"][usable].tolist()),
                          crop_config, inputs_record, excluded, run_folder, experiment.name, experiment.runtime)
        return cross_validate(task, resolved.splits, run_folder, key,
                              {"method": method, "inputs": config.inputs, "preset": experiment.name},
                              experiment.runtime, folds=folds)


def run_table3(
    data: DataConfig | ExperimentData,
    split: SplitConfig | None,
    experiment: ExperimentConfig,
    output: str,
    folds: Sequence[int] | None = None,
    method_factory=None,
) -> dict:
    """Every method of ``experiment.table3.methods`` in the paper's order (§4.2.2), the weights of
    all of them checked before the first trains; returns ``{method: summary}``. MFF, the
    reference of the t-tests, is Table 2's ``mff`` run (``--model table3`` runs it first)."""
    factory = method_factory_or_default(method_factory)
    check_table3_weights(experiment.table3, factory)
    resolved = experiment_data(data, split, output)
    return {method: run_table3_method(method, resolved, None, experiment, output, folds, factory)
            for method in TABLE3_METHODS if method in experiment.table3.methods}
