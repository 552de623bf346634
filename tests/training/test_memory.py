"""The micro-batch rule, the memory estimate, the plan and accumulation end to end (§3.4)."""

from __future__ import annotations

import json

import keras
import pytest

from tf_bimodal.config import DataConfig, SplitConfig, resolve_experiment
from tf_bimodal.training import memory
from tf_bimodal.training.memory import DoesNotFit, MemoryProfile, plan_batch

from helpers import tiny_phantom

GIB = 2**30
TINY_PHANTOM = tiny_phantom(seed=3, max_pairs=2)


def _profile(fixed_gib, per_image_gib):
    return MemoryProfile(parameters=1, fixed_bytes=int(fixed_gib * GIB), per_image_bytes=int(per_image_gib * GIB),
                         activation_bytes=1)


def test_the_rule_keeps_a_batch_that_fits():
    plan = plan_batch(32, 1, _profile(2, 0.1), 40 * GIB)
    assert (plan.micro_batch, plan.accumulation_steps, plan.source) == (32, 1, "batch")
    assert plan.effective_batch == 32


def test_the_rule_takes_the_largest_divisor_that_fits():
    # 0.8 x 40 GiB = 32 GiB: (32 - 2) / 3 = 10 images fit, the largest divisor of 32 below is 8
    plan = plan_batch(32, 1, _profile(2, 3), 40 * GIB)
    assert (plan.micro_batch, plan.accumulation_steps, plan.source) == (8, 4, "rule")
    assert plan.effective_batch == 32 and plan.estimated_peak_bytes == int(2 * GIB + 8 * int(3 * GIB))
    assert "4 accumulated micro-batches of 8" in plan.describe()


def test_the_rule_is_per_replica():
    plan = plan_batch(32, 4, _profile(2, 3), 40 * GIB)  # 8 images per replica fit in one pass
    assert (plan.micro_batch, plan.accumulation_steps, plan.global_micro_batch) == (8, 1, 32)
    plan = plan_batch(32, 2, _profile(2, 3), 40 * GIB)  # 16 per replica, 10 fit: 8 x 2 passes
    assert (plan.micro_batch, plan.accumulation_steps, plan.global_micro_batch, plan.effective_batch) == (8, 2, 16, 32)


def test_an_override_wins_and_never_exceeds_the_batch():
    assert plan_batch(32, 1, _profile(2, 3), 40 * GIB, micro_batch=2).accumulation_steps == 16
    assert plan_batch(32, 1, _profile(2, 3), 40 * GIB, micro_batch=2).source == "override"
    assert plan_batch(8, 1, None, None, micro_batch=64).micro_batch == 8
    assert plan_batch(8, 1).accumulation_steps == 1


def test_a_model_that_does_not_fit_says_what_would():
    with pytest.raises(DoesNotFit, match="w_mm_unet: one training image needs about 26.0 GiB") as caught:
        plan_batch(32, 1, _profile(2, 24), 24 * GIB, model_name="w_mm_unet")
    for remedy in ("mixed_bfloat16", "stackwise_num_filters", "image_size"):
        assert remedy in str(caught.value)
    assert isinstance(caught.value, ValueError)  # one error line on the command line


def test_layer_outputs_are_counted_once_per_call_of_a_nested_model():
    inner_input = keras.Input((4, 4, 1))
    inner = keras.Model(inner_input, keras.layers.Conv2D(2, 1)(inner_input))  # 32 elements per call
    a, b = keras.Input((4, 4, 1)), keras.Input((4, 4, 1))
    merged = keras.layers.Concatenate()([inner(a), inner(b)])  # 64
    outer = keras.Model([a, b], keras.layers.Dense(1)(keras.layers.Flatten()(merged)))  # + 64 + 1
    profile = memory.estimate_training_memory(outer, slots=2, accumulate=False)
    assert profile.activation_bytes == 4 * (32 + 32 + 64 + 64 + 1)
    assert profile.parameters == outer.count_params()
    assert profile.fixed_bytes == outer.count_params() * 4 * 4 + memory.RUNTIME_BYTES
    assert profile.per_image_bytes == int(profile.activation_bytes * memory.ACTIVATION_FACTORS["classification"])


def test_the_paper_segmenter_estimate_follows_its_width():
    from tf_bimodal.config import SEGMENTATION_PRESETS
    from tf_bimodal.models.segmentation.factory import build_segmenter

    config = SEGMENTATION_PRESETS["paper"]
    narrow = memory.estimate_training_memory(build_segmenter("unet_bmode", config, 96))
    keras.backend.clear_session()
    wide_config = config.__class__(**{**config.__dict__, "stackwise_num_filters": (64, 128, 256, 512),
                                      "bottleneck_filters": 1024})
    wide = memory.estimate_training_memory(build_segmenter("unet_bmode", wide_config, 96))
    assert 1.8 < wide.activation_bytes / narrow.activation_bytes < 2.2
    assert narrow.per_image_bytes == int(narrow.activation_bytes * memory.ACTIVATION_FACTORS["segmentation"])
    assert 3.5 < wide.parameters / narrow.parameters < 4.5


def test_micro_batch_setting_is_checked():
    experiment = resolve_experiment("quick", overrides=["runtime.micro_batch=2"])
    assert experiment.runtime.micro_batch == 2
    with pytest.raises(ValueError, match="micro_batch must be >= 1"):
        resolve_experiment("quick", overrides=["runtime.micro_batch=0"])


def test_plan_refuses_a_model_that_does_not_fit_before_any_data_work(tmp_path, monkeypatch, capsys):
    from tf_bimodal import cli, workflow

    monkeypatch.setattr(memory, "device_memory", lambda gpus=None: {"device": "gpu", "bytes": GIB, "source": "test"})
    monkeypatch.setattr(memory, "_DEVICE_MEMORY", {})
    monkeypatch.setattr(workflow, "describe_data", lambda *a, **k: pytest.fail("data work before the fit check"))
    code = cli.main(["plan", "unet_bmode", "--preset", "quick", "--output", str(tmp_path / "runs"),
                     "--set", "segmentation.image_size=256", "--set", "segmentation.stackwise_num_filters=(64,128)"])
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: unet_bmode: one training image needs about"), error
    assert not (tmp_path / "runs").exists()


def test_plan_and_accumulation_end_to_end_at_the_quick_preset(tmp_path, progress):
    """`plan` then `train` at the quick preset with runtime.micro_batch=2: the segmenter's and
    the classifier's folds step once per 4 accumulated micro-batches of 2."""
    from tf_bimodal.workflow import plan, run

    data = DataConfig(source="phantom", image_size=64, data_dir=str(tmp_path / "tfds"), phantom=TINY_PHANTOM)
    split = SplitConfig(num_folds=2)
    experiment = resolve_experiment("quick", overrides=["runtime.micro_batch=2", "runtime.tensorboard=false",
                                                        "segmentation.epochs=1", "classification.epochs=1"])
    output = str(tmp_path / "runs")
    record = plan("mff", data, split, experiment, output=output)
    assert [step["step"] for step in record["steps"]] == ["w_mm_unet", "mff"]
    for step in record["steps"]:
        assert step["batch_plan"]["micro_batch"] == 2 and step["batch_plan"]["accumulation_steps"] == 4
        assert step["micro_step_seconds"] > 0 and step["estimated_seconds"] > 0
    assert record["estimated_seconds"] == pytest.approx(sum(s["estimated_seconds"] for s in record["steps"]))
    plan_files = list((tmp_path / "runs").glob("*-quick/plan.json"))
    assert len(plan_files) == 1 and json.loads(plan_files[0].read_text())["request"] == "mff"
    assert any("Estimated time of mff" in line for line in progress)

    run("mff", data, split, experiment, output=output)
    root = plan_files[0].parent
    for step in ("w_mm_unet", "mff"):
        metrics = sorted(root.glob(f"{step}/fold_*/metrics.json"))
        assert len(metrics) == 2, step
        for path in metrics:
            batch_plan = json.loads(path.read_text())["batch_plan"]
            assert (batch_plan["micro_batch"], batch_plan["accumulation_steps"], batch_plan["effective_batch"]) \
                == (2, 4, 8)
