"""Early integration baseline, Table 2 "MFF (early)" (§3.3.3, Fig. 4a)."""

from __future__ import annotations

import keras

from tf_bimodal.layers.soft_voting import SoftVoting
from tf_bimodal.models.classification.classifier_task import (
    ClassifierTask,
    apply_decision_network,
    apply_modality_preprocessing,
    check_common_arguments,
    modality_input,
)
from tf_bimodal.schema import MODALITY_CHANNELS


@keras.saving.register_keras_serializable(package="tf_bimodal")
class EarlyIntegrationClassifier(ClassifierTask):
    """One VGG-16 + decision network trained on B-mode and SE-mode images mixed (§3.3.3).

    "B-mode and SE-mode US images are mixed into one data set for training [...] The input
    for the pre-trained VGG-16 model is the mixture of two modalities images. The
    classification result is then obtained from DN" (§3.3.3). Reading: one network (backbone
    and DN, weights shared) classifies every image on its own, whatever its modality (B-mode
    repeated to RGB). Training on the mixed set is training on both images of every pair
    with the sum of their two cross-entropies (outputs ``"bmode"`` and ``"semode"``, weight
    1 each, each averaged over the samples where it exists). A pair is decided by soft voting
    (``"decision"``: the mean of its available images' probabilities), which the paper leaves
    unspecified.

    Args:
        backbone: a :class:`VGG16Backbone` (3-channel input).
        decision_units, decision_dropout: the decision network's hidden widths and dropout.
        normalization: ``"standardize"`` or ``"caffe"``.
        num_classes: 2.

    Inputs: ``{"bmode", "semode", "availability"}``.
    Outputs: ``{"decision", "bmode", "semode"}`` probabilities.
    """

    def __init__(self, backbone, decision_units=(1024, 256), decision_dropout: float = 0.5,
                 normalization: str = "standardize", num_classes: int = 2, **kwargs):
        check_common_arguments("EarlyIntegrationClassifier", num_classes, normalization)
        image_size = backbone.image_shape[0]

        # === Functional model ===
        inputs = {name: modality_input(name, image_size, c) for name, c in MODALITY_CHANNELS.items()}
        inputs["availability"] = keras.Input(shape=(len(MODALITY_CHANNELS),), name="availability")
        # One decision network, shared by both modalities like the backbone.
        shared_input = keras.Input(shape=(backbone.fc_units,), name="features")
        decision_network = keras.Model(
            shared_input,
            apply_decision_network(shared_input, decision_units, num_classes, decision_dropout),
            name="decision_network",
        )
        outputs = {}
        for name, channels in MODALITY_CHANNELS.items():
            x = apply_modality_preprocessing(inputs[name], channels, normalization, name=name)
            outputs[name] = decision_network(backbone(x))
        outputs = {
            "decision": SoftVoting(dtype="float32", name="soft_voting")(
                [outputs[name] for name in MODALITY_CHANNELS], availabilities=inputs["availability"]
            ),
            **outputs,
        }
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.backbone = backbone
        self.decision_units = tuple(decision_units)
        self.decision_dropout = decision_dropout
        self.normalization = normalization
        self.num_classes = num_classes
        self._init_loss(
            {"bmode": 1.0, "semode": 1.0, "decision": 0.0},
            {name: column for column, name in enumerate(MODALITY_CHANNELS)},
        )

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
