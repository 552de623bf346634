"""Initial weights of a :class:`VGG16Backbone`: ImageNet, none, or a local file (§3.3.2).

The paper fine-tunes an ImageNet-pre-trained VGG-16 ("transfer learning", §3.3.2). The ImageNet
weights come from ``keras.applications.VGG16(weights="imagenet")``, which reads Keras's cache
(``~/.keras/models``) or downloads the file. Without a network and without a cached file that
fails at once ("URL fetch failure"); a socket timeout bounds the attempt where a network
silently drops packets, so it never hangs.

Every load returns a *record* that the experiment writes into its config and results::

    {"requested": "imagenet", "used": "imagenet" | "random" | <path>, "reason": str | None,
     "layers": <number of layers copied>}

When ImageNet weights are requested with ``allow_fallback=True`` and cannot be had, the
backbone keeps its random initialisation, a warning is issued and the record says
``"used": "random"`` with the reason: results are then those of training from scratch.
"""

from __future__ import annotations

import os
import socket
import warnings

import keras
import numpy as np

IMAGENET_DOWNLOAD_TIMEOUT_S = 30.0
"""Bound on each socket operation of the ImageNet weights download."""


def imagenet_vgg16(timeout: float = IMAGENET_DOWNLOAD_TIMEOUT_S) -> keras.Model:
    """``keras.applications.VGG16`` with its ImageNet weights (top included, for ``fc1``/``fc2``).

    Raises whatever ``keras.applications`` raises when the file is neither cached nor
    downloadable (an ``Exception`` with "URL fetch failure" offline).
    """
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        return keras.applications.VGG16(weights="imagenet", include_top=True)
    finally:
        socket.setdefaulttimeout(previous)


def copy_weights_by_name(source: keras.Model, backbone: keras.Model) -> list[str]:
    """Copy the weights of every layer of ``source`` whose name is in ``backbone``.

    Returns:
        The names of the layers copied.

    Raises:
        ValueError: a layer of the same name whose weight shapes differ (e.g. ``fc1`` of a
            336-pixel backbone without adaptive pooling), or no layer in common.
    """
    copied = []
    target_layers = {layer.name: layer for layer in backbone.layers}
    for layer in source.layers:
        weights = layer.get_weights()
        if not weights or layer.name not in target_layers:
            continue
        target = target_layers[layer.name]
        target_shapes = [tuple(w.shape) for w in target.get_weights()]
        source_shapes = [tuple(np.shape(w)) for w in weights]
        if target_shapes != source_shapes:
            raise ValueError(
                f"copy_weights_by_name: layer {layer.name!r} has weight shapes {source_shapes} "
                f"in the source but {target_shapes} in the backbone; they must match"
            )
        target.set_weights(weights)
        copied.append(layer.name)
    if not copied:
        raise ValueError("copy_weights_by_name: the source and the backbone share no layer name")
    return copied


def load_backbone_weights(
    backbone,
    weights: str | None = "imagenet",
    allow_fallback: bool = True,
    loader=imagenet_vgg16,
    log=None,
) -> dict:
    """Initialise ``backbone`` from ``weights`` and say what was used (§3.3.2).

    Args:
        backbone: a :class:`VGG16Backbone`.
        weights: ``"imagenet"``; ``"none"`` / None (keep the random initialisation); or the path
            of a local file: a ``.weights.h5`` written by ``backbone.save_weights`` (loaded
            as is), or any other Keras ``VGG16`` weights file (e.g. the cached
            ``vgg16_weights_tf_dim_ordering_tf_kernels.h5``), copied by layer name.
        allow_fallback: when ImageNet weights are requested but cannot be loaded, keep the
            random initialisation with a warning (True) or raise (False). A local file that
            fails to load always raises.
        loader: function returning ``keras.applications.VGG16`` with ImageNet weights
            (replaceable for tests).
        log: optional callable receiving a line about the outcome.

    Returns:
        The record ``{"requested", "used", "reason", "layers"}`` (see the module docstring).

    Raises:
        ValueError: ImageNet weights for a non-standard backbone (other widths or depths
            than VGG-16's; they cannot fit), or an unknown ``weights`` that is no file.
        RuntimeError: ImageNet weights unavailable and ``allow_fallback`` False.
    """
    say = log or (lambda line: None)
    if weights is None or weights == "none":
        record = {"requested": "none", "used": "random", "reason": "no pre-trained weights requested", "layers": 0}
        say("Backbone weights: random initialisation (none requested)")
        return record
    if weights == "imagenet":
        if not backbone.is_standard_vgg16:
            raise ValueError(
                "load_backbone_weights: ImageNet weights fit only the standard VGG-16 "
                "(filters [64, 128, 256, 512, 512], repeats [2, 2, 3, 3, 3], fc_units 4096), got "
                f"filters {backbone.stackwise_num_filters}, repeats "
                f"{backbone.stackwise_num_repeats}, fc_units {backbone.fc_units}"
            )
        try:
            source = loader()
        except Exception as error:  # offline, corrupt cache, ...: all mean "not available"
            reason = f"ImageNet VGG-16 weights unavailable: {type(error).__name__}: {error}"
            if not allow_fallback:
                raise RuntimeError(reason) from error
            warnings.warn(f"{reason}; the backbone keeps its RANDOM initialisation", stacklevel=2)
            say(f"WARNING: {reason}; training from a random initialisation instead")
            return {"requested": "imagenet", "used": "random", "reason": reason, "layers": 0}
        copied = copy_weights_by_name(source, backbone)
        del source
        say(f"Backbone weights: ImageNet ({len(copied)} layers copied)")
        return {"requested": "imagenet", "used": "imagenet", "reason": None, "layers": len(copied)}
    if not os.path.isfile(weights):
        raise ValueError(
            f"load_backbone_weights: weights must be 'imagenet', 'none' or an existing file, got {weights!r}"
        )
    if weights.endswith(".weights.h5"):
        backbone.load_weights(weights)
        layers = len([layer for layer in backbone.layers if layer.weights])
    else:
        source = keras.applications.VGG16(weights=weights, include_top=True)
        layers = len(copy_weights_by_name(source, backbone))
    say(f"Backbone weights: {weights} ({layers} layers)")
    return {"requested": weights, "used": weights, "reason": None, "layers": layers}
