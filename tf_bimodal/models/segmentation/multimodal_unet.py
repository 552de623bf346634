"""MM-U-Net and W-MM-U-Net: the multimodal segmenters of paper §3.2 (Fig. 2)."""

from __future__ import annotations

import keras

from tf_bimodal.layers.colour_input import CHANNEL_NAMES, COLOUR_MODES, ColourInputProcessing
from tf_bimodal.layers.hyper_dense import apply_hyper_dense_contraction
from tf_bimodal.layers.unet_blocks import (
    apply_conv_block,
    apply_segmentation_head,
    apply_up_block,
    check_filters,
    check_image_size,
)
from tf_bimodal.layers.weighted_skip import FixedModalityWeights, WeightedSkip, normalize_weights
from tf_bimodal.models.segmentation.auto_weight import apply_auto_weight_resnet

WEIGHTINGS = ("equal", "manual", "auto")
"""``equal``: MM-U-Net (every path weight 1/P, the IVD-Net average). ``manual``: W-MM-U-Net
with given weights. ``auto``: W-MM-U-Net with the auto-weight ResNet (§3.2.2)."""


@keras.saving.register_keras_serializable(package="tf_bimodal")
class MultimodalUNet(keras.Model):
    """Multimodal U-Net with hyper-dense contraction and a weighted top skip (paper §3.2).

    Architecture (Fig. 2):

    a. **Colour input processing** (§3.2.1): every input goes through
       :class:`~tf_bimodal.layers.colour_input.ColourInputProcessing` (layer
       ``{input_name}_colour_processing``); a grey input gives one modal path, a colour input
       three (R, G, B; ``colour_mode="channels"``) or one (``"strain"``). B-mode + SE-mode
       thus gives the paper's P = 4 paths. :attr:`path_names` names them
       (``bmode``, ``semode_red``, ``semode_green``, ``semode_blue``).
    b. **Hyper-dense contraction** (§3.2.2): one U-Net contraction path per modal path,
       each level fed the concatenated outputs of all paths of the level above
       (:func:`~tf_bimodal.layers.hyper_dense.apply_hyper_dense_contraction`; layers
       ``path{p}_level{l}_conv{1,2}``, paths numbered from 1 in :attr:`path_names` order).
    c. The concatenated deepest features feed the bottleneck block (``bottleneck_*``) and the
       U-Net expansion path (``decoder_level{l}_*``, §3.2.3).
    d/e. **Skip connections** (§3.2.3): at levels ``l >= 2`` the P paths' features are
       averaged (``skip_level{l}_average``, IVD-Net); at the uppermost level they are
       combined by :class:`~tf_bimodal.layers.weighted_skip.WeightedSkip`
       (``skip_level1_weighted``) with the modality weights (layer ``modality_weights``,
       (batch, P), summing to 1): equal (MM-U-Net), manual, or from the auto-weight ResNet
       (:mod:`~tf_bimodal.models.segmentation.auto_weight`). The weights are float32 under
       any dtype policy, as the auto-weight softmax, so the recorded weights do not depend on
       the policy; the weighted skip casts them to the features' dtype.

    Input-size rule: height and width must be multiples of ``2 ** len(stackwise_num_filters)``.

    Args:
        input_names: names of the inputs, in order (the example-dict keys); default
            ``("bmode", "semode")``. Any number >= 1, names unique.
        input_channels: channels of each input, 1 (grey) or 3 (colour); default ``(1, 3)``.
        stackwise_num_filters: filters *of each path* per level, uppermost first; default
            ``(64, 128, 256, 512)``.
        bottleneck_filters: filters of the bottleneck block; default 1024.
        colour_mode: ``"channels"`` (default, paper) or ``"strain"``.
        weighting: ``"equal"`` (default), ``"manual"`` or ``"auto"``.
        modality_weights: for ``"manual"`` only: P positive weights, one per modal path
            (normalised to sum 1).
        auto_weight_filters: for ``"auto"``: filters of the auto-weight ResNet's stem and
            stages; default ``(16, 32, 64)``.
        use_batch_norm: batch normalization after each convolution; default True.
        image_size: None, an int or ``(height, width)``.
        dense_across_levels: also carry each contraction level's input into the next
            level, as IVD-Net does; default False (see
            :func:`~tf_bimodal.layers.hyper_dense.apply_hyper_dense_contraction`).

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
        **kwargs,
    ):
        where = "MultimodalUNet"
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
        if weighting not in WEIGHTINGS:
            raise ValueError(f"{where}: weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        filters, bottleneck = check_filters(stackwise_num_filters, bottleneck_filters, where)
        size = check_image_size(image_size, len(filters), where) or (None, None)
        path_names = modal_path_names(input_names, input_channels, colour_mode)
        num_paths = len(path_names)
        if weighting == "manual":
            if modality_weights is None:
                raise ValueError(f"{where}: weighting='manual' needs modality_weights, one per modal path {path_names}")
            modality_weights = normalize_weights(modality_weights, num_paths, f"{where}: modality_weights")
        elif modality_weights is not None:
            raise ValueError(
                f"{where}: modality_weights are used only with weighting='manual', got weighting={weighting!r} "
                f"and modality_weights={modality_weights}"
            )
        auto_filters = [int(f) for f in auto_weight_filters]
        if weighting == "auto" and (not auto_filters or min(auto_filters) < 1):
            raise ValueError(f"{where}: auto_weight_filters needs >= 1 stage of >= 1 filters, got {auto_filters}")

        # === Functional model ===
        inputs = [
            keras.Input(shape=(*size, channels), name=name) for name, channels in zip(input_names, input_channels)
        ]
        paths = []
        for name, tensor in zip(input_names, inputs):
            colour_layer = ColourInputProcessing(mode=colour_mode, name=f"{name}_colour_processing")
            paths.extend(colour_layer(tensor))
        features, bottom = apply_hyper_dense_contraction(paths, filters, use_batch_norm, dense_across_levels)

        if weighting == "auto":
            stacked = paths[0] if num_paths == 1 else keras.layers.Concatenate(name="auto_weight_input")(paths)
            weights = apply_auto_weight_resnet(stacked, num_paths, auto_filters, use_batch_norm)
        else:
            fixed = [1.0 / num_paths] * num_paths if weighting == "equal" else modality_weights
            weights = FixedModalityWeights(fixed, dtype="float32", name="modality_weights")(inputs[0])

        x = apply_conv_block(bottom, bottleneck, use_batch_norm, name="bottleneck")
        for level in range(len(filters), 0, -1):
            level_features = features[level - 1]
            if level == 1:
                skip = WeightedSkip(name="skip_level1_weighted")(level_features, weights)
            elif num_paths == 1:
                skip = level_features[0]
            else:
                skip = keras.layers.Average(name=f"skip_level{level}_average")(level_features)
            x = apply_up_block(x, skip, filters[level - 1], use_batch_norm, name=f"decoder_level{level}")
        outputs = apply_segmentation_head(x)
        kwargs.setdefault("name", "w_mm_unet" if weighting != "equal" else "mm_unet")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.input_names = input_names
        self.input_channels = input_channels
        self.stackwise_num_filters = filters
        self.bottleneck_filters = bottleneck
        self.colour_mode = colour_mode
        self.weighting = weighting
        self.modality_weights = modality_weights
        self.auto_weight_filters = auto_filters
        self.use_batch_norm = bool(use_batch_norm)
        self.image_size = None if image_size is None else list(size)
        self.dense_across_levels = bool(dense_across_levels)
        self.path_names = path_names

    @property
    def modality_weights_model(self):
        """A model from the same inputs to the (batch, P) modality weights (shares layers)."""
        return keras.Model(self.inputs, self.get_layer("modality_weights").output, name=f"{self.name}_modality_weights")

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "input_names": list(self.input_names),
            "input_channels": list(self.input_channels),
            "stackwise_num_filters": list(self.stackwise_num_filters),
            "bottleneck_filters": self.bottleneck_filters,
            "colour_mode": self.colour_mode,
            "weighting": self.weighting,
            "modality_weights": None if self.modality_weights is None else list(self.modality_weights),
            "auto_weight_filters": list(self.auto_weight_filters),
            "use_batch_norm": self.use_batch_norm,
            "image_size": None if self.image_size is None else list(self.image_size),
            "dense_across_levels": self.dense_across_levels,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def modal_path_names(input_names, input_channels, colour_mode: str = "channels"):
    """Names of the modal paths the colour input processing makes of the inputs (§3.2.1).

    ``("bmode", "semode"), (1, 3)`` -> ``["bmode", "semode_red", "semode_green",
    "semode_blue"]`` in ``channels`` mode, ``["bmode", "semode_strain"]`` in ``strain`` mode.
    """
    names = []
    for name, channels in zip(input_names, input_channels):
        if channels == 1:
            names.append(name)
        elif colour_mode == "channels":
            names.extend(f"{name}_{colour}" for colour in CHANNEL_NAMES)
        else:
            names.append(f"{name}_strain")
    return names
