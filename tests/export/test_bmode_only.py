"""B-mode-only CAD pipelines and external validation (tf_bimodal.export, ``tf-bimodal evaluate``).

A tiny experiment is trained once per module: the B-mode U-Net (``unet_bmode``) and a B-mode
VGG-16 read out linearly with a context crop (the ``--linear-readout`` form at the ``quick``
preset's sizes: frozen pooled features, logistic head, ``context_margin``), on manual crops,
two folds on a 64-pixel phantom. It is exported as a B-mode-only pipeline, served from the
command line, compared with its Keras fold models, and scored on another phantom (and on the
BUSI sample where it is present).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal import workflow
from tf_bimodal.cli import main as cli_main
from tf_bimodal.config import CLASSIFICATION_PRESETS, DataConfig, RuntimeConfig, SplitConfig
from tf_bimodal.data.cropping import scaled_margin
from tf_bimodal.evaluation.segmentation import MISSED_DICE, majority_vote
from tf_bimodal.experiments.protocol import run_protocol
from tf_bimodal.export import EXPORT_FILE, export_experiment, find_classifier, find_segmenter, load_fold_models
from tf_bimodal.export.evaluate import EVALUATION_JSON, lesion_dice, run_pipeline, score_images
from tfds_builder.bimodal_breast_us.make_dummy_data import synthetic_bmode, synthetic_semode, write_image

from helpers import quick_experiment, tiny_phantom

DATA_SIZE = 64
CLASSIFIER_RUN = "vgg16_bmode_crop_manual"
CONTEXT_MARGIN = 150
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """``unet_bmode`` and a linear read-out ``vgg16_bmode`` with a context crop, trained once."""
    tmp = tmp_path_factory.mktemp("bmode_experiment")
    data = DataConfig(source="phantom", image_size=DATA_SIZE, data_dir=str(tmp / "tfds"),
                      phantom=tiny_phantom(seed=8))
    readout = dataclasses.replace(CLASSIFICATION_PRESETS["quick"], head_fit="logistic", frozen_blocks=5,
                                  augment=False, backbone_features="pooled", context_margin=CONTEXT_MARGIN)
    settings = quick_experiment(runtime=RuntimeConfig(tensorboard=False), classification=readout)
    root = run_protocol("unet_bmode", data, SplitConfig(num_folds=2), settings, str(tmp / "runs"))["experiment_dir"]
    run_protocol("vgg16_bmode", data, SplitConfig(num_folds=2), settings, str(tmp / "runs"), crop="manual")
    return {"root": root, "data": data, "tmp": tmp, "settings": settings}


@pytest.fixture(scope="module")
def exported(experiment):
    export_dir = str(experiment["tmp"] / "export")
    record = export_experiment(experiment["root"], export_dir, segmenter_run="unet_bmode",
                               classifier_run=CLASSIFIER_RUN)
    return {"dir": export_dir, "record": record}


@pytest.fixture(scope="module")
def case_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bmode_cases")
    rng = np.random.default_rng(0)
    bmode, _ = synthetic_bmode(rng)
    write_image(folder / "p1_bmode.png", bmode)
    write_image(folder / "p1_semode.png", synthetic_semode(bmode, rng))
    return folder, bmode


# --------------------------------------------------------------------------- metrics on known answers


def _arrays(masks, labels, patients, has_mask=None):
    masks = np.asarray(masks, np.uint8)[..., None]
    count = len(masks)
    return {"image_id": np.array([f"i{k}" for k in range(count)]), "patient_id": np.array(patients),
            "label": np.array(labels, np.int64), "mask": masks, "bmode": np.zeros_like(masks),
            "has_mask": np.ones(count, bool) if has_mask is None else np.array(has_mask),
            "has_semode": np.zeros(count, bool)}


def test_score_images_counts_missed_lesions_and_scores_at_the_given_threshold():
    truth = np.zeros((4, 4, 4), np.uint8)
    truth[0, :2, :2] = 1  # found exactly: Dice 1
    truth[1, :2, :2] = 1  # missed: predicted elsewhere, Dice 0
    truth[2, :2, :] = 1   # half found: Dice 2 * 4 / (8 + 4) = 2/3
    predicted = np.zeros_like(truth)
    predicted[0, :2, :2] = 1
    predicted[1, 3, 3] = 1
    predicted[2, :2, :2] = 1  # image 3 is lesion-free (normal) and predicted empty
    arrays = _arrays(truth, [0, 1, 1, 2], ["a", "b", "b", "c"])
    outputs = {"mask": predicted, "p_malignant": np.array([0.2, 0.7, 0.4, 0.9], np.float32),
               "served": np.ones(4, bool)}
    np.testing.assert_allclose(lesion_dice(arrays, predicted), [1.0, 0.0, 2 / 3, np.nan])
    scores = score_images(arrays, outputs, np.arange(4), threshold=0.5)
    segmentation, classification = scores["segmentation"], scores["classification"]
    assert segmentation["lesion_images"] == 3 and segmentation["missed"] == 1
    assert segmentation["dice"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert segmentation["missed_share"] == pytest.approx(1 / 3) and segmentation["missed_dice_below"] == MISSED_DICE
    assert segmentation["normal_images"] == 1 and segmentation["normal_empty_share"] == 1.0
    # normal left out: benign 0.2 (TN), malignant 0.7 (TP), malignant 0.4 (FN)
    image = classification["image"]
    assert (image["tp"], image["tn"], image["fn"], image["fp"]) == (1, 1, 1, 0) and image["auc"] == 1.0
    assert image["sensitivity"] == 0.5 and image["specificity"] == 1.0
    assert classification["images"] == 3 and classification["patients"] == 2
    # patient b: one image called malignant, one benign: a tie goes to malignant (§4.2)
    patient = classification["patient"]
    assert (patient["tp"], patient["tn"], patient["fn"], patient["fp"]) == (1, 1, 0, 0)


class _PairOnlyPipeline:
    """A stand-in for a bimodal export whose classifier cannot do without SE-mode."""

    def serve_batch(self, bmode, semode):
        count = int(bmode.shape[0])
        return {"p_malignant": tf.fill([count], 0.75), "mask": tf.ones(bmode.shape[:3], tf.uint8),
                "threshold": tf.constant(0.5)}


def test_run_pipeline_skips_b_mode_only_images_a_pair_export_cannot_serve():
    arrays = _arrays(np.zeros((3, 4, 4)), [0, 1, 0], ["a", "b", "c"])
    arrays |= {"bmode": np.zeros((3, 4, 4, 1), np.uint8), "semode": np.zeros((3, 4, 4, 3), np.uint8),
               "has_semode": np.array([True, False, True])}
    outputs = run_pipeline(_PairOnlyPipeline(), {"modalities": ["bmode", "semode"]}, arrays)
    assert outputs["served"].tolist() == [True, False, True]
    assert outputs["modalities"].tolist() == ["bmode+semode", "", "bmode+semode"]
    assert np.isnan(outputs["p_malignant"][1]) and outputs["p_malignant"][0] == pytest.approx(0.75)


# --------------------------------------------------------------------------- export errors


def test_export_names_an_unknown_run_and_a_run_of_the_wrong_kind(experiment, tmp_path):
    root = experiment["root"]
    with pytest.raises(ValueError, match=r"'unet_bmod' is not a segmenter run.*finished runs in .*unet_bmode"):
        export_experiment(root, str(tmp_path / "x"), segmenter_run="unet_bmod", classifier_run=CLASSIFIER_RUN)
    with pytest.raises(ValueError, match=r"'unet_bmode' is not a classifier run"):
        export_experiment(root, str(tmp_path / "x"), segmenter_run="unet_bmode", classifier_run="unet_bmode")
    with pytest.raises(ValueError, match=r"'vgg16_bmode' is not a segmenter run"):
        export_experiment(root, str(tmp_path / "x"), segmenter_run="vgg16_bmode", classifier_run=CLASSIFIER_RUN)
    assert not (tmp_path / "x").exists()


def test_export_of_a_run_not_trained_names_the_command(experiment, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"w_mm_unet does not exist.*run_experiments.py --model w_mm_unet"):
        export_experiment(experiment["root"], str(tmp_path / "x"), classifier_run=CLASSIFIER_RUN)
    with pytest.raises(FileNotFoundError, match=r"vgg16_bmode does not exist.*--model vgg16_bmode "):
        export_experiment(experiment["root"], str(tmp_path / "x"), segmenter_run="unet_bmode",
                          classifier_run="vgg16_bmode")


def _copy_run(root: str, run: str, new_run: str, **summary_changes) -> None:
    shutil.copytree(os.path.join(root, run), os.path.join(root, new_run))
    path = os.path.join(root, new_run, "summary.json")
    with open(path) as handle:
        summary = json.load(handle)
    for key, value in summary_changes.items():
        section, _, field = key.partition("__")
        if field:
            summary[section][field] = value
        else:
            summary[section] = value
    with open(path, "w") as handle:
        json.dump(summary, handle)


def test_export_refuses_pairs_that_cannot_be_chained_and_unreproducible_context_crops(experiment, tmp_path):
    root = experiment["root"]
    _copy_run(root, CLASSIFIER_RUN, "vgg16_semode_crop_manual", model="vgg16_semode")
    _copy_run(root, CLASSIFIER_RUN, "vgg16_bmode_crop_none", crop__context_margin_px=7)
    try:
        with pytest.raises(ValueError, match=r"segmenter 'unet_bmode' reads B-mode only, classifier "
                                             r"'vgg16_semode_crop_manual' needs SE-mode"):
            export_experiment(root, str(tmp_path / "x"), segmenter_run="unet_bmode",
                              classifier_run="vgg16_semode_crop_manual")
        with pytest.raises(ValueError, match=r"context crop with a 7 px margin at 64 px.*cannot reproduce"):
            find_classifier(root, "vgg16_bmode_crop_none")
    finally:
        shutil.rmtree(os.path.join(root, "vgg16_semode_crop_manual"))
        shutil.rmtree(os.path.join(root, "vgg16_bmode_crop_none"))


def test_export_and_evaluate_commands_hand_their_options_to_the_workflow(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(workflow, "export", lambda *args, **kwargs: calls.append((args, kwargs)) or {})
    monkeypatch.setattr(workflow, "evaluate", lambda *args, **kwargs: calls.append((args, kwargs)) or {})
    monkeypatch.setattr(workflow, "export_source", lambda source: source)
    assert cli_main(["export", "out", "--segmenter", "unet_bmode", "--classifier", "vgg16_bmode", "--preset",
                     "quick", "--output", str(tmp_path)]) == 0
    assert cli_main(["evaluate", "out", "--data", "busi", "--manual-dir", str(tmp_path), "--image-size", "96",
                     "--output", "scores"]) == 0
    (export_args, export_kwargs), (evaluate_args, _) = calls
    assert export_args[0] == "out" and export_kwargs["output"] == str(tmp_path)
    assert (export_kwargs["segmenter"], export_kwargs["classifier"], export_kwargs["crop"]) == (
        "unet_bmode", "vgg16_bmode", "predicted")
    source, data, output = evaluate_args
    assert (source, data.source, data.manual_dir, data.image_size, output) == ("out", "busi", str(tmp_path), 96,
                                                                             "scores")


def test_export_command_refuses_a_classifier_and_a_crop_together(tmp_path, capsys):
    assert cli_main(["export", str(tmp_path / "x"), "--classifier", "vgg16_bmode", "--crop", "manual",
                     "--preset", "quick", "--output", str(tmp_path)]) == 2
    assert "give --classifier (vgg16_bmode) or --crop (manual), not both" in capsys.readouterr().err


# --------------------------------------------------------------------------- the B-mode-only export


@pytest.mark.slow
def test_bmode_only_export_records_its_runs_and_modalities(exported):
    with open(os.path.join(exported["dir"], EXPORT_FILE)) as handle:
        record = json.load(handle)
    assert record["modalities"] == ["bmode"] and record["cad_pipeline"]["modalities"] == ["bmode"]
    assert record["runs"] == {"segmenter": "unet_bmode", "classifier": CLASSIFIER_RUN}
    assert record["classifier"]["inputs"] == ["bmode", "bmode_context"]
    assert record["classifier"]["context_margin"] == CONTEXT_MARGIN
    assert record["cad_pipeline"]["context_margin"]["at_data_size"] == scaled_margin(DATA_SIZE, CONTEXT_MARGIN)
    assert "unet_bmode masks, although this classifier trained on manual" in record["cad_pipeline"][
        "masks_for_classifier"]
    signatures = record["signatures"]["cad_pipeline"]
    assert sorted(signatures) == ["serve_batch", "serve_bmode_only", "serve_bmode_only_batch", "serving_default"]
    for name, signature in signatures.items():
        assert list(signature["inputs"]) == ["bmode"], name
    assert "B-mode image alone" in record["usage"]


@pytest.mark.slow
def test_bmode_only_pipeline_is_the_keras_chain_with_both_crops(experiment, exported):
    """One image of another size through the SavedModel and through the Keras fold models."""
    segmenter, classifier = find_segmenter(experiment["root"], "unet_bmode"), find_classifier(
        experiment["root"], CLASSIFIER_RUN)
    cad = tf.saved_model.load(os.path.join(exported["dir"], "cad_pipeline"))
    rng = np.random.default_rng(4)
    bmode, _ = synthetic_bmode(rng)
    height, width = bmode.shape
    served = {key: value.numpy() for key, value in cad.signatures["serving_default"](bmode=tf.constant(bmode)).items()}

    model_input = tf.image.resize(tf.cast(bmode[None, ..., None], tf.float32), (segmenter.model_size,) * 2,
                                  method="bilinear", antialias=True)
    model_input = tf.clip_by_value(tf.round(model_input), 0, 255) / 255.0
    fold = np.stack([tf.image.resize(m({"bmode": model_input}, training=False), (height, width),
                                     method="bilinear").numpy()[0, ..., 0]
                     for m in load_fold_models(segmenter.model_paths)], axis=-1)
    mask = majority_vote((fold > segmenter.threshold).sum(-1), fold.shape[-1])
    np.testing.assert_array_equal(served["mask"], mask)
    assert served["availability"].tolist() == [1.0, 0.0] and bool(served["segmented"])

    def box(margin):
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if rows.size == 0:
            return [0, 0, height, width]
        y, x = scaled_margin(height, margin), scaled_margin(width, margin)
        return [max(rows[0] - y, 0), max(cols[0] - x, 0), min(rows[-1] + 1 + y, height),
                min(cols[-1] + 1 + x, width)]

    assert served["box"].tolist() == box(50)
    crops = {}
    for key, margin in (("bmode", 50), ("bmode_context", CONTEXT_MARGIN)):
        y0, x0, y1, x1 = box(margin)
        image = bmode[y0:y1, x0:x1, None].astype(np.float32) / 255.0
        crops[key] = tf.image.resize(image, (classifier.input_size,) * 2, method="bilinear").numpy()[None]
    fold_p = [float(m(crops, training=False)["decision"][0, 1]) for m in load_fold_models(classifier.model_paths)]
    np.testing.assert_allclose(served["fold_p_malignant"], fold_p, atol=TOLERANCE)
    assert float(served["threshold"]) == pytest.approx(np.mean(classifier.fold_thresholds), abs=1e-6)


@pytest.mark.slow
def test_predict_serves_a_bmode_only_export_from_the_command_line(exported, case_files, tmp_path, caplog):
    folder, bmode = case_files
    output = tmp_path / "pred"
    assert cli_main(["predict", exported["dir"], "--bmode", str(folder / "p1_bmode.png"), "--output", str(output),
                     "--no-progress"]) == 0
    overlay = output / "p1_overlay.png"
    assert overlay.is_file() and tf.io.decode_png(tf.io.read_file(str(overlay))).shape[0] > 100
    assert tf.io.decode_png(tf.io.read_file(str(output / "p1_mask.png"))).shape[:2] == bmode.shape
    with open(output / "predictions.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert row["status"] == "ok" and row["modalities"] == "bmode" and row["note"] == ""
    # An SE-mode image given with the case is ignored, with a warning and a note; the result is the same.
    assert cli_main(["predict", exported["dir"], "--bmode", str(folder / "p1_bmode.png"), "--semode",
                     str(folder / "p1_semode.png"), "--output", str(tmp_path / "with_se"), "--no-progress"]) == 0
    with open(tmp_path / "with_se" / "predictions.csv", newline="") as handle:
        with_se = next(csv.DictReader(handle))
    assert with_se["note"] == "SE-mode image ignored: this export reads B-mode only"
    assert with_se["modalities"] == "bmode" and with_se["p_malignant"] == row["p_malignant"]
    assert "SE-mode image ignored" in caplog.text and "p1_semode.png" in caplog.text


# --------------------------------------------------------------------------- external validation


@pytest.mark.slow
def test_evaluate_scores_the_export_on_another_data_set(exported, experiment, tmp_path):
    other = DataConfig(source="phantom", image_size=DATA_SIZE, data_dir=str(experiment["tmp"] / "tfds"),
                       phantom=tiny_phantom(seed=9))
    result = workflow.evaluate(exported["dir"], other, str(tmp_path / "evaluation"))
    folder = tmp_path / "evaluation"
    for name in ("evaluation.json", "evaluation.md", "evaluation.csv", "roc.png", "dice_histogram.png",
                 "worst_cases.png"):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 100, name
    with open(folder / EVALUATION_JSON) as handle:
        evaluation = json.load(handle)
    data, overall = evaluation["data"], evaluation["overall"]
    assert data["served"] == data["images"] > 0 and data["served_as"] == {"bmode": data["images"], "bmode+semode": 0}
    assert evaluation["same_data_as_training"] is False and evaluation["by_device"] is None
    assert evaluation["model"]["modalities"] == ["bmode"] and evaluation["model"]["runs"]["segmenter"] == "unet_bmode"
    segmentation, classification = overall["segmentation"], overall["classification"]
    assert segmentation["lesion_images"] == data["images"] and 0.0 <= segmentation["dice"] <= 1.0
    assert 0 <= segmentation["missed"] <= segmentation["lesion_images"]
    assert classification["threshold"] == pytest.approx(exported["record"]["classifier"]["threshold"], abs=1e-6)
    for level in ("image", "patient"):
        assert 0.0 <= classification[level]["auc"] <= 1.0
        assert classification[level]["sensitivity"] is not None and classification[level]["specificity"] is not None
    assert classification["patient"]["count"] == data["patients"]
    assert evaluation["roc_auc"]["per image"] == pytest.approx(classification["image"]["auc"])
    with open(folder / "evaluation.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == data["images"] and all(row["modalities"] == "bmode" for row in rows)
    report = (folder / "evaluation.md").read_text()
    assert "SYNTHETIC" in report and "![ROC](roc.png)" in report and "no breakdown by scanner" in report
    assert result["paths"]["json"] == str(folder / EVALUATION_JSON)


@pytest.mark.slow
def test_evaluate_command_on_the_busi_sample(exported, busi_sample_dir, tmp_path):
    output = tmp_path / "busi"
    assert cli_main(["evaluate", exported["dir"], "--data", "busi", "--manual-dir", busi_sample_dir,
                     "--image-size", str(DATA_SIZE), "--data-dir", str(tmp_path / "tfds"),
                     "--output", str(output)]) == 0
    with open(output / EVALUATION_JSON) as handle:
        evaluation = json.load(handle)
    assert evaluation["data"]["source"] == "busi" and evaluation["data"]["skipped"] == 0
    assert evaluation["overall"]["segmentation"]["normal_images"] > 0  # BUSI's normal class: no lesion
    assert evaluation["overall"]["classification"]["images"] < evaluation["data"]["images"]
    assert (output / "evaluation.md").is_file()
