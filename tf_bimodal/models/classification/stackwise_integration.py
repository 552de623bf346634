"""Stack-wise early integration baseline, Table 2 "MFF (stack-wise)" (§3.3.3, Fig. 4c)."""

from __future__ import annotations

import keras

from tf_bimodal.models.classification.classifier_task import (
    ClassifierTask,
    apply_decision_network,
    apply_modality_preprocessing,
    check_common_arguments,
    modality_input,
)
from tf_bimodal.schema import MODALITY_CHANNELS


@keras.saving.register_keras_serializable(package="tf_bimodal")
class StackwiseIntegrationClassifier(ClassifierTask):
    """B-mode and SE-mode stacked to 6 channels, a 1x1 convolution to 3, then VGG-16 (§3.3.3).

    "B-mode (336 x 336 x 3 tensor) and SE-mode (336 x 336 x 3 tensor) US images are fused
    into 336 x 336 x 6 tensor. Then, a 1 x 1 convolution is employed to reduce channel
    dimension [...] to 336 x 336 x 3 tensor, which is the input of the pre-trained VGG-16
    model" (§3.3.3, after Misra et al. 2021). Each modality is normalised first (B-mode
    repeated to RGB), the 1x1 convolution is ``stack_projection`` (linear), and the VGG-16
    features feed the same decision network as the other integration models.

    Both images are needed; a missing SE-mode image is a zero (mid-grey after
    normalisation) input, not a masked one: this model has no notion of availability.

    Args:
        backbone: a :class:`VGG16Backbone` (3-channel input).
        decision_units, decision_dropout: the decision network's hidden widths and dropout.
        normalization: ``"standardize"`` or ``"caffe"``.
        num_classes: 2.

    Inputs: ``{"bmode", "semode"}``. Outputs: ``{"decision"}``.
    """

    def __init__(self, backbone, decision_units=(1024, 256), decision_dropout: float = 0.5,
                 normalization: str = "standardize", num_classes: int = 2, **kwargs):
        check_common_arguments("StackwiseIntegrationClassifier", num_classes, normalization)
        image_size = backbone.image_shape[0]

        # === Functional model ===
        inputs = {name: modality_input(name, image_size, c) for name, c in MODALITY_CHANNELS.items()}
        normalized = [
            apply_modality_preprocessing(inputs[name], channels, normalization, name=name)
            for name, channels in MODALITY_CHANNELS.items()
        ]
        x = keras.layers.Concatenate(axis=-1, name="stack")(normalized)
        x = keras.layers.Conv2D(3, 1, name="stack_projection")(x)
        outputs = {
            "decision": apply_decision_network(
                backbone(x), decision_units, num_classes, decision_dropout, name="decision"
            )
        }
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.backbone = backbone
        self.decision_units = tuple(decision_units)
        self.decision_dropout = decision_dropout
        self.normalization = normalization
        self.num_classes = num_classes
        self._init_loss({"decision": 1.0})

    def get_config(self):
        config = super().get_config()
        config.update(
            backbone=keras.layers.serialize(self.backbone),
            decision_units=list(self.decision_units),
            decision_dropout=self.decision_dropout,
            normalization=self.normalization,
            num_classes=self.num_classes,
        )
        return config
