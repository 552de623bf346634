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
        ({"weighting": "equal", "modality_weights": [1, 1, 1, 1]}, "only with weighting='manual'"),
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
