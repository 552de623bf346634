"""Every classifier of Table 2 built by name (§3.3, §4.2): harness, training, saving."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from tf_bimodal.config import CLASSIFICATION_MODELS
from tf_bimodal.models.classification import build_classifier
from tf_bimodal.models.classification.factory import MODEL_DESCRIPTIONS, backbone_names

from classification_helpers import TINY, batch, feed
from harness import check_config_round_trip, run_model_saving_test, run_model_test

MODEL_CASES = [
    # model, inputs, outputs
    ("mff", ("bmode", "semode", "availability"), ("decision", "bmode", "semode")),
    ("mff_early", ("bmode", "semode", "availability"), ("decision", "bmode", "semode")),
    ("mff_late", ("bmode", "semode", "availability"), ("decision", "bmode", "semode")),
    ("mff_stack", ("bmode", "semode"), ("decision",)),
    ("mff_intermediate", ("bmode", "semode"), ("decision",)),
    ("vgg16_bmode", ("bmode",), ("decision",)),
    ("vgg16_semode", ("semode",), ("decision",)),
]


def test_every_registered_model_has_a_case():
    assert {case[0] for case in MODEL_CASES} == set(CLASSIFICATION_MODELS)
    assert set(MODEL_DESCRIPTIONS) == set(CLASSIFICATION_MODELS)


@pytest.mark.parametrize("name, inputs, outputs", MODEL_CASES)
def test_shapes_symbolic_and_eager(name, inputs, outputs):
    """Shapes, and under mixed policies float32 probabilities and every layer's dtype.

    Every probability output is float32 under any policy (documented: the softmax heads and
    the soft voting are float32).
    """
    data = feed(name, batch(3))
    model = run_model_test(
        lambda: build_classifier(name, TINY, "standardize"), data, (None, 2), expected_output_dtype="float32"
    )
    assert set(model.input) == set(inputs)
    assert set(model.output) == set(outputs)
    predictions = model(data, training=False)
    for output in outputs:
        assert predictions[output].shape == (3, 2)
        np.testing.assert_allclose(np.sum(predictions[output], axis=-1), 1.0, rtol=1e-5)
    assert {layer.name for layer in model.layers if layer.name.endswith("backbone")} == set(backbone_names(name))


def test_factory_rejects_unknown_model():
    with pytest.raises(ValueError, match="model must be one of"):
        build_classifier("resnet", TINY, "standardize")


@pytest.mark.parametrize("name, weights", [
    ("mff_early", {"bmode": 1.0, "semode": 1.0, "decision": 0.0}),
    ("mff_late", {"bmode": 1.0, "semode": 1.0, "decision": 0.0}),
    ("mff_stack", {"decision": 1.0}),
    ("vgg16_semode", {"decision": 1.0}),
])
def test_baseline_loss_weights(name, weights):
    assert build_classifier(name, TINY, "standardize").output_loss_weights == weights


@pytest.mark.parametrize("name", CLASSIFICATION_MODELS)
def test_training_steps_lower_the_loss(name):
    keras.utils.set_random_seed(0)
    model = build_classifier(name, dataclasses.replace(TINY, fc_dropout=0.0, decision_dropout=0.0), "standardize")
    model.compile(optimizer=keras.optimizers.SGD(0.02, momentum=0.8))
    inputs = feed(name, batch(8, seed=1))
    labels = np.array([0, 1] * 4)
    before = model.evaluate(inputs, labels, verbose=0, return_dict=True)["loss"]
    for _ in range(8):
        model.train_on_batch(inputs, labels)
    after = model.evaluate(inputs, labels, verbose=0, return_dict=True)["loss"]
    assert after < before, (name, before, after)


@pytest.mark.parametrize("name", CLASSIFICATION_MODELS)
def test_config_and_saved_model_round_trip(name, tmp_path):
    model = build_classifier(name, TINY, "caffe" if name == "vgg16_semode" else "standardize")
    model.compile()
    check_config_round_trip(model)
    run_model_saving_test(model, feed(name, batch(2, seed=4)), tmp_path, rtol=1e-6, atol=1e-7)
