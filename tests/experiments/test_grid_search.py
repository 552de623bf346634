"""The segmentation grid search of §3.4 / Table S4 (KerasTuner GridSearch) on a tiny phantom."""

from __future__ import annotations

import csv
import json
import math
import re

import keras_tuner
import numpy as np
import pytest

from tf_bimodal.config import DataConfig, GridSearchConfig, SplitConfig
from tf_bimodal.experiments import grid_search
from tf_bimodal.experiments import segmentation as segmentation_experiment
from tf_bimodal.experiments.grid_search import GridSearchTrialError, choose_setting, run_grid_search
from tf_bimodal.layers.colour_input import modal_path_names
from tf_bimodal.schema import MODALITY_CHANNELS, SYNTHETIC_NOTICE

from helpers import captured_progress, quick_experiment, tiny_phantom

TINY_GRID = GridSearchConfig(models=("unet_bmode",), learning_rates=(1e-2, 1e-3), batch_sizes=(8,),
                             losses=("bce", "dice"), epochs=1)
TINY = quick_experiment("tiny", grid_search=TINY_GRID)
GRID_ORDER = [(1e-2, 8, "bce"), (1e-2, 8, "dice"), (1e-3, 8, "bce"), (1e-3, 8, "dice")]
SPLIT = SplitConfig(num_folds=3)
SETTING_LINE = re.compile(
    r"^unet_bmode setting (\d)/4: lr (\S+), batch (\d+), loss (\w+) -> best val dice (\S+) at epoch 1/1 \((.*)\)$"
)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    phantom = tiny_phantom(seed=5)
    return DataConfig(source="phantom", image_size=64, data_dir=str(tmp_path_factory.mktemp("tfds")),
                      phantom=phantom)


@pytest.fixture(scope="module")
def first_search(tiny_data, tmp_path_factory):
    output = tmp_path_factory.mktemp("runs")
    with captured_progress() as lines:
        summary = run_grid_search(tiny_data, SPLIT, TINY, str(output))
    return summary, lines, output


def setting_lines(lines):
    return [match for match in map(SETTING_LINE.match, lines) if match]


def test_choose_setting_takes_the_first_of_tied_best():
    rows = [{"val_dice": 0.2}, {"val_dice": None}, {"val_dice": 0.5}, {"val_dice": 0.5}, {"val_dice": 0.1}]
    assert choose_setting(rows) is rows[2]
    assert choose_setting([{"val_dice": None}]) is None


@pytest.mark.parametrize("grid, message", [
    (GridSearchConfig(models=("unet_bmode",), fold=3), r"fold must be < split.num_folds = 3 .* got fold 3"),
    (GridSearchConfig(models=("unet_bmode",), learning_rates=(1e-3, 1e-3)), r"learning_rates repeat a value"),
])
def test_bad_arguments_are_refused_before_any_work(tmp_path, grid, message):
    data = DataConfig(data_dir=str(tmp_path / "tfds"))
    with pytest.raises(ValueError, match=message):
        run_grid_search(data, SPLIT, quick_experiment(grid_search=grid), str(tmp_path / "runs"))
    assert not (tmp_path / "tfds").exists() and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_grid_search_scores_every_setting_and_chooses_the_best(first_search):
    summary, _, output = first_search
    rows = summary["models"]["unet_bmode"]["settings"]
    assert [(r["learning_rate"], r["batch_size"], r["loss"]) for r in rows] == GRID_ORDER
    for row in rows:
        assert math.isfinite(row["val_dice"]) and 0.0 <= row["val_dice"] <= 1.0
        assert (row["best_epoch"], row["epochs_run"], row["status"], row["reused"]) == (1, 1, "COMPLETED", False)
        assert row["seconds"] > 0
    scores = [row["val_dice"] for row in rows]
    assert summary["models"]["unet_bmode"]["chosen"] == rows[scores.index(max(scores))]
    assert summary["synthetic"] is True and summary["notice"] == SYNTHETIC_NOTICE
    assert summary["preset"] == "tiny"
    assert summary["segmentation_config"]["image_size"] == 32 and summary["epochs"] == 1
    assert "1e-4" in summary["paper_choice"] and "not a result" in summary["paper_choice"]
    assert summary["timing"]["settings_trained"] == 4 and summary["timing"]["settings_reused"] == 0

    # Fold 0 of the shared splits file: its training and validation parts, never its test part.
    splits_file = json.loads((output / "data" / summary["dataset"].split("/")[1] / "splits.json").read_text())
    fold = splits_file["splits"][0]
    assert summary["fold"] == 0 and summary["num_folds"] == 3
    assert summary["num_images"] == {"train": len(fold["train"]), "val": len(fold["val"])}
    assert len(fold["test"]) > 0

    grid_dir = output / "grid_search"
    assert json.loads((grid_dir / "summary.json").read_text()) == json.loads(json.dumps(summary))
    with open(grid_dir / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [(float(r["learning_rate"]), int(r["batch_size"]), r["loss"]) for r in table] == GRID_ORDER
    assert [float(r["val_dice"]) for r in table] == pytest.approx(scores)
    assert [r["chosen"] for r in table].count("True") == 1
    assert table[scores.index(max(scores))]["chosen"] == "True"
    assert (grid_dir / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_one_log_line_per_trained_setting(first_search):
    summary, lines, _ = first_search
    assert SYNTHETIC_NOTICE in lines
    matches = setting_lines(lines)
    assert [int(m.group(1)) for m in matches] == [1, 2, 3, 4]
    assert len(summary["models"]["unet_bmode"]["settings"]) == len(matches)
    for match, row in zip(matches, summary["models"]["unet_bmode"]["settings"]):
        assert float(match.group(2)) == row["learning_rate"] and match.group(4) == row["loss"]
        assert float(match.group(5)) == pytest.approx(row["val_dice"], abs=1e-4)
        assert match.group(6).startswith("trained in ") and "elapsed" in match.group(6)
    assert any(line.startswith("unet_bmode: chosen lr ") for line in lines)


@pytest.mark.slow
def test_rerun_reuses_the_finished_settings(first_search, tiny_data):
    summary, _, output = first_search
    with captured_progress() as lines:
        again = run_grid_search(tiny_data, SPLIT, TINY, str(output))
    matches = setting_lines(lines)
    assert [int(m.group(1)) for m in matches] == [1, 2, 3, 4]
    assert all(m.group(6).startswith("reused from an earlier run") for m in matches)
    assert any("4 of 4 settings finished earlier" in line for line in lines)
    first_rows = summary["models"]["unet_bmode"]["settings"]
    rows = again["models"]["unet_bmode"]["settings"]
    assert [r["val_dice"] for r in rows] == [r["val_dice"] for r in first_rows]
    assert all(r["reused"] for r in rows)
    assert again["timing"]["settings_trained"] == 0 and again["timing"]["settings_reused"] == 4
    assert len(list((output / "grid_search" / "tuner" / "unet_bmode").glob("trial_*"))) == 4


@pytest.mark.slow
def test_a_tuner_project_of_another_search_is_not_reused(first_search, tiny_data):
    _, _, output = first_search
    other = GridSearchConfig(models=("unet_bmode",), learning_rates=(1e-2, 1e-3), batch_sizes=(8,),
                             losses=("bce", "dice"), epochs=2)
    with pytest.raises(ValueError, match=r"made by another grid search \(it differs in epochs\)"):
        run_grid_search(tiny_data, SPLIT, quick_experiment(grid_search=other), str(output))


@pytest.mark.slow
def test_an_interrupted_search_resumes_where_it_stopped(tiny_data, tmp_path):
    # KerasTuner 1.4.8 cannot resume an unfinished GridSearch by itself (keras-tuner#1055).
    def interrupt_at_setting_2(line):
        if line.startswith("unet_bmode setting 2/4"):
            raise RuntimeError("simulated interruption")

    with pytest.raises(GridSearchTrialError, match=r"setting 2/4 .* simulated interruption"):
        with captured_progress(interrupt_at_setting_2):
            run_grid_search(tiny_data, SPLIT, TINY, str(tmp_path))
    with captured_progress() as lines:
        summary = run_grid_search(tiny_data, SPLIT, TINY, str(tmp_path))
    how = {int(m.group(1)): m.group(6).split(",")[0] for m in setting_lines(lines)}
    assert list(how) == [1, 2, 3, 4]
    assert how[1].startswith("reused") and all(how[n].startswith("trained in") for n in (2, 3, 4))
    rows = summary["models"]["unet_bmode"]["settings"]
    assert [(r["learning_rate"], r["batch_size"], r["loss"]) for r in rows] == GRID_ORDER
    assert [r["reused"] for r in rows] == [True, False, False, False]
    assert all(r["status"] == "COMPLETED" and 0.0 <= r["val_dice"] <= 1.0 for r in rows)
    assert len(list((tmp_path / "grid_search" / "tuner" / "unet_bmode").glob("trial_*"))) == 4


PRESTAGE_GRID = GridSearchConfig(models=("unet_bmode", "w_mm_unet"), learning_rates=(1e-3,), batch_sizes=(8,),
                                 losses=("bce", "dice"), epochs=1)
PRESTAGE = quick_experiment("tiny", grid_search=PRESTAGE_GRID,
                            overrides={"segmentation": {"auto_weight": "prestage"}})
KNOWN_WEIGHTS = [0.4, 0.3, 0.2, 0.1]


def test_the_grid_w_mm_unet_is_built_with_its_prestage_weights(tiny_data, tmp_path, monkeypatch):
    """§3.2.2 / §3.4: every setting of the grid's W-MM-U-Net has the weights of one auto-weight
    pre-stage on the grid's fold, not the equal 1/4 of MM-U-Net; a rerun reads it back."""
    prestage_calls, built = [], {}

    def fake_prestage(arrays, train_ids, val_ids, config, image_size, seed=0, input_keys=(), label=""):
        prestage_calls.append({"train": list(train_ids), "val": list(val_ids), "seed": seed, "size": image_size})
        names = modal_path_names(input_keys, [MODALITY_CHANNELS[key] for key in input_keys], config.colour_mode)
        return {"weights": list(KNOWN_WEIGHTS), "path_names": list(names), "val_accuracy": 0.75}

    def fake_search(hypermodel, project_dir, started, runtime=None):
        rows = []
        for number, setting in enumerate(grid_search.grid_settings(hypermodel.grid)):
            hp = keras_tuner.HyperParameters()
            hypermodel.declare_hyperparameters(hp)
            hp.values.update(dict(zip(grid_search.GRID_HYPERPARAMETERS, setting)))
            model = hypermodel.build(hp)
            weights = [layer.modality_weights for layer in model.layers if layer.name == "modality_weights"]
            built.setdefault(hypermodel.model_name, []).append(
                (weights[0] if weights else None, getattr(model, "path_names", None)))
            rows.append({**dict(zip(grid_search.GRID_HYPERPARAMETERS, setting)), "val_dice": 0.5, "best_epoch": 1,
                         "epochs_run": 1, "seconds": 0.1, "status": "COMPLETED", "trial_id": str(number),
                         "reused": False})
        return rows

    monkeypatch.setattr(segmentation_experiment, "train_auto_weight_prestage", fake_prestage)
    monkeypatch.setattr(grid_search, "search_grid", fake_search)
    with captured_progress() as lines:
        summary = run_grid_search(tiny_data, SPLIT, PRESTAGE, str(tmp_path))

    # One pre-stage, on fold 0's training and validation parts, for both settings.
    assert len(prestage_calls) == 1
    fold = json.loads((tmp_path / "data" / summary["dataset"].split("/")[1] / "splits.json").read_text())["splits"][0]
    assert prestage_calls[0]["train"] == fold["train"] and prestage_calls[0]["val"] == fold["val"]
    assert prestage_calls[0]["seed"] == PRESTAGE.segmentation.seed + 0 and prestage_calls[0]["size"] == 32
    assert any(line.startswith("w_mm_unet: auto-weight pre-stage (§3.2.2) on fold 0, once for all 2 settings")
               for line in lines)

    # Every setting's W-MM-U-Net weights its paths as the pre-stage says, not 1/4 each.
    assert len(built["w_mm_unet"]) == 2
    for weights, path_names in built["w_mm_unet"]:
        assert weights == pytest.approx(KNOWN_WEIGHTS)
        assert not np.allclose(weights, 0.25)
        assert list(path_names) == summary["models"]["w_mm_unet"]["auto_weight_prestage"]["path_names"]
    assert built["unet_bmode"] == [(None, None), (None, None)]

    # Recorded per model in summary.json and kept in the tuner project for a rerun.
    project = tmp_path / "grid_search" / "tuner" / "w_mm_unet"
    record = summary["models"]["w_mm_unet"]["auto_weight_prestage"]
    assert record["weights"] == KNOWN_WEIGHTS and record["val_accuracy"] == 0.75
    assert record["file"] == str(project / "auto_weights.json")
    assert json.loads((project / "auto_weights.json").read_text())["weights"] == KNOWN_WEIGHTS
    assert summary["models"]["unet_bmode"]["auto_weight_prestage"] is None
    assert json.loads((tmp_path / "grid_search" / "summary.json").read_text())["models"]["w_mm_unet"][
        "auto_weight_prestage"]["weights"] == KNOWN_WEIGHTS
    settings = json.loads((project / "grid_search_settings.json").read_text())
    assert settings["auto_weight_prestage"]["batch_size"] == PRESTAGE.segmentation.batch_size
    assert "auto_weight_prestage" not in json.loads(
        (tmp_path / "grid_search" / "tuner" / "unet_bmode" / "grid_search_settings.json").read_text())

    # A rerun reuses the pre-stage record and builds with the same weights.
    built.clear()
    with captured_progress() as lines:
        again = run_grid_search(tiny_data, SPLIT, PRESTAGE, str(tmp_path))
    assert len(prestage_calls) == 1
    assert any("reusing the auto-weight pre-stage weights of" in line for line in lines)
    assert again["models"]["w_mm_unet"]["auto_weight_prestage"]["weights"] == KNOWN_WEIGHTS
    assert all(weights == pytest.approx(KNOWN_WEIGHTS) for weights, _ in built["w_mm_unet"])


@pytest.mark.slow
def test_the_grid_w_mm_unet_trains_with_the_weights_of_a_real_prestage(tiny_data, tmp_path):
    grid = GridSearchConfig(models=("w_mm_unet",), learning_rates=(1e-3,), batch_sizes=(8,), losses=("dice",),
                            epochs=1)
    experiment = quick_experiment("tiny", grid_search=grid, overrides={
        "segmentation": {"auto_weight": "prestage", "auto_weight_epochs": 1}})
    summary = run_grid_search(tiny_data, SPLIT, experiment, str(tmp_path))
    record = summary["models"]["w_mm_unet"]["auto_weight_prestage"]
    kept = json.loads((tmp_path / "grid_search" / "tuner" / "w_mm_unet" / "auto_weights.json").read_text())
    assert record["weights"] == kept["weights"] and record["val_accuracy"] == kept["val_accuracy"]
    assert sum(record["weights"]) == pytest.approx(1.0) and not np.allclose(record["weights"], 0.25)
    row = summary["models"]["w_mm_unet"]["settings"][0]
    assert row["status"] == "COMPLETED" and 0.0 <= row["val_dice"] <= 1.0
