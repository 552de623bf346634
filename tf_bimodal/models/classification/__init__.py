"""Classifiers of the paper (§3.3): the EmbraceNet MFF and the baselines of Table 2.

Backbone: :class:`VGG16Backbone` (features = the 4096-d ``fc2`` output). Tasks (dict inputs
``bmode`` / ``semode`` / ``availability``, dict outputs with ``decision``):

* :class:`MFFClassifier`: shared VGG-16 + per-modality heads + EmbraceNet + decision network.
* :class:`VGG16Classifier`: single-modal VGG-16 (B-mode or SE-mode).
* :class:`EarlyIntegrationClassifier`, :class:`LateIntegrationClassifier`,
  :class:`StackwiseIntegrationClassifier`, :class:`IntermediateIntegrationClassifier`: §3.3.3.
"""

from tf_bimodal.models.classification.backbone_weights import load_backbone_weights
from tf_bimodal.models.classification.classifier_task import ClassifierTask
from tf_bimodal.models.classification.early_integration import EarlyIntegrationClassifier
from tf_bimodal.models.classification.factory import build_backbone, build_classifier
from tf_bimodal.models.classification.intermediate_integration import IntermediateIntegrationClassifier
from tf_bimodal.models.classification.late_integration import LateIntegrationClassifier
from tf_bimodal.models.classification.mff_classifier import MFFClassifier
from tf_bimodal.models.classification.stackwise_integration import StackwiseIntegrationClassifier
from tf_bimodal.models.classification.vgg16_backbone import VGG16Backbone, apply_vgg_block
from tf_bimodal.models.classification.vgg16_classifier import VGG16Classifier

__all__ = [
    "ClassifierTask",
    "EarlyIntegrationClassifier",
    "IntermediateIntegrationClassifier",
    "LateIntegrationClassifier",
    "MFFClassifier",
    "StackwiseIntegrationClassifier",
    "VGG16Backbone",
    "VGG16Classifier",
    "apply_vgg_block",
    "build_backbone",
    "build_classifier",
    "load_backbone_weights",
]
