"""Yap et al. (IEEE JBHI 2018), Table 3's row on B-mode (§4.2.2).

The original detects lesions (patch LeNet, U-Net, FCN-AlexNet); the paper does not say how a
detector became a benign/malignant classifier. Read here as its AlexNet with a softmax head on
the grey B-mode image repeated to RGB (confidence low).
"""

from __future__ import annotations

from tf_bimodal.models.classification.table3.backbones import build_backbone
from tf_bimodal.models.classification.table3.classifiers import Table3Classifier

BACKBONE = "alexnet"
MODALITIES = ("bmode",)
ORIGINAL_INPUT_SIZE = 224


def build_yap(image_size: int, width: float = 1.0, weights_path: str | None = None,
              name: str = "yap") -> Table3Classifier:
    """AlexNet with a softmax head, on B-mode (``weights_path`` must be None: Keras has no
    ImageNet AlexNet)."""
    backbone = build_backbone(BACKBONE, image_size, width, weights_path, name="alexnet_backbone")
    return Table3Classifier(backbone, MODALITIES, name=name)
