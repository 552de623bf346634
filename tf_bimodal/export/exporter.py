"""Write an experiment's trained models as SavedModels with serving signatures.

:func:`export_experiment` reads a finished experiment (the fold models of one segmentation run
and one classification run, :mod:`tf_bimodal.export.sources`) and writes::

    <export_dir>/segmenter/      SavedModel: images at the model size -> lesion probability, mask
    <export_dir>/classifier/     SavedModel: cropped inputs at the classifier size -> p(malignant)
    <export_dir>/cad_pipeline/   SavedModel: raw B-mode + SE-mode of any size -> mask, box,
                                 p(malignant), label (the paper's chain, §3.1-§3.3); B-mode
                                 alone when neither run reads SE-mode (unet_bmode + vgg16_bmode)
    <export_dir>/export.json     what was exported from where (runs, the modalities the
                                 pipeline reads), thresholds, sizes, margin, signatures,
                                 versions, and the SYNTHETIC notice if it applies

The graphs are in :mod:`tf_bimodal.export.modules`, the in-graph preprocessing in
:mod:`tf_bimodal.export.preprocessing`. A SavedModel loads with ``tf.saved_model.load`` in a
process that has only TensorFlow::

    cad = tf.saved_model.load("export/cad_pipeline")
    out = cad.signatures["serving_default"](bmode=bmode_uint8_hw, semode=semode_uint8_hw3)
    out["mask"], out["box"], out["p_malignant"], out["label"]

Images go in as uint8, the data set's dtype. A tensor of another dtype is refused
(``InvalidArgumentError``: "expected to be a uint8 tensor"), but a NumPy array of another
dtype is cast to uint8 by TensorFlow's argument conversion before the graph sees it, without
rescaling: convert float images in [0, 1] with ``np.round(255 * x).astype(np.uint8)`` first.
"""

from __future__ import annotations

import logging
import os
import shutil
import time

import keras
import tensorflow as tf

import tf_bimodal
from tf_bimodal.data.cropping import MARGIN_RULE, PAPER_MARGIN, scaled_margin
from tf_bimodal.export.modules import (
    CADPipeline,
    ClassifierEnsemble,
    ClassifierServing,
    SegmenterEnsemble,
    SegmenterServing,
)
from tf_bimodal.export.sources import chain_modalities, find_classifier, find_segmenter, load_fold_models
from tf_bimodal.io import write_json
from tf_bimodal.layers.embracenet import INFERENCE_MODES, EmbraceNet
from tf_bimodal.layout import CROP_SEGMENTER
from tf_bimodal.schema import DEFAULT_IMAGE_SIZE, SYNTHETIC_NOTICE

logger = logging.getLogger(__name__)

EXPORT_FILE = "export.json"
EXPORT_FORMAT = "tf_bimodal-export/1"
SAVED_MODELS = ("segmenter", "classifier", "cad_pipeline")

OUTPUT_MEANINGS = {
    "segmenter": {
        "probability": "mean of the K fold models' lesion probabilities",
        "fold_probabilities": "each fold model's lesion probability, folds on the last axis",
        "votes": "how many fold models mark the pixel (probability > threshold)",
        "mask": "fold union: 1 where 2 * votes > K (majority of the fold models), at the model size",
    },
    "classifier": {
        "p_malignant": "mean of the K fold models' probability of malignancy (decision[:, 1])",
        "fold_p_malignant": "each fold model's probability of malignancy",
        "label": "1 malignant if p_malignant >= threshold, else 0 benign",
        "threshold": "mean of the folds' Youden thresholds",
    },
    "cad_pipeline": {
        "mask": "lesion mask at the input size, 0/1 (fold union of the segmenters)",
        "lesion_probability": "mean of the fold segmenters' lesion probabilities at the input size",
        "box": "crop box [y0, x0, y1, x1] in input pixels, ends exclusive; [0, 0, H, W] when the mask is empty",
        "availability": "the modalities of the case: [1, 1] a pair, [1, 0] B-mode only",
        "segmented": "whether the segmenter ran (False for a B-mode-only case when the segmenter needs SE-mode: "
                     "the whole image is the crop)",
        "p_malignant": "mean of the K fold classifiers' probability of malignancy",
        "fold_p_malignant": "each fold classifier's probability of malignancy",
        "label": "1 malignant if p_malignant >= threshold, else 0 benign",
        "threshold": "mean of the folds' Youden thresholds",
    },
}


def _model_inputs(model) -> dict:
    """``{name: KerasTensor}`` of a model's inputs (dict inputs, or named list inputs)."""
    if isinstance(model.input, dict):
        return dict(model.input)
    return {tensor.name: tensor for tensor in model.inputs}


def _embracenet_layers(layer):
    """Every EmbraceNet inside ``layer``, nested models included."""
    found = [layer] if isinstance(layer, EmbraceNet) else []
    for child in getattr(layer, "layers", []) or []:
        found.extend(_embracenet_layers(child))
    return found


def _set_embracement(models, embracement: str | None) -> str | None:
    """Set every EmbraceNet's inference rule (None: keep the trained one); returns the rule
    the models now use, or None when they have no EmbraceNet."""
    layers = [layer for model in models for layer in _embracenet_layers(model)]
    if not layers:
        return None
    for layer in layers:
        layer.inference = embracement or layer.inference
    rules = sorted({layer.inference for layer in layers})
    if len(rules) > 1:
        raise ValueError(f"export_experiment: the fold models' EmbraceNets use different inference rules {rules}; "
                         "pass embracement= to choose one")
    return rules[0]


def _shape(shape: tf.TensorShape):
    return None if shape.rank is None else [None if d is None else int(d) for d in shape.as_list()]


def describe_signature(function, meanings: dict) -> dict:
    """Inputs and outputs (name, dtype, shape; None = any size, a null shape = any rank)."""
    concrete = function.get_concrete_function()
    return {
        "inputs": {spec.name: {"dtype": spec.dtype.name, "shape": _shape(spec.shape)}
                   for spec in function.input_signature},
        "outputs": {name: {"dtype": tensor.dtype.name, "shape": _shape(tensor.shape), "meaning": meanings.get(name)}
                    for name, tensor in sorted(concrete.structured_outputs.items())},
    }


def _save(module, path: str, signatures: dict, started: float):
    if os.path.isdir(path):
        shutil.rmtree(path)  # a SavedModel folder holds nothing but the export's own files
    tf.saved_model.save(module, path, signatures=signatures)
    logger.info(f"  wrote {path} (signatures: {', '.join(signatures)}; {time.time() - started:.0f} s)")


def export_experiment(
    root: str,
    export_dir: str,
    classifier_run: str = "mff",
    segmenter_run: str = "w_mm_unet",
    embracement: str | None = None,
    parts=SAVED_MODELS,
) -> dict:
    """Export a trained experiment as three SavedModels and ``export.json`` (§3.1-§3.3).

    Ensembles and thresholds (the protocol's own rules):

    * **segmenter**: all K fold models, combined by the fold union (§3.4): a pixel is lesion
      where more than half of the fold models' masks (``probability > threshold``, the run's
      ``config.threshold``) mark it, as :func:`tf_bimodal.evaluation.segmentation.majority_vote`
      and the experiment's ``predicted_masks.npz``. The mean probability is output too.
    * **classifier**: all K fold models; ``p_malignant`` is the mean of their probabilities of
      malignancy, the threshold the mean of the folds' Youden thresholds (each chosen on its
      fold's validation images, §3.3.1); ``label`` is 1 (malignant) if ``p >= threshold``.
      Averaging keeps the ensemble's output a probability on the scale the thresholds were
      chosen on; no test image is used to choose anything.
    * **cad_pipeline**: the two ensembles chained with the preprocessing in the graph (see
      :class:`tf_bimodal.export.modules.CADPipeline`): resize to the model size and ``/ 255``;
      masks resized back to the input size and voted; the crop box is the mask's bounding
      box plus ``round(50 * side / 336)`` pixels on each axis (the rule of
      :func:`tf_bimodal.data.cropping.scaled_margin`, applied to each side of the input),
      clipped; both images cropped and resized to the
      classifier's size. An **empty mask** gives the whole image as the crop (the training
      pipeline's rule), with ``box = [0, 0, H, W]`` and an all-zero ``mask``. For a
      classifier trained without crops (``<model>_crop_none``) the box is always the whole
      image; one trained on manual crops is served with the segmenter's masks (no manual
      mask exists at serving time), which ``export.json`` records, as it records a classifier
      trained on W-MM-U-Net crops chained after another segmenter. A classifier with a context
      crop (``context_margin``, the linear read-out's) also gets the wider crop.
    * **B-mode-only pipeline**: when neither run reads SE-mode (``unet_bmode`` then
      ``vgg16_bmode``), every ``cad_pipeline`` signature takes the B-mode image alone;
      ``export.json``'s ``modalities`` is ``["bmode"]`` (``["bmode", "semode"]`` otherwise).

    Every model is called with ``training=False``; EmbraceNet uses ``embracement``: None
    (default) keeps the rule the classifier was trained and thresholded with
    (``ClassificationConfig.embracenet_inference``: ``mc`` in the ``paper`` and ``cpu``
    presets); ``"expected"`` and ``"mc"`` are deterministic (the same inputs give the same
    outputs); ``"sample"`` draws the modalities per feature on every call, the reference
    implementation's stochastic inference (docs/embracenet_inference.md).

    Args:
        root: the experiment folder (``<output>/<dataset>-<preset>``, see
            :func:`tf_bimodal.experiments.protocol.experiment_dir`).
        export_dir: where to write; existing ``segmenter/``, ``classifier/``,
            ``cad_pipeline/`` and ``export.json`` there are replaced.
        classifier_run: the classification run folder (default ``mff``, the paper's MFF on
            W-MM-U-Net crops; any finished classifier of the experiment, ``vgg16_bmode``,
            ``vgg16_bmode_crop_manual``, ...).
        segmenter_run: the segmentation run folder (default ``w_mm_unet``; any finished
            segmenter, ``unet_bmode`` for a B-mode-only pipeline).
        embracement: None (the trained rule), ``"expected"``, ``"sample"`` or ``"mc"``.
        parts: which SavedModels to write, a subset of ``SAVED_MODELS`` (default all three);
            only the runs they need are read.

    Returns:
        The ``export.json`` record (also written), with ``"paths"`` of what was written.

    Raises:
        FileNotFoundError: the experiment lacks a finished segmenter or classifier run; the
            message names the missing file or folder and the command that trains it.
        ValueError: an unknown ``embracement`` or part; a run name that is no segmenter or no
            classifier; a pair that cannot be chained
            (:func:`tf_bimodal.export.sources.chain_modalities`); a run the pipeline cannot
            serve (a crop shape other than ``rectangle``, models of unexpected sizes).
    """
    if embracement is not None and embracement not in INFERENCE_MODES:
        raise ValueError(f"export_experiment: embracement must be one of {INFERENCE_MODES}, got {embracement!r}")
    parts = tuple(parts)
    if not parts or set(parts) - set(SAVED_MODELS):
        raise ValueError(f"export_experiment: parts must be a non-empty subset of {SAVED_MODELS}, got {parts!r}")
    parts = tuple(name for name in SAVED_MODELS if name in parts)
    started = time.time()
    needs_segmenter = bool({"segmenter", "cad_pipeline"} & set(parts))
    needs_classifier = bool({"classifier", "cad_pipeline"} & set(parts))
    # Find every run first: a missing one fails before anything is loaded or written.
    segmenter_source = find_segmenter(root, segmenter_run) if needs_segmenter else None
    classifier_source = find_classifier(root, classifier_run) if needs_classifier else None
    if "cad_pipeline" in parts and classifier_source.crop != "none" and classifier_source.crop_shape != "rectangle":
        raise ValueError(
            f"export_experiment: {classifier_run} was trained on {classifier_source.crop_shape!r}-shaped crops; "
            "the exported pipeline crops rectangles only"
        )
    modalities = chain_modalities(segmenter_source, classifier_source) if "cad_pipeline" in parts else None
    sources = [source for source in (segmenter_source, classifier_source) if source is not None]
    synthetic = any(source.synthetic for source in sources)
    logger.info(f"Exporting {', '.join(parts)} of {root} ("
        + "; ".join(f"{source.run}: {len(source.folds)} folds" for source in sources) + f") -> {export_dir}")
    if synthetic:
        logger.info(SYNTHETIC_NOTICE)

    record = {
        "format": EXPORT_FORMAT,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "experiment": os.path.abspath(root),
        "parts": list(parts),
        "runs": {"segmenter": segmenter_run if segmenter_source else None,
                 "classifier": classifier_run if classifier_source else None},
        "modalities": list(modalities) if modalities else None,
        "synthetic": synthetic,
        "notice": SYNTHETIC_NOTICE if synthetic else None,
        "versions": {"tf_bimodal": tf_bimodal.__version__, "tensorflow": tf.__version__,
                     "keras": keras.__version__},
    }
    segmenter = classifier = None
    if segmenter_source is not None:
        segmenter, record["segmenter"] = _segmenter_ensemble(segmenter_source)
    if classifier_source is not None:
        classifier, record["classifier"] = _classifier_ensemble(classifier_source, embracement)

    modules = _serving_modules(parts, segmenter, classifier, classifier_source)
    if "cad_pipeline" in modules:
        record["cad_pipeline"] = _pipeline_record(modules["cad_pipeline"][0], segmenter_source, classifier_source)
    os.makedirs(export_dir, exist_ok=True)
    paths = {name: os.path.join(export_dir, name) for name in parts}
    record["signatures"] = {}
    for name, (module, functions) in modules.items():
        step_started = time.time()
        record["signatures"][name] = {key: describe_signature(function, OUTPUT_MEANINGS[name])
                                      for key, function in functions.items()}
        _save(module, paths[name], functions, step_started)
    record["usage"] = ("m = tf.saved_model.load(path); m.signatures['serving_default'](**inputs) -> dict of "
                       "outputs; the cad_pipeline's serving_default takes one case: "
                       + ("the B-mode image alone (grey, grey as RGB or RGBA; this pipeline reads B-mode only)"
                          if modalities == ("bmode",) else
                          "one pair (B-mode grey, grey as RGB or RGBA; SE RGB or RGBA)")
                       + ", serve_batch a batch of one size, serve_bmode_only(_batch) B-mode alone")
    record["seconds"] = round(time.time() - started, 1)
    write_json(os.path.join(export_dir, EXPORT_FILE), record)
    logger.info(f"Wrote {os.path.join(export_dir, EXPORT_FILE)} ({record['seconds']:.0f} s)")
    return {**record, "paths": {**paths, "export_json": os.path.join(export_dir, EXPORT_FILE)}}


def _serving_modules(parts, segmenter, classifier, classifier_source) -> dict:
    """``{part: (tf.Module, {signature name: function})}`` of the SavedModels to write."""
    modules = {}
    if "segmenter" in parts:
        serving = SegmenterServing(segmenter)
        modules["segmenter"] = (serving, {"serving_default": serving.serve, "serve_float": serving.serve_float})
    if "classifier" in parts:
        serving = ClassifierServing(classifier)
        modules["classifier"] = (serving, {"serving_default": serving.serve})
    if "cad_pipeline" in parts:
        pipeline = CADPipeline(segmenter, classifier, crop=classifier_source.crop != "none",
                               margin=PAPER_MARGIN, reference_size=DEFAULT_IMAGE_SIZE,
                               context_margin=classifier_source.context_margin)
        modules["cad_pipeline"] = (pipeline, pipeline.serving_signatures())
    return modules


def _segmenter_ensemble(source) -> tuple:
    """The fold segmenters of ``source`` as a :class:`SegmenterEnsemble`, and their record."""
    models = load_fold_models(source.model_paths)
    tensors = _model_inputs(models[0])
    model_size = int(next(iter(tensors.values())).shape[1])
    if model_size != source.model_size:
        raise ValueError(f"export_experiment: {source.run}'s models take {model_size}-pixel images, its summary "
                         f"says {source.model_size}")
    ensemble = SegmenterEnsemble(models, tuple(tensors), model_size, source.threshold,
                                 test_time_flip=source.test_time_flip)
    return ensemble, {
        "run": source.run,
        "model": source.model,
        "dataset": source.dataset,
        "source_fingerprint": source.source_fingerprint,
        "folds": list(source.folds),
        "sources": [os.path.abspath(path) for path in source.model_paths],
        "inputs": list(tensors),
        "model_size": model_size,
        "data_size": source.data_size,
        "threshold": source.threshold,
        "test_time_flip": source.test_time_flip,
        "ensemble": f"fold union: a pixel is lesion where 2 * votes > K = {ensemble.num_models}, a vote being "
                    f"a fold model's probability > {source.threshold} (§3.4, majority_vote)",
    }


def _classifier_ensemble(source, embracement: str | None) -> tuple:
    """The fold classifiers of ``source`` as a :class:`ClassifierEnsemble`, and their record."""
    models = load_fold_models(source.model_paths)
    embracement = _set_embracement(models, embracement)
    has_embracenet = embracement is not None
    tensors = _model_inputs(models[0])
    input_size = int(next(tensor for name, tensor in tensors.items() if name != "availability").shape[1])
    if input_size != source.input_size:
        raise ValueError(f"export_experiment: {source.run}'s models take {input_size}-pixel inputs, its summary "
                         f"says {source.input_size}")
    ensemble = ClassifierEnsemble(models, tuple(tensors), input_size, source.fold_thresholds)
    return ensemble, {
        "run": source.run,
        "model": source.model,
        "dataset": source.dataset,
        "source_fingerprint": source.source_fingerprint,
        "crop": source.crop,
        "folds": list(source.folds),
        "sources": [os.path.abspath(path) for path in source.model_paths],
        "inputs": list(tensors),
        "input_size": input_size,
        "context_margin": source.context_margin,
        "fold_thresholds": list(source.fold_thresholds),
        "threshold": ensemble.threshold,
        "threshold_rule": "mean of the folds' Youden thresholds (each on its fold's validation images, §3.3.1); "
                          "malignant if p_malignant >= threshold",
        "ensemble": f"mean of the {ensemble.num_models} fold models' decision[:, 1]",
        "embracement": embracement if has_embracenet else None,
        "embracement_rule": {
            "expected": "deterministic expected value of the embracement (EmbraceNet inference='expected')",
            "sample": "modalities sampled per feature on every call: outputs vary between calls",
            "mc": "decision probabilities averaged over the EmbraceNet's mc_samples seeded draws "
                  "(EmbraceNet inference='mc'): deterministic",
        }[embracement] if has_embracenet else "the model has no EmbraceNet",
    }


def _masks_for_classifier(segmenter_source, classifier_source) -> str:
    """What the served classifier crops with, against what it trained on."""
    if classifier_source.crop == "manual":
        return (f"{segmenter_source.run} masks, although this classifier trained on manual (ground-truth) crops")
    if classifier_source.crop == "predicted" and segmenter_source.run != CROP_SEGMENTER:
        return f"{segmenter_source.run} masks, although this classifier trained on {CROP_SEGMENTER} crops"
    return classifier_source.crop


def _pipeline_record(pipeline: CADPipeline, segmenter_source, classifier_source) -> dict:
    margin_rule = f"{MARGIN_RULE}, per axis"
    at_data_size = scaled_margin(classifier_source.data_size)
    model_size, input_size = pipeline.segmenter.model_size, pipeline.classifier.input_size
    context = pipeline.context_margin
    images = "the B-mode image" if pipeline.bmode_only else "the pair"
    return {
        "modalities": list(pipeline.modalities),
        "steps": [
            "check the B-mode image (rank, channels, non-empty)" if pipeline.bmode_only
            else "check the pair (rank, channels, non-empty, same size)",
            f"resize to {model_size} x {model_size} (bilinear, antialias, rounded to uint8), / 255",
            "fold segmenters; probabilities resized bilinearly to the input size; fold union",
            "crop box = mask bounding box + margin, clipped" if pipeline.crop else "no crop (whole image)",
            *([f"context box = mask bounding box + {context} px at 336 px scaled per axis, clipped"]
              if context is not None else []),
            f"crop {', '.join(pipeline.classifier.image_inputs)} from {images} (/ 255) and resize bilinearly to "
            f"{input_size} x {input_size}",
            "fold classifiers" + ("" if pipeline.bmode_only else " with availability [1, 1]")
            + "; mean probability; label at the threshold",
        ],
        "crop": pipeline.crop,
        "margin": {"pixels": PAPER_MARGIN, "at_size": DEFAULT_IMAGE_SIZE, "rule": margin_rule,
                   "at_data_size": at_data_size if pipeline.crop else None},
        "context_margin": None if context is None else {
            "pixels": context, "at_size": DEFAULT_IMAGE_SIZE,
            "rule": f"{context} px at 336 px, scaled to the image size: round({context} * side / 336), per axis",
            "at_data_size": scaled_margin(classifier_source.data_size, context)},
        "empty_mask": "the whole image is the crop: box [0, 0, H, W], mask all zero",
        "masks_for_classifier": _masks_for_classifier(segmenter_source, classifier_source),
    }
