"""One cross-validation driver for every experiment of the protocol (paper §3.4).

Segmentation (Table 1), classification (Table 2) and the grid search differ in what they
build, fit, predict and score on a fold; everything else is here, once:

* :func:`experiment_runtime`: the strategy, the precision and the folder a run writes to;
* :func:`run_cache_key`: the hash of everything a run's results depend on (model, settings,
  data and its source fingerprint, splits, data set version, precision);
* :func:`cross_validate`: the run folder (reused when finished with the same key, moved aside
  when made with other settings, resumed after an interruption), the fold loop (finished
  folds reused; each new fold starts from a fresh Keras session and the seed
  ``seed + fold``), the progress lines with the time left, ``log.txt`` beside the results,
  and the summary written last.

A :class:`FoldTask` supplies the rest: :meth:`FoldTask.train_fold` (build, fit, predict,
score one fold), :meth:`FoldTask.reuse_fold` (take a finished fold's results) and
:meth:`FoldTask.summarize`. nnU-Net's trainer is the model: one driver, the variants say only
what differs.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence

import keras

from tf_bimodal import layout, logs, records
from tf_bimodal.config import DataConfig, ExperimentConfig, RuntimeConfig, to_dict
from tf_bimodal.io import json_default, read_json_or_none, write_json
from tf_bimodal.training import runtime as runtime_lib

logger = logging.getLogger(__name__)

__all__ = [
    "Fold", "FoldTask", "cache_key", "cross_validate", "data_identity",
    "experiment_runtime", "finished_fold", "reusable_summary", "run_cache_key",
    "start_run_dir",
]


# --------------------------------------------------------------------------- the runtime


@contextlib.contextmanager
def experiment_runtime(experiment: ExperimentConfig, output: str, caller: str):
    """The setting every run works in; yields the folder this process writes to.

    Checks that ``experiment`` is resolved, creates the runtime's strategy first (a
    multi-worker strategy must exist before any other TensorFlow op runs), sends a non-chief
    worker to its own copy of ``output`` (:func:`tf_bimodal.training.runtime.worker_output`)
    and applies the runtime's precision while the block runs.

    Raises:
        TypeError: ``experiment`` is not an ``ExperimentConfig`` (a preset name, say).
    """
    if not isinstance(experiment, ExperimentConfig):
        raise TypeError(f"{caller}: experiment must be an ExperimentConfig (see "
                        f"tf_bimodal.config.resolve_experiment), got {type(experiment).__name__}")
    runtime_lib.strategy_for(experiment.runtime)
    with runtime_lib.precision(experiment.runtime):
        yield runtime_lib.worker_output(output, experiment.runtime)


# --------------------------------------------------------------------------- cache keys


def cache_key(payload: dict) -> str:
    """A short, stable hash of a JSON-ready ``payload`` (the settings a result depends on)."""
    text = json.dumps(payload, sort_keys=True, default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def data_identity(data: DataConfig, fingerprint: dict) -> dict:
    """What in a ``DataConfig`` decides the data (not where TFDS keeps its files), with the
    digest of its source's ``fingerprint``, so results made from one folder (or from the same
    folder before it changed) are never reused for another."""
    identity = dataclasses.asdict(data)
    identity.pop("data_dir", None)
    if data.source != "phantom":
        identity.pop("phantom", None)
    identity["source_fingerprint"] = fingerprint["digest"]
    return identity


def run_cache_key(step: dict, experiment_data, runtime: RuntimeConfig | None) -> str:
    """The cache key of a run: ``step`` (its model and settings) with the data
    (:class:`~tf_bimodal.experiments.experiment_data.ExperimentData`: its config, source
    fingerprint, splits and data set version), the version of the summaries' provenance block
    (:data:`tf_bimodal.records.SCHEMA_VERSION`) and the precision (not the strategy or the
    logging, which do not change the results)."""
    payload = {
        **step,
        "data": data_identity(experiment_data.config, experiment_data.fingerprint),
        "split": to_dict(experiment_data.split),
        "dataset_version": experiment_data.version,
        "summary_schema": records.SCHEMA_VERSION,
    }
    precision = runtime_lib.resolved_precision(runtime)
    if precision != "float32":
        payload["precision"] = precision
    return cache_key(payload)


def reusable_summary(run_folder: str, key: str) -> dict | None:
    """The finished summary of ``run_folder`` if it was made with ``key``, else None."""
    summary = read_json_or_none(os.path.join(run_folder, layout.SUMMARY_FILE))
    if summary is not None and summary.get("cache_key") == key:
        return summary
    return None


def start_run_dir(run_folder: str, key: str, description: dict) -> str:
    """Make ``run_folder`` the home of the run with ``key``; returns ``run_folder``.

    A folder left by a run with another key (other settings or data) is renamed to
    ``<run_folder>.replaced-<time>`` so nothing is lost; one with the same key (an interrupted
    run) is kept, so its finished folds and its backups are reused.
    """
    run_file = os.path.join(run_folder, layout.RUN_FILE)
    if os.path.isdir(run_folder) and os.listdir(run_folder):
        previous = (read_json_or_none(run_file) or {}).get("cache_key")
        if previous != key:
            moved = f"{run_folder}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
            os.replace(run_folder, moved)
            logger.info(f"  {run_folder} held results of other settings; moved them to {moved}")
    os.makedirs(run_folder, exist_ok=True)
    write_json(run_file, {"cache_key": key, **description})
    return run_folder


def finished_fold(fold_folder: str, key: str) -> dict | None:
    """The ``metrics.json`` of a fold finished under ``key``, else None."""
    metrics = read_json_or_none(os.path.join(fold_folder, layout.METRICS_FILE))
    return metrics if metrics is not None and metrics.get("cache_key") == key else None


# --------------------------------------------------------------------------- the driver


@dataclasses.dataclass(frozen=True)
class Fold:
    """One fold as a task sees it.

    Attributes:
        fold: the fold's number ``k`` (``splits.json``).
        number: its place in the loop, from 0.
        count: the number of folds.
        parts: ``{"train", "val", "test"}`` image ids.
        folder: ``<run>/fold_<k>``.
        label: the progress prefix, ``"<run> fold <k> (<number + 1>/<count>)"``.
        seed: the fold's seed (the task's seed + ``k``).
    """

    fold: int
    number: int
    count: int
    parts: dict
    folder: str
    label: str
    seed: int


class FoldTask(abc.ABC):
    """What one kind of cross-validated run does per fold (see the module docstring).

    Attributes:
        run_name: the run's folder name under the experiment.
        seed: the base seed; fold ``k`` trains with ``seed + k``.
    """

    run_name: str
    seed: int

    @abc.abstractmethod
    def train_fold(self, fold: Fold) -> dict:
        """Build, fit, predict and score one fold; returns its results (JSON-ready), which
        the driver completes with ``fold``, ``cache_key`` and ``seconds`` and writes to
        ``metrics.json`` last."""

    @abc.abstractmethod
    def reuse_fold(self, fold: Fold, result: dict) -> bool:
        """Take the results of a fold finished earlier; False if its files are incomplete
        (the fold is then trained again)."""

    @abc.abstractmethod
    def summarize(self, results: list[dict], timing: dict) -> dict:
        """The run's summary from its folds' results (the driver adds ``cache_key``)."""

    def fold_line(self, result: dict) -> str:
        """What the progress line of a finished fold says of its results."""
        return ""


def cross_validate(
    task: FoldTask,
    splits: list,
    run_folder: str,
    key: str,
    description: dict,
    runtime: RuntimeConfig | None = None,
    started: float | None = None,
    folds: Sequence[int] | None = None,
) -> dict:
    """Run ``task`` on every fold of ``splits`` in ``run_folder``; returns its summary.

    A finished run with the same ``key`` is reused as it is (``"reused": True`` in the
    returned summary). Otherwise the folder is (re)started, folds finished under ``key`` are
    reused, the others trained in order, and ``summary.json`` is written last. Every line
    logged meanwhile also goes to ``<run_folder>/log.txt``.

    With ``folds``, only those folds are trained (one fold per job on a cluster: each job
    trains its fold into the same ``run_folder``); the summary is written by the job that
    finds every fold finished. Until then the returned record has ``"partial": True`` and
    the folds still missing.
    """
    started = started or time.time()
    done = reusable_summary(run_folder, key)
    if done is not None:
        logger.info(f"{task.run_name}: reusing the finished run in {run_folder} (same settings, cache key {key})")
        return {**done, "reused": True}
    start_run_dir(run_folder, key, description)
    with logs.run_log(run_folder, layout.LOG_FILE):
        results, reused, missing = [], [], []
        for number, split in enumerate(splits):
            k = split["fold"]
            fold = Fold(
                fold=k, number=number, count=len(splits),
                parts={part: list(split[part]) for part in ("train", "val", "test")},
                folder=layout.fold_dir(run_folder, k),
                label=f"{task.run_name} fold {k} ({number + 1}/{len(splits)})",
                seed=task.seed + k,
            )
            result = finished_fold(fold.folder, key)
            if result is not None and task.reuse_fold(fold, result):
                results.append(result)
                reused.append(k)
                logger.info(f"{fold.label}: finished earlier, reusing {fold.folder}")
                continue
            if folds is not None and k not in folds:
                missing.append(k)
                logger.info(f"{fold.label}: not finished, left to its own job (--fold {k})")
                continue
            fold_started = time.time()
            os.makedirs(fold.folder, exist_ok=True)
            runtime_lib.clear_session(runtime)  # keeps the dtype policy, unlike keras' own
            keras.utils.set_random_seed(fold.seed)
            result = {"fold": k, "cache_key": key, **task.train_fold(fold)}
            seconds = time.time() - fold_started
            result["seconds"] = round(seconds, 1)
            write_json(os.path.join(fold.folder, layout.METRICS_FILE), result)  # last: marks it finished
            results.append(result)
            left = fold.count - number - 1
            logger.info(f"{fold.label}: {task.fold_line(result)} (fold {seconds:.0f} s, elapsed "
                        f"{time.time() - started:.0f} s, {left} folds left, about {left * seconds:.0f} s)")
        if missing:
            logger.info(f"{task.run_name}: folds {missing} are still to be trained; the summary is written "
                        "once every fold is finished")
            return {"partial": True, "run": task.run_name, "cache_key": key, "finished_folds":
                    [result["fold"] for result in results], "missing_folds": missing}
        timing = {
            "total_seconds": round(time.time() - started, 1),
            "fold_seconds": [result["seconds"] for result in results],
            "reused_folds": reused,
        }
        summary = {"cache_key": key, **task.summarize(results, timing), "timing": timing}
        write_json(os.path.join(run_folder, layout.SUMMARY_FILE), summary)
    return summary
