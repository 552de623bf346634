"""MM-U-Net and W-MM-U-Net (paper §3.2): shapes, argument checks, layer names, harness."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_bimodal.models.segmentation import MultimodalUNet, build_segmenter, modal_path_names

from harness import dtype_policy, run_model_saving_test, run_model_test
from segmentation_helpers import TINY, TINY_CONFIG, random_inputs

# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    "input_channels, colour_mode, weighting, num_paths",
    [
        ((1,), "channels", "equal", 1),
        ((3,), "channels", "auto", 3),
        ((1, 3), "channels", "equal", 4),  # the paper: B-mode + RGB SE = 4 paths
        ((1, 3), "channels", "auto", 4),
        ((1, 3), "strain", "auto", 2),
        ((1, 1, 1), "channels", "equal", 3),
        ((1, 3, 3, 1), "channels", "auto", 8),
        ((1, 3, 1, 3, 1), "strain", "equal", 5),
    ],
)
def test_multimodal_unet_output_shape_for_1_to_5_inputs(input_channels, colour_mode, weighting, num_paths):
    names = [f"modality{i}" for i in range(len(input_channels))]
    model = MultimodalUNet(
        input_names=names, input_channels=input_channels, colour_mode=colour_mode,
        weighting=weighting, auto_weight_filters=(4,), **TINY,
    )
    assert len(model.path_names) == num_paths
    output = model(random_inputs(input_channels))
    assert tuple(output.shape) == (2, 32, 32, 1)
    assert tuple(model.output.shape) == (None, None, None, 1)
    weights = np.asarray(model.modality_weights_model(random_inputs(input_channels)))
    assert weights.shape == (2, num_paths)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)


# --------------------------------------------------------------------------- harness

HARNESS_CASES = [
    # constructor arguments beyond TINY, input channels, mixed-precision policies checked
    (dict(colour_mode="strain", weighting="auto", auto_weight_filters=(2, 4), dense_across_levels=True), (1, 3),
     ("float16", "bfloat16")),
    # The factory test checks the equal and manual weightings under both policies.
    (dict(weighting="manual", modality_weights=[3, 1, 1], use_batch_norm=False, image_size=16), (1, 1, 1), ()),
    # The paper preset's form: IVD-Net blocks and skip fusion, dense across levels, pre-stage weights.
    (dict(weighting="prestage", modality_weights=[4, 1, 2, 1], contraction_block="ivdnet", skip_fusion="ivdnet",
          dense_across_levels=True), (1, 3), ("bfloat16",)),
    (dict(weighting="auto", auto_weight_filters=(2,), contraction_block="ivdnet"), (1, 3), ()),
]


@pytest.mark.parametrize("kwargs, input_channels, policies", HARNESS_CASES)
def test_multimodal_unet_harness(kwargs, input_channels, policies, tmp_path):
    """Shapes, float32 output and every layer's dtype under mixed policies, save and reload.

    The output is float32 under any policy (documented: the mask head is float32).
    """
    names = kwargs.pop("input_names", [f"modality{i}" for i in range(len(input_channels))])
    inputs = random_inputs(input_channels, size=16)
    model = run_model_test(
        lambda: MultimodalUNet(input_names=names, input_channels=input_channels, **TINY, **kwargs),
        inputs,
        (None, 16, 16, 1),
        expected_output_dtype="float32",
        mixed_precision_policies=policies,
    )
    run_model_saving_test(model, inputs, tmp_path)


@pytest.mark.parametrize(
    "weighting, modality_weights, policy",
    [("equal", None, "float16"), ("manual", [3, 1, 1, 1], "bfloat16"), ("auto", None, "bfloat16")],
)
def test_modality_weights_are_float32_under_any_policy(weighting, modality_weights, policy):
    """The recorded modality weights (§3.2.3) do not depend on the dtype policy."""
    with dtype_policy(policy):
        model = MultimodalUNet(weighting=weighting, modality_weights=modality_weights, auto_weight_filters=(2,), **TINY)
        weights = model.modality_weights_model(random_inputs([1, 3], size=16), training=False)
    assert keras.backend.standardize_dtype(weights.dtype) == "float32"
    expected = [0.25] * 4 if modality_weights is None else np.asarray(modality_weights) / 6
    np.testing.assert_allclose(np.asarray(weights), [expected] * 2, rtol=1e-6)


# --------------------------------------------------------------------------- invalid arguments


@pytest.mark.parametrize(
    "kwargs, rule",
    [
        ({"input_names": [], "input_channels": []}, "at least one input"),
        ({"input_names": ["a", "b"], "input_channels": [1]}, "one entry per input"),
        ({"input_names": ["a", "a"], "input_channels": [1, 1]}, "must be unique"),
        ({"input_channels": (1, 2)}, "1 \\(grey\\) or 3 \\(RGB colour\\) channels, got 2"),
        ({"colour_mode": "hsv"}, "colour_mode must be one of"),
        ({"weighting": "learned"}, "weighting must be one of"),
        ({"weighting": "manual"}, "needs modality_weights"),
        ({"weighting": "manual", "modality_weights": [1, 1]}, "one weight per modal path \\(4 paths\\), got 2"),
        ({"weighting": "manual", "modality_weights": [1, 1, 0, 1]}, "finite and > 0"),
        ({"weighting": "manual", "modality_weights": [1, 1, -1, 1]}, "finite and > 0"),
        ({"weighting": "equal", "modality_weights": [1, 1, 1, 1]}, "only with weighting in \\('manual', 'prestage'\\)"),
        ({"weighting": "prestage"}, "weighting='prestage' needs modality_weights"),
        ({"contraction_block": "resnet"}, "contraction_block must be one of"),
        ({"skip_fusion": "sum"}, "skip_fusion must be one of"),
        ({"weighting": "auto", "auto_weight_filters": []}, "auto_weight_filters needs"),
        ({"stackwise_num_filters": []}, "at least one stage"),
        ({"stackwise_num_filters": [4, 0]}, "integer >= 1"),
        ({"bottleneck_filters": 0}, "bottleneck_filters must be an integer >= 1"),
        ({"image_size": 34}, "multiples of 2\\*\\*2 = 4"),
        ({"image_size": 2}, "multiples of 2\\*\\*2 = 4"),
    ],
)
def test_multimodal_unet_rejects_bad_arguments(kwargs, rule):
    arguments = {**TINY, **kwargs}
    with pytest.raises(ValueError, match=rule):
        MultimodalUNet(**arguments)


# --------------------------------------------------------------------------- structure


def test_layers_are_named_by_path_level_and_role():
    model = build_segmenter("w_mm_unet", TINY_CONFIG)
    assert model.path_names == ["bmode", "semode_red", "semode_green", "semode_blue"]
    for name in (
        "bmode_colour_processing", "semode_colour_processing", "path1_level1_conv1", "path4_level2_conv2",
        "level2_hyper_dense_concat", "bottleneck_hyper_dense_concat", "bottleneck_conv2", "skip_level2_average",
        "skip_level1_weighted", "decoder_level1_upconv", "auto_weight_stem_conv", "auto_weight_logits",
        "modality_weights", "mask",
    ):
        assert model.get_layer(name) is not None, name


def test_modal_path_names():
    assert modal_path_names(["bmode", "semode"], [1, 3]) == ["bmode", "semode_red", "semode_green", "semode_blue"]
    assert modal_path_names(["bmode", "semode"], [1, 3], "strain") == ["bmode", "semode_strain"]


# --------------------------------------------------------------------------- IVD-Net options (§3.2)


def _ivdnet_unet(**kwargs):
    arguments = dict(stackwise_num_filters=(2, 4), bottleneck_filters=8, contraction_block="ivdnet",
                     skip_fusion="ivdnet", dense_across_levels=True)
    return MultimodalUNet(**{**arguments, **kwargs})


def test_ivdnet_skip_fusion_averages_upconv_and_paths_below_the_top():
    model = _ivdnet_unet(use_batch_norm=False)
    names = {layer.name for layer in model.layers}
    assert "decoder_level2_skip_average" in names and "skip_level2_average" not in names
    assert "skip_level1_weighted" in names and "decoder_level1_concat" in names  # the top keeps U-Net's concat
    probe = keras.Model(model.inputs, [model.get_layer("decoder_level2_upconv").output,
                                       model.get_layer("decoder_level2_skip_average").output,
                                       *(model.get_layer(f"path{p}_level2_relu2").output for p in (1, 2, 3, 4))])
    up, fused, *paths = (np.asarray(x) for x in probe(random_inputs([1, 3])))
    np.testing.assert_allclose(fused, (up + sum(paths)) / 5, rtol=1e-5, atol=1e-6)
    # The block after the fusion reads the level's width, not twice it (no concatenation).
    assert model.get_layer("decoder_level2_conv1").kernel.shape == (3, 3, 4, 4)
    assert model.get_layer("decoder_level1_conv1").kernel.shape == (3, 3, 4, 2)


def test_ivdnet_contraction_blocks_in_paths_and_bottleneck():
    model = _ivdnet_unet()
    for name in ("path1_level1_branch3_row_conv", "path4_level2_branch5_column_conv", "bottleneck_branch1_row_conv",
                 "bottleneck_residual"):
        assert model.get_layer(name) is not None, name
    # Bottleneck input: 4 paths x 4 + the level-2 input (4 paths x 2), IVD-Net's dense connections.
    assert model.get_layer("bottleneck_conv1").kernel.shape == (3, 3, 4 * 4 + 4 * 2, 8)
    assert not any("branch" in layer.name for layer in _ivdnet_unet(contraction_block="conv_bn_relu").layers)


def test_earlier_choices_stay_reachable_by_name():
    model = MultimodalUNet(contraction_block="conv_bn_relu", skip_fusion="concat_average", **TINY)
    names = {layer.name for layer in model.layers}
    assert {"skip_level2_average", "decoder_level2_concat"} <= names
    assert not any("branch" in name or "skip_average" in name for name in names)
    assert model.get_config()["contraction_block"] == "conv_bn_relu"


def test_prestage_weights_are_fixed_in_the_weighted_skip():
    model = _ivdnet_unet(weighting="prestage", modality_weights=[0.4, 0.3, 0.2, 0.1])
    weights = np.asarray(model.modality_weights_model(random_inputs([1, 3], batch=3)))
    np.testing.assert_allclose(weights, [[0.4, 0.3, 0.2, 0.1]] * 3, rtol=1e-6)
    assert "auto_weight_stem_conv" not in {layer.name for layer in model.layers}
    assert model.get_config()["weighting"] == "prestage" and model.name == "w_mm_unet"
