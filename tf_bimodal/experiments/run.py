"""The experiment runner behind ``run_experiments.py``.

Output layout (experiments add ``<output>/<dataset>-<preset>/``, see
:mod:`tf_bimodal.experiments.protocol`)::

    <output>/data/<dataset>/summary.json   counts per class, availability of SE and masks
    <output>/data/<dataset>/splits.json    the patient-level folds, made once and reused
    <output>/data/<dataset>/examples.png   a few examples of each class
"""

from __future__ import annotations

import os
import time

import tensorflow as tf
import tensorflow_datasets as tfds

from tf_bimodal.experiments.common import SYNTHETIC_NOTICE, write_json
from tf_bimodal.config import (
    CLASSIFICATION_MODELS,
    PRESETS,
    SEGMENTATION_MODELS,
    DataConfig,
    RuntimeConfig,
    SplitConfig,
    to_dict,
)
from tf_bimodal.data import dataset as dataset_lib
from tf_bimodal.data import fingerprint as fingerprint_lib
from tf_bimodal.data import splits as splits_lib
from tf_bimodal.data.schema import LABELS
from tf_bimodal.data.visualize import save_examples_figure
from tf_bimodal.experiments.protocol import EXPERIMENTS, experiment_dir, run_protocol
from tf_bimodal.training import runtime as runtime_lib


def dataset_title(data: DataConfig) -> str:
    """A one-line description of the data, marking synthetic data as such."""
    if data.source == "phantom":
        return f"bimodal_breast_us/{dataset_lib.builder_config_name(data)} (synthetic phantom)"
    if data.source == "busi":
        return f"bimodal_breast_us/{dataset_lib.builder_config_name(data)} (BUSI, real, B-mode only)"
    return f"bimodal_breast_us/{dataset_lib.builder_config_name(data)} (clinical, {data.manual_dir})"


def _pick_examples(builder, index, per_class=2):
    """The first ``per_class`` examples of each class present, decoded."""
    wanted = {}
    for position, label in enumerate(index.labels):
        if len(wanted.setdefault(int(label), [])) < per_class:
            wanted[int(label)].append(position)
    positions = sorted(p for ps in wanted.values() for p in ps)
    picked = []
    read_config = tfds.ReadConfig(try_autocache=False)
    ds = builder.as_dataset(split="train", read_config=read_config).take(max(positions) + 1)
    for position, example in enumerate(ds.as_numpy_iterator()):
        if position in positions:
            picked.append(example)
        if len(picked) == len(positions):
            break
    return picked


def describe_data(data: DataConfig, split: SplitConfig, output: str, log=print) -> dict:
    """Prepare the dataset, make (or reuse) its patient-level splits and summarise it.

    Returns the summary dict that is also written to ``<output>/data/<dataset>/summary.json``.
    """
    started = time.time()
    name = dataset_lib.builder_config_name(data)
    folder = os.path.join(output, "data", name)
    tf.io.gfile.makedirs(folder)
    log(f"Dataset: {dataset_title(data)}")
    if data.source == "phantom":
        log(SYNTHETIC_NOTICE)
    builder = dataset_lib.prepare(data)
    fingerprint = dataset_lib.stored_fingerprint(builder)
    log(f"  source {fingerprint_lib.describe(fingerprint)}")
    index = dataset_lib.index_dataset(builder)
    summary = index.summary()
    splits = splits_lib.load_or_make_splits(
        os.path.join(folder, "splits.json"),
        index.image_ids,
        index.patient_ids,
        index.labels,
        split,
    )
    summary.update(
        dataset=f"bimodal_breast_us/{name}",
        synthetic=data.source == "phantom",
        dataset_version=str(builder.info.version),
        source_fingerprint=fingerprint,
        prepared_at=builder.data_dir,
        image_size=data.image_size,
        data_config=to_dict(data),
        split_config=to_dict(split),
        folds=[
            {part: len(fold[part]) for part in ("train", "val", "test")} for fold in splits
        ],
        prepare_seconds=round(time.time() - started, 1),
    )
    write_json(os.path.join(folder, "summary.json"), summary)

    log(f"  images {summary['num_images']}, patients {summary['num_patients']}, "
        f"image size {data.image_size}x{data.image_size}")
    for label in LABELS:
        if label in summary:
            log(f"  {label:<10} {summary[label]['images']:>4} images  "
                f"{summary[label]['patients']:>4} patients")
    log(f"  with SE-mode {summary['with_semode']}, with mask {summary['with_mask']}")
    for k, fold in enumerate(summary["folds"]):
        log(f"  fold {k}: train {fold['train']}, val {fold['val']}, test {fold['test']} images")

    title = f"{dataset_title(data)}: examples"
    figure = save_examples_figure(
        _pick_examples(builder, index),
        os.path.join(folder, "examples.png"),
        title=title,
        captions=None,
    )
    log(f"Wrote {os.path.join(folder, 'summary.json')}, {os.path.join(folder, 'splits.json')} and {figure}")
    return summary


def resolve_preset(preset: str, log=print) -> str:
    """``auto`` becomes ``paper`` when TensorFlow sees a GPU and ``cpu`` otherwise."""
    if preset != "auto":
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS} or 'auto', got {preset!r}")
        return preset
    gpus = tf.config.list_physical_devices("GPU")
    chosen = "paper" if gpus else "cpu"
    log(f"Preset auto: {chosen} ({len(gpus)} GPU{'s' * (len(gpus) != 1)} found)")
    return chosen


def run(
    model: str | None = None,
    data: DataConfig | None = None,
    split: SplitConfig | None = None,
    preset: str = "auto",
    crop: str = "predicted",
    output: str = "runs",
    command: str | None = None,
    log=print,
    runtime: RuntimeConfig | None = None,
    export: str | None = None,
) -> dict:
    """Run one request: describe the data, or run part or all of the paper's protocol.

    Args:
        model: ``None`` (prepare and describe the data set); a segmenter of Table 1
            (``SEGMENTATION_MODELS``); a classifier of Table 2 (``CLASSIFICATION_MODELS``),
            which with ``crop="predicted"`` first trains or reuses W-MM-U-Net for the crops;
            ``table1``, ``table2``, ``all`` or ``grid_search``
            (see :mod:`tf_bimodal.experiments.protocol`).
        data: which data (default: the synthetic phantom).
        split: the patient-level split settings (default: the paper's protocol, 5 folds).
        preset: ``paper``, ``cpu``, ``quick`` or ``auto`` (``paper`` with a GPU, else ``cpu``).
        crop: single classifiers: ``predicted`` (W-MM-U-Net masks), ``manual`` or ``none``.
        output: the results folder; experiments go to ``<output>/<dataset>-<preset>/``.
        command: the command line, recorded in the report.
        log: where progress lines go.
        runtime: strategy, precision and TensorBoard (``RuntimeConfig``; default: ``auto``
            strategy, float32, TensorBoard on).
        export: a folder: after the request (or alone, without ``model``), export the
            experiment's W-MM-U-Net, MFF and the end-to-end CAD pipeline as SavedModels there
            (:func:`tf_bimodal.export.export_experiment`). In a multi-worker run only the
            chief exports.

    Returns:
        The data summary (``model=None``), or ``run_protocol``'s record of the steps and the
        report's path.
    """
    data = data or DataConfig()
    split = split or SplitConfig()
    if model is None and export is None:
        return describe_data(data, split, output, log=log)
    if model is None:
        preset = resolve_preset(preset, log=log)
        return _export(output, data, preset, crop, export, log, runtime)
    if model not in SEGMENTATION_MODELS + CLASSIFICATION_MODELS + EXPERIMENTS:
        raise ValueError(
            f"model must be one of {SEGMENTATION_MODELS + CLASSIFICATION_MODELS + EXPERIMENTS} (or None to "
            f"describe the data), got {model!r}"
        )
    preset = resolve_preset(preset, log=log)
    result = run_protocol(model, data, split, preset=preset, crop=crop, output=output, command=command, log=log,
                          runtime=runtime)
    if export is not None:
        result["export"] = _export(output, data, preset, crop if model in CLASSIFICATION_MODELS else "predicted",
                                   export, log, runtime)
    return result


def _export(output, data, preset, crop, export_dir, log, runtime=None) -> dict:
    if not runtime_lib.is_chief(runtime):
        log(f"Not exporting to {export_dir}: only the chief worker exports")
        return {"skipped": "not the chief worker"}
    from tf_bimodal.config import classification_run_name
    from tf_bimodal.export import export_experiment

    root = experiment_dir(output, data, preset)
    log(f"Exporting {root} to {export_dir}")
    return export_experiment(root, export_dir, classifier_run=classification_run_name("mff", crop), log=log)
