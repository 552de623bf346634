"""One network of Table 3 (§4.2.2): modalities, the backbone, a softmax head.

Yap et al., Fujioka et al. and Zhang et al. are one such network each; Kumar et al. fine-tune
two of them before their SVMs; Misra et al. 2021 train two of them (both modalities behind a
channel adapter) before joining their features (:mod:`.ensembles`).
"""

from __future__ import annotations

import keras

from tf_bimodal.models.classification import classifier_task as task
from tf_bimodal.models.classification.table3.adapters import apply_modality_images, modality_inputs


@keras.saving.register_keras_serializable(package="tf_bimodal")
class Table3Classifier(task.ClassifierTask):
    """Modality images -> 3 channels -> backbone -> ``features`` -> softmax ``predictions``.

    One grey B-mode image is repeated to RGB; B-mode and SE-mode together are stacked to 4
    channels and projected to 3 by a trainable 1x1 convolution (``channel_adapter``,
    :mod:`.adapters`). The backbone (:mod:`.backbones`) normalises its own pixels. The
    features are the layer ``features`` (an identity), for the ensembles that read them.

    Args:
        backbone: a backbone of :func:`~.backbones.build_backbone` (``(S, S, 3)`` in [0, 1]
            to a feature vector).
        modalities: the inputs read, ``("bmode",)``, ``("semode",)`` or ``("bmode", "semode")``.
        num_classes: 2.

    Inputs: ``{modality: (S, S, channels)}`` in [0, 1]. Outputs: ``{"decision": (batch,
    num_classes)}`` probabilities (float32). The loss is the cross-entropy of ``decision``.
    """

    def __init__(self, backbone, modalities=("bmode",), num_classes: int = 2, **kwargs):
        task.check_common_arguments("Table3Classifier", num_classes, "standardize")
        modalities = tuple(modalities)
        inputs = modality_inputs(modalities, backbone.input_shape[1])
        features = keras.layers.Identity(name="features")(backbone(apply_modality_images(inputs)))
        outputs = {"decision": task.apply_softmax_head(features, num_classes)}
        config = dict(backbone=backbone, modalities=modalities, num_classes=num_classes)
        super().__init__(inputs, outputs, config=config, output_loss_weights={"decision": 1.0}, **kwargs)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["modalities"] = tuple(config.get("modalities", ("bmode",)))
        return super().from_config(config)


def features_model(network: keras.Model) -> keras.Model:
    """The part of ``network`` (a model with a ``features`` layer) from its inputs to its
    features, sharing its layers (``<network>_features``)."""
    return keras.Model(network.input, network.get_layer("features").output, name=f"{network.name}_features")
