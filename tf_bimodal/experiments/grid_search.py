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
    <output>/grid_search/tuner/w_mm_unet/auto_weights.json
                                               W-MM-U-Net's auto-weight pre-stage record (§3.2.2)
    <output>/grid_search/tensorboard/<model>/  the grid in TensorBoard's HParams dashboard, one run
                                               per setting (``RuntimeConfig.tensorboard``)

A W-MM-U-Net whose weighting is ``"prestage"`` (``SegmentationConfig.auto_weight``, §3.2.2)
gets its auto-weight pre-stage once per grid search, on the grid's fold (``GridSearchConfig.fold``),
before its first setting, and every one of its settings is built with those fixed modality
weights: the pre-stage classifier is trained as in the cross-validation of that fold (the
segmentation config's batch size and its ``auto_weight_*`` settings, the fold's training and
validation images, the seed ``seed + fold``), so it depends on none of the searched learning
rate, batch size or loss. Without it the grid's W-MM-U-Net would weight its four paths equally, the same
model as MM-U-Net.

KerasTuner's ``SaveBestEpoch`` checkpoints are left out: the search needs each setting's
score, not its weights (they would take about 20 GB at the ``paper`` preset, 120-310 MB per
setting).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time

import keras

from tf_bimodal import layout, logs
from tf_bimodal.config import DataConfig, ExperimentConfig, GridSearchConfig, SplitConfig, to_dict
from tf_bimodal.data import inputs, pipeline
from tf_bimodal.evaluation.figures import save_grid_figure
from tf_bimodal.experiments.cross_validation import experiment_runtime
from tf_bimodal.experiments.experiment_data import ExperimentData, experiment_data
from tf_bimodal.experiments.segmentation import AUTO_WEIGHT_FILE, check_modalities, kept_auto_weight_prestage
from tf_bimodal.io import read_json, write_json
from tf_bimodal.models.segmentation.factory import MODEL_INPUTS, model_weighting
from tf_bimodal.schema import SYNTHETIC_NOTICE
from tf_bimodal.training import runtime as runtime_lib
from tf_bimodal.training.segmentation import MONITOR
from tf_bimodal.training.tensorboard import write_hparams
from tf_bimodal.training.tuning import (
    GRID_HYPERPARAMETERS,
    GridSearchTrialError,
    SegmentationHyperModel,
    describe_setting,
    grid_settings,
    search_grid,
    setting_config,
)

logger = logging.getLogger(__name__)

__all__ = ["GridSearchTrialError", "choose_setting", "grid_prestage", "grid_settings", "run_grid_search",
           "setting_config", "setting_run_name", "write_grid_hparams"]

PAPER_CHOICE = (
    "The paper (§3.4, Table S4) found learning rate 1e-4 / batch size 32 / Dice loss near-optimal "
    "for single- and multimodal models and trained every model with it; quoted for comparison, "
    "not a result of this run."
)

SETTINGS_FILE = "grid_search_settings.json"
"""Written beside KerasTuner's files in each tuner project: what the project's trials were run
with, so that a rerun reuses them only for the same search."""


def _epochs(count: int) -> str:
    return f"{count} epoch" + ("s" if count != 1 else "")


def _json_normalized(value):
    return json.loads(json.dumps(value))


def _tuner_settings(model_name, dataset_name, split, grid, base, epochs, precision="float32") -> dict:
    """What a tuner project's trials depend on (the list of models searched does not; the
    precision only when not float32, as in the segmentation runs' cache key). For a model
    with the auto-weight pre-stage also what the pre-stage reads beyond the kept segmentation
    settings: the base batch size (the grid's batch sizes are the segmenter's) and the
    revision of the classifier batches."""
    segmentation = to_dict(base)
    for name in (*GRID_HYPERPARAMETERS, "epochs"):
        segmentation.pop(name)
    extra = {"precision": precision} if precision != "float32" else {}
    if model_weighting(model_name, base) == "prestage":
        extra["auto_weight_prestage"] = {"batch_size": base.batch_size, "batches": pipeline.BATCHES_REVISION}
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
        saved = read_json(path)
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


def grid_prestage(model_name, base, grid, model_arrays, fold, model_size, project_dir, runtime=None) -> dict | None:
    """The auto-weight pre-stage (§3.2.2) of ``model_name`` for the grid, or None when its
    weighting is not ``"prestage"``.

    Trained once on fold ``grid.fold`` (every labelled image of its training part; its
    validation part for the early stopping) with ``base`` and the seed ``base.seed + fold``, as
    the cross-validation trains the pre-stage of that fold, before the model's first setting;
    every setting is then built with its weights. The record is kept in
    ``<project_dir>/auto_weights.json`` and read back by a resumed search.
    """
    if model_weighting(model_name, base) != "prestage":
        return None
    path = os.path.join(project_dir, AUTO_WEIGHT_FILE)
    seed = base.seed + grid.fold
    runtime_lib.clear_session(runtime)
    keras.utils.set_random_seed(seed)
    logger.info(f"{model_name}: auto-weight pre-stage (§3.2.2) on fold {fold['fold']}, once for all "
                f"{grid.num_settings} settings")
    record = kept_auto_weight_prestage(
        path, model_arrays, list(fold["train"]), list(fold["val"]), base, model_size, seed=seed,
        input_keys=MODEL_INPUTS[model_name], label=f"{model_name} fold {fold['fold']}",
    )
    return {**record, "file": path}


def choose_setting(rows: list[dict]) -> dict | None:
    """The setting with the highest validation Dice; ties go to the first in grid order."""
    chosen = None
    for row in rows:
        if row["val_dice"] is not None and (chosen is None or row["val_dice"] > chosen["val_dice"]):
            chosen = row
    return chosen


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


def run_grid_search(
    data: DataConfig | ExperimentData,
    split: SplitConfig | None,
    experiment: ExperimentConfig,
    output: str,
) -> dict:
    """Grid-search learning rate x batch size x loss for the segmenters (paper §3.4, Table S4).

    For each model of the grid (``experiment.grid_search``), every setting (learning rate,
    batch size, loss) trains the model as ``experiment.segmentation`` says, with that setting
    (:func:`setting_config`), on the training part of fold ``grid.fold`` of the patient-level
    splits (the same ``<output>/data/<dataset>/splits.json`` as the segmentation runs, so all
    experiments share folds), for at most ``grid.epochs`` epochs (else the segmentation
    config's; the paper does not say how long each setting was trained) with the
    segmentation config's early stopping on the validation Dice. The setting's score is its
    best validation Dice on the fold's validation part; the chosen setting is the one with the
    highest score (ties: the first in grid order). The paper does not say what its grid
    search was scored on; one fold's validation part keeps the search cheap and never looks
    at the test images.

    A W-MM-U-Net with the auto-weight pre-stage (weighting ``"prestage"``, §3.2.2) gets it
    once, on fold ``grid.fold``, before its settings (:func:`grid_prestage`); all its settings
    are built with those weights, which ``summary.json`` records per model
    (``auto_weight_prestage``; null for the other models).

    Each model has its own ``keras_tuner.GridSearch`` in ``<output>/grid_search/tuner/<model>``;
    a rerun with the same output resumes it: finished settings are read back, not trained
    again, and an interrupted one is trained again; the pre-stage record in that folder is
    read back, not trained again. A project made for another search (other grid, epochs,
    fold, data, splits or segmentation settings) is refused, not reused.

    With ``runtime.tensorboard`` (the default) each model's grid is also written to
    TensorBoard's HParams dashboard, in ``<output>/grid_search/tensorboard/<model>/``: the
    grid, and one run per setting (``setting_<nn>_lr_<lr>_batch_<b>_<loss>``, numbered in
    grid order) with its hyperparameters and its ``val_dice``, reused settings included.
    Progress: one line per setting (model, setting i/N, learning rate, batch, loss, best
    validation Dice, seconds, elapsed; "reused" for settings finished in an earlier run) and
    one per model for its choice, also in ``<output>/grid_search/log.txt``.

    Args:
        data: the data set, resolved once per request (``ExperimentData``), or a
            ``DataConfig`` that this call resolves.
        split: the patient-level split settings (``SplitConfig``; None: the data's own).
        experiment: the resolved settings (``ExperimentConfig``: its ``grid_search``,
            ``segmentation`` and ``runtime``). The settings are built and trained under the
            runtime's strategy (KerasTuner's ``distribution_strategy``) and precision; with
            ``multi_worker`` only the chief writes to ``output``.
        output: the experiment's folder.

    Returns:
        The summary dict written to ``<output>/grid_search/summary.json``.

    Raises:
        ValueError: a grid with a repeated value, a fold index not below the number of folds,
            a multimodal model on data without SE-mode images (e.g. BUSI), or a tuner project
            in ``output`` made for another search.
        GridSearchTrialError: a setting failed to train (the original error is its cause).
    """
    if isinstance(experiment, ExperimentConfig):
        resolved_split = data.split if isinstance(data, ExperimentData) else None
        _check_grid(experiment.grid_search, split or resolved_split or SplitConfig())
    with experiment_runtime(experiment, output, "run_grid_search") as output:
        grid_dir = os.path.join(output, layout.GRID_SEARCH_FOLDER)
        with logs.run_log(grid_dir, layout.LOG_FILE):
            return _run_grid_search(data, split, experiment, output, grid_dir)


def _run_grid_search(data, split, experiment, output, grid_dir) -> dict:
    started = time.time()
    grid, base = experiment.grid_search, experiment.segmentation
    epochs = grid.epochs or base.epochs
    resolved = experiment_data(data, split, output)
    logger.info(f"Grid search (§3.4) of {', '.join(grid.models)} on {resolved.name} (preset {experiment.name}): "
                f"{len(grid_settings(grid))} settings per model, fold {grid.fold}, at most {_epochs(epochs)} each")
    if resolved.synthetic:
        logger.info(SYNTHETIC_NOTICE)
    fold, train_ids, val_ids = _grid_fold(resolved, grid)
    model_size = resolved.model_size(base.image_size)
    model_arrays = inputs.resize_arrays(resolved.arrays, model_size)
    logger.info(f"  fold {fold['fold']}: train {len(train_ids)}, val {len(val_ids)} images (test images unused)")
    models, hparams_dirs = {}, {}
    for model_name in grid.models:
        project_dir = os.path.join(grid_dir, "tuner", model_name)
        _check_tuner_project(project_dir, _tuner_settings(
            model_name, resolved.name, resolved.split, grid, base, epochs,
            runtime_lib.resolved_precision(experiment.runtime)
        ))
        prestage = grid_prestage(model_name, base, grid, model_arrays, fold, model_size, project_dir,
                                 experiment.runtime)
        hypermodel = SegmentationHyperModel(
            model_name, base, grid, model_arrays, train_ids, val_ids, model_size, started=started,
            runtime=experiment.runtime, modality_weights=prestage["weights"] if prestage else None,
        )
        rows = search_grid(hypermodel, project_dir, started, experiment.runtime)
        chosen = choose_setting(rows)
        models[model_name] = {"settings": rows, "chosen_row": chosen, "prestage": prestage}
        hparams_dirs[model_name] = write_grid_hparams(
            os.path.join(grid_dir, "tensorboard", model_name), grid, rows, experiment.runtime
        )
        if chosen is not None:
            logger.info(f"{model_name}: chosen "
                        f"{describe_setting((chosen['learning_rate'], chosen['batch_size'], chosen['loss']))}"
                        f" (best val dice {chosen['val_dice']:.4f}); the paper used 1e-4 / 32 / dice for all models")
        keras.backend.clear_session()
    summary = _grid_summary(resolved, experiment, grid_dir, fold, (train_ids, val_ids), model_size, models,
                            hparams_dirs, started)
    write_json(os.path.join(grid_dir, layout.SUMMARY_FILE), summary)
    logger.info(f"Wrote {os.path.join(grid_dir, layout.SUMMARY_FILE)}, {summary['files']['csv']} and "
                f"{summary['files']['figure']} ({summary['timing']['total_seconds']:.0f} s)")
    return summary


def _grid_fold(resolved: ExperimentData, grid) -> tuple:
    """The grid's fold and its training and validation images with a mask (checked)."""
    arrays, splits = resolved.arrays, resolved.splits
    for model_name in grid.models:
        check_modalities(model_name, arrays, resolved.name)
    if grid.fold >= len(splits):
        raise ValueError(f"preset: the grid search's fold must be < {len(splits)} (the number of folds), "
                         f"got fold {grid.fold}")
    fold = splits[grid.fold]
    has_mask = dict(zip(arrays["image_id"], arrays["has_mask"], strict=True))
    train_ids = [image_id for image_id in fold["train"] if has_mask[image_id]]
    val_ids = [image_id for image_id in fold["val"] if has_mask[image_id]]
    if not train_ids or not val_ids:
        raise ValueError(
            f"fold {fold['fold']} has {len(train_ids)} training and {len(val_ids)} validation images with a "
            "mask; the grid search needs at least one of each"
        )
    return fold, train_ids, val_ids


def _grid_summary(resolved: ExperimentData, experiment, grid_dir, fold, parts, model_size, models,
                  hparams_dirs, started) -> dict:
    """``grid_search/summary.json``: the settings, the choice per model, files and timing."""
    grid, base = experiment.grid_search, experiment.segmentation
    epochs = grid.epochs or base.epochs
    os.makedirs(grid_dir, exist_ok=True)
    csv_path = _write_csv(os.path.join(grid_dir, "results.csv"), models)
    title = (f"Grid search (§3.4, Table S4): best validation Dice\n{resolved.name}, fold {grid.fold}, "
             f"at most {_epochs(epochs)} per setting"
             + ("\nSYNTHETIC PHANTOM DATA, not patient results" if resolved.synthetic else ""))
    figure_path = save_grid_figure(os.path.join(grid_dir, "grid.png"), models, grid, title)
    rows = [row for result in models.values() for row in result["settings"]]
    return {
        **resolved.record(model_size),
        "preset": experiment.name,
        "grid": to_dict(grid),
        "segmentation_config": to_dict(base),
        "split_config": to_dict(resolved.split),
        "fold": fold["fold"],
        "num_folds": len(resolved.splits),
        "num_images": {"train": len(parts[0]), "val": len(parts[1])},
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
                "auto_weight_prestage": result["prestage"],
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
        "runtime": runtime_lib.describe(experiment.runtime),
        "timing": {
            "total_seconds": round(time.time() - started, 1),
            "settings_trained": sum(not row["reused"] for row in rows),
            "settings_reused": sum(row["reused"] for row in rows),
        },
    }
