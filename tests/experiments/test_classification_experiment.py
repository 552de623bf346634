"""The classification experiment end to end on a tiny phantom (§3.3, §3.4, §4.2)."""

from __future__ import annotations

import csv
import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.config import CLASSIFICATION_PRESETS, DataConfig, SplitConfig
from tf_bimodal.data import dataset as dataset_lib
from tf_bimodal.data.cropping import scaled_margin
from tf_bimodal.data.inputs import apply_crop_masks, drop_modalities, load_arrays, save_predicted_masks
from tf_bimodal.experiments import classification as classification_experiment
from tf_bimodal.experiments.bmode_only import evaluate_bmode_only
from tf_bimodal.experiments.classification import ClassificationTask, run_classification
from tf_bimodal.experiments.cross_validation import Fold
from tf_bimodal.training.classification import build_classifier_for_training

from helpers import quick_experiment, tiny_phantom

TINY_PHANTOM = tiny_phantom(seed=3)
TINY_PRESET = dataclasses.replace(CLASSIFICATION_PRESETS["quick"], epochs=1)
TINY = quick_experiment(classification=TINY_PRESET)
CONTEXT = quick_experiment(classification=dataclasses.replace(TINY_PRESET, context_margin=150))

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
        (dict(model="mff", experiment=CONTEXT), ValueError, "single-modal VGG-16 .* got model 'mff'"),
        (dict(model="vgg16_bmode", crop="none", experiment=CONTEXT), ValueError, "on cropped inputs"),
    ]:
        arguments = dict(data=tiny_data, split=SplitConfig(num_folds=3), experiment=TINY, crop="manual",
                         output=str(tmp_path))
        arguments.update(kwargs)
        with pytest.raises(error, match=message):
            run_classification(**arguments)


class _Built(Exception):
    """Stops a fold right after its classifier would be built."""


def test_every_fold_builds_its_classifier_with_its_own_seed(monkeypatch):
    """Fold k's EmbraceNet draws from ``config.seed + k`` (the driver's ``Fold.seed``), as the
    segmenters' folds do; the same fold again gets the same seed."""
    seeds = []

    def build(model, config, loader=None, seed=None):
        seeds.append(seed)
        raise _Built

    monkeypatch.setattr(classification_experiment, "build_classifier_for_training", build)
    config = dataclasses.replace(TINY_PRESET, seed=10)
    task = ClassificationTask("mff", "manual", config, None, {}, {"a", "b", "c"}, None, {}, {}, "", SplitConfig(),
                              "quick", None)
    assert task.seed == 10
    for k in (0, 1, 0):
        fold = Fold(fold=k, number=k, count=2, parts={"train": ["a"], "val": ["b"], "test": ["c"]}, folder="",
                    label=f"fold {k}", seed=task.seed + k)
        with pytest.raises(_Built):
            task.train_fold(fold)
    assert seeds == [10, 11, 10]


def _embracement_draws(seed):
    """The EmbraceNet choices of a freshly built MFF (same initial weights) in training mode."""
    keras.utils.set_random_seed(0)  # the same docking weights for every seed
    model, _, _ = build_classifier_for_training("mff", TINY_PRESET, seed=seed)
    embracenet = model.get_layer("embracenet")
    features = [np.ones((4, TINY_PRESET.fc_units), "float32"), np.zeros((4, TINY_PRESET.fc_units), "float32")]
    return [np.asarray(embracenet(features, training=True)) for _ in range(2)]


def test_two_fold_seeds_draw_differently_and_a_rerun_draws_the_same():
    fold0, fold1, fold0_again = _embracement_draws(0), _embracement_draws(1), _embracement_draws(0)
    assert not np.array_equal(fold0[0], fold1[0])
    assert len(fold0) == len(fold0_again) == 2
    for first, again in zip(fold0, fold0_again):
        np.testing.assert_array_equal(first, again)


def test_predicted_crop_without_segmentation_masks_says_what_to_run(tiny_data, tmp_path):
    with pytest.raises(FileNotFoundError, match="run_experiments.py --model w_mm_unet"):
        run_classification("mff", tiny_data, SplitConfig(num_folds=3), TINY, str(tmp_path), crop="predicted")


def test_crop_margin_scales_the_paper_margin():
    assert scaled_margin(DataConfig().image_size) == 50
    assert scaled_margin(DataConfig(image_size=64).image_size) == 10


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
    # Fold k's seed is the preset's + k: its EmbraceNet draws (and shuffling, augmentation) differ by fold.
    assert [fold["seed"] for fold in on_disk["folds"]] == [TINY_PRESET.seed + k for k in range(3)]
    for k in range(3):
        assert json.loads((model_dir / f"fold_{k}" / "config.json").read_text())["seed"] == TINY_PRESET.seed + k
        saved = keras.saving.load_model(str(model_dir / f"fold_{k}" / "model.keras"), compile=False)
        assert saved.get_layer("embracenet").seed == TINY_PRESET.seed + k

    # Same settings again: the finished run is reused, nothing is retrained.
    progress.clear()
    reused = run_classification("mff", tiny_data, SplitConfig(num_folds=3), TINY, output, crop="manual")
    again = list(progress)
    assert reused["cache_key"] == on_disk["cache_key"] and reused["accuracy"] == on_disk["accuracy"]
    assert any("reusing the finished run" in line for line in again)
    assert not any(" epoch 1/" in line for line in again)

    # A rerun of one fold (its job started again) trains and predicts as the first time.
    fold_dir = model_dir / "fold_1"
    first = list(csv.DictReader((fold_dir / "predictions.csv").open()))
    (fold_dir / "metrics.json").unlink()
    (model_dir / "summary.json").unlink()
    run_classification("mff", tiny_data, SplitConfig(num_folds=3), TINY, output, crop="manual", folds=[1])
    again = list(csv.DictReader((fold_dir / "predictions.csv").open()))
    assert [row["image_id"] for row in again] == [row["image_id"] for row in first]
    np.testing.assert_allclose([float(row["probability_malignant"]) for row in again],
                               [float(row["probability_malignant"]) for row in first], atol=1e-6)

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


@pytest.mark.slow
def test_late_integration_records_each_branch_best_epoch(tiny_data, tmp_path, progress):
    """§3.3.3: the two classifiers of late integration are selected independently, each on
    its own validation loss; the fold records both epochs."""
    experiment = quick_experiment(classification=dataclasses.replace(TINY_PRESET, epochs=2))
    summary = run_classification("mff_late", tiny_data, SplitConfig(num_folds=2), experiment, str(tmp_path),
                                 crop="manual")
    assert len(summary["folds"]) == 2
    for fold in summary["folds"]:
        assert fold["best_epoch"] is None
        assert set(fold["branch_best_epochs"]) == {"bmode", "semode"}
        assert all(1 <= epoch <= fold["epochs_run"] for epoch in fold["branch_best_epochs"].values())
    assert any("best epochs bmode" in line and "semode" in line for line in progress)


def test_crops_split_into_masks_and_shape_and_plan_their_steps():
    from tf_bimodal.config import crop_masks, crop_shape
    from tf_bimodal.experiments.protocol import plan_steps

    assert [(crop_masks(c), crop_shape(c)) for c in ("predicted", "manual", "none", "predicted_mask_shape",
                                                     "manual_mask_shape")] == [
        ("predicted", "rectangle"), ("manual", "rectangle"), ("none", None), ("predicted", "mask"),
        ("manual", "mask")]
    with pytest.raises(ValueError, match="crop must be one of"):
        crop_shape("mask")
    # W-MM-U-Net's masks are made first for both shapes of the predicted crop, never for manual crops.
    assert [row.name for row in plan_steps("mff", "predicted_mask_shape")] == ["w_mm_unet",
                                                                               "mff_crop_predicted_mask_shape"]
    assert [row.name for row in plan_steps("mff", "manual_mask_shape")] == ["mff_crop_manual_mask_shape"]


def test_report_names_the_crops_of_table_2():
    from tf_bimodal.experiments.report import crop_caption, crop_label, other_classification_rows

    rows = {row.name: row for row in other_classification_rows()}
    assert rows["mff_crop_predicted_mask_shape"].modality == "Cropped image, mask shape (B-mode + SE-mode)"
    assert rows["vgg16_bmode_crop_none"].modality == "Full image (B-mode)"
    assert "mff" not in rows and "mff_crop_manual" not in rows  # the paper's rows
    assert crop_label("manual_mask_shape") == "manual crops, mask shape"
    rectangle = {"crop": {"shape": "rectangle", "margin_px": 10, "input_size": 64}}
    mask = {"crop": {"shape": "mask", "margin_px": 10, "input_size": 64}}
    assert crop_caption({"mff": rectangle}).endswith("margin of 10 px (50 px at 336 px, scaled to the data's "
                                                      "image size), resized to 64 px; rectangles.")
    assert "except the rows marked \"mask shape\"" in crop_caption({"mff": rectangle, "x": mask})
    assert crop_caption({"mff_crop_none": {"crop": {"shape": None}}}) == ""
