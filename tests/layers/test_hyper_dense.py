"""The hyper-densely connected multimodal contraction path (paper §3.2.2; IVD-Net)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_bimodal.layers.hyper_dense import apply_hyper_dense_contraction

from harness import run_model_test

RNG = np.random.default_rng(0)


def test_hyper_dense_contraction_connects_all_paths():
    paths = [keras.Input((16, 16, 1), name=f"in{i}") for i in range(3)]
    features, bottom = apply_hyper_dense_contraction(paths, [4, 6], use_batch_norm=False)
    assert [[tuple(f.shape) for f in level] for level in features] == [
        [(None, 16, 16, 4)] * 3,
        [(None, 8, 8, 6)] * 3,
    ]
    assert tuple(bottom.shape) == (None, 4, 4, 18)
    model = keras.Model(paths, bottom)
    for path in (1, 2, 3):
        # level 2 of every path reads all three paths' pooled level-1 features (3 x 4 channels)
        assert model.get_layer(f"path{path}_level2_conv1").kernel.shape == (3, 3, 12, 6)
        assert model.get_layer(f"path{path}_level1_conv1").kernel.shape == (3, 3, 1, 4)
    assert model.get_layer("level2_hyper_dense_concat") is not None
    assert model.get_layer("bottleneck_hyper_dense_concat") is not None


def test_dense_across_levels_carries_each_level_input_forward():
    paths = [keras.Input((16, 16, 1), name=f"in{i}") for i in range(2)]
    features, bottom = apply_hyper_dense_contraction(paths, [4, 6, 8], use_batch_norm=False, dense_across_levels=True)
    model = keras.Model(paths, bottom)
    # level 2: 2 x 4 pooled outputs; level 3: 2 x 6 outputs + the pooled level-2 input (8)
    assert model.get_layer("path1_level2_conv1").kernel.shape == (3, 3, 8, 6)
    assert model.get_layer("path2_level3_conv1").kernel.shape == (3, 3, 20, 8)
    assert tuple(bottom.shape) == (None, 2, 2, 2 * 8 + 20)


HARNESS_CASES = [
    # paths, filters, batch norm, dense across levels, expected (features..., bottleneck input) shapes
    (1, [4], True, False, [(None, 16, 16, 4), (None, 8, 8, 4)]),
    (2, [2, 2, 4], False, True, [(None, 16, 16, 2)] * 2 + [(None, 8, 8, 2)] * 2 + [(None, 4, 4, 4)] * 2
     + [(None, 2, 2, 2 * 4 + 8)]),  # level-3 input: 2 x 2 pooled outputs + the pooled level-2 input (4)
]


@pytest.mark.parametrize("num_paths, filters, use_batch_norm, dense, expected_shapes", HARNESS_CASES)
def test_hyper_dense_contraction_harness(num_paths, filters, use_batch_norm, dense, expected_shapes):
    def build():
        paths = [keras.Input((16, 16, 1), name=f"path{i}") for i in range(num_paths)]
        features, bottom = apply_hyper_dense_contraction(paths, filters, use_batch_norm, dense)
        return keras.Model(paths, [*(f for level in features for f in level), bottom])

    data = [RNG.random((2, 16, 16, 1), dtype=np.float32) for _ in range(num_paths)]
    run_model_test(build, data, expected_shapes)


def test_hyper_dense_contraction_needs_a_path():
    with pytest.raises(ValueError, match="at least one modal path"):
        apply_hyper_dense_contraction([], [4])


def test_four_paths_dense_across_levels_have_ivdnet_widths():
    """IVD-Net's level inputs with four paths of F, 2F, 4F, 8F filters: 4F, 12F, 28F, 60F."""
    width = 2
    paths = [keras.Input((32, 32, 1), name=f"in{i}") for i in range(4)]
    filters = [width, 2 * width, 4 * width, 8 * width]
    _, bottom = apply_hyper_dense_contraction(paths, filters, use_batch_norm=False, dense_across_levels=True)
    model = keras.Model(paths, bottom)
    inputs = [model.get_layer(f"path1_level{level}_conv1").kernel.shape[2] for level in (2, 3, 4)]
    assert inputs == [4 * width, 12 * width, 28 * width]
    assert bottom.shape[-1] == 60 * width
    plain = keras.Model(paths, apply_hyper_dense_contraction(paths, filters, use_batch_norm=False)[1])
    assert plain.get_layer("path1_level3_conv1").kernel.shape[2] == 4 * 2 * width  # the paths only


def test_ivdnet_blocks_in_every_path_and_level():
    paths = [keras.Input((16, 16, 1), name=f"in{i}") for i in range(2)]
    features, bottom = apply_hyper_dense_contraction(paths, [2, 4], use_batch_norm=True, block="ivdnet")
    model = keras.Model(paths, [*(f for level in features for f in level), bottom])
    for path in (1, 2):
        for level in (1, 2):
            assert model.get_layer(f"path{path}_level{level}_branch5_row_conv").dilation_rate == (4, 1)
    assert model.get_layer("path2_level2_conv1").kernel.shape == (3, 3, 4, 4)
    assert [tuple(t.shape) for t in model.outputs] == [(None, 16, 16, 2)] * 2 + [(None, 8, 8, 4)] * 2 + [
        (None, 4, 4, 8)]
