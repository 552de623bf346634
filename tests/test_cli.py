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
