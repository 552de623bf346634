"""Build any classifier of Table 2 by name from a ``ClassificationConfig`` (§3.3, §4.2).

What follows the paper and what is our reading is listed in ``docs/fidelity.md``.
"""

from __future__ import annotations

from tf_bimodal.config import CLASSIFICATION_MODELS, SINGLE_MODAL_MODELS, ClassificationConfig
from tf_bimodal.models.classification.early_integration import EarlyIntegrationClassifier
from tf_bimodal.models.classification.intermediate_integration import IntermediateIntegrationClassifier
from tf_bimodal.models.classification.late_integration import LateIntegrationClassifier
from tf_bimodal.models.classification.mff_classifier import MFFClassifier
from tf_bimodal.models.classification.stackwise_integration import StackwiseIntegrationClassifier
from tf_bimodal.models.classification.vgg16_backbone import VGG16Backbone
from tf_bimodal.models.classification.vgg16_classifier import VGG16Classifier

MODEL_DESCRIPTIONS = {
    "mff": "MFF (EmbraceNet)",
    "mff_early": "MFF (early)",
    "mff_late": "MFF (late)",
    "mff_stack": "MFF (stack-wise)",
    "mff_intermediate": "MFF (intermediate)",
    "vgg16_bmode": "VGG-16 (single, B-mode)",
    "vgg16_semode": "VGG-16 (single, SE-mode)",
}
"""Table 2's name of each model."""

AVAILABILITY_MODELS = ("mff", "mff_early", "mff_late")
"""Models that take an ``availability`` input and so can classify a B-mode-only example."""


def build_backbone(config: ClassificationConfig, name: str = "backbone") -> VGG16Backbone:
    """The :class:`VGG16Backbone` that ``config`` describes."""
    return VGG16Backbone(
        stackwise_num_filters=list(config.stackwise_num_filters),
        stackwise_num_repeats=list(config.stackwise_num_repeats),
        fc_units=config.fc_units,
        image_shape=(config.input_size, config.input_size, 3),
        pooled_size=config.pooled_size,
        features=config.backbone_features,
        pooled_blocks=list(config.pooled_blocks),
        fc_dropout=config.fc_dropout,
        kernel_initializer=config.kernel_initializer,
        name=name,
    )


def build_classifier(model: str, config: ClassificationConfig, normalization: str, backbones=None,
                     seed: int | None = None):
    """A new, uncompiled classifier ``model`` (one of ``CLASSIFICATION_MODELS``).

    Args:
        model: the model name.
        config: the hyperparameters.
        normalization: ``"standardize"`` or ``"caffe"`` (resolved from ``config``).
        backbones: optional dict of already initialised backbones by name (``"backbone"``,
            or ``"bmode_backbone"`` and ``"semode_backbone"`` for the two-backbone models);
            see :func:`backbone_names`.
        seed: the seed of the model's own random draws (the EmbraceNet embracement of
            ``mff``); default ``config.seed``. A cross-validation passes its fold's seed
            (``config.seed + k``), so every fold draws differently and a rerun of a fold draws
            the same.

    Returns:
        The ``keras.Model``.

    Raises:
        ValueError: an unknown model name; ``config.context_margin`` for a model other than a
            single-modal VGG-16.
    """
    if model not in CLASSIFICATION_MODELS:
        raise ValueError(f"build_classifier: model must be one of {CLASSIFICATION_MODELS}, got {model!r}")
    if config.context_margin is not None and model not in SINGLE_MODAL_MODELS:
        raise ValueError(
            f"build_classifier: context_margin (a second, wider crop) is for the single-modal VGG-16 classifiers "
            f"{SINGLE_MODAL_MODELS}, got model {model!r} with context_margin={config.context_margin}"
        )
    backbones = dict(backbones or {})
    for name in backbone_names(model):
        backbones.setdefault(name, build_backbone(config, name))
    decision = dict(decision_units=config.decision_units, decision_dropout=config.decision_dropout)
    seed = config.seed if seed is None else seed
    if model == "mff":
        return MFFClassifier(
            backbones["backbone"],
            embracement_size=config.embracement_size,
            decision_loss_weight=config.decision_loss_weight,
            embracenet_inference=config.embracenet_inference,
            embracenet_mc_samples=config.embracenet_mc_samples,
            normalization=normalization,
            seed=seed,
            name=model,
            **decision,
        )
    if model == "mff_early":
        return EarlyIntegrationClassifier(backbones["backbone"], normalization=normalization, name=model, **decision)
    if model == "mff_late":
        return LateIntegrationClassifier(
            backbones["bmode_backbone"], backbones["semode_backbone"], normalization=normalization, name=model
        )
    if model == "mff_stack":
        return StackwiseIntegrationClassifier(
            backbones["backbone"], normalization=normalization, name=model, **decision
        )
    if model == "mff_intermediate":
        return IntermediateIntegrationClassifier(
            backbones["bmode_backbone"], backbones["semode_backbone"], normalization=normalization, name=model,
            **decision,
        )
    modality = model.split("_", 1)[1]
    return VGG16Classifier(backbones["backbone"], modality=modality, normalization=normalization,
                           context=config.context_margin is not None, name=model)


def backbone_names(model: str) -> tuple[str, ...]:
    """The names of the backbones ``model`` holds (two for late / intermediate integration)."""
    if model in ("mff_late", "mff_intermediate"):
        return ("bmode_backbone", "semode_backbone")
    return ("backbone",)


def model_input_keys(model: str, context: bool = False) -> tuple[str, ...]:
    """The input keys ``model`` reads; with ``context`` (``ClassificationConfig.context_margin``
    set) a single-modal VGG-16 also reads ``<modality>_context``."""
    if model in AVAILABILITY_MODELS:
        return ("bmode", "semode", "availability")
    if model in ("mff_stack", "mff_intermediate"):
        return ("bmode", "semode")
    modality = model.split("_", 1)[1]
    return (modality, f"{modality}_context") if context else (modality,)
