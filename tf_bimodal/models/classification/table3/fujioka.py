"""Fujioka et al. (Ultrason Imaging 2020), Table 3's row on SE-mode (§4.2.2).

The original compares six CNNs on shear-wave elastography, DenseNet-169 trained 100 epochs
best; here DenseNet-169 (``keras.applications``, ImageNet weights assumed) with global pooling
and a softmax head on the SE-mode image, the nearest to SWE in this data (confidence medium).
"""

from __future__ import annotations

from tf_bimodal.models.classification.table3.backbones import build_backbone
from tf_bimodal.models.classification.table3.classifiers import Table3Classifier

BACKBONE = "densenet169"
MODALITIES = ("semode",)
ORIGINAL_INPUT_SIZE = 224


def build_fujioka(image_size: int, width: float = 1.0, weights_path: str | None = None,
                 name: str = "fujioka") -> Table3Classifier:
    """DenseNet-169 (ImageNet weights from ``weights_path`` when given, width 1
    only; ``width`` narrows it otherwise) with a softmax head, on SE-mode."""
    backbone = build_backbone(BACKBONE, image_size, width, weights_path, name="densenet169_backbone")
    return Table3Classifier(backbone, MODALITIES, name=name)
