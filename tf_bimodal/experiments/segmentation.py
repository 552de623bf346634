"""The segmentation experiment: K-fold training, scores, fold union, predicted masks (§3.4, §4.1).

``run_segmentation(model, data, split, preset, output)`` trains one of the five models of
Table 1 on every fold of the patient-level splits and writes::

    <output>/data/<dataset>/splits.json          the folds (shared by every model, made once)
    <output>/<model>/summary.json                mean ± SD over folds, fold union, weights, timing
    <output>/<model>/predicted_masks.npz         one mask per image, for cropping (§3.1)
    <output>/<model>/fold_<k>/metrics.json       that fold's test and validation scores
    <output>/<model>/fold_<k>/predictions.npz    that fold model's binary mask of every image
    <output>/<model>/fold_<k>/history.csv        the per-epoch training log
    <output>/<model>/fold_<k>/model.keras        the fold model (best validation-Dice epoch)
    <output>/<model>/run.json                    the settings' cache key

A second run with the same settings reuses ``summary.json``; after an interruption it
reuses the finished folds and resumes the unfinished one from its last epoch (see
:mod:`tf_bimodal.experiments.common` and :func:`~tf_bimodal.training.segmentation.fit_segmenter`).
"""

from __future__ import annotations

import os
import time

import keras
import numpy as np
import tensorflow as tf

from tf_bimodal.experiments.common import (
    SYNTHETIC_NOTICE,
    cache_key,
    data_identity,
    finished_fold,
    reusable_summary,
    start_run_dir,
    write_json,
)
from tf_bimodal.config import (
    AugmentConfig,
    DataConfig,
    RuntimeConfig,
    SegmentationConfig,
    SplitConfig,
    segmentation_preset,
    to_dict,
)
from tf_bimodal.data import dataset as dataset_lib
from tf_bimodal.data import pipeline
from tf_bimodal.data import splits as splits_lib
from tf_bimodal.evaluation.segmentation import (
    PREDICTED_MASKS_FILE,
    SD_DDOF,
    majority_vote,
    save_predicted_masks,
    summarise_folds,
)
from tf_bimodal.models.segmentation.factory import MODEL_INPUTS, build_segmenter, check_model_name, is_multimodal
from tf_bimodal.training.metrics import mean_scores
from tf_bimodal.training import runtime as runtime_lib
from tf_bimodal.training.segmentation import MONITOR, compile_segmenter, fit_segmenter
from tf_bimodal.training.tensorboard import fold_callbacks

ARRAY_KEYS = ("image_id", "bmode", "semode", "mask", "has_semode", "has_mask")

PREDICTION_BATCH = 16
FOLD_PREDICTIONS_FILE = "predictions.npz"


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


def segmentation_cache_key(model: str, config: SegmentationConfig, data: DataConfig, split: SplitConfig,
                           dataset_version: str, runtime: RuntimeConfig | None = None) -> str:
    """The cache key of a segmentation run: everything its results depend on (the precision
    too, not the strategy or the logging)."""
    payload = {"step": "segmentation", "model": model, "config": to_dict(config),
               "data": data_identity(data), "split": to_dict(split), "dataset_version": dataset_version}
    if runtime is not None and runtime.precision != "float32":
        payload["precision"] = runtime.precision
    return cache_key(payload)


def load_arrays(ds: tf.data.Dataset) -> dict:
    """All examples of ``ds`` as NumPy arrays in dataset order (ids decoded to str)."""
    return dataset_lib.load_arrays(ds, ARRAY_KEYS)


def resize_arrays(arrays: dict, size: int) -> dict:
    """Images and masks resized to ``size`` x ``size`` (uint8), for training at model size.

    Images: bilinear with antialiasing (speckle would alias when shrinking 336 -> 64).
    Masks: area-weighted, then > 0.5, so they stay binary and keep the lesion's extent.
    """
    if arrays["bmode"].shape[1] == size:
        return arrays
    out = dict(arrays)
    for key in ("bmode", "semode", "mask"):
        parts = []
        for start in range(0, len(arrays[key]), 64):
            chunk = tf.convert_to_tensor(arrays[key][start : start + 64], tf.float32)
            resized = tf.image.resize(chunk, (size, size), method="bilinear", antialias=True).numpy()
            if key == "mask":
                parts.append((resized > 0.5).astype(np.uint8))
            else:
                parts.append(np.clip(np.round(resized), 0, 255).astype(np.uint8))
        out[key] = np.concatenate(parts)
    return out


def _fold_dataset(arrays, image_ids, input_keys, config, training, seed, replicas=1):
    """Batches of ``image_ids`` for ``fit``, less a last one that would leave one of
    ``replicas`` empty (:func:`~tf_bimodal.training.runtime.replica_batches`)."""
    num_batches = runtime_lib.replica_batches(len(image_ids), config.batch_size, replicas)
    ds = tf.data.Dataset.from_tensor_slices(arrays)
    augment = AugmentConfig() if (training and config.augment) else None
    ds = pipeline.make_dataset(
        ds, config.batch_size, training=training, augment_config=augment, seed=seed,
        keys=(*input_keys, "mask"), image_ids=image_ids,
    )
    ds = ds.map(lambda batch: ({key: batch[key] for key in input_keys}, batch["mask"]))
    # Selecting ids filters, which hides the number of batches from Keras; state it.
    ds = ds.take(num_batches).apply(tf.data.experimental.assert_cardinality(num_batches))
    return runtime_lib.with_data_sharding(ds)


def _predict(model, arrays, input_keys, output_size: int) -> np.ndarray:
    """Lesion probabilities of every image, resized to ``output_size`` (float32 N x S x S)."""
    ds = tf.data.Dataset.from_tensor_slices({key: arrays[key] for key in input_keys})
    ds = pipeline.make_dataset(ds, PREDICTION_BATCH, training=False, cache=False)
    parts = []
    for batch in ds:
        probabilities = model(batch, training=False)
        if probabilities.shape[1] != output_size:
            probabilities = tf.image.resize(probabilities, (output_size, output_size), method="bilinear")
        parts.append(probabilities.numpy()[..., 0])
    return np.concatenate(parts)


def _mean_modality_weights(model, arrays, indices, input_keys):
    weights_model = model.modality_weights_model
    if weights_model is None or len(indices) == 0:
        return None
    ds = tf.data.Dataset.from_tensor_slices({key: arrays[key][indices] for key in input_keys})
    ds = pipeline.make_dataset(ds, PREDICTION_BATCH, training=False, cache=False)
    weights = np.concatenate([weights_model(batch, training=False).numpy() for batch in ds])
    return [float(w) for w in weights.mean(axis=0)]


def shares_test_set(splits) -> bool:
    """Whether every fold tests on the same images (the paper protocol, §3.1/§3.4)."""
    first = set(splits[0]["test"])
    return all(set(split["test"]) == first for split in splits)


def _check_modalities(model_name, arrays, dataset_name):
    if not is_multimodal(model_name):
        return
    missing = int(np.sum(~arrays["has_semode"]))
    if missing:
        raise ValueError(
            f"{model_name} segments from B-mode and SE-mode together, but {missing} of "
            f"{len(arrays['has_semode'])} images of data set {dataset_name!r} have no SE-mode image "
            "(B-mode-only data such as BUSI); run unet_bmode on it instead"
        )


def run_segmentation(
    model: str,
    data: DataConfig,
    split: SplitConfig,
    preset: str | SegmentationConfig = "quick",
    output: str = "runs",
    log=print,
    runtime: RuntimeConfig | None = None,
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

    The summary reports the mean ± SD (population SD, ``ddof=0``, as Table 2) over folds and, when all
    folds share one test set (``SplitConfig(scheme="paper")``), the fold union: the per-pixel
    majority (> K / 2) of the K fold models on the test images, scored the same way. With
    rotating test parts (``scheme="kfold"``) the fold union is null, with the reason.

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
        data: the data set (``DataConfig``).
        split: the patient-level split settings (``SplitConfig``).
        preset: a name in ``SEGMENTATION_PRESETS`` (``quick``, ``paper``) or a
            ``SegmentationConfig``.
        output: results folder.
        log: where progress lines go (model, fold, epoch, elapsed time).
        runtime: strategy, precision and TensorBoard (``RuntimeConfig``; default: the
            default strategy, float32, TensorBoard logs in ``fold_<k>/tensorboard``). The
            preset's batch size is global, split over the strategy's replicas; with
            ``multi_worker`` only the chief writes to ``output`` (the other workers read and
            write ``<output>/_workers/<job>_<index>``, see :mod:`tf_bimodal.training.runtime`).

    Returns:
        The summary dict written to ``<output>/<model>/summary.json``.

    Raises:
        ValueError: unknown model or preset, or a multimodal model on data without SE-mode
            images (e.g. BUSI).
    """
    # First: a multi-worker strategy must exist before any other TensorFlow op runs.
    runtime_lib.strategy_for(runtime)
    output = runtime_lib.worker_output(output, runtime)
    with runtime_lib.precision(runtime):
        return _run_segmentation(model, data, split, preset, output, log, runtime)


def _run_segmentation(model, data, split, preset, output, log, runtime) -> dict:
    started = time.time()
    check_model_name(model)
    if isinstance(preset, SegmentationConfig):
        config, preset_name = preset, "custom"
    else:
        config, preset_name = segmentation_preset(preset), preset
    dataset_name = dataset_lib.builder_config_name(data)
    log(f"Segmentation {model} on {dataset_name} (preset {preset_name})")
    if data.source == "phantom":
        log(SYNTHETIC_NOTICE)

    builder = dataset_lib.prepare(data)
    index = dataset_lib.index_dataset(builder)
    ds, info = dataset_lib.load_dataset(data)
    arrays = load_arrays(ds)
    log(f"  {len(arrays['image_id'])} images, dataset version {info.version}")
    _check_modalities(model, arrays, dataset_name)
    model_dir = os.path.join(output, model)
    key = segmentation_cache_key(model, config, data, split, str(info.version), runtime)
    done = reusable_summary(model_dir, key)
    if done is not None:
        log(f"{model}: reusing the finished run in {model_dir} (same settings, cache key {key})")
        return {**done, "reused": True}
    start_run_dir(model_dir, key, {"model": model, "preset": preset_name}, log=log)
    image_size = int(arrays["bmode"].shape[1])
    model_size = config.image_size or image_size
    model_arrays = resize_arrays(arrays, model_size)
    input_keys = MODEL_INPUTS[model]

    splits = splits_lib.load_or_make_splits(
        os.path.join(output, "data", dataset_name, "splits.json"),
        index.image_ids, index.patient_ids, index.labels, split,
    )
    position = {image_id: i for i, image_id in enumerate(arrays["image_id"])}
    has_mask = arrays["has_mask"]

    def positions(ids, masked_only=True):
        found = np.array([position[i] for i in ids], dtype=np.int64)
        return found[has_mask[found]] if masked_only else found

    shared_test = shares_test_set(splits)
    num_folds = len(splits)
    votes = np.zeros((len(arrays["image_id"]), image_size, image_size), np.uint8)
    out_of_fold = np.zeros_like(votes)
    fold_results, fold_weights, fold_seconds, reused_folds = [], [], [], []
    path_names = None
    truth = arrays["mask"][..., 0]

    for fold_number, fold in enumerate(splits):
        fold_started = time.time()
        k = fold["fold"]
        fold_dir = os.path.join(model_dir, f"fold_{k}")
        os.makedirs(fold_dir, exist_ok=True)
        train_ids = [arrays["image_id"][i] for i in positions(fold["train"])]
        val_ids = [arrays["image_id"][i] for i in positions(fold["val"])]
        test_positions = positions(fold["test"])
        if not train_ids or not val_ids:
            raise ValueError(
                f"fold {k} has {len(train_ids)} training and {len(val_ids)} validation images with a mask; "
                "segmentation needs at least one of each"
            )
        label = f"{model} fold {k} ({fold_number + 1}/{num_folds})"
        all_test = positions(fold["test"], masked_only=False)
        predictions_path = os.path.join(fold_dir, FOLD_PREDICTIONS_FILE)
        result = finished_fold(fold_dir, key)
        if result is not None and os.path.isfile(predictions_path):
            binary = load_fold_predictions(predictions_path)
            votes += binary
            out_of_fold[all_test] = binary[all_test]
            fold_results.append(result)
            fold_weights.append(result["modality_weights"])
            fold_seconds.append(result["seconds"])
            path_names = result.get("path_names")
            reused_folds.append(k)
            log(f"{label}: finished earlier, reusing {fold_dir}")
            continue
        runtime_lib.clear_session(runtime)  # keeps the dtype policy, unlike keras' own
        keras.utils.set_random_seed(config.seed + k)
        with runtime_lib.strategy_for(runtime).scope():
            segmenter = compile_segmenter(build_segmenter(model, config, model_size), config)
        path_names = getattr(segmenter, "path_names", None)
        replicas = runtime_lib.strategy_for(runtime).num_replicas_in_sync
        train_ds = _fold_dataset(model_arrays, train_ids, input_keys, config, True, config.seed + k, replicas)
        val_ds = _fold_dataset(model_arrays, val_ids, input_keys, config, False, config.seed + k, replicas)
        log(f"{label}: train {len(train_ids)}, val {len(val_ids)}, test {len(test_positions)} images")
        extra_callbacks = fold_callbacks(
            runtime, fold_dir, "segmentation", model=segmenter,
            val_inputs={key: model_arrays[key][positions(fold["val"])] for key in input_keys},
            val_masks=model_arrays["mask"][positions(fold["val"])],
        )
        training = fit_segmenter(
            segmenter, train_ds, val_ds, config, fold_dir=fold_dir, label=label, log=log, started=started,
            extra_callbacks=extra_callbacks,
        )
        if training["resumed_from_epoch"]:
            log(f"{label}: resumed an interrupted fit at epoch {training['resumed_from_epoch']}")
        if config.save_models:
            segmenter.save(os.path.join(fold_dir, "model.keras"))

        probabilities = _predict(segmenter, model_arrays, input_keys, image_size)
        binary = (probabilities > config.threshold).astype(np.uint8)
        save_fold_predictions(predictions_path, binary)
        votes += binary
        out_of_fold[all_test] = binary[all_test]
        val_positions = positions(fold["val"])
        test_scores = mean_scores(truth[test_positions], binary[test_positions]) if len(test_positions) else None
        val_scores = mean_scores(truth[val_positions], binary[val_positions])
        weights = _mean_modality_weights(segmenter, model_arrays, test_positions, input_keys)
        seconds = time.time() - fold_started
        fold_seconds.append(seconds)
        fold_weights.append(weights)
        result = {
            "fold": k,
            "cache_key": key,
            "test": test_scores,
            "val": val_scores,
            "num_images": {"train": len(train_ids), "val": len(val_ids), "test": int(len(test_positions))},
            "best_epoch": training["best_epoch"],
            "best_val_dice": training["best_val_dice"],
            "epochs_run": training["epochs_run"],
            "resumed_from_epoch": training["resumed_from_epoch"],
            "modality_weights": weights,
            "path_names": list(path_names) if path_names is not None else None,
            "seconds": round(seconds, 1),
        }
        fold_results.append(result)
        write_json(os.path.join(fold_dir, "metrics.json"), result)
        test_text = " ".join(f"{n} {v:.3f}" for n, v in (test_scores or {}).items())
        folds_left = num_folds - fold_number - 1
        log(f"{label}: best epoch {training['best_epoch']} (val dice {training['best_val_dice']:.3f}), "
            f"test {test_text} (fold {seconds:.0f} s, elapsed {time.time() - started:.0f} s, "
            f"{folds_left} folds left, about {folds_left * seconds:.0f} s)")
        del segmenter

    scored = [result["test"] for result in fold_results if result["test"] is not None]
    summary_scores = summarise_folds(scored) if scored else {}
    test_positions = positions(splits[0]["test"])
    if shared_test and len(test_positions):
        union = majority_vote(votes[test_positions], num_folds)
        fold_union = mean_scores(arrays["mask"][test_positions][..., 0], union)
        fold_union_reason = None
        masks = majority_vote(votes, num_folds)
        masks_rule = (
            f"majority vote (> {num_folds}/2) of the {num_folds} fold models; test images were "
            "never seen by any of them, training/validation images were trained on by most"
        )
    else:
        fold_union = None
        fold_union_reason = (
            "the folds do not share a test set (rotating test parts), so no image is predicted by "
            "all fold models; use SplitConfig(scheme='paper') for the fold union"
            if not shared_test else "the shared test set has no image with a mask"
        )
        masks = out_of_fold if not shared_test else majority_vote(votes, num_folds)
        masks_rule = (
            "out-of-fold: each image predicted by the fold model that tested it"
            if not shared_test else f"majority vote (> {num_folds}/2) of the {num_folds} fold models"
        )
    masks_path = save_predicted_masks(
        os.path.join(model_dir, PREDICTED_MASKS_FILE), arrays["image_id"], masks, rule=masks_rule
    )

    modality_weights = None
    if path_names is not None:
        valid = [w for w in fold_weights if w is not None]
        modality_weights = {
            "path_names": list(path_names),
            "per_fold": fold_weights,
            "mean": [float(v) for v in np.mean(valid, axis=0)] if valid else None,
            "rule": "mean over each fold's test images of the weights the model applied "
                    "in its weighted skip connection (§3.2.3)",
        }
    total_seconds = time.time() - started
    summary = {
        "model": model,
        "cache_key": key,
        "dataset": f"bimodal_breast_us/{dataset_name}",
        "dataset_version": str(info.version),
        "source_fingerprint": dataset_lib.stored_fingerprint(builder),
        "synthetic": data.source == "phantom",
        "preset": preset_name,
        "config": to_dict(config),
        "data_config": to_dict(data),
        "split_config": to_dict(split),
        "num_folds": num_folds,
        "runtime": runtime_lib.describe(runtime),
        "shared_test_set": shared_test,
        **summary_scores,
        "fold_union": fold_union,
        "fold_union_reason": fold_union_reason,
        "folds": fold_results,
        "modality_weights": modality_weights,
        "predicted_masks": masks_path,
        "predicted_masks_rule": masks_rule,
        "image_size": {"data": image_size, "model": model_size},
        "statistics": (
            f"per-image scores at threshold {config.threshold} (both masks empty: 1; one empty: 0), "
            f"averaged over each fold's test images; mean and population SD (ddof={SD_DDOF}) over folds"
        ),
        "model_selection": f"weights of the epoch with the best {MONITOR}; early stopping patience "
                           f"{config.early_stopping_patience}",
        "timing": {
            "total_seconds": round(total_seconds, 1),
            "fold_seconds": [round(s, 1) for s in fold_seconds],
            "reused_folds": reused_folds,
        },
    }
    write_json(os.path.join(model_dir, "summary.json"), summary)
    if summary_scores:
        text = ", ".join(f"{n} {v['mean']:.3f} ± {v['sd'] if v['sd'] is not None else float('nan'):.3f}"
                         for n, v in summary_scores.items())
        log(f"{model}: {text}")
    if fold_union:
        log(f"{model} fold union: " + ", ".join(f"{n} {v:.3f}" for n, v in fold_union.items()))
    log(f"Wrote {os.path.join(model_dir, 'summary.json')} and {masks_path} ({total_seconds:.0f} s)")
    return summary
