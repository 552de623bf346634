"""Training callbacks: progress lines and early stopping that survives a killed process."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest

from tf_bimodal.training.callbacks import ProgressLogger, has_backup, resumable_callbacks

X = np.random.RandomState(0).rand(64, 4).astype("float32")
Y = (X.sum(axis=1) > 2).astype("float32")


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(8, activation="relu")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
    return model


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt


def test_an_interrupted_fit_resumes_with_its_optimizer_and_early_stopping_state(tmp_path):
    fold_dir = str(tmp_path / "fold_0")
    callbacks, early_stopping = resumable_callbacks(fold_dir, monitor="val_loss", patience=20)
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, Y, validation_data=(X, Y), epochs=6, batch_size=32, callbacks=[*callbacks, _Interrupt(2)],
                  verbose=0)
    assert has_backup(fold_dir) and int(model.optimizer.iterations) == 6
    best_before = early_stopping.best

    callbacks, early_stopping = resumable_callbacks(fold_dir, monitor="val_loss", patience=20)
    resumed = _model()
    history = resumed.fit(X, Y, validation_data=(X, Y), epochs=6, batch_size=32, callbacks=callbacks, verbose=0)
    assert early_stopping.resumed_from == 3 and len(history.history["loss"]) == 3
    assert int(resumed.optimizer.iterations) == 12  # the optimizer went on, not restarted
    assert early_stopping.last_epoch == 5 and early_stopping.best <= best_before
    assert not has_backup(fold_dir) and not os.path.exists(os.path.join(fold_dir, "backup"))

    # One history over both processes: every epoch once, in order.
    with open(os.path.join(fold_dir, "history.csv")) as handle:
        assert [int(line.split(",")[0]) for line in handle.read().splitlines()[1:]] == [0, 1, 2, 3, 4, 5]

    # The best weights were restored at the end, as with restore_best_weights=True.
    best_val = float(resumed.evaluate(X, Y, verbose=0))
    assert best_val == pytest.approx(early_stopping.best, rel=1e-4)


def test_a_fit_without_backup_starts_fresh(tmp_path):
    callbacks, early_stopping = resumable_callbacks(str(tmp_path / "fold_1"), monitor="val_loss", patience=1)
    _model().fit(X, Y, validation_data=(X, Y), epochs=2, batch_size=32, callbacks=callbacks, verbose=0)
    assert early_stopping.resumed_from is None and early_stopping.last_epoch == 1


def test_progress_logger_shows_the_time_left():
    lines = []
    _model().fit(X, Y, epochs=3, batch_size=32, callbacks=[ProgressLogger("m fold 0 (1/5)", 3, log=lines.append)],
                 verbose=0)
    assert len(lines) == 3 and lines[0].startswith("m fold 0 (1/5) epoch 1/3: loss ")
    assert all("elapsed" in line and "fold left <= " in line for line in lines)
    assert lines[-1].endswith("fold left <= 0 s)")


def test_history_rows_written_after_the_last_backup_are_dropped_on_resume(tmp_path):
    fold_dir = str(tmp_path / "fold_2")
    callbacks, _ = resumable_callbacks(fold_dir, monitor="val_loss", patience=20)
    with pytest.raises(KeyboardInterrupt):
        _model().fit(X, Y, validation_data=(X, Y), epochs=5, batch_size=32, callbacks=[*callbacks, _Interrupt(1)],
                     verbose=0)
    # A kill after the history row of epoch 2 but before its backup: the row is there, the state is not.
    with open(os.path.join(fold_dir, "history.csv")) as handle:
        lines = handle.read().splitlines()
    with open(os.path.join(fold_dir, "history.csv"), "a") as handle:
        handle.write(lines[-1].replace("1,", "2,", 1) + "\n")
    callbacks, early_stopping = resumable_callbacks(fold_dir, monitor="val_loss", patience=20)
    _model().fit(X, Y, validation_data=(X, Y), epochs=5, batch_size=32, callbacks=callbacks, verbose=0)
    assert early_stopping.resumed_from == 2
    with open(os.path.join(fold_dir, "history.csv")) as handle:
        assert [int(line.split(",")[0]) for line in handle.read().splitlines()[1:]] == [0, 1, 2, 3, 4]
