"""The segmentation experiment: K-fold training, scores, fold union, predicted masks (§3.4, §4.1).

``run_segmentation(model, data, split, experiment, output)`` trains one of the five models of
Table 1 on every fold of the patient-level splits (:mod:`tf_bimodal.experiments.cross_validation`)
and writes (file names in :mod:`tf_bimodal.layout`)::

    <output>/data/<dataset>/splits.json          the folds (shared by every model, made once)
    <output>/<model>/summary.json                mean ± SD over folds, fold union, weights, timing
    <output>/<model>/predicted_masks.npz         one mask per image, for cropping (§3.1)
    <output>/<model>/log.txt                     the run's progress lines
    <output>/<model>/fold_<k>/metrics.json       that fold's test and validation scores
    <output>/<model>/fold_<k>/predictions.npz    that fold model's binary mask of every image
    <output>/<model>/fold_<k>/history.csv        the per-epoch training log
    <output>/<model>/fold_<k>/model.keras        the fold model (best validation-Dice epoch)
    <output>/<model>/run.json                    the settings' cache key

A second run with the same settings reuses ``summary.json``; after an interruption it
reuses the finished folds and resumes the unfinished one from its last epoch.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

import numpy as np

from tf_bimodal import layout
from tf_bimodal.config import DataConfig, ExperimentConfig, SegmentationConfig, SplitConfig, to_dict
from tf_bimodal.data import inputs, pipeline
from tf_bimodal.evaluation.segmentation import (
    MISSED_DICE,
    SD_DDOF,
    lesion_and_normal_scores,
    majority_vote,
    summarize_folds,
)
from tf_bimodal.experiments.cross_validation import (
    Fold,
    FoldTask,
    cross_validate,
    experiment_runtime,
    run_cache_key,
)
from tf_bimodal.experiments.experiment_data import ExperimentData, experiment_data
from tf_bimodal.io import read_json_or_none, write_json
from tf_bimodal.models.segmentation.auto_weight import PRESTAGE_RULE
from tf_bimodal.models.segmentation.factory import (
    MODEL_INPUTS,
    build_segmenter,
    check_model_name,
    is_multimodal,
    model_weighting,
)
from tf_bimodal.schema import SYNTHETIC_NOTICE
from tf_bimodal.training import runtime as runtime_lib
from tf_bimodal.training.memory import training_plan
from tf_bimodal.training.metrics import mean_scores
from tf_bimodal.training.segmentation import (
    MONITOR,
    compile_segmenter,
    fit_segmenter,
    mean_modality_weights,
    predict_masks,
    train_auto_weight_prestage,
)
from tf_bimodal.training.tensorboard import fold_callbacks

logger = logging.getLogger(__name__)

AUTO_WEIGHT_FILE = "auto_weights.json"
"""A fold's auto-weight pre-stage record (§3.2.2), kept so that a resumed fold rebuilds its
W-MM-U-Net with the weights it started with."""

WEIGHTING_RULES = {
    "equal": "every modal path weighted 1/P in the weighted skip connection (MM-U-Net)",
    "manual": "fixed manual weights (SegmentationConfig.manual_weights) in the weighted skip connection (§3.2.3)",
    "prestage": PRESTAGE_RULE,
    "auto": "learned end to end by the segmentation loss, one vector per image, applied in the weighted skip "
            "connection (§3.2.2-3.2.3); mean over each fold's test images",
}
"""What the recorded modality weights are, per weighting (``summary.json``, Table 1)."""


def save_fold_predictions(path: str, binary: np.ndarray) -> str:
    """Write a fold model's binary masks (N x S x S, 0/1) bit-packed, atomically."""
    tmp_path = path + ".tmp.npz"
    np.savez_compressed(tmp_path, packed=np.packbits(binary.astype(bool), axis=-1), shape=np.array(binary.shape))
    os.replace(tmp_path, path)
    return path


def load_fold_predictions(path: str) -> np.ndarray:
    """The masks written by :func:`save_fold_predictions` (uint8 0/1)."""
    with np.load(path) as stored:
        shape = tuple(int(v) for v in stored["shape"])
        return np.unpackbits(stored["packed"], axis=-1, count=shape[-1]).reshape(shape).astype(np.uint8)


def shares_test_set(splits) -> bool:
    """Whether every fold tests on the same images (the paper protocol, §3.1/§3.4)."""
    first = set(splits[0]["test"])
    return all(set(split["test"]) == first for split in splits)


def check_modalities(model_name: str, arrays: dict, dataset_name: str) -> None:
    """Refuse a bimodal segmenter on data without SE-mode images (BUSI).

    Raises:
        ValueError: naming the model, the data set and the number of images without SE-mode.
    """
    if not is_multimodal(model_name):
        return
    missing = int(np.sum(~arrays["has_semode"]))
    if missing:
        raise ValueError(
            f"{model_name} segments from B-mode and SE-mode together, but {missing} of "
            f"{len(arrays['has_semode'])} images of data set {dataset_name!r} have no SE-mode image "
            "(B-mode-only data such as BUSI); run unet_bmode on it instead"
        )


def _shares_over_folds(results: list[dict], key: str, shares, rule: str) -> dict | None:
    """The folds' ``results[key]`` shares as ``{"images_per_fold", share: {"mean", "sd",
    "per_fold"}, ..., "rule"}`` (population SD, as the scores); None when no fold has them."""
    entries = [result.get(key) for result in results if result.get(key)]
    if not entries:
        return None
    summary = {"images_per_fold": [entry["images"] for entry in entries]}
    for share in shares:
        values = [entry[share] for entry in entries]
        summary[share] = {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=SD_DDOF)),
                          "per_fold": values}
    return {**summary, "rule": rule}


def kept_auto_weight_prestage(path: str, arrays: dict, train_ids, val_ids, config: SegmentationConfig,
                              image_size: int, seed: int, input_keys, label: str) -> dict:
    """A fold's auto-weight pre-stage (§3.2.2), read back from ``path`` when an earlier run
    wrote it there, else trained and written there.

    The pre-stage (:func:`~tf_bimodal.training.segmentation.train_auto_weight_prestage`)
    trains on every image of ``train_ids`` that has a benign or malignant label (masks are
    not needed) and selects on ``val_ids``; the caller clears the session and seeds the
    initialisation. Its record (weights, path names, validation accuracy ...) is what a
    W-MM-U-Net of that fold is built with (``modality_weights=record["weights"]``), so that a
    resumed run rebuilds it with the weights it started with.
    """
    record = read_json_or_none(path)
    if record is not None and record.get("path_names"):
        logger.info(f"{label}: reusing the auto-weight pre-stage weights of {path}")
        return record
    record = train_auto_weight_prestage(arrays, train_ids, val_ids, config, image_size, seed=seed,
                                        input_keys=input_keys, label=label)
    write_json(path, record)
    return record


def training_positions(positions: np.ndarray, truth: np.ndarray, lesion_free: bool) -> np.ndarray:
    """The ``positions`` (images with a mask) a segmenter trains and selects on: all of them,
    or with ``lesion_free`` False (``SegmentationConfig.train_lesion_free``) only those whose
    mask ``truth[position]`` holds a lesion."""
    positions = np.asarray(positions, np.int64)
    if lesion_free or not len(positions):
        return positions
    return positions[truth[positions].any(axis=tuple(range(1, truth.ndim)))]


class SegmentationTask(FoldTask):
    """One Table 1 segmenter on every fold: train, select on validation Dice, predict every
    image, score the test images; then the fold union and the predicted masks (§3.4, §4.1)."""

    def __init__(self, model: str, config: SegmentationConfig, data: ExperimentData, run_folder: str,
                 split: SplitConfig, preset: str, runtime=None, started: float | None = None):
        self.run_name = model
        self.split = split
        self.preset = preset
        self.model = model
        self.config = config
        self.seed = config.seed
        self.data = data
        self.run_folder = run_folder
        self.runtime = runtime
        self.started = started or time.time()
        arrays = data.arrays
        self.image_size = data.data_size
        self.model_size = data.model_size(config.image_size)
        self.model_arrays = inputs.resize_arrays(arrays, self.model_size)
        self.input_keys = MODEL_INPUTS[model]
        self.has_mask = arrays["has_mask"]
        self.truth = arrays["mask"][..., 0]
        self.votes = np.zeros((len(arrays["image_id"]), self.image_size, self.image_size), np.uint8)
        self.out_of_fold = np.zeros_like(self.votes)
        self.path_names = None

    def positions(self, ids, masked_only: bool = True) -> np.ndarray:
        found = self.data.positions(ids)
        return found[self.has_mask[found]] if masked_only else found

    def _add_votes(self, fold: Fold, binary: np.ndarray) -> None:
        self.votes += binary
        all_test = self.positions(fold.parts["test"], masked_only=False)
        self.out_of_fold[all_test] = binary[all_test]

    def reuse_fold(self, fold: Fold, result: dict) -> bool:
        path = os.path.join(fold.folder, layout.FOLD_MASKS_FILE)
        if not os.path.isfile(path):
            return False
        self._add_votes(fold, load_fold_predictions(path))
        self.path_names = result.get("path_names")
        return True

    def auto_weight_prestage(self, fold: Fold) -> dict:
        """The fold's auto-weight pre-stage (:func:`kept_auto_weight_prestage`), kept in
        ``fold_<k>/auto_weights.json`` and reused by a resumed fold."""
        arrays = self.data.arrays
        train_ids = [arrays["image_id"][i] for i in self.positions(fold.parts["train"], masked_only=False)]
        val_ids = [arrays["image_id"][i] for i in self.positions(fold.parts["val"], masked_only=False)]
        return kept_auto_weight_prestage(
            os.path.join(fold.folder, AUTO_WEIGHT_FILE), self.model_arrays, train_ids, val_ids, self.config,
            self.model_size, seed=fold.seed, input_keys=self.input_keys, label=fold.label,
        )

    def train_fold(self, fold: Fold) -> dict:
        config, arrays, model_arrays = self.config, self.data.arrays, self.model_arrays
        train_positions, val_positions = (
            training_positions(self.positions(fold.parts[part]), self.truth, config.train_lesion_free)
            for part in ("train", "val")
        )
        train_ids = [arrays["image_id"][i] for i in train_positions]
        val_ids = [arrays["image_id"][i] for i in val_positions]
        test_positions = self.positions(fold.parts["test"])
        if not train_ids or not val_ids:
            raise ValueError(
                f"fold {fold.fold} has {len(train_ids)} training and {len(val_ids)} validation images with a "
                "mask; segmentation needs at least one of each"
            )
        prestage = None
        if model_weighting(self.model, config) == "prestage":
            prestage = self.auto_weight_prestage(fold)
        strategy = runtime_lib.strategy_for(self.runtime)
        replicas = strategy.num_replicas_in_sync
        with strategy.scope():
            segmenter = build_segmenter(self.model, config, self.model_size,
                                        modality_weights=prestage["weights"] if prestage else None)
            batch_plan = training_plan(segmenter, config.batch_size, self.runtime, replicas, self.model)
            compile_segmenter(segmenter, config, batch_plan.accumulation_steps)
        self.path_names = getattr(segmenter, "path_names", None)

        def batches(ids, training):
            return inputs.segmentation_dataset(model_arrays, ids, self.input_keys, batch_plan.global_micro_batch,
                                               training, augment=config.augment, seed=fold.seed, replicas=replicas)

        train_ds, val_ds = batches(train_ids, True), batches(val_ids, False)
        logger.info(f"{fold.label}: train {len(train_ids)}, val {len(val_ids)}, test {len(test_positions)} images; "
                    f"{batch_plan.describe()}")
        extra_callbacks = fold_callbacks(
            self.runtime, fold.folder, "segmentation", model=segmenter,
            val_inputs={key: model_arrays[key][val_positions] for key in self.input_keys},
            val_masks=model_arrays["mask"][val_positions],
        )
        training = fit_segmenter(
            segmenter, train_ds, val_ds, config, fold_dir=fold.folder, label=fold.label, started=self.started,
            extra_callbacks=extra_callbacks,
        )
        if training["resumed_from_epoch"]:
            logger.info(f"{fold.label}: resumed an interrupted fit at epoch {training['resumed_from_epoch']}")
        if config.save_models:
            segmenter.save(os.path.join(fold.folder, layout.MODEL_FILE))

        probabilities = predict_masks(segmenter, model_arrays, self.input_keys, self.image_size,
                                      test_time_flip=config.test_time_flip)
        binary = (probabilities > config.threshold).astype(np.uint8)
        save_fold_predictions(os.path.join(fold.folder, layout.FOLD_MASKS_FILE), binary)
        self._add_votes(fold, binary)
        return {
            "test": mean_scores(self.truth[test_positions], binary[test_positions]) if len(test_positions) else None,
            **lesion_and_normal_scores(self.truth[test_positions], binary[test_positions]),
            "val": mean_scores(self.truth[val_positions], binary[val_positions]),
            "num_images": {"train": len(train_ids), "val": len(val_ids), "test": int(len(test_positions))},
            "best_epoch": training["best_epoch"],
            "best_val_dice": training["best_val_dice"],
            "epochs_run": training["epochs_run"],
            "resumed_from_epoch": training["resumed_from_epoch"],
            "batch_plan": batch_plan.to_dict(),
            "modality_weights": mean_modality_weights(segmenter, model_arrays, test_positions, self.input_keys),
            "path_names": list(self.path_names) if self.path_names is not None else None,
            "auto_weight_prestage": prestage,
            "encoder_weights": getattr(segmenter, "weights_record", None),
        }

    def fold_line(self, result: dict) -> str:
        test_text = " ".join(f"{n} {v:.3f}" for n, v in (result["test"] or {}).items())
        return f"best epoch {result['best_epoch']} (val dice {result['best_val_dice']:.3f}), test {test_text}"

    def _masks(self, shared_test: bool, num_folds: int) -> tuple:
        """The fold union on the test images (or why there is none), and the mask of every
        image with the rule that made it."""
        test_positions = self.positions(self.data.splits[0]["test"])
        if shared_test and len(test_positions):
            union = majority_vote(self.votes[test_positions], num_folds)
            fold_union = mean_scores(self.data.arrays["mask"][test_positions][..., 0], union)
            rule = (
                f"majority vote (> {num_folds}/2) of the {num_folds} fold models; test images were "
                "never seen by any of them, training/validation images were trained on by most"
            )
            return fold_union, None, majority_vote(self.votes, num_folds), rule
        reason = (
            "the folds do not share a test set (rotating test parts), so no image is predicted by "
            "all fold models; use SplitConfig(scheme='paper') for the fold union"
            if not shared_test else "the shared test set has no image with a mask"
        )
        if shared_test:
            return None, reason, majority_vote(self.votes, num_folds), (
                f"majority vote (> {num_folds}/2) of the {num_folds} fold models")
        return None, reason, self.out_of_fold, "out-of-fold: each image predicted by the fold model that tested it"

    def _modality_weights(self, results: list[dict]) -> dict | None:
        """The weight per modality path of each fold and their mean, with the rule (§3.2)."""
        if self.path_names is None:
            return None
        weighting = model_weighting(self.model, self.config)
        prestages = [result.get("auto_weight_prestage") for result in results]
        fold_weights = [
            prestage["weights"] if prestage else result["modality_weights"]
            for prestage, result in zip(prestages, results, strict=True)
        ]
        valid = [w for w in fold_weights if w is not None]
        modality_weights = {
            "weighting": weighting,
            "path_names": list(self.path_names),
            "per_fold": fold_weights,
            "mean": [float(v) for v in np.mean(valid, axis=0)] if valid else None,
            "rule": WEIGHTING_RULES[weighting],
        }
        if weighting == "prestage":
            modality_weights["prestage_val_accuracy"] = [
                prestage["val_accuracy"] if prestage else None for prestage in prestages
            ]
        return modality_weights

    def summarize(self, results: list[dict], timing: dict) -> dict:
        config, splits = self.config, self.data.splits
        scored = [result["test"] for result in results if result["test"] is not None]
        scores = summarize_folds(scored) if scored else {}
        lesion_scored = [result.get("test_lesion") for result in results if result.get("test_lesion")]
        lesion_scores = summarize_folds(lesion_scored) if lesion_scored else None
        normal_summary = _shares_over_folds(
            results, "test_normal", ("empty_share",),
            "share of the test images with an empty ground-truth mask (no lesion) whose "
            f"predicted mask is empty at threshold {config.threshold}",
        )
        missed_summary = _shares_over_folds(
            results, "test_lesion_missed", ("missed_share", "empty_share"),
            f"share of the test images with a lesion whose predicted mask has Dice < {MISSED_DICE} "
            f"(missed_share), or is empty (empty_share), at threshold {config.threshold}",
        )
        if lesion_scores and normal_summary:
            logger.info(
                f"{self.model} on lesion images: dice {lesion_scores['dice']['mean']:.3f} ± "
                f"{lesion_scores['dice']['sd']:.3f}"
                + (f", missed (dice < {MISSED_DICE}) {missed_summary['missed_share']['mean']:.0%}"
                   if missed_summary else "")
                + f"; images without a lesion predicted empty: {normal_summary['empty_share']['mean']:.0%}"
            )
        shared_test = shares_test_set(splits)
        fold_union, fold_union_reason, masks, masks_rule = self._masks(shared_test, len(splits))
        masks_path = inputs.save_predicted_masks(
            os.path.join(self.run_folder, layout.PREDICTED_MASKS_FILE), self.data.arrays["image_id"], masks,
            rule=masks_rule,
        )
        modality_weights = self._modality_weights(results)
        if scores:
            logger.info(f"{self.model}: " + ", ".join(
                f"{n} {v['mean']:.3f} ± {v['sd'] if v['sd'] is not None else float('nan'):.3f}"
                for n, v in scores.items()))
        if fold_union:
            logger.info(f"{self.model} fold union: " + ", ".join(f"{n} {v:.3f}" for n, v in fold_union.items()))
        return {
            "model": self.model,
            **self.data.record(self.model_size),
            "preset": self.preset,
            "config": to_dict(config),
            "split_config": to_dict(self.split),
            "num_folds": len(splits),
            "runtime": runtime_lib.describe(self.runtime),
            "shared_test_set": shared_test,
            **scores,
            "lesion_images": lesion_scores,
            "lesion_images_rule": "the same scores over the test images whose ground truth has a lesion",
            "lesion_images_missed": missed_summary,
            "normal_images": normal_summary,
            "fold_union": fold_union,
            "fold_union_reason": fold_union_reason,
            "folds": results,
            "modality_weights": modality_weights,
            "predicted_masks": masks_path,
            "predicted_masks_rule": masks_rule,
            "statistics": (
                f"per-image scores at threshold {config.threshold} (both masks empty: 1; one empty: 0), "
                f"averaged over each fold's test images; mean and population SD (ddof={SD_DDOF}) over folds"
            ),
            "model_selection": f"weights of the epoch with the best {MONITOR}; early stopping patience "
                               f"{config.early_stopping_patience}",
        }


def run_segmentation(
    model: str,
    data: DataConfig | ExperimentData,
    split: SplitConfig | None,
    experiment: ExperimentConfig,
    output: str,
    folds: Sequence[int] | None = None,
) -> dict:
    """Cross-validate one segmenter of Table 1 (paper §3.4, §4.1) and write its results.

    For each fold of the patient-level splits (made once per data set and split config, in
    ``<output>/data/<dataset>/splits.json``, so all models share them) the model is trained
    on the fold's training images, selected on its validation images (best validation Dice,
    early stopping; see :func:`~tf_bimodal.training.segmentation.fit_segmenter`) and scored
    on its test images (per-image Dice, IoU, precision, recall at ``config.threshold``,
    averaged over the images; :mod:`~tf_bimodal.training.metrics`). Scores are computed at
    the data's own image size: the predicted probabilities are resized bilinearly from the
    model size before thresholding, and compared with the original masks. Images without a
    mask (``has_mask`` False) are neither trained on nor scored, but get a predicted mask.

    The summary reports the mean ± SD (population SD, ``ddof=0``, as Table 2) over folds and,
    when all folds share one test set (``SplitConfig(scheme="paper")``), the fold union: the
    per-pixel majority (> K / 2) of the K fold models on the test images, scored the same way.
    With rotating test parts (``scheme="kfold"``) the fold union is null, with the reason.

    ``predicted_masks.npz`` holds a mask for every image of the data set, at the data's size:
    with a shared test set, the majority vote of the K fold models. Test images are thus
    predicted only by models that never saw them; a training or validation image is voted on
    by models most of which trained on it (its *mask*, never its label, so the classifier
    that crops with these masks learns nothing about the labels from them). With rotating
    test parts each image gets the prediction of the one fold model that tested it
    (out-of-fold).

    Args:
        model: one of ``SEGMENTATION_MODELS``: ``unet_bmode``, ``unet_semode``, ``mm_unet``,
            ``w_mm_unet_manual``, ``w_mm_unet``.
        data: the data set, resolved once per request (``ExperimentData``, see
            :mod:`tf_bimodal.experiments.experiment_data`), or a ``DataConfig`` that this call
            resolves.
        split: the patient-level split settings (``SplitConfig``; None: the data's own).
        experiment: the resolved settings (``ExperimentConfig``: its ``segmentation`` and
            ``runtime``; :func:`tf_bimodal.config.resolve_experiment` makes one from a preset).
            The batch size is global, split over the strategy's replicas; with
            ``multi_worker`` only the chief writes to ``output`` (the other workers write
            ``<output>/_workers/<job>_<index>``, see :mod:`tf_bimodal.training.runtime`).
        output: the experiment's folder.
        folds: train only these folds (one fold per job); the summary is written once every
            fold is finished (:func:`~tf_bimodal.experiments.cross_validation.cross_validate`).

    Returns:
        The summary dict written to ``<output>/<model>/summary.json`` (with ``folds``, a
        ``"partial"`` record until every fold is finished).

    Raises:
        ValueError: unknown model, or a multimodal model on data without SE-mode images (BUSI).
    """
    check_model_name(model)
    with experiment_runtime(experiment, output, "run_segmentation") as output:
        started = time.time()
        runtime, config = experiment.runtime, experiment.segmentation
        resolved = experiment_data(data, split, output)
        logger.info(f"Segmentation {model} on {resolved.name} (preset {experiment.name})")
        if resolved.synthetic:
            logger.info(SYNTHETIC_NOTICE)
        logger.info(f"  {len(resolved.arrays['image_id'])} images, dataset version {resolved.version}")
        check_modalities(model, resolved.arrays, resolved.name)
        run_folder = layout.run_dir(output, model)
        step = {"step": "segmentation", "model": model, "config": to_dict(config)}
        if model_weighting(model, config) == "prestage":
            step["prestage_batches"] = pipeline.BATCHES_REVISION  # its classifier reads fused batches
        key = run_cache_key(step, resolved, runtime)
        task = SegmentationTask(model, config, resolved, run_folder, resolved.split, experiment.name, runtime, started)
        summary = cross_validate(task, resolved.splits, run_folder, key,
                                 {"model": model, "preset": experiment.name}, runtime, started, folds)
        if not summary.get("reused") and not summary.get("partial"):
            logger.info(f"Wrote {os.path.join(run_folder, layout.SUMMARY_FILE)} and {summary['predicted_masks']} "
                        f"({summary['timing']['total_seconds']:.0f} s)")
        return summary
