"""What every experiment runner shares: the synthetic-data notice, atomic JSON output, and
the cache keys that let a run reuse finished steps and folds."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time

import numpy as np
import tensorflow as tf

from tf_bimodal.data import dataset as dataset_lib

SYNTHETIC_NOTICE = (
    "SYNTHETIC PHANTOM: these images are simulated (tf_bimodal.data.phantom), not patient "
    "data; results on them say nothing about clinical performance."
)


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_json(path, payload):
    """Write ``payload`` as JSON to ``path`` atomically (a temporary file, then a rename), so an
    interrupted run never leaves a half-written results file; NumPy scalars and arrays allowed."""
    path = str(path)
    tmp_path = path + ".tmp"
    with tf.io.gfile.GFile(tmp_path, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True, default=_json_default)
    tf.io.gfile.rename(tmp_path, path, overwrite=True)


# --------------------------------------------------------------------------- caching and resume
#
# Every step of an experiment (one model cross-validated on one data set) writes into its own
# folder, ``<output>/<run name>/``. Its *cache key* is a hash of everything its results depend
# on (model, hyperparameters, data, splits, the dataset version, the upstream step's key); it
# is stored in ``run.json`` when the step starts, in each finished fold's ``metrics.json`` and
# in the final ``summary.json``. A later run with the same key reuses the summary, or the
# finished folds of an interrupted step; a folder made with another key is moved aside, never
# overwritten.

RUN_FILE = "run.json"


def cache_key(payload: dict) -> str:
    """A short, stable hash of a JSON-ready ``payload`` (the settings a result depends on)."""
    text = json.dumps(payload, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def data_identity(data) -> dict:
    """What in a ``DataConfig`` decides the data (not where TFDS keeps its files), with the
    digest of its source's fingerprint, so results made from one folder (or from the same
    folder before it changed) are never reused for another."""
    identity = dataclasses.asdict(data)
    identity.pop("data_dir", None)
    if data.source != "phantom":
        identity.pop("phantom", None)
    identity["source_fingerprint"] = dataset_lib.source_fingerprint(data)["digest"]
    return identity


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def reusable_summary(run_dir: str, key: str) -> dict | None:
    """The finished summary of ``run_dir`` if it was made with ``key``, else None."""
    path = os.path.join(run_dir, "summary.json")
    if os.path.isfile(path):
        try:
            summary = read_json(path)
        except (OSError, ValueError):
            return None
        if summary.get("cache_key") == key:
            return summary
    return None


def start_run_dir(run_dir: str, key: str, description: dict, log=print) -> str:
    """Make ``run_dir`` the home of the step with ``key``; returns ``run_dir``.

    A folder left by a step with another key (other settings or data) is renamed to
    ``<run_dir>.replaced-<time>`` so nothing is lost; one with the same key (an interrupted
    run) is kept, so its finished folds and its backups are reused.
    """
    run_file = os.path.join(run_dir, RUN_FILE)
    if os.path.isdir(run_dir) and os.listdir(run_dir):
        previous = None
        if os.path.isfile(run_file):
            try:
                previous = read_json(run_file).get("cache_key")
            except (OSError, ValueError):
                previous = None
        if previous != key:
            moved = f"{run_dir}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
            os.replace(run_dir, moved)
            log(f"  {run_dir} held results of other settings; moved them to {moved}")
    os.makedirs(run_dir, exist_ok=True)
    write_json(run_file, {"cache_key": key, **description})
    return run_dir


def finished_fold(fold_dir: str, key: str) -> dict | None:
    """The ``metrics.json`` of a fold finished under ``key``, else None."""
    path = os.path.join(fold_dir, "metrics.json")
    if not os.path.isfile(path):
        return None
    try:
        metrics = read_json(path)
    except (OSError, ValueError):
        return None
    return metrics if metrics.get("cache_key") == key else None
