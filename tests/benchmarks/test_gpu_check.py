"""benchmarks/gpu_check.py: its tiny mode end to end on the CPU, its budget rules and its estimate."""

from __future__ import annotations

import datetime
import json
import math
import os
import subprocess
import sys

import pytest

from helpers import REPO_ROOT, load_script

SCRIPT = REPO_ROOT / "benchmarks" / "gpu_check.py"


gpu_check = load_script(SCRIPT)


TINY_RUN = os.environ.get("TF_BIMODAL_GPU_CHECK_TINY") == "1"
"""The whole ``--tiny`` run costs a few CPU-minutes (20 step settings in two workers and a
two-fold run beside them): it runs when ``TF_BIMODAL_GPU_CHECK_TINY=1`` is set, so that the
default suite stays short; its budget rules and estimate are tested always."""


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    if not TINY_RUN:
        pytest.skip("the whole tiny run of gpu_check.py: set TF_BIMODAL_GPU_CHECK_TINY=1")
    """The JSON of one ``--tiny`` run on the CPU (GPUs hidden), into a temporary folder."""
    folder = tmp_path_factory.mktemp("gpu_check")
    path = folder / "gpu.json"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--json", str(path), "--workdir", str(folder / "work"),
         "--budget-s", "600"],  # about 380 s on 2 cores shared with another job; the budget only bites on a crowded machine
        capture_output=True, text=True, timeout=900, env=env, cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Wrote" in done.stdout
    return json.loads(path.read_text()), folder


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_tiny_run_records_device_versions_and_matmul_peaks(tiny_report):
    report, _ = tiny_report
    assert report["mode"] == "tiny" and report["preset"] == "quick"
    assert report["device"] == "CPU (tiny mode)"
    datetime.datetime.fromisoformat(report["date"])
    assert report["versions"]["tensorflow"] and report["versions"]["keras"] and report["versions"]["tf_bimodal"]
    assert isinstance(report["tensor_float_32_execution"], bool)
    peaks = report["matmul_peaks"]["tflops_per_second"]
    assert set(peaks) == {"float32", "float32_no_tf32", "bfloat16", "float16"}
    assert all(_positive(value) for value in peaks.values()), peaks
    assert report["budget"]["elapsed_s"] <= report["budget"]["budget_s"] + 30


@pytest.mark.slow
def test_tiny_run_times_every_model_at_its_plan(tiny_report):
    report, _ = tiny_report
    steps = report["training_steps"]
    settings = steps["settings"]
    keys = [(s["model"], s["precision"], s["xla"]) for s in settings]
    assert keys == gpu_check.step_order() and len(keys) == 20
    assert {model for model, _, _ in keys} == set(gpu_check.STEP_MODELS)
    assert steps["batch"] == 4 and steps["micro_batch"] == 2
    for setting in settings:
        if setting["status"] == "skipped":  # a crowded machine: the budget said so
            assert setting["reason"].startswith("budget"), setting
            continue
        assert setting["status"] == "ok", setting
        # The paper's batch of 32 stands at 4 here: two accumulated micro-batches of 2 per optimizer step.
        assert setting["batch"] == setting["effective_batch"] == 4, setting
        assert setting["micro_batch"] == 2 and setting["accumulation_steps"] == 2, setting
        assert setting["micro_batch"] * setting["accumulation_steps"] == setting["effective_batch"]
        assert setting["optimizer"].startswith("Accumulating"), setting
        assert setting["optimizer_steps_taken"] == setting["optimizer_steps_timed"] + 1 == 3, setting
        assert _positive(setting["images_per_second"]) and _positive(setting["examples_per_second"]), setting
        assert math.isclose(setting["examples_per_second"], 4 / setting["seconds_per_optimizer_step_median"])
        assert _positive(setting["peak_memory_gib"]) and _positive(setting["estimated_peak_memory_gib"]), setting
        assert setting["image_size"] == 32 and setting["jit_compile"] is False
        if setting["train_tflops_per_second"] is not None:
            assert setting["matmul_peak_key"] == {"float32": "float32", "mixed_bfloat16": "bfloat16"}[
                setting["precision"]]
            assert 0 < setting["share_of_matmul_peak"] <= 1.5, setting
    by_key = dict(zip(keys, settings, strict=True))
    for model in ("w_mm_unet", "mff"):  # first in the order: they must have run, with a FLOP count
        for precision in ("float32", "mixed_bfloat16"):
            setting = by_key[(model, precision, False)]
            assert setting["status"] == "ok", setting
            assert _positive(setting["forward_gflops_per_example"]), setting
            assert _positive(setting["train_tflops_per_second"]), setting
    assert by_key[("mff", "float32", False)]["images_per_second"] == pytest.approx(
        2 * by_key[("mff", "float32", False)]["examples_per_second"])


@pytest.mark.slow
def test_tiny_run_proves_the_fold_and_export(tiny_report):
    report, folder = tiny_report
    assert "max_batch" not in report
    fold = report["end_to_end_fold"]
    assert fold["status"] == "ok", fold
    assert fold["preset"] == "quick" and fold["folds"] == 2
    assert set(fold["stages"]) == {"data", "train_predict", "export", "serve"}
    assert [step["name"] for step in fold["steps"]] == ["w_mm_unet", "mff"]
    assert fold["predictions"] == {"w_mm_unet_masks": True, "mff_fold_predictions": True}
    assert fold["batch_plans"]
    for plan in fold["batch_plans"].values():  # the runners' own plans (quick preset: batch 8, fits in one pass)
        assert plan["effective_batch"] == plan["micro_batch"] * plan["accumulation_steps"] == 8, plan
    export = fold["export"]
    assert export["export_json"] is True
    assert {"segmenter", "classifier", "cad_pipeline"} <= set(export["saved_models"])
    assert all(_positive(size) for size in export["saved_models"].values())
    assert 0.0 <= fold["served_pair"]["p_malignant"] <= 1.0
    assert (folder / "work" / "export" / "cad_pipeline" / "saved_model.pb").is_file()


@pytest.mark.slow
def test_tiny_run_estimates_the_protocol(tiny_report):
    report, _ = tiny_report
    estimate = report["protocol_estimate"]
    for label in ("package default (float32, no XLA)", "fastest measured setting"):
        result = estimate["estimates"][label]
        assert result["status"] == "ok", result
        hours = result["hours"]
        assert all(_positive(hours[key]) for key in ("table1", "table2", "grid_search", "total"))
        assert math.isclose(hours["total"], hours["table1"] + hours["table2"] + hours["grid_search"])
        assert len(result["table1_hours_by_model"]) == 5 and len(result["table2_hours_by_run"]) == 9
        rates = result["rates_by_model"]
        assert rates["w_mm_unet"]["source"] == "measured" and rates["mff"]["source"] == "measured"
        assert rates["w_mm_unet_manual"]["source"].startswith(("measured on mm_unet", "W-MM-U-Net"))
        assert all(rate["global_micro_batch"] == 2 and rate["accumulation_steps"] == 2 for rate in rates.values())
    assert estimate["estimates"]["package default (float32, no XLA)"]["rates_by_model"]["mff"]["precision"] == \
        "float32"
    assert any("tiny mode" in line for line in estimate["assumptions"])


def test_step_order_puts_the_wanted_models_first():
    order = gpu_check.step_order()
    assert order[:4] == [("w_mm_unet", "float32", False), ("w_mm_unet", "mixed_bfloat16", False),
                         ("mff", "float32", False), ("mff", "mixed_bfloat16", False)]
    assert len(order) == len(set(order)) == 2 * len(gpu_check.STEP_MODELS)
    assert [precision for _, precision, _ in order[4:]] == ["float32"] * 8 + ["mixed_bfloat16"] * 8
    assert not any(xla for _, _, xla in order)
    with_xla = gpu_check.step_order(("mff", "unet_bmode"), ("float32",), xla=True)
    assert with_xla == [("mff", "float32", False), ("unet_bmode", "float32", False),
                        ("mff", "float32", True), ("unet_bmode", "float32", True)]
    specs = gpu_check.step_specs(gpu_check.SIZES["full"], "auto")
    assert [(s["model"], s["precision"], s["xla"]) for s in specs] == order
    assert all(s["batch"] is None and s["micro_batch"] is None and s["preset"] == "paper" for s in specs)


def test_settings_that_would_overrun_the_budget_are_skipped(monkeypatch):
    sizes = gpu_check.SIZES["full"]
    tasks = gpu_check.step_specs(sizes, "auto")
    workers = []

    def fake_run_job(job_tasks, timeout):
        """The first worker finishes two settings and dies in the third; the second finishes
        one and skips the next by its deadline, then is killed at the deadline in the one after."""
        workers.append([task["id"] for task in job_tasks])
        assert all(task["deadline_s"] == timeout - 5.0 and task["expected_s"] > 0 for task in job_tasks)
        records = {task["id"]: {**gpu_check._known(task), "status": "error", "oom": False, "error": "died"}
                   for task in job_tasks}
        done = 2 if len(workers) == 1 else 1
        for task in job_tasks[:done]:
            records[task["id"]] = {**gpu_check._known(task), "status": "ok", "task_seconds": 30.0,
                                   "train_tflops_per_second": 0.5}
        if len(workers) == 2:
            records[job_tasks[1]["id"]] = gpu_check._skipped("budget: ...", **gpu_check._known(job_tasks[1]))
            records[job_tasks[1]["id"]]["task_seconds"] = 0.0
        return records

    left = iter([400.0, 300.0, 20.0])  # seconds the steps may still use, call by call
    budget = gpu_check.Budget(450.0, gpu_check.PARTS)
    monkeypatch.setattr(budget, "allowance", lambda part=None: next(left))
    monkeypatch.setattr(gpu_check, "run_job", fake_run_job)
    records = gpu_check.run_steps(tasks, sizes, budget)
    ids = [task["id"] for task in tasks]
    assert workers == [ids, ids[3:]]  # a fresh worker for the settings after the one the first died in
    assert set(records) == set(ids)
    assert [records[i]["status"] for i in ids[:6]] == ["ok", "ok", "error", "ok", "skipped", "error"]
    assert all(records[i]["status"] == "skipped" and records[i]["reason"].startswith("budget") for i in ids[6:])
    settings = gpu_check.ordered_settings(tasks, records, {"float32": 1.0, "bfloat16": 2.0, "float16": 2.0})
    assert [(s["model"], s["precision"], s["xla"]) for s in settings] == gpu_check.step_order()
    assert settings[0]["share_of_matmul_peak"] == 0.5 and settings[1]["share_of_matmul_peak"] == 0.25
    assert settings[-1].get("share_of_matmul_peak") is None  # skipped


def test_a_worker_skips_a_setting_past_its_deadline(capsys):
    task = {"id": "s", "kind": "steps", "model": "w_mm_unet", "precision": "float32", "xla": False,
            "deadline_s": 1.0, "expected_s": 30.0}
    assert gpu_check.run_worker([task]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("RESULT "))
    record = json.loads(line[len("RESULT "):])["record"]
    assert record["status"] == "skipped" and record["reason"].startswith("budget: about 30 s needed")
    assert record["model"] == "w_mm_unet" and "task_seconds" in record


def test_budget_holds_back_the_later_parts_shares():
    assert gpu_check.PARTS == ("probe", "steps", "end_to_end")
    assert math.isclose(sum(gpu_check.BUDGET_SHARES.values()), 1.0)
    budget = gpu_check.Budget(1000.0, gpu_check.PARTS)
    probe = budget.allowance("probe")
    steps = budget.allowance("steps")
    fold = budget.allowance("end_to_end")
    assert 1000 * gpu_check.BUDGET_SHARES["probe"] - 10 < probe < 1000 * gpu_check.BUDGET_SHARES["probe"]
    assert 1000 * (1 - gpu_check.BUDGET_SHARES["end_to_end"]) - 10 < steps < 1000 * (
        1 - gpu_check.BUDGET_SHARES["end_to_end"])
    assert 990 < fold <= 1000
    only_fold = gpu_check.Budget(1000.0, ["probe", "end_to_end"])
    assert only_fold.allowance("probe") < 1000 * 0.2


def test_the_full_fold_takes_random_backbones_on_purpose():
    from tf_bimodal.config import resolve_experiment

    experiment = resolve_experiment("paper", overrides=list(gpu_check.FOLD_OVERRIDES["full"]))
    assert experiment.classification.backbone_weights == "none"
    assert experiment.classification.require_backbone_weights is False
    assert experiment.segmentation.epochs == 2 and experiment.classification.epochs == 2


def test_a_failing_task_is_recorded_and_the_next_still_runs():
    records = gpu_check.run_job([{"id": "a", "kind": "no_such_kind"},
                                 {"id": "b", "kind": "steps", "model": "unknown_model", "precision": "float32",
                                  "xla": False}], timeout=120)
    assert records["a"]["status"] == "error" and "no_such_kind" in records["a"]["error"]
    assert records["b"]["status"] == "error" and "unknown_model" in records["b"]["error"]
    assert records["b"]["model"] == "unknown_model" and records["b"]["oom"] is False


def test_a_worker_killed_at_its_deadline_leaves_an_error_record():
    records = gpu_check.run_job([gpu_check.probe_spec(gpu_check.SIZES["tiny"], "tiny")], timeout=1.0)
    assert records["probe"]["status"] == "error"
    assert "killed at the budget's deadline" in records["probe"]["error"]


def _setting(model, precision, xla, micro, steps, seconds, **extra):
    return {"model": model, "precision": precision, "xla": xla, "status": "ok", "micro_batch": micro,
            "accumulation_steps": steps, "global_micro_batch": micro, "effective_batch": micro * steps,
            "seconds_per_optimizer_step_median": seconds, "seconds_per_micro_step": seconds / steps,
            "examples_per_second": micro * steps / seconds, **extra}


def test_estimate_follows_the_stated_rule():
    settings = [
        _setting("w_mm_unet", "float32", False, 8, 4, 8.0, forward_gflops_per_example=1000.0),
        _setting("mff", "float32", False, 32, 1, 1.0, forward_gflops_per_example=140.0),
        _setting("mff", "mixed_bfloat16", True, 32, 1, 0.5, forward_gflops_per_example=140.0),
        _setting("vgg16_bmode", "float32", False, 32, 1, 0.4),
    ]
    probe = {"forward_gflops_per_image": {"unet_bmode": 250.0, "unet_semode": 250.0}}
    estimate = gpu_check.estimate_protocol(settings, probe, None, "paper", tiny=False)
    default = estimate["estimates"]["package default (float32, no XLA)"]
    # Paper preset: 100 segmentation epochs, 50 classification epochs, 5 folds, 137/34/41 pairs; an epoch
    # is ceil(pairs / micro-batch) passes of an optimizer step / accumulation steps each, validation and
    # test a third of that.
    wmm_fold = 100 * 2.0 * (18 + 5 / 3) + 2.0 * 6 / 3  # micro-batch 8: 18, 5 and 6 passes of 2 s
    unet_fold = 100 * 0.5 * (18 + 5 / 3) + 0.5 * 6 / 3  # 4x fewer FLOPs: a quarter of the time per pass
    assert math.isclose(default["table1_hours_by_model"]["w_mm_unet"], 5 * wmm_fold / 3600)
    assert math.isclose(default["table1_hours_by_model"]["unet_bmode"], 5 * unet_fold / 3600)
    assert math.isclose(default["table1_hours_by_model"]["w_mm_unet_manual"], 5 * wmm_fold / 3600)
    assert default["rates_by_model"]["w_mm_unet"]["source"] == "measured"
    assert default["rates_by_model"]["w_mm_unet_manual"]["source"] == "W-MM-U-Net's"  # MM-U-Net not measured
    mff_fold = 50 * 1.0 * (5 + 2 / 3) + 1.0 * 2 / 3  # micro-batch 32: 5, 2 and 2 passes of 1 s
    stack_fold = 50 * 0.5 * (5 + 2 / 3) + 0.5 * 2 / 3  # one VGG-16 pass per pair
    vgg_fold = 50 * 0.4 * (5 + 2 / 3) + 0.4 * 2 / 3  # measured
    assert math.isclose(default["table2_hours_by_run"]["mff"], 5 * mff_fold / 3600)
    assert math.isclose(default["table2_hours_by_run"]["mff_crop_none"], 5 * mff_fold / 3600)
    assert math.isclose(default["table2_hours_by_run"]["mff_stack"], 5 * stack_fold / 3600)
    assert math.isclose(default["table2_hours_by_run"]["vgg16_bmode"], 5 * vgg_fold / 3600)
    assert math.isclose(default["table2_hours_by_run"]["vgg16_semode"], 5 * vgg_fold / 3600)
    assert default["rates_by_model"]["vgg16_semode"]["source"] == "measured on vgg16_bmode (the same graph)"
    # Grid: 3 learning rates x 2 losses per batch; batch 4 runs in passes of 4 at half a pass of 8's time.
    batch4_fold = 100 * 1.0 * (35 + 9 / 3) + 1.0 * 11 / 3
    assert math.isclose(default["grid_search_hours_by_model"]["w_mm_unet"], 6 * (batch4_fold + 3 * wmm_fold) / 3600)
    hours = default["hours"]
    assert math.isclose(hours["total"], hours["table1"] + hours["table2"] + hours["grid_search"])
    fastest = estimate["estimates"]["fastest measured setting"]
    assert fastest["rates_by_model"]["mff"]["precision"] == "mixed_bfloat16"
    assert fastest["rates_by_model"]["mff"]["xla"] is True
    assert fastest["hours"]["table2"] < default["hours"]["table2"]
    missing = gpu_check.estimate_protocol(settings[1:], probe, None, "paper", tiny=False)
    assert missing["estimates"]["package default (float32, no XLA)"] == {"status": "not measured"}
