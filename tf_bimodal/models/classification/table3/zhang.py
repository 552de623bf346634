"""Zhang et al. (Front Oncol 2021), Table 3's row on B-mode (§4.2.2).

The original's "optimized deep learning model" is not described in what is public; InceptionV3
(``keras.applications``, ImageNet weights assumed) with a softmax head on the grey B-mode
image repeated to RGB is a guess (confidence low). InceptionV3 needs inputs of 75 px or more.
"""

from __future__ import annotations

from tf_bimodal.models.classification.table3.backbones import MINIMUM_INPUT_SIZE, build_backbone
from tf_bimodal.models.classification.table3.classifiers import Table3Classifier

BACKBONE = "inceptionv3"
MODALITIES = ("bmode",)
ORIGINAL_INPUT_SIZE = 299
MINIMUM_SIZE = MINIMUM_INPUT_SIZE[BACKBONE]


def build_zhang(image_size: int, width: float = 1.0, weights_path: str | None = None,
                 name: str = "zhang") -> Table3Classifier:
    """InceptionV3 (ImageNet weights from ``weights_path`` when given, width 1
    only; ``width`` narrows it otherwise) with a softmax head, on B-mode (``image_size`` >= 75)."""
    backbone = build_backbone(BACKBONE, image_size, width, weights_path, name="inceptionv3_backbone")
    return Table3Classifier(backbone, MODALITIES, name=name)
