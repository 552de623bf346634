"""Late integration trains its two classifiers independently (paper §3.3.3): each branch keeps
its own best epoch on its own validation loss (``BranchEarlyStopping``, ``fit_classifier``)."""

from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.config import CLASSIFICATION_PRESETS
from tf_bimodal.models.classification import build_classifier
from tf_bimodal.training.classification import BranchEarlyStopping, compile_classifier, fit_classifier

TINY = dataclasses.replace(
    CLASSIFICATION_PRESETS["quick"], input_size=32, stackwise_num_filters=(4, 4, 8, 8, 8),
    stackwise_num_repeats=(1, 1, 1, 1, 1), fc_units=8, embracement_size=8, decision_units=(4, 4),
)

# Validation losses per epoch: B-mode is best at epoch 1, SE-mode at epoch 0 and, with a
# patience of 2, done after epoch 2 (its lower loss at epoch 3 comes after it stopped).
LOSSES = {"bmode": [1.0, 0.5, 0.7, 0.8], "semode": [1.0, 1.1, 1.2, 0.9]}


def _late_model():
    return build_classifier("mff_late", TINY, "standardize")


def _epoch(model, callback, epoch):
    """Stand in for one epoch of training: every weight becomes ``epoch``; then the logs."""
    model.set_weights([np.full_like(w, epoch) for w in model.get_weights()])
    callback.on_epoch_end(epoch, {f"val_{name}_loss": values[epoch] for name, values in LOSSES.items()})


def _branch_values(model):
    return {name: {float(np.unique(v.numpy()).item()) for v in variables}
            for name, variables in model.branch_weights().items()}


def test_each_branch_keeps_its_own_best_epoch(tmp_path):
    model = _late_model()
    callback = BranchEarlyStopping(model.branch_weights(), patience=2, backup_dir=str(tmp_path / "backup"))
    callback.set_model(model)
    model.stop_training = False  # as fit does
    callback.on_train_begin()
    for epoch in range(3):
        _epoch(model, callback, epoch)
        assert not model.stop_training, epoch
    assert callback.done == {"bmode": False, "semode": True}
    _epoch(model, callback, 3)
    assert model.stop_training  # both branches done
    callback.on_train_end()
    assert callback.best_epochs == {"bmode": 1, "semode": 0}
    assert _branch_values(model) == {"bmode": {1.0}, "semode": {0.0}}


def test_an_interrupted_fit_resumes_the_branches_state(tmp_path):
    backup = str(tmp_path / "backup")
    model = _late_model()
    first = BranchEarlyStopping(model.branch_weights(), patience=2, backup_dir=backup)
    first.set_model(model)
    first.on_train_begin()
    for epoch in range(2):
        _epoch(model, first, epoch)
    # A new process: a new model and callback, the state read back from the backup folder.
    model = _late_model()
    second = BranchEarlyStopping(model.branch_weights(), patience=2, backup_dir=backup)
    second.set_model(model)
    second.on_train_begin()
    assert second.resumed_from == 2 and second.best_epochs == {"bmode": 1, "semode": 0}
    assert second.wait == {"bmode": 0, "semode": 1}
    for epoch in (2, 3):
        _epoch(model, second, epoch)
    second.on_train_end()
    assert second.best_epochs == {"bmode": 1, "semode": 0}
    assert _branch_values(model) == {"bmode": {1.0}, "semode": {0.0}}


def test_bad_branches_raise(tmp_path):
    model = _late_model()
    branches = model.branch_weights()
    with pytest.raises(ValueError, match="at least 2 branches"):
        BranchEarlyStopping({"bmode": branches["bmode"]}, 2, str(tmp_path))
    with pytest.raises(ValueError, match="shares variables"):
        BranchEarlyStopping({"bmode": branches["bmode"], "semode": branches["bmode"][:1]}, 2, str(tmp_path))
    callback = BranchEarlyStopping(branches, 2, str(tmp_path))
    callback.set_model(model)
    callback.on_train_begin()
    with pytest.raises(KeyError, match="val_bmode_loss"):
        callback.on_epoch_end(0, {"val_loss": 1.0})


def _dataset(seed, size=8):
    rng = np.random.default_rng(seed)
    inputs = {
        "bmode": rng.uniform(size=(size, 32, 32, 1)).astype("float32"),
        "semode": rng.uniform(size=(size, 32, 32, 3)).astype("float32"),
        "availability": np.ones((size, 2), "float32"),
    }
    return tf.data.Dataset.from_tensor_slices((inputs, rng.integers(0, 2, size))).batch(4)


def _first_minimum(losses, patience):
    """The epoch (from 1) an early stopping on ``losses`` keeps."""
    best, best_epoch, wait = np.inf, 0, 0
    for epoch, loss in enumerate(losses):
        wait += 1
        if loss < best:
            best, best_epoch, wait = loss, epoch, 0
        elif wait >= patience:
            break
    return best_epoch + 1


@pytest.mark.slow
def test_fit_classifier_selects_late_integration_per_branch(tmp_path):
    config = dataclasses.replace(TINY, epochs=4, early_stopping_patience=1, learning_rate=0.05)
    classifier = compile_classifier(_late_model(), config)
    result = fit_classifier(classifier, _dataset(0), _dataset(1), config, str(tmp_path))
    assert result["best_epoch"] is None and set(result["branch_best_epochs"]) == {"bmode", "semode"}
    with open(tmp_path / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == result["epochs_run"]
    for name, epoch in result["branch_best_epochs"].items():
        # Each branch's epoch follows its own validation loss, not the sum's.
        assert epoch == _first_minimum([float(row[f"val_{name}_loss"]) for row in rows], patience=1), name
    assert not os.path.exists(tmp_path / "backup")  # removed once the fit ended normally
