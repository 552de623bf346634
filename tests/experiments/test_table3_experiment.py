"""Table 3's experiment (§4.2.2) on a tiny phantom, the methods replaced by a stand-in that
follows their contract (``tf_bimodal.training.table3``): a logistic regression on pooled pixels."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression

from tf_bimodal.config import (
    CLASSIFICATION_PRESETS,
    TABLE2_ROWS,
    TABLE3_METHODS,
    TABLE3_ROWS,
    DataConfig,
    SplitConfig,
    to_dict,
)
from tf_bimodal.data.inputs import save_predicted_masks
from tf_bimodal.experiments import table3 as table3_experiment
from tf_bimodal.experiments.experiment_data import resolve_data
from tf_bimodal.experiments.protocol import plan_steps, run_protocol
from tf_bimodal.experiments.report import write_report
from tf_bimodal.experiments.table3 import Table3WeightsMissing, run_table3, run_table3_method

from helpers import quick_experiment, tiny_phantom

MODALITIES = {"yap": ("bmode",), "fujioka": ("semode",), "zhang": ("bmode",), "kumar": ("bmode",),
              "wang": ("bmode", "semode"), "misra2021": ("bmode", "semode")}
SIZE = 32
FOLDS = 3


class PooledLogistic:
    """A Table 3 method's stand-in: 4x4 average-pooled pixels of its modalities, a logistic regression."""

    def __init__(self, name, config, seed, factory):
        self.name, self.config, self.seed, self.factory = name, config, seed, factory
        self.modalities = MODALITIES[name]

    def features(self, images):
        columns = []
        for modality in self.modalities:
            batch = images[modality]
            assert batch.dtype == np.float32 and batch.shape[1:3] == (SIZE, SIZE), batch.shape
            assert batch.shape[3] == (1 if modality == "bmode" else 3) and 0.0 <= batch.min() <= batch.max() <= 1.0
            pooled = batch.reshape(len(batch), 4, SIZE // 4, 4, SIZE // 4, -1).mean(axis=(2, 4))
            columns.append(pooled.reshape(len(batch), -1))
        return np.concatenate(columns, axis=1)

    def fit(self, train, val, folder, label=""):
        self.factory.fits.append((self.name, self.seed, os.path.basename(folder)))
        assert set(train) >= {*self.modalities, "label"} and len(val["label"])
        self.model = LogisticRegression(C=1.0).fit(self.features(train), train["label"])
        return {"epochs_run": 1, "best_epoch": 0,
                "backbone_weights": {"requested": self.config.backbone_weights, "used": "random", "reason": None},
                "details": {"C": 1.0, "features": int(self.model.coef_.size)}}

    def predict(self, images):
        return self.model.predict_proba(self.features(images))[:, 1]

    def save(self, folder):
        with open(os.path.join(folder, "method.pkl"), "wb") as handle:
            pickle.dump(self.model, handle)


class FakeFactory:
    """The four functions of the methods' contract; counts the fits, and says which weights are missing."""

    def __init__(self, missing=()):
        self.fits, self.missing = [], set(missing)

    def build_method(self, name, config, seed):
        return PooledLogistic(name, config, seed, self)

    def method_input_size(self, name, config):
        return SIZE

    def method_modalities(self, name):
        return MODALITIES[name]

    def check_weights(self, config):
        return [f"{name}: ImageNet weights not found at /weights/{name}.h5; run with "
                "--set table3.backbone_weights=none to train from random weights"
                for name in config.methods if name in self.missing]


def _experiment(**table3):
    experiment = quick_experiment()
    return dataclasses.replace(experiment, table3=dataclasses.replace(experiment.table3, **table3))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny phantom resolved once, 3 patient-level folds."""
    data = DataConfig(source="phantom", image_size=64, data_dir=str(tmp_path_factory.mktemp("tfds")),
                      phantom=tiny_phantom(seed=5))
    return resolve_data(data, SplitConfig(num_folds=FOLDS), str(tmp_path_factory.mktemp("splits")))


def test_table3_request_is_mff_then_the_methods():
    assert [row.name for row in plan_steps("table3")] == ["w_mm_unet", "mff"] + [f"table3_{m}" for m in TABLE3_METHODS]
    assert [row.name for row in plan_steps("table3", table3_methods=("wang", "yap"))] == [
        "w_mm_unet", "mff", "table3_yap", "table3_wang"]
    assert plan_steps("table3")[1] == next(row for row in TABLE2_ROWS if row.proposed)  # the same cached step
    assert [row.model for row in TABLE3_ROWS] == list(TABLE3_METHODS)


def test_methods_write_summaries_and_resume_without_fitting_again(tiny, tmp_path, progress):
    factory, output = FakeFactory(), str(tmp_path)
    experiment = _experiment(methods=("yap", "wang"))
    summaries = run_table3(tiny, None, experiment, output, method_factory=factory)
    assert list(summaries) == ["yap", "wang"] and len(factory.fits) == 2 * FOLDS
    assert [seed for _, seed, _ in factory.fits[:FOLDS]] == [experiment.table3.seed + k for k in range(FOLDS)]
    for method in ("yap", "wang"):
        summary = json.loads((tmp_path / f"table3_{method}" / "summary.json").read_text())
        assert summary["method"] == method and summary["modalities"] == list(MODALITIES[method])
        for metric in ("accuracy", "precision", "specificity", "sensitivity"):
            assert len(summary[metric]["values"]) == FOLDS and len(summary["image_wise"][metric]["values"]) == FOLDS
        assert len(summary["thresholds"]) == FOLDS and summary["inputs"]["inputs"] == "full"
        assert summary["image_size"] == {"data": 64, "model": SIZE}
        assert summary["preset_notice"].startswith("QUICK PRESET: Table 3's networks at width")
        assert summary["folds"][0]["fit"]["details"]["C"] == 1.0 and summary["backbone_weights"]["used"] == "random"
        for k in range(FOLDS):
            fold = tmp_path / f"table3_{method}" / f"fold_{k}"
            assert {"metrics.json", "predictions.csv", "config.json", "method.pkl"} <= set(os.listdir(fold))
    wang = json.loads((tmp_path / "table3_wang" / "fold_0" / "metrics.json").read_text())
    test_images = {i for i in tiny.splits[0]["test"]}
    assert wang["num_images"]["test"] == len(test_images)  # every phantom image has SE-mode

    again = run_table3(tiny, None, experiment, output, method_factory=factory)
    assert len(factory.fits) == 2 * FOLDS and all(summary.get("reused") for summary in again.values())
    os.remove(tmp_path / "table3_yap" / "summary.json")  # as if killed after its last fold
    resumed = run_table3_method("yap", tiny, None, experiment, output, method_factory=factory)
    assert len(factory.fits) == 2 * FOLDS and resumed["timing"]["reused_folds"] == list(range(FOLDS))
    assert resumed["accuracy"] == summaries["yap"]["accuracy"]


def test_one_fold_per_job(tiny, tmp_path):
    factory, experiment = FakeFactory(), _experiment(methods=("fujioka",))
    partial = run_table3_method("fujioka", tiny, None, experiment, str(tmp_path), folds=[1], method_factory=factory)
    assert partial["partial"] and partial["missing_folds"] == [0, 2] and [f[2] for f in factory.fits] == ["fold_1"]
    assert not (tmp_path / "table3_fujioka" / "summary.json").exists()
    summary = run_table3_method("fujioka", tiny, None, experiment, str(tmp_path), folds=[0, 2], method_factory=factory)
    assert [f[2] for f in factory.fits] == ["fold_1", "fold_0", "fold_2"]
    assert summary["timing"]["reused_folds"] == [1] and len(summary["accuracy"]["values"]) == FOLDS


def test_missing_weights_stop_every_method_before_any_fit(tiny, tmp_path, monkeypatch):
    factory = FakeFactory(missing=("zhang", "kumar"))
    experiment = _experiment(methods=("yap", "zhang", "kumar"), backbone_weights="imagenet")
    with pytest.raises(Table3WeightsMissing) as error:
        run_table3(tiny, None, experiment, str(tmp_path), method_factory=factory)
    message = str(error.value)
    assert "\n" not in message and "zhang:" in message and "kumar:" in message and "yap" not in message
    assert "table3.backbone_weights=none" in message
    assert factory.fits == [] and not os.listdir(tmp_path)
    # Through the protocol: before the W-MM-U-Net and MFF steps train.
    monkeypatch.setattr(table3_experiment, "method_factory_or_default", lambda method_factory=None: factory)
    with pytest.raises(Table3WeightsMissing):
        run_protocol("table3", tiny, None, experiment, str(tmp_path))
    assert factory.fits == [] and not os.listdir(tmp_path)


def test_crop_inputs_are_the_w_mm_unet_crops(tiny, tmp_path):
    experiment, factory = _experiment(methods=("yap",), inputs="crop"), FakeFactory()
    with pytest.raises(FileNotFoundError, match="w_mm_unet"):
        run_table3_method("yap", tiny, None, experiment, str(tmp_path), method_factory=factory)
    arrays = tiny.arrays
    save_predicted_masks(str(tmp_path / "w_mm_unet" / "predicted_masks.npz"), arrays["image_id"],
                         arrays["mask"][..., 0])
    summary = run_table3_method("yap", tiny, None, experiment, str(tmp_path), method_factory=factory)
    assert summary["inputs"]["inputs"] == "crop" and summary["inputs"]["margin_px"] == 10  # 50 px at 336, at 64
    assert summary["inputs"]["masks"].endswith("predicted_masks.npz")
    ids = list(arrays["image_id"][:4])
    full = table3_experiment.method_images(arrays, ids, ("bmode",), SIZE, None)
    assert list(full["image_id"]) == ids and full["bmode"].shape == (4, SIZE, SIZE, 1)
    assert not np.allclose(full["bmode"], table3_experiment.method_images(
        arrays, ids, ("bmode",), SIZE, table3_experiment.CropConfig(margin=10))["bmode"])


def _cell_p(line: str, column: int) -> tuple[float, str]:
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    p, mark = cells[column].split()
    return float(p), mark


def test_report_table3_has_the_t_tests_against_mff(tiny, tmp_path):
    run_table3(tiny, None, _experiment(methods=("yap", "kumar")), str(tmp_path), method_factory=FakeFactory())
    yap = json.loads((tmp_path / "table3_yap" / "summary.json").read_text())
    # MFF's summary as Table 2's run writes it, its fold values set apart from Yap's.
    mff = {**yap, "config": {"classification": to_dict(CLASSIFICATION_PRESETS["quick"])}}
    for metric, offsets in (("accuracy", [0.02, 0.05, 0.11]), ("precision", [0.0, 0.0, 0.0]),
                            ("specificity", [0.01, -0.02, 0.04]), ("sensitivity", [0.03, 0.09, 0.1])):
        values = list(np.add(yap[metric]["values"], offsets))
        mff[metric] = {"mean": float(np.mean(values)), "sd": float(np.std(values)), "values": values}
    (tmp_path / "mff").mkdir()
    (tmp_path / "mff" / "summary.json").write_text(json.dumps(mff))

    with open(write_report(str(tmp_path))) as handle:
        report = handle.read()
    assert "## Table 3: comparison with existing methods (§4.2.2)" in report
    table = report.split("## Table 3")[1].splitlines()
    yap_line = next(line for line in table if line.startswith("| Yap et al. |"))
    assert any(line.startswith("| Kumar et al. |") for line in table)
    assert any(line.startswith("| **MFF (EmbraceNet), proposed** |") for line in table)
    assert "Not run in this experiment: Fujioka et al., Zhang et al., Wang et al., Misra et al. 2021." in table
    for metric, column in (("accuracy", 2), ("specificity", 6), ("sensitivity", 8)):
        expected = stats.ttest_rel(mff[metric]["values"], yap[metric]["values"]).pvalue
        p, mark = _cell_p(yap_line, column)
        assert p == pytest.approx(expected, abs=6e-6), metric
        assert mark == ("+" if expected <= 0.05 else "≈"), metric
    if not np.isnan(yap["precision"]["values"]).any():
        assert _cell_p(yap_line, 4) == (1.0, "≈")  # the same per-fold values
    mean, sd = 100 * yap["accuracy"]["mean"], 100 * yap["accuracy"]["sd"]
    assert yap_line.startswith(f"| Yap et al. | {mean:.2f} ± {sd:.2f} |")
    assert "Preset `quick`: width 0.0625, backbone weights requested `none`" in report

    # Figure 6: MFF's run has no fold predictions here, so only the Table 3 curves could draw it.
    assert not (tmp_path / "fig6_roc.png").exists()
    write_report(str(tmp_path), roc_table3=True)
    assert (tmp_path / "fig6_roc.png").read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- the command line


def test_train_table3_without_weights_is_one_line_before_the_data(tmp_path, capsys, monkeypatch):
    from tf_bimodal import cli, workflow

    factory = FakeFactory(missing=("yap", "fujioka"))
    monkeypatch.setattr(table3_experiment, "method_factory_or_default", lambda method_factory=None: factory)
    monkeypatch.setattr(workflow, "experiment_data_for", lambda *args, **kwargs: pytest.fail("the data were read"))
    status = cli.main(["train", "table3", "--preset", "quick", "--set", "table3.backbone_weights=imagenet",
                       "--set", "table3.methods=yap,fujioka,wang", "--output", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: Table 3: 2 method(s)") and err.count("\n") == 1, err
    assert "yap:" in err and "fujioka:" in err and factory.fits == [] and not (tmp_path / "runs").exists()


def test_report_option_and_weights_none_reach_the_workflow(monkeypatch):
    from tf_bimodal import cli, workflow
    from tf_bimodal.config import resolve_experiment

    calls = []
    monkeypatch.setattr(workflow, "report", lambda *args, **kwargs: calls.append(kwargs) or "report.md")
    assert cli.main(["report", "--roc-table3"]) == 0 and cli.main(["report"]) == 0
    assert [call["roc_table3"] for call in calls] == [True, False]
    args = cli.build_parser().parse_args(["train", "table3", "--backbone-weights", "none"])
    assert resolve_experiment("paper", overrides=cli.settings_overrides(args)).table3.backbone_weights == "none"
    assert resolve_experiment("paper").table3.backbone_weights == "imagenet"


def test_plan_of_table3_says_what_it_does_not_estimate(tiny, tmp_path):
    from tf_bimodal.experiments import plan as plan_lib

    experiment = _experiment(methods=("kumar", "misra2021"))
    record = plan_lib.make_plan(plan_lib.check_fit("table3", tiny.config, experiment), tiny, experiment,
                                str(tmp_path), timing="none")
    assert [row["step"] for row in record["steps"]] == ["w_mm_unet", "mff", "table3_kumar", "table3_misra2021"]
    assert record["not_estimated"] == ["table3_kumar", "table3_misra2021"]
    assert record["steps"][2]["note"] == plan_lib.TABLE3_NOT_ESTIMATED and record["steps"][1]["parameters"] > 0
