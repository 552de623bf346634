"""The package's entry points: one request from the command line or a notebook.

:func:`run` is what ``run_experiments.py`` calls once it has parsed its arguments: it resolves
the preset into one :class:`~tf_bimodal.config.ExperimentConfig` (the only place a preset name
becomes settings), then describes the data (:func:`describe_data`), runs part or all of the
paper's protocol (:func:`tf_bimodal.experiments.protocol.run_protocol`) and exports the
trained experiment (:func:`tf_bimodal.export.export_experiment`).

At the top of the package: it imports the experiments and the exporter, nothing imports it.
Output layout (:mod:`tf_bimodal.layout`)::

    <output>/data/<dataset>/summary.json   counts per class, availability of SE and masks, source
    <output>/data/<dataset>/splits.json    the patient-level folds, made once and reused
    <output>/data/<dataset>/examples.png   a few examples of each class
    <output>/<dataset>-<preset>/           an experiment (tf_bimodal.experiments.protocol)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import tensorflow as tf
import tensorflow_datasets as tfds

from tf_bimodal import layout, locks, logs
from tf_bimodal.config import (
    CLASSIFICATION_MODELS,
    DEFAULT_PRESET,
    PRESETS,
    REQUESTS,
    DataConfig,
    ExperimentConfig,
    RuntimeConfig,
    SplitConfig,
    load_overrides_file,
    resolve_experiment,
    to_dict,
)
from tf_bimodal.data import fingerprint as fingerprint_lib
from tf_bimodal.data import readers
from tf_bimodal.evaluation.figures import save_examples_figure
from tf_bimodal.experiments import plan as plan_lib
from tf_bimodal.experiments.experiment_data import ExperimentData, resolve_data
from tf_bimodal.experiments.protocol import (
    TrainedExperiment,
    experiment_data_for,
    experiment_dir,
    find_experiment,
    run_protocol,
)
from tf_bimodal.experiments.report import write_report
from tf_bimodal.experiments.table3 import check_table3_weights
from tf_bimodal.export import export_experiment
from tf_bimodal.export.evaluate import evaluate_export
from tf_bimodal.export.exporter import EXPORT_FILE
from tf_bimodal.io import write_json
from tf_bimodal.models.classification.backbone_weights import BackboneWeightsUnavailable, check_backbone_weights
from tf_bimodal.models.pretrained import PretrainedWeightsUnavailable
from tf_bimodal.schema import LABELS, SYNTHETIC_NOTICE
from tf_bimodal.training import runtime as runtime_lib

logger = logging.getLogger(__name__)


def _pick_examples(data: ExperimentData, per_class=2):
    """The first ``per_class`` examples of each class present, decoded."""
    wanted = {}
    for position, label in enumerate(data.index.labels):
        if len(wanted.setdefault(int(label), [])) < per_class:
            wanted[int(label)].append(position)
    positions = sorted(p for ps in wanted.values() for p in ps)
    picked = []
    read_config = tfds.ReadConfig(try_autocache=False)
    ds = data.builder.as_dataset(split="train", read_config=read_config).take(max(positions) + 1)
    for position, example in enumerate(ds.as_numpy_iterator()):
        if position in positions:
            picked.append(example)
        if len(picked) == len(positions):
            break
    return picked


def _busi_duplicates(builder) -> dict | None:
    """The near-duplicate summary stored with prepared BUSI data (None if it has none)."""
    metadata = builder.info.metadata
    if metadata is None or "busi_duplicates" not in metadata.keys():
        return None
    return dict(metadata["busi_duplicates"])


def describe_data(data: DataConfig | ExperimentData, split: SplitConfig | None = None,
                  output: str = layout.DEFAULT_OUTPUT) -> dict:
    """Prepare the dataset, make (or reuse) its patient-level splits and summarise it.

    Returns the summary dict that is also written to ``<output>/data/<dataset>/summary.json``.
    For BUSI it also holds ``busi_duplicates``: the near-duplicate groups and label conflicts
    found when the data were prepared (:meth:`tf_bimodal.data.readers.BusiGroups.summary`).
    Where the source records them (BUS-BRA), ``devices`` and ``birads`` count images, patients
    and images per class by scanner and by BI-RADS category
    (:meth:`tf_bimodal.data.dataset.DatasetIndex.summary`).

    Args:
        data: the data, or the request's data resolved already (its folds are then the ones
            described).
        split: the patient-level split settings (None: the default, or the resolved data's).
        output: the results folder.
    """
    started = time.time()
    if not isinstance(data, ExperimentData):
        data = resolve_data(data, split or SplitConfig(), output, in_memory=False)
    folder = layout.data_folder(output, data.name)
    os.makedirs(folder, exist_ok=True)
    logger.info(f"Dataset: {data.description}")
    if data.synthetic:
        logger.info(SYNTHETIC_NOTICE)
    logger.info(f"  source {fingerprint_lib.describe(data.fingerprint)}")
    summary = data.index.summary()
    summary.update(
        dataset=data.title,
        synthetic=data.synthetic,
        dataset_version=data.version,
        source_fingerprint=data.fingerprint,
        prepared_at=data.builder.data_dir,
        image_size=data.data_size,
        data_config=to_dict(data.config),
        split_config=to_dict(data.split),
        folds=[{**{part: len(fold[part]) for part in ("train", "val", "test")},
                **{f"{part}_patients": len(fold[f"{part}_patients"]) for part in ("train", "val", "test")}}
               for fold in data.splits],
        prepare_seconds=round(time.time() - started, 1),
    )
    duplicates = _busi_duplicates(data.builder) if data.config.source == "busi" else None
    if duplicates is not None:
        summary["busi_duplicates"] = duplicates
    summary["left_out"] = left_out(data)
    summary_path = write_json(os.path.join(folder, layout.SUMMARY_FILE), summary)
    _log_summary(summary, data.data_size, duplicates)
    if data.split.scheme == "official" and data.splits:
        tested = sorted({fold["test_patients"] for fold in summary["folds"]})
        patients = f"{tested[0]}" if len(tested) == 1 else f"{tested[0]}-{tested[-1]}"
        logger.info(f"  folds: the data set's own {len(summary['folds'])} test folds of {patients} patients each, "
                    "every patient in one part of every fold; validation drawn patient-grouped from the training part")
    figure = save_examples_figure(
        _pick_examples(data),
        os.path.join(folder, layout.EXAMPLES_FIGURE),
        title=f"{data.description}: examples",
        captions=None,
    )
    logger.info(f"Wrote {summary_path}, {data.splits_path} and {figure}")
    return summary


NAMES_SHOWN = 10
"""File names listed in a progress line before "and N more" (the summary lists them all)."""


def left_out(data: ExperimentData) -> dict:
    """What each task leaves out of the data, and why: segmentation the images without a mask
    (neither trained on nor scored, §4.1; still classified, a manual crop then taking the
    whole image), classification the ``normal`` images (no lesion: not benign vs malignant,
    §4.2), each named by its file (BUSI: ``<class>/<class> (N).png``) or, where the source
    keeps no file name, its image id."""
    index = data.index
    without_mask = [str(image_id) for image_id in index.image_ids[~index.has_mask]]
    if without_mask and data.config.source == "busi":
        files = {image.image_id: image.file_name for image in readers.busi_images(data.config.manual_dir)}
        without_mask = [files.get(image_id, image_id) for image_id in without_mask]
    normal = LABELS.index("normal")
    return {
        "segmentation": {"reason": "no mask", "images": len(without_mask), "files": without_mask},
        "classification": {"reason": "normal (no lesion; not part of benign vs malignant)",
                           "images": int(sum(int(label) == normal for label in index.labels))},
    }


def _log_left_out(left: dict) -> None:
    for task, entry in left.items():
        if not entry["images"]:
            continue
        names = entry.get("files", [])
        shown = "; ".join(names[:NAMES_SHOWN]) + (f"; and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN
                                                 else "")
        logger.info(f"  left out of {task}: {entry['images']} image{'s' * (entry['images'] != 1)}, {entry['reason']}"
                    + (f": {shown}" if shown else ""))


def _log_summary(summary: dict, size: int, duplicates: dict | None) -> None:
    logger.info(f"  images {summary['num_images']}, patients {summary['num_patients']}, image size {size}x{size}")
    for label in LABELS:
        if label in summary:
            logger.info(f"  {label:<10} {summary[label]['images']:>4} images  "
                        f"{summary[label]['patients']:>4} patients")
    logger.info(f"  with SE-mode {summary['with_semode']}, with mask {summary['with_mask']}")
    _log_left_out(summary["left_out"])
    if duplicates is not None:
        logger.info(f"  BUSI near-duplicates: {readers.describe_busi_groups(duplicates)}")
    for key, title in (("devices", "device"), ("birads", "BI-RADS")):
        for value, counts in summary.get(key, {}).items():
            classes = ", ".join(f"{counts[label]} {label}" for label in LABELS if label in counts)
            logger.info(f"  {title} {value}: {counts['images']} images, {counts['patients']} patients ({classes})")
    for k, fold in enumerate(summary["folds"]):
        logger.info(f"  fold {k}: train {fold['train']}, val {fold['val']}, test {fold['test']} images")


def resolve(preset: str = DEFAULT_PRESET, runtime: RuntimeConfig | None = None, overrides=(),
            config_file: str | None = None) -> ExperimentConfig:
    """:func:`tf_bimodal.config.resolve_experiment` with the GPUs TensorFlow sees (for ``auto``).

    Args:
        preset: ``paper``, ``cpu``, ``quick`` or ``auto``.
        runtime: the ``RuntimeConfig``.
        overrides: ``section.key=value`` changes of the preset (``--set``), applied after
            ``config_file``.
        config_file: a TOML or JSON file of settings by section (``--config``).
    """
    gpus = len(tf.config.list_physical_devices("GPU")) if preset == "auto" else 0
    overrides = [*(load_overrides_file(config_file) if config_file else []), *overrides]
    experiment = resolve_experiment(preset, runtime=runtime, gpus=gpus, overrides=overrides)
    # precision "auto" becomes a concrete policy here, before it enters any run's cache key.
    experiment = dataclasses.replace(experiment, runtime=runtime_lib.resolve_precision(experiment.runtime))
    if experiment.overrides:
        logger.info(f"Settings changed from the {experiment.name} preset: {', '.join(experiment.overrides)}")
    if preset == "auto":
        logger.info(f"Preset auto: {experiment.name} ({gpus} GPU{'s' * (gpus != 1)} found)")
    return experiment


def run(
    model: str | None = None,
    data: DataConfig | None = None,
    split: SplitConfig | None = None,
    preset: str | ExperimentConfig = DEFAULT_PRESET,
    crop: str = "predicted",
    output: str = layout.DEFAULT_OUTPUT,
    command: str | None = None,
    runtime: RuntimeConfig | None = None,
    export: str | None = None,
    folds=None,
    wait_for_lock: bool = False,
) -> dict:
    """Run one request: describe the data, or run part or all of the paper's protocol.

    Progress lines go to the ``tf_bimodal`` logger, shown on standard output
    (:func:`tf_bimodal.logs.console`) and copied into each run's ``log.txt``.

    Args:
        model: ``None`` (prepare and describe the data set); a segmenter of Table 1
            (``SEGMENTATION_MODELS``); a classifier of Table 2 (``CLASSIFICATION_MODELS``),
            which with ``crop="predicted"`` first trains or reuses W-MM-U-Net for the crops;
            ``table1``, ``table2``, ``table3`` (MFF and the earlier methods of Table 3,
            §4.2.2), ``all`` or ``grid_search`` (see :mod:`tf_bimodal.experiments.protocol`).
        data: which data (default: the synthetic phantom).
        split: the patient-level split settings (default: the paper's protocol, 5 folds).
        preset: ``paper``, ``cpu``, ``quick`` or ``auto`` (``paper`` with a GPU, else ``cpu``),
            or an already resolved ``ExperimentConfig``.
        crop: single classifiers: ``predicted`` (W-MM-U-Net masks), ``manual`` or ``none``.
        output: the results folder; experiments go to ``<output>/<dataset>-<preset>/``.
        command: the command line, recorded in the report.
        runtime: strategy, precision and TensorBoard (``RuntimeConfig``; default: ``auto``
            strategy, float32, TensorBoard on); ignored when ``preset`` is an
            ``ExperimentConfig``, which carries its own.
        export: a folder: after the request (or alone, without ``model``), export the
            experiment's W-MM-U-Net, MFF and the end-to-end CAD pipeline as SavedModels there
            (:func:`tf_bimodal.export.export_experiment`). In a multi-worker run only the
            chief exports.
        folds: train only these folds (one job per fold); see
            :func:`tf_bimodal.experiments.protocol.run_protocol`.
        wait_for_lock: another run training the same folds into the experiment folder holds
            its lock (:mod:`tf_bimodal.locks`): wait for it rather than stop.

    Returns:
        The data summary (``model=None``), or ``run_protocol``'s record of the steps and the
        report's path.
    """
    logs.console()
    data = data or DataConfig()
    split = split or SplitConfig()
    if model is None and export is None:
        return describe_data(data, split, output)
    if model is not None and model not in REQUESTS:
        raise ValueError(f"model must be one of {REQUESTS} (or None to describe the data), got {model!r}")
    experiment = preset if isinstance(preset, ExperimentConfig) else resolve(preset, runtime)
    if model is None:
        return _export(experiment_dir(output, data, experiment.name), experiment, crop, export)
    if model in (*CLASSIFICATION_MODELS, "table2", "table3", "all"):
        # A missing weights file, or required weights that cannot be had, fails now rather
        # than after the data are prepared and the segmenters have trained.
        check_backbone_weights(experiment.classification.backbone_weights,
                               experiment.classification.require_backbone_weights)
    if model == "table3":
        check_table3_weights(experiment.table3)
    # One run per experiment folder (and fold) at a time: taken before the data are read.
    own_root = runtime_lib.worker_output(experiment_dir(output, data, experiment.name), experiment.runtime)
    with locks.experiment_lock(own_root, None if model == "grid_search" else folds, wait=wait_for_lock):
        resolved = experiment_data_for(data, split, experiment, output)  # the one pass over the data
        result = run_protocol(model, resolved, None, experiment, output, crop=crop, command=command, folds=folds)
        if export is not None:
            result["export"] = _export(resolved.experiment_dir(output, experiment.name), experiment,
                                       crop if model in CLASSIFICATION_MODELS else "predicted", export)
    return result


def plan(model: str, data: DataConfig | None = None, split: SplitConfig | None = None,
         preset: str | ExperimentConfig = DEFAULT_PRESET, crop: str = "predicted",
         output: str = layout.DEFAULT_OUTPUT, timing: str = "measured") -> dict:
    """What a ``train`` request will take on this device, before it runs
    (:mod:`tf_bimodal.experiments.plan`): every model's parameters, memory, micro-batch x
    accumulation steps, steps per epoch, a measured step time and an upper bound of the time.
    A model that does not fit even at one image stops it before any data work
    (:class:`tf_bimodal.training.memory.DoesNotFit`, a ``ValueError``). Written to
    ``<output>/<dataset>-<preset>/plan.json``; returns the plan.
    """
    logs.console()
    data = data or DataConfig()
    split = split or SplitConfig()
    experiment = preset if isinstance(preset, ExperimentConfig) else resolve(preset)
    if model not in REQUESTS or model == "grid_search":
        raise ValueError(f"plan: model must be one of {tuple(r for r in REQUESTS if r != 'grid_search')}, "
                         f"got {model!r}")
    checked = plan_lib.check_fit(model, data, experiment, crop)
    resolved = resolve_data(data, split, output, in_memory=False)
    describe_data(resolved, output=output)
    record = plan_lib.make_plan(checked, resolved, experiment, output, timing)
    if model in (*CLASSIFICATION_MODELS, "table2", "table3", "all"):
        try:
            check_backbone_weights(experiment.classification.backbone_weights,
                                   experiment.classification.require_backbone_weights)
            if model == "table3":
                check_table3_weights(experiment.table3)
        except (BackboneWeightsUnavailable, PretrainedWeightsUnavailable, ValueError) as error:
            logger.warning(f"train {model} would stop before its first step: {getattr(error, 'command_line', error)}")
    return record


def _export(root, experiment, crop, export_dir, segmenter: str | None = None, classifier: str | None = None) -> dict:
    if not runtime_lib.is_chief(experiment.runtime):
        logger.info(f"Not exporting to {export_dir}: only the chief worker exports")
        return {"skipped": "not the chief worker"}
    logger.info(f"Exporting {root} to {export_dir}")
    return export_experiment(root, export_dir, classifier_run=classifier or layout.classification_run_name("mff", crop),
                             segmenter_run=segmenter or layout.CROP_SEGMENTER)


def export(directory: str, data: DataConfig | None = None, preset: str | ExperimentConfig | None = None,
           output: str = layout.DEFAULT_OUTPUT, crop: str = "predicted", segmenter: str | None = None,
           classifier: str | None = None, **settings) -> dict:
    """Export the trained experiment ``<output>/<dataset>-<preset>`` into ``directory``
    (:func:`tf_bimodal.export.export_experiment`): the segmentation run ``segmenter`` (default
    ``w_mm_unet``) and the classification run ``classifier`` (default ``mff`` on the ``crop``
    crops) as SavedModels and the CAD pipeline; ``unet_bmode`` with ``vgg16_bmode`` gives a
    pipeline that reads B-mode only. ``data`` or ``preset`` None: the one experiment of
    ``output`` that matches the other (:func:`trained_experiment`, which also takes
    ``settings``). Returns the ``export.json`` record.

    Raises:
        ValueError: both ``classifier`` and a ``crop`` other than ``predicted`` (the run name
            says its crops); an unknown run or a pair that cannot be chained; several
            experiments in ``output`` that match.
        FileNotFoundError: no such experiment, or a run that is not trained, naming the
            command that trains it.
    """
    logs.console()
    if classifier is not None and crop != "predicted":
        raise ValueError(f"export: give --classifier ({classifier}) or --crop ({crop}), not both: a classifier run's "
                         "name says its crops (<model>_crop_<crop>)")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise NotADirectoryError(f"export: {directory} is a file; the export is a folder")
    found, experiment = trained_experiment(output, data, preset, **settings)
    return _export(found.root, experiment, crop, directory, segmenter, classifier)


def trained_experiment(output: str, data: DataConfig | None = None, preset: str | ExperimentConfig | None = None,
                       runtime: RuntimeConfig | None = None, overrides=(), config_file: str | None = None,
                       data_dir: str | None = None) -> tuple[TrainedExperiment, ExperimentConfig]:
    """The experiment of ``output`` a command reads, and its settings: ``data`` under ``preset``
    where both are given, else the one experiment that matches what is given
    (:func:`tf_bimodal.experiments.protocol.find_experiment`), its data and folds as its
    ``protocol.json`` records them and its preset resolved with ``runtime``, ``overrides``
    and ``config_file``. ``data_dir`` replaces where the prepared data are looked for."""
    experiment = preset if isinstance(preset, ExperimentConfig) else None
    if experiment is None and preset is not None:
        experiment = resolve(preset, runtime, overrides, config_file)
    found = find_experiment(output, data, experiment.name if experiment is not None else None)
    if experiment is None:
        experiment = resolve(found.preset if found.preset in PRESETS else DEFAULT_PRESET, runtime, overrides,
                             config_file)
        if experiment.name != found.preset:  # settings of the caller's own name
            experiment = dataclasses.replace(experiment, name=found.preset)
        logger.info(f"Experiment {found.root} (the one in {output})")
    if data_dir is not None:
        found = dataclasses.replace(found, data=dataclasses.replace(found.data, data_dir=data_dir))
    return found, experiment


def export_source(source: str) -> str:
    """What ``predict`` and ``evaluate`` serve from ``source``: an export folder or an
    experiment folder as it is; in a results folder holding one experiment, that experiment.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: ``source`` holds several experiments, listing them.
    """
    if not os.path.isdir(source):
        raise FileNotFoundError(f"{source}: no such folder (give an export folder, an experiment folder or a results "
                                "folder holding one experiment)")
    if os.path.isfile(os.path.join(source, EXPORT_FILE)) or layout.is_experiment_folder(source):
        return source
    found = layout.experiment_folders(source)
    if len(found) > 1:
        raise ValueError(f"{source} holds {len(found)} experiments ({', '.join(map(os.path.basename, found))}): "
                         f"give one of them, e.g. {found[0]}")
    if found:
        logger.info(f"Experiment {found[0]} (the one in {source})")
        return found[0]
    return source


def evaluate(source: str, data: DataConfig, output: str | None = None) -> dict:
    """Score the exported pipeline of ``source`` (an export folder, or an experiment folder
    exported first) on the labelled data set ``data`` (external validation,
    :func:`tf_bimodal.export.evaluate.evaluate_export`): lesion Dice and IoU, missed lesions,
    AUC, sensitivity and specificity per image and per patient at the exported threshold, by
    device where the data names one; writes ``evaluation.json``, ``evaluation.md``,
    ``evaluation.csv`` and the figures into ``output`` (default ``<export>/evaluation/<dataset>``).
    Returns the ``evaluation.json`` record."""
    logs.console()
    return evaluate_export(source, data, output)


def report(data: DataConfig | None = None, experiment: str | ExperimentConfig | None = None,
           output: str = layout.DEFAULT_OUTPUT, roc_table3: bool = False, **settings) -> str:
    """Rewrite the report of the experiment ``<output>/<dataset>-<preset>`` from its results
    (``data`` or ``experiment`` None: the one experiment of ``output`` that matches the
    other, :func:`trained_experiment`, which also takes ``settings``); returns the report's
    path. ``roc_table3``: Figure 6 also draws the Table 3 methods' ROC curves.

    Raises:
        FileNotFoundError: no such experiment, listing those ``output`` holds.
        ValueError: several experiments match, listing them.
    """
    found, experiment = trained_experiment(output, data, experiment, **settings)
    path = write_report(found.root, experiment_data_for(found.data, found.split, experiment, output),
                        roc_table3=roc_table3)
    logger.info(f"Report: {path}")
    return path
