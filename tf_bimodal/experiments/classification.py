"""The classification experiment: Table 2 (paper §3.3, §3.4, §4.2).

``run_classification(model, data, split, experiment, output, crop)`` trains one classifier of
Table 2 on every fold of the patient-level splits (:mod:`tf_bimodal.experiments.cross_validation`)
and writes into ``<output>/<run>/``, where ``<run>`` is the model's name for W-MM-U-Net crops
and ``<model>_crop_<crop>`` otherwise (:func:`tf_bimodal.layout.classification_run_name`)::

    <output>/data/<dataset>/splits.json        the folds (shared by every model, made once)
    <output>/<run>/summary.json                patient-wise mean ± SD over folds (main numbers),
                                               image-wise too, thresholds, backbone weights,
                                               dataset, timing, config
    <output>/<run>/roc.png                     test ROC curve of every fold (Fig. 6)
    <output>/<run>/log.txt                     the run's progress lines
    <output>/<run>/fold_<k>/metrics.json       that fold's image- and patient-wise test metrics
    <output>/<run>/fold_<k>/predictions.csv    validation and test probabilities per image
    <output>/<run>/fold_<k>/history.csv        the per-epoch training log
    <output>/<run>/fold_<k>/config.json        the fold's full configuration
    <output>/<run>/fold_<k>/model.keras        the fold model (best validation-loss epoch)
    <output>/<run>/run.json                    the settings' cache key

A second run with the same settings (and, for predicted crops, the same masks) reuses
``summary.json``; after an interruption it reuses the finished folds and resumes the
unfinished one from its last epoch.

Protocol per fold: train on the fold's training images, keep the weights of the epoch with
the lowest validation loss, choose the decision threshold on the validation images by the
Youden index (§3.3.1), then classify the test images and vote per patient (§4.2). Only benign
and malignant images take part: BUSI's ``normal`` images (no lesion) are excluded, since the
task is benign versus malignant.

Inputs (``crop``, §3.1, §4.2, Fig. S2): rectangular crops around the W-MM-U-Net masks
(``"predicted"``, read from ``<output>/w_mm_unet/predicted_masks.npz``) or around the
ground-truth masks (``"manual"``), the same crops cut to the mask's shape
(``"predicted_mask_shape"``, ``"manual_mask_shape"``: pixels farther than the margin from
the mask set to 0), or the full images (``"none"``), resized to the model's input size. The
crop margin is the paper's 50 pixels at its 336-pixel image size, scaled to the data's image
size (:func:`tf_bimodal.data.cropping.scaled_margin`).

Seeds: fold ``k`` trains with ``config.seed + k`` (the driver's
:class:`~tf_bimodal.experiments.cross_validation.Fold` seed) for the weights, the shuffling,
the augmentation, the modality dropout and the EmbraceNet draws, as the segmenters do; a
rerun of a fold draws the same. What is the paper's and what is our reading:
``docs/fidelity.md``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Sequence

import numpy as np

from tf_bimodal import layout
from tf_bimodal.config import (
    CLASSIFICATION_CROPS,
    CLASSIFICATION_MODELS,
    SINGLE_MODAL_MODELS,
    ClassificationConfig,
    CropConfig,
    DataConfig,
    ExperimentConfig,
    SplitConfig,
    crop_masks,
    crop_shape,
    to_dict,
)
from tf_bimodal.data import inputs, pipeline
from tf_bimodal.data.cropping import MARGIN_RULE, scaled_margin
from tf_bimodal.evaluation.classification import METRIC_NAMES, evaluate_predictions, summarize_folds, youden_threshold
from tf_bimodal.evaluation.figures import save_roc_figure
from tf_bimodal.evaluation.predictions import read_test_predictions, write_predictions
from tf_bimodal.experiments.cross_validation import Fold, FoldTask, cross_validate, experiment_runtime, run_cache_key
from tf_bimodal.experiments.experiment_data import ExperimentData, experiment_data
from tf_bimodal.io import write_json
from tf_bimodal.models.classification.factory import AVAILABILITY_MODELS, MODEL_DESCRIPTIONS, model_input_keys
from tf_bimodal.schema import SYNTHETIC_NOTICE
from tf_bimodal.training import runtime as runtime_lib
from tf_bimodal.training.classification import (
    CachedImagenet,
    build_classifier_for_training,
    compile_classifier,
    fit_classifier,
    predict_probabilities,
)
from tf_bimodal.training.memory import training_plan
from tf_bimodal.training.tensorboard import fold_callbacks, write_fold_summary

logger = logging.getLogger(__name__)

PAPER_CLASSIFICATION = ClassificationConfig()


def preset_notice(config: ClassificationConfig, preset: str) -> str | None:
    """A warning line for classifier settings far from the paper's (input size, feature
    width or starting weights), as the ``cpu`` and ``quick`` presets are."""
    paper = PAPER_CLASSIFICATION
    if (config.input_size, config.fc_units, config.backbone_weights) == (
        paper.input_size, paper.fc_units, paper.backbone_weights
    ):
        return None
    return (
        f"{preset.upper()} PRESET: a narrow VGG-16 (filters {list(config.stackwise_num_filters)}, "
        f"{config.fc_units}-d features), {config.input_size}-pixel inputs, at most "
        f"{config.epochs} epochs, backbone weights {config.backbone_weights!r}: a smoke "
        "setting for a CPU, not the paper's (336 px, 4096-d, ImageNet VGG-16)"
    )


def masks_fingerprint(path: str) -> str:
    """A hash of a masks file, so classifiers cropped with other masks are not reused."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def usable_images(arrays: dict, model: str) -> tuple[np.ndarray, dict]:
    """Boolean mask of the images the binary task of ``model`` can use, and the counts left out."""
    binary = np.isin(arrays["label"], inputs.BINARY_CLASSES)
    usable = binary.copy()
    excluded = {"normal (no lesion; not part of benign vs malignant)": int(np.sum(~binary))}
    needs_semode = model not in ("vgg16_bmode",) and model not in AVAILABILITY_MODELS
    if needs_semode:
        without = binary & ~arrays["has_semode"]
        usable &= arrays["has_semode"]
        excluded["without SE-mode (this model needs both images)"] = int(np.sum(without))
    return usable, excluded


def check_semode(model: str, arrays: dict, usable: np.ndarray, dataset_name: str) -> None:
    """Refuse a classifier that needs SE-mode images on data without any (BUSI).

    Raises:
        ValueError: naming the model and the data set.
    """
    if model == "vgg16_bmode":
        return
    binary = np.isin(arrays["label"], inputs.BINARY_CLASSES)
    if not np.any(arrays["has_semode"][binary]):
        raise ValueError(
            f"{model} uses SE-mode images, but data set {dataset_name!r} has none (B-mode only, e.g. "
            "BUSI); train vgg16_bmode on it, or evaluate an MFF trained on bimodal data with "
            "evaluate_bmode_only(...)"
        )
    if not np.any(usable):
        raise ValueError(f"{model}: no usable benign/malignant image in {dataset_name!r}")


def summarize_weight_records(weight_records: list) -> dict:
    """One ``{"requested", "used", "reason"}`` for the run, plus the per-fold records."""
    flat = [record for records in weight_records for record in records.values()]
    used = sorted({record["used"] for record in flat})
    reasons = sorted({record["reason"] for record in flat if record["reason"]})
    return {
        "requested": flat[0]["requested"] if flat else None,
        "used": used[0] if len(used) == 1 else used,
        "reason": reasons[0] if len(reasons) == 1 else (reasons or None),
        "per_fold": weight_records,
    }


def _percent(stat: dict) -> str:
    if stat["mean"] is None or math.isnan(stat["mean"]):
        return "n/a"
    return f"{100 * stat['mean']:.2f} ± {100 * stat['sd']:.2f} %"


class ClassificationTask(FoldTask):
    """One Table 2 classifier on every fold: train, select on validation loss, choose the
    Youden threshold on validation, classify the test images and vote per patient (§3.3-§4.2)."""

    def __init__(self, model: str, crop: str, config: ClassificationConfig, data: ExperimentData, arrays: dict,
                 usable_ids: set, crop_config: CropConfig | None, crop_record: dict, excluded: dict,
                 run_folder: str, split: SplitConfig, preset: str, notice: str | None, runtime=None,
                 context_crop: CropConfig | None = None):
        self.model, self.crop, self.config = model, crop, config
        self.run_name = layout.classification_run_name(model, crop)
        self.seed = config.seed
        self.data, self.arrays, self.usable_ids = data, arrays, usable_ids
        self.crop_config, self.crop_record, self.excluded = crop_config, crop_record, excluded
        self.run_folder, self.split, self.preset, self.notice = run_folder, split, preset, notice
        self.runtime = runtime
        self.context_crop = context_crop
        self.input_keys = model_input_keys(model, context=context_crop is not None)
        self.loader = CachedImagenet()
        self.roc_curves = {}

    def usable_parts(self, fold: Fold) -> dict:
        parts = {part: [i for i in ids if i in self.usable_ids] for part, ids in fold.parts.items()}
        if not all(parts.values()):
            raise ValueError(
                f"fold {fold.fold}: after exclusions it has {', '.join(f'{len(v)} {p}' for p, v in parts.items())} "
                "images; every part needs at least one"
            )
        return parts

    def reuse_fold(self, fold: Fold, result: dict) -> bool:
        path = os.path.join(fold.folder, layout.FOLD_PREDICTIONS_FILE)
        if not os.path.isfile(path):
            return False
        self.roc_curves[f"fold {fold.fold}"] = tuple(read_test_predictions(path).values())
        return True

    def train_fold(self, fold: Fold) -> dict:
        config, arrays, model = self.config, self.arrays, self.model
        parts = self.usable_parts(fold)
        logger.info(f"{fold.label}: train {len(parts['train'])}, val {len(parts['val'])}, "
                    f"test {len(parts['test'])} images")
        strategy = runtime_lib.strategy_for(self.runtime)
        replicas = strategy.num_replicas_in_sync
        with strategy.scope():
            classifier, records, normalization = build_classifier_for_training(
                model, config, self.loader, seed=fold.seed
            )
            batch_plan = training_plan(classifier, config.batch_size, self.runtime, replicas, model)
            compile_classifier(classifier, config, batch_plan.accumulation_steps)
        if batch_plan.accumulation_steps > 1 or replicas > 1:
            logger.info(f"{fold.label}: {batch_plan.describe()}")
        train_ds = inputs.classification_dataset(
            arrays, parts["train"], self.input_keys, config.input_size, self.crop_config,
            batch_plan.global_micro_batch,
            training=True, augment=config.augment,
            modality_dropout=config.modality_dropout if model in AVAILABILITY_MODELS else 0.0, seed=fold.seed,
            replicas=replicas, context_crop=self.context_crop,
        )
        val_ds = inputs.classification_dataset(
            arrays, parts["val"], self.input_keys, config.input_size, self.crop_config, replicas=replicas,
            context_crop=self.context_crop,
        )
        training = fit_classifier(
            classifier, train_ds, val_ds, config, fold.folder, label=fold.label,
            extra_callbacks=fold_callbacks(self.runtime, fold.folder, "classification", model=classifier),
        )
        if training["resumed_from_epoch"] is not None:
            logger.info(f"{fold.label}: resumed an interrupted fit at epoch {training['resumed_from_epoch']}")
        predictions = {
            part: predict_probabilities(
                classifier,
                inputs.classification_dataset(arrays, parts[part], self.input_keys, config.input_size,
                                              self.crop_config, with_metadata=True, context_crop=self.context_crop),
            )
            for part in ("val", "test")
        }
        threshold = youden_threshold(predictions["val"]["label"], predictions["val"]["probability"])
        if threshold["reason"]:
            logger.info(f"{fold.label}: threshold {threshold['threshold']} ({threshold['reason']})")
        test = predictions["test"]
        metrics = evaluate_predictions(test["label"], test["probability"], test["patient_id"], threshold["threshold"])
        write_fold_summary(fold.folder, test["label"], test["probability"], threshold["threshold"], self.runtime)
        classifier.save(os.path.join(fold.folder, layout.MODEL_FILE))
        write_predictions(os.path.join(fold.folder, layout.FOLD_PREDICTIONS_FILE), predictions,
                          threshold["threshold"])
        self.roc_curves[f"fold {fold.fold}"] = (test["label"], test["probability"])
        write_json(os.path.join(fold.folder, layout.FOLD_CONFIG_FILE), {
            "model": model, "fold": fold.fold, "classification": to_dict(config), "data": to_dict(self.data.config),
            "split": to_dict(self.split), "crop": self.crop_record, "normalization": normalization,
            "backbone_weights": records, "seed": fold.seed,
        })
        return {
            "patient_wise": metrics["patient"],
            "image_wise": metrics["image"],
            "threshold": threshold,
            "num_images": {part: len(ids) for part, ids in parts.items()},
            "num_patients": {part: len(set(predictions[part]["patient_id"])) for part in ("val", "test")},
            "best_epoch": training["best_epoch"],
            "branch_best_epochs": training["branch_best_epochs"],
            "head_fit": training.get("head_fit"),
            "epochs_run": training["epochs_run"],
            "resumed_from_epoch": training["resumed_from_epoch"],
            "batch_plan": batch_plan.to_dict(),
            "seed": fold.seed,
            "normalization": normalization,
            "backbone_weights": records,
        }

    def fold_line(self, result: dict) -> str:
        patient = result["patient_wise"]
        branches = result.get("branch_best_epochs")
        if result.get("head_fit"):
            epochs = f"logistic head, C {result['head_fit']['C']:g}"
        elif branches:
            epochs = "best epochs " + ", ".join(f"{name} {epoch}" for name, epoch in branches.items())
        else:
            epochs = f"best epoch {result['best_epoch']}"
        return (f"threshold {result['threshold']['threshold']:.3f}, {epochs}; "
                "test patient-wise " + " ".join(f"{name} {patient[name]:.3f}" for name in METRIC_NAMES))

    def summarize(self, results: list[dict], timing: dict) -> dict:
        patient_summary = summarize_folds([r["patient_wise"] for r in results])
        title = (f"{MODEL_DESCRIPTIONS[self.model]}: test ROC per fold, {self.data.name}"
                 + (" (SYNTHETIC)" if self.data.synthetic else ""))
        roc_path = save_roc_figure(self.roc_curves, os.path.join(self.run_folder, layout.ROC_FIGURE), title=title)
        backbone_weights = summarize_weight_records([r["backbone_weights"] for r in results])
        logger.info(f"{self.run_name}: patient-wise over {len(results)} folds: "
                    + ", ".join(f"{name} {_percent(patient_summary[name])}" for name in METRIC_NAMES)
                    + f" (total {timing['total_seconds']:.0f} s)")
        logger.info(f"Wrote {os.path.join(self.run_folder, layout.SUMMARY_FILE)} and {roc_path}")
        return {
            "model": self.model,
            "run": self.run_name,
            "description": MODEL_DESCRIPTIONS[self.model],
            **self.data.record(self.config.input_size),
            "preset": self.preset,
            "preset_notice": self.notice,
            "runtime": runtime_lib.describe(self.runtime),
            **{name: patient_summary[name] for name in METRIC_NAMES},
            "evaluation": "patient-wise: majority vote of the images, a tie going to malignant (§4.2); "
                          "mean ± population SD over the folds' test sets",
            "image_wise": summarize_folds([r["image_wise"] for r in results]),
            "thresholds": [r["threshold"]["threshold"] for r in results],
            "threshold_rule": "Youden index on each fold's validation images (§3.3.1); malignant if p >= threshold",
            "backbone_weights": backbone_weights,
            "crop": self.crop_record,
            "excluded_images": self.excluded,
            "folds": [
                {name: r.get(name) for name in ("fold", "seed", "num_images", "num_patients", "best_epoch",
                                                "branch_best_epochs", "epochs_run", "resumed_from_epoch", "seconds")}
                for r in results
            ],
            "roc_figure": roc_path,
            "config": {
                "classification": to_dict(self.config),
                "data": to_dict(self.data.config),
                "split": to_dict(self.split),
                "normalization": results[0]["normalization"],
                "backbone_weights": {name: backbone_weights[name] for name in ("requested", "used", "reason")},
            },
        }


def crop_settings(crop: str, config: ClassificationConfig, data_size: int) -> tuple:
    """The lesion crop of a classifier's inputs and its optional wider context crop, their
    margins the paper's 50 px at 336 px scaled to the data's side (§3.1,
    :data:`tf_bimodal.data.cropping.MARGIN_RULE`); ``(None, None)`` for full images."""
    shape = crop_shape(crop)
    if shape is None:
        return None, None
    crop_config = CropConfig(margin=scaled_margin(data_size), shape=shape)
    context_crop = None if config.context_margin is None else CropConfig(
        margin=scaled_margin(data_size, config.context_margin), shape=shape)
    return crop_config, context_crop


def _crop_margins(crop_config: CropConfig | None, context_crop: CropConfig | None) -> dict:
    return {"margin_px": None if crop_config is None else crop_config.margin, "margin_rule": MARGIN_RULE,
            "context_margin_px": None if context_crop is None else context_crop.margin}


def run_classification(
    model: str,
    data: DataConfig | ExperimentData,
    split: SplitConfig | None,
    experiment: ExperimentConfig,
    output: str,
    crop: str = "predicted",
    folds: Sequence[int] | None = None,
) -> dict:
    """Cross-validate one classifier of Table 2 (§3.3, §3.4, §4.2) and write its results.

    See the module docstring for the protocol and the files written. The main numbers of
    the summary are patient-wise (§4.2: majority vote, a tie going to malignant), as mean
    ± SD (population SD, see :mod:`tf_bimodal.evaluation.classification`) over the folds;
    the image-wise numbers are under ``"image_wise"``.

    Args:
        model: one of ``CLASSIFICATION_MODELS``: ``mff``, ``mff_early``, ``mff_late``,
            ``mff_stack``, ``mff_intermediate``, ``vgg16_bmode``, ``vgg16_semode``.
        data: the data set, resolved once per request (``ExperimentData``, see
            :mod:`tf_bimodal.experiments.experiment_data`), or a ``DataConfig`` that this call
            resolves.
        split: the patient-level split settings (``SplitConfig``; None: the data's own).
        experiment: the resolved settings (``ExperimentConfig``: its ``classification`` and
            ``runtime``; :func:`tf_bimodal.config.resolve_experiment` makes one from a preset).
            The batch size is global, split over the strategy's replicas; with
            ``multi_worker`` only the chief writes to ``output``.
        output: the experiment's folder.
        crop: ``"predicted"`` (W-MM-U-Net masks; needs ``<output>/w_mm_unet/predicted_masks.npz``),
            ``"manual"`` (ground-truth masks), ``"none"`` (full images), or
            ``"predicted_mask_shape"`` / ``"manual_mask_shape"`` (the same masks, the crop cut to
            the mask's shape, Fig. S2); see ``CLASSIFICATION_CROPS``.
        folds: train only these folds (one fold per job); the summary is written once every
            fold is finished.

    Returns:
        The summary dict written to ``<output>/<run>/summary.json`` (with ``folds``, a
        ``"partial"`` record until every fold is finished).

    Raises:
        ValueError: unknown model or crop; a model that needs SE-mode images on data without
            any (BUSI).
        FileNotFoundError: ``crop="predicted"`` before the W-MM-U-Net masks exist.
    """
    if model not in CLASSIFICATION_MODELS:
        raise ValueError(f"model must be one of {CLASSIFICATION_MODELS}, got {model!r}")
    if crop not in CLASSIFICATION_CROPS:
        raise ValueError(f"crop must be one of {CLASSIFICATION_CROPS}, got {crop!r}")
    with experiment_runtime(experiment, output, "run_classification") as output:
        runtime, config = experiment.runtime, experiment.classification
        masks_path = layout.predicted_masks_path(output)
        masks, shape = crop_masks(crop), crop_shape(crop)
        if config.context_margin is not None and (shape is None or model not in SINGLE_MODAL_MODELS):
            raise ValueError(
                f"context_margin={config.context_margin} adds a wider crop around the lesion for a single-modal "
                f"VGG-16 {SINGLE_MODAL_MODELS} on cropped inputs; got model {model!r} with crop {crop!r}"
            )
        if masks == "predicted":
            inputs.check_predicted_masks(masks_path, layout.CROP_SEGMENTER)  # fail before any expensive step
        resolved = experiment_data(data, split, output)
        logger.info(f"Classification {model} [{MODEL_DESCRIPTIONS[model]}] on {resolved.name} "
                    f"(preset {experiment.name}, crop {crop})")
        if resolved.synthetic:
            logger.info(SYNTHETIC_NOTICE)
        notice = preset_notice(config, experiment.name)
        if notice:
            logger.info(notice)
        arrays, crop_record = inputs.apply_crop_masks(resolved.arrays, masks, masks_path)
        usable, excluded = usable_images(arrays, model)
        check_semode(model, arrays, usable, resolved.name)
        crop_config, context_crop = crop_settings(crop, config, resolved.data_size)
        crop_record.update(crop=crop, masks_from=masks, **_crop_margins(crop_config, context_crop),
                           shape=shape, input_size=config.input_size)
        for reason, count in excluded.items():
            if count:
                logger.info(f"  excluded {count} images: {reason}")
        run_name = layout.classification_run_name(model, crop)
        run_folder = layout.run_dir(output, run_name)
        key = run_cache_key({
            "step": "classification", "model": model, "crop": crop, "config": to_dict(config),
            "batches": pipeline.BATCHES_REVISION,
            "masks": masks_fingerprint(crop_record["masks"]) if masks == "predicted" else None,
        }, resolved, runtime)
        task = ClassificationTask(
            model, crop, config, resolved, arrays, set(arrays["image_id"][usable].tolist()), crop_config,
            crop_record, excluded, run_folder, resolved.split, experiment.name, notice, runtime,
            context_crop=context_crop,
        )
        return cross_validate(task, resolved.splits, run_folder, key,
                              {"model": model, "crop": crop, "preset": experiment.name}, runtime, folds=folds)
