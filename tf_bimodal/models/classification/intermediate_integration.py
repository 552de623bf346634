"""Intermediate integration baseline, Table 2 "MFF (intermediate)" (§3.3.3, Fig. 4d)."""

from __future__ import annotations

import keras

from tf_bimodal.models.classification.classifier_task import (
    ClassifierTask,
    apply_decision_network,
    apply_modality_preprocessing,
    check_common_arguments,
    modality_input,
)
from tf_bimodal.models.classification.late_integration import check_two_backbones
from tf_bimodal.schema import MODALITY_CHANNELS


@keras.saving.register_keras_serializable(package="tf_bimodal")
class IntermediateIntegrationClassifier(ClassifierTask):
    """Two independent VGG-16s, features concatenated into the decision network (§3.3.3).

    "B-mode and SE-mode US images are sampled independently and are inputted into two
    independent pre-trained VGG-16 models. The features extracted from these two models are
    concatenated [...] twice that of a single model. The classification result is obtained
    from the DN" (§3.3.3). The MFF differs only in fusing with EmbraceNet instead of the
    concatenation (and in sharing one VGG-16 and adding per-modality losses).

    Both images are needed (no availability input), as for the stack-wise model.

    Args:
        bmode_backbone, semode_backbone: two distinct :class:`VGG16Backbone` s with
            different names and the same input shape.
        decision_units, decision_dropout: the decision network's hidden widths and dropout.
        normalization: ``"standardize"`` or ``"caffe"``.
        num_classes: 2.

    Inputs: ``{"bmode", "semode"}``. Outputs: ``{"decision"}``.
    """

    def __init__(self, bmode_backbone, semode_backbone, decision_units=(1024, 256),
                 decision_dropout: float = 0.5, normalization: str = "standardize",
                 num_classes: int = 2, **kwargs):
        check_common_arguments("IntermediateIntegrationClassifier", num_classes, normalization)
        check_two_backbones("IntermediateIntegrationClassifier", bmode_backbone, semode_backbone)
        image_size = bmode_backbone.image_shape[0]
        backbones = {"bmode": bmode_backbone, "semode": semode_backbone}

        # === Functional model ===
        inputs = {name: modality_input(name, image_size, c) for name, c in MODALITY_CHANNELS.items()}
        features = [
            backbones[name](apply_modality_preprocessing(inputs[name], channels, normalization, name=name))
            for name, channels in MODALITY_CHANNELS.items()
        ]
        x = keras.layers.Concatenate(axis=-1, name="feature_concatenation")(features)
        outputs = {
            "decision": apply_decision_network(x, decision_units, num_classes, decision_dropout, name="decision")
        }
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.bmode_backbone = bmode_backbone
        self.semode_backbone = semode_backbone
        self.decision_units = tuple(decision_units)
        self.decision_dropout = decision_dropout
        self.normalization = normalization
        self.num_classes = num_classes
        self._init_loss({"decision": 1.0})

    def get_config(self):
        config = super().get_config()
        config.update(
            bmode_backbone=keras.layers.serialize(self.bmode_backbone),
            semode_backbone=keras.layers.serialize(self.semode_backbone),
            decision_units=list(self.decision_units),
            decision_dropout=self.decision_dropout,
            normalization=self.normalization,
            num_classes=self.num_classes,
        )
        return config
