"""U-Net building blocks shared by every segmenter (paper §3.2, Fig. 2; Ronneberger 2015).

Blocks are functions that add named layers to a functional graph, so that every feature map
can be found by name (``path2_level1_conv2``, ``decoder_level3_upconv``).
"""

from __future__ import annotations

import keras


def apply_conv_block(x, filters: int, use_batch_norm: bool, name: str):
    """Two 3x3 convolutions, each followed by batch normalization (optional) and ReLU.

    Layers: ``{name}_conv1``, ``{name}_bn1``, ``{name}_relu1``, then the same with ``2``.
    The convolutions have no bias when batch normalization follows (it has its own shift).
    """
    for index in (1, 2):
        x = keras.layers.Conv2D(
            filters,
            3,
            padding="same",
            use_bias=not use_batch_norm,
            kernel_initializer="he_normal",
            name=f"{name}_conv{index}",
        )(x)
        if use_batch_norm:
            x = keras.layers.BatchNormalization(name=f"{name}_bn{index}")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{index}")(x)
    return x


def apply_down_sample(x, name: str):
    """2x2 max pooling, stride 2 (U-Net contraction), layer ``{name}_pool``."""
    return keras.layers.MaxPooling2D(2, name=f"{name}_pool")(x)


def apply_up_block(x, skip, filters: int, use_batch_norm: bool, name: str):
    """One expansion step: 2x2 transposed convolution (stride 2), concatenation with the
    skip features, then :func:`apply_conv_block`.

    Layers: ``{name}_upconv``, ``{name}_concat``, ``{name}_conv1`` ... ``{name}_relu2``.
    """
    x = keras.layers.Conv2DTranspose(
        filters, 2, strides=2, kernel_initializer="he_normal", name=f"{name}_upconv"
    )(x)
    x = keras.layers.Concatenate(name=f"{name}_concat")([x, skip])
    return apply_conv_block(x, filters, use_batch_norm, name)


def apply_average_up_block(x, skips, filters: int, use_batch_norm: bool, name: str):
    """One expansion step with IVD-Net's skip fusion: 2x2 transposed convolution (stride 2),
    then the average of the up-convolved features and the P skip feature maps,
    ``(up + sum_p skips[p]) / (P + 1)``, then :func:`apply_conv_block`.

    IVD-Net (ref. 25 of the paper) fuses each level's skips this way, the up-convolved
    features counting as one more path; the convolutions then read ``filters`` channels rather
    than the ``2 * filters`` of a concatenation. Every skip must have ``filters`` channels.

    Layers: ``{name}_upconv``, ``{name}_skip_average``, ``{name}_conv1`` ... ``{name}_relu2``.
    """
    x = keras.layers.Conv2DTranspose(
        filters, 2, strides=2, kernel_initializer="he_normal", name=f"{name}_upconv"
    )(x)
    x = keras.layers.Average(name=f"{name}_skip_average")([x, *skips])
    return apply_conv_block(x, filters, use_batch_norm, name)


def apply_segmentation_head(x, name: str = "mask"):
    """1x1 convolution to one channel with a sigmoid: the lesion probability per pixel.

    Computed in float32 whatever the dtype policy, so the Dice loss sees exact sums.
    """
    return keras.layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name=name)(x)


def check_filters(stackwise_num_filters, bottleneck_filters, where: str):
    """Validate a per-stage filter list and the bottleneck width; returns them as ints."""
    filters = list(stackwise_num_filters)
    if not filters:
        raise ValueError(f"{where}: stackwise_num_filters needs at least one stage, got {filters}")
    if any(int(f) != f or f < 1 for f in filters):
        raise ValueError(f"{where}: every entry of stackwise_num_filters must be an integer >= 1, got {filters}")
    if int(bottleneck_filters) != bottleneck_filters or bottleneck_filters < 1:
        raise ValueError(f"{where}: bottleneck_filters must be an integer >= 1, got {bottleneck_filters}")
    return [int(f) for f in filters], int(bottleneck_filters)


def check_image_size(image_size, num_levels: int, where: str):
    """``image_size`` (None, int or (height, width)) must be a multiple of 2**num_levels."""
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2:
        raise ValueError(f"{where}: image_size must be an int or (height, width), got {image_size}")
    divisor = 2**num_levels
    for side in size:
        if side is not None and (int(side) != side or side < divisor or side % divisor):
            raise ValueError(
                f"{where}: image sides must be multiples of 2**{num_levels} = {divisor} "
                f"(one halving per level of stackwise_num_filters), got image_size {image_size}"
            )
    return tuple(None if side is None else int(side) for side in size)
