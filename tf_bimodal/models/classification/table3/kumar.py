"""Kumar et al. (IEEE JBHI 2017), Table 3's row on one image, B-mode here (§4.2.2).

The original classifies medical image modalities: several CNNs fine-tuned, an SVM with
probabilities on each network's penultimate features, the probabilities fused. Here AlexNet
and GoogLeNet, each with a softmax head for the fine-tuning (the same builders as Yap's and
the other rows), their features then read by a
:class:`~.ensembles.ProbabilityAveragingEnsemble` of SVMs
(:mod:`tf_bimodal.training.table3.kumar`). Confidence: medium for the structure, low for
the details.
"""

from __future__ import annotations

from tf_bimodal.models.classification.table3.backbones import build_backbone
from tf_bimodal.models.classification.table3.classifiers import Table3Classifier

BACKBONES = ("alexnet", "googlenet")
MODALITIES = ("bmode",)
ORIGINAL_INPUT_SIZE = 224


def build_kumar(image_size: int, width: float = 1.0, name: str = "kumar") -> dict:
    """``{backbone: Table3Classifier}``: AlexNet and GoogLeNet (no Keras ImageNet weights),
    each with a softmax head on B-mode, to fine-tune before the SVMs."""
    return {
        backbone: Table3Classifier(build_backbone(backbone, image_size, width, name=f"{backbone}_backbone"),
                                   MODALITIES, name=f"{name}_{backbone}")
        for backbone in BACKBONES
    }
