"""benchmarks/gpu_check.py: its tiny mode end to end on the CPU, its budget rules and its estimate."""

from __future__ import annotations

import datetime
import json
import math
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, load_script

SCRIPT = REPO_ROOT / "benchmarks" / "gpu_check.py"


gpu_check = load_script(SCRIPT)


TINY_RUN = os.environ.get("TF_BIMODAL_GPU_CHECK_TINY") == "1"
"""The whole ``--tiny`` run costs about 220 CPU-seconds (12 step settings, a batch search and a
two-fold run, each in its own process): it runs when ``TF_BIMODAL_GPU_CHECK_TINY=1`` is set,
so that the default suite stays short; its budget rules and estimate are tested always."""


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
         "--budget-s", "600"],  # about 100 s on 2 idle cores; the budget only bites on a crowded machine
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
def test_tiny_run_measures_every_precision_and_xla_setting(tiny_report):
    report, _ = tiny_report
    settings = report["training_steps"]["settings"]
    keys = [(s["model"], s["precision"], s["xla"]) for s in settings]
    expected = {(m, p, x) for m in ("w_mm_unet", "mff") for p in ("float32", "mixed_bfloat16", "mixed_float16")
                for x in (False, True)}
    assert len(keys) == 12 and set(keys) == expected
    for setting in settings:
        assert setting["status"] in ("ok", "error"), setting
        if setting["status"] == "error":
            assert setting["error"], setting
            continue
        assert _positive(setting["images_per_second"]) and _positive(setting["train_tflops_per_second"]), setting
        assert _positive(setting["forward_gflops_per_example"]) and _positive(setting["peak_memory_gib"]), setting
        assert 0 < setting["share_of_matmul_peak"] <= 1.5, setting
        assert setting["matmul_peak_key"] == {"float32": "float32", "mixed_bfloat16": "bfloat16",
                                              "mixed_float16": "float16"}[setting["precision"]]
        assert setting["image_size"] == 32 and setting["steps_timed"] >= 1
        if setting["precision"] == "mixed_float16":
            assert setting["loss_scale_optimizer"] is True
    by_key = dict(zip(keys, settings))
    for model in ("w_mm_unet", "mff"):  # the package's default setting must run
        assert by_key[(model, "float32", False)]["status"] == "ok"
        assert by_key[(model, "float32", False)]["jit_compile"] is False


@pytest.mark.slow
def test_tiny_run_finds_a_batch_and_proves_the_fold_and_export(tiny_report):
    report, folder = tiny_report
    searches = report["max_batch"]["models"]
    assert set(searches) == {"w_mm_unet", "mff"}
    for model, search in searches.items():
        assert search["precision"] in ("float32", "mixed_bfloat16", "mixed_float16"), search
        if search["status"] == "error":  # killed at the deadline on a crowded machine: said so
            assert search["error"], search
            continue
        assert search["largest_fitting_batch"] >= report["max_batch"]["start"][model], search
        assert all(t["fits"] for t in search["tries"][:-1]) and search["stopped_by"], search
        assert all(_positive(t["peak_memory_gib"]) for t in search["tries"] if t["fits"]), search
    fold = report["end_to_end_fold"]
    assert fold["status"] == "ok", fold
    assert fold["preset"] == "quick" and fold["folds"] == 2
    assert set(fold["stages"]) == {"data", "train_predict", "export", "serve"}
    assert [step["name"] for step in fold["steps"]] == ["w_mm_unet", "mff"]
    assert fold["predictions"] == {"w_mm_unet_masks": True, "mff_fold_predictions": True}
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
    default = estimate["estimates"]["package default (float32, no XLA)"]
    assert default["status"] == "ok"
    hours = default["hours"]
    assert all(_positive(hours[key]) for key in ("table1", "table2", "grid_search", "total"))
    assert math.isclose(hours["total"], hours["table1"] + hours["table2"] + hours["grid_search"])
    assert len(default["table1_hours_by_model"]) == 5 and len(default["table2_hours_by_run"]) == 9
    assert any("tiny mode" in line for line in estimate["assumptions"])


def test_settings_that_would_overrun_the_budget_are_skipped(monkeypatch):
    sizes = gpu_check.SIZES["full"]
    tasks = gpu_check.step_specs(sizes, "auto")
    ran = []

    def fake_run_job(job_tasks, timeout):
        ran.append(job_tasks[0]["id"])
        return {job_tasks[0]["id"]: {**gpu_check._known(job_tasks[0]), "status": "ok", "task_seconds": 50.0,
                                     "train_tflops_per_second": 0.5}}

    left = iter([500.0, 400.0, 120.0, 100.0] + [30.0] * 20)  # seconds the steps may still use, call by call
    budget = gpu_check.Budget(450.0, gpu_check.PARTS)
    monkeypatch.setattr(budget, "allowance", lambda part=None: next(left))
    monkeypatch.setattr(gpu_check, "run_job", fake_run_job)
    records = gpu_check.run_steps(tasks, sizes, budget)
    assert set(records) == {task["id"] for task in tasks}
    assert ran == [tasks[0]["id"], tasks[1]["id"], tasks[2]["id"], tasks[3]["id"]]
    skipped = [records[task["id"]] for task in tasks[4:]]
    assert all(record["status"] == "skipped" and record["reason"].startswith("budget") for record in skipped)
    settings = gpu_check.ordered_settings(records, {"float32": 1.0, "bfloat16": 2.0, "float16": 2.0})
    assert len(settings) == 12
    shares = {(s["model"], s["precision"], s["xla"]): s.get("share_of_matmul_peak") for s in settings}
    assert shares[("mff", "float32", False)] == 0.5 and shares[("w_mm_unet", "mixed_bfloat16", False)] == 0.25
    assert shares[("mff", "mixed_float16", True)] is None  # skipped


def test_budget_holds_back_the_later_parts_shares():
    budget = gpu_check.Budget(1000.0, gpu_check.PARTS)
    probe = budget.allowance("probe")
    fold = budget.allowance("end_to_end")
    assert 1000 * gpu_check.BUDGET_SHARES["probe"] - 10 < probe < 1000 * gpu_check.BUDGET_SHARES["probe"]
    assert 990 < fold <= 1000
    only_fold = gpu_check.Budget(1000.0, ["probe", "end_to_end"])
    assert only_fold.allowance("probe") < 1000 * 0.2


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


def test_estimate_follows_the_stated_rule():
    settings = [
        {"model": "w_mm_unet", "precision": "float32", "xla": False, "status": "ok", "batch": 16,
         "examples_per_second": 10.0, "forward_gflops_per_example": 1000.0},
        {"model": "mff", "precision": "float32", "xla": False, "status": "ok", "batch": 32,
         "examples_per_second": 20.0, "forward_gflops_per_example": 140.0},
        {"model": "mff", "precision": "mixed_bfloat16", "xla": True, "status": "ok", "batch": 32,
         "examples_per_second": 40.0, "forward_gflops_per_example": 140.0},
    ]
    probe = {"forward_gflops_per_image": {"unet_bmode": 250.0, "unet_semode": 250.0}}
    estimate = gpu_check.estimate_protocol(settings, probe, None, "paper", tiny=False)
    default = estimate["estimates"]["package default (float32, no XLA)"]
    # Paper preset: 100 segmentation epochs, 50 classification epochs, 5 folds, 137/34/41 pairs.
    wmm_fold = 100 * (137 + 34 / 3) / 10.0 + 41 / 3 / 10.0
    unet_fold = 100 * (137 + 34 / 3) / 40.0 + 41 / 3 / 40.0  # 4x fewer FLOPs: 4x the rate
    assert math.isclose(default["table1_hours_by_model"]["w_mm_unet"], 5 * wmm_fold / 3600)
    assert math.isclose(default["table1_hours_by_model"]["unet_bmode"], 5 * unet_fold / 3600)
    mff_fold = 50 * (137 + 34 / 3) / 20.0 + 41 / 3 / 20.0
    stack_fold = 50 * (137 + 34 / 3) / 40.0 + 41 / 3 / 40.0  # one VGG-16 pass per pair
    assert math.isclose(default["table2_hours_by_run"]["mff"], 5 * mff_fold / 3600)
    assert math.isclose(default["table2_hours_by_run"]["mff_stack"], 5 * stack_fold / 3600)
    assert math.isclose(default["grid_search_hours_by_model"]["w_mm_unet"], 24 * wmm_fold / 3600)
    fastest = estimate["estimates"]["fastest measured setting"]
    assert fastest["classifier_setting"]["precision"] == "mixed_bfloat16"
    assert fastest["hours"]["table2"] < default["hours"]["table2"]
    missing = gpu_check.estimate_protocol(settings[1:], probe, None, "paper", tiny=False)
    assert missing["estimates"]["package default (float32, no XLA)"] == {"status": "not measured"}
