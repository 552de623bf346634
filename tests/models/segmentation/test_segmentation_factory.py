"""Build the five segmenters of Table 1 (paper §4.1.1): harness, serialization, training."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.config import SEGMENTATION_MODELS, SEGMENTATION_PRESETS
from tf_bimodal.models.segmentation import build_segmenter
from tf_bimodal.models.segmentation.factory import (
    MODEL_INPUTS,
    default_manual_weights,
    is_multimodal,
    model_weighting,
)
from tf_bimodal.training.segmentation import compile_segmenter

from harness import check_config_round_trip, run_model_saving_test, run_model_test
from segmentation_helpers import TINY_CONFIG, blob_batch, random_example_inputs


@pytest.mark.parametrize("model_name", SEGMENTATION_MODELS)
def test_factory_builds_each_table1_model(model_name):
    """Shapes, and under mixed policies the float32 mask and every layer's dtype."""
    inputs = {**random_example_inputs(), "mask": random_example_inputs()["bmode"]}  # extra keys are ignored
    model = run_model_test(
        lambda: build_segmenter(model_name, TINY_CONFIG), inputs, (None, 32, 32, 1), expected_output_dtype="float32"
    )
    assert model.name == model_name
    assert tuple(model(inputs).shape) == (2, 32, 32, 1)
    assert [tensor.name for tensor in model.inputs] == list(MODEL_INPUTS[model_name])
    assert is_multimodal(model_name) == (len(MODEL_INPUTS[model_name]) > 1)


def test_default_manual_weights_split_each_modality_over_its_paths():
    np.testing.assert_allclose(default_manual_weights(["bmode", "semode"], [1, 3]), [1 / 2, 1 / 6, 1 / 6, 1 / 6])
    model = build_segmenter("w_mm_unet_manual", TINY_CONFIG)
    np.testing.assert_allclose(model.modality_weights, [1 / 2, 1 / 6, 1 / 6, 1 / 6])
    custom = build_segmenter("w_mm_unet_manual", dataclasses.replace(TINY_CONFIG, manual_weights=(2, 1, 1, 0.5)))
    np.testing.assert_allclose(custom.modality_weights, np.array([2, 1, 1, 0.5]) / 4.5)


def test_factory_rejects_unknown_model():
    with pytest.raises(ValueError, match="segmentation model must be one of"):
        build_segmenter("deeplab", TINY_CONFIG)


# --------------------------------------------------------------------------- serialization


@pytest.mark.parametrize("model_name", SEGMENTATION_MODELS)
def test_save_and_reload_gives_identical_outputs(model_name, tmp_path):
    run_model_saving_test(build_segmenter(model_name, TINY_CONFIG), random_example_inputs(), tmp_path)


@pytest.mark.parametrize(
    "model_name, config",
    [
        ("unet_semode", TINY_CONFIG),
        ("w_mm_unet_manual", TINY_CONFIG),
        ("w_mm_unet", dataclasses.replace(TINY_CONFIG, dense_across_levels=True, colour_mode="strain")),
    ],
)
def test_config_round_trip(model_name, config):
    model = build_segmenter(model_name, config)
    clone = check_config_round_trip(model)
    clone.set_weights(model.get_weights())
    inputs = random_example_inputs()
    np.testing.assert_allclose(clone(inputs), model(inputs), rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("model_name", ["unet_bmode", "mm_unet", "w_mm_unet"])
def test_training_steps_lower_the_loss(model_name):
    keras.utils.set_random_seed(1)
    model = compile_segmenter(build_segmenter(model_name, TINY_CONFIG), TINY_CONFIG)
    inputs, masks = blob_batch()
    # train_on_batch returns the loss of the batch before that step's update (training mode,
    # so batch normalization uses the batch statistics in both).
    losses = [float(model.train_on_batch(inputs, masks, return_dict=True)["loss"]) for _ in range(4)]
    assert losses[-1] < losses[0], losses
    if model_name == "w_mm_unet":
        kernel = model.get_layer("auto_weight_logits").kernel
        assert float(tf.reduce_max(tf.abs(kernel))) > 0, "the zero-initialised weight logits must learn"


# --------------------------------------------------------------------------- the paper preset's options


PAPER_TINY = dataclasses.replace(
    SEGMENTATION_PRESETS["paper"], image_size=32, stackwise_num_filters=(2, 4), bottleneck_filters=8,
    auto_weight_filters=(4,), batch_size=4, learning_rate=1e-2,
)
"""The ``paper`` preset's architecture choices at test size."""


def test_paper_preset_is_ivdnet_form_with_prestage_weights():
    paper = SEGMENTATION_PRESETS["paper"]
    assert (paper.dense_across_levels, paper.contraction_block, paper.skip_fusion, paper.auto_weight) == (
        True, "ivdnet", "ivdnet", "prestage")
    cpu = SEGMENTATION_PRESETS["cpu"]  # the paper's choices but U-Net's cheaper blocks
    assert (cpu.dense_across_levels, cpu.contraction_block, cpu.skip_fusion, cpu.auto_weight) == (
        True, "conv_bn_relu", "ivdnet", "prestage")
    quick = SEGMENTATION_PRESETS["quick"]  # the earlier, cheapest choices, for tests
    assert (quick.dense_across_levels, quick.contraction_block, quick.skip_fusion, quick.auto_weight) == (
        False, "conv_bn_relu", "concat_average", "end_to_end")
    assert model_weighting("w_mm_unet", paper) == "prestage"
    assert model_weighting("w_mm_unet", TINY_CONFIG) == "auto"
    assert model_weighting("unet_bmode", paper) is None


def test_w_mm_unet_takes_the_prestage_weights():
    model = build_segmenter("w_mm_unet", PAPER_TINY, modality_weights=[2, 1, 1, 1])
    assert model.weighting == "prestage" and model.contraction_block == "ivdnet" and model.skip_fusion == "ivdnet"
    np.testing.assert_allclose(model.modality_weights, [0.4, 0.2, 0.2, 0.2])
    assert model.get_layer("path1_level1_branch4_row_conv") is not None


def test_without_prestage_weights_equal_weights_stand_in(caplog):
    with caplog.at_level("WARNING"):
        model = build_segmenter("w_mm_unet", PAPER_TINY)
    np.testing.assert_allclose(model.modality_weights, [0.25] * 4)
    assert "equal weights stand in" in caplog.text


@pytest.mark.parametrize("model_name, config", [("mm_unet", PAPER_TINY), ("w_mm_unet", TINY_CONFIG)])
def test_prestage_weights_are_refused_where_they_do_not_belong(model_name, config):
    with pytest.raises(ValueError, match="modality_weights are the auto-weight pre-stage's"):
        build_segmenter(model_name, config, modality_weights=[1, 1, 1, 1])


@pytest.mark.parametrize("model_name", ["mm_unet", "w_mm_unet"])
def test_paper_form_round_trips(model_name, tmp_path):
    weights = [0.4, 0.3, 0.2, 0.1] if model_name == "w_mm_unet" else None
    model = build_segmenter(model_name, PAPER_TINY, modality_weights=weights)
    clone = check_config_round_trip(model)
    assert clone.get_config() == model.get_config()
    run_model_saving_test(model, random_example_inputs(), tmp_path)


@pytest.mark.slow
def test_paper_form_training_steps_lower_the_loss():
    """Two paths (B-mode + decoded strain) keep the graph, and its first trace, small."""
    config = dataclasses.replace(PAPER_TINY, colour_mode="strain")
    keras.utils.set_random_seed(1)
    model = compile_segmenter(build_segmenter("w_mm_unet", config, modality_weights=[0.6, 0.4]), config)
    inputs, masks = blob_batch()
    losses = [float(model.train_on_batch(inputs, masks, return_dict=True)["loss"]) for _ in range(4)]
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize(
    "field, value", [("contraction_block", "dense"), ("skip_fusion", "add"), ("auto_weight", "manual"),
                     ("auto_weight_epochs", 0), ("auto_weight_learning_rate", 0.0)],
)
def test_config_rejects_bad_architecture_options(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(TINY_CONFIG, **{field: value})
