"""Stack-wise early integration baseline, Table 2 "MFF (stack-wise)" (§3.3.3, Fig. 4c)."""

from __future__ import annotations

import keras

from tf_bimodal.models.classification import classifier_task as task
from tf_bimodal.schema import MODALITY_CHANNELS


@keras.saving.register_keras_serializable(package="tf_bimodal")
class StackwiseIntegrationClassifier(task.ClassifierTask):
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
        task.check_common_arguments("StackwiseIntegrationClassifier", num_classes, normalization)

        # === Functional model ===
        inputs = task.modality_inputs(MODALITY_CHANNELS, backbone.image_shape[0])
        images = task.apply_modalities_preprocessing(inputs, MODALITY_CHANNELS, normalization)
        x = keras.layers.Concatenate(axis=-1, name="stack")(list(images.values()))
        x = keras.layers.Conv2D(3, 1, name="stack_projection")(x)
        outputs = {"decision": task.apply_decision_network(backbone(x), decision_units, num_classes, decision_dropout)}
        super().__init__(
            inputs, outputs,
            config=dict(backbone=backbone, decision_units=decision_units, decision_dropout=decision_dropout,
                        normalization=normalization, num_classes=num_classes),
            output_loss_weights={"decision": 1.0},
            **kwargs,
        )
