"""Single-modal VGG-16 classifier, Table 2 rows "VGG-16 (single)" (§3.3.2, §4.2.1)."""

from __future__ import annotations

import keras

from tf_bimodal.models.classification import classifier_task as task
from tf_bimodal.schema import MODALITY_CHANNELS


@keras.saving.register_keras_serializable(package="tf_bimodal")
class VGG16Classifier(task.ClassifierTask):
    """VGG-16 on one modality with VGG's own softmax classifier layer (§3.3.2, Table 2).

    Args:
        backbone: a :class:`VGG16Backbone` (3-channel input).
        modality: ``"bmode"`` (grey, repeated to RGB) or ``"semode"`` (RGB); the input name.
        normalization: ``"standardize"`` or ``"caffe"`` (ImageNet weights).
        num_classes: 2.
        context: also read ``{modality}_context``, a wider crop of the same lesion
            (``ClassificationConfig.context_margin``), through the same backbone; the two
            feature vectors are concatenated (``context_features``) before ``predictions``.

    Inputs: ``{modality: (batch, S, S, channels)}`` (values in [0, 1]), and with ``context``
    ``{modality}_context`` of the same shape.
    Outputs: ``{"decision": (batch, num_classes)}`` from the ``predictions`` layer.
    """

    def __init__(self, backbone, modality: str = "bmode", normalization: str = "standardize", num_classes: int = 2,
                 context: bool = False, **kwargs):
        if modality not in MODALITY_CHANNELS:
            raise ValueError(
                f"VGG16Classifier: modality must be one of {tuple(MODALITY_CHANNELS)}, got {modality!r}"
            )
        task.check_common_arguments("VGG16Classifier", num_classes, normalization)
        channels = MODALITY_CHANNELS[modality]

        # === Functional model ===
        images = {modality: channels, f"{modality}_context": channels} if context else {modality: channels}
        inputs = task.modality_inputs(images, backbone.image_shape[0])
        features = [backbone(x) for x in task.apply_modalities_preprocessing(inputs, images, normalization).values()]
        if context:
            features = [keras.layers.Concatenate(name="context_features")(features)]
        outputs = {"decision": task.apply_softmax_head(features[0], num_classes, name="predictions")}
        super().__init__(
            inputs, outputs,
            config=dict(backbone=backbone, modality=modality, normalization=normalization, num_classes=num_classes,
                        context=bool(context)),
            output_loss_weights={"decision": 1.0},
            **kwargs,
        )
