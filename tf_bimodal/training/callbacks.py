"""Training callbacks."""

from __future__ import annotations

import time

import keras


class ProgressLogger(keras.callbacks.Callback):
    """One line per epoch: model, fold, epoch, the logged values and the elapsed time.

    Args:
        label: what is trained, e.g. ``"w_mm_unet fold 2/5"``.
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

    def on_train_begin(self, logs=None):
        if self.started is None:
            self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        values = " ".join(f"{key} {value:.4f}" for key, value in sorted((logs or {}).items()) if key != "learning_rate")
        self.log(f"{self.label} epoch {epoch + 1}/{self.epochs}: {values} (elapsed {time.time() - self.started:.0f} s)")
