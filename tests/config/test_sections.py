"""The section dataclasses check their own rules (tf_bimodal.config.classification,
tf_bimodal.config.experiment, tf_bimodal.config.base)."""

from __future__ import annotations

import dataclasses

import pytest

from tf_bimodal.config import (
    CLASSIFICATION_PRESETS,
    ClassificationConfig,
    ExperimentConfig,
    apply_overrides,
    check_choice,
    resolve_experiment,
)


def test_check_choice_names_the_owner_the_field_and_the_choices():
    check_choice("Owner", "mode", "a", ("a", "b"))
    with pytest.raises(ValueError, match=r"^Owner: mode must be one of \('a', 'b'\), got 'c'$"):
        check_choice("Owner", "mode", "c", ("a", "b"))


def test_experiment_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ExperimentConfig().name = "other"


@pytest.mark.parametrize("overrides", [("epochs=5",), "segmentation.epochs=5", None, (5,)])
def test_experiment_config_records_only_override_strings(overrides):
    with pytest.raises(ValueError, match="overrides must be a sequence of 'section.key=value' strings"):
        ExperimentConfig(overrides=overrides)


# --------------------------------------------------------------------------- backbone weights policy


def test_backbone_weights_policy_fields():
    assert ClassificationConfig().require_backbone_weights is False
    assert CLASSIFICATION_PRESETS["paper"].require_backbone_weights is True  # no accidental random weights
    assert not CLASSIFICATION_PRESETS["cpu"].require_backbone_weights
    assert not CLASSIFICATION_PRESETS["quick"].require_backbone_weights
    assert CLASSIFICATION_PRESETS["cpu"].backbone_weights == "none"
    assert ClassificationConfig(require_backbone_weights=True).backbone_weights == "imagenet"
    assert ClassificationConfig(backbone_weights="/w.h5", require_backbone_weights=True).require_backbone_weights
    with pytest.raises(ValueError, match="require_backbone_weights=True needs backbone_weights"):
        ClassificationConfig(backbone_weights="none", require_backbone_weights=True)
    with pytest.raises(ValueError, match="backbone_weights must be 'imagenet', 'hed', 'none' or the path"):
        ClassificationConfig(backbone_weights="")


@pytest.mark.parametrize("margin", [-1, 1.5, True, "150"])
def test_context_margin_is_none_or_a_pixel_count(margin):
    assert ClassificationConfig(context_margin=150).context_margin == 150
    with pytest.raises(ValueError, match="context_margin must be None or an int >= 0"):
        ClassificationConfig(context_margin=margin)


def test_pooled_features_and_the_logistic_head_are_checked():
    config = ClassificationConfig(backbone_features="pooled", head_fit="logistic", frozen_blocks=5, augment=False)
    assert config.pooled_blocks == (3, 4, 5)
    assert ClassificationConfig(pooled_blocks=(9,)).backbone_features == "fc"  # unused, so unchecked
    with pytest.raises(ValueError, match="backbone_features must be one of"):
        ClassificationConfig(backbone_features="conv")
    with pytest.raises(ValueError, match="pooled_blocks must name blocks 1 to 5"):
        ClassificationConfig(backbone_features="pooled", pooled_blocks=(0, 3))
    with pytest.raises(ValueError, match="head_fit must be one of"):
        ClassificationConfig(head_fit="svm")
    with pytest.raises(ValueError, match=r"needs frozen_blocks=5 \(all\) and augment=False, got frozen_blocks=4"):
        ClassificationConfig(head_fit="logistic", frozen_blocks=4, augment=False)
    with pytest.raises(ValueError, match="augment=True"):
        ClassificationConfig(head_fit="logistic", frozen_blocks=5)
    overridden = apply_overrides(resolve_experiment("cpu"), ["classification.backbone_features=pooled",
                                                             "classification.pooled_blocks=4,5"])
    assert overridden.classification.pooled_blocks == (4, 5)
