"""The segmentation hyperparameter grid search of the paper (§3.4, Table S4), with KerasTuner.

§3.4: "The optimal hyperparameters for single- and multimodal models were determined using the
grid search. Various learning rates (0.01, 0.001, 0.0001), batch sizes (4, 8, 16, 32), and loss
functions (binary cross entropy and dice loss)"; Table S4 lists the optimum per model, and the
paper then trains every model with 1e-4 / 32 / Dice, "near optimal" for all of them.

``run_grid_search(data, split, preset, output)`` runs one ``keras_tuner.GridSearch`` per model of
``GridSearchConfig.models`` over learning rate x batch size x loss, and writes::

    <output>/data/<dataset>/splits.json        the folds (shared with run_segmentation, made once)
    <output>/grid_search/summary.json          every setting's score and the chosen one per model
    <output>/grid_search/results.csv           one row per model x setting
    <output>/grid_search/grid.png              validation Dice over learning rate x batch, per loss
    <output>/grid_search/tuner/<model>/        KerasTuner's project (oracle, trial_<n>/), for resuming
    <output>/grid_search/tensorboard/<model>/  the grid in TensorBoard's HParams dashboard, one run
                                               per setting (``RuntimeConfig.tensorboard``)

KerasTuner's ``SaveBestEpoch`` checkpoints are left out: the search needs each setting's
score, not its weights (they would take about 20 GB at the ``paper`` preset, 120-310 MB per
setting).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import io
import itertools
import json
import math
import os
import time

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

from tf_bimodal.config import (
    DataConfig,
    GridSearchConfig,
    RuntimeConfig,
    SegmentationConfig,
    SplitConfig,
    grid_search_preset,
    segmentation_preset,
    to_dict,
)
from tf_bimodal.data import dataset as dataset_lib
from tf_bimodal.data import splits as splits_lib
from tf_bimodal.experiments.common import SYNTHETIC_NOTICE, write_json
from tf_bimodal.experiments.segmentation import _check_modalities, _fold_dataset, load_arrays, resize_arrays
from tf_bimodal.models.segmentation.factory import MODEL_INPUTS, build_segmenter
from tf_bimodal.training import runtime as runtime_lib
from tf_bimodal.training.segmentation import MONITOR, compile_segmenter
from tf_bimodal.training.tensorboard import write_hparams

OBJECTIVE = keras_tuner.Objective(MONITOR, direction="max")
"""A setting's score: its best validation Dice over the epochs of its training run."""

GRID_HYPERPARAMETERS = ("learning_rate", "batch_size", "loss")
"""The searched ``SegmentationConfig`` fields, in grid order (the last varies fastest)."""

PAPER_CHOICE = (
    "The paper (§3.4, Table S4) found learning rate 1e-4 / batch size 32 / Dice loss near-optimal "
    "for single- and multimodal models and trained every model with it; quoted for comparison, "
    "not a result of this run."
)

SETTINGS_FILE = "grid_search_settings.json"
"""Written beside KerasTuner's files in each tuner project: what the project's trials were run
with, so that a rerun reuses them only for the same search."""


class GridSearchTrialError(keras_tuner.errors.FatalError):
    """A setting failed to train. Fatal, so that KerasTuner stops the search and re-raises
    rather than record the setting as failed and go on: the trial stays pending in the tuner
    project, and the next run retries it."""


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


def _epochs(count: int) -> str:
    return f"{count} epoch" + ("s" if count != 1 else "")


def _describe(setting) -> str:
    learning_rate, batch_size, loss = setting
    return f"lr {learning_rate:.0e}, batch {batch_size}, loss {loss}"


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
    repeats itself.

    Args:
        model_name: a ``SEGMENTATION_MODELS`` name.
        base: the ``SegmentationConfig`` the grid varies.
        grid: the ``GridSearchConfig``.
        arrays: the data at model size (:func:`~tf_bimodal.experiments.segmentation.resize_arrays`).
        train_ids, val_ids: the fold's training and validation image ids (with a mask).
        model_size: the model's input side.
        log: where the one line per trained setting goes.
        started: ``time.time()`` the lines count elapsed seconds from.
        runtime: the ``RuntimeConfig``, whose precision every setting is built in.
    """

    def __init__(self, model_name, base, grid, arrays, train_ids, val_ids, model_size, log=print, started=None,
                 runtime=None):
        super().__init__(name=model_name)
        self.model_name = model_name
        self.base = base
        self.grid = grid
        self.arrays = arrays
        self.train_ids = list(train_ids)
        self.val_ids = list(val_ids)
        self.model_size = model_size
        self.log = log
        self.started = time.time() if started is None else started
        self.settings = grid_settings(grid)
        self.seed = base.seed + grid.fold
        self.runtime = runtime
        self._trial_started = None

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
        config = dataclasses.replace(self.base, learning_rate=learning_rate, loss=loss)
        return compile_segmenter(build_segmenter(self.model_name, config, self.model_size), config)

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        batch_size = hp.Choice("batch_size", list(self.grid.batch_sizes))
        setting = (hp.get("learning_rate"), batch_size, hp.get("loss"))
        label = f"{self.model_name} setting {self.settings.index(setting) + 1}/{len(self.settings)}"
        try:
            # KerasTuner's SaveBestEpoch writes each setting's best weights (about 300 MB per
            # multimodal setting at the paper's size); the search needs only the scores.
            kept = [c for c in (callbacks or []) if type(c).__name__ != "SaveBestEpoch"]
            result = self._train(model, setting, kept)
            self.log(f"{label}: {_describe(setting)} -> best val dice {result[MONITOR]:.4f} at epoch "
                     f"{result['best_epoch']}/{result['epochs_run']} (trained in {result['seconds']:.1f} s, "
                     f"elapsed {time.time() - self.started:.0f} s)")
        except Exception as error:
            raise GridSearchTrialError(
                f"{label} ({_describe(setting)}) failed: {type(error).__name__}: {error}. The search "
                "stopped; a rerun with the same output reuses the finished settings and retries this one"
            ) from error
        return result

    def _train(self, model, setting, callbacks) -> dict:
        config = setting_config(self.base, self.grid, *setting)
        input_keys = MODEL_INPUTS[self.model_name]
        replicas = runtime_lib.strategy_for(self.runtime).num_replicas_in_sync
        train_ds = _fold_dataset(self.arrays, self.train_ids, input_keys, config, True, self.seed, replicas)
        val_ds = _fold_dataset(self.arrays, self.val_ids, input_keys, config, False, self.seed, replicas)
        # The early stopping of fit_segmenter, which takes no extra callbacks.
        early_stopping = keras.callbacks.EarlyStopping(
            monitor=MONITOR, mode="max", patience=config.early_stopping_patience, restore_best_weights=True
        )
        history = model.fit(
            train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=[early_stopping, *callbacks],
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
        }


def _restore_grid_position(oracle) -> None:
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


def _json_normalized(value):
    return json.loads(json.dumps(value))


def _tuner_settings(model_name, dataset_name, split, grid, base, epochs, precision="float32") -> dict:
    """What a tuner project's trials depend on (the list of models searched does not; the
    precision only when not float32, as in the segmentation runs' cache key)."""
    segmentation = to_dict(base)
    for name in (*GRID_HYPERPARAMETERS, "epochs"):
        segmentation.pop(name)
    extra = {"precision": precision} if precision != "float32" else {}
    return _json_normalized({
        **extra,
        "model": model_name,
        "dataset": dataset_name,
        "split_config": to_dict(split),
        "fold": grid.fold,
        "learning_rates": list(grid.learning_rates),
        "batch_sizes": list(grid.batch_sizes),
        "losses": list(grid.losses),
        "epochs": epochs,
        "segmentation_config": segmentation,
    })


def _check_tuner_project(project_dir, settings) -> None:
    """Refuse to resume a tuner project made for another search (same rule as the splits)."""
    path = os.path.join(project_dir, SETTINGS_FILE)
    if os.path.exists(path):
        with open(path) as handle:
            saved = json.load(handle)
        if saved != settings:
            differing = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
            raise ValueError(
                f"output: the KerasTuner project {project_dir} was made by another grid search "
                f"(it differs in {', '.join(differing)}), so its trials cannot be reused; choose "
                "another output or remove that folder deliberately"
            )
    elif os.path.isdir(project_dir) and os.listdir(project_dir):
        raise ValueError(
            f"output: {project_dir} holds files but no {SETTINGS_FILE}, so what its trials were run "
            "with is unknown; choose another output or remove that folder deliberately"
        )
    else:
        os.makedirs(project_dir, exist_ok=True)
        write_json(path, settings)


def _trial_results(oracle) -> dict:
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


def _search_model(hypermodel, project_dir, log, started, runtime=None) -> list[dict]:
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
    _restore_grid_position(tuner.oracle)
    finished_before = _trial_results(tuner.oracle)
    if tuner.oracle.trials:
        log(f"{model_name}: resuming the KerasTuner search in {project_dir} "
            f"({len(finished_before)} of {len(settings)} settings finished earlier)")
    for number, setting in enumerate(settings, start=1):
        if setting in finished_before:
            result = finished_before[setting]
            score = f"{result['val_dice']:.4f}" if result["val_dice"] is not None else "none (failed)"
            log(f"{model_name} setting {number}/{len(settings)}: {_describe(setting)} -> best val dice {score} "
                f"at epoch {result['best_epoch']}/{result['epochs_run']} (reused from an earlier run, trained "
                f"in {result['seconds']} s, elapsed {time.time() - started:.0f} s)")
    tuner.search(verbose=0)

    results = _trial_results(tuner.oracle)
    missing = [_describe(s) for s in settings if s not in results]
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


def setting_run_name(number: int, row: dict) -> str:
    """The TensorBoard run of a setting, e.g. ``setting_01_lr_1e-04_batch_32_dice`` (numbered
    from 1 in grid order, so that TensorBoard lists the runs in that order)."""
    return f"setting_{number:02d}_lr_{row['learning_rate']:.0e}_batch_{row['batch_size']}_{row['loss']}"


def write_grid_hparams(log_dir: str, grid: GridSearchConfig, rows: list[dict], runtime=None) -> str | None:
    """One model's grid in TensorBoard's HParams dashboard (see :func:`run_grid_search`).

    The hyperparameters are ``learning_rate``, ``batch_size`` and ``loss`` with the grid's
    values, the metric ``val_dice`` (a setting's best validation Dice; left out for a failed
    setting); every row of ``rows`` (the settings in grid order) is one session.
    """
    return write_hparams(
        log_dir,
        domains={"learning_rate": grid.learning_rates, "batch_size": grid.batch_sizes, "loss": grid.losses},
        metrics={MONITOR: "best validation Dice over the setting's epochs"},
        sessions=[
            (setting_run_name(number, row),
             {name: row[name] for name in GRID_HYPERPARAMETERS},
             {MONITOR: row["val_dice"]})
            for number, row in enumerate(rows, start=1)
        ],
        runtime=runtime,
    )


def choose_setting(rows: list[dict]) -> dict | None:
    """The setting with the highest validation Dice; ties go to the first in grid order."""
    chosen = None
    for row in rows:
        if row["val_dice"] is not None and (chosen is None or row["val_dice"] > chosen["val_dice"]):
            chosen = row
    return chosen


def _resolve_presets(preset, segmentation):
    grid = grid_search_preset(preset)
    preset_name = "custom" if isinstance(preset, GridSearchConfig) else preset
    if segmentation is None:
        segmentation = "quick" if isinstance(preset, GridSearchConfig) else preset
    if isinstance(segmentation, SegmentationConfig):
        return grid, preset_name, segmentation, "custom"
    return grid, preset_name, segmentation_preset(segmentation), segmentation


def _check_grid(grid: GridSearchConfig, split: SplitConfig) -> None:
    for name in ("learning_rates", "batch_sizes", "losses"):
        values = getattr(grid, name)
        if len(set(values)) != len(values):
            raise ValueError(f"preset: the grid's {name} repeat a value, got {values}")
    if grid.fold >= split.num_folds:
        raise ValueError(
            f"preset: the grid search's fold must be < split.num_folds = {split.num_folds} "
            f"(folds are numbered from 0), got fold {grid.fold}"
        )


def _write_csv(path, models) -> str:
    columns = ("model", "setting", "learning_rate", "batch_size", "loss", "val_dice", "best_epoch",
               "epochs_run", "seconds", "status", "chosen", "reused")
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for model_name, result in models.items():
            for number, row in enumerate(result["settings"], start=1):
                writer.writerow({**row, "model": model_name, "setting": number,
                                 "chosen": row is result["chosen_row"]})
    return path


def save_grid_figure(path, models, grid: GridSearchConfig, title: str) -> str:
    """Heatmaps of validation Dice over learning rate x batch size, one per model and loss;
    the chosen setting of each model is framed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learning_rates, batch_sizes, losses = grid.learning_rates, grid.batch_sizes, grid.losses
    figure, axes = plt.subplots(
        len(models), len(losses), squeeze=False, layout="constrained",
        figsize=(
            (0.5 * len(batch_sizes) + 1.6) * len(losses) + 1.2,
            (0.35 * len(learning_rates) + 1.3) * len(models) + 0.8,
        ),
    )
    image = None
    for row_axes, (model_name, result) in zip(axes, models.items()):
        for ax, loss in zip(row_axes, losses):
            scores = np.full((len(learning_rates), len(batch_sizes)), np.nan)
            for row in result["settings"]:
                if row["loss"] == loss and row["val_dice"] is not None:
                    scores[learning_rates.index(row["learning_rate"]), batch_sizes.index(row["batch_size"])] = (
                        row["val_dice"]
                    )
            image = ax.imshow(scores, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
            for (i, j), value in np.ndenumerate(scores):
                text = "-" if np.isnan(value) else f"{value:.2f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="black" if not np.isnan(value) and value > 0.6 else "white")
            chosen = result["chosen_row"]
            if chosen is not None and chosen["loss"] == loss:
                i, j = learning_rates.index(chosen["learning_rate"]), batch_sizes.index(chosen["batch_size"])
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
            ax.set_xticks(range(len(batch_sizes)), [str(b) for b in batch_sizes], fontsize=7)
            ax.set_yticks(range(len(learning_rates)), [f"{lr:.0e}" for lr in learning_rates], fontsize=7)
            ax.set_xlabel("batch size", fontsize=7)
            ax.set_ylabel("learning rate", fontsize=7)
            ax.set_title(f"{model_name}, {loss} loss", fontsize=8)
    figure.suptitle(title, fontsize=8)
    if image is not None:
        colorbar = figure.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8)
        colorbar.set_label("best validation Dice", fontsize=7)
        colorbar.ax.tick_params(labelsize=7)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def run_grid_search(
    data: DataConfig,
    split: SplitConfig,
    preset: str | GridSearchConfig = "quick",
    output: str = "runs",
    log=print,
    segmentation: SegmentationConfig | str | None = None,
    runtime: RuntimeConfig | None = None,
) -> dict:
    """Grid-search learning rate x batch size x loss for the segmenters (paper §3.4, Table S4).

    For each model of the grid, every setting (learning rate, batch size, loss) trains the
    model as ``segmentation`` says, with that setting (:func:`setting_config`), on the
    training part of fold ``grid.fold`` of the patient-level splits (the same
    ``<output>/data/<dataset>/splits.json`` as :func:`run_segmentation`, so all experiments
    share folds), for at most ``grid.epochs`` epochs (else the segmentation config's; the
    paper does not say how long each setting was trained) with the segmentation config's
    early stopping on the validation Dice. The
    setting's score is its best validation Dice on the fold's validation part; the chosen
    setting is the one with the highest score (ties: the first in grid order). The paper does
    not say what its grid search was scored on; one fold's validation part keeps the search
    cheap and never looks at the test images.

    Each model has its own ``keras_tuner.GridSearch`` in ``<output>/grid_search/tuner/<model>``;
    a rerun with the same output resumes it: finished settings are read back, not trained
    again, and an interrupted one is trained again. A project made for another search (other
    grid, epochs, fold, data, splits or segmentation settings) is refused, not reused.

    With ``runtime.tensorboard`` (the default) each model's grid is also written to
    TensorBoard's HParams dashboard, in ``<output>/grid_search/tensorboard/<model>/``: the
    grid, and one run per setting (``setting_<nn>_lr_<lr>_batch_<b>_<loss>``, numbered in
    grid order) with its hyperparameters and its ``val_dice``, reused settings included.

    Args:
        data: the data set (``DataConfig``).
        split: the patient-level split settings (``SplitConfig``).
        preset: a name in ``GRID_SEARCH_PRESETS`` (``quick``, ``cpu``, ``paper``) or a
            ``GridSearchConfig``.
        output: results folder.
        log: where progress lines go: one per setting (model, setting i/N, learning rate,
            batch, loss, best validation Dice, seconds, elapsed; "reused" for settings
            finished in an earlier run) and one per model for its choice.
        segmentation: the ``SegmentationConfig`` (or ``SEGMENTATION_PRESETS`` name) the grid
            varies; default: the segmentation preset of the same name as ``preset``, or
            ``quick`` when ``preset`` is a ``GridSearchConfig``.
        runtime: strategy, precision and TensorBoard (``RuntimeConfig``; default: the default
            strategy, float32, the HParams dashboard written). The settings are built and
            trained under its strategy (KerasTuner's ``distribution_strategy``) and precision;
            with ``multi_worker`` only the chief writes to ``output`` (the other workers use
            ``<output>/_workers/<job>_<index>``, see :mod:`tf_bimodal.training.runtime`).

    Returns:
        The summary dict written to ``<output>/grid_search/summary.json``.

    Raises:
        ValueError: unknown preset, a grid with a repeated value, a fold index not below the
            number of folds, a multimodal model on data without SE-mode images (e.g. BUSI), or
            a tuner project in ``output`` made for another search.
        GridSearchTrialError: a setting failed to train (the original error is its cause).
    """
    # As the other runners: a multi-worker strategy must exist before any other TensorFlow
    # op runs, and only the chief writes to ``output``.
    runtime_lib.strategy_for(runtime)
    output = runtime_lib.worker_output(output, runtime)
    with runtime_lib.precision(runtime):
        return _run_grid_search(data, split, preset, output, log, segmentation, runtime)


def _run_grid_search(data, split, preset, output, log, segmentation, runtime) -> dict:
    started = time.time()
    grid, preset_name, base, segmentation_name = _resolve_presets(preset, segmentation)
    _check_grid(grid, split)
    epochs = grid.epochs or base.epochs
    dataset_name = dataset_lib.builder_config_name(data)
    synthetic = data.source == "phantom"
    settings = grid_settings(grid)
    log(f"Grid search (§3.4) of {', '.join(grid.models)} on {dataset_name} (preset {preset_name}, "
        f"segmentation {segmentation_name}): {len(settings)} settings per model, fold {grid.fold}, "
        f"at most {_epochs(epochs)} each")
    if synthetic:
        log(SYNTHETIC_NOTICE)

    builder = dataset_lib.prepare(data)
    index = dataset_lib.index_dataset(builder)
    ds, info = dataset_lib.load_dataset(data)
    arrays = load_arrays(ds)
    for model_name in grid.models:
        _check_modalities(model_name, arrays, dataset_name)
    splits = splits_lib.load_or_make_splits(
        os.path.join(output, "data", dataset_name, "splits.json"),
        index.image_ids, index.patient_ids, index.labels, split,
    )
    if grid.fold >= len(splits):
        raise ValueError(f"preset: the grid search's fold must be < {len(splits)} (the number of folds), "
                         f"got fold {grid.fold}")
    fold = splits[grid.fold]
    has_mask = dict(zip(arrays["image_id"], arrays["has_mask"]))
    train_ids = [image_id for image_id in fold["train"] if has_mask[image_id]]
    val_ids = [image_id for image_id in fold["val"] if has_mask[image_id]]
    if not train_ids or not val_ids:
        raise ValueError(
            f"fold {fold['fold']} has {len(train_ids)} training and {len(val_ids)} validation images with a "
            "mask; the grid search needs at least one of each"
        )
    model_size = base.image_size or int(arrays["bmode"].shape[1])
    model_arrays = resize_arrays(arrays, model_size)
    log(f"  fold {fold['fold']}: train {len(train_ids)}, val {len(val_ids)} images (test images unused)")

    grid_dir = os.path.join(output, "grid_search")
    models, hparams_dirs = {}, {}
    for model_name in grid.models:
        project_dir = os.path.join(grid_dir, "tuner", model_name)
        _check_tuner_project(project_dir, _tuner_settings(
            model_name, dataset_name, split, grid, base, epochs, (runtime or RuntimeConfig()).precision
        ))
        hypermodel = SegmentationHyperModel(
            model_name, base, grid, model_arrays, train_ids, val_ids, model_size, log=log, started=started,
            runtime=runtime,
        )
        rows = _search_model(hypermodel, project_dir, log, started, runtime)
        chosen = choose_setting(rows)
        models[model_name] = {"settings": rows, "chosen_row": chosen}
        hparams_dirs[model_name] = write_grid_hparams(
            os.path.join(grid_dir, "tensorboard", model_name), grid, rows, runtime
        )
        if chosen is not None:
            log(f"{model_name}: chosen {_describe((chosen['learning_rate'], chosen['batch_size'], chosen['loss']))}"
                f" (best val dice {chosen['val_dice']:.4f}); the paper used 1e-4 / 32 / dice for all models")
        keras.backend.clear_session()

    os.makedirs(grid_dir, exist_ok=True)
    csv_path = _write_csv(os.path.join(grid_dir, "results.csv"), models)
    title = (f"Grid search (§3.4, Table S4): best validation Dice\n{dataset_name}, fold {grid.fold}, "
             f"at most {_epochs(epochs)} per setting" + ("\nSYNTHETIC PHANTOM DATA, not patient results" if synthetic else ""))
    figure_path = save_grid_figure(os.path.join(grid_dir, "grid.png"), models, grid, title)
    total_seconds = time.time() - started
    summary = {
        "dataset": f"bimodal_breast_us/{dataset_name}",
        "dataset_version": str(info.version),
        "source_fingerprint": dataset_lib.stored_fingerprint(builder),
        "synthetic": synthetic,
        "notice": SYNTHETIC_NOTICE if synthetic else None,
        "preset": preset_name,
        "segmentation_preset": segmentation_name,
        "grid": to_dict(grid),
        "segmentation_config": to_dict(base),
        "data_config": to_dict(data),
        "split_config": to_dict(split),
        "fold": fold["fold"],
        "num_folds": len(splits),
        "num_images": {"train": len(train_ids), "val": len(val_ids)},
        "image_size": {"data": int(arrays["bmode"].shape[1]), "model": model_size},
        "epochs": epochs,
        "selection": (
            f"each setting trained once on fold {fold['fold']}'s training images for at most {_epochs(epochs)} "
            f"(early stopping patience {base.early_stopping_patience}) and scored by its best {MONITOR} on "
            "the fold's validation images; the highest score is chosen, ties going to the first in grid order "
            "(learning rate, then batch size, then loss); test images are never used"
        ),
        "models": {
            model_name: {
                "settings": result["settings"],
                "chosen": result["chosen_row"],
                "tuner_dir": os.path.join(grid_dir, "tuner", model_name),
            }
            for model_name, result in models.items()
        },
        "paper_choice": PAPER_CHOICE,
        "files": {
            "csv": csv_path,
            "figure": figure_path,
            "tensorboard": hparams_dirs if any(hparams_dirs.values()) else None,
        },
        "runtime": runtime_lib.describe(runtime),
        "timing": {
            "total_seconds": round(total_seconds, 1),
            "settings_trained": sum(not row["reused"] for r in models.values() for row in r["settings"]),
            "settings_reused": sum(row["reused"] for r in models.values() for row in r["settings"]),
        },
    }
    write_json(os.path.join(grid_dir, "summary.json"), summary)
    log(f"Wrote {os.path.join(grid_dir, 'summary.json')}, {csv_path} and {figure_path} ({total_seconds:.0f} s)")
    return summary
