"""Commands that read an experiment find the one a results folder holds, whatever the default
preset (``report``, ``export``, ``predict`` and ``evaluate`` on a results folder); with several,
one line lists them and the options that pick one."""

from __future__ import annotations

import json
import os

import pytest

from tf_bimodal import cli
from tf_bimodal.config import DataConfig, SplitConfig, to_dict


def fake_experiment(output, preset: str, image_size: int = 32, num_folds: int = 2):
    """An experiment folder as ``train`` leaves it, as far as finding it goes: its
    ``protocol.json`` (data, folds, preset)."""
    data = DataConfig(image_size=image_size)
    name = "phantom" if image_size == 336 else f"phantom_{image_size}px"
    root = output / f"{name}-{preset}"
    root.mkdir(parents=True)
    (root / "protocol.json").write_text(json.dumps({"data": to_dict(data), "split": to_dict(SplitConfig(
        num_folds=num_folds)), "preset": preset, "steps": {}}))
    return root


@pytest.fixture
def read_calls(monkeypatch):
    """What ``report`` and ``export`` would read: ``[(what, experiment folder, data, split)]``."""
    from absl import logging as absl_logging

    from tf_bimodal import logs, workflow

    calls = []

    def data_for(data, split, experiment, output):
        calls.append(("data", data, split, experiment.name))
        return "resolved"

    monkeypatch.setattr(workflow, "experiment_data_for", data_for)
    monkeypatch.setattr(workflow, "write_report", lambda root, data, **kwargs: calls.append(("report", root, data)) or "r.md")
    monkeypatch.setattr(workflow, "export_experiment", lambda root, target, **kwargs: calls.append(
        ("export", root, target)) or {})
    monkeypatch.setattr(logs, "console", lambda *args, **kwargs: None)
    verbosity = absl_logging.get_verbosity()
    yield calls
    absl_logging.set_verbosity(verbosity)


def test_report_and_export_use_the_one_experiment_whatever_the_default_preset(tmp_path, read_calls):
    output = tmp_path / "runs"
    root = fake_experiment(output, "quick")
    assert cli.main(["report", "--output", str(output)]) == 0
    assert cli.main(["export", str(tmp_path / "out"), "--output", str(output)]) == 0
    (_, data, split, preset), report, export = read_calls
    assert report == ("report", str(root), "resolved") and preset == "quick"
    assert (data.image_size, split.num_folds) == (32, 2)  # the experiment's own data and folds
    assert export == ("export", str(root), str(tmp_path / "out"))


def test_several_experiments_are_listed_with_the_options_that_pick_one(tmp_path, capsys, read_calls):
    output = tmp_path / "runs"
    fake_experiment(output, "quick")
    fake_experiment(output, "cpu", image_size=64)
    for argv in (["report"], ["export", str(tmp_path / "out")]):
        assert cli.main([*argv, "--output", str(output)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "phantom_32px-quick" in err and "phantom_64px-cpu" in err, err
        assert "--preset" in err and "--data" in err
    assert cli.main(["report", "--output", str(output), "--preset", "cpu"]) == 0
    assert read_calls[-1][1] == str(output / "phantom_64px-cpu")
    assert cli.main(["report", "--output", str(output), "--image-size", "32"]) == 0
    assert read_calls[-1][1] == str(output / "phantom_32px-quick")


def test_an_experiment_that_is_not_there_lists_those_that_are(tmp_path, capsys, read_calls):
    output = tmp_path / "runs"
    fake_experiment(output, "quick")
    assert cli.main(["report", "--output", str(output), "--preset", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no experiment at ") and "phantom_32px-quick" in err and err.count("\n") == 1


def test_predict_and_evaluate_serve_the_one_experiment_of_a_results_folder(tmp_path, monkeypatch, read_calls):
    from tf_bimodal import workflow
    from tf_bimodal.export import predict as predict_lib

    output = tmp_path / "runs"
    root = fake_experiment(output, "quick")
    served = []
    monkeypatch.setattr(predict_lib, "predict", lambda source, *args, **kwargs: served.append(source) or
                        {"failed": 0})
    monkeypatch.setattr(workflow, "evaluate_export", lambda source, *args: served.append(source) or {})
    assert cli.main(["predict", str(output), "--bmode", "b.png", "--output", str(tmp_path / "p")]) == 0
    assert cli.main(["evaluate", str(output), "--data", "phantom"]) == 0
    assert served == [str(root), str(root)]
    assert workflow.export_source(str(root)) == str(root)  # an experiment folder as it is
    fake_experiment(output, "cpu")
    with pytest.raises(ValueError, match="holds 2 experiments"):
        workflow.export_source(str(output))


def test_the_experiment_folders_of_a_results_folder(tmp_path):
    from tf_bimodal import layout

    output = tmp_path / "runs"
    root = fake_experiment(output, "quick")
    (output / "data" / "phantom_32px").mkdir(parents=True)  # the data summary, no experiment
    (output / "notes-2026").mkdir()  # no protocol, no folds
    assert layout.experiment_folders(str(output)) == [str(root)]
    assert layout.experiment_folders(str(tmp_path / "nowhere")) == []
    assert (layout.dataset_of_experiment(str(root)), layout.preset_of_experiment(str(root))) == (
        "phantom_32px", "quick")
    assert os.path.basename(root) == "phantom_32px-quick"
