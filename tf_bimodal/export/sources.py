"""The trained fold models of an experiment, and what their summaries say about them.

An experiment folder (``<output>/<dataset>-<preset>/``, :mod:`tf_bimodal.experiments.protocol`)
holds one folder per cross-validated run: a segmenter of Table 1 (``w_mm_unet/``) and the
classifiers of Table 2 (``mff/``, ``mff_crop_manual/``, ...), each with ``summary.json`` and one
``fold_<k>/model.keras`` per fold. This module finds them, checks that the run finished, and
reads the numbers an export needs (model sizes, thresholds, the crop rule), so that
:mod:`tf_bimodal.export.exporter` never guesses them.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os

import keras

from tf_bimodal import layout
from tf_bimodal.config import CLASSIFICATION_MODELS, SEGMENTATION_MODELS, CropConfig
from tf_bimodal.data.cropping import MARGIN_RULE, scaled_margin
from tf_bimodal.io import read_json
from tf_bimodal.models.classification.factory import model_input_keys
from tf_bimodal.models.segmentation.factory import MODEL_INPUTS
from tf_bimodal.records import RunRecord

logger = logging.getLogger(__name__)

MODEL_PACKAGES = ("tf_bimodal.models.segmentation", "tf_bimodal.models.classification")
"""Imported before loading, so that their registered Keras classes deserialize."""


@dataclasses.dataclass(frozen=True)
class SegmenterSource:
    """A finished segmentation run (§3.2, §3.4) and the settings its masks were made with.

    Attributes:
        run: the run's folder name (``w_mm_unet``).
        run_dir: its path.
        model: the Table 1 model (``summary["model"]``).
        folds: fold numbers, ascending; ``model_paths`` in the same order.
        model_paths: ``fold_<k>/model.keras`` of each fold.
        model_size: side of the model's square input (``summary["image_size"]["model"]``).
        data_size: side of the data set's images (``summary["image_size"]["data"]``).
        threshold: probability above which a pixel is lesion (``summary["config"]["threshold"]``).
        synthetic: whether the run trained on the synthetic phantom.
        dataset: ``bimodal_breast_us/<config>`` the run trained on.
        source_fingerprint: the fingerprint of the data's source
            (:mod:`tf_bimodal.data.fingerprint`), as the run recorded it.
        test_time_flip: whether the run predicted with the left-right mirror averaged in
            (``summary["config"]["test_time_flip"]``); the export does the same.
    """

    run: str
    run_dir: str
    model: str
    folds: tuple
    model_paths: tuple
    model_size: int
    data_size: int
    threshold: float
    synthetic: bool
    dataset: str | None
    source_fingerprint: dict | None = None
    test_time_flip: bool = False


@dataclasses.dataclass(frozen=True)
class ClassifierSource:
    """A finished classification run (§3.3, §3.4) and its decision thresholds.

    Attributes:
        run: the run's folder name (``mff``).
        run_dir: its path.
        model: the Table 2 model (``summary["model"]``).
        crop: the crop its inputs were made with: ``predicted``, ``manual`` or ``none``.
        crop_shape: ``rectangle`` (the only shape the runs use) or ``mask``.
        margin_px: the crop margin at the data's size, as recorded by the run (None without crop).
        folds: fold numbers, ascending; ``model_paths`` and ``fold_thresholds`` in that order.
        model_paths: ``fold_<k>/model.keras`` of each fold.
        fold_thresholds: each fold's Youden threshold (``fold_<k>/metrics.json``,
            ``["threshold"]["threshold"]``, chosen on that fold's validation images, §3.3.1).
        input_size: side of the classifier's square input.
        data_size: side of the data set's images.
        synthetic: whether the run trained on the synthetic phantom.
        dataset: ``bimodal_breast_us/<config>`` the run trained on.
        source_fingerprint: the fingerprint of the data's source
            (:mod:`tf_bimodal.data.fingerprint`), as the run recorded it.
        context_margin: the margin of a second, wider crop the classifiers also read, in pixels
            at 336 px (``ClassificationConfig.context_margin``, the linear read-out's), or None.
    """

    run: str
    run_dir: str
    model: str
    crop: str
    crop_shape: str
    margin_px: int | None
    folds: tuple
    model_paths: tuple
    fold_thresholds: tuple
    input_size: int
    data_size: int
    synthetic: bool
    dataset: str | None
    source_fingerprint: dict | None = None
    context_margin: int | None = None

    @property
    def inputs(self) -> tuple:
        """The inputs the classifiers read (:func:`tf_bimodal.models.classification.factory.model_input_keys`)."""
        return model_input_keys(self.model, context=self.context_margin is not None)


def _preset_of(root: str) -> str:
    protocol_path = os.path.join(root, layout.PROTOCOL_FILE)
    if os.path.isfile(protocol_path):
        preset = read_json(protocol_path).get("preset")
        if preset:
            return str(preset)
    return layout.preset_of_experiment(root) or "<preset>"


def _data_options(root: str) -> str:
    protocol_path = os.path.join(root, layout.PROTOCOL_FILE)
    if os.path.isfile(protocol_path):
        data = read_json(protocol_path).get("data") or {}
        options = []
        if data.get("source"):
            options.append(f"--data {data['source']}")
        if data.get("image_size"):
            options.append(f"--image-size {data['image_size']}")
        if data.get("manual_dir"):
            options.append(f"--manual-dir {data['manual_dir']}")
        if data.get("data_dir"):
            options.append(f"--data-dir {data['data_dir']}")
        if options:
            return " " + " ".join(options)
    return " (with the experiment's data options)"


def train_command(root: str, model: str, crop: str | None = None) -> str:
    """The ``run_experiments.py`` command that trains ``model`` into the experiment ``root``."""
    output = os.path.dirname(os.path.normpath(root)) or "."
    crop_option = f" --crop {crop}" if crop not in (None, "predicted") else ""
    return (f"python run_experiments.py --model {model}{crop_option} --output {output} "
            f"--preset {_preset_of(root)}{_data_options(root)}")


def _missing(root: str, what: str, problem: str, command: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"export: experiment {root} has no trained {what}: {problem}. Train it first with "
        f"`{command}`, or name another run"
    )


def finished_runs(root: str) -> list[str]:
    """The run folders of the experiment ``root`` that hold a ``summary.json``, sorted."""
    if not os.path.isdir(root):
        return []
    return sorted(name for name in os.listdir(root)
                  if os.path.isfile(os.path.join(root, name, layout.SUMMARY_FILE)))


def _unknown_run(root: str, run: str, kind: str, names) -> ValueError:
    found = finished_runs(root)
    return ValueError(
        f"export: '{run}' is not a {kind} run: {kind} runs are named after their model ({', '.join(names)})"
        + (", classifiers on other crops <model>_crop_<crop>" if kind == "classifier" else "")
        + f"; finished runs in {root}: {', '.join(found) if found else 'none'}"
    )


def _finished_run(root: str, run: str, what: str, command: str) -> tuple[str, dict, dict]:
    """The run's folder, its summary and its fold models, all present, or FileNotFoundError."""
    run_dir = layout.run_dir(root, run)
    if not os.path.isdir(run_dir):
        raise _missing(root, what, f"folder {run_dir} does not exist", command)
    summary_path = os.path.join(run_dir, layout.SUMMARY_FILE)
    if not os.path.isfile(summary_path):
        raise _missing(root, what, f"{summary_path} does not exist (the run did not finish)", command)
    summary = read_json(summary_path)
    models = layout.fold_models(run_dir)
    expected = [fold["fold"] for fold in summary.get("folds", []) if "fold" in fold]
    absent = [k for k in expected if k not in models]
    if not models or absent:
        listed = ", ".join(f"fold_{k}/{layout.MODEL_FILE}" for k in (absent or expected or [0]))
        raise _missing(root, what, f"{run_dir} lacks {listed}", command)
    if expected:
        models = {k: models[k] for k in expected}
    return run_dir, summary, models


def find_segmenter(root: str, run: str = "w_mm_unet") -> SegmenterSource:
    """The finished segmentation run ``root/run``.

    Raises:
        FileNotFoundError: the folder, its ``summary.json`` or a fold model is missing; the
            message names what is missing and the command that trains it.
        ValueError: ``run`` is not a segmentation run (a classifier, or no model of Table 1).
    """
    if run not in SEGMENTATION_MODELS:
        raise _unknown_run(root, run, "segmenter", SEGMENTATION_MODELS)
    run_dir, summary, models = _finished_run(root, run, f"segmenter '{run}'", train_command(root, run))
    record = RunRecord.from_summary(summary, os.path.join(run_dir, layout.SUMMARY_FILE))
    folds = tuple(sorted(models))
    return SegmenterSource(
        run=run,
        run_dir=run_dir,
        model=str(summary.get("model", run)),
        folds=folds,
        model_paths=tuple(models[k] for k in folds),
        model_size=record.image_size.model,
        data_size=record.image_size.data,
        threshold=float(summary["config"]["threshold"]),
        synthetic=record.synthetic,
        dataset=record.dataset,
        source_fingerprint=record.source_fingerprint,
        test_time_flip=bool(summary["config"].get("test_time_flip", False)),
    )


def find_classifier(root: str, run: str = "mff") -> ClassifierSource:
    """The finished classification run ``root/run`` and its folds' Youden thresholds.

    Raises:
        FileNotFoundError: the folder, its ``summary.json``, a fold model or a fold's
            ``metrics.json`` is missing; the message names it and the command that trains it.
        ValueError: ``run`` is not a classification run (a segmenter, or no model of Table 2);
            the run's crops (or its wider context crops, ``ClassificationConfig.context_margin``)
            were cut with a margin other than :data:`tf_bimodal.data.cropping.MARGIN_RULE`'s; a
            summary without the provenance block (:class:`tf_bimodal.records.RunRecord`).
    """
    model, crop = layout.split_run_name(run)
    if model not in CLASSIFICATION_MODELS:
        raise _unknown_run(root, run, "classifier", CLASSIFICATION_MODELS)
    command = train_command(root, model, crop)
    run_dir, summary, models = _finished_run(root, run, f"classifier '{run}'", command)
    folds = tuple(sorted(models))
    thresholds = []
    for k in folds:
        metrics_path = os.path.join(layout.fold_dir(run_dir, k), layout.METRICS_FILE)
        if not os.path.isfile(metrics_path):
            raise _missing(root, f"classifier '{run}'", f"{metrics_path} does not exist", command)
        thresholds.append(float(read_json(metrics_path)["threshold"]["threshold"]))
    record = RunRecord.from_summary(summary, os.path.join(run_dir, layout.SUMMARY_FILE))
    crop_record = summary["crop"]
    crop_name = crop_record.get("crop", crop)
    margin = crop_record.get("margin_px")
    if margin is not None and int(margin) != scaled_margin(record.image_size.data):
        raise ValueError(
            f"classifier '{run}' in {run_dir} was trained on crops with a {margin} px margin at "
            f"{record.image_size.data} px; the exported pipeline cuts {MARGIN_RULE} "
            f"({scaled_margin(record.image_size.data)} px there)"
        )
    context_margin = _context_margin(run, run_dir, summary, record.image_size.data)
    return ClassifierSource(
        run=run,
        run_dir=run_dir,
        model=str(summary.get("model", model)),
        crop=str(crop_name),
        crop_shape=str(crop_record.get("shape") or CropConfig().shape),  # None: no crop (full images)
        margin_px=crop_record.get("margin_px"),
        folds=folds,
        model_paths=tuple(models[k] for k in folds),
        fold_thresholds=tuple(thresholds),
        input_size=record.image_size.model,
        data_size=record.image_size.data,
        synthetic=record.synthetic,
        dataset=record.dataset,
        source_fingerprint=record.source_fingerprint,
        context_margin=context_margin,
    )


def _context_margin(run: str, run_dir: str, summary: dict, data_size: int) -> int | None:
    """The context crop's margin at 336 px of a classification run, checked against the pixels
    its crops were cut with (``crop.context_margin_px`` at the data's size); None without one."""
    pixels = (summary.get("crop") or {}).get("context_margin_px")
    if pixels is None:
        return None
    margin = ((summary.get("config") or {}).get("classification") or {}).get("context_margin")
    if margin is None or scaled_margin(data_size, int(margin)) != int(pixels):
        raise ValueError(
            f"classifier '{run}' in {run_dir} read a context crop with a {pixels} px margin at {data_size} px, "
            f"which its settings' context_margin ({margin}) at 336 px does not give by {MARGIN_RULE}: the exported "
            "pipeline cannot reproduce it"
        )
    return int(margin)


def chain_modalities(segmenter: SegmenterSource, classifier: ClassifierSource) -> tuple:
    """The modalities a CAD pipeline of ``segmenter`` then ``classifier`` reads (§3.1-§3.3):
    ``("bmode",)`` when neither reads SE-mode (a B-mode-only pipeline), else ``("bmode", "semode")``.

    Raises:
        ValueError: a pair that cannot be chained: a B-mode-only segmenter (``unet_bmode``),
            whose pipeline serves B-mode-only cases, before a classifier that cannot classify
            without SE-mode (``vgg16_semode``).
    """
    segmenter_inputs = MODEL_INPUTS[segmenter.model]
    classifier_inputs = classifier.inputs
    reads = {name.removesuffix("_context") for name in classifier_inputs if name != "availability"}
    if "semode" not in segmenter_inputs and "semode" in reads and "availability" not in classifier_inputs:
        raise ValueError(
            f"export: segmenter '{segmenter.run}' reads B-mode only, classifier '{classifier.run}' needs SE-mode "
            f"images ({', '.join(classifier_inputs)}): the pair cannot serve the B-mode-only cases its segmenter "
            "is for. Chain a B-mode classifier (vgg16_bmode) or a fusion model (mff), or a bimodal segmenter "
            "(w_mm_unet)"
        )
    read = {*segmenter_inputs, *reads}
    return tuple(modality for modality in ("bmode", "semode") if modality in read)


def load_fold_models(paths) -> list:
    """The ``model.keras`` files at ``paths``, loaded uncompiled (custom classes registered first)."""
    for package in MODEL_PACKAGES:
        importlib.import_module(package)
    models = []
    for path in paths:
        logger.info(f"  loading {path}")
        models.append(keras.saving.load_model(path, compile=False))
    return models
