"""The auto-weight stage of W-MM-U-Net (paper §3.2.2): the end-to-end branch and the pre-stage."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.models.segmentation import build_segmenter
from tf_bimodal.models.segmentation.auto_weight import (
    PRESTAGE_CLASSES,
    AutoWeightClassifier,
    apply_auto_weight_resnet,
    apply_residual_block,
    input_channel_importance,
    prestage_weights,
)
from tf_bimodal.training.segmentation import train_auto_weight_prestage

from harness import run_model_saving_test, run_model_test
from segmentation_helpers import TINY_CONFIG, random_example_inputs, random_inputs

RNG = np.random.default_rng(0)


def test_auto_weights_start_equal_and_top_skip_is_then_the_average():
    model = build_segmenter("w_mm_unet", TINY_CONFIG)
    inputs = random_inputs([1, 3])
    np.testing.assert_allclose(model.modality_weights_model(inputs), 0.25, rtol=1e-6)
    probe = keras.Model(
        model.inputs,
        [model.get_layer("skip_level1_weighted").output]
        + [model.get_layer(f"path{p}_level1_relu2").output for p in (1, 2, 3, 4)],
    )
    skip, *paths = probe(inputs)
    np.testing.assert_allclose(skip, np.mean(paths, axis=0), rtol=1e-5, atol=1e-6)


RESNET_CASES = [
    # stacked paths P, stage filters, batch norm, input side
    (4, (4,), True, 16),
    (2, (2, 4, 4), False, 32),
]


@pytest.mark.parametrize("num_paths, filters, use_batch_norm, side", RESNET_CASES)
def test_auto_weight_resnet_harness(num_paths, filters, use_batch_norm, side):
    """(batch, P) weights, summing to 1, float32 under any policy (the softmax is float32)."""

    def build():
        stacked = keras.Input((side, side, num_paths), name="stacked")
        return keras.Model(stacked, apply_auto_weight_resnet(stacked, num_paths, filters, use_batch_norm))

    data = RNG.random((3, side, side, num_paths), dtype=np.float32)
    model = run_model_test(build, data, (None, num_paths), expected_output_dtype="float32")
    np.testing.assert_allclose(np.asarray(model(data)), 1.0 / num_paths, rtol=1e-6)  # zero logits
    assert model.get_layer("auto_weight_logits").kernel.shape == (filters[-1], num_paths)


RESIDUAL_CASES = [
    # input shape, filters, stride, expected output shape, has a projection shortcut
    ((16, 16, 4), 4, 1, (None, 16, 16, 4), False),
    ((16, 16, 4), 8, 1, (None, 16, 16, 8), True),
    ((15, 15, 2), 4, 2, (None, 8, 8, 4), True),  # odd sides: "same" padding rounds up
]


@pytest.mark.parametrize("input_shape, filters, stride, expected_shape, projection", RESIDUAL_CASES)
def test_residual_block_harness(input_shape, filters, stride, expected_shape, projection):
    def build():
        x = keras.Input(input_shape)
        return keras.Model(x, apply_residual_block(x, filters, stride, True, name="block"))

    model = run_model_test(build, RNG.random((2, *input_shape), dtype=np.float32), expected_shape)
    names = {layer.name for layer in model.layers}
    assert ("block_shortcut" in names) == projection
    assert ("block_shortcut_pool" in names) == (stride != 1)


# --------------------------------------------------------------------------- the pre-stage (§3.2.2)


def test_auto_weight_classifier_stacks_the_modal_paths():
    model = AutoWeightClassifier(stackwise_num_filters=(4,), image_size=16)
    assert model.path_names == ["bmode", "semode_red", "semode_green", "semode_blue"]
    assert model.get_layer("auto_weight_input").output.shape[-1] == 4  # the paper's four channels
    assert tuple(model.output.shape) == (None, len(PRESTAGE_CLASSES))
    strain = AutoWeightClassifier(colour_mode="strain", stackwise_num_filters=(4,))
    assert strain.path_names == ["bmode", "semode_strain"]


@pytest.mark.parametrize("kwargs", [dict(stackwise_num_filters=(2, 4), image_size=16),
                                    dict(colour_mode="strain", stackwise_num_filters=(4,), use_batch_norm=False)])
def test_auto_weight_classifier_harness(kwargs, tmp_path):
    inputs = random_inputs([1, 3], size=16)
    model = run_model_test(lambda: AutoWeightClassifier(**kwargs), inputs, (None, 2), expected_output_dtype="float32")
    run_model_saving_test(model, inputs, tmp_path)


@pytest.mark.parametrize(
    "kwargs, rule",
    [(dict(input_channels=(1,)), "one channel count per input"), (dict(input_channels=(1, 2)), "1 \\(grey\\)"),
     (dict(colour_mode="hsv"), "colour_mode"), (dict(stackwise_num_filters=()), "stackwise_num_filters")],
)
def test_auto_weight_classifier_rejects_bad_arguments(kwargs, rule):
    with pytest.raises(ValueError, match=rule):
        AutoWeightClassifier(**kwargs)


def test_importance_is_the_mean_absolute_input_gradient_of_the_log_odds():
    """In ``channels`` mode the stacked channels are the raw channels, so the importance is
    the gradient with respect to the model's own inputs."""
    keras.utils.set_random_seed(0)
    model = AutoWeightClassifier(stackwise_num_filters=(4,), image_size=16)
    inputs = {key: tf.constant(value) for key, value in random_example_inputs(batch=3, size=16).items()}
    with tf.GradientTape() as tape:
        tape.watch(list(inputs.values()))
        logits = model(inputs, training=False)
        log_odds = tf.reduce_sum(logits[:, 1] - logits[:, 0])
    bmode, semode = tape.gradient(log_odds, [inputs["bmode"], inputs["semode"]])
    expected = np.concatenate([np.abs(bmode).mean(axis=(0, 1, 2)), np.abs(semode).mean(axis=(0, 1, 2))])
    batches = [({"bmode": inputs["bmode"][:2], "semode": inputs["semode"][:2]}, None),
               {"bmode": inputs["bmode"][2:], "semode": inputs["semode"][2:]}]
    np.testing.assert_allclose(input_channel_importance(model, batches), expected, rtol=1e-4)


@pytest.mark.parametrize(
    "importance, expected",
    [([2.0, 1.0, 1.0], [0.5, 0.25, 0.25]), ([1.0, 0.0], [1 / (1 + 1e-6), 1e-6 / (1 + 1e-6)])],
)
def test_prestage_weights_normalise_and_keep_a_floor(importance, expected):
    np.testing.assert_allclose(prestage_weights(importance), expected, rtol=1e-9)


@pytest.mark.parametrize("importance", [[], [0.0, 0.0], [1.0, -0.5], [1.0, np.nan]])
def test_prestage_weights_reject_bad_importances(importance):
    with pytest.raises(ValueError, match="importances must be"):
        prestage_weights(importance)


def _labelled_arrays(count=24, size=16, seed=0):
    """Malignant exactly when the SE image is red inside a disc; B-mode, green and blue are
    noise that does not depend on the class."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2)
    labels = np.arange(count) % 2
    semode = (rng.random((count, size, size, 3)) * 60).astype(np.uint8)
    semode[labels == 1, ..., 0] += (180 * disc).astype(np.uint8)
    return {
        "image_id": np.array([f"image{i}" for i in range(count)]),
        "patient_id": np.array([f"patient{i}" for i in range(count)]),
        "label": labels.astype(np.int64),
        "bmode": (rng.random((count, size, size, 1)) * 255).astype(np.uint8),
        "semode": semode,
        "has_semode": np.ones(count, bool),
        "mask": np.zeros((count, size, size, 1), np.uint8),
        "has_mask": np.zeros(count, bool),
    }


@pytest.mark.slow
def test_prestage_gives_the_class_bearing_channel_the_largest_weight():
    arrays = _labelled_arrays()
    config = dataclasses.replace(TINY_CONFIG, auto_weight_filters=(8,), auto_weight_epochs=12, batch_size=8,
                                 auto_weight_learning_rate=1e-2, augment=False)
    keras.utils.set_random_seed(0)
    ids = list(arrays["image_id"])
    record = train_auto_weight_prestage(arrays, ids[:16], ids[16:], config, image_size=16, seed=0)
    assert record["path_names"] == ["bmode", "semode_red", "semode_green", "semode_blue"]
    np.testing.assert_allclose(sum(record["weights"]), 1.0, rtol=1e-9)
    assert int(np.argmax(record["weights"])) == 1, record
    assert record["val_accuracy"] >= 0.75, record
    assert 1 <= record["best_epoch"] <= record["epochs_run"] <= 12
    assert record["num_images"] == {"train": 16, "val": 8}


def test_prestage_needs_labelled_images_in_both_parts():
    arrays = _labelled_arrays(count=4)
    arrays["label"][:] = 2  # e.g. BUSI's normal class: not benign or malignant
    with pytest.raises(ValueError, match="needs benign or malignant images"):
        train_auto_weight_prestage(arrays, ["image0", "image1"], ["image2"], TINY_CONFIG, image_size=16)
