"""Late integration baseline, Table 2 "MFF (late)" (§3.3.3, Fig. 4b)."""

from __future__ import annotations

import keras

from tf_bimodal.models.classification import classifier_task as task
from tf_bimodal.schema import MODALITY_CHANNELS


def check_two_backbones(owner, bmode_backbone, semode_backbone):
    if bmode_backbone is semode_backbone:
        raise ValueError(f"{owner}: needs two independent backbones, got the same object twice")
    if bmode_backbone.name == semode_backbone.name:
        raise ValueError(
            f"{owner}: the two backbones need different names, both are {bmode_backbone.name!r}"
        )
    if tuple(bmode_backbone.image_shape) != tuple(semode_backbone.image_shape):
        raise ValueError(
            f"{owner}: the backbones must share their input shape, got "
            f"{bmode_backbone.image_shape} and {semode_backbone.image_shape}"
        )


@keras.saving.register_keras_serializable(package="tf_bimodal")
class LateIntegrationClassifier(task.ClassifierTask):
    """Two independent single-modal VGG-16 classifiers fused by soft voting (§3.3.3).

    "Two independent pre-trained VGG-16 models are trained separately using B-mode and
    SE-mode US images [...] The final decision is determined based on the probabilities for
    the classifiers or soft voting" (§3.3.3). Each branch is a :class:`VGG16Classifier`
    (own backbone, own softmax ``{modality}_predictions``); ``"decision"`` is the mean of the
    two probability vectors. The branches share no weight and the loss is the plain sum of
    their cross-entropies, so each branch's gradient (and its SGD update, weight decay
    included) is exactly that of training it alone on the same batches. Model selection is
    per branch too: :func:`tf_bimodal.training.classification.fit_classifier` gives each
    branch its own early stopping on its own validation loss (``val_bmode_loss``,
    ``val_semode_loss``) and restores each branch's own best epoch (:meth:`branch_weights`),
    so fitting this model *is* training the two classifiers independently
    (``docs/fidelity.md``).

    Args:
        bmode_backbone, semode_backbone: two distinct :class:`VGG16Backbone` s with
            different names and the same input shape.
        normalization: ``"standardize"`` or ``"caffe"``.
        num_classes: 2.

    Inputs: ``{"bmode", "semode", "availability"}``.
    Outputs: ``{"decision", "bmode", "semode"}`` probabilities.
    """

    def __init__(self, bmode_backbone, semode_backbone, normalization: str = "standardize",
                 num_classes: int = 2, **kwargs):
        task.check_common_arguments("LateIntegrationClassifier", num_classes, normalization)
        check_two_backbones("LateIntegrationClassifier", bmode_backbone, semode_backbone)
        backbones = {"bmode": bmode_backbone, "semode": semode_backbone}

        # === Functional model ===
        inputs = task.modality_inputs(MODALITY_CHANNELS, bmode_backbone.image_shape[0], availability=True)
        images = task.apply_modalities_preprocessing(inputs, MODALITY_CHANNELS, normalization)
        outputs = {
            name: task.apply_softmax_head(backbones[name](images[name]), num_classes, name=f"{name}_predictions")
            for name in MODALITY_CHANNELS
        }
        super().__init__(
            inputs, task.with_soft_voting(outputs, inputs["availability"]),
            config=dict(bmode_backbone=bmode_backbone, semode_backbone=semode_backbone, normalization=normalization,
                        num_classes=num_classes),
            output_loss_weights={"bmode": 1.0, "semode": 1.0, "decision": 0.0},
            output_modality_columns=task.availability_columns(MODALITY_CHANNELS),
            **kwargs,
        )

    def branch_weights(self) -> dict:
        """``{modality: [variables]}``: each branch's backbone and softmax head, the weights a
        per-branch early stopping saves and restores. No weight belongs to both branches,
        and together they are all the model's weights."""
        return {
            name: [*backbone.weights, *self.get_layer(f"{name}_predictions").weights]
            for name, backbone in (("bmode", self.bmode_backbone), ("semode", self.semode_backbone))
        }
