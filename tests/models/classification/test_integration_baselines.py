"""The integration baselines of Table 2: early, late, stack-wise, intermediate (paper §3.3.3)."""

from __future__ import annotations

import numpy as np
import pytest

from tf_bimodal.models.classification import (
    EarlyIntegrationClassifier,
    IntermediateIntegrationClassifier,
    LateIntegrationClassifier,
    StackwiseIntegrationClassifier,
)

from classification_helpers import batch, tiny_backbone
from harness import check_config_round_trip, run_model_test


def _one_backbone():
    return [tiny_backbone()]


def _two_backbones():
    return [tiny_backbone("bmode_backbone"), tiny_backbone("semode_backbone")]


HARNESS_CASES = [
    # class, backbones, constructor arguments, input keys, output keys
    (EarlyIntegrationClassifier, _one_backbone, dict(decision_units=(4, 4), num_classes=3),
     ("bmode", "semode", "availability"), ("decision", "bmode", "semode")),
    (LateIntegrationClassifier, _two_backbones, dict(normalization="caffe", num_classes=3),
     ("bmode", "semode", "availability"), ("decision", "bmode", "semode")),
    (StackwiseIntegrationClassifier, _one_backbone, dict(decision_units=(4, 4), decision_dropout=0.0, num_classes=3),
     ("bmode", "semode"), ("decision",)),
    (IntermediateIntegrationClassifier, _two_backbones, dict(decision_units=(4, 4), num_classes=3),
     ("bmode", "semode"), ("decision",)),
]


@pytest.mark.parametrize("cls, backbones, kwargs, inputs, outputs", HARNESS_CASES,
                         ids=[case[0].__name__ for case in HARNESS_CASES])
def test_integration_baseline_harness(cls, backbones, kwargs, inputs, outputs):
    """Shapes and the config round trip with three classes; the dtypes under mixed policies
    and the saving are checked on each baseline by the factory tests."""
    availability = np.array([[1, 1], [1, 0]], "float32")
    data = {key: value for key, value in batch(2, availability=availability).items() if key in inputs}
    model = run_model_test(lambda: cls(*backbones(), **kwargs), data, (None, 3), mixed_precision_policies=())
    assert set(model.output) == set(outputs)
    restored = check_config_round_trip(model)
    assert restored.num_classes == 3


INVALID_ARGUMENTS = [
    (lambda: EarlyIntegrationClassifier(tiny_backbone(), num_classes=1), "num_classes"),
    (lambda: LateIntegrationClassifier(*([tiny_backbone()] * 2)), "independent"),
    (lambda: LateIntegrationClassifier(tiny_backbone("a"), tiny_backbone("b"), normalization="none"), "normalization"),
    (lambda: IntermediateIntegrationClassifier(tiny_backbone("a"), tiny_backbone("a")), "different names"),
    (lambda: StackwiseIntegrationClassifier(tiny_backbone(), normalization="none"), "normalization"),
]


@pytest.mark.parametrize("make, message", INVALID_ARGUMENTS)
def test_invalid_baseline_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_late_integration_branches_split_the_weights():
    """Each branch (backbone + its softmax head) is selected on its own (§3.3.3): the two
    weight lists are disjoint and together every weight of the model."""
    model = LateIntegrationClassifier(*_two_backbones())
    branches = model.branch_weights()
    assert set(branches) == {"bmode", "semode"}
    ids = {name: {id(w) for w in weights} for name, weights in branches.items()}
    assert not ids["bmode"] & ids["semode"]
    assert ids["bmode"] | ids["semode"] == {id(w) for w in model.weights}
    assert {id(w) for w in model.semode_backbone.weights} <= ids["semode"]
    assert {id(w) for w in model.get_layer("bmode_predictions").weights} <= ids["bmode"]
