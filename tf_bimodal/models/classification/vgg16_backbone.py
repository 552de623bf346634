"""VGG-16 feature extractor of the classifiers (paper §3.3.2).

"This paper employs the pre-trained VGG-16 model [...] 13 convolutional layers, five pooling
layers, and three FC layers. Convolutional layers extract features, and 4096-dimensional
outputs of the FC layer describe features for classification" (§3.3.2). The backbone here ends
at that feature layer (``fc2``); the tasks add the softmax heads and the decision network.

Layer names follow ``keras.applications.VGG16`` (``block1_conv1`` ... ``block5_pool``,
``flatten``, ``fc1``, ``fc2``), so ImageNet weights are copied by name
(:mod:`tf_bimodal.models.classification.backbone_weights`) and features are found by name.
"""

from __future__ import annotations

import keras

from tf_bimodal.layers.adaptive_pooling import AdaptiveAveragePooling2D
from tf_bimodal.models.base import ConfiguredModel

VGG16_FILTERS = (64, 128, 256, 512, 512)
VGG16_REPEATS = (2, 2, 3, 3, 3)
VGG16_FC_UNITS = 4096


def apply_vgg_block(
    x,
    num_layers: int,
    filters: int,
    kernel_size=(3, 3),
    activation="relu",
    padding="same",
    max_pool: bool = True,
    kernel_initializer="glorot_uniform",
    name: str = "block",
):
    """``num_layers`` 3x3 convolutions (+ ReLU) and a 2x2 max-pool: one VGG stage.

    Layers are named ``{name}_conv{i}`` (from 1) and ``{name}_pool``, as in
    ``keras.applications.VGG16``.
    """
    for index in range(num_layers):
        x = keras.layers.Conv2D(
            filters,
            kernel_size,
            activation=activation,
            padding=padding,
            kernel_initializer=kernel_initializer,
            name=f"{name}_conv{index + 1}",
        )(x)
    if max_pool:
        x = keras.layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"{name}_pool")(x)
    return x


def _positive_int_list(value, what):
    values = list(value) if isinstance(value, (list, tuple)) else None
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"VGG16Backbone: {what} must be a non-empty list of positive ints, got {value!r}")
    return values


def check_backbone_arguments(filters, repeats, image_shape, fc_units, fc_dropout, pooled_size, features,
                             pooled_blocks):
    """Check :class:`VGG16Backbone`'s arguments (the rules of its ``Raises``).

    Returns:
        ``(filters, repeats, image_shape, pooled_blocks)`` as lists and a tuple.
    """
    filters = _positive_int_list(filters, "stackwise_num_filters")
    repeats = _positive_int_list(repeats, "stackwise_num_repeats")
    if len(filters) != len(repeats):
        raise ValueError(
            "VGG16Backbone: stackwise_num_filters and stackwise_num_repeats must have the "
            f"same length, got {len(filters)} and {len(repeats)}"
        )
    image_shape = tuple(image_shape)
    min_side = 2 ** len(filters)
    if len(image_shape) != 3 or any(s is None or s < 1 for s in image_shape):
        raise ValueError(
            f"VGG16Backbone: image_shape must be a static (height, width, channels), got {image_shape}"
        )
    if min(image_shape[:2]) < min_side:
        raise ValueError(
            f"VGG16Backbone: height and width must be >= 2**{len(filters)} = {min_side} "
            f"(one pixel after {len(filters)} poolings), got {image_shape[:2]}"
        )
    if not isinstance(fc_units, int) or fc_units < 1:
        raise ValueError(f"VGG16Backbone: fc_units must be a positive int, got {fc_units!r}")
    if not 0.0 <= fc_dropout < 1.0:
        raise ValueError(f"VGG16Backbone: fc_dropout must be in [0, 1), got {fc_dropout!r}")
    if pooled_size is not None and (not isinstance(pooled_size, int) or pooled_size < 1):
        raise ValueError(
            f"VGG16Backbone: pooled_size must be None or a positive int, got {pooled_size!r}"
        )
    if features not in ("fc", "pooled"):
        raise ValueError(f"VGG16Backbone: features must be 'fc' or 'pooled', got {features!r}")
    pooled_blocks = _positive_int_list(pooled_blocks, "pooled_blocks")
    if features == "pooled" and max(pooled_blocks) > len(filters):
        raise ValueError(
            f"VGG16Backbone: pooled_blocks must name blocks 1 to {len(filters)}, got {pooled_blocks}"
        )
    return filters, repeats, image_shape, pooled_blocks


def apply_pooled_features(x, filters, repeats, pooled_blocks, kernel_initializer):
    """The ``"pooled"`` features: VGG's blocks up to the last of ``pooled_blocks``, each of
    those read by global average and max pooling (``block{b}_avg``, ``block{b}_max``),
    concatenated (``pooled_features``)."""
    pooled = []
    for stage, (stage_filters, stage_repeats) in enumerate(zip(filters, repeats)):
        if stage > 0:
            x = keras.layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{stage}_pool")(x)
        x = apply_vgg_block(x, stage_repeats, stage_filters, kernel_initializer=kernel_initializer, max_pool=False,
                            name=f"block{stage + 1}")
        if stage + 1 in pooled_blocks:
            pooled += [
                keras.layers.GlobalAveragePooling2D(name=f"block{stage + 1}_avg")(x),
                keras.layers.GlobalMaxPooling2D(name=f"block{stage + 1}_max")(x),
            ]
            if stage + 1 == max(pooled_blocks):
                break
    return keras.layers.Concatenate(name="pooled_features")(pooled)


def apply_fc_features(x, filters, repeats, fc_units, pooled_size, fc_dropout, kernel_initializer):
    """The ``"fc"`` features (§3.3.2): VGG's five blocks, the optional adaptive pooling
    (``adaptive_pool``), ``flatten``, and ``fc1``, ``fc2`` (ReLU, each followed by dropout)."""
    for stage, (stage_filters, stage_repeats) in enumerate(zip(filters, repeats)):
        x = apply_vgg_block(x, stage_repeats, stage_filters, kernel_initializer=kernel_initializer,
                            name=f"block{stage + 1}")
    if pooled_size is not None:
        x = AdaptiveAveragePooling2D(pooled_size, name="adaptive_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for index in (1, 2):
        x = keras.layers.Dense(
            fc_units, activation="relu", kernel_initializer=kernel_initializer, name=f"fc{index}"
        )(x)
        x = keras.layers.Dropout(fc_dropout, name=f"fc{index}_dropout")(x)
    return x


@keras.saving.register_keras_serializable(package="tf_bimodal")
class VGG16Backbone(ConfiguredModel):
    """VGG-16 up to its second fully connected layer (``fc2``), the 4096-d features (§3.3.2).

    The default arguments are the standard VGG-16 of Simonyan & Zisserman (and of
    ``keras.applications.VGG16``); narrower ``stackwise_num_filters`` and smaller ``fc_units``
    give a quick variant for tests and the ``quick`` preset.

    Args:
        stackwise_num_filters: filters of each stage (default ``[64, 128, 256, 512, 512]``).
        stackwise_num_repeats: convolutions per stage (default ``[2, 2, 3, 3, 3]``), same
            length.
        fc_units: width of ``fc1`` and ``fc2`` (default 4096); the feature size.
        image_shape: ``(height, width, channels)`` of the input, static (default
            ``(224, 224, 3)``). Each side must be at least ``2 ** len(stackwise_num_filters)``
            (the pooled map must keep one pixel); it need not be a multiple of it (336 / 32
            pools to 10, as in PyTorch).
        pooled_size: ``None`` flattens the last pooled map (``keras.applications``: needs a
            224-pixel input for the ImageNet ``fc1`` weights), or an int: adaptive average
            pooling to ``pooled_size x pooled_size`` first (torchvision's VGG-16 uses 7, which
            fits the ImageNet ``fc1`` weights at any input size, e.g. the paper's 336).
        fc_dropout: dropout rate after ``fc1`` and ``fc2`` (torchvision VGG-16: 0.5).
        kernel_initializer: initializer of all kernels (default ``"glorot_uniform"`` as
            ``keras.applications``; ``"he_normal"`` trains a deep plain network from scratch
            more reliably).
        features: ``"fc"`` (default: the fully connected features above) or ``"pooled"``:
            no fully connected layers; the output is the global average and the global max
            (layers ``block{b}_avg`` and ``block{b}_max``) of the last convolution of each
            block in ``pooled_blocks``, concatenated (``pooled_features``), and the blocks
            after the last of them are left out. Pre-trained convolutions read this way need
            no training of their own.
        pooled_blocks: the blocks (from 1) that ``"pooled"`` features read (default 3, 4, 5;
            checked only with ``"pooled"``).

    Input: float images ``(batch, *image_shape)``, already normalised (see
    :class:`tf_bimodal.layers.image_normalization.ImageNormalization`).
    Output: ``(batch, fc_units)`` features (after ``fc2``'s ReLU and dropout); with
    ``"pooled"``, ``(batch, 2 * sum of the pooled blocks' filters)``.

    Raises:
        ValueError: lists of different lengths or with non-positive entries, an input side
            smaller than ``2 ** num_stages``, ``fc_units < 1``, a dropout outside ``[0, 1)``,
            ``pooled_size < 1``, an unknown ``features`` or a ``pooled_blocks`` entry that
            names no block.
    """

    def __init__(
        self,
        stackwise_num_filters=VGG16_FILTERS,
        stackwise_num_repeats=VGG16_REPEATS,
        fc_units: int = VGG16_FC_UNITS,
        image_shape=(224, 224, 3),
        pooled_size: int | None = None,
        fc_dropout: float = 0.5,
        kernel_initializer="glorot_uniform",
        features: str = "fc",
        pooled_blocks=(3, 4, 5),
        **kwargs,
    ):
        filters, repeats, image_shape, pooled_blocks = check_backbone_arguments(
            stackwise_num_filters, stackwise_num_repeats, image_shape, fc_units, fc_dropout, pooled_size, features,
            pooled_blocks,
        )
        if not isinstance(kernel_initializer, str):
            # A config must hold plain values; every layer deserializes its own instance.
            kernel_initializer = keras.initializers.serialize(
                keras.initializers.get(kernel_initializer)
            )

        # === Functional model ===
        inputs = keras.Input(shape=image_shape, name="images")
        if features == "pooled":
            outputs = apply_pooled_features(inputs, filters, repeats, pooled_blocks, kernel_initializer)
        else:
            outputs = apply_fc_features(inputs, filters, repeats, fc_units, pooled_size, fc_dropout, kernel_initializer)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self._record_config(
            stackwise_num_filters=filters, stackwise_num_repeats=repeats, fc_units=fc_units, image_shape=image_shape,
            pooled_size=pooled_size, fc_dropout=fc_dropout, kernel_initializer=kernel_initializer, features=features,
            pooled_blocks=pooled_blocks,
        )

    @property
    def is_standard_vgg16(self) -> bool:
        """True for the standard widths and depths, which ImageNet weights fit."""
        return (
            tuple(self.stackwise_num_filters) == VGG16_FILTERS
            and tuple(self.stackwise_num_repeats) == VGG16_REPEATS
            and (self.fc_units == VGG16_FC_UNITS or self.features == "pooled")
        )
