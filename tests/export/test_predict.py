"""Prediction on new patients' files (tf_bimodal.export.predict, ``tf-bimodal predict``).

An untrained tiny pipeline stands in for an exported experiment: what is checked is the
reading of every kind of case, the files written and the failure handling, not the numbers.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from test_pipeline_inputs import tiny_pipeline

from tf_bimodal.cli import main as cli_main
from tf_bimodal.data.errors import DataError
from tf_bimodal.export import predict as predict_lib
from tf_bimodal.export.exporter import EXPORT_FILE
from tfds_builder.bimodal_breast_us.make_dummy_data import (
    dual_view,
    synthetic_bmode,
    synthetic_semode,
    write_dicom,
    write_image,
)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """A folder laid out as ``export_experiment`` writes it, with a tiny untrained pipeline."""
    folder = tmp_path_factory.mktemp("export")
    pipeline = tiny_pipeline()
    tf.saved_model.save(pipeline, str(folder / "cad_pipeline"), signatures=pipeline.serving_signatures())
    (folder / EXPORT_FILE).write_text(json.dumps({
        "parts": ["cad_pipeline"], "synthetic": True, "notice": "SYNTHETIC",
        "segmenter": {"run": "w_mm_unet", "folds": [0]},
        "classifier": {"run": "mff", "folds": [0], "embracement": "expected", "threshold": 0.5},
    }))
    return folder


@pytest.fixture(scope="module")
def cases_dir(tmp_path_factory):
    """Every kind of file a clinical export holds, with one corrupt file among them."""
    folder = tmp_path_factory.mktemp("cases")
    rng = np.random.default_rng(0)
    bmode, lesion = synthetic_bmode(rng)
    semode = synthetic_semode(bmode, rng)
    write_image(folder / "p1_bmode.png", bmode)
    write_image(folder / "p1_semode.png", semode)
    write_image(folder / "p1_mask.png", lesion * 255)  # skipped: a mask
    write_image(folder / "rgb_bmode.png", np.repeat(bmode[..., None], 3, axis=-1))  # grey stored as RGB
    write_image(folder / "rgb_semode.png", semode)
    alpha = np.full(bmode.shape + (1,), 255, np.uint8)
    write_image(folder / "rgba_bmode.png", np.concatenate([np.repeat(bmode[..., None], 3, -1), alpha], -1))
    write_image(folder / "rgba_semode.png", np.concatenate([semode, alpha], -1))
    write_dicom(folder / "scanner" / "d1_bmode.dcm", bmode)
    write_image(folder / "scanner" / "d1_semode.png", semode)
    write_image(folder / "only" / "busi_like.png", np.repeat(bmode[..., None], 3, axis=-1))  # B-mode only
    (folder / "broken_bmode.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"cut short")
    write_image(folder / "broken_semode.png", semode)
    screenshot, _ = dual_view(bmode, semode)
    write_image(folder / "screens" / "dual.png", screenshot)  # read as B-mode only by --folder
    return folder, bmode


def test_folder_cases_pair_files_skip_masks_and_keep_singles(cases_dir):
    folder, _ = cases_dir
    cases = {case.case_id: case for case in predict_lib.folder_cases(str(folder))}
    assert set(cases) == {"p1", "rgb", "rgba", "broken", "scanner_d1", "only_busi_like", "screens_dual"}
    assert cases["p1"].bmode.endswith("p1_bmode.png") and cases["p1"].semode.endswith("p1_semode.png")
    assert cases["only_busi_like"].semode is None
    with pytest.raises(DataError, match="folder not found"):
        predict_lib.folder_cases(str(folder / "absent"))


def test_csv_cases_read_paths_relative_to_the_csv(cases_dir, tmp_path):
    folder, _ = cases_dir
    table = tmp_path / "cases.csv"
    table.write_text(f"id,bmode,semode,dual_view\nA,{folder}/p1_bmode.png,{folder}/p1_semode.png,\n"
                     f"B,,,{folder}/screens/dual.png\n")
    cases = predict_lib.csv_cases(str(table))
    assert [case.case_id for case in cases] == ["A", "B"] and cases[1].dual_view.endswith("dual.png")
    (tmp_path / "bad.csv").write_text("patient,label\nP1,benign\n")
    with pytest.raises(DataError, match="needs a 'bmode' or a 'dual_view' column"):
        predict_lib.csv_cases(str(tmp_path / "bad.csv"))


def test_predict_writes_masks_overlays_and_one_row_per_case(export_dir, cases_dir, tmp_path):
    folder, bmode = cases_dir
    cases = predict_lib.folder_cases(str(folder)) + [predict_lib.dual_view_case(str(folder / "screens" / "dual.png"))]
    result = predict_lib.predict(str(export_dir), cases, str(tmp_path / "out"), progress=False)
    rows = {row["id"]: row for row in result["rows"]}
    assert result["cases"] == len(cases) == 8 and result["failed"] == 1
    assert rows["broken"]["status"] == "error" and "broken_bmode.png" in rows["broken"]["error"]
    assert "truncated PNG" in rows["broken"]["error"]
    for name in ("p1", "rgb", "rgba", "scanner_d1", "dual", "only_busi_like"):
        row = rows[name]
        assert row["status"] == "ok", row
        assert 0.0 <= row["p_malignant"] <= 1.0 and row["label"] in ("benign", "malignant")
        mask = tf.io.decode_png(tf.io.read_file(row["mask"])).numpy()
        assert set(np.unique(mask)) <= {0, 255}
        assert os.path.getsize(row["overlay"]) > 1000
    # Grey stored as RGB or RGBA, and DICOM, read as the grey image: the same prediction.
    for name in ("rgb", "rgba", "scanner_d1"):
        assert rows[name]["p_malignant"] == pytest.approx(rows["p1"]["p_malignant"], abs=1e-5), name
    assert tf.io.decode_png(tf.io.read_file(rows["p1"]["mask"])).shape[:2] == bmode.shape
    assert rows["p1"]["modalities"] == "bmode+semode" and rows["dual"]["modalities"] == "bmode+semode"
    assert rows["only_busi_like"]["modalities"] == "bmode"
    with open(result["csv"], newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [row["id"] for row in table] == [case.case_id for case in cases]
    record = json.loads(open(result["json"]).read())
    assert record["failed"] == 1 and record["model"]["synthetic"] is True
    assert not [name for name in os.listdir(tmp_path / "out") if ".tmp" in name]  # nothing half-written


def test_the_command_exits_1_when_a_case_failed_and_0_otherwise(export_dir, cases_dir, tmp_path):
    folder, _ = cases_dir
    assert cli_main(["predict", str(export_dir), "--folder", str(folder), "--output", str(tmp_path / "a"),
                     "--no-progress"]) == 1
    assert cli_main(["predict", str(export_dir), "--bmode", str(folder / "p1_bmode.png"), "--semode",
                     str(folder / "p1_semode.png"), "--output", str(tmp_path / "b"), "--no-progress"]) == 0
    assert cli_main(["predict", str(tmp_path / "nothing"), "--bmode", str(folder / "p1_bmode.png"),
                     "--output", str(tmp_path / "c")]) == 2
