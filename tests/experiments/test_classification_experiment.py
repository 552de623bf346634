"""The classification experiment end to end on a tiny phantom (§3.3, §3.4, §4.2)."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.config import CLASSIFICATION_PRESETS, DataConfig, PhantomConfig, SplitConfig
from tf_bimodal.data import dataset as dataset_lib
from tf_bimodal.data.inputs import apply_crop_masks, crop_margin, drop_modalities, load_arrays, save_predicted_masks
from tf_bimodal.experiments.bmode_only import evaluate_bmode_only
from tf_bimodal.experiments.classification import run_classification

from conftest import quick_experiment

TINY_PHANTOM = PhantomConfig(num_benign_patients=4, num_malignant_patients=4,
                             min_pairs_per_patient=2, max_pairs_per_patient=3, seed=3)
TINY_PRESET = dataclasses.replace(CLASSIFICATION_PRESETS["quick"], epochs=1)
TINY = quick_experiment(classification=TINY_PRESET)

METRICS = ("accuracy", "precision", "specificity", "sensitivity", "f1", "auc")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return DataConfig(source="phantom", image_size=64, data_dir=str(tmp_path_factory.mktemp("tfds")),
                      phantom=TINY_PHANTOM)


def test_unknown_model_crop_or_unresolved_preset_raise(tiny_data, tmp_path):
    for kwargs, error, message in [
        (dict(model="resnet"), ValueError, "model must be one of"),
        (dict(model="mff", crop="mask"), ValueError, "crop must be one of"),
        (dict(model="mff", experiment="quick"), TypeError, "experiment must be an ExperimentConfig"),
    ]:
        arguments = dict(data=tiny_data, split=SplitConfig(num_folds=3), experiment=TINY, crop="manual",
                         output=str(tmp_path))
        arguments.update(kwargs)
        with pytest.raises(error, match=message):
            run_classification(**arguments)


def test_predicted_crop_without_segmentation_masks_says_what_to_run(tiny_data, tmp_path):
    with pytest.raises(FileNotFoundError, match="run_experiments.py --model w_mm_unet"):
        run_classification("mff", tiny_data, SplitConfig(num_folds=3), TINY, str(tmp_path), crop="predicted")


def test_crop_margin_scales_the_paper_margin():
    assert crop_margin(DataConfig()) == 50
    assert crop_margin(DataConfig(image_size=64)) == 10


def test_drop_modalities_hides_exactly_one_image_of_complete_pairs():
    inputs = {
        "bmode": tf.ones((6, 4, 4, 1)),
        "semode": tf.ones((6, 4, 4, 3)),
        "availability": tf.constant([[1.0, 1.0]] * 5 + [[1.0, 0.0]]),
    }
    out = drop_modalities(inputs, tf.constant([1, 2], tf.int64), rate=1.0)
    availability = out["availability"].numpy()
    assert np.all(availability[:5].sum(axis=1) == 1), "complete pairs lose exactly one image"
    np.testing.assert_array_equal(availability[5], [1.0, 0.0])  # never drop the only image
    for column, key in enumerate(("bmode", "semode")):
        hidden = availability[:, column] == 0
        assert np.all(out[key].numpy()[hidden] == 0) and np.all(out[key].numpy()[~hidden] == 1)
    kept = drop_modalities(inputs, tf.constant([1, 2], tf.int64), rate=0.0)
    np.testing.assert_array_equal(kept["availability"].numpy(), inputs["availability"].numpy())


@pytest.mark.slow
def test_run_classification_end_to_end(tiny_data, tmp_path, no_network, progress):
    output = str(tmp_path / "runs")
    summary = run_classification("mff", tiny_data, SplitConfig(num_folds=3), TINY, output, crop="manual")
    lines = list(progress)
    model_dir = tmp_path / "runs" / "mff_crop_manual"
    on_disk = json.loads((model_dir / "summary.json").read_text())
    for name in METRICS:
        assert set(on_disk[name]) >= {"mean", "sd"}, name
        assert set(on_disk["image_wise"][name]) >= {"mean", "sd"}, name
    assert on_disk["synthetic"] is True and "phantom" in on_disk["dataset"]
    assert on_disk["dataset_version"].count(".") == 2
    assert on_disk["backbone_weights"]["used"] == "random"
    assert on_disk["backbone_weights"]["requested"] == "none"
    assert len(on_disk["thresholds"]) == 3 and all(0.0 <= t <= 1.0 for t in on_disk["thresholds"])
    assert on_disk["timing"]["total_seconds"] > 0
    assert on_disk["config"]["classification"]["input_size"] == 32
    assert on_disk["crop"]["crop"] == "manual" and on_disk["crop"]["margin_px"] == 10
    assert on_disk["preset_notice"].startswith("QUICK PRESET")
    assert summary["accuracy"] == on_disk["accuracy"]
    assert (model_dir / "roc.png").is_file()
    for k in range(3):
        fold_dir = model_dir / f"fold_{k}"
        for name in ("metrics.json", "predictions.csv", "model.keras", "history.csv", "config.json"):
            assert (fold_dir / name).is_file(), (k, name)
        rows = list(csv.DictReader((fold_dir / "predictions.csv").open()))
        assert {row["split"] for row in rows} == {"val", "test"}
        assert all(0.0 <= float(row["probability_malignant"]) <= 1.0 for row in rows)
    assert any("SYNTHETIC PHANTOM" in line for line in lines)
    assert any("QUICK PRESET" in line for line in lines)
    assert any("mff_crop_manual fold 1 (2/3) epoch 1/1" in line and "left" in line for line in lines)
    assert "mff_crop_manual fold 2 (3/3) epoch 1/1" in (model_dir / "log.txt").read_text()  # the run's own log

    # Same settings again: the finished run is reused, nothing is retrained.
    progress.clear()
    reused = run_classification("mff", tiny_data, SplitConfig(num_folds=3), TINY, output, crop="manual")
    again = list(progress)
    assert reused["cache_key"] == on_disk["cache_key"] and reused["accuracy"] == on_disk["accuracy"]
    assert any("reusing the finished run" in line for line in again)
    assert not any(" epoch 1/" in line for line in again)

    # The trained MFF classifies B-mode-only examples through EmbraceNet's availability.
    bmode_only = evaluate_bmode_only("mff", tiny_data, trained_output=output, crop="manual")
    assert bmode_only["modalities_used"] == ["bmode"]
    assert "hidden (availability 0)" in bmode_only["label"] and "own test images" in bmode_only["label"]
    assert bmode_only["images_per_fold"] == [on_disk["folds"][k]["num_images"]["test"] for k in range(3)]
    assert bmode_only["num_images"] > 0 and set(bmode_only["accuracy"]) >= {"mean", "sd"}
    assert len(bmode_only["per_fold"]) == 3


@pytest.mark.slow
def test_predicted_crop_reads_the_segmentation_masks(tiny_data, tmp_path):
    arrays = load_arrays(dataset_lib.load_dataset(tiny_data)[0])
    masks_dir = tmp_path / "w_mm_unet"
    masks_dir.mkdir()
    save_predicted_masks(str(masks_dir / "predicted_masks.npz"), arrays["image_id"], arrays["mask"][..., 0])
    cropped, record = apply_crop_masks(arrays, "predicted", str(masks_dir / "predicted_masks.npz"))
    assert record["crop"] == "predicted"
    np.testing.assert_array_equal(cropped["mask"], arrays["mask"])
    summary = run_classification("vgg16_semode", tiny_data, SplitConfig(num_folds=3), TINY, str(tmp_path),
                                 crop="predicted")
    assert summary["crop"]["masks"].endswith("predicted_masks.npz")


def test_semode_models_refuse_bmode_only_data(busi_sample_dir, tmp_path):
    busi = DataConfig(source="busi", manual_dir=busi_sample_dir, image_size=64, data_dir=str(tmp_path / "tfds"))
    with pytest.raises(ValueError, match="has none"):
        run_classification("mff", busi, SplitConfig(num_folds=3), TINY, str(tmp_path / "runs"), crop="manual")
