"""TensorBoard logs: per-fold scalars, mask images, modality weights, ROC and confusion matrix,
and the grid search's HParams dashboard (issue: delivery)."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import pathlib

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from tf_bimodal.config import (
    CLASSIFICATION_PRESETS,
    DataConfig,
    GridSearchConfig,
    RuntimeConfig,
    SplitConfig,
)
from tf_bimodal.experiments.classification import run_classification
from tf_bimodal.experiments.grid_search import run_grid_search
from tf_bimodal.experiments.segmentation import run_segmentation
from tf_bimodal.models.segmentation.factory import build_segmenter
from tf_bimodal.training import runtime as runtime_lib
from tf_bimodal.training import tensorboard as tensorboard_lib
from tf_bimodal.training.segmentation import compile_segmenter
from tf_bimodal.training.tuning import SegmentationHyperModel

from helpers import quick_experiment, tiny_phantom, tiny_segmentation

TINY_PHANTOM = tiny_phantom(seed=7)
TINY_SEGMENTATION = tiny_segmentation(batch_size=8, epochs=2, early_stopping_patience=2, learning_rate=1e-3,
                                      augment=False)
TINY_CLASSIFICATION = dataclasses.replace(
    CLASSIFICATION_PRESETS["quick"], input_size=32, stackwise_num_filters=(4, 4, 8, 8, 8),
    stackwise_num_repeats=(1, 1, 1, 1, 1), fc_units=16, embracement_size=16, decision_units=(8, 8),
    batch_size=8, epochs=1,
)
SPLIT = SplitConfig(num_folds=2)
W_MM_UNET_PATHS = ("bmode", "semode_red", "semode_green", "semode_blue")


def read_run(run_dir) -> dict:
    """``{tag: {"plugin", "steps", "values"}}`` of every event file of one TensorBoard run."""
    tags = {}
    for path in sorted(glob.glob(os.path.join(str(run_dir), "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                entry = tags.setdefault(value.tag, {"plugin": value.metadata.plugin_data.plugin_name,
                                                    "steps": [], "values": []})
                entry["steps"].append(int(event.step))
                entry["values"].append(tf.make_ndarray(value.tensor) if value.HasField("tensor") else None)
    return tags


def event_files(run_dir) -> list:
    return glob.glob(os.path.join(str(run_dir), "events.out.tfevents.*"))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return DataConfig(source="phantom", image_size=64, data_dir=str(tmp_path_factory.mktemp("tfds")),
                      phantom=TINY_PHANTOM)


# --------------------------------------------------------------------------- fast unit tests


WORKERS = {"worker": ["host0:1234", "host1:1234"]}


@pytest.mark.parametrize("runtime, tf_config, writes", [
    (RuntimeConfig(), None, True),
    (RuntimeConfig(strategy="multi_worker"), {"cluster": WORKERS, "task": {"type": "worker", "index": 0}}, True),
    (RuntimeConfig(strategy="multi_worker"), {"cluster": WORKERS, "task": {"type": "worker", "index": 1}}, False),
])
def test_only_the_chief_writes(monkeypatch, tmp_path, runtime, tf_config, writes):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert bool(tensorboard_lib.fold_callbacks(runtime, str(tmp_path), "classification")) is writes
    assert (tensorboard_lib.write_fold_summary(str(tmp_path), [0, 1], [0.2, 0.7], 0.5, runtime) is not None) is writes


def test_mask_panels_put_images_truth_and_prediction_side_by_side():
    size = 4
    inputs = {"bmode": np.full((2, size, size, 1), 10, np.uint8), "semode": np.full((2, size, size, 3), 20, np.uint8)}
    masks = np.zeros((2, size, size, 1), np.uint8)
    masks[:, 1:3, 1:3] = 1
    probabilities = np.full((2, size, size, 1), 0.5, np.float32)
    strips = tensorboard_lib.mask_panels(inputs, masks, probabilities)
    assert strips.shape == (2, size, 4 * size + 3 * 2, 3) and strips.dtype == np.uint8
    step = size + 2
    assert np.all(strips[:, :, :size] == 10) and np.all(strips[:, :, step:step + size] == 20)
    truth = strips[:, :, 2 * step:2 * step + size, 0]
    np.testing.assert_array_equal(truth, masks[..., 0] * 255)
    assert np.all(strips[:, :, 3 * step:] == 128)  # 0.5 -> 127.5, rounded to even
    assert np.all(strips[:, :, size:size + 2] == 128)  # the separating bar


def test_nothing_is_written_when_tensorboard_is_off(tmp_path):
    off = RuntimeConfig(tensorboard=False)
    masks = np.ones((2, 32, 32, 1), np.uint8)
    assert tensorboard_lib.fold_callbacks(off, str(tmp_path), "segmentation",
                                          val_inputs={"bmode": masks}, val_masks=masks) == []
    assert tensorboard_lib.write_fold_summary(str(tmp_path), [0, 1], [0.2, 0.7], 0.5, off) is None
    assert tensorboard_lib.write_hparams(str(tmp_path / "hp"), {"loss": ("dice",)}, {"val_dice": ""},
                                         [("run", {"loss": "dice"}, {"val_dice": 0.5})], off) is None
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="kind must be"):
        tensorboard_lib.fold_callbacks(RuntimeConfig(), str(tmp_path), "detection")


def test_fold_summary_has_roc_and_confusion_matrix_and_is_replaced_when_written_again(tmp_path):
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    probabilities = np.array([0.1, 0.4, 0.6, 0.3, 0.7, 0.8, 0.9])
    for _ in range(2):
        run_dir = tensorboard_lib.write_fold_summary(str(tmp_path), labels, probabilities, 0.5)
    assert run_dir == os.path.join(tensorboard_lib.fold_log_dir(str(tmp_path)), "test") and len(event_files(run_dir)) == 1
    tags = read_run(run_dir)
    assert tags["roc_curve"]["plugin"] == "images" and tags["confusion_matrix"]["plugin"] == "images"
    assert tags["confusion_matrix_counts"]["plugin"] == "text"
    counts = tags["confusion_matrix_counts"]["values"][0].item().decode()
    assert "| benign | 2 | 1 |" in counts and "| malignant | 1 | 3 |" in counts
    assert float(tags["roc_auc"]["values"][0]) == pytest.approx(roc_auc_score(labels, probabilities))
    assert float(tags["sensitivity"]["values"][0]) == pytest.approx(3 / 4)
    assert float(tags["specificity"]["values"][0]) == pytest.approx(2 / 3)
    assert float(tags["threshold"]["values"][0]) == pytest.approx(0.5)

    # One class only: no AUC, still the figures.
    one_class = read_run(tensorboard_lib.write_fold_summary(str(tmp_path), [1, 1], [0.4, 0.9], 0.5))
    assert {"roc_curve", "confusion_matrix", "sensitivity"} <= set(one_class)
    assert "roc_auc" not in one_class and "specificity" not in one_class  # no benign image


def test_segmentation_samples_every_few_epochs_and_at_the_last(tmp_path):
    keras.utils.set_random_seed(0)
    config = dataclasses.replace(TINY_SEGMENTATION, image_size=16, stackwise_num_filters=(2,), bottleneck_filters=2)
    model = compile_segmenter(build_segmenter("unet_bmode", config), config)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 16, 16, 1), dtype=np.uint8)
    masks = (rng.random((5, 16, 16, 1)) > 0.5).astype(np.uint8)
    callbacks = tensorboard_lib.fold_callbacks(RuntimeConfig(image_every=2), str(tmp_path), "segmentation",
                                               model=model, val_inputs={"bmode": images}, val_masks=masks)
    assert [type(c).__name__ for c in callbacks] == ["TensorBoard", "SegmentationSamples"]
    model.fit({"bmode": images.astype(np.float32) / 255}, masks.astype(np.float32), epochs=3, batch_size=5,
              callbacks=callbacks, verbose=0)
    log_dir = pathlib.Path(tensorboard_lib.fold_log_dir(str(tmp_path)))
    samples = read_run(log_dir / "validation_samples")
    assert samples["predicted_masks"]["steps"] == [1, 2]  # every 2nd epoch (epoch 2 = step 1) and the last
    stored = samples["predicted_masks"]["values"][0]  # [width, height, 3 encoded PNGs]
    assert len(stored) == 2 + 3
    assert not any(tag.startswith("modality_weights/") for tag in samples)  # single-path U-Net
    assert {"epoch_loss", "epoch_dice"} <= set(read_run(log_dir / "train"))


def test_grid_search_settings_are_built_in_the_runtime_precision():
    config = dataclasses.replace(TINY_SEGMENTATION, stackwise_num_filters=(2,), bottleneck_filters=2)
    grid = GridSearchConfig(models=("unet_bmode",), learning_rates=(1e-3,), batch_sizes=(8,), losses=("dice",))
    runtime = RuntimeConfig(precision="mixed_bfloat16")
    hypermodel = SegmentationHyperModel("unet_bmode", config, grid, {}, [], [], 32, runtime=runtime)
    with runtime_lib.precision(runtime):
        keras.backend.clear_session()  # as KerasTuner does before each build: the policy falls back to float32
        model = hypermodel.build(keras_tuner.HyperParameters())
    assert model.dtype_policy.name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"


# --------------------------------------------------------------------------- the experiments


@pytest.mark.slow
def test_segmentation_folds_log_scalars_masks_and_modality_weights(tiny_data, tmp_path, no_network):
    runtime = RuntimeConfig(image_every=1)
    run_segmentation("w_mm_unet", tiny_data, SPLIT, quick_experiment(segmentation=TINY_SEGMENTATION, runtime=runtime),
                     str(tmp_path))
    for k in range(SPLIT.num_folds):
        log_dir = pathlib.Path(tensorboard_lib.fold_log_dir(str(tmp_path / "w_mm_unet" / f"fold_{k}")))
        assert sorted(os.listdir(log_dir)) == ["train", "validation", "validation_samples"]
        train, validation = read_run(log_dir / "train"), read_run(log_dir / "validation")
        for run in (train, validation):
            assert run["epoch_loss"]["steps"] == [0, 1] and run["epoch_dice"]["steps"] == [0, 1]
        samples = read_run(log_dir / "validation_samples")
        assert samples["predicted_masks"]["plugin"] == "images"
        assert samples["predicted_masks"]["steps"] == [0, 1]
        width, height = (int(v) for v in samples["predicted_masks"]["values"][0][:2])
        assert (width, height) == (4 * 32 + 3 * 2, 32)  # B-mode | SE-mode | truth | prediction
        weights = np.array([samples[f"modality_weights/{name}"]["values"] for name in W_MM_UNET_PATHS], np.float64)
        assert weights.shape == (4, 2) and all(samples[f"modality_weights/{n}"]["steps"] == [0, 1]
                                                for n in W_MM_UNET_PATHS)
        np.testing.assert_allclose(weights.sum(axis=0), 1.0, atol=1e-5)  # softmax weights per image


@pytest.mark.slow
def test_classification_folds_log_scalars_roc_and_confusion_matrix(tiny_data, tmp_path, no_network):
    summary = run_classification("mff", tiny_data, SPLIT, quick_experiment(classification=TINY_CLASSIFICATION),
                                 str(tmp_path), crop="manual")
    for k in range(SPLIT.num_folds):
        log_dir = pathlib.Path(tensorboard_lib.fold_log_dir(str(tmp_path / "mff_crop_manual" / f"fold_{k}")))
        assert sorted(os.listdir(log_dir)) == ["test", "train", "validation"]
        assert read_run(log_dir / "train")["epoch_loss"]["steps"] == [0]
        assert read_run(log_dir / "validation")["epoch_loss"]["steps"] == [0]
        test = read_run(log_dir / "test")
        assert {"roc_curve", "confusion_matrix", "confusion_matrix_counts", "threshold"} <= set(test)
        assert float(test["threshold"]["values"][0]) == pytest.approx(summary["thresholds"][k])
        if "roc_auc" in test:
            assert 0.0 <= float(test["roc_auc"]["values"][0]) <= 1.0


@pytest.mark.slow
def test_runs_without_tensorboard_write_no_logs(tiny_data, tmp_path):
    config = dataclasses.replace(TINY_SEGMENTATION, epochs=1)
    run_segmentation("unet_bmode", tiny_data, SPLIT,
                     quick_experiment(segmentation=config, runtime=RuntimeConfig(tensorboard=False)), str(tmp_path))
    assert (tmp_path / "unet_bmode" / "summary.json").is_file()
    assert not [root for root, dirs, _ in os.walk(tmp_path) if "tensorboard" in dirs]


@pytest.mark.slow
def test_grid_search_writes_the_hparams_dashboard(tiny_data, tmp_path, no_network):
    grid = GridSearchConfig(models=("unet_bmode",), learning_rates=(1e-2, 1e-3), batch_sizes=(8,),
                            losses=("dice",), epochs=1)
    summary = run_grid_search(tiny_data, SPLIT, quick_experiment(grid_search=grid), str(tmp_path))
    log_dir = tmp_path / "grid_search" / "tensorboard" / "unet_bmode"
    assert summary["files"]["tensorboard"] == {"unet_bmode": str(log_dir)}
    assert read_run(log_dir)["_hparams_/experiment"]["plugin"] == "hparams"
    rows = summary["models"]["unet_bmode"]["settings"]
    runs = ["setting_01_lr_1e-02_batch_8_dice", "setting_02_lr_1e-03_batch_8_dice"]
    assert sorted(path.name for path in log_dir.iterdir() if path.is_dir()) == runs

    def check():
        assert len(rows) == len(runs)
        for run, row in zip(runs, rows):
            session = read_run(log_dir / run)
            assert session["_hparams_/session_start_info"]["plugin"] == "hparams"
            assert float(session["val_dice"]["values"][0]) == pytest.approx(row["val_dice"])
            assert len(event_files(log_dir / run)) == 1

    check()
    # A rerun reuses the settings and writes the dashboard again, complete and not doubled.
    again = run_grid_search(tiny_data, SPLIT, quick_experiment(grid_search=grid), str(tmp_path))
    assert again["timing"]["settings_reused"] == 2 and len(event_files(log_dir)) == 1
    check()
