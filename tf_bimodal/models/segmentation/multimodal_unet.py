"""MM-U-Net and W-MM-U-Net: the multimodal segmenters of paper §3.2 (Fig. 2)."""

from __future__ import annotations

import keras

from tf_bimodal.config import CONTRACTION_BLOCKS, SKIP_FUSIONS
from tf_bimodal.layers.colour_input import COLOUR_MODES, ColourInputProcessing, modal_path_names
from tf_bimodal.layers.hyper_dense import apply_hyper_dense_contraction
from tf_bimodal.layers.ivdnet_blocks import apply_contraction_block
from tf_bimodal.layers.unet_blocks import (
    apply_average_up_block,
    apply_segmentation_head,
    apply_up_block,
    check_filters,
    check_image_size,
)
from tf_bimodal.layers.weighted_skip import FixedModalityWeights, WeightedSkip, normalize_weights
from tf_bimodal.models.base import ConfiguredModel
from tf_bimodal.models.segmentation.auto_weight import apply_auto_weight_resnet

WEIGHTINGS = ("equal", "manual", "prestage", "auto")
"""``equal``: MM-U-Net (every path weight 1/P, the IVD-Net average). ``manual``: W-MM-U-Net
with given weights. ``prestage``: W-MM-U-Net with the fixed weights of the auto-weight
pre-stage (§3.2.2; the graph of ``manual``, the config says where the weights came from).
``auto``: W-MM-U-Net with the auto-weight ResNet trained end to end, weights per image."""

FIXED_WEIGHTINGS = ("manual", "prestage")
"""Weightings that take ``modality_weights``."""


def check_multimodal_inputs(input_names, input_channels, colour_mode: str, where: str):
    """``(input_names, input_channels)`` as lists, checked: one channel count (1 or 3) per
    unique name, at least one input, and a known ``colour_mode`` (§3.2.1)."""
    input_names = [str(name) for name in input_names]
    input_channels = [int(channels) for channels in input_channels]
    if not input_names:
        raise ValueError(f"{where}: needs at least one input, got input_names={input_names}")
    if len(input_names) != len(input_channels):
        raise ValueError(
            f"{where}: input_names and input_channels need one entry per input, got "
            f"{len(input_names)} names {input_names} and {len(input_channels)} channel counts {input_channels}"
        )
    if len(set(input_names)) != len(input_names):
        raise ValueError(f"{where}: input_names must be unique, got {input_names}")
    for channels in input_channels:
        ColourInputProcessing.check_channels(channels, where)
    if colour_mode not in COLOUR_MODES:
        raise ValueError(f"{where}: colour_mode must be one of {COLOUR_MODES}, got {colour_mode!r}")
    return input_names, input_channels


def check_weighting(weighting: str, modality_weights, auto_weight_filters, path_names, where: str):
    """``(modality_weights, auto_weight_filters)`` checked against ``weighting``: P positive
    weights normalised to sum 1 for the fixed weightings, none otherwise; for ``"auto"`` at
    least one ResNet stage of >= 1 filters (§3.2.2-3.2.3)."""
    if weighting in FIXED_WEIGHTINGS:
        if modality_weights is None:
            raise ValueError(
                f"{where}: weighting={weighting!r} needs modality_weights, one per modal path {path_names}"
            )
        modality_weights = normalize_weights(modality_weights, len(path_names), f"{where}: modality_weights")
    elif modality_weights is not None:
        raise ValueError(
            f"{where}: modality_weights are used only with weighting in {FIXED_WEIGHTINGS}, got "
            f"weighting={weighting!r} and modality_weights={modality_weights}"
        )
    auto_filters = [int(f) for f in auto_weight_filters]
    if weighting == "auto" and (not auto_filters or min(auto_filters) < 1):
        raise ValueError(f"{where}: auto_weight_filters needs >= 1 stage of >= 1 filters, got {auto_filters}")
    return modality_weights, auto_filters


def apply_modality_weighting(inputs, paths, weighting: str, modality_weights, auto_weight_filters,
                             use_batch_norm: bool):
    """The (batch, P) modality weights of the top skip (layer ``modality_weights``, float32).

    ``"auto"``: the end-to-end auto-weight ResNet on the stacked modal ``paths``
    (``auto_weight_input``); otherwise one fixed vector (``1/P`` each for ``"equal"``),
    batched like the first of ``inputs``.
    """
    num_paths = len(paths)
    if weighting == "auto":
        stacked = paths[0] if num_paths == 1 else keras.layers.Concatenate(name="auto_weight_input")(paths)
        return apply_auto_weight_resnet(stacked, num_paths, auto_weight_filters, use_batch_norm)
    fixed = [1.0 / num_paths] * num_paths if weighting == "equal" else modality_weights
    return FixedModalityWeights(fixed, dtype="float32", name="modality_weights")(inputs[0])


def apply_multimodal_expansion(x, features, weights, filters, skip_fusion: str, use_batch_norm: bool):
    """The expansion path (§3.2.3, Fig. 2d-e), deepest level first: the weighted top skip
    (``skip_level1_weighted``) and, below it, the skips of ``skip_fusion``.

    ``features[l - 1]`` holds the P paths' features of level ``l``.
    """
    for level in range(len(filters), 0, -1):
        level_features = features[level - 1]
        decoder = f"decoder_level{level}"
        if level == 1:
            skip = WeightedSkip(name="skip_level1_weighted")(level_features, weights)
        elif skip_fusion == "ivdnet":
            x = apply_average_up_block(x, level_features, filters[level - 1], use_batch_norm, name=decoder)
            continue
        elif len(level_features) == 1:
            skip = level_features[0]
        else:
            skip = keras.layers.Average(name=f"skip_level{level}_average")(level_features)
        x = apply_up_block(x, skip, filters[level - 1], use_batch_norm, name=decoder)
    return x


@keras.saving.register_keras_serializable(package="tf_bimodal")
class MultimodalUNet(ConfiguredModel):
    """Multimodal U-Net with hyper-dense contraction and a weighted top skip (paper §3.2).

    Architecture (Fig. 2):

    a. **Colour input processing** (§3.2.1): every input goes through
       :class:`~tf_bimodal.layers.colour_input.ColourInputProcessing` (layer
       ``{input_name}_colour_processing``); a grey input gives one modal path, a colour input
       three (R, G, B; ``colour_mode="channels"``) or one (``"strain"``). B-mode + SE-mode
       thus gives the paper's P = 4 paths. :attr:`path_names` names them
       (``bmode``, ``semode_red``, ``semode_green``, ``semode_blue``).
    b. **Hyper-dense contraction** (§3.2.2): one contraction path per modal path, each
       level fed the concatenated outputs of all paths of the level above, and with
       ``dense_across_levels`` the level above's input too (IVD-Net;
       :func:`~tf_bimodal.layers.hyper_dense.apply_hyper_dense_contraction`; layers
       ``path{p}_level{l}_*``, paths numbered from 1 in :attr:`path_names` order). Each
       level is ``contraction_block``: U-Net's two 3x3 convolutions (``"conv_bn_relu"``) or
       IVD-Net's Inception-like dilated residual block (``"ivdnet"``,
       :func:`~tf_bimodal.layers.ivdnet_blocks.apply_dilated_inception_block`), the form of
       contraction path §3.2 adopts.
    c. The concatenated deepest features feed the bottleneck (``bottleneck_*``, the same
       block, as IVD-Net's bridge) and the U-Net expansion path (``decoder_level{l}_*``:
       2x2 up-convolution, skip, two 3x3 convolutions; §3.2.3 "similar to the U-Net").
    d/e. **Skip connections** (§3.2.3, Fig. 2d-e). At the uppermost level the P paths'
       features are combined by :class:`~tf_bimodal.layers.weighted_skip.WeightedSkip`
       (``skip_level1_weighted``) with the modality weights (layer ``modality_weights``,
       (batch, P), summing to 1) and the sum is concatenated with the up-convolved features,
       as U-Net's skip ("Unlike the original U-Net, the weighted sum result ... is used as
       skip-connection"). The weights are equal (MM-U-Net), manual, the auto-weight
       pre-stage's (one vector, fixed) or the end-to-end auto-weight ResNet's (per image;
       :mod:`~tf_bimodal.models.segmentation.auto_weight`); float32 under any dtype policy,
       so the recorded weights do not depend on the policy (the weighted skip casts them to
       the features' dtype). At levels ``l >= 2`` ("the original skip-connection method was
       adopted for other layers", Fig. 2e) ``skip_fusion`` chooses:

       * ``"ivdnet"``: MM-U-Net's own rule, which is IVD-Net's (the paper's MM-U-Net is
         IVD-Net, ref. 25 of §3.2.2-3.2.3 and the Conclusion): the up-convolved features
         averaged with the P paths' features, ``(up + sum_p f_p) / (P + 1)``
         (``decoder_level{l}_skip_average``), then the two convolutions. This is the
         ``paper`` preset's reading: §3.2.3 describes the skips below the top as MM-U-Net
         combining "skip connections from several contraction paths" (citing IVD-Net) by
         averaging, and IVD-Net's averaging is this one; U-Net's expansion path, which the
         paper also names, is kept in the up-convolutions and the convolution blocks.
       * ``"concat_average"``: the P paths' features averaged (``skip_level{l}_average``)
         and concatenated with the up-convolved features, U-Net style (the earlier
         reading, in which "similar to the U-Net" also covers the concatenation).

    Input-size rule: height and width must be multiples of ``2 ** len(stackwise_num_filters)``.

    Args:
        input_names: names of the inputs, in order (the example-dict keys); default
            ``("bmode", "semode")``. Any number >= 1, names unique.
        input_channels: channels of each input, 1 (grey) or 3 (colour); default ``(1, 3)``.
        stackwise_num_filters: filters *of each path* per level, uppermost first; default
            ``(64, 128, 256, 512)``.
        bottleneck_filters: filters of the bottleneck block; default 1024.
        colour_mode: ``"channels"`` (default, paper) or ``"strain"``.
        weighting: ``"equal"`` (default), ``"manual"``, ``"prestage"`` or ``"auto"``.
        modality_weights: for ``"manual"`` and ``"prestage"`` only: P positive weights, one
            per modal path (normalised to sum 1).
        auto_weight_filters: for ``"auto"``: filters of the auto-weight ResNet's stem and
            stages; default ``(16, 32, 64)``.
        use_batch_norm: batch normalization after each convolution; default True.
        image_size: None, an int or ``(height, width)``.
        dense_across_levels: also carry each contraction level's input into the next
            level, as IVD-Net does; default False (see
            :func:`~tf_bimodal.layers.hyper_dense.apply_hyper_dense_contraction`).
        contraction_block: ``"conv_bn_relu"`` (default) or ``"ivdnet"`` (see b. and c. above).
        skip_fusion: ``"concat_average"`` (default) or ``"ivdnet"`` (see d/e above).

    Inputs: a list of float (batch, H, W, C_i) in [0, 1] in ``input_names`` order, or a dict
    keyed by ``input_names`` (extra keys are ignored). Output: (batch, H, W, 1) lesion
    probabilities (float32).
    """

    def __init__(
        self,
        input_names=("bmode", "semode"),
        input_channels=(1, 3),
        stackwise_num_filters=(64, 128, 256, 512),
        bottleneck_filters: int = 1024,
        colour_mode: str = "channels",
        weighting: str = "equal",
        modality_weights=None,
        auto_weight_filters=(16, 32, 64),
        use_batch_norm: bool = True,
        image_size=None,
        dense_across_levels: bool = False,
        contraction_block: str = "conv_bn_relu",
        skip_fusion: str = "concat_average",
        **kwargs,
    ):
        where = "MultimodalUNet"
        input_names, input_channels = check_multimodal_inputs(input_names, input_channels, colour_mode, where)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"{where}: weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if contraction_block not in CONTRACTION_BLOCKS:
            raise ValueError(
                f"{where}: contraction_block must be one of {CONTRACTION_BLOCKS}, got {contraction_block!r}"
            )
        if skip_fusion not in SKIP_FUSIONS:
            raise ValueError(f"{where}: skip_fusion must be one of {SKIP_FUSIONS}, got {skip_fusion!r}")
        filters, bottleneck = check_filters(stackwise_num_filters, bottleneck_filters, where)
        size = check_image_size(image_size, len(filters), where) or (None, None)
        path_names = modal_path_names(input_names, input_channels, colour_mode)
        modality_weights, auto_filters = check_weighting(
            weighting, modality_weights, auto_weight_filters, path_names, where
        )

        # === Functional model ===
        inputs = [
            keras.Input(shape=(*size, channels), name=name) for name, channels in zip(input_names, input_channels)
        ]
        paths = []
        for name, tensor in zip(input_names, inputs):
            colour_layer = ColourInputProcessing(mode=colour_mode, name=f"{name}_colour_processing")
            paths.extend(colour_layer(tensor))
        features, bottom = apply_hyper_dense_contraction(
            paths, filters, use_batch_norm, dense_across_levels, contraction_block
        )
        weights = apply_modality_weighting(inputs, paths, weighting, modality_weights, auto_filters, use_batch_norm)
        x = apply_contraction_block(bottom, bottleneck, use_batch_norm, "bottleneck", contraction_block)
        x = apply_multimodal_expansion(x, features, weights, filters, skip_fusion, use_batch_norm)
        outputs = apply_segmentation_head(x)
        kwargs.setdefault("name", "w_mm_unet" if weighting != "equal" else "mm_unet")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self._record_config(
            input_names=input_names, input_channels=input_channels, stackwise_num_filters=filters,
            bottleneck_filters=bottleneck, colour_mode=colour_mode, weighting=weighting,
            modality_weights=modality_weights, auto_weight_filters=auto_filters, use_batch_norm=bool(use_batch_norm),
            image_size=None if image_size is None else list(size), dense_across_levels=bool(dense_across_levels),
            contraction_block=contraction_block, skip_fusion=skip_fusion,
        )
        self.path_names = path_names

    @property
    def modality_weights_model(self):
        """A model from the same inputs to the (batch, P) modality weights (shares layers)."""
        return keras.Model(self.inputs, self.get_layer("modality_weights").output, name=f"{self.name}_modality_weights")
