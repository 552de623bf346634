"""Training callbacks: progress lines, and early stopping that survives an interrupted run."""

from __future__ import annotations

import json
import math
import os
import time

import keras
import numpy as np

BACKUP_DIR = "backup"
"""Folder (inside a fold's folder) holding the state of an unfinished training run."""


class ProgressLogger(keras.callbacks.Callback):
    """One line per epoch: model, fold, epoch, the logged values, elapsed and time left.

    The time left is an upper bound for the fold: the mean epoch time so far times the
    epochs left to ``epochs`` (early stopping may end the fold sooner).

    Args:
        label: what is trained, e.g. ``"w_mm_unet fold 2 (3/5)"``.
        epochs: the maximum number of epochs (for ``epoch 3/30``).
        log: where the lines go (``print`` by default).
        started: the time elapsed is measured from (default: when training begins).
    """

    def __init__(self, label: str, epochs: int, log=print, started: float | None = None):
        super().__init__()
        self.label = label
        self.epochs = epochs
        self.log = log
        self.started = started
        self._epoch_started = None
        self._durations = []

    def on_train_begin(self, logs=None):
        if self.started is None:
            self.started = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        if self._epoch_started is not None:
            self._durations.append(time.time() - self._epoch_started)
        left = (self.epochs - epoch - 1) * float(np.mean(self._durations)) if self._durations else 0.0
        values = " ".join(
            f"{key} {value:.4f}" for key, value in sorted((logs or {}).items()) if key != "learning_rate"
        )
        self.log(
            f"{self.label} epoch {epoch + 1}/{self.epochs}: {values} "
            f"(elapsed {time.time() - self.started:.0f} s, fold left <= {left:.0f} s)"
        )


def _write_json_atomic(path: str, payload: dict):
    tmp_path = path + ".tmp"
    with open(tmp_path, "w") as handle:
        json.dump(payload, handle)
    os.replace(tmp_path, path)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """``EarlyStopping(restore_best_weights=True)`` whose state outlives the process.

    Keras' ``BackupAndRestore`` brings back the weights, the optimizer and the epoch of an
    interrupted ``fit``, but not the state of the other callbacks. This one saves its own
    (best value, best epoch, epochs without improvement, last epoch) and the best weights in
    ``backup_dir`` after every epoch, atomically, and reloads them when training starts
    again, so a resumed fold selects its epoch exactly as an uninterrupted one would.

    ``best_epoch`` and ``last_epoch`` count from 0, over the interrupted and resumed parts.
    """

    STATE_FILE = "early_stopping.json"
    WEIGHTS_FILE = "best_weights.npz"

    def __init__(self, backup_dir: str, **kwargs):
        kwargs.setdefault("restore_best_weights", True)
        super().__init__(**kwargs)
        self.backup_dir = backup_dir
        self.last_epoch = -1
        self.resumed_from = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.last_epoch = -1
        self.resumed_from = None
        state_path = os.path.join(self.backup_dir, self.STATE_FILE)
        weights_path = os.path.join(self.backup_dir, self.WEIGHTS_FILE)
        if not os.path.isfile(state_path):
            return
        with open(state_path) as handle:
            state = json.load(handle)
        self.wait = state["wait"]
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.last_epoch = state["last_epoch"]
        self.resumed_from = self.last_epoch + 1
        if os.path.isfile(weights_path):
            with np.load(weights_path) as stored:
                self.best_weights = [stored[f"w{i}"] for i in range(len(stored.files))]

    def on_epoch_end(self, epoch, logs=None):
        previous_best = self.best
        super().on_epoch_end(epoch, logs)
        self.last_epoch = epoch
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.best_weights is not None and (self.best != previous_best or epoch == self.best_epoch):
            weights_path = os.path.join(self.backup_dir, self.WEIGHTS_FILE)
            tmp_path = weights_path + ".tmp.npz"
            np.savez(tmp_path, **{f"w{i}": w for i, w in enumerate(self.best_weights)})
            os.replace(tmp_path, weights_path)
        best = None if self.best is None else float(self.best)
        _write_json_atomic(
            os.path.join(self.backup_dir, self.STATE_FILE),
            {"wait": self.wait, "best": best, "best_epoch": self.best_epoch, "last_epoch": epoch},
        )


HISTORY_FILE = "history.csv"


class ResumableCSVLogger(keras.callbacks.CSVLogger):
    """``CSVLogger`` whose history continues over an interrupted and a resumed fit.

    When training resumes (``BackupAndRestore`` holds the epoch it goes on from), the rows
    of that epoch and later ones, written before the kill but not backed up, are dropped and
    the rest kept, so the file holds every epoch once.
    """

    def __init__(self, filename: str, backup_dir: str):
        super().__init__(filename, append=False)
        self.backup_dir = backup_dir

    def on_train_begin(self, logs=None):
        os.makedirs(os.path.dirname(os.path.abspath(self.filename)), exist_ok=True)
        metadata = os.path.join(self.backup_dir, "training_metadata.json")
        self.append = os.path.isfile(metadata) and os.path.isfile(self.filename)
        if self.append:
            with open(metadata) as handle:
                resume_epoch = int(json.load(handle)["epoch"])
            with open(self.filename) as handle:
                rows = handle.read().splitlines()
            kept = rows[:1] + [row for row in rows[1:] if row and int(row.split(self.sep, 1)[0]) < resume_epoch]
            with open(self.filename, "w") as handle:
                handle.write("".join(row + "\n" for row in kept))
        super().on_train_begin(logs)


def resumable_callbacks(fold_dir: str, **early_stopping_kwargs) -> tuple[list, ResumableEarlyStopping]:
    """The callbacks that make a fold's ``fit`` resumable after a kill.

    A :class:`ResumableCSVLogger` (``<fold_dir>/history.csv``, first, so an epoch's row is
    written before its state is saved), a :class:`ResumableEarlyStopping` and
    ``BackupAndRestore`` (weights, optimizer state and epoch, two copies so that a kill
    while writing one leaves the other), the last two in ``<fold_dir>/backup/``, which is
    removed when the fit ends normally.

    Returns:
        ``(callbacks, early_stopping)``; put ``callbacks`` first in the fit's list.
    """
    backup_dir = os.path.join(fold_dir, BACKUP_DIR)
    history = ResumableCSVLogger(os.path.join(fold_dir, HISTORY_FILE), backup_dir)
    early_stopping = ResumableEarlyStopping(backup_dir, **early_stopping_kwargs)
    backup = keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True, delete_checkpoint=True)
    return [history, early_stopping, backup], early_stopping


def has_backup(fold_dir: str) -> bool:
    """Whether ``fold_dir`` holds the state of an interrupted fit."""
    return os.path.isfile(os.path.join(fold_dir, BACKUP_DIR, ResumableEarlyStopping.STATE_FILE))


def cosine_schedule(learning_rate: float, epochs: int):
    """The rate of epoch ``e`` (from 0): ``learning_rate * (1 + cos(pi * e / epochs)) / 2``."""

    def rate(epoch, _current=None):
        return float(learning_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs)))

    return rate
