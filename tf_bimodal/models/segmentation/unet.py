"""The single-modal U-Net baseline (paper §4.1.1, Table 1 rows 1-2; Ronneberger et al. 2015)."""

from __future__ import annotations

import keras

from tf_bimodal.layers.unet_blocks import (
    apply_conv_block,
    apply_down_sample,
    apply_segmentation_head,
    apply_up_block,
    check_filters,
    check_image_size,
)
from tf_bimodal.models.base import ConfiguredModel


@keras.saving.register_keras_serializable(package="tf_bimodal")
class UNet(ConfiguredModel):
    """A standard U-Net on one image: the B-mode-only and SE-mode-only baselines (§4.1.1).

    Contraction: per level ``l`` (1 = uppermost) :func:`apply_conv_block` with
    ``stackwise_num_filters[l - 1]`` filters (``encoder_level{l}_conv1`` ...) and 2x2 max
    pooling; a bottleneck block (``bottleneck_conv1`` ...); expansion: per level a 2x2
    transposed convolution, concatenation with the level's encoder features and a conv block
    (``decoder_level{l}_upconv`` ...); a 1x1 sigmoid head (``mask``). For the SE baseline the
    input is the 3-channel colour SE image itself (no colour split).

    Input-size rule: height and width must be multiples of ``2 ** len(stackwise_num_filters)``
    (default 16; the paper's 336 = 21 * 16).

    Args:
        input_channels: 1 (B-mode) or 3 (colour SE); default 1.
        stackwise_num_filters: filters per level, uppermost first; default
            ``(64, 128, 256, 512)`` (U-Net).
        bottleneck_filters: filters of the bottleneck block; default 1024.
        use_batch_norm: batch normalization after each convolution; default True.
        image_size: None (any size obeying the rule), an int or ``(height, width)``.
        input_name: name of the input, the key of the example dict fed to it; default
            ``"image"`` (the factory uses ``"bmode"`` / ``"semode"``).

    Input: float (batch, H, W, input_channels) in [0, 1]. Output: (batch, H, W, 1) lesion
    probabilities (float32).
    """

    def __init__(
        self,
        input_channels: int = 1,
        stackwise_num_filters=(64, 128, 256, 512),
        bottleneck_filters: int = 1024,
        use_batch_norm: bool = True,
        image_size=None,
        input_name: str = "image",
        **kwargs,
    ):
        if input_channels not in (1, 3):
            raise ValueError(f"UNet: input_channels must be 1 (grey) or 3 (colour), got {input_channels}")
        filters, bottleneck = check_filters(stackwise_num_filters, bottleneck_filters, "UNet")
        size = check_image_size(image_size, len(filters), "UNet") or (None, None)

        # === Functional model ===
        inputs = keras.Input(shape=(*size, input_channels), name=input_name)
        x = inputs
        skips = []
        for level, level_filters in enumerate(filters, start=1):
            x = apply_conv_block(x, level_filters, use_batch_norm, name=f"encoder_level{level}")
            skips.append(x)
            x = apply_down_sample(x, name=f"encoder_level{level}")
        x = apply_conv_block(x, bottleneck, use_batch_norm, name="bottleneck")
        for level in range(len(filters), 0, -1):
            x = apply_up_block(x, skips[level - 1], filters[level - 1], use_batch_norm, name=f"decoder_level{level}")
        outputs = apply_segmentation_head(x)
        kwargs.setdefault("name", "unet")
        # A one-item list, so a dict of examples is matched to the input by name.
        super().__init__(inputs=[inputs], outputs=outputs, **kwargs)
        self._record_config(
            input_channels=int(input_channels), stackwise_num_filters=filters, bottleneck_filters=bottleneck,
            use_batch_norm=bool(use_batch_norm), image_size=None if image_size is None else list(size),
            input_name=input_name,
        )

    @property
    def modality_weights_model(self):
        """None: a single-path U-Net weights no modalities."""
        return None
