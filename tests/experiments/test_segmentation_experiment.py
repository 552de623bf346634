"""Cross-validated segmentation runs (paper §3.4, §4.1) on a tiny phantom and the BUSI sample."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tf_bimodal.config import DataConfig, SplitConfig
from tf_bimodal.data import dataset as dataset_lib
from tf_bimodal.data.inputs import load_predicted_masks
from tf_bimodal.experiments.segmentation import (
    check_modalities,
    run_segmentation,
    shares_test_set,
    training_positions,
)
from tf_bimodal.training.metrics import METRIC_NAMES

from helpers import quick_experiment, tiny_phantom, tiny_segmentation

TINY_PHANTOM = tiny_phantom(seed=4, patients=5)
TINY_SEGMENTATION = tiny_segmentation(batch_size=8, epochs=1, early_stopping_patience=1, learning_rate=1e-3,
                                      augment=True)
TINY = quick_experiment("tiny", segmentation=TINY_SEGMENTATION)
SUMMARY_KEYS = {
    "model", "dataset", "synthetic", "preset", "config", "data_config", "split_config", "num_folds",
    "dice", "iou", "precision", "recall", "fold_union", "fold_union_reason", "folds", "modality_weights",
    "predicted_masks", "timing",
}


def test_shares_test_set():
    shared = [{"test": ["a", "b"]}, {"test": ["b", "a"]}]
    rotating = [{"test": ["a"]}, {"test": ["b"]}]
    assert shares_test_set(shared) and not shares_test_set(rotating)


def test_lesion_free_images_can_be_left_out_of_training():
    truth = np.zeros((5, 4, 4), np.uint8)
    truth[[1, 3], 2, 2] = 1
    positions = np.array([0, 1, 3, 4])
    np.testing.assert_array_equal(training_positions(positions, truth, lesion_free=True), positions)
    np.testing.assert_array_equal(training_positions(positions, truth, lesion_free=False), [1, 3])
    assert training_positions(np.array([], np.int64), truth, lesion_free=False).size == 0


def test_multimodal_models_refuse_data_without_semode():
    arrays = {"has_semode": np.array([False, False, False])}
    for model in ("mm_unet", "w_mm_unet_manual", "w_mm_unet"):
        with pytest.raises(ValueError, match="3 of 3 images .* have no SE-mode image .* run unet_bmode"):
            check_modalities(model, arrays, "busi")
    check_modalities("unet_bmode", arrays, "busi")


def test_unknown_model_or_unresolved_preset_is_refused(tmp_path):
    data = DataConfig(data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="segmentation model must be one of"):
        run_segmentation("segnet", data, SplitConfig(), TINY, str(tmp_path))
    with pytest.raises(TypeError, match="experiment must be an ExperimentConfig"):
        run_segmentation("unet_bmode", data, SplitConfig(), "quick", str(tmp_path))
    assert not (tmp_path / "bimodal_breast_us").exists()


@pytest.mark.slow
def test_run_segmentation_end_to_end_on_tiny_phantom(tmp_path, no_network, progress):
    data = DataConfig(source="phantom", image_size=32, data_dir=str(tmp_path / "tfds"), phantom=TINY_PHANTOM)
    split = SplitConfig(scheme="paper", num_folds=5)
    output = tmp_path / "runs"
    summary = run_segmentation("w_mm_unet", data, split, TINY, str(output))
    lines = list(progress)

    assert SUMMARY_KEYS <= set(summary)
    on_disk = json.loads((output / "w_mm_unet" / "summary.json").read_text())
    assert on_disk["dice"] == summary["dice"]
    assert summary["synthetic"] is True
    assert summary["dataset"] == f"bimodal_breast_us/{dataset_lib.builder_config_name(data)}"
    for name in METRIC_NAMES:
        assert {"mean", "sd", "values"} <= set(summary[name]) and 0.0 <= summary[name]["mean"] <= 1.0
    assert summary["num_folds"] == len(summary["folds"]) == 5
    # The paper protocol: every fold model is tested on the same held-out images.
    assert summary["shared_test_set"] is True
    assert set(summary["fold_union"]) == set(METRIC_NAMES)
    weights = summary["modality_weights"]
    assert weights["path_names"] == ["bmode", "semode_red", "semode_green", "semode_blue"]
    assert len(weights["per_fold"]) == summary["num_folds"]
    np.testing.assert_allclose(sum(weights["mean"]), 1.0, rtol=1e-5)

    for fold in summary["folds"]:
        fold_dir = output / "w_mm_unet" / f"fold_{fold['fold']}"
        metrics = json.loads((fold_dir / "metrics.json").read_text())
        assert set(metrics["test"]) == set(METRIC_NAMES)
        assert (fold_dir / "model.keras").is_file() and (fold_dir / "history.csv").is_file()
    assert (output / "data" / dataset_lib.builder_config_name(data) / "splits.json").is_file()

    masks = load_predicted_masks(str(output / "w_mm_unet" / "predicted_masks.npz"))
    index = dataset_lib.index_dataset(dataset_lib.prepare(data))
    assert sorted(masks) == sorted(index.image_ids)
    assert all(mask.shape == (32, 32) and mask.dtype == np.uint8 for mask in masks.values())

    assert any("SYNTHETIC PHANTOM" in line for line in lines)
    assert any("w_mm_unet fold" in line and "epoch 1/1" in line and "elapsed" in line for line in lines)
    log_text = (output / "w_mm_unet" / "log.txt").read_text()
    assert "w_mm_unet fold 4 (5/5) epoch 1/1" in log_text and "w_mm_unet fold union" in log_text
    assert summary["preset"] == "tiny" and summary["source_fingerprint"]["source"] == "phantom"


@pytest.mark.slow
def test_bmode_only_data_runs_unet_bmode_refuses_multimodal_and_rotating_folds_have_no_union(tmp_path, busi_sample_dir):
    data = DataConfig(source="busi", manual_dir=busi_sample_dir, image_size=32, data_dir=str(tmp_path / "tfds"))
    split = SplitConfig(scheme="kfold", num_folds=3)
    with pytest.raises(ValueError, match="no SE-mode image"):
        run_segmentation("w_mm_unet", data, split, TINY, str(tmp_path / "runs"))
    summary = run_segmentation("unet_bmode", data, split, TINY, str(tmp_path / "runs"))
    assert summary["synthetic"] is False
    assert 0.0 <= summary["dice"]["mean"] <= 1.0
    # Rotating test parts: no image is predicted by every fold model, so no fold union, and
    # each image's saved mask is its out-of-fold prediction.
    assert summary["fold_union"] is None and "do not share a test set" in summary["fold_union_reason"]
    assert summary["modality_weights"] is None
    masks = load_predicted_masks(summary["predicted_masks"])
    assert len(masks) == sum(fold["num_images"]["test"] for fold in summary["folds"]) == 50
    # Lesion images found or missed, per fold, beside the lesion-free ones.
    missed = summary["lesion_images_missed"]
    assert missed["images_per_fold"] == [fold["test_lesion_missed"]["images"] for fold in summary["folds"]]
    normal = summary["normal_images"]["images_per_fold"]
    assert sum(missed["images_per_fold"]) + sum(normal) == 50
    for key in ("missed_share", "empty_share"):
        shares = missed[key]["per_fold"]
        assert len(shares) == 3 and all(0.0 <= share <= 1.0 for share in shares)
        assert missed[key]["mean"] == pytest.approx(np.mean(shares))
    assert all(e <= m for e, m in zip(missed["empty_share"]["per_fold"], missed["missed_share"]["per_fold"]))
    assert "Dice < 0.2" in missed["rule"]


@pytest.mark.slow
def test_one_fold_per_job_writes_the_summary_when_every_fold_is_finished(tmp_path, progress):
    data = DataConfig(source="phantom", image_size=32, data_dir=str(tmp_path / "tfds"), phantom=TINY_PHANTOM)
    split = SplitConfig(scheme="kfold", num_folds=3)
    output = str(tmp_path / "runs")
    first = run_segmentation("unet_bmode", data, split, TINY, output, folds=[1])
    assert first["partial"] is True and first["finished_folds"] == [1] and first["missing_folds"] == [0, 2]
    assert not (tmp_path / "runs" / "unet_bmode" / "summary.json").exists()
    assert any("left to its own job (--fold 0)" in line for line in progress)
    second = run_segmentation("unet_bmode", data, split, TINY, output, folds=[0, 2])
    assert second["timing"]["reused_folds"] == [1] and [fold["fold"] for fold in second["folds"]] == [0, 1, 2]
    assert (tmp_path / "runs" / "unet_bmode" / "summary.json").is_file()
