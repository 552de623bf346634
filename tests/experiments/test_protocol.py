"""The paper's protocol end to end through the command line: chain, cache, resume, report."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tf_bimodal.config import (
    CLASSIFICATION_CROPS,
    CLASSIFICATION_MODELS,
    SEGMENTATION_MODELS,
    TABLE1_ROWS,
    TABLE2_ROWS,
    DataConfig,
)
from tf_bimodal.experiments.cross_validation import cache_key, finished_fold, reusable_summary, start_run_dir
from tf_bimodal.experiments.protocol import experiment_dir, plan_steps
from tf_bimodal.experiments.report import fold_ensemble

from helpers import BUSI_SAMPLE, REPO_ROOT

IMAGE_SIZE = "64"


def _command(tmp_path, *args):
    return [sys.executable, "-u", str(REPO_ROOT / "run_experiments.py"), "--preset", "quick", "--image-size", IMAGE_SIZE,
            "--output", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "tfds"), *args]


def _run(tmp_path, *args, timeout=600):
    result = subprocess.run(_command(tmp_path, *args), capture_output=True, text=True, timeout=timeout,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


# --------------------------------------------------------------------------- planning and caching


def test_plan_steps_chains_the_segmenter_before_predicted_crops():
    assert [row.name for row in plan_steps("mff")] == ["w_mm_unet", "mff"]
    assert [row.name for row in plan_steps("mff", crop="manual")] == ["mff_crop_manual"]
    assert [row.name for row in plan_steps("vgg16_bmode", crop="none")] == ["vgg16_bmode_crop_none"]
    assert [row.name for row in plan_steps("unet_bmode")] == ["unet_bmode"]
    assert [row.name for row in plan_steps("table1")] == [row.name for row in TABLE1_ROWS]
    assert [row.name for row in plan_steps("table2")] == ["w_mm_unet"] + [row.name for row in TABLE2_ROWS]
    everything = [row.name for row in plan_steps("all")]
    assert everything.index("w_mm_unet") < everything.index("mff") and len(everything) == len(set(everything)) == 14
    with pytest.raises(ValueError, match="model must be one of"):
        plan_steps("resnet")
    with pytest.raises(ValueError, match="crop must be one of"):
        plan_steps("mff", crop="mask")


@pytest.mark.parametrize("crop", CLASSIFICATION_CROPS)
@pytest.mark.parametrize("model", [*SEGMENTATION_MODELS, *CLASSIFICATION_MODELS])
def test_progress_lines_name_the_modalities_a_model_reads(model, crop):
    """The step line (``== step 1/2: vgg16_bmode [VGG-16 (single); Cropped image (B-mode)]``)
    names B-mode only for the models that read it, SE-mode only for those that read it."""
    row = plan_steps(model, crop=crop)[-1]
    reads = {"unet_bmode": {"B"}, "unet_semode": {"SE"}, "vgg16_bmode": {"B"}, "vgg16_semode": {"SE"}}.get(
        model, {"B", "SE"})
    assert ("B-mode" in row.modality, "SE-mode" in row.modality) == ("B" in reads, "SE" in reads), row


def test_tables_have_one_proposed_row_each():
    assert [row.name for row in TABLE1_ROWS if row.proposed] == ["w_mm_unet"]
    assert [row.name for row in TABLE2_ROWS if row.proposed] == ["mff"]
    assert {row.crop for row in TABLE2_ROWS} == {"predicted", "manual", "none"}


def test_experiment_dir_is_per_dataset_and_preset(tmp_path):
    assert experiment_dir("runs", DataConfig(), "cpu") == os.path.join("runs", "phantom-cpu")
    assert experiment_dir("runs", DataConfig(), "quick") != experiment_dir("runs", DataConfig(), "cpu")


def test_cache_keys_and_run_folders(tmp_path, progress):
    key = cache_key({"a": 1, "b": [1, 2]})
    assert key == cache_key({"b": [1, 2], "a": 1}) and key != cache_key({"a": 2, "b": [1, 2]})
    run_dir = str(tmp_path / "w_mm_unet")
    start_run_dir(run_dir, key, {"model": "w_mm_unet"})
    (tmp_path / "w_mm_unet" / "fold_0").mkdir()
    (tmp_path / "w_mm_unet" / "fold_0" / "metrics.json").write_text(json.dumps({"cache_key": key, "fold": 0}))
    (tmp_path / "w_mm_unet" / "summary.json").write_text(json.dumps({"cache_key": key}))
    assert finished_fold(os.path.join(run_dir, "fold_0"), key)["fold"] == 0
    assert reusable_summary(run_dir, key) == {"cache_key": key}
    assert reusable_summary(run_dir, "other") is None and finished_fold(os.path.join(run_dir, "fold_0"), "x") is None

    # The same key keeps the folder (resume); another key moves it aside, nothing is deleted.
    start_run_dir(run_dir, key, {})
    assert (tmp_path / "w_mm_unet" / "fold_0" / "metrics.json").is_file()
    start_run_dir(run_dir, "another", {})
    lines = list(progress)
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("w_mm_unet.replaced-")]
    assert len(moved) == 1 and (moved[0] / "fold_0" / "metrics.json").is_file()
    assert not (tmp_path / "w_mm_unet" / "fold_0").exists() and "moved them to" in lines[0]


def _write_predictions(path: Path, rows):
    path.mkdir(parents=True)
    with (path / "predictions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "image_id", "patient_id", "label", "probability_malignant", "prediction"])
        writer.writerows(rows)


def test_fold_ensemble_is_the_majority_of_the_fold_votes(tmp_path):
    # Patients a (benign) and b (malignant), one image each; three fold models.
    votes = [(0, 1), (1, 1), (0, 0)]  # fold k's predictions for a and b
    for k, (a, b) in enumerate(votes):
        _write_predictions(tmp_path / f"fold_{k}", [
            ["val", "v", "v", 0, "0.1", 0],
            ["test", "a1", "a", 0, f"{0.2 + 0.5 * a:.2f}", a],
            ["test", "b1", "b", 1, f"{0.3 + 0.5 * b:.2f}", b],
        ])
    metrics = fold_ensemble(str(tmp_path))
    # a: votes 0, 1, 0 -> benign (right); b: votes 1, 1, 0 -> malignant (right).
    assert metrics["accuracy"] == 1.0 and metrics["sensitivity"] == 1.0 and metrics["specificity"] == 1.0
    _write_predictions(tmp_path / "fold_3", [["test", "c1", "c", 1, "0.9", 1]])
    assert fold_ensemble(str(tmp_path)) is None  # the folds no longer share their test images


# --------------------------------------------------------------------------- the command line


@pytest.mark.slow
def test_mff_chain_writes_the_report_and_reuses_its_steps(tmp_path):
    first = _run(tmp_path, "--model", "mff")
    root = tmp_path / "runs" / "phantom_64px-quick"
    assert "== step 1/2: w_mm_unet" in first and "== step 2/2: mff" in first
    assert "w_mm_unet fold 4 (5/5) epoch" in first and "mff fold 4 (5/5) epoch" in first
    assert "left" in first  # time left is shown
    segmentation = json.loads((root / "w_mm_unet" / "summary.json").read_text())
    classification = json.loads((root / "mff" / "summary.json").read_text())
    assert classification["crop"]["crop"] == "predicted"
    assert classification["crop"]["masks"] == str(root / "w_mm_unet" / "predicted_masks.npz")
    assert len(segmentation["dice"]["values"]) == 5 and len(classification["accuracy"]["values"]) == 5

    report = (root / "report.md").read_text()
    assert report.splitlines()[2].startswith("> **SYNTHETIC PHANTOM")
    assert "## Table 1" in report and "W-MM-U-Net (automatic)" in report
    assert "## Table 2" in report and "| Cropped image (B-mode + SE-mode) | W-MM-U-Net | MFF (EmbraceNet) |" in report
    dice = segmentation["dice"]
    assert f"**{100 * dice['mean']:.1f} ± {100 * dice['sd']:.1f} ({100 * segmentation['fold_union']['dice']:.1f})**" \
        in report  # the report's numbers are the run's
    assert "--model mff" in report and "CPU cores" in report and "Backbone weights" in report
    fingerprint = segmentation["source_fingerprint"]
    assert fingerprint == classification["source_fingerprint"] and fingerprint["source"] == "phantom"
    assert f"- **Source**: phantom {fingerprint['digest']}:" in report
    for figure in ("fig5_segmentation.png", "fig6_roc.png"):
        assert (root / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    second = _run(tmp_path, "--model", "mff")
    assert "w_mm_unet: reusing the finished run" in second and "mff: reusing the finished run" in second
    assert " epoch 1/" not in second
    protocol = json.loads((root / "protocol.json").read_text())
    assert {protocol["steps"][name]["status"] for name in ("w_mm_unet", "mff")} == {"reused"}

    # Export alone, from the trained experiment: SavedModels and their record.
    exported = tmp_path / "exported"
    out = _run(tmp_path, "--export", str(exported))
    assert f"Exporting {root} to {exported}" in out and " epoch 1/" not in out
    record = json.loads((exported / "export.json").read_text())
    assert set(record["signatures"]) == {"segmenter", "classifier", "cad_pipeline"} and record["synthetic"] is True
    assert (exported / "cad_pipeline" / "saved_model.pb").is_file()
    assert (root / "training_curves.png").is_file() and (root / "confusion_matrices.png").is_file()

    # A new patient's files through `tf-bimodal predict`: BUSI's RGB PNGs of grey content,
    # B-mode only, their masks beside them skipped, and a corrupt file that fails alone.
    scans = tmp_path / "scans"
    scans.mkdir()
    busi = BUSI_SAMPLE / "Dataset_BUSI_with_GT" / "malignant"
    for name in ("malignant (1).png", "malignant (1)_mask.png", "malignant (2).png"):
        if busi.is_dir():
            shutil.copy(busi / name, scans / name)
        else:  # without the shared BUSI sample: RGB PNGs of grey content, as BUSI's
            grey = np.random.default_rng(len(name)).integers(0, 255, (90, 120), dtype=np.uint8)
            cv2.imwrite(str(scans / name), np.repeat(grey[..., None], 3, axis=-1))
    (scans / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    predicted = subprocess.run(
        [sys.executable, "-m", "tf_bimodal", "predict", str(exported), "--folder", str(scans), "--output",
         str(tmp_path / "predictions"), "--no-progress"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert predicted.returncode == 1, predicted.stdout[-2000:] + predicted.stderr[-2000:]  # one case failed
    rows = {row["id"]: row for row in csv.DictReader((tmp_path / "predictions" / "predictions.csv").open())}
    assert set(rows) == {"malignant_1", "malignant_2", "corrupt"}
    assert rows["corrupt"]["status"] == "error" and "corrupt.png" in rows["corrupt"]["error"]
    for name in ("malignant_1", "malignant_2"):
        assert rows[name]["status"] == "ok" and rows[name]["modalities"] == "bmode"
        assert (tmp_path / "predictions" / f"{name}_overlay.png").is_file()
    assert "SYNTHETIC PHANTOM MODEL" in predicted.stdout

    # Manual crops need no segmentation: a new step, the W-MM-U-Net one is not asked for.
    third = _run(tmp_path, "--model", "vgg16_semode", "--crop", "manual")
    assert "== step 1/1: vgg16_semode_crop_manual" in third and "w_mm_unet" not in third.split("Report:")[0]


@pytest.mark.slow
def test_a_killed_run_resumes_without_redoing_finished_folds(tmp_path):
    process = subprocess.Popen(_command(tmp_path, "--model", "w_mm_unet"), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    root = tmp_path / "runs" / "phantom_64px-quick" / "w_mm_unet"
    seen = []
    deadline = time.time() + 600
    try:
        for line in process.stdout:
            seen.append(line)
            if "w_mm_unet fold 1 (2/5) epoch 1/3" in line:
                break
            assert time.time() < deadline, "no progress line of fold 1"
        fold1_finished_at_kill = (root / "fold_1" / "metrics.json").exists()
        process.send_signal(signal.SIGKILL)  # a real kill, no chance to clean up
    finally:
        process.kill()
        process.wait()
    assert not fold1_finished_at_kill
    assert process.returncode == -signal.SIGKILL
    fold0 = root / "fold_0" / "metrics.json"
    fold0_bytes, fold0_mtime = fold0.read_bytes(), fold0.stat().st_mtime_ns
    assert (root / "fold_1" / "backup").is_dir() and not (root / "summary.json").exists()

    second = _run(tmp_path, "--model", "w_mm_unet")
    assert "w_mm_unet fold 0 (1/5): finished earlier, reusing" in second
    assert "w_mm_unet fold 0 (1/5) epoch" not in second
    assert "w_mm_unet fold 1 (2/5): resumed an interrupted fit at epoch" in second
    assert fold0.read_bytes() == fold0_bytes and fold0.stat().st_mtime_ns == fold0_mtime

    summary = json.loads((root / "summary.json").read_text())
    assert summary["timing"]["reused_folds"] == [0]
    assert [fold["fold"] for fold in summary["folds"]] == [0, 1, 2, 3, 4]
    assert summary["folds"][1]["resumed_from_epoch"] in (2, 3) and summary["folds"][1]["epochs_run"] == 3
    assert summary["folds"][2]["resumed_from_epoch"] is None
    assert not (root / "fold_1" / "backup").exists()
    history = list(csv.DictReader((root / "fold_1" / "history.csv").open()))
    assert [int(row["epoch"]) for row in history] == [0, 1, 2]  # one history across the two processes
    assert (tmp_path / "runs" / "phantom_64px-quick" / "report.md").is_file()


@pytest.mark.slow
def test_grid_search_request_is_reported(tmp_path):
    out = _run(tmp_path, "--model", "grid_search")
    root = tmp_path / "runs" / "phantom_64px-quick"
    summary = json.loads((root / "grid_search" / "summary.json").read_text())
    assert set(summary["models"]) == {"unet_bmode", "w_mm_unet"}
    report = (root / "report.md").read_text()
    assert "## Grid search (§3.4, Table S4)" in report and "| learning rate | batch | loss | unet_bmode | w_mm_unet |" in report
    chosen = summary["models"]["w_mm_unet"]["chosen"]
    assert f"**{100 * chosen['val_dice']:.1f}**" in report
    assert len([line for line in report.splitlines() if line.startswith("| 0.01 |") or line.startswith("| 0.001 |")]) == 4
    assert "Report:" in out
