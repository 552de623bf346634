"""External validation: score an exported CAD pipeline on another labelled data set (§3.4, §4).

:func:`evaluate_export` runs the exported ``cad_pipeline`` (:mod:`tf_bimodal.export.exporter`)
on every image of a prepared data set (BUS-BRA, BUSI, a clinical folder or the phantom, read
once through :func:`tf_bimodal.experiments.experiment_data.resolve_data` without folds) and
scores it with the protocol's own metrics:

* **segmentation** on the images with a lesion mask: lesion Dice, IoU, precision and recall
  (:mod:`tf_bimodal.evaluation.segmentation_metrics`), how many lesion images were missed
  (Dice below :data:`tf_bimodal.evaluation.segmentation.MISSED_DICE`) and predicted empty;
  lesion-free images (BUSI's ``normal``) count only as the share predicted empty;
* **classification** of benign vs malignant (``normal`` left out, §4.2) at the exported
  threshold (the mean of the folds' Youden thresholds, never re-chosen on the new data):
  AUC, sensitivity, specificity, accuracy, precision and F1 per image and per patient (majority
  vote, a tie malignant; a patient's score the mean of its images',
  :func:`tf_bimodal.evaluation.classification.evaluate_predictions`);
* both **by device** where the data set has a ``device`` feature (BUS-BRA's scanners).

It writes into the output folder::

    evaluation.json      the numbers above, what was evaluated on what, images served and skipped
    evaluation.csv       one row per image: ids, device, label, p(malignant), prediction, Dice
    evaluation.md        a short report with the figures below
    roc.png              image- and patient-wise ROC with the exported threshold's operating point
    dice_histogram.png   lesion Dice per image, the missed-lesion threshold marked
    worst_cases.png      the lesion images segmented worst, truth and prediction outlined

A bimodal pipeline serves the images that have an SE-mode image as pairs and the others
B-mode only where it can (``serve_bmode_only``), else skips them and says how many; a
B-mode-only pipeline serves every image from its B-mode image.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os

import numpy as np
import tensorflow as tf

from tf_bimodal.config import DataConfig, SplitConfig
from tf_bimodal.data import inputs
from tf_bimodal.evaluation.classification import (
    MALIGNANT,
    evaluate_predictions,
    patient_vote,
    predict_labels,
    roc_points,
)
from tf_bimodal.evaluation.figures import save_case_gallery, save_dice_histogram, save_operating_roc_figure
from tf_bimodal.evaluation.segmentation import MISSED_DICE, lesion_and_normal_scores
from tf_bimodal.evaluation.segmentation_metrics import segmentation_scores
from tf_bimodal.experiments.experiment_data import resolve_data
from tf_bimodal.export.exporter import EXPORT_FILE
from tf_bimodal.export.predict import SYNTHETIC_MODEL_NOTICE, bmode_only, export_modalities, load_pipeline
from tf_bimodal.io import write_json
from tf_bimodal.schema import BINARY_LABELS, SYNTHETIC_NOTICE

logger = logging.getLogger(__name__)

EVALUATION_JSON = "evaluation.json"
EVALUATION_CSV = "evaluation.csv"
EVALUATION_REPORT = "evaluation.md"
ROC_FIGURE = "roc.png"
DICE_FIGURE = "dice_histogram.png"
WORST_CASES_FIGURE = "worst_cases.png"
WORST_CASES = 8
"""Lesion images shown in the gallery of the worst-segmented cases."""
SERVING_BATCH = 16
"""Images per call of the pipeline's batch signature."""
DEVICE_FEATURE = "device"
"""The example feature that names the scanner, where a data set has one (BUS-BRA)."""
BUSBRA_CITATION = ("Gómez-Flores W, Gregorio-Calas MJ, Coelho de Albuquerque Pereira W, \"BUS-BRA: A Breast "
                   "Ultrasound Dataset for Assessing Computer-aided Diagnosis Systems\", Medical Physics (2024)")
CSV_COLUMNS = ("image_id", "patient_id", "device", "label", "served", "modalities", "p_malignant", "predicted",
               "dice", "lesion_area_px")


def default_output(source: str, dataset_name: str) -> str:
    """Where :func:`evaluate_export` writes when no folder is given: ``<export>/evaluation/<dataset>``."""
    return os.path.join(_export_dir(source), "evaluation", dataset_name)


def _export_dir(source: str) -> str:
    """The export folder of ``source``: itself, or ``<experiment>/export`` (where :func:`load_pipeline` exports)."""
    return source if os.path.isfile(os.path.join(source, EXPORT_FILE)) else os.path.join(source, "export")


UNKNOWN_DEVICE = "(unknown)"
"""The device group of images whose source does not name their scanner."""


def read_feature(builder, name: str, image_ids) -> np.ndarray | None:
    """The string feature ``name`` of every example, in the order of ``image_ids``; None when
    the prepared data set has no such feature."""
    if name not in builder.info.features.keys():
        return None
    import tensorflow_datasets as tfds

    ds = builder.as_dataset(split="train", shuffle_files=False, read_config=tfds.ReadConfig(try_autocache=False))
    values = inputs.load_arrays(ds, keys=("image_id", name))
    by_id = dict(zip(values["image_id"], (v.decode() if isinstance(v, bytes) else str(v) for v in values[name])))
    return np.array([by_id[image_id] for image_id in image_ids])


# --------------------------------------------------------------------------- running the pipeline


def run_pipeline(pipeline, record: dict, arrays: dict) -> dict:
    """The exported pipeline on every image of ``arrays`` (:func:`tf_bimodal.data.inputs.load_arrays`).

    Returns:
        ``{"p_malignant" float32 [N] (NaN where not served), "mask" uint8 [N, H, W],
        "served" bool [N], "modalities" [N] str ("bmode+semode", "bmode" or ""), "threshold"}``.
    """
    count = len(arrays["image_id"])
    has_semode = arrays["has_semode"].astype(bool)
    pairs = np.zeros(count, bool) if bmode_only(record) else has_semode
    alone = ~pairs
    if not bmode_only(record) and alone.any() and not hasattr(pipeline, "serve_bmode_only_batch"):
        logger.warning(f"{int(alone.sum())} images without an SE-mode image skipped: this export's classifier "
                       "cannot classify without SE-mode")
        alone[:] = False
    result = {"p_malignant": np.full(count, np.nan, np.float32),
              "mask": np.zeros(arrays["bmode"].shape[:3], np.uint8), "served": pairs | alone,
              "modalities": np.where(pairs, "bmode+semode", np.where(alone, "bmode", "")), "threshold": None}
    for chosen, use_semode in ((np.flatnonzero(pairs), True), (np.flatnonzero(alone), False)):
        for start in range(0, len(chosen), SERVING_BATCH):
            rows = chosen[start:start + SERVING_BATCH]
            bmode = tf.constant(arrays["bmode"][rows])
            if use_semode:
                outputs = pipeline.serve_batch(bmode, tf.constant(arrays["semode"][rows]))
            elif bmode_only(record):
                outputs = pipeline.serve_batch(bmode)
            else:
                outputs = pipeline.serve_bmode_only_batch(bmode)
            result["p_malignant"][rows] = outputs["p_malignant"].numpy()
            result["mask"][rows] = outputs["mask"].numpy()
            result["threshold"] = float(outputs["threshold"].numpy())
    return result


# --------------------------------------------------------------------------- scores


def _finite(value):
    """A JSON-safe number: NaN (an undefined ratio) becomes None."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _clean(metrics: dict) -> dict:
    return {key: _finite(value) if not isinstance(value, dict) else _clean(value) for key, value in metrics.items()}


def image_devices(resolved) -> np.ndarray | None:
    """The scanner of every image of ``resolved`` (an ``ExperimentData``), in its order, images
    whose source names none :data:`UNKNOWN_DEVICE`; None when no image names one (BUSI, the
    phantom, a clinical folder: the schema's default, empty text)."""
    arrays = resolved.arrays
    values = arrays.get(DEVICE_FEATURE)
    if values is None:
        values = read_feature(resolved.builder, DEVICE_FEATURE, arrays["image_id"])
    if values is None:
        return None
    names = np.array([(v.decode() if isinstance(v, bytes) else str(v)).strip() for v in values], dtype=object)
    if not any(names):
        return None
    return np.array([name or UNKNOWN_DEVICE for name in names])


def lesion_dice(arrays: dict, masks: np.ndarray) -> np.ndarray:
    """Per-image Dice of the predicted masks on images whose true mask has a lesion; NaN elsewhere."""
    truth = arrays["mask"][..., 0]
    lesion = arrays["has_mask"].astype(bool) & truth.reshape(len(truth), -1).any(axis=1)
    dice = np.full(len(truth), np.nan)
    if lesion.any():
        dice[lesion] = segmentation_scores(truth[lesion], masks[lesion])["dice"]
    return dice


def score_images(arrays: dict, outputs: dict, rows: np.ndarray, threshold: float) -> dict:
    """Segmentation and classification scores of the served images among ``rows`` (see the
    module docstring); a part without images (no mask, one class only) is None or its
    undefined ratios None."""
    rows = rows[outputs["served"][rows]]
    with_mask = rows[arrays["has_mask"][rows].astype(bool)]
    segmentation = None
    if len(with_mask):
        scores = lesion_and_normal_scores(arrays["mask"][with_mask][..., 0], outputs["mask"][with_mask])
        lesion, missed = scores["test_lesion"], scores["test_lesion_missed"]
        segmentation = {
            "lesion_images": missed["images"] if missed else 0,
            **(lesion or {}),
            "missed": int(round(missed["missed_share"] * missed["images"])) if missed else 0,
            "missed_share": missed["missed_share"] if missed else None,
            "empty_share": missed["empty_share"] if missed else None,
            "missed_dice_below": MISSED_DICE,
            "normal_images": scores["test_normal"]["images"] if scores["test_normal"] else 0,
            "normal_empty_share": scores["test_normal"]["empty_share"] if scores["test_normal"] else None,
        }
    binary = rows[arrays["label"][rows] <= MALIGNANT]
    classification = None
    if len(binary):
        classification = evaluate_predictions(arrays["label"][binary], outputs["p_malignant"][binary],
                                              arrays["patient_id"][binary], threshold)
        classification["images"] = int(len(binary))
        classification["patients"] = int(len(np.unique(arrays["patient_id"][binary])))
    return _clean({"images": int(len(rows)), "segmentation": segmentation, "classification": classification})


def roc_curves(arrays: dict, outputs: dict) -> dict:
    """``{"per image": RocCurve or None, "per patient": ...}`` of the served benign/malignant images."""
    rows = np.flatnonzero(outputs["served"] & (arrays["label"] <= MALIGNANT))
    labels, scores = arrays["label"][rows], outputs["p_malignant"][rows]
    votes = patient_vote(arrays["patient_id"][rows], predict_labels(scores, 0.5), labels=labels, scores=scores)
    return {"per image": roc_points(labels, scores), "per patient": roc_points(votes["labels"], votes["scores"])}


# --------------------------------------------------------------------------- the evaluation


def evaluate_export(source: str, data: DataConfig, output_dir: str | None = None) -> dict:
    """Score the exported pipeline of ``source`` on the labelled data set ``data`` (external validation).

    Args:
        source: an export folder (``tf-bimodal export``'s, with ``export.json``), or an
            experiment folder, exported first with the default runs into ``<source>/export``
            (:func:`tf_bimodal.export.predict.load_pipeline`).
        data: the data set to score on (``busbra``, ``busi``, ``clinical`` or ``phantom``); it
            is prepared like any other (:func:`tf_bimodal.data.dataset.prepare`), without folds.
        output_dir: where to write (default :func:`default_output`, ``<export>/evaluation/<dataset>``).

    Returns:
        The ``evaluation.json`` record, with ``"paths"`` of every file written.

    Raises:
        FileNotFoundError: ``source`` is neither an export nor a trained experiment.
        tf_bimodal.data.DataError: bad data files (see :func:`tf_bimodal.data.dataset.prepare`).
        ValueError: no image of the data set could be served (a bimodal-only export on
            B-mode-only data).
    """
    pipeline, record = load_pipeline(source)
    resolved = resolve_data(data, SplitConfig(), folder_of=None)
    arrays = resolved.arrays
    output_dir = output_dir or default_output(source, resolved.name)
    os.makedirs(output_dir, exist_ok=True)
    devices = image_devices(resolved)
    logger.info(f"Evaluating {_export_dir(source)} ({', '.join(export_modalities(record))}) on "
                f"{resolved.description}: {len(arrays['image_id'])} images")
    outputs = run_pipeline(pipeline, record, arrays)
    if not outputs["served"].any():
        raise ValueError(f"evaluate: {_export_dir(source)} reads SE-mode images and cannot classify without them; "
                         f"{resolved.title} has none: evaluate a B-mode-only export (unet_bmode + vgg16_bmode)")
    threshold = outputs["threshold"]
    everything = np.arange(len(arrays["image_id"]))
    dice = lesion_dice(arrays, outputs["mask"])
    curves = roc_curves(arrays, outputs)
    evaluation = {
        "source": os.path.abspath(_export_dir(source)),
        "model": {"runs": {part: (record.get(part) or {}).get("run") for part in ("segmenter", "classifier")},
                  "modalities": list(export_modalities(record)), "threshold": threshold,
                  "trained_on": (record.get("classifier") or {}).get("dataset"),
                  "synthetic": bool(record.get("synthetic"))},
        "data": {"dataset": resolved.title, "description": resolved.description, "source": data.source,
                 "manual_dir": data.manual_dir, "image_size": resolved.data_size,
                 "source_fingerprint": resolved.fingerprint, "synthetic": resolved.synthetic,
                 "images": int(len(everything)), "patients": int(len(np.unique(arrays["patient_id"]))),
                 "served": int(outputs["served"].sum()), "skipped": int((~outputs["served"]).sum()),
                 "served_as": {name: int(np.sum(outputs["modalities"] == name)) for name in ("bmode+semode", "bmode")}},
        "same_data_as_training": _same_source(record, resolved.fingerprint),
        "overall": score_images(arrays, outputs, everything, threshold),
        "by_device": None if devices is None else {
            device: score_images(arrays, outputs, np.flatnonzero(devices == device), threshold)
            for device in sorted(set(devices.tolist()))
        },
        "roc_auc": {name: None if roc is None else roc.auc for name, roc in curves.items()},
    }
    if evaluation["same_data_as_training"]:
        logger.warning("evaluate: the classifier was trained on this very data set (same source fingerprint): "
                       "these numbers are not an external validation")
    paths = _write_outputs(output_dir, evaluation, arrays, outputs, devices, dice, curves)
    evaluation["files"] = {name: os.path.basename(path) for name, path in paths.items()}
    paths["json"] = write_json(os.path.join(output_dir, EVALUATION_JSON), evaluation)
    paths["report"] = _write_report(os.path.join(output_dir, EVALUATION_REPORT), evaluation)
    _log_summary(evaluation)
    logger.info(f"Wrote {paths['json']} and {paths['report']}")
    return {**evaluation, "paths": paths}


def _same_source(record: dict, fingerprint: dict) -> bool:
    trained = [(record.get(part) or {}).get("source_fingerprint") for part in ("segmenter", "classifier")]
    return any(value == fingerprint for value in trained if value)


def _write_outputs(output_dir, evaluation, arrays, outputs, devices, dice, curves) -> dict:
    """The per-image table and the three figures; ``{name: path}``."""
    title = f"{evaluation['data']['dataset']}" + (" (SYNTHETIC)" if evaluation["data"]["synthetic"] else "")
    threshold = evaluation["model"]["threshold"]
    paths = {"csv": _write_csv(os.path.join(output_dir, EVALUATION_CSV), arrays, outputs, devices, dice, threshold)}
    operating = {}
    for name, roc in curves.items():
        metrics = ((evaluation["overall"]["classification"] or {}).get(name.split()[-1]) or {})
        if roc is not None and metrics.get("sensitivity") is not None and metrics.get("specificity") is not None:
            operating[name] = (1 - metrics["specificity"], metrics["sensitivity"], f"threshold {threshold:.3f}")
    paths["roc"] = save_operating_roc_figure(curves, operating, os.path.join(output_dir, ROC_FIGURE),
                                             f"ROC on {title}")
    lesion = np.flatnonzero(~np.isnan(dice) & outputs["served"])
    if len(lesion):
        paths["dice_histogram"] = save_dice_histogram(dice[lesion], os.path.join(output_dir, DICE_FIGURE),
                                                      f"Lesion Dice on {title}", MISSED_DICE)
        worst = lesion[np.argsort(dice[lesion], kind="stable")[:WORST_CASES]]
        captions = [f"{arrays['image_id'][i]}\nDice {dice[i]:.2f}, p {outputs['p_malignant'][i]:.2f} "
                    f"({BINARY_LABELS[int(arrays['label'][i])] if arrays['label'][i] <= MALIGNANT else 'normal'})"
                    for i in worst]
        paths["worst_cases"] = save_case_gallery(
            arrays["bmode"][worst], arrays["mask"][worst], outputs["mask"][worst], captions,
            os.path.join(output_dir, WORST_CASES_FIGURE), f"The {len(worst)} worst-segmented lesion images")
    return paths


def _write_csv(path, arrays, outputs, devices, dice, threshold) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for i, image_id in enumerate(arrays["image_id"]):
        served, p = bool(outputs["served"][i]), float(outputs["p_malignant"][i])
        writer.writerow({
            "image_id": image_id, "patient_id": arrays["patient_id"][i],
            "device": "" if devices is None else devices[i],
            "label": ("benign", "malignant", "normal")[int(arrays["label"][i])], "served": int(served),
            "modalities": outputs["modalities"][i], "p_malignant": f"{p:.6f}" if served else "",
            "predicted": BINARY_LABELS[int(p >= threshold)] if served else "",
            "dice": "" if np.isnan(dice[i]) or not served else f"{dice[i]:.4f}",
            "lesion_area_px": int(outputs["mask"][i].sum()) if served else "",
        })
    tmp_path = f"{path}.tmp"
    with open(tmp_path, "w", newline="") as handle:
        handle.write(buffer.getvalue())
    os.replace(tmp_path, path)
    return path


def _log_summary(evaluation: dict) -> None:
    overall = evaluation["overall"]
    segmentation, classification = overall["segmentation"], overall["classification"]
    if segmentation and segmentation.get("dice") is not None:
        logger.info(f"  lesion Dice {segmentation['dice']:.3f}, IoU {segmentation['iou']:.3f} on "
                    f"{segmentation['lesion_images']} images; missed {segmentation['missed']} "
                    f"({segmentation['missed_share']:.0%})")
    if classification:
        for level in ("image", "patient"):
            metrics = classification[level]
            logger.info(f"  per {level}: AUC {_number(metrics['auc'])}, sensitivity "
                        f"{_number(metrics['sensitivity'])}, specificity {_number(metrics['specificity'])} "
                        f"(n {metrics['count']})")


# --------------------------------------------------------------------------- the report


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _score_rows(name: str, scores: dict) -> tuple[str, str]:
    """One row of the segmentation table and one of the classification table."""
    seg, cls = scores["segmentation"] or {}, scores["classification"] or {}
    segmentation = (f"| {name} | {seg.get('lesion_images', 0)} | {_number(seg.get('dice'))} | "
                    f"{_number(seg.get('iou'))} | {seg.get('missed', 0)} ({_number(seg.get('missed_share'), 2)}) | "
                    f"{_number(seg.get('empty_share'), 2)} |")
    image, patient = cls.get("image") or {}, cls.get("patient") or {}
    classification = (f"| {name} | {cls.get('images', 0)} / {cls.get('patients', 0)} | {_number(image.get('auc'))} | "
                      f"{_number(patient.get('auc'))} | {_number(image.get('sensitivity'))} | "
                      f"{_number(image.get('specificity'))} | {_number(patient.get('sensitivity'))} | "
                      f"{_number(patient.get('specificity'))} |")
    return segmentation, classification


def _write_report(path: str, evaluation: dict) -> str:
    """``evaluation.md``: what was scored on what, the two tables (overall and by device), the figures."""
    model, data = evaluation["model"], evaluation["data"]
    runs = ", then ".join(str(model["runs"][part]) for part in ("segmenter", "classifier") if model["runs"][part])
    lines = [f"# External validation on {data['dataset']}", ""]
    if data["synthetic"]:
        lines += [f"**{SYNTHETIC_NOTICE}**", ""]
    if model["synthetic"]:
        lines += [f"**{SYNTHETIC_MODEL_NOTICE}**", ""]
    if evaluation["same_data_as_training"]:
        lines += ["**The classifier was trained on this data set (same source fingerprint): these numbers are "
                  "not an external validation.**", ""]
    lines += [
        f"- model: `{evaluation['source']}` ({runs}; reads {' + '.join(model['modalities'])}; trained on "
        f"{model['trained_on']}); threshold {model['threshold']:.4f} (the exported one, not re-chosen)",
        f"- data: {data['description']}: {data['images']} images of {data['patients']} patients; served "
        f"{data['served']} ({data['served_as']['bmode+semode']} as pairs, {data['served_as']['bmode']} B-mode "
        f"only), skipped {data['skipped']}",
        f"- missed lesion: Dice < {MISSED_DICE}; classification leaves `normal` images out (§4.2); a patient's "
        "label is the majority of its images (a tie malignant), its score their mean",
        "",
        "## Segmentation (images with a lesion mask)", "",
        "| device | lesion images | Dice | IoU | missed (share) | predicted empty |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    groups = {"all": evaluation["overall"], **(evaluation["by_device"] or {})}
    rows = {name: _score_rows(name, scores) for name, scores in groups.items()}
    lines += [row[0] for row in rows.values()]
    lines += ["", "## Classification at the exported threshold", "",
              "| device | images / patients | AUC image | AUC patient | sens. image | spec. image | sens. patient | "
              "spec. patient |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [row[1] for row in rows.values()]
    if evaluation["by_device"] is None:
        lines += ["", "The data set has no device feature: no breakdown by scanner."]
    lines += ["", "## Figures", "", f"![ROC]({ROC_FIGURE})", ""]
    if "dice_histogram" in evaluation["files"]:
        lines += [f"![Dice histogram]({DICE_FIGURE})", "", f"![Worst cases]({WORST_CASES_FIGURE})", ""]
    lines += [f"Per image: [{EVALUATION_CSV}]({EVALUATION_CSV}); every number: [{EVALUATION_JSON}]({EVALUATION_JSON})."]
    if data["source"] == "busbra":
        lines += ["", f"Data: BUS-BRA, {BUSBRA_CITATION}."]
    with open(f"{path}.tmp", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(f"{path}.tmp", path)
    return path


__all__ = ["EVALUATION_JSON", "EVALUATION_REPORT", "default_output", "evaluate_export", "lesion_dice",
           "read_feature", "run_pipeline", "score_images"]
