"""Wang et al. (MICCAI 2020, "Auto-weighting for breast cancer classification in multimodal
ultrasound"), Table 3's row with B-mode + SE-mode (§4.2.2).

The original reads four modalities with one shared backbone, a head per modality and a fused
head, its loss ``L = sum_m softmax(c)_m * L_m`` with the weights' logits ``c`` searched by
reinforcement learning (:mod:`tf_bimodal.training.table3.wang`). Here: the two modalities of
Table 3's footnote, a shared ResNet-18 (the backbone is a reading, the original's is not
public), the per-branch heads ``bmode`` / ``semode`` on each branch's features and the fused
head ``decision`` on their concatenation, the one evaluated.
"""

from __future__ import annotations

import keras
from keras import ops

from tf_bimodal.models.classification import classifier_task as task
from tf_bimodal.models.classification.table3.adapters import apply_grey_to_rgb, modality_inputs
from tf_bimodal.models.classification.table3.backbones import build_backbone

BACKBONE = "resnet18"
MODALITIES = ("bmode", "semode")
ORIGINAL_INPUT_SIZE = 224
LOSS_OUTPUTS = ("bmode", "semode", "decision")
"""The heads whose cross-entropies the loss weighs, in the order of the weights' logits."""


@keras.saving.register_keras_serializable(package="tf_bimodal")
class WangClassifier(task.ClassifierTask):
    """A shared backbone over B-mode (repeated to RGB) and SE-mode, a softmax head per branch
    and a fused head on the concatenated features, the loss weighted by ``softmax(c)``.

    Args:
        backbone: one backbone applied to both modalities (shared weights).
        loss_logits: the initial logits ``c`` of the loss weights, one per output of
            :data:`LOSS_OUTPUTS` (zeros: equal weights). The current ones are the
            non-trainable variable ``loss_logits`` (:meth:`set_loss_logits`), saved with the
            weights.
        num_classes: 2.

    Inputs: ``{"bmode", "semode"}``. Outputs: ``{"decision", "bmode", "semode"}``
    probabilities; ``decision`` (the fused head) is the prediction.
    """

    def __init__(self, backbone, loss_logits=(0.0, 0.0, 0.0), num_classes: int = 2, **kwargs):
        task.check_common_arguments("WangClassifier", num_classes, "standardize")
        loss_logits = tuple(float(value) for value in loss_logits)
        if len(loss_logits) != len(LOSS_OUTPUTS):
            raise ValueError(f"WangClassifier: loss_logits needs {len(LOSS_OUTPUTS)} values ({LOSS_OUTPUTS}), "
                             f"got {loss_logits!r}")
        inputs = modality_inputs(MODALITIES, backbone.input_shape[1])
        features = {
            name: keras.layers.Identity(name=f"{name}_features")(backbone(apply_grey_to_rgb(x, name=f"{name}_to_rgb")))
            for name, x in inputs.items()
        }
        outputs = {"decision": None}
        for name in MODALITIES:
            outputs[name] = task.apply_softmax_head(features[name], num_classes, name=f"{name}_predictions")
        fused = keras.layers.Concatenate(name="fused_features")([features[name] for name in MODALITIES])
        outputs["decision"] = task.apply_softmax_head(fused, num_classes, name="fused_predictions")
        config = dict(backbone=backbone, loss_logits=loss_logits, num_classes=num_classes)
        super().__init__(inputs, outputs, config=config,
                         output_loss_weights={name: 1.0 for name in LOSS_OUTPUTS}, **kwargs)
        self.loss_logits_variable = keras.Variable(list(loss_logits), trainable=False, name="loss_logits")

    def set_loss_logits(self, values) -> None:
        """Set the logits ``c`` the loss is weighted by from now on."""
        self.loss_logits_variable.assign(ops.convert_to_tensor(list(values), "float32"))

    def loss_weights(self):
        """``softmax(c)``, the current weights of :data:`LOSS_OUTPUTS`."""
        return ops.softmax(self.loss_logits_variable)

    def loss_terms(self, x, y, y_pred, sample_weight=None) -> dict:
        """Each head's cross-entropy and ``total = sum_m softmax(c)_m * L_m``."""
        terms = super().loss_terms(x, y, y_pred, sample_weight)
        weights = self.loss_weights()
        terms["total"] = sum(weights[index] * terms[name] for index, name in enumerate(LOSS_OUTPUTS))
        return terms

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss_logits"] = tuple(config.get("loss_logits", (0.0, 0.0, 0.0)))
        return super().from_config(config)


def build_wang(image_size: int, width: float = 1.0, name: str = "wang") -> WangClassifier:
    """Wang et al.'s network: :class:`WangClassifier` on a ResNet-18 (no Keras ImageNet weights)."""
    return WangClassifier(build_backbone(BACKBONE, image_size, width, name="resnet18_backbone"), name=name)
