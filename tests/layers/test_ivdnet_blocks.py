"""IVD-Net's Inception-like dilated residual block and the contraction-block choice (§3.2)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_bimodal.layers.ivdnet_blocks import (
    INCEPTION_BRANCHES,
    apply_contraction_block,
    apply_dilated_inception_block,
)

from harness import run_model_saving_test, run_model_test

RNG = np.random.default_rng(0)


def block_model(block: str, channels: int = 3, filters: int = 4, use_batch_norm: bool = True) -> keras.Model:
    x = keras.Input((16, 16, channels), name="features")
    return keras.Model(x, apply_contraction_block(x, filters, use_batch_norm, name="block", block=block))


def test_branches_are_ivdnet_kernels_and_dilations():
    """Kernels 1, 3, 5, 3, 3 with dilations 1, 1, 1, 2, 4, each as k x 1 then 1 x k."""
    assert INCEPTION_BRANCHES == ((1, 1), (3, 1), (5, 1), (3, 2), (3, 4))
    model = block_model("ivdnet", channels=3, filters=4)
    for index, (kernel, dilation) in enumerate(INCEPTION_BRANCHES, start=1):
        row = model.get_layer(f"block_branch{index}_row_conv")
        column = model.get_layer(f"block_branch{index}_column_conv")
        assert row.kernel.shape == (kernel, 1, 4, 4) and tuple(row.dilation_rate) == (dilation, 1)
        assert column.kernel.shape == (1, kernel, 4, 4) and tuple(column.dilation_rate) == (1, dilation)
    assert model.get_layer("block_conv1").kernel.shape == (3, 3, 3, 4)
    assert model.get_layer("block_branch_concat").output.shape[-1] == 5 * 4
    assert model.get_layer("block_fuse_conv").kernel.shape == (1, 1, 20, 4)
    assert model.get_layer("block_conv2").kernel.shape == (3, 3, 4, 4)
    assert model.output.shape[-1] == 4 and model.layers[-1].name == "block_relu2"


def test_residual_adds_the_entry_convolution():
    """With the branches' fuse convolution zeroed, the exit reads the entry's output alone."""
    model = block_model("ivdnet", channels=2, filters=3, use_batch_norm=False)
    fuse = model.get_layer("block_fuse_conv")
    fuse.kernel.assign(np.zeros(fuse.kernel.shape, "float32"))
    fuse.bias.assign(np.zeros(fuse.bias.shape, "float32"))
    probe = keras.Model(model.input, [model.get_layer("block_residual").output, model.get_layer("block_relu1").output])
    residual, entry = probe(RNG.random((2, 16, 16, 2), dtype=np.float32))
    np.testing.assert_allclose(residual, entry, rtol=1e-6)


@pytest.mark.parametrize("block, use_batch_norm", [("ivdnet", True), ("ivdnet", False), ("conv_bn_relu", True)])
def test_contraction_block_harness(block, use_batch_norm, tmp_path):
    data = RNG.random((2, 16, 16, 3), dtype=np.float32)
    model = run_model_test(lambda: block_model(block, use_batch_norm=use_batch_norm), data, (None, 16, 16, 4))
    run_model_saving_test(model, data, tmp_path)
    assert model.get_layer("block_conv1").use_bias is (not use_batch_norm)


def test_conv_bn_relu_is_the_unet_block():
    names = {layer.name for layer in block_model("conv_bn_relu").layers}
    assert {"block_conv1", "block_relu1", "block_conv2", "block_relu2"} <= names
    assert not any("branch" in name for name in names)


def test_one_fit_step_trains_every_branch():
    model = block_model("ivdnet", filters=2)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = {w.path: np.array(w) for w in model.trainable_weights}
    model.fit(RNG.random((4, 16, 16, 3), dtype=np.float32), RNG.random((4, 16, 16, 2), dtype=np.float32),
              epochs=1, verbose=0)
    changed = {w.path for w in model.trainable_weights if not np.array_equal(before[w.path], np.array(w))}
    for index in range(1, len(INCEPTION_BRANCHES) + 1):
        assert any(f"block_branch{index}_row_conv" in path for path in changed), index


def test_unknown_block_is_refused():
    with pytest.raises(ValueError, match="contraction block must be one of"):
        apply_contraction_block(keras.Input((8, 8, 1)), 2, True, name="block", block="resnet")


def test_dilated_inception_block_keeps_odd_sides():
    x = keras.Input((15, 9, 2))
    assert tuple(apply_dilated_inception_block(x, 3, True, name="odd").shape) == (None, 15, 9, 3)
