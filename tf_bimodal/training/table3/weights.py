"""The weights policy of Table 3's methods (§4.2.2): ImageNet when asked for, never silently random.

``Table3Config.backbone_weights="imagenet"`` (the paper preset) requires every backbone of a
method to start from ImageNet weights, read from a local file only (nothing here downloads):

* VGG-16, DenseNet-169, InceptionV3: the ``keras.applications`` files in Keras's cache
  (:func:`~tf_bimodal.models.classification.table3.backbones.imagenet_weights_path`; the
  ``stackwise`` reading of Misra 2021 reads the VGG-16 file that Table 2's models read), at
  width 1 only;
* ResNet-18, AlexNet, GoogLeNet: Keras ships none, so a method built on them cannot have them.

:func:`check_weights` lists the methods that cannot have theirs, before any training;
:func:`resolve_weights` raises :class:`Table3WeightsError` in ``fit``.
``backbone_weights="none"`` trains every backbone from scratch, on purpose, and says so in
the fit record.
"""

from __future__ import annotations

import os

from tf_bimodal.config.table3 import Table3Config
from tf_bimodal.models.classification.backbone_weights import IMAGENET_WEIGHTS_FILE, keras_cache_dir
from tf_bimodal.models.classification.table3.backbones import imagenet_weights_path

METHOD_BACKBONES = {
    "yap": ("alexnet",),
    "fujioka": ("densenet169",),
    "zhang": ("inceptionv3",),
    "kumar": ("alexnet", "googlenet"),
    "wang": ("resnet18",),
    "misra2021": ("resnet18", "alexnet"),
}
"""The backbones of each method (Misra 2021's ``ensemble`` reading)."""

HOW_TO_TRAIN_FROM_SCRATCH = "--set table3.backbone_weights=none"


class Table3WeightsError(ValueError):
    """A method's ImageNet weights are required (``table3.backbone_weights=imagenet``) but
    cannot be had; the message is one line naming the method, the file looked for and
    ``--set table3.backbone_weights=none``."""


def method_backbones(name: str, config: Table3Config) -> tuple[str, ...]:
    """The backbones of method ``name`` as ``config`` reads it (``stackwise``: VGG-16)."""
    if name == "misra2021" and config.misra2021_reading == "stackwise":
        return ("vgg16",)
    return METHOD_BACKBONES[name]


def imagenet_files(name: str, config: Table3Config) -> dict:
    """``{backbone: path or None}``: the local ImageNet file each backbone of ``name`` would
    start from (None: Keras has none for it). The ``stackwise`` reading's VGG-16 is Table 2's
    (with its fully connected layers)."""
    if name == "misra2021" and config.misra2021_reading == "stackwise":
        return {"vgg16": os.path.join(keras_cache_dir(), IMAGENET_WEIGHTS_FILE)}
    return {backbone: imagenet_weights_path(backbone) for backbone in METHOD_BACKBONES[name]}


def weights_problem(name: str, config: Table3Config) -> str | None:
    """The one line saying why method ``name`` cannot have the ImageNet weights ``config``
    requires, or None (weights not required, or every file present at width 1)."""
    if config.backbone_weights != "imagenet":
        return None
    problems = []
    for backbone, path in imagenet_files(name, config).items():
        if path is None:
            problems.append(f"Keras ships no ImageNet weights for {backbone} (no file to look for)")
        elif not os.path.isfile(path):
            problems.append(f"the {backbone} file {path} is missing")
        elif config.width != 1.0:
            problems.append(f"the {backbone} file {path} fits width 1 only, got width {config.width:g}")
    if not problems:
        return None
    return (f"table3 method {name!r}: ImageNet weights are required (table3.backbone_weights=imagenet) but "
            f"{'; '.join(problems)}; train it from scratch on purpose with {HOW_TO_TRAIN_FROM_SCRATCH}")


def check_weights(config: Table3Config) -> list[str]:
    """One line per method of ``config.methods`` whose required ImageNet weights are missing
    (empty: all fine, or none required). Never downloads."""
    return [line for line in (weights_problem(name, config) for name in config.methods) if line]


def resolve_weights(name: str, config: Table3Config) -> tuple[dict, dict]:
    """The weights method ``name`` starts from: ``({backbone: path or None}, record)`` with
    the record ``{"requested", "used", "reason"}`` of the fit.

    Raises:
        Table3WeightsError: ImageNet weights required and not all to be had.
    """
    problem = weights_problem(name, config)
    if problem:
        raise Table3WeightsError(problem)
    if config.backbone_weights == "imagenet":
        return imagenet_files(name, config), {"requested": "imagenet", "used": "imagenet", "reason": None}
    paths = {backbone: None for backbone in method_backbones(name, config)}
    return paths, {"requested": "none", "used": "random",
                   "reason": "no pre-trained weights requested (table3.backbone_weights=none)"}
