"""IVD-Net's contraction block and the choice of contraction block (paper §3.2, §3.2.2).

Paper §3.2: "We adopted the contraction path form of IVD-Net" (Dolz, Desrosiers and Ben Ayed
2018, ref. 25). IVD-Net's contraction paths are not built of U-Net's two 3x3 convolutions but
of an Inception-like block with dilated, asymmetric convolutions and a residual connection
(its ``Conv_residual_conv_Inception_Dilation_asymmetric``, used for every encoder level and
the bridge):

1. an entry 3x3 convolution to ``F`` filters;
2. five parallel branches on its output, each a ``k x 1`` then a ``1 x k`` convolution (both
   dilated by ``d`` along their long side), for ``(k, d)`` = (1, 1), (3, 1), (5, 1), (3, 2),
   (3, 4): receptive fields of 1, 3, 5, 5 and 9 pixels;
3. the five outputs concatenated (``5F``) and fused by a 1x1 convolution to ``F``;
4. the fused features added to the entry convolution's output (the residual connection);
5. an exit 3x3 convolution.

Every convolution is followed by batch normalization and ReLU, as in IVD-Net. The entry and
exit layers carry the names of U-Net's block (``{name}_conv1`` ... ``{name}_relu2``), so a
level's output is ``{name}_relu2`` whichever block is used.
"""

from __future__ import annotations

import keras

from tf_bimodal.layers.options import CONTRACTION_BLOCKS
from tf_bimodal.layers.unet_blocks import apply_conv_block

INCEPTION_BRANCHES = ((1, 1), (3, 1), (5, 1), (3, 2), (3, 4))
"""(kernel size, dilation) of the five parallel branches of IVD-Net's block."""


def apply_conv_bn_relu(x, filters: int, kernel_size, use_batch_norm: bool, name: str, dilation_rate=1):
    """A convolution ("same" padding, stride 1), optional batch normalization, ReLU.

    Layers ``{name}_conv``, ``{name}_bn``, ``{name}_relu``; no bias when batch normalization
    follows (it has its own shift).
    """
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        dilation_rate=dilation_rate,
        use_bias=not use_batch_norm,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    if use_batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def apply_dilated_inception_block(x, filters: int, use_batch_norm: bool, name: str):
    """IVD-Net's Inception-like dilated residual block (see the module docstring).

    Layers: ``{name}_conv1`` / ``_bn1`` / ``_relu1`` (entry 3x3), ``{name}_branch{b}_{row,column}_*``
    for the branches ``b`` = 1 .. 5 (``k x 1`` then ``1 x k``), ``{name}_branch_concat``,
    ``{name}_fuse_*`` (1x1), ``{name}_residual`` (the addition) and ``{name}_conv2`` /
    ``_bn2`` / ``_relu2`` (exit 3x3).

    Args:
        x: (batch, H, W, C) features.
        filters: ``F``, the block's width (every branch has ``F`` filters).
        use_batch_norm: batch normalization after each convolution.
        name: prefix of the layer names.

    Returns:
        (batch, H, W, F) features.
    """
    entry = keras.layers.Conv2D(
        filters, 3, padding="same", use_bias=not use_batch_norm, kernel_initializer="he_normal", name=f"{name}_conv1"
    )(x)
    if use_batch_norm:
        entry = keras.layers.BatchNormalization(name=f"{name}_bn1")(entry)
    entry = keras.layers.Activation("relu", name=f"{name}_relu1")(entry)
    branches = []
    for index, (kernel, dilation) in enumerate(INCEPTION_BRANCHES, start=1):
        branch = apply_conv_bn_relu(
            entry, filters, (kernel, 1), use_batch_norm, f"{name}_branch{index}_row", dilation_rate=(dilation, 1)
        )
        branches.append(apply_conv_bn_relu(
            branch, filters, (1, kernel), use_batch_norm, f"{name}_branch{index}_column", dilation_rate=(1, dilation)
        ))
    merged = keras.layers.Concatenate(name=f"{name}_branch_concat")(branches)
    fused = apply_conv_bn_relu(merged, filters, 1, use_batch_norm, f"{name}_fuse")
    x = keras.layers.Add(name=f"{name}_residual")([fused, entry])
    x = keras.layers.Conv2D(
        filters, 3, padding="same", use_bias=not use_batch_norm, kernel_initializer="he_normal", name=f"{name}_conv2"
    )(x)
    if use_batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn2")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu2")(x)


def apply_contraction_block(x, filters: int, use_batch_norm: bool, name: str, block: str = "conv_bn_relu"):
    """One contraction-path block: ``"conv_bn_relu"`` (U-Net's
    :func:`~tf_bimodal.layers.unet_blocks.apply_conv_block`) or ``"ivdnet"``
    (:func:`apply_dilated_inception_block`)."""
    if block == "conv_bn_relu":
        return apply_conv_block(x, filters, use_batch_norm, name)
    if block == "ivdnet":
        return apply_dilated_inception_block(x, filters, use_batch_norm, name)
    raise ValueError(f"contraction block must be one of {CONTRACTION_BLOCKS}, got {block!r}")
