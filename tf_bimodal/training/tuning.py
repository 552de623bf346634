"""KerasTuner's grid search over a segmenter's learning rate, batch size and loss (§3.4, Table S4).

* :class:`SegmentationHyperModel`: one Table 1 segmenter as a KerasTuner hypermodel;
* :func:`search_grid`: run (or resume) one model's ``keras_tuner.GridSearch`` and return every
  setting's result in grid order, reading back settings finished in an earlier run;
* :func:`restore_grid_position`: the repair of KerasTuner 1.4.8's grid position after a reload
  (keras-team/keras-tuner#1055), which only this module touches.

The experiment around it (folds, tuner projects, summary, figure) is
:mod:`tf_bimodal.experiments.grid_search`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import itertools
import logging
import math
import os
import time

import keras
import keras_tuner
import tensorflow as tf

from tf_bimodal.config import GridSearchConfig, RuntimeConfig, SegmentationConfig
from tf_bimodal.data import inputs
from tf_bimodal.models.segmentation.factory import MODEL_INPUTS, build_segmenter
from tf_bimodal.training import runtime as runtime_lib
from tf_bimodal.training.memory import training_plan
from tf_bimodal.training.segmentation import MONITOR, compile_segmenter

logger = logging.getLogger(__name__)

OBJECTIVE = keras_tuner.Objective(MONITOR, direction="max")
"""A setting's score: its best validation Dice over the epochs of its training run."""

GRID_HYPERPARAMETERS = ("learning_rate", "batch_size", "loss")
"""The searched ``SegmentationConfig`` fields, in grid order (the last varies fastest)."""


def setting_config(base: SegmentationConfig, grid: GridSearchConfig, learning_rate, batch_size, loss):
    """The ``SegmentationConfig`` of one grid setting: ``base`` with that learning rate, batch
    size and loss, and the grid's epochs (the base's when the grid gives none)."""
    return dataclasses.replace(
        base, learning_rate=learning_rate, batch_size=batch_size, loss=loss, epochs=grid.epochs or base.epochs
    )


def grid_settings(grid: GridSearchConfig) -> list[tuple]:
    """Every ``(learning_rate, batch_size, loss)`` of the grid, in grid order (KerasTuner's
    ``GridSearch`` order for the declaration order of ``GRID_HYPERPARAMETERS``)."""
    return list(itertools.product(grid.learning_rates, grid.batch_sizes, grid.losses))


def describe_setting(setting) -> str:
    """``lr 1e-04, batch 32, loss dice``."""
    learning_rate, batch_size, loss = setting
    return f"lr {learning_rate:.0e}, batch {batch_size}, loss {loss}"


class GridSearchTrialError(keras_tuner.errors.FatalError):
    """A setting failed to train. Fatal, so that KerasTuner stops the search and re-raises
    rather than record the setting as failed and go on: the trial stays pending in the tuner
    project, and the next run retries it."""


class SegmentationHyperModel(keras_tuner.HyperModel):
    """One segmenter of Table 1 as a KerasTuner hypermodel over the grid of §3.4 (Table S4).

    ``build(hp)`` builds and compiles the model with the setting's learning rate and loss
    (:func:`~tf_bimodal.training.segmentation.compile_segmenter`: Adam, §3.4); ``fit(hp, ...)``
    makes the fold's datasets with the setting's batch size (a data setting, hence chosen in
    ``fit``) and trains with the early stopping of
    :func:`~tf_bimodal.training.segmentation.fit_segmenter` (best ``val_dice``, its weights
    restored), passing KerasTuner's callbacks through except its weight checkpoints.

    Every setting starts from the same seed (``base.seed + fold``: weights, shuffling,
    augmentation), so settings differ only in their hyperparameters and a retried setting
    repeats itself. A W-MM-U-Net under ``auto_weight="prestage"`` is built with the fixed
    ``modality_weights`` of its auto-weight pre-stage (§3.2.2), the same for every setting.

    Args:
        model_name: a ``SEGMENTATION_MODELS`` name.
        base: the ``SegmentationConfig`` the grid varies.
        grid: the ``GridSearchConfig``.
        arrays: the data at model size (:func:`~tf_bimodal.data.inputs.resize_arrays`).
        train_ids, val_ids: the fold's training and validation image ids (with a mask).
        model_size: the model's input side.
        started: ``time.time()`` the lines count elapsed seconds from.
        runtime: the ``RuntimeConfig``, whose precision every setting is built in.
        modality_weights: the auto-weight pre-stage's weights, one per modal path, for a model
            whose weighting is ``"prestage"`` (``build_segmenter``'s ``modality_weights``);
            None for the other models.
    """

    def __init__(self, model_name, base, grid, arrays, train_ids, val_ids, model_size, started=None,
                 runtime=None, modality_weights=None):
        super().__init__(name=model_name)
        self.model_name = model_name
        self.base = base
        self.grid = grid
        self.arrays = arrays
        self.train_ids = list(train_ids)
        self.val_ids = list(val_ids)
        self.model_size = model_size
        self.started = time.time() if started is None else started
        self.settings = grid_settings(grid)
        self.seed = base.seed + grid.fold
        self.runtime = runtime
        self.modality_weights = None if modality_weights is None else [float(w) for w in modality_weights]
        self._trial_started = None
        self._batch_plan = None

    def declare_hyperparameters(self, hp):
        # Declared up front, in this order, so that GridSearch walks the grid as
        # ``grid_settings`` does, batch size included although only ``fit`` reads it.
        hp.Choice("learning_rate", list(self.grid.learning_rates))
        hp.Choice("batch_size", list(self.grid.batch_sizes))
        hp.Choice("loss", list(self.grid.losses))

    def build(self, hp):
        self._trial_started = time.time()
        # KerasTuner clears the session before each build too; kept so that the seeding below
        # never depends on that. Not inside a distribution strategy's scope (KerasTuner builds
        # there when given one, right after its own clear_session), where resetting the
        # default graph would drop the scope's state. Keras' clear_session also resets the
        # dtype policy to float32, so the runtime's precision is set again either way.
        if not tf.distribute.has_strategy():
            keras.backend.clear_session()
        keras.config.set_dtype_policy((self.runtime or RuntimeConfig()).precision)
        keras.utils.set_random_seed(self.seed)
        learning_rate = hp.Choice("learning_rate", list(self.grid.learning_rates))
        loss = hp.Choice("loss", list(self.grid.losses))
        batch_size = hp.Choice("batch_size", list(self.grid.batch_sizes))
        config = dataclasses.replace(self.base, learning_rate=learning_rate, loss=loss)
        model = build_segmenter(self.model_name, config, self.model_size, modality_weights=self.modality_weights)
        # The setting's batch in micro-batches that fit the device (tf_bimodal.training.memory).
        self._batch_plan = training_plan(model, batch_size, self.runtime,
                                         runtime_lib.strategy_for(self.runtime).num_replicas_in_sync, self.model_name)
        return compile_segmenter(model, config, self._batch_plan.accumulation_steps)

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        batch_size = hp.Choice("batch_size", list(self.grid.batch_sizes))
        setting = (hp.get("learning_rate"), batch_size, hp.get("loss"))
        label = f"{self.model_name} setting {self.settings.index(setting) + 1}/{len(self.settings)}"
        try:
            # KerasTuner's SaveBestEpoch writes each setting's best weights (about 300 MB per
            # multimodal setting at the paper's size); the search needs only the scores.
            kept = [c for c in (callbacks or []) if type(c).__name__ != "SaveBestEpoch"]
            result = self._train(model, setting, kept)
            logger.info(f"{label}: {describe_setting(setting)} -> best val dice {result[MONITOR]:.4f} at epoch "
                     f"{result['best_epoch']}/{result['epochs_run']} (trained in {result['seconds']:.1f} s, "
                     f"elapsed {time.time() - self.started:.0f} s)")
        except Exception as error:
            raise GridSearchTrialError(
                f"{label} ({describe_setting(setting)}) failed: {type(error).__name__}: {error}. The search "
                "stopped; a rerun with the same output reuses the finished settings and retries this one"
            ) from error
        return result

    def _train(self, model, setting, callbacks) -> dict:
        config = setting_config(self.base, self.grid, *setting)
        input_keys = MODEL_INPUTS[self.model_name]
        replicas = runtime_lib.strategy_for(self.runtime).num_replicas_in_sync
        plan = self._batch_plan
        if plan is None or plan.batch != config.batch_size:
            plan = training_plan(model, config.batch_size, self.runtime, replicas, self.model_name)
        micro = plan.global_micro_batch
        train_ds = inputs.segmentation_dataset(self.arrays, self.train_ids, input_keys, micro, True,
                                               augment=config.augment, seed=self.seed, replicas=replicas)
        val_ds = inputs.segmentation_dataset(self.arrays, self.val_ids, input_keys, micro, False,
                                             augment=config.augment, seed=self.seed, replicas=replicas)
        # The early stopping of fit_segmenter, which takes no extra callbacks.
        early_stopping = keras.callbacks.EarlyStopping(
            monitor=MONITOR, mode="max", patience=config.early_stopping_patience, restore_best_weights=True
        )
        history = model.fit(
            **runtime_lib.fit_datasets(train_ds, val_ds), epochs=config.epochs, callbacks=[early_stopping, *callbacks],
            shuffle=False, verbose=0,
        )
        started = self._trial_started or time.time()
        # Extra keys are kept by KerasTuner as metrics of the trial (trial.json), which is where
        # a rerun reads them back from.
        return {
            MONITOR: float(early_stopping.best),
            "best_epoch": int(early_stopping.best_epoch) + 1,
            "epochs_run": len(history.history.get("loss", [])),
            "seconds": round(time.time() - started, 1),
            "micro_batch": plan.micro_batch,
            "accumulation_steps": plan.accumulation_steps,
        }


def restore_grid_position(oracle) -> None:
    """Make a reloaded ``GridSearchOracle`` able to go on with an unfinished grid.

    KerasTuner 1.4.8 keeps the grid position (``_ordered_ids``: the trials in grid order, and
    ``_populate_next``: those whose successor is still to be made) in memory only; after a
    reload they are empty, so an unfinished search stops early or fails with a ``KeyError``
    (keras-team/keras-tuner#1055). They are rebuilt here from the reloaded trials.
    """
    if not oracle.trials:
        return
    in_grid_order = sorted(
        oracle.trials.values(),
        key=functools.cmp_to_key(lambda a, b: oracle._compare(a.hyperparameters.values, b.hyperparameters.values)),
    )
    oracle._ordered_ids = type(oracle._ordered_ids)()
    for trial in in_grid_order:
        oracle._ordered_ids.insert(trial.trial_id)
    ended = set(oracle.end_order)
    # Trials still pending (interrupted) are retried first and queued when they end.
    oracle._populate_next = [trial.trial_id for trial in in_grid_order if trial.trial_id in ended]


def trial_results(oracle) -> dict:
    """``{setting: result}`` of the ended trials, read from the oracle."""
    results = {}
    for trial in oracle.trials.values():
        if trial.status not in ("COMPLETED", "FAILED"):
            continue
        values = trial.hyperparameters.values
        setting = tuple(values[name] for name in GRID_HYPERPARAMETERS)

        def last(name, trial=trial):
            return trial.metrics.get_last_value(name) if trial.metrics.exists(name) else None

        val_dice = last(MONITOR)
        finite = val_dice is not None and math.isfinite(val_dice)
        results[setting] = {
            "val_dice": float(val_dice) if finite else None,
            "best_epoch": int(last("best_epoch")) if last("best_epoch") is not None else None,
            "epochs_run": int(last("epochs_run")) if last("epochs_run") is not None else None,
            "seconds": float(last("seconds")) if last("seconds") is not None else None,
            "status": trial.status if finite else "FAILED",
            "trial_id": trial.trial_id,
        }
    return results


def search_grid(hypermodel, project_dir, started, runtime=None) -> list[dict]:
    """Run (or resume) the GridSearch of one model; its settings' results in grid order."""
    model_name = hypermodel.model_name
    settings = hypermodel.settings
    with contextlib.redirect_stdout(io.StringIO()):  # KerasTuner prints "Reloading Tuner from ..."
        tuner = keras_tuner.GridSearch(
            hypermodel,
            objective=OBJECTIVE,
            max_trials=len(settings),
            directory=os.path.dirname(project_dir),
            project_name=os.path.basename(project_dir),
            overwrite=False,
            seed=hypermodel.seed,
            distribution_strategy=runtime_lib.strategy_for(runtime),
        )
    restore_grid_position(tuner.oracle)
    finished_before = trial_results(tuner.oracle)
    if tuner.oracle.trials:
        logger.info(f"{model_name}: resuming the KerasTuner search in {project_dir} "
            f"({len(finished_before)} of {len(settings)} settings finished earlier)")
    for number, setting in enumerate(settings, start=1):
        if setting in finished_before:
            result = finished_before[setting]
            score = f"{result['val_dice']:.4f}" if result["val_dice"] is not None else "none (failed)"
            logger.info(f"{model_name} setting {number}/{len(settings)}: {describe_setting(setting)} -> best val "
                        f"dice {score} at epoch {result['best_epoch']}/{result['epochs_run']} (reused from an earlier "
                        f"run, trained in {result['seconds']} s, elapsed {time.time() - started:.0f} s)")
    tuner.search(verbose=0)

    results = trial_results(tuner.oracle)
    missing = [describe_setting(s) for s in settings if s not in results]
    if missing:
        raise RuntimeError(
            f"KerasTuner ended the {model_name} search in {project_dir} without running {missing}"
        )
    rows = []
    for setting in settings:
        learning_rate, batch_size, loss = setting
        rows.append({
            "learning_rate": learning_rate,
            "batch_size": batch_size,
            "loss": loss,
            **results[setting],
            "reused": setting in finished_before,
        })
    return rows


