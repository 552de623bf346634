"""Misra et al. 2021 (IEEE TUFFC 69(1), 2022, "Bi-modal transfer learning for classifying breast
cancers via combined B-mode and ultrasound strain imaging"), Table 3's last row (§4.2.2).

Two readings, ``Table3Config.misra2021_reading``:

* ``ensemble`` (default): the method as its authors' code (``sampamisra/BUS_Classification``)
  builds it. B-mode (1 channel) and SE-mode (3) stacked, a trainable 1x1 convolution 4 -> 3,
  then ResNet-18 in one network and AlexNet in the other, each with a softmax head and
  trained alone (stage 1); then both frozen, their 512 + 4096 features (times the width)
  concatenated -> ReLU -> a dense softmax (stage 2, :class:`~.ensembles.FeatureConcatenationEnsemble`).
* ``stackwise``: the 2022 paper's description of the row (6 channels -> 1x1 convolution ->
  3 -> VGG-16), which is Table 2's ``mff_stack`` (:func:`build_misra2021_stackwise`), whose
  numbers Table 3's row repeats digit for digit.
"""

from __future__ import annotations

from tf_bimodal.models.classification.factory import build_classifier
from tf_bimodal.models.classification.table3.backbones import build_backbone
from tf_bimodal.models.classification.table3.classifiers import Table3Classifier
from tf_bimodal.models.classification.table3.ensembles import FeatureConcatenationEnsemble

BACKBONES = ("resnet18", "alexnet")
MODALITIES = ("bmode", "semode")
ORIGINAL_INPUT_SIZE = 224
FROZEN_PREFIXES = {
    "resnet18": ("conv1", "bn1", "layer1", "layer2"),
    "alexnet": ("conv1", "conv2", "conv3", "conv4"),
}
"""What stage 1 keeps frozen when starting from ImageNet weights: ResNet-18 up to ``layer2``,
AlexNet's ``conv1``-``conv4`` (layer-name prefixes of the backbones)."""


def build_misra2021_networks(image_size: int, width: float = 1.0, name: str = "misra2021") -> dict:
    """Stage 1: ``{backbone: Table3Classifier}``, ResNet-18 and AlexNet each behind the 4 -> 3
    channel adapter, with a softmax head."""
    return {
        backbone: Table3Classifier(build_backbone(backbone, image_size, width, name=f"{backbone}_backbone"),
                                   MODALITIES, name=f"{name}_{backbone}")
        for backbone in BACKBONES
    }


def freeze_pretrained_layers(network, backbone: str) -> list[str]:
    """Freeze the layers of ``network``'s backbone named by :data:`FROZEN_PREFIXES` (only
    meaningful on ImageNet weights); returns their names."""
    inner = network.get_layer(f"{backbone}_backbone")
    frozen = [layer.name for layer in inner.layers
              if layer.weights and any(layer.name == prefix or layer.name.startswith(f"{prefix}_")
                                       for prefix in FROZEN_PREFIXES[backbone])]
    for layer_name in frozen:
        inner.get_layer(layer_name).trainable = False
    return frozen


def build_misra2021_ensemble(networks: dict, name: str = "misra2021") -> FeatureConcatenationEnsemble:
    """Stage 2: the stage-1 networks frozen, features concatenated -> ReLU -> dense softmax."""
    return FeatureConcatenationEnsemble([networks[backbone] for backbone in BACKBONES], freeze=True, name=name)


def build_misra2021_stackwise(classification_config, normalization: str, backbones=None, seed: int = 0):
    """The ``stackwise`` reading: Table 2's ``mff_stack`` built from ``classification_config``
    (:func:`~tf_bimodal.models.classification.factory.build_classifier`)."""
    return build_classifier("mff_stack", classification_config, normalization, backbones=backbones, seed=seed)
