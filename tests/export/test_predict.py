"""Prediction on new patients' files (tf_bimodal.export.predict, ``tf-bimodal predict``).

An untrained tiny pipeline stands in for an exported experiment: what is checked is the
reading of every kind of case, the files written and the failure handling, not the numbers.
"""

from __future__ import annotations

import csv
import json
import os
import shutil

import cv2
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


def test_csv_cases_read_paths_relative_to_the_csv_and_inside_its_folder(cases_dir, tmp_path):
    folder, _ = cases_dir
    table = folder / "cases.csv"
    table.write_text("id,bmode,semode,dual_view\nA,p1_bmode.png,p1_semode.png,\nB,,,screens/dual.png\n"
                     ",scanner/d1_bmode.dcm,,\n")
    cases = predict_lib.csv_cases(str(table))
    assert [case.case_id for case in cases] == ["A", "B", "scanner_d1"]  # no id: the rule of --folder
    assert cases[0].bmode == str(folder / "p1_bmode.png") and cases[1].dual_view.endswith("dual.png")
    (tmp_path / "bad.csv").write_text("patient,label\nP1,benign\n")
    with pytest.raises(DataError, match="needs a 'bmode' or a 'dual_view' column"):
        predict_lib.csv_cases(str(tmp_path / "bad.csv"))


@pytest.mark.parametrize("path, rule", [
    ("../../../../etc/passwd", "row 3, column bmode: path '../../../../etc/passwd' leaves the folder holding"),
    ("/etc/passwd", "row 3, column bmode: absolute path '/etc/passwd': paths must be relative to the folder"),
    ("sub/../../x.png", "leaves the folder holding outside.csv"),
])
def test_csv_paths_outside_its_folder_are_refused_unless_allowed(tmp_path, path, rule):
    table = tmp_path / "outside.csv"
    table.write_text(f"bmode\nok.png\n{path}\n")
    with pytest.raises(DataError, match="--allow-outside") as error:
        predict_lib.csv_cases(str(table))
    assert rule in str(error.value)
    cases = predict_lib.csv_cases(str(table), allow_outside=True)
    assert cases[1].bmode == os.path.normpath(os.path.join(tmp_path, path))


def test_duplicate_ids_are_an_error_naming_them(cases_dir, tmp_path):
    folder, bmode = cases_dir
    table = folder / "twice.csv"
    table.write_text("id,bmode\nA,p1_bmode.png\nA,rgb_bmode.png\nC,p1_bmode.png\nc d,rgb_bmode.png\nc_d,x.png\n")
    with pytest.raises(DataError, match="duplicate case ids") as error:
        predict_lib.csv_cases(str(table))
    assert "'A' (" in str(error.value) and "rgb_bmode.png" in str(error.value) and "'c_d'" in str(error.value)
    # A folder whose files give one id twice: x.png and x.jpg, y_bmode.png and y_bmode.jpg.
    twice = tmp_path / "twice"
    for name in ("x.png", "x.jpg", "y_bmode.png", "y_bmode.jpg", "case.png"):
        write_image(twice / name, bmode)
    with pytest.raises(DataError, match="duplicate case ids") as error:
        predict_lib.folder_cases(str(twice))
    assert "'x'" in str(error.value) and "'y'" in str(error.value) and "y_bmode.jpg" in str(error.value)
    (twice / "x.jpg").unlink()
    (twice / "y_bmode.jpg").unlink()
    assert [case.case_id for case in predict_lib.folder_cases(str(twice))] == ["case", "x", "y"]


def test_ids_follow_one_rule_for_every_kind_of_case(cases_dir):
    folder, _ = cases_dir
    by_folder = {case.case_id for case in predict_lib.folder_cases(str(folder))}
    single = predict_lib.pair_case(str(folder / "p1_bmode.png")).case_id
    pair = predict_lib.pair_case(str(folder / "p1_bmode.png"), str(folder / "p1_semode.png")).case_id
    dicom = predict_lib.pair_case(str(folder / "scanner" / "d1_bmode.dcm")).case_id
    assert single == pair == "p1" and "p1" in by_folder and dicom == "d1"
    assert predict_lib.case_id_of("P 7_B-mode") == "P_7_B-mode" and predict_lib.case_id_of("lamb") == "lamb"


@pytest.mark.parametrize("arguments, message", [
    ({"bmode": "b.png", "boxes": "0 0 1 1;1 0 2 1"}, "--boxes: the panes of a --dual-view screenshot, it does not "
                                                     "apply to --bmode"),
    ({"folder": "scans", "semode": "se.png"}, "--semode: names the SE-mode image of --bmode, it does not apply to "
                                              "--folder"),
    ({"csv_path": "cases.csv", "semode": "se.png"}, "it does not apply to --csv"),
    ({"folder": "scans", "allow_outside": True}, "--allow-outside: lets a --csv name files outside its folder"),
    ({"dual_view": "d.png", "boxes": "1 2 3"}, "--boxes: expected two boxes"),
])
def test_options_that_do_not_apply_are_refused(arguments, message):
    with pytest.raises(ValueError) as error:
        predict_lib.cases_from_arguments(**arguments)
    assert message in str(error.value)


def test_the_command_refuses_options_that_do_not_apply_in_one_line(cases_dir, tmp_path, capsys):
    folder, _ = cases_dir
    for extra in (["--bmode", str(folder / "p1_bmode.png"), "--boxes", "0 0 1 1;1 0 2 1"],
                  ["--folder", str(folder), "--semode", str(folder / "p1_semode.png")]):
        assert cli_main(["predict", str(tmp_path / "no_export"), *extra, "--output", str(tmp_path / "o")]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and error[0].startswith("error: --"), error
    assert not (tmp_path / "o").exists()


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


@pytest.mark.parametrize("remove, named", [
    ("classifier", "missing classifier/"),
    ("cad_pipeline/variables", "missing cad_pipeline/variables/ (listed in export.json"),
    ("cad_pipeline/saved_model.pb", "missing cad_pipeline/saved_model.pb"),
    ("cad_pipeline", "missing cad_pipeline/"),
])
def test_an_incomplete_export_is_an_error_naming_what_is_missing(export_dir, cases_dir, tmp_path, capsys, remove,
                                                                  named):
    copy = tmp_path / "copy"
    shutil.copytree(export_dir, copy)
    record = json.loads((copy / EXPORT_FILE).read_text())
    (copy / EXPORT_FILE).write_text(json.dumps({**record, "parts": ["classifier", "cad_pipeline"]}))
    shutil.copytree(copy / "cad_pipeline", copy / "classifier")  # stands in for the classifier SavedModel
    (shutil.rmtree if (copy / remove).is_dir() else os.remove)(copy / remove)
    with pytest.raises(FileNotFoundError, match="incomplete export") as error:
        predict_lib.load_pipeline(str(copy))
    assert named in str(error.value)
    folder, _ = cases_dir
    assert cli_main(["predict", str(copy), "--bmode", str(folder / "p1_bmode.png"),
                     "--output", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], lines


def test_nonsense_images_fail_their_own_case_only(export_dir, cases_dir, tmp_path):
    folder, bmode = cases_dir
    odd = tmp_path / "odd"
    write_image(odd / "tiny.png", np.full((1, 1), 128, np.uint8))
    write_image(odd / "strip.png", np.full((2, 3000), 128, np.uint8))
    write_image(odd / "narrow.png", np.resize(bmode, (40, 400)))
    write_image(odd / "fine.png", bmode)
    result = predict_lib.predict(str(export_dir), predict_lib.folder_cases(str(odd)), str(tmp_path / "out"),
                                 progress=False)
    rows = {row["id"]: row for row in result["rows"]}
    assert result["failed"] == 3 and rows["fine"]["status"] == "ok"
    assert "tiny.png: image 1x1 px is too small: each side must be at least 32 px" in rows["tiny"]["error"]
    assert "strip.png: image 3000x2 px is too small" in rows["strip"]["error"]
    assert "narrow.png: image 400x40 px is 10.0:1, more elongated than 4:1" in rows["narrow"]["error"]
    assert all(rows[name]["label"] is None for name in ("tiny", "strip", "narrow"))


def test_a_huge_image_is_served_shrunk_with_its_mask_and_box_at_the_file_size(export_dir, cases_dir, tmp_path,
                                                                              monkeypatch):
    folder, bmode = cases_dir
    monkeypatch.setattr(predict_lib.readers, "MAX_READ_SIDE", 256)  # 2048 in use; smaller here to keep the test fast
    huge_b = cv2.resize(bmode, (650, 525), interpolation=cv2.INTER_LINEAR)
    semode = predict_lib.readers.read_image(str(folder / "p1_semode.png"))
    huge_se = cv2.resize(semode, (650, 525), interpolation=cv2.INTER_LINEAR)
    write_image(tmp_path / "big_bmode.png", huge_b)
    write_image(tmp_path / "big_semode.png", huge_se)
    served = []
    serve_case = predict_lib.serve_case
    monkeypatch.setattr(predict_lib, "serve_case", lambda pipeline, record, b, se: served.append(
        (b.shape, se.shape)) or serve_case(pipeline, record, b, se))
    case = predict_lib.pair_case(str(tmp_path / "big_bmode.png"), str(tmp_path / "big_semode.png"))
    row = predict_lib.predict(str(export_dir), [case], str(tmp_path / "out"), progress=False)["rows"][0]
    assert row["status"] == "ok", row
    assert served == [((207, 256, 1), (207, 256, 3))]  # the longer side at readers.MAX_READ_SIDE
    mask = tf.io.decode_png(tf.io.read_file(row["mask"])).numpy()[..., 0]
    assert mask.shape == (525, 650) and (row["width"], row["height"]) == (650, 525)
    assert row["lesion_area_px"] == int((mask > 0).sum())
    assert 0 <= row["box_x0"] < row["box_x1"] <= 650 and 0 <= row["box_y0"] < row["box_y1"] <= 525
    assert "read at 256x207 px, shrunk from 650x525" in row["note"]


def test_boxes_are_x0_y0_x1_y1_in_the_header_and_numbers_in_the_json(export_dir, cases_dir, tmp_path):
    folder, bmode = cases_dir
    wide = np.concatenate([bmode, bmode[:, ::-1]], axis=1)  # not square: x and y cannot be confused
    write_image(tmp_path / "wide.png", wide)
    result = predict_lib.predict(str(export_dir), [predict_lib.pair_case(str(tmp_path / "wide.png"))],
                                 str(tmp_path / "out"), progress=False)
    with open(result["csv"], newline="") as handle:
        header = next(csv.reader(handle))
    assert "box" not in header and header[header.index("box_x0"):header.index("box_x0") + 4] == [
        "box_x0", "box_y0", "box_x1", "box_y1"]
    record = json.loads(open(result["json"]).read())
    row = record["rows"][0]
    assert all(type(row[name]) is int for name in ("box_x0", "box_y0", "box_x1", "box_y1", "width", "height"))
    assert type(row["p_malignant"]) is float and row["p_draw_sd"] is None and "x0" in record["box"]
    mask = tf.io.decode_png(tf.io.read_file(row["mask"])).numpy()[..., 0] > 0
    height, width = wide.shape
    assert (row["width"], row["height"]) == (width, height) and row["box_x1"] <= width and row["box_y1"] <= height
    if mask.any():
        ys, xs = np.nonzero(mask)
        assert row["box_x0"] <= xs.min() and xs.max() < row["box_x1"]
        assert row["box_y0"] <= ys.min() and ys.max() < row["box_y1"]
    else:
        assert [row[name] for name in ("box_x0", "box_y0", "box_x1", "box_y1")] == [0, 0, width, height]
