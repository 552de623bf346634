"""Trained fusion classifiers on B-mode-only data such as BUSI (§3.3.1, a missing modality).

:func:`evaluate_bmode_only` runs the fold models of a finished classification run on every
benign / malignant image of another (or the same) data set from the B-mode image alone: the
SE-mode input is zero and marked unavailable, so EmbraceNet builds the fused vector from
B-mode features only. BUSI has no SE-mode image, so this measures the fusion model's B-mode
branch on a different (real) population, not the bimodal method; the summary says so.
"""

from __future__ import annotations

import logging
import os
import time

import keras
import numpy as np

from tf_bimodal import layout
from tf_bimodal.config import CropConfig, DataConfig, crop_shape
from tf_bimodal.data import inputs
from tf_bimodal.data.cropping import scaled_margin
from tf_bimodal.evaluation.classification import METRIC_NAMES, evaluate_predictions, summarize_folds
from tf_bimodal.evaluation.predictions import read_prediction_rows
from tf_bimodal.experiments.experiment_data import ExperimentData, experiment_data
from tf_bimodal.io import read_json, read_json_or_none, write_json
from tf_bimodal.models.classification.factory import AVAILABILITY_MODELS, MODEL_DESCRIPTIONS, model_input_keys
from tf_bimodal.training.classification import predict_probabilities

logger = logging.getLogger(__name__)


def evaluate_bmode_only(
    model: str,
    data: DataConfig | ExperimentData,
    trained_output: str,
    crop: str = "manual",
    output: str | None = None,
    trained_run: str | None = None,
) -> dict:
    """Evaluate trained fold models on B-mode-only data such as BUSI (§3.3.1, missing modality).

    Each fold model in ``<trained_output>/<trained_run>/fold_<k>/model.keras`` (trained on
    B-mode + SE-mode) classifies every benign / malignant image of ``data`` (only its own test
    images when ``data`` is the data set it was trained on) from its B-mode image alone: the
    SE-mode input is zero and marked unavailable, so EmbraceNet builds the fused vector from
    B-mode features only (``mff``; ``mff_early`` / ``mff_late`` vote with the B-mode image
    only). The fold's own validation threshold is used. ``normal`` images are excluded.

    Args:
        model: ``mff``, ``mff_early``, ``mff_late`` or ``vgg16_bmode``.
        data: the B-mode-only data (e.g. ``DataConfig(source="busi", manual_dir=...)``, or
            its ``ExperimentData`` when resolved already).
        trained_output: the experiment folder holding the trained fold models.
        crop: ``"manual"`` (BUSI's ground-truth masks), ``"none"``, or ``"predicted"``
            (``<output>/w_mm_unet/predicted_masks.npz`` made for ``data``).
        output: results folder for this evaluation (default ``trained_output``); the summary
            goes to ``<output>/<trained_run>/bmode_only_<dataset>/summary.json``.
        trained_run: the trained run's folder name (default: the model trained with the
            same ``crop``, :func:`tf_bimodal.layout.classification_run_name`).

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
    trained_run = trained_run or layout.classification_run_name(model, crop)
    model_dir = layout.run_dir(trained_output, trained_run)
    fold_models = layout.fold_models(model_dir) if os.path.isdir(model_dir) else {}
    if not fold_models:
        raise FileNotFoundError(f"evaluate_bmode_only: no fold_<k>/model.keras under {model_dir}; train {model} first")
    trained = read_json_or_none(os.path.join(model_dir, layout.SUMMARY_FILE)) or {}
    resolved = experiment_data(data, None, None)
    same_data = trained.get("dataset") == resolved.title
    arrays, crop_record = inputs.apply_crop_masks(resolved.arrays, crop, layout.predicted_masks_path(output))
    label_text = _label_text(model, trained, resolved, bool(np.any(arrays["has_semode"])), same_data)
    logger.info(label_text)
    binary = np.isin(arrays["label"], inputs.BINARY_CLASSES)
    arrays = {key: value[binary] for key, value in arrays.items()}
    arrays["has_semode"] = np.zeros_like(arrays["has_semode"])
    arrays["semode"] = np.zeros_like(arrays["semode"])
    shape = crop_shape(crop)
    crop_config = None if shape is None else CropConfig(margin=scaled_margin(resolved.data_size), shape=shape)
    results = [_evaluate_fold(model, path, layout.fold_dir(model_dir, k), arrays, crop_config, same_data,
                              resolved.name) for k, path in sorted(fold_models.items())]
    summary = {
        "label": label_text,
        "model": model,
        "trained_on": trained.get("dataset"),
        "trained_on_synthetic": trained.get("synthetic"),
        "evaluated_on": resolved.title,
        "evaluated_on_version": resolved.version,
        "evaluated_on_synthetic": resolved.synthetic,
        "evaluated_on_source": resolved.fingerprint,
        "modalities_used": ["bmode"],
        "semode": "unavailable (availability 0, input zero)",
        "num_images": int(len(arrays["image_id"])),
        "images_per_fold": [r["image"]["count"] for r in results],
        "excluded_normal_images": int(np.sum(~binary)),
        **summarize_folds([r["patient"] for r in results]),
        "image_wise": summarize_folds([r["image"] for r in results]),
        "per_fold": results,
        "crop": crop_record,
        "seconds": round(time.time() - started, 1),
    }
    out_dir = os.path.join(output, trained_run, f"bmode_only_{resolved.name}")
    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, layout.SUMMARY_FILE), summary)
    return summary


def _label_text(model: str, trained: dict, resolved: ExperimentData, had_semode: bool, same_data: bool) -> str:
    """What was evaluated on what, in one line (also the summary's ``label``)."""
    return (
        f"{MODEL_DESCRIPTIONS[model]} trained on {trained.get('dataset', '?')}"
        f"{' (SYNTHETIC)' if trained.get('synthetic') else ''}, evaluated on {resolved.name}"
        f"{' (SYNTHETIC)' if resolved.synthetic else ''} with B-mode only: "
        + ("SE-mode images exist but are hidden (availability 0)" if had_semode
           else "SE-mode unavailable (none exists)")
        + (", so the fusion uses B-mode features alone" if model != "vgg16_bmode" else "")
        + "; normal images excluded"
        + ("; each fold model sees only its own test images" if same_data else "")
    )


def _evaluate_fold(model: str, model_path: str, fold_dir: str, arrays: dict, crop_config, same_data: bool,
                   dataset_name: str) -> dict:
    """One fold model on the B-mode images (only its own test images when ``same_data``),
    at the fold's own validation threshold."""
    image_ids = list(arrays["image_id"])
    if same_data:
        # The fold model trained on the other images of this data set: test images only.
        rows = read_prediction_rows(os.path.join(fold_dir, layout.FOLD_PREDICTIONS_FILE), "test")
        tested = {row["image_id"] for row in rows}
        image_ids = [i for i in image_ids if i in tested]
    keras.backend.clear_session()
    classifier = keras.saving.load_model(model_path, compile=False)
    threshold = read_json(os.path.join(fold_dir, layout.METRICS_FILE))["threshold"]["threshold"]
    input_size = int(classifier.input["bmode"].shape[1])
    predictions = predict_probabilities(
        classifier,
        inputs.classification_dataset(
            arrays, image_ids, model_input_keys(model), input_size, crop_config, with_metadata=True
        ),
    )
    metrics = evaluate_predictions(
        predictions["label"], predictions["probability"], predictions["patient_id"], threshold
    )
    metrics["fold"] = os.path.basename(fold_dir)
    logger.info(f"{model} {metrics['fold']} on {dataset_name} (B-mode only): image-wise "
                + " ".join(f"{n} {metrics['image'][n]:.3f}" for n in METRIC_NAMES))
    return metrics
