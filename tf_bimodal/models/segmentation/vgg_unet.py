"""A U-Net whose contraction path is VGG-16 (the single-modal baselines with a pre-trained encoder).

The paper's U-Nets are trained from scratch (§4.1.1). On a CPU, with a few hundred real images
and a few minutes per fold, a from-scratch U-Net stops well short of published accuracy; the
usual remedy (TernausNet, Iglovikov & Shvets 2018) is a U-Net whose contraction path is the
first blocks of a pre-trained VGG-16. This model is that U-Net: VGG-16's blocks 1 to
``encoder_depth`` (layers ``block{b}_conv{i}``, named as ``keras.applications.VGG16`` so
pre-trained weights load by name, :mod:`tf_bimodal.models.pretrained`), the deepest block as
the bottleneck, and a U-Net expansion path (2x2 transposed convolution, concatenation with the
block's features, two conv-BN-ReLU; §3.2.3's expansion) with ``decoder_filters``.
"""

from __future__ import annotations

import keras

from tf_bimodal.layers.image_normalization import ImageNormalization
from tf_bimodal.layers.unet_blocks import apply_segmentation_head, apply_up_block, check_image_size
from tf_bimodal.models.base import ConfiguredModel

VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
"""VGG-16's stages: (filters, convolutions)."""


@keras.saving.register_keras_serializable(package="tf_bimodal")
class VGG16UNet(ConfiguredModel):
    """U-Net with VGG-16 blocks 1..``encoder_depth`` as its contraction path.

    Architecture: the input (grey repeated to RGB, ``{input_name}_to_rgb``) is normalised
    (:class:`~tf_bimodal.layers.image_normalization.ImageNormalization`, ``normalization``:
    ``"caffe"`` for pre-trained weights) and passes VGG-16's blocks (``block{b}_conv{i}``,
    3x3 + ReLU, 2x2 max pooling ``block{b}_pool`` before every block but the first); each
    block's output is a skip. From the deepest block, ``encoder_depth - 1`` expansion steps
    (``decoder_level{l}_*``, :func:`~tf_bimodal.layers.unet_blocks.apply_up_block`) with
    ``decoder_filters`` (deepest first) lead to the 1x1 sigmoid head (``mask``).

    Input-size rule: height and width must be multiples of ``2 ** (encoder_depth - 1)``.

    Args:
        input_channels: 1 (B-mode) or 3 (colour SE); default 1.
        encoder_depth: VGG-16 blocks used, 2-5; default 4 (down to 1/8 of the input, 512
            channels).
        decoder_filters: filters of each expansion step, deepest first, ``encoder_depth - 1``
            of them; default ``(256, 128, 64)``.
        frozen_blocks: the first ``frozen_blocks`` VGG blocks are not trained (0 = all
            trained). Freezing block 1, whose full-resolution backward pass is the costliest
            part of a step, keeps its pre-trained edge filters and halves a CPU step.
        normalization: ``"caffe"`` (default, for pre-trained weights) or ``"standardize"``.
        use_batch_norm: batch normalization in the expansion path; default True.
        image_size: None, an int or ``(height, width)``.
        input_name: name of the input (the example-dict key); default ``"image"``.

    Input: float (batch, H, W, input_channels) in [0, 1]. Output: (batch, H, W, 1) lesion
    probabilities (float32).
    """

    def __init__(
        self,
        input_channels: int = 1,
        encoder_depth: int = 4,
        decoder_filters=(256, 128, 64),
        frozen_blocks: int = 0,
        normalization: str = "caffe",
        use_batch_norm: bool = True,
        image_size=None,
        input_name: str = "image",
        **kwargs,
    ):
        if input_channels not in (1, 3):
            raise ValueError(f"VGG16UNet: input_channels must be 1 (grey) or 3 (colour), got {input_channels}")
        if not isinstance(encoder_depth, int) or not 2 <= encoder_depth <= len(VGG16_BLOCKS):
            raise ValueError(f"VGG16UNet: encoder_depth must be an int in [2, 5], got {encoder_depth!r}")
        decoder = [int(f) for f in decoder_filters]
        if len(decoder) != encoder_depth - 1 or any(f < 1 for f in decoder):
            raise ValueError(
                f"VGG16UNet: decoder_filters needs encoder_depth - 1 = {encoder_depth - 1} positive widths "
                f"(deepest first), got {list(decoder_filters)}"
            )
        if not isinstance(frozen_blocks, int) or not 0 <= frozen_blocks <= encoder_depth:
            raise ValueError(f"VGG16UNet: frozen_blocks must be an int in [0, encoder_depth], got {frozen_blocks!r}")
        size = check_image_size(image_size, encoder_depth - 1, "VGG16UNet") or (None, None)

        # === Functional model ===
        inputs = keras.Input(shape=(*size, input_channels), name=input_name)
        x = inputs
        if input_channels == 1:
            x = keras.layers.Concatenate(axis=-1, name=f"{input_name}_to_rgb")([x, x, x])
        x = ImageNormalization(normalization, name=f"{input_name}_normalization")(x)
        skips = []
        for block, (filters, repeats) in enumerate(VGG16_BLOCKS[:encoder_depth], start=1):
            if block > 1:
                x = keras.layers.MaxPooling2D(2, name=f"block{block - 1}_pool")(x)
            for index in range(1, repeats + 1):
                conv = keras.layers.Conv2D(
                    filters, 3, padding="same", activation="relu", name=f"block{block}_conv{index}"
                )
                conv.trainable = block > frozen_blocks
                x = conv(x)
            skips.append(x)
        for level in range(encoder_depth - 1, 0, -1):
            x = apply_up_block(x, skips[level - 1], decoder[encoder_depth - 1 - level], use_batch_norm,
                               name=f"decoder_level{level}")
        outputs = apply_segmentation_head(x)
        kwargs.setdefault("name", "vgg16_unet")
        super().__init__(inputs=[inputs], outputs=outputs, **kwargs)
        self._record_config(
            input_channels=int(input_channels), encoder_depth=encoder_depth, decoder_filters=decoder,
            frozen_blocks=frozen_blocks, normalization=normalization, use_batch_norm=bool(use_batch_norm),
            image_size=None if image_size is None else list(size), input_name=input_name,
        )

    @property
    def modality_weights_model(self):
        """None: a single-path U-Net weights no modalities."""
        return None
