"""The experiment runner and the command line on a tiny phantom."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tf_bimodal.config import DataConfig, SplitConfig
from tf_bimodal.data import dataset as dataset_lib
from tf_bimodal.workflow import run

from helpers import REPO_ROOT, tiny_phantom

TINY_PHANTOM = tiny_phantom(seed=3)


def tiny_data(tmp_path):
    return DataConfig(source="phantom", image_size=64, data_dir=str(tmp_path / "tfds"), phantom=TINY_PHANTOM)


def test_builder_config_name_is_registered_name_for_defaults():
    assert dataset_lib.builder_config_name(DataConfig()) == "phantom"
    fingerprint = {"digest": "0123456789ab"}
    busi = DataConfig(source="busi", manual_dir="x")
    assert dataset_lib.builder_config_name(busi, fingerprint) == "busi_0123456789ab"
    assert dataset_lib.builder_config_name(DataConfig(source="busi", manual_dir="x", image_size=64),
                                           fingerprint) == "busi_64px_0123456789ab"
    name = dataset_lib.builder_config_name(DataConfig(image_size=64, phantom=TINY_PHANTOM))
    assert name.startswith("phantom_64px") and "seed3" in name


def test_run_describes_phantom_and_reuses_splits(tmp_path, no_network, progress):
    data = tiny_data(tmp_path)
    summary = run(data=data, split=SplitConfig(num_folds=4), output=str(tmp_path / "runs"))
    lines = list(progress)
    assert summary["synthetic"] is True
    assert summary["benign"]["patients"] == 4 and summary["malignant"]["patients"] == 4
    assert 16 <= summary["num_images"] <= 24
    assert summary["with_semode"] == summary["num_images"]
    assert any("SYNTHETIC PHANTOM" in line for line in lines)
    folder = tmp_path / "runs" / "data" / dataset_lib.builder_config_name(data)
    for name in ("summary.json", "splits.json", "examples.png"):
        assert (folder / name).is_file(), name
    for fold in summary["folds"]:
        assert fold["train"] + fold["val"] + fold["test"] == summary["num_images"]
    assert len({fold["test"] for fold in summary["folds"]}) == 1  # one held-out test set
    splits_before = (folder / "splits.json").read_text()
    run(data=data, split=SplitConfig(num_folds=4), output=str(tmp_path / "runs"))
    assert (folder / "splits.json").read_text() == splits_before


def test_index_skips_nothing(tmp_path):
    builder = dataset_lib.prepare(tiny_data(tmp_path))
    index = dataset_lib.index_dataset(builder)
    assert len(set(index.image_ids)) == len(index)
    assert set(index.labels.tolist()) == {0, 1}


def test_cli_rejects_missing_manual_dir(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run_experiments.py"), "--data", "busi", "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert "manual_dir" in result.stderr


@pytest.mark.slow
def test_cli_runs_busi_sample(tmp_path, busi_sample_dir):
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run_experiments.py"), "--data", "busi", "--manual-dir", busi_sample_dir,
         "--image-size", "96", "--data-dir", str(tmp_path / "tfds"), "--output", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = (tmp_path / "runs" / "data").glob("busi_96px_*")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["source_fingerprint"]["files"] >= 100  # 50 images and their masks
    assert summary["num_images"] == 50
    assert summary["with_semode"] == 0
    assert summary["synthetic"] is False


LIBRARY_LINES = ("I0000", "tf_record_dataset_op", "Downloading and preparing", "Generating splits",
                 "Generating train examples", "Shuffling", "\x1b[A", "[A")
"""What TensorFlow and TFDS print of their own while data are prepared and read."""


@pytest.mark.slow
def test_data_summary_names_an_image_without_its_mask_and_no_library_line_leaks(tmp_path, busi_sample_dir):
    """``tf-bimodal data`` on BUSI with one mask removed: the summary names that image's file and
    what each task leaves out; without ``--verbose`` no TensorFlow or TFDS line reaches the
    console, also with TF_CPP_MIN_LOG_LEVEL unset."""
    sample = tmp_path / "busi"
    shutil.copytree(busi_sample_dir, sample)
    (sample / "Dataset_BUSI_with_GT" / "benign" / "benign (12)_mask.png").unlink()
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "tf_bimodal", "data", "--data", "busi", "--manual-dir", str(sample), "--image-size",
         "32", "--data-dir", str(tmp_path / "tfds"), "--output", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout + result.stderr
    assert not [text for text in LIBRARY_LINES if text in console], console
    (line,) = [line for line in result.stdout.splitlines() if "left out of segmentation" in line]
    assert "1 image, no mask: benign/benign (12).png" in line
    assert "left out of classification: 10 images, normal" in result.stdout
    (folder,) = (tmp_path / "runs" / "data").glob("busi_32px_*")
    left_out = json.loads((folder / "summary.json").read_text())["left_out"]
    assert left_out["segmentation"] == {"reason": "no mask", "images": 1, "files": ["benign/benign (12).png"]}
    assert left_out["classification"]["images"] == 10


def test_readme_test_command_is_what_ci_runs():
    readme = (REPO_ROOT / "README.md").read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in readme.splitlines() if line.strip().startswith("python3 -m venv")]
    assert len(commands) == 2, commands
    test_command = [c for c in commands if "pytest" in c]
    assert len(test_command) == 1
    assert test_command[0] in ci


def test_run_rejects_unknown_model(tmp_path):
    with pytest.raises(ValueError, match="model must be one of"):
        run(model="resnet", data=tiny_data(tmp_path), output=str(tmp_path / "runs"))
