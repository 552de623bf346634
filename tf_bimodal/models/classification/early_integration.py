"""Early integration baseline, Table 2 "MFF (early)" (§3.3.3, Fig. 4a)."""

from __future__ import annotations

import keras

from tf_bimodal.models.classification import classifier_task as task
from tf_bimodal.schema import MODALITY_CHANNELS


@keras.saving.register_keras_serializable(package="tf_bimodal")
class EarlyIntegrationClassifier(task.ClassifierTask):
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
        task.check_common_arguments("EarlyIntegrationClassifier", num_classes, normalization)

        # === Functional model ===
        inputs = task.modality_inputs(MODALITY_CHANNELS, backbone.image_shape[0], availability=True)
        # One decision network, shared by both modalities like the backbone.
        shared_input = keras.Input(shape=(backbone.fc_units,), name="features")
        decision_network = keras.Model(
            shared_input,
            task.apply_decision_network(shared_input, decision_units, num_classes, decision_dropout),
            name="decision_network",
        )
        images = task.apply_modalities_preprocessing(inputs, MODALITY_CHANNELS, normalization)
        outputs = {name: decision_network(backbone(images[name])) for name in MODALITY_CHANNELS}
        outputs = task.with_soft_voting(outputs, inputs["availability"])
        super().__init__(
            inputs, outputs,
            config=dict(backbone=backbone, decision_units=decision_units, decision_dropout=decision_dropout,
                        normalization=normalization, num_classes=num_classes),
            output_loss_weights={"bmode": 1.0, "semode": 1.0, "decision": 0.0},
            output_modality_columns=task.availability_columns(MODALITY_CHANNELS),
            **kwargs,
        )
