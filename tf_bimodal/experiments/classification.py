"""The classification experiment: Table 2 (paper §3.3, §3.4, §4.2).

``run_classification(model, data, split, preset, crop, output)`` trains one classifier of
Table 2 on every fold of the patient-level splits and writes into ``<output>/<run>/``, where
``<run>`` is the model's name for W-MM-U-Net crops and ``<model>_crop_<crop>`` otherwise
(``tf_bimodal.config.classification_run_name``)::

    <output>/data/<dataset>/splits.json        the folds (shared by every model, made once)
    <output>/<model>/summary.json              patient-wise mean ± SD over folds (main numbers),
                                               image-wise too, thresholds, backbone weights,
                                               dataset, timing, config
    <output>/<model>/roc.png                   test ROC curve of every fold (Fig. 6)
    <output>/<model>/fold_<k>/metrics.json     that fold's image- and patient-wise test metrics
    <output>/<model>/fold_<k>/predictions.csv  validation and test probabilities per image
    <output>/<model>/fold_<k>/history.csv      the per-epoch training log
    <output>/<model>/fold_<k>/config.json      the fold's full configuration
    <output>/<model>/fold_<k>/model.keras      the fold model (best validation-loss epoch)
    <output>/<model>/run.json                  the settings' cache key

A second run with the same settings (and, for predicted crops, the same masks) reuses
``summary.json``; after an interruption it reuses the finished folds and resumes the
unfinished one from its last epoch.

Protocol per fold: train on the fold's training images, keep the weights of the epoch with
the lowest validation loss, choose the decision threshold on the validation images by the
Youden index (§3.3.1), then classify the test images and vote per patient (§4.2). Only benign
and malignant images take part: BUSI's ``normal`` images (no lesion) are excluded, since the
task is benign versus malignant.

Inputs (``crop``, §3.1, §4.2): crops around the W-MM-U-Net masks (``"predicted"``, read from
``<output>/w_mm_unet/predicted_masks.npz``), around the ground-truth masks (``"manual"``), or
the full images (``"none"``), resized to the model's input size. The crop margin is the
paper's 50 pixels at its 336-pixel image size, scaled to the data's image size.
"""

from __future__ import annotations

import csv
import json
import math
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
    CLASSIFICATION_CROPS,
    CLASSIFICATION_MODELS,
    AugmentConfig,
    ClassificationConfig,
    CropConfig,
    RuntimeConfig,
    classification_run_name,
    DataConfig,
    SplitConfig,
    classification_preset,
    to_dict,
)
from tf_bimodal.data import dataset as dataset_lib
from tf_bimodal.data import pipeline
from tf_bimodal.data import splits as splits_lib
from tf_bimodal.data.schema import DEFAULT_IMAGE_SIZE
from tf_bimodal.evaluation.classification import (
    METRIC_NAMES,
    evaluate_predictions,
    save_roc_figure,
    summarize_folds,
    youden_threshold,
)
from tf_bimodal.models.classification.backbone_weights import imagenet_vgg16, load_backbone_weights
from tf_bimodal.models.classification.factory import (
    AVAILABILITY_MODELS,
    MODEL_DESCRIPTIONS,
    backbone_names,
    build_backbone,
    build_classifier,
    model_input_keys,
)
from tf_bimodal.training import runtime as runtime_lib
from tf_bimodal.training.callbacks import ProgressLogger, resumable_callbacks
from tf_bimodal.training.tensorboard import fold_callbacks, write_fold_summary

SEGMENTATION_MODEL_FOR_CROPS = "w_mm_unet"
PREDICTED_MASKS_FILE = "predicted_masks.npz"
ARRAY_KEYS = ("image_id", "patient_id", "label", "bmode", "semode", "mask", "has_semode", "has_mask")
BINARY_CLASSES = (0, 1)
PREDICTION_BATCH = 32


# --------------------------------------------------------------------------- settings


def preset_notice(config: ClassificationConfig) -> str | None:
    """A warning line for settings far from the paper's (the ``cpu`` and ``quick`` presets)."""
    if config.preset not in ("cpu", "quick"):
        return None
    return (
        f"{config.preset.upper()} PRESET: a narrow VGG-16 (filters {list(config.stackwise_num_filters)}, "
        f"{config.fc_units}-d features), {config.input_size}-pixel inputs, at most "
        f"{config.epochs} epochs, backbone weights {config.backbone_weights!r}: a smoke "
        "setting for a CPU, not the paper's (336 px, 4096-d, ImageNet VGG-16)"
    )


def crop_margin(data: DataConfig, crop_config: CropConfig | None = None) -> int:
    """The paper's 50-pixel margin at 336 pixels (§3.1), scaled to the data's image size."""
    crop_config = crop_config or CropConfig()
    return int(round(crop_config.margin * data.image_size / DEFAULT_IMAGE_SIZE))


def _read_json(path):
    with open(path) as handle:
        return json.load(handle)


# --------------------------------------------------------------------------- data


def load_arrays(ds: tf.data.Dataset) -> dict:
    """All examples of ``ds`` as NumPy arrays in dataset order (ids decoded to str)."""
    return dataset_lib.load_arrays(ds, ARRAY_KEYS)


def predicted_masks_path(output: str) -> str:
    """Where ``--crop predicted`` reads the W-MM-U-Net masks."""
    return os.path.join(output, SEGMENTATION_MODEL_FOR_CROPS, PREDICTED_MASKS_FILE)


def check_predicted_masks(output: str) -> str:
    """The path of the W-MM-U-Net masks under ``output``.

    Raises:
        FileNotFoundError: they do not exist yet, saying which run makes them.
    """
    path = predicted_masks_path(output)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"crop='predicted' needs the W-MM-U-Net masks at {path}, which does not exist; run "
            f"`python run_experiments.py --model {SEGMENTATION_MODEL_FOR_CROPS}` first (same "
            "--output and data options), or choose crop='manual' or 'none'"
        )
    return path


def apply_crop_masks(arrays: dict, crop: str, output: str) -> tuple[dict, dict]:
    """The arrays with the masks ``crop`` asks for, and a record of what was used.

    Raises:
        FileNotFoundError: ``crop="predicted"`` without the segmentation's masks file.
        ValueError: an unknown ``crop``, or predicted masks missing images or of another size.
    """
    if crop not in CLASSIFICATION_CROPS:
        raise ValueError(f"crop must be one of {CLASSIFICATION_CROPS}, got {crop!r}")
    if crop == "none":
        return arrays, {"crop": "none", "masks": None}
    if crop == "manual":
        missing = int(np.sum(~arrays["has_mask"]))
        return arrays, {
            "crop": "manual",
            "masks": "ground truth (dataset 'mask')",
            "images_without_mask_left_uncropped": missing,
        }
    path = check_predicted_masks(output)
    from tf_bimodal.evaluation.segmentation import load_predicted_masks

    masks = load_predicted_masks(path)
    missing = [image_id for image_id in arrays["image_id"] if image_id not in masks]
    if missing:
        raise ValueError(
            f"{path}: has no predicted mask for {len(missing)} of {len(arrays['image_id'])} images "
            f"(e.g. {missing[:3]}); it was made for other data"
        )
    stacked = np.stack([masks[image_id] for image_id in arrays["image_id"]])
    if stacked.ndim == 3:
        stacked = stacked[..., None]
    if stacked.shape[1:3] != arrays["mask"].shape[1:3]:
        raise ValueError(
            f"{path}: masks are {stacked.shape[1:3]} pixels, the images {arrays['mask'].shape[1:3]}"
        )
    out = dict(arrays)
    out["mask"] = (stacked > 0).astype(np.uint8)
    return out, {"crop": "predicted", "masks": path}


def classification_dataset(
    arrays: dict,
    image_ids,
    input_keys,
    input_size: int,
    crop_config: CropConfig | None,
    batch_size: int = PREDICTION_BATCH,
    training: bool = False,
    augment: bool = False,
    modality_dropout: float = 0.0,
    seed: int = 0,
    with_metadata: bool = False,
    replicas: int = 1,
) -> tf.data.Dataset:
    """Batches of ``(inputs, label)`` with the model inputs ``input_keys`` of ``image_ids``.

    Uses :func:`tf_bimodal.data.pipeline.make_dataset`: augmentation (``training`` and
    ``augment``) before the crop, so the crop follows the moved lesion, then the crop
    (``crop_config``) or a plain resize to ``input_size``; for training, the three are one
    resampling at ``input_size``. Images are float32 in [0, 1];
    ``availability`` is ``[1, has_semode]``. With ``modality_dropout`` > 0 (training only) a
    pair loses one of its two images (zeroed, availability 0) with that probability, see
    :func:`drop_modalities`. ``with_metadata`` adds ``image_id``, ``patient_id`` and ``label``
    to the inputs dict, for :func:`predict_probabilities`. For ``fit`` under ``replicas``
    replicas, a last batch of fewer images than replicas is left out
    (:func:`~tf_bimodal.training.runtime.replica_batches`).
    """
    ds = tf.data.Dataset.from_tensor_slices(arrays)
    ds = pipeline.make_dataset(
        ds,
        batch_size,
        training=training,
        augment_config=AugmentConfig() if (training and augment) else None,
        seed=seed,
        crop=crop_config,
        output_size=input_size,
        keys=("image_id", "patient_id", "label", "bmode", "semode", "has_semode"),
        image_ids=image_ids,
    )
    input_keys = tuple(input_keys)

    def to_inputs(batch):
        has_semode = tf.cast(batch["has_semode"], tf.float32)
        availability = tf.stack([tf.ones_like(has_semode), has_semode], axis=-1)
        inputs = {"bmode": batch["bmode"], "semode": batch["semode"], "availability": availability}
        inputs = {key: inputs[key] for key in input_keys}
        if with_metadata:
            inputs.update({key: batch[key] for key in ("image_id", "patient_id", "label")})
        return inputs, batch["label"]

    # The id filter hides the size from Keras; state it (one partial batch at the end).
    num_batches = runtime_lib.replica_batches(len(set(image_ids)), batch_size, replicas)
    ds = ds.map(to_inputs).take(num_batches)
    ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches))
    ds = runtime_lib.with_data_sharding(ds)
    if training and modality_dropout > 0:
        if "availability" not in input_keys:
            raise ValueError("modality_dropout needs a model with an 'availability' input")
        seeds = tf.data.Dataset.random(seed=seed + 7919, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda example, pair: (drop_modalities(example[0], pair, modality_dropout), example[1])
        )
    return ds


def drop_modalities(inputs: dict, seed, rate: float) -> tuple:
    """With probability ``rate`` per pair that has both images, hide one of the two.

    The hidden image is zeroed and its availability set to 0; returns the new inputs dict.
    """
    availability = inputs["availability"]
    batch = tf.shape(availability)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    drop = tf.random.stateless_uniform([batch], seeds[0]) < rate
    both = tf.reduce_all(availability > 0, axis=-1)
    which = tf.random.stateless_uniform([batch], seeds[1], 0, 2, dtype=tf.int32)
    hidden = tf.one_hot(which, 2) * tf.cast(drop & both, tf.float32)[:, None]
    availability = availability * (1.0 - hidden)
    out = dict(inputs)
    out["availability"] = availability
    for column, key in enumerate(("bmode", "semode")):
        out[key] = inputs[key] * availability[:, column][:, None, None, None]
    return out


def predict_probabilities(model_object, ds: tf.data.Dataset) -> dict:
    """Probability of malignancy per image of a ``with_metadata`` dataset, with its ids."""
    input_names = set(model_object.input.keys()) if isinstance(model_object.input, dict) else None
    columns = {"image_id": [], "patient_id": [], "label": [], "probability": []}
    for inputs, _ in ds:
        feed = {key: value for key, value in inputs.items() if input_names is None or key in input_names}
        outputs = model_object(feed, training=False)
        columns["probability"].append(np.asarray(outputs["decision"])[:, 1])
        for key in ("image_id", "patient_id"):
            columns[key].extend(value.decode() for value in inputs[key].numpy())
        columns["label"].append(inputs["label"].numpy())
    return {
        "image_id": np.asarray(columns["image_id"]),
        "patient_id": np.asarray(columns["patient_id"]),
        "label": np.concatenate(columns["label"]).astype(np.int64),
        "probability": np.concatenate(columns["probability"]).astype(np.float64),
    }


def _write_predictions(path, parts: dict, threshold: float):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "image_id", "patient_id", "label", "probability_malignant", "prediction"])
        for part, predictions in parts.items():
            for image_id, patient_id, label, probability in zip(
                predictions["image_id"], predictions["patient_id"], predictions["label"], predictions["probability"]
            ):
                writer.writerow(
                    [part, image_id, patient_id, int(label), f"{probability:.6f}", int(probability >= threshold)]
                )


def read_test_predictions(fold_dir: str) -> dict:
    """The test rows of a finished fold's ``predictions.csv``: labels and probabilities."""
    labels, probabilities = [], []
    with open(os.path.join(fold_dir, "predictions.csv")) as handle:
        for row in csv.DictReader(handle):
            if row["split"] == "test":
                labels.append(int(row["label"]))
                probabilities.append(float(row["probability_malignant"]))
    return {"label": np.asarray(labels, np.int64), "probability": np.asarray(probabilities, np.float64)}


def _masks_fingerprint(path: str) -> str:
    """A hash of the masks file, so classifiers cropped with other masks are not reused."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _usable(arrays: dict, model: str) -> tuple[np.ndarray, dict]:
    """Boolean mask of the images the binary task of ``model`` can use, and the counts left out."""
    binary = np.isin(arrays["label"], BINARY_CLASSES)
    usable = binary.copy()
    excluded = {"normal (no lesion; not part of benign vs malignant)": int(np.sum(~binary))}
    needs_semode = model not in ("vgg16_bmode",) and model not in AVAILABILITY_MODELS
    if needs_semode:
        without = binary & ~arrays["has_semode"]
        usable &= arrays["has_semode"]
        excluded["without SE-mode (this model needs both images)"] = int(np.sum(without))
    return usable, excluded


def _check_semode(model: str, arrays: dict, usable: np.ndarray, dataset_name: str):
    if model == "vgg16_bmode":
        return
    binary = np.isin(arrays["label"], BINARY_CLASSES)
    if not np.any(arrays["has_semode"][binary]):
        raise ValueError(
            f"{model} uses SE-mode images, but data set {dataset_name!r} has none (B-mode only, e.g. "
            "BUSI); train vgg16_bmode on it, or evaluate an MFF trained on bimodal data with "
            "evaluate_bmode_only(...)"
        )
    if not np.any(usable):
        raise ValueError(f"{model}: no usable benign/malignant image in {dataset_name!r}")


# --------------------------------------------------------------------------- backbone weights


class _CachedImagenet:
    """Loads the ImageNet VGG-16 at most once per run (or fails once)."""

    def __init__(self):
        self.model = None
        self.error = None

    def __call__(self):
        if self.error is not None:
            raise self.error
        if self.model is None:
            try:
                self.model = imagenet_vgg16()
            except Exception as error:
                self.error = error
                raise
        return self.model


def _initialised_backbones(model: str, config: ClassificationConfig, loader, log):
    backbones, records = {}, {}
    for name in backbone_names(model):
        backbone = build_backbone(config, name)
        records[name] = load_backbone_weights(
            backbone, config.backbone_weights, allow_fallback=True, loader=loader, log=log
        )
        backbones[name] = backbone
    return backbones, records


def _normalization(config: ClassificationConfig, records: dict) -> str:
    if config.normalization != "auto":
        return config.normalization
    used = {record["used"] for record in records.values()}
    return "caffe" if used == {"imagenet"} else "standardize"


def _run_fold(model, config, arrays, parts, crop_config, fold_dir, label, loader, log, runtime, fold_config) -> tuple:
    """Train, select, threshold and test one fold; write its files (see the module docstring).

    Returns:
        ``(result, test_predictions)``: the dict written to ``metrics.json`` and the test
        probabilities.
    """
    fold_started = time.time()
    os.makedirs(fold_dir, exist_ok=True)
    log(f"{label}: train {len(parts['train'])}, val {len(parts['val'])}, test {len(parts['test'])} images")
    runtime_lib.clear_session(runtime)  # keeps the dtype policy, unlike keras' own
    seed = config.seed + int(fold_config["fold"])
    keras.utils.set_random_seed(seed)
    with runtime_lib.strategy_for(runtime).scope():
        backbones, records = _initialised_backbones(model, config, loader, log)
        normalization = _normalization(config, records)
        classifier = build_classifier(model, config, normalization, backbones=backbones)
        classifier.compile(
            optimizer=keras.optimizers.SGD(
                learning_rate=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay
            )
        )
    input_keys = model_input_keys(model)
    replicas = runtime_lib.strategy_for(runtime).num_replicas_in_sync
    train_ds = classification_dataset(
        arrays, parts["train"], input_keys, config.input_size, crop_config, config.batch_size,
        training=True, augment=config.augment,
        modality_dropout=config.modality_dropout if model in AVAILABILITY_MODELS else 0.0, seed=seed,
        replicas=replicas,
    )
    val_ds = classification_dataset(
        arrays, parts["val"], input_keys, config.input_size, crop_config, replicas=replicas
    )
    # Model selection: the weights of the epoch with the lowest validation loss; the fit
    # resumes from its last epoch if the run was interrupted.
    callbacks, early_stopping = resumable_callbacks(
        fold_dir, monitor="val_loss", patience=config.early_stopping_patience
    )
    callbacks += [
        ProgressLogger(label, config.epochs, log=log),
        *fold_callbacks(runtime, fold_dir, "classification", model=classifier),
    ]
    classifier.fit(
        train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks, shuffle=False, verbose=0
    )
    if early_stopping.resumed_from is not None:
        log(f"{label}: resumed an interrupted fit at epoch {early_stopping.resumed_from + 1}")

    predictions = {
        part: predict_probabilities(
            classifier,
            classification_dataset(arrays, parts[part], input_keys, config.input_size, crop_config, with_metadata=True),
        )
        for part in ("val", "test")
    }
    threshold = youden_threshold(predictions["val"]["label"], predictions["val"]["probability"])
    if threshold["reason"]:
        log(f"{label}: threshold {threshold['threshold']} ({threshold['reason']})")
    test = predictions["test"]
    metrics = evaluate_predictions(test["label"], test["probability"], test["patient_id"], threshold["threshold"])
    write_fold_summary(fold_dir, test["label"], test["probability"], threshold["threshold"], runtime)
    classifier.save(os.path.join(fold_dir, "model.keras"))
    _write_predictions(os.path.join(fold_dir, "predictions.csv"), predictions, threshold["threshold"])
    result = {
        "fold": fold_config["fold"],
        "patient_wise": metrics["patient"],
        "image_wise": metrics["image"],
        "threshold": threshold,
        "num_images": {part: len(ids) for part, ids in parts.items()},
        "num_patients": {part: len(set(predictions[part]["patient_id"])) for part in ("val", "test")},
        "cache_key": fold_config["cache_key"],
        "best_epoch": int(early_stopping.best_epoch) + 1,
        "epochs_run": int(early_stopping.last_epoch) + 1,
        "resumed_from_epoch": None if early_stopping.resumed_from is None else early_stopping.resumed_from + 1,
        "normalization": normalization,
        "backbone_weights": records,
        "seconds": round(time.time() - fold_started, 1),
    }
    write_json(
        os.path.join(fold_dir, "config.json"),
        {**fold_config, "normalization": normalization, "backbone_weights": records},
    )
    write_json(os.path.join(fold_dir, "metrics.json"), result)  # last: marks the fold finished
    return result, test


# --------------------------------------------------------------------------- the experiment


def run_classification(
    model: str,
    data: DataConfig,
    split: SplitConfig,
    preset: str | ClassificationConfig = "quick",
    crop: str = "predicted",
    output: str = "runs",
    log=print,
    runtime: RuntimeConfig | None = None,
) -> dict:
    """Cross-validate one classifier of Table 2 (§3.3, §3.4, §4.2) and write its results.

    See the module docstring for the protocol and the files written. The main numbers of
    the summary are patient-wise (§4.2: majority vote, a tie going to malignant), as mean
    ± SD (population SD, see :mod:`tf_bimodal.evaluation.classification`) over the folds;
    the image-wise numbers are under ``"image_wise"``.

    Args:
        model: one of ``CLASSIFICATION_MODELS``: ``mff``, ``mff_early``, ``mff_late``,
            ``mff_stack``, ``mff_intermediate``, ``vgg16_bmode``, ``vgg16_semode``.
        data: the data set (``DataConfig``).
        split: the patient-level split settings (``SplitConfig``).
        preset: a name in ``CLASSIFICATION_PRESETS`` (``quick``, ``paper``) or a
            ``ClassificationConfig``.
        crop: ``"predicted"`` (W-MM-U-Net masks; needs ``<output>/w_mm_unet/predicted_masks.npz``),
            ``"manual"`` (ground-truth masks) or ``"none"`` (full images).
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
        ValueError: unknown model, preset or crop; a model that needs SE-mode images on data
            without any (BUSI).
        FileNotFoundError: ``crop="predicted"`` before the W-MM-U-Net masks exist.
    """
    # First: a multi-worker strategy must exist before any other TensorFlow op runs.
    runtime_lib.strategy_for(runtime)
    output = runtime_lib.worker_output(output, runtime)
    with runtime_lib.precision(runtime):
        return _run_classification(model, data, split, preset, crop, output, log, runtime)


def _run_classification(model, data, split, preset, crop, output, log, runtime) -> dict:
    started = time.time()
    if model not in CLASSIFICATION_MODELS:
        raise ValueError(f"model must be one of {CLASSIFICATION_MODELS}, got {model!r}")
    if crop not in CLASSIFICATION_CROPS:
        raise ValueError(f"crop must be one of {CLASSIFICATION_CROPS}, got {crop!r}")
    config = classification_preset(preset)
    dataset_name = dataset_lib.builder_config_name(data)
    synthetic = data.source == "phantom"
    log(f"Classification {model} [{MODEL_DESCRIPTIONS[model]}] on {dataset_name} "
        f"(preset {config.preset}, crop {crop})")
    if synthetic:
        log(SYNTHETIC_NOTICE)
    notice = preset_notice(config)
    if notice:
        log(notice)

    if crop == "predicted":
        check_predicted_masks(output)  # fail before any expensive step
    builder = dataset_lib.prepare(data)
    index = dataset_lib.index_dataset(builder)
    splits = splits_lib.load_or_make_splits(
        os.path.join(output, "data", dataset_name, "splits.json"),
        index.image_ids, index.patient_ids, index.labels, split,
    )
    ds, info = dataset_lib.load_dataset(data)
    arrays, crop_record = apply_crop_masks(load_arrays(ds), crop, output)
    usable, excluded = _usable(arrays, model)
    _check_semode(model, arrays, usable, dataset_name)
    usable_ids = set(arrays["image_id"][usable].tolist())
    margin = crop_margin(data)
    crop_config = None if crop == "none" else CropConfig(margin=margin, shape=CropConfig().shape)
    crop_record.update(
        margin_px=None if crop == "none" else margin,
        margin_rule="50 px at 336 px (§3.1), scaled to the data's image size",
        shape=None if crop == "none" else CropConfig().shape,
        input_size=config.input_size,
    )
    for reason, count in excluded.items():
        if count:
            log(f"  excluded {count} images: {reason}")

    run_name = classification_run_name(model, crop)
    model_dir = os.path.join(output, run_name)
    key = cache_key({
        "step": "classification", "model": model, "crop": crop, "config": to_dict(config),
        "data": data_identity(data), "split": to_dict(split), "dataset_version": str(info.version),
        "batches": pipeline.BATCHES_REVISION,
        "masks": _masks_fingerprint(crop_record["masks"]) if crop == "predicted" else None,
        **({"precision": runtime.precision} if runtime is not None and runtime.precision != "float32" else {}),
    })
    done = reusable_summary(model_dir, key)
    if done is not None:
        log(f"{run_name}: reusing the finished run in {model_dir} (same settings, cache key {key})")
        return {**done, "reused": True}
    start_run_dir(model_dir, key, {"model": model, "crop": crop, "preset": config.preset}, log=log)
    loader = _CachedImagenet()
    reused_folds = []
    fold_results, roc_curves = [], {}
    num_folds = len(splits)
    for fold_number, fold in enumerate(splits):
        k = fold["fold"]
        parts = {part: [i for i in fold[part] if i in usable_ids] for part in ("train", "val", "test")}
        if not all(parts.values()):
            raise ValueError(
                f"fold {k}: after exclusions it has {', '.join(f'{len(v)} {p}' for p, v in parts.items())} "
                "images; every part needs at least one"
            )
        label = f"{run_name} fold {k} ({fold_number + 1}/{num_folds})"
        fold_dir = os.path.join(model_dir, f"fold_{k}")
        result = finished_fold(fold_dir, key)
        if result is not None:
            fold_results.append(result)
            roc_curves[f"fold {k}"] = tuple(read_test_predictions(fold_dir).values())
            reused_folds.append(k)
            log(f"{label}: finished earlier, reusing {fold_dir}")
            continue
        result, test = _run_fold(
            model, config, arrays, parts, crop_config, fold_dir, label, loader, log, runtime,
            fold_config={"model": model, "fold": k, "cache_key": key, "classification": to_dict(config), "data": to_dict(data),
                         "split": to_dict(split), "crop": crop_record},
        )
        fold_results.append(result)
        roc_curves[f"fold {k}"] = (test["label"], test["probability"])
        patient = result["patient_wise"]
        log(f"{label}: threshold {result['threshold']['threshold']:.3f}, best epoch {result['best_epoch']}; "
            "test patient-wise " + " ".join(f"{name} {patient[name]:.3f}" for name in METRIC_NAMES)
            + f" (fold {result['seconds']:.0f} s, elapsed {time.time() - started:.0f} s, "
            f"{num_folds - fold_number - 1} folds left, about {(num_folds - fold_number - 1) * result['seconds']:.0f} s)")

    patient_summary = summarize_folds([r["patient_wise"] for r in fold_results])
    image_summary = summarize_folds([r["image_wise"] for r in fold_results])
    title = f"{MODEL_DESCRIPTIONS[model]}: test ROC per fold, {dataset_name}" + (" (SYNTHETIC)" if synthetic else "")
    roc_path = save_roc_figure(roc_curves, os.path.join(model_dir, "roc.png"), title=title)
    backbone_weights = _summarize_weight_records([r["backbone_weights"] for r in fold_results])
    total_seconds = time.time() - started
    summary = {
        "model": model,
        "run": run_name,
        "cache_key": key,
        "description": MODEL_DESCRIPTIONS[model],
        "dataset": f"bimodal_breast_us/{dataset_name}",
        "dataset_version": str(info.version),
        "source_fingerprint": dataset_lib.stored_fingerprint(builder),
        "synthetic": synthetic,
        "notice": SYNTHETIC_NOTICE if synthetic else None,
        "preset": config.preset,
        "preset_notice": notice,
        "runtime": runtime_lib.describe(runtime),
        **{name: patient_summary[name] for name in METRIC_NAMES},
        "evaluation": "patient-wise: majority vote of the images, a tie going to malignant (§4.2); "
                      "mean ± population SD over the folds' test sets",
        "image_wise": image_summary,
        "thresholds": [r["threshold"]["threshold"] for r in fold_results],
        "threshold_rule": "Youden index on each fold's validation images (§3.3.1); malignant if p >= threshold",
        "backbone_weights": backbone_weights,
        "crop": crop_record,
        "excluded_images": excluded,
        "folds": [
            {name: r.get(name) for name in ("fold", "num_images", "num_patients", "best_epoch", "epochs_run",
                                            "resumed_from_epoch", "seconds")}
            for r in fold_results
        ],
        "timing": {
            "total_seconds": round(total_seconds, 1),
            "fold_seconds": [r["seconds"] for r in fold_results],
            "reused_folds": reused_folds,
        },
        "roc_figure": roc_path,
        "config": {
            "classification": to_dict(config),
            "data": to_dict(data),
            "split": to_dict(split),
            "normalization": fold_results[0]["normalization"],
            "backbone_weights": {name: backbone_weights[name] for name in ("requested", "used", "reason")},
        },
    }
    write_json(os.path.join(model_dir, "summary.json"), summary)
    log(f"{run_name}: patient-wise over {num_folds} folds: "
        + ", ".join(f"{name} {_percent(patient_summary[name])}" for name in METRIC_NAMES)
        + f" (total {total_seconds:.0f} s)")
    log(f"Wrote {os.path.join(model_dir, 'summary.json')} and {roc_path}")
    return summary


def _percent(stat: dict) -> str:
    if stat["mean"] is None or math.isnan(stat["mean"]):
        return "n/a"
    return f"{100 * stat['mean']:.2f} ± {100 * stat['sd']:.2f} %"


def _summarize_weight_records(weight_records: list) -> dict:
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


# --------------------------------------------------------------------------- B-mode-only data


def evaluate_bmode_only(
    model: str,
    data: DataConfig,
    trained_output: str = "runs",
    crop: str = "manual",
    output: str | None = None,
    log=print,
    trained_run: str | None = None,
) -> dict:
    """Evaluate trained fold models on B-mode-only data such as BUSI (§3.3.1, missing modality).

    Each fold model in ``<trained_output>/<trained_run>/fold_<k>/model.keras`` (trained on B-mode +
    SE-mode) classifies every benign / malignant image of ``data`` (only its own test images
    when ``data`` is the data set it was trained on) from its B-mode image alone: the SE-mode input is zero and marked unavailable, so EmbraceNet builds the fused
    vector from B-mode features only (``mff``; ``mff_early`` / ``mff_late`` vote with the
    B-mode image only). The fold's own validation threshold is used. ``normal`` images are
    excluded. The results say plainly what was done: no SE-mode image exists in BUSI, so
    this measures the fusion model's B-mode branch on a different (real) population, not
    the bimodal method.

    Args:
        model: ``mff``, ``mff_early``, ``mff_late`` or ``vgg16_bmode``.
        data: the B-mode-only data (e.g. ``DataConfig(source="busi", manual_dir=...)``).
        trained_output: the results folder holding the trained fold models.
        crop: ``"manual"`` (BUSI's ground-truth masks), ``"none"``, or ``"predicted"``
            (``<output>/w_mm_unet/predicted_masks.npz`` made for ``data``).
        output: results folder for this evaluation (default ``trained_output``); the summary
            goes to ``<output>/<trained_run>/bmode_only_<dataset>/summary.json``.
        trained_run: the trained run's folder name (default: the model trained with the
            same ``crop``, ``classification_run_name(model, crop)``).
        log: where progress lines go.

    Returns:
        The summary dict.

    Raises:
        ValueError: a model that cannot classify without SE-mode images.
        FileNotFoundError: no trained fold model.
    """
    if model not in (*AVAILABILITY_MODELS, "vgg16_bmode"):
        raise ValueError(
            "evaluate_bmode_only: model must accept a missing SE-mode image "
            f"({(*AVAILABILITY_MODELS, 'vgg16_bmode')}), got {model!r}"
        )
    started = time.time()
    output = output or trained_output
    trained_run = trained_run or classification_run_name(model, crop)
    model_dir = os.path.join(trained_output, trained_run)
    fold_dirs = sorted(
        os.path.join(model_dir, name) for name in os.listdir(model_dir) if name.startswith("fold_")
    ) if os.path.isdir(model_dir) else []
    fold_dirs = [d for d in fold_dirs if os.path.isfile(os.path.join(d, "model.keras"))]
    if not fold_dirs:
        raise FileNotFoundError(f"evaluate_bmode_only: no fold_<k>/model.keras under {model_dir}; train {model} first")
    trained = _read_json(os.path.join(model_dir, "summary.json")) if os.path.isfile(
        os.path.join(model_dir, "summary.json")) else {}
    dataset_name = dataset_lib.builder_config_name(data)
    same_data = trained.get("dataset") == f"bimodal_breast_us/{dataset_name}"
    ds, info = dataset_lib.load_dataset(data)
    arrays, crop_record = apply_crop_masks(load_arrays(ds), crop, output)
    had_semode = bool(np.any(arrays["has_semode"]))
    label_text = (
        f"{MODEL_DESCRIPTIONS[model]} trained on {trained.get('dataset', '?')}"
        f"{' (SYNTHETIC)' if trained.get('synthetic') else ''}, evaluated on {dataset_name}"
        f"{' (SYNTHETIC)' if data.source == 'phantom' else ''} with B-mode only: "
        + ("SE-mode images exist but are hidden (availability 0)" if had_semode else "SE-mode unavailable (none exists)")
        + (", so the fusion uses B-mode features alone" if model != "vgg16_bmode" else "")
        + "; normal images excluded"
        + ("; each fold model sees only its own test images" if same_data else "")
    )
    log(label_text)
    binary = np.isin(arrays["label"], BINARY_CLASSES)
    arrays = {key: value[binary] for key, value in arrays.items()}
    arrays["has_semode"] = np.zeros_like(arrays["has_semode"])
    arrays["semode"] = np.zeros_like(arrays["semode"])
    all_ids = list(arrays["image_id"])
    results = []
    for fold_dir in fold_dirs:
        image_ids = all_ids
        if same_data:
            # The fold model trained on the other images of this data set: test images only.
            with open(os.path.join(fold_dir, "predictions.csv")) as handle:
                tested = {row["image_id"] for row in csv.DictReader(handle) if row["split"] == "test"}
            image_ids = [i for i in all_ids if i in tested]
        keras.backend.clear_session()
        classifier = keras.saving.load_model(os.path.join(fold_dir, "model.keras"), compile=False)
        fold_metrics = _read_json(os.path.join(fold_dir, "metrics.json"))
        threshold = fold_metrics["threshold"]["threshold"]
        input_size = int(classifier.input["bmode"].shape[1])
        crop_config = None if crop == "none" else CropConfig(margin=crop_margin(data))
        predictions = predict_probabilities(
            classifier,
            classification_dataset(
                arrays, image_ids, model_input_keys(model), input_size, crop_config, with_metadata=True
            ),
        )
        metrics = evaluate_predictions(
            predictions["label"], predictions["probability"], predictions["patient_id"], threshold
        )
        metrics["fold"] = os.path.basename(fold_dir)
        results.append(metrics)
        log(f"{model} {metrics['fold']} on {dataset_name} (B-mode only): image-wise "
            + " ".join(f"{n} {metrics['image'][n]:.3f}" for n in METRIC_NAMES))
    summary = {
        "label": label_text,
        "model": model,
        "trained_on": trained.get("dataset"),
        "trained_on_synthetic": trained.get("synthetic"),
        "evaluated_on": f"bimodal_breast_us/{dataset_name}",
        "evaluated_on_version": str(info.version),
        "evaluated_on_synthetic": data.source == "phantom",
        "modalities_used": ["bmode"],
        "semode": "unavailable (availability 0, input zero)",
        "num_images": int(len(all_ids)),
        "images_per_fold": [r["image"]["count"] for r in results],
        "excluded_normal_images": int(np.sum(~binary)),
        **summarize_folds([r["patient"] for r in results]),
        "image_wise": summarize_folds([r["image"] for r in results]),
        "per_fold": results,
        "crop": crop_record,
        "seconds": round(time.time() - started, 1),
    }
    out_dir = os.path.join(output, trained_run, f"bmode_only_{dataset_name}")
    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, "summary.json"), summary)
    return summary
