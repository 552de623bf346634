"""The paper's protocol end to end: segment, crop, classify, compare (§3.4, §4).

One *experiment* is one data set under one preset; it lives in
``<output>/<dataset>-<preset>/`` (e.g. ``runs/phantom-cpu/``) and every model of it shares
the same patient-level folds (``data/<dataset>/splits.json`` there). A request names what to
produce:

* a segmenter of Table 1 (``w_mm_unet``, ...): that model, cross-validated;
* a classifier of Table 2 (``mff``, ...) with a crop: for ``crop="predicted"`` (the paper's
  chain, the default) the W-MM-U-Net fold models are trained first (or reused), their
  fold-union masks crop the images (50 px margin at 336 px, §3.1), then the classifier is
  cross-validated;
* ``table1``, ``table2`` or ``all`` (Tables 1 and 2): every row of those tables, in the
  paper's order, the W-MM-U-Net masks made once and shared;
* ``table3``: W-MM-U-Net, MFF (Table 2's proposed row, the same cached step), then the earlier
  methods of ``Table3Config.methods`` (§4.2.2, :mod:`tf_bimodal.experiments.table3`), whose
  ImageNet weights are checked before anything trains;
* ``grid_search``: the segmentation hyperparameter grid of §3.4 (Table S4).

Every step is cached by the settings it depends on (:mod:`tf_bimodal.experiments.cross_validation`):
asking again reuses finished steps; after an interruption finished folds are reused and the
unfinished fold resumes from its last epoch. After every request the experiment's report,
``report.md`` with Tables 1, 2 and 3, the paired t-tests and Figures 5 and 6, is rewritten from
whatever results the experiment holds (:mod:`tf_bimodal.experiments.report`). In a
multi-worker run only the chief writes there; every other worker writes its ``protocol.json``
and report in its own copy, ``<dataset>-<preset>/_workers/<job>_<index>/``
(:func:`tf_bimodal.training.runtime.worker_output`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence

from tf_bimodal import layout
from tf_bimodal.config import (
    CLASSIFICATION_CROPS,
    CLASSIFICATION_MODELS,
    REQUESTS,
    SEGMENTATION_MODELS,
    TABLE1_ROWS,
    TABLE2_ROWS,
    TABLE3_METHODS,
    TABLE3_ROWS,
    DataConfig,
    ExperimentConfig,
    SplitConfig,
    TableRow,
    classification_row,
    crop_masks,
    to_dict,
)
from tf_bimodal.data import dataset as dataset_lib
from tf_bimodal.experiments.classification import run_classification
from tf_bimodal.experiments.experiment_data import ExperimentData, resolve_data
from tf_bimodal.experiments.grid_search import run_grid_search
from tf_bimodal.experiments.report import write_report
from tf_bimodal.experiments.segmentation import run_segmentation
from tf_bimodal.experiments.table3 import check_table3_weights, run_table3_method
from tf_bimodal.io import read_json_or_none, write_json
from tf_bimodal.training import runtime as runtime_lib

logger = logging.getLogger(__name__)


def experiment_dir(output: str, data: DataConfig, preset: str) -> str:
    """The folder of an experiment trained earlier, ``<output>/<dataset>-<preset>``
    (:mod:`tf_bimodal.layout`): the data's name from its source's fingerprint, without
    preparing or reading the data. A running request has it from its ``ExperimentData``."""
    return layout.experiment_dir(output, dataset_lib.builder_config_name(data), preset)


@dataclasses.dataclass(frozen=True)
class TrainedExperiment:
    """An experiment folder found under a results folder (:func:`find_experiment`): its
    folder, the data and folds it was trained on (from its ``protocol.json``) and its preset's
    name."""

    root: str
    data: DataConfig
    split: SplitConfig | None
    preset: str


PICK_OPTIONS = "--preset (and, for another data set, --data, --manual-dir, --image-size)"
"""The options of the command line that pick one experiment of a results folder."""


def find_experiment(output: str, data: DataConfig | None = None, preset: str | None = None) -> TrainedExperiment:
    """The experiment of the results folder ``output`` that a command reads (``report``,
    ``export``): the one of ``data`` under ``preset`` where both are given, else the one
    experiment that matches what is given, whatever the default preset.

    Args:
        output: the results folder.
        data: the data asked for, or None for any.
        preset: the preset's name (``ExperimentConfig.name``), or None for any.

    Raises:
        FileNotFoundError: no such experiment, listing those ``output`` holds.
        ValueError: several match, listing them and the options that pick one.
    """
    wanted_name = dataset_lib.builder_config_name(data) if data is not None else None
    found = [root for root in layout.experiment_folders(output)
             if (preset is None or layout.preset_of_experiment(root) == preset)
             and (wanted_name is None or layout.dataset_of_experiment(root) == wanted_name)]
    names = ", ".join(os.path.basename(root) for root in layout.experiment_folders(output)) or "none"
    if not found:
        wanted = layout.experiment_dir(output, wanted_name or "<dataset>", preset or "<preset>")
        raise FileNotFoundError(f"no experiment at {wanted} (experiments in {output}: {names}); train one first "
                                f"(tf-bimodal train MODEL --output {output}) or pick one with {PICK_OPTIONS}")
    if len(found) > 1:
        raise ValueError(f"{output} holds {len(found)} experiments ({names}): pick one with {PICK_OPTIONS}")
    root = found[0]
    protocol = read_json_or_none(os.path.join(root, layout.PROTOCOL_FILE)) or {}
    recorded = DataConfig.from_dict(protocol["data"]) if protocol.get("data") else None
    split = None
    if protocol.get("split"):
        split_record = dict(protocol["split"])
        if "paper_sizes" in split_record:  # a JSON list; the settings hold a tuple
            split_record["paper_sizes"] = tuple(split_record["paper_sizes"])
        split = SplitConfig(**split_record)
    return TrainedExperiment(root, data or recorded or DataConfig(), split,
                             str(protocol.get("preset") or layout.preset_of_experiment(root)))


def experiment_data_for(data: DataConfig | ExperimentData, split: SplitConfig | None, experiment: ExperimentConfig,
                        output: str) -> ExperimentData:
    """The request's data, resolved once (:func:`~tf_bimodal.experiments.experiment_data.resolve_data`)
    with its folds in the experiment folder ``<output>/<dataset>-<preset>/`` (a non-chief
    worker's own copy of it); ``data`` itself when it is resolved already.

    The runtime's strategy is created first: a multi-worker strategy must precede every other
    TensorFlow op of the process, preparing the data set included.
    """
    if isinstance(data, ExperimentData):
        return data
    runtime_lib.strategy_for(experiment.runtime)
    return resolve_data(data, split or SplitConfig(), lambda name: runtime_lib.worker_output(
        layout.experiment_dir(output, name, experiment.name), experiment.runtime))


def _segmentation_row(model: str) -> TableRow:
    return next(row for row in TABLE1_ROWS if row.model == model)


def plan_steps(request: str, crop: str = "predicted", table3_methods=TABLE3_METHODS) -> list[TableRow]:
    """The ordered steps (table rows) a request needs, upstream steps first; ``table3`` runs the
    methods of ``table3_methods`` (``Table3Config.methods``) in the paper's order.

    Raises:
        ValueError: an unknown request or crop.
    """
    if crop not in CLASSIFICATION_CROPS:
        raise ValueError(f"crop must be one of {CLASSIFICATION_CROPS}, got {crop!r}")
    crop_step = _segmentation_row(layout.CROP_SEGMENTER)
    if request in SEGMENTATION_MODELS:
        return [_segmentation_row(request)]
    if request in CLASSIFICATION_MODELS:
        return ([crop_step] if crop_masks(crop) == "predicted" else []) + [classification_row(request, crop)]
    if request == "table1":
        return list(TABLE1_ROWS)
    if request == "table2":
        return [crop_step, *TABLE2_ROWS]
    if request == "table3":
        proposed = next(row for row in TABLE2_ROWS if row.proposed)
        return [crop_step, proposed, *(row for row in TABLE3_ROWS if row.model in table3_methods)]
    if request == "all":
        return [*TABLE1_ROWS, *TABLE2_ROWS]
    raise ValueError(f"model must be one of {REQUESTS}, got {request!r}")


def step_kind(row: TableRow) -> str:
    """``segmentation``, ``classification`` or ``table3``: what a step of a request trains."""
    if row.model in TABLE3_METHODS:
        return "table3"
    return "segmentation" if row.crop is None else "classification"


def _run_step(row: TableRow, data: ExperimentData, experiment, root, folds=None) -> dict:
    if row.model in TABLE3_METHODS:
        return run_table3_method(row.model, data, None, experiment, root, folds=folds)
    if row.crop is None:
        return run_segmentation(row.model, data, None, experiment, root, folds=folds)
    return run_classification(row.model, data, None, experiment, root, crop=row.crop, folds=folds)


def _record_steps(root: str, records: list[dict]) -> dict:
    """Merge this request's step records into ``protocol.json`` (latest record per step)."""
    path = os.path.join(root, layout.PROTOCOL_FILE)
    protocol = read_json_or_none(path) or {"steps": {}}
    for record in records:
        protocol["steps"][record["name"]] = record
    write_json(path, protocol)
    return protocol


def run_protocol(
    request: str,
    data: DataConfig | ExperimentData,
    split: SplitConfig | None,
    experiment: ExperimentConfig,
    output: str = layout.DEFAULT_OUTPUT,
    crop: str = "predicted",
    command: str | None = None,
    folds: Sequence[int] | None = None,
) -> dict:
    """Run a request of the paper's protocol and write the experiment's report.

    Args:
        request: a model of Table 1 or 2, ``table1``, ``table2``, ``table3``, ``all`` or
            ``grid_search``.
        data: the data set, resolved once for the request (``ExperimentData``,
            :func:`experiment_data_for`), or a ``DataConfig`` resolved here, once.
        split: patient-level split settings (None with an ``ExperimentData``: its own).
        experiment: the resolved settings (:func:`tf_bimodal.config.resolve_experiment`); its
            ``name`` names the experiment's folder.
        output: results folder; the experiment goes to ``<output>/<dataset>-<name>/``.
        crop: for a single classifier: ``predicted`` (the chain), ``manual`` or ``none``.
        command: the command line that asked, for the report.
        folds: train only these folds of each step (one fold per job, e.g. a SLURM array);
            a step whose other folds are not finished yet stops the request there (the steps
            after it need its summary), and the job that finishes the last fold writes it.

    Returns:
        ``{"experiment_dir", "steps": [records], "report"}``; a record holds the step's name,
        kind, status (``trained`` or ``reused``), this request's seconds and its summary path.
        On a multi-worker run's non-chief worker the paths are those of its own copy.
    """
    if not isinstance(experiment, ExperimentConfig):
        raise TypeError(f"run_protocol: experiment must be an ExperimentConfig (see "
                        f"tf_bimodal.config.resolve_experiment), got {type(experiment).__name__}")
    steps = [] if request == "grid_search" else plan_steps(request, crop, experiment.table3.methods)
    if any(step_kind(row) == "table3" for row in steps):
        check_table3_weights(experiment.table3)  # before the segmenter and MFF train
    data = experiment_data_for(data, split, experiment, output)
    root = data.experiment_dir(output, experiment.name)
    # The steps send a non-chief worker to its own copy themselves; the records and the report follow.
    own_root = runtime_lib.worker_output(root, experiment.runtime)
    os.makedirs(own_root, exist_ok=True)
    started = time.time()
    if request == "grid_search":
        records = [_run_grid(data, experiment, root, own_root, started)]
    else:
        records = _run_steps(steps, request, data, experiment, root, own_root, folds, started)
    protocol = _record_steps(own_root, records)
    protocol.update(
        data=to_dict(data.config), split=to_dict(data.split), preset=experiment.name, last_request=request,
        last_command=command, last_request_seconds=round(time.time() - started, 1),
    )
    write_json(os.path.join(own_root, layout.PROTOCOL_FILE), protocol)
    report = write_report(own_root, data)
    logger.info(f"Report: {report} (request took {time.time() - started:.0f} s)")
    return {"experiment_dir": own_root, "steps": records, "report": report}


def _run_grid(data: ExperimentData, experiment: ExperimentConfig, root: str, own_root: str, started: float) -> dict:
    logger.info(f"Experiment {root}: grid search (§3.4, Table S4), preset {experiment.name}")
    summary = run_grid_search(data, None, experiment, root)
    timing = summary.get("timing", {})
    return {"name": "grid_search", "kind": "grid_search",
            "status": "reused" if not timing.get("settings_trained") else "trained",
            "seconds": round(time.time() - started, 1), "run_seconds": timing.get("total_seconds"),
            "summary": os.path.join(own_root, layout.GRID_SEARCH_FOLDER, layout.SUMMARY_FILE),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S")}


def _run_steps(steps: list[TableRow], request: str, data: ExperimentData, experiment: ExperimentConfig, root: str,
               own_root: str, folds, started: float) -> list[dict]:
    """Each step in order; a step whose folds are not all finished stops the request there."""
    logger.info(f"Experiment {root}: {request} ({len(steps)} step{'s' * (len(steps) != 1)}: "
                + ", ".join(row.name for row in steps) + f"), preset {experiment.name}")
    records = []
    for number, row in enumerate(steps, start=1):
        step_started = time.time()
        logger.info(f"== step {number}/{len(steps)}: {row.name} [{row.network}; {row.modality}"
                    + (f"; crop {row.crop}" if row.crop else "") + f"] (elapsed {step_started - started:.0f} s)")
        summary = _run_step(row, data, experiment, root, folds)
        seconds = time.time() - step_started
        kind = step_kind(row)
        finished = time.strftime("%Y-%m-%d %H:%M:%S")
        if summary.get("partial"):
            records.append({"name": row.name, "kind": kind, "status": "partial",
                            "finished_folds": summary["finished_folds"], "missing_folds": summary["missing_folds"],
                            "seconds": round(seconds, 1), "finished": finished})
            if number < len(steps):
                logger.info(f"== step {number}/{len(steps)}: {row.name} waits for folds "
                            f"{summary['missing_folds']}; the steps after it run once it is complete")
            break
        records.append({
            "name": row.name,
            "kind": kind,
            "status": "reused" if summary.get("reused") else "trained",
            "reused_folds": summary.get("timing", {}).get("reused_folds", []),
            "seconds": round(seconds, 1),
            "run_seconds": summary.get("timing", {}).get("total_seconds"),
            "summary": os.path.join(own_root, row.name, layout.SUMMARY_FILE),
            "finished": finished,
        })
        done = len(steps) - number
        logger.info(f"== step {number}/{len(steps)}: {row.name} {records[-1]['status']} in {seconds:.0f} s; "
                    f"{done} step{'s' * (done != 1)} left (elapsed {time.time() - started:.0f} s)")
    return records
