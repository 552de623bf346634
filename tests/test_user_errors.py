"""Every expected failure of the command line is one line ``error: ...`` (exit 2), never a
traceback, and is found before any work where the arguments alone tell it; ``--verbose``
adds the traceback. Walked through ``tf_bimodal.cli.main`` in this process."""

from __future__ import annotations

import errno
import json
import os
import socket

import numpy as np
import pytest
from PIL import Image

from tf_bimodal import cli
from tf_bimodal.config import CLASSIFICATION_MODELS, SEGMENTATION_MODELS


@pytest.fixture
def no_work(monkeypatch):
    """Any workflow step fails the test; the test's logging and absl's verbosity stay as they are."""
    import tensorflow_datasets as tfds
    from absl import logging as absl_logging

    from tf_bimodal import logs, workflow

    def work(*args, **kwargs):
        raise AssertionError("work started")

    for name in ("run", "plan", "describe_data", "report", "export", "evaluate", "resolve"):
        monkeypatch.setattr(workflow, name, work)
    monkeypatch.setattr(logs, "console", lambda *args, **kwargs: None)
    verbosity = absl_logging.get_verbosity()
    yield work
    absl_logging.set_verbosity(verbosity)
    tfds.display_progress_bar(True)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def png(path) -> str:
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(path)
    return str(path)


# --------------------------------------------------------------------------- arguments, before any work


@pytest.mark.parametrize("fold", ["9", "5", "-1"])
def test_a_fold_outside_the_folds_is_refused(tmp_path, capsys, no_work, fold):
    status = cli.main(["train", "w_mm_unet", "--fold", fold, "--output", str(tmp_path / "runs")])
    err = one_error_line(capsys)
    assert status == 2 and f"--fold {fold}" in err and "0 to 4" in err and "--num-folds 5" in err
    assert not (tmp_path / "runs").exists()


def test_the_folds_are_those_of_num_folds(capsys, no_work):
    cli.check_arguments(cli.build_parser().parse_args(["train", "w_mm_unet", "--fold", "7", "--split", "kfold",
                                                       "--num-folds", "10"]))
    assert cli.main(["train", "w_mm_unet", "--fold", "3", "--num-folds", "3"]) == 2
    assert "0 to 2" in one_error_line(capsys)


@pytest.mark.parametrize("argv, named", [
    (["train", "unet_bmode", "--crop", "manual"], "--crop manual"),
    (["train", "table2", "--crop", "none"], "--crop none"),
    (["plan", "w_mm_unet", "--crop", "manual"], "--crop manual"),
    (["train", "grid_search", "--fold", "1"], "--fold"),
    (["predict", "out", "--folder", "scans", "--semode", "se.png"], "--semode"),
    (["predict", "out", "--bmode", "b.png", "--boxes", "0 0 1 1;1 0 2 1"], "--boxes"),
])
def test_options_that_do_not_apply_are_refused(capsys, no_work, argv, named):
    assert cli.main(argv) == 2
    err = one_error_line(capsys)
    assert named in err and "does not apply" in err


def test_run_experiments_refuses_them_too(capsys, no_work):
    assert cli.script_main(["--model", "w_mm_unet", "--crop", "manual"]) == 2
    assert "--crop manual" in one_error_line(capsys)


@pytest.mark.parametrize("argv", [
    ["data", "--output", "{file}"],
    ["train", "mff", "--output", "{file}"],
    ["report", "--output", "{file}"],
    ["export", "{file}"],
    ["train", "mff", "--export", "{file}"],
    ["predict", "{dir}", "--bmode", "b.png", "--output", "{file}"],
])
def test_an_output_folder_that_is_a_file_is_one_line(tmp_path, capsys, no_work, argv):
    taken = tmp_path / "results.txt"
    taken.write_text("not a folder")
    status = cli.main([arg.format(file=taken, dir=tmp_path) for arg in argv])
    assert status == 2 and str(taken) in one_error_line(capsys)


def test_train_help_lists_the_models_and_the_help_has_no_markup():
    train = next(action for action in cli.build_parser()._subparsers._group_actions).choices["train"]
    text = train.format_help()
    assert all(name in text for name in (*SEGMENTATION_MODELS, *CLASSIFICATION_MODELS))
    assert "::" not in cli.build_parser().format_help() and "--wait-for-lock" in text


# --------------------------------------------------------------------------- failures while working


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch, no_work):
    from tf_bimodal import workflow

    written = str(tmp_path / "runs" / "data" / "phantom" / "summary.json")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), written)

    monkeypatch.setattr(workflow, "describe_data", full)
    assert cli.main(["data", "--output", str(tmp_path / "runs")]) == 2
    err = one_error_line(capsys)
    assert "no space left" in err and written in err
    assert cli.main(["--verbose", "data", "--output", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.strip().splitlines()[-1].startswith("error: ")


def test_a_file_that_cannot_be_written_is_one_line(tmp_path, capsys, monkeypatch, no_work):
    from tf_bimodal import workflow

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/results/report.md")

    monkeypatch.setattr(workflow, "describe_data", denied)
    assert cli.main(["data"]) == 2
    assert one_error_line(capsys) == f"error: /results/report.md: {os.strerror(errno.EACCES)}\n"


def test_missing_paths_are_one_line(tmp_path, capsys, monkeypatch):
    from absl import logging as absl_logging

    from tf_bimodal import logs

    monkeypatch.setattr(logs, "console", lambda *args, **kwargs: None)
    verbosity = absl_logging.get_verbosity()
    missing = str(tmp_path / "nowhere")
    for argv in (["evaluate", missing, "--data", "phantom"],
                 ["predict", missing, "--bmode", "b.png", "--output", str(tmp_path / "p")],
                 ["train", "unet_bmode", "--preset", "quick", "--config", missing + ".toml",
                  "--output", str(tmp_path / "runs")],
                 ["report", "--output", missing]):
        assert cli.main(argv) == 2, argv
        assert "nowhere" in one_error_line(capsys)
    absl_logging.set_verbosity(verbosity)


def test_an_incomplete_export_is_one_line(tmp_path, capsys, monkeypatch):
    """An export folder whose ``cad_pipeline/`` is gone: whatever the loader raises for it is
    told in one line (exit 2), not as a traceback."""
    from absl import logging as absl_logging

    from tf_bimodal import logs

    monkeypatch.setattr(logs, "console", lambda *args, **kwargs: None)
    verbosity = absl_logging.get_verbosity()
    export = tmp_path / "exported"
    export.mkdir()
    (export / "export.json").write_text(json.dumps({"parts": ["segmenter", "classifier", "cad_pipeline"]}))
    status = cli.main(["predict", str(export), "--bmode", png(tmp_path / "b.png"), "--output", str(tmp_path / "p")])
    absl_logging.set_verbosity(verbosity)
    assert status == 2 and "cad_pipeline" in one_error_line(capsys)


def test_required_backbone_weights_offline_are_one_line(tmp_path, capsys, monkeypatch, no_network):
    from absl import logging as absl_logging

    from tf_bimodal import logs, workflow
    from tf_bimodal.models.classification import backbone_weights

    def offline():
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: [Errno -2] Name or service not known")

    def no_protocol(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(backbone_weights, "fetch_imagenet_weights_file", offline)
    monkeypatch.setattr(workflow, "run_protocol", no_protocol)
    monkeypatch.setattr(logs, "console", lambda *args, **kwargs: None)
    verbosity = absl_logging.get_verbosity()
    status = cli.main(["train", "mff", "--preset", "quick", "--backbone-weights", "imagenet",
                       "--require-backbone-weights", "--output", str(tmp_path / "runs")])
    absl_logging.set_verbosity(verbosity)
    assert status == 2 and "--backbone-weights PATH" in one_error_line(capsys)


def test_an_experiment_in_use_is_one_line_naming_its_holder(tmp_path, capsys, monkeypatch):
    """A live run (here: this test's parent process) holds the experiment's lock: a second
    run stops before reading the data, naming the holder's host and pid."""
    from absl import logging as absl_logging

    from tf_bimodal import logs, workflow
    from tf_bimodal.locks import LOCK_FILE

    def no_data(*args, **kwargs):
        raise AssertionError("the data were read")

    monkeypatch.setattr(workflow, "experiment_data_for", no_data)
    monkeypatch.setattr(logs, "console", lambda *args, **kwargs: None)
    verbosity = absl_logging.get_verbosity()
    experiment = tmp_path / "runs" / "phantom-quick"
    experiment.mkdir(parents=True)
    holder = {"host": socket.gethostname(), "pid": os.getppid(), "started": "2026-12-03 10:00:00",
              "command": "tf-bimodal train mff"}
    (experiment / LOCK_FILE).write_text(json.dumps(holder))
    status = cli.main(["train", "unet_bmode", "--preset", "quick", "--output", str(tmp_path / "runs")])
    absl_logging.set_verbosity(verbosity)
    err = one_error_line(capsys)
    assert status == 2 and f"pid {os.getppid()}" in err and socket.gethostname() in err and "--wait-for-lock" in err
    assert (experiment / LOCK_FILE).is_file()  # the holder's lock is left alone
