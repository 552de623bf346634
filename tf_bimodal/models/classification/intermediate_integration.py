"""Intermediate integration baseline, Table 2 "MFF (intermediate)" (§3.3.3, Fig. 4d)."""

from __future__ import annotations

import keras

from tf_bimodal.models.classification import classifier_task as task
from tf_bimodal.models.classification.late_integration import check_two_backbones
from tf_bimodal.schema import MODALITY_CHANNELS


@keras.saving.register_keras_serializable(package="tf_bimodal")
class IntermediateIntegrationClassifier(task.ClassifierTask):
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
        task.check_common_arguments("IntermediateIntegrationClassifier", num_classes, normalization)
        check_two_backbones("IntermediateIntegrationClassifier", bmode_backbone, semode_backbone)
        backbones = {"bmode": bmode_backbone, "semode": semode_backbone}

        # === Functional model ===
        inputs = task.modality_inputs(MODALITY_CHANNELS, bmode_backbone.image_shape[0])
        images = task.apply_modalities_preprocessing(inputs, MODALITY_CHANNELS, normalization)
        features = [backbones[name](images[name]) for name in MODALITY_CHANNELS]
        x = keras.layers.Concatenate(axis=-1, name="feature_concatenation")(features)
        outputs = {"decision": task.apply_decision_network(x, decision_units, num_classes, decision_dropout)}
        super().__init__(
            inputs, outputs,
            config=dict(bmode_backbone=bmode_backbone, semode_backbone=semode_backbone, decision_units=decision_units,
                        decision_dropout=decision_dropout, normalization=normalization, num_classes=num_classes),
            output_loss_weights={"decision": 1.0},
            **kwargs,
        )
