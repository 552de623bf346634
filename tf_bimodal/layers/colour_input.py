"""The colour input processing layer of W-MM-U-Net (paper §3.2.1, Fig. 2a).

A strain-elastography (SE) image is an RGB rendering of a scalar strain map through the
scanner's colour map: red = soft (high strain), green = average, blue = hard (low strain),
with the grey B-mode image shown outside the elastography ROI. §3.2.1: "The color input
processing layer checks whether the input is a color image, and if it is, then the color
information is converted into multiple modal inputs", which with one B-mode image gives the
four contraction paths of §3.2.2 ("one for B-mode input and three for SE-mode input").
"""

from __future__ import annotations

import keras
from keras import ops

COLOUR_MODES = ("channels", "strain")
"""``channels``: a colour image becomes three grey paths R, G, B (the paper, §3.2.2).
``strain``: a colour image becomes one path, the strain map read back from the hue."""

CHANNEL_NAMES = ("red", "green", "blue")


@keras.saving.register_keras_serializable(package="tf_bimodal")
class ColourInputProcessing(keras.layers.Layer):
    """Turns one input image into a list of single-channel modal inputs (paper §3.2.1).

    Whether the input is colour is decided from its static channel count, because the
    number of contraction paths that follow is part of the graph: 1 channel = grey, passed
    through as one path; 3 channels = colour (RGB in [0, 1]). A 3-channel image whose
    channels happen to be equal is still treated as colour (its paths then carry equal
    images). Other channel counts are refused.

    Modes for a colour input:

    * ``"channels"`` (default, the paper's four-path W-MM-U-Net): three paths, the R, G and
      B channels, in that order. For SE images these are the soft, average and hard parts of
      the colour map, so each path sees one stiffness class.
    * ``"strain"``: one path, the scalar strain map recovered from the colour map. Rule, with
      hue ``h`` in degrees and HSV saturation ``s = (max - min) / max`` of each pixel:
      ``strain = clip(1 - h' / 240, 0, 1)`` with ``h' = h - 360`` for ``h > 300`` (magenta
      counts as red) and ``h' = h`` otherwise, so red (0 deg) -> 1.0 (soft, high strain),
      green (120 deg) -> 0.5 (average), blue (240 deg) -> 0.0 (hard, low strain). Pixels with
      ``s < min_saturation`` (the grey B-mode outside the ROI, or a grey SE pixel) carry no
      strain information and get the neutral value 0.5.

    Args:
        mode: ``"channels"`` or ``"strain"``; only matters for colour inputs.
        min_saturation: saturation below which a pixel counts as grey in ``strain`` mode,
            in (0, 1]; default 0.2.

    Input: float (batch, H, W, C) in [0, 1], C in {1, 3}.
    Output: a list of (batch, H, W, 1) tensors of the layer's compute dtype (float16 under a
    ``mixed_float16`` policy): 1 item for grey or ``strain``, 3 for ``channels``.
    :meth:`num_outputs` gives the count for a channel number.
    """

    def __init__(self, mode: str = "channels", min_saturation: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        if mode not in COLOUR_MODES:
            raise ValueError(f"ColourInputProcessing: mode must be one of {COLOUR_MODES}, got {mode!r}")
        if not 0.0 < float(min_saturation) <= 1.0:
            raise ValueError(
                f"ColourInputProcessing: min_saturation must be in (0, 1], got {min_saturation}"
            )
        self.mode = mode
        self.min_saturation = float(min_saturation)

    @staticmethod
    def check_channels(channels, where: str = "ColourInputProcessing"):
        """Raise ``ValueError`` unless ``channels`` is 1 (grey) or 3 (colour)."""
        if channels not in (1, 3):
            raise ValueError(
                f"{where}: an input must have 1 (grey) or 3 (RGB colour) channels, got {channels}"
            )

    def num_outputs(self, channels: int) -> int:
        """How many modal paths an input with ``channels`` channels becomes."""
        self.check_channels(channels)
        return 3 if channels == 3 and self.mode == "channels" else 1

    def build(self, input_shape):
        self.check_channels(input_shape[-1])
        self.built = True

    def call(self, inputs):
        channels = inputs.shape[-1]
        if channels == 1:
            return [inputs]
        if self.mode == "channels":
            return [inputs[..., index : index + 1] for index in range(3)]
        return [ops.cast(strain_from_colour(inputs, self.min_saturation), self.compute_dtype)]

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape[:-1]) + (1,)
        return [shape] * self.num_outputs(input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode, min_saturation=self.min_saturation)
        return config


def strain_from_colour(rgb, min_saturation: float = 0.2):
    """The scalar strain map (1 soft ... 0 hard, 0.5 neutral) of an SE colour image.

    See :class:`ColourInputProcessing` (``mode="strain"``) for the rule. ``rgb`` is float
    (..., 3) in [0, 1]; returns (..., 1) of the same dtype. The hue is computed in float32
    whatever that dtype (bfloat16, with its 8-bit significand, would round every hue above 256
    degrees to an even number of degrees).
    """
    rgb = ops.convert_to_tensor(rgb)
    dtype = rgb.dtype
    rgb = ops.cast(rgb, "float32")
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    maximum = ops.max(rgb, axis=-1)
    minimum = ops.min(rgb, axis=-1)
    chroma = maximum - minimum
    safe_chroma = ops.where(chroma > 0, chroma, ops.ones_like(chroma))
    # HSV hue in sixths of the circle, [0, 6).
    hue_red = ops.mod((green - blue) / safe_chroma, 6.0)
    hue_green = (blue - red) / safe_chroma + 2.0
    hue_blue = (red - green) / safe_chroma + 4.0
    hue = ops.where(
        maximum == red, hue_red, ops.where(maximum == green, hue_green, hue_blue)
    )
    degrees = hue * 60.0
    degrees = ops.where(degrees > 300.0, degrees - 360.0, degrees)
    strain = ops.clip(1.0 - degrees / 240.0, 0.0, 1.0)
    saturation = chroma / ops.where(maximum > 0, maximum, ops.ones_like(maximum))
    strain = ops.where(saturation >= min_saturation, strain, 0.5 * ops.ones_like(strain))
    return ops.cast(strain[..., None], dtype)


def modal_path_names(input_names, input_channels, colour_mode: str = "channels"):
    """Names of the modal paths :class:`ColourInputProcessing` makes of the inputs (§3.2.1).

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
