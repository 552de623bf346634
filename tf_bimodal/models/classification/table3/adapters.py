"""How Table 3's methods turn the package's modalities into a backbone's 3-channel input (§4.2.2).

* One grey B-mode image into an RGB backbone: the grey channel repeated three times (as the
  package's VGG-16 does, §3.3.2); an SE-mode image is RGB already.
* Both modalities into one backbone (Misra et al. 2021): B-mode (1 channel) and SE-mode
  (3 channels) stacked into 4 channels and a trainable 1x1 convolution to 3, the *channel
  adapter*.
"""

from __future__ import annotations

import keras

from tf_bimodal.schema import MODALITY_CHANNELS


def modality_inputs(modalities, image_size: int) -> dict:
    """``{modality: keras.Input((S, S, channels))}`` for each of ``modalities``.

    Raises:
        ValueError: a modality other than ``bmode`` / ``semode``, or none, or one twice.
    """
    modalities = tuple(modalities)
    if not modalities or len(set(modalities)) != len(modalities) or set(modalities) - set(MODALITY_CHANNELS):
        raise ValueError(f"modality_inputs: modalities must be distinct names among {tuple(MODALITY_CHANNELS)}, "
                         f"got {modalities!r}")
    return {name: keras.Input(shape=(image_size, image_size, MODALITY_CHANNELS[name]), name=name)
            for name in modalities}


def apply_grey_to_rgb(x, name: str):
    """A 1-channel image repeated to 3 channels (layer ``name``); a 3-channel image as is."""
    if x.shape[-1] == 3:
        return x
    if x.shape[-1] != 1:
        raise ValueError(f"apply_grey_to_rgb: images must have 1 or 3 channels, got {x.shape[-1]}")
    return keras.layers.Concatenate(axis=-1, name=name)([x, x, x])


def apply_channel_adapter(images: list, name: str = "channel_adapter"):
    """Images stacked on the channel axis (``{name}_stack``) and a trainable 1x1 convolution
    to 3 channels (``name``; Misra et al. 2021: 4 -> 3)."""
    x = keras.layers.Concatenate(axis=-1, name=f"{name}_stack")(list(images))
    return keras.layers.Conv2D(3, 1, name=name)(x)


def apply_modality_images(inputs: dict, name: str = "channel_adapter"):
    """The 3-channel backbone input of ``inputs`` (``{modality: tensor}``): one modality
    through :func:`apply_grey_to_rgb`, several through :func:`apply_channel_adapter`."""
    if len(inputs) == 1:
        (modality, x), = inputs.items()
        return apply_grey_to_rgb(x, name=f"{modality}_to_rgb")
    return apply_channel_adapter([inputs[modality] for modality in inputs], name=name)
