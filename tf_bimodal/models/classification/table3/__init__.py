"""The networks of Table 3's six earlier methods (paper §4.2.2), from shared parts.

* :mod:`.backbones`: the factory (VGG-16, DenseNet-169, InceptionV3 from ``keras.applications``;
  ResNet-18, AlexNet, GoogLeNet written here with a width multiplier).
* :mod:`.adapters`: grey B-mode to RGB, and the channel adapter (stack + 1x1 convolution).
* :mod:`.classifiers`: one network (modalities, backbone, softmax head).
* :mod:`.ensembles`: feature concatenation (Misra 2021) and probability averaging (Kumar).
* one module per method: :mod:`.yap`, :mod:`.fujioka`, :mod:`.zhang`, :mod:`.kumar`,
  :mod:`.wang`, :mod:`.misra2021`.

The training of each is in :mod:`tf_bimodal.training.table3`; what is the originals' and what
is a reading, in ``docs/fidelity.md`` ("Table 3").
"""

from tf_bimodal.models.classification.table3.alexnet import AlexNetBackbone
from tf_bimodal.models.classification.table3.backbones import BACKBONES, build_backbone, imagenet_weights_path
from tf_bimodal.models.classification.table3.classifiers import Table3Classifier, features_model
from tf_bimodal.models.classification.table3.ensembles import FeatureConcatenationEnsemble, ProbabilityAveragingEnsemble
from tf_bimodal.models.classification.table3.googlenet import GoogLeNetBackbone
from tf_bimodal.models.classification.table3.resnet18 import ResNet18Backbone
from tf_bimodal.models.classification.table3.wang import WangClassifier

__all__ = [
    "BACKBONES",
    "AlexNetBackbone",
    "FeatureConcatenationEnsemble",
    "GoogLeNetBackbone",
    "ProbabilityAveragingEnsemble",
    "ResNet18Backbone",
    "Table3Classifier",
    "WangClassifier",
    "build_backbone",
    "features_model",
    "imagenet_weights_path",
]
