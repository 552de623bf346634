"""The multimodal fusion framework, MFF (paper §3.3.1-3.3.2, Eq. 1, Fig. 3)."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from tf_bimodal.config import CLASSIFICATION_PRESETS, ClassificationConfig
from tf_bimodal.models.classification import MFFClassifier, VGG16Backbone, build_classifier

from classification_helpers import SIZE, TINY, batch, tiny_backbone
from harness import run_model_saving_test, run_model_test


def _three_modality_inputs():
    inputs = batch(2)
    inputs["swe"] = np.random.default_rng(3).uniform(size=(2, SIZE, SIZE, 3)).astype("float32")
    inputs["availability"] = np.array([[1, 1, 0], [0, 1, 1]], "float32")
    return inputs


def test_mff_three_modalities():
    model = MFFClassifier(tiny_backbone(), modalities={"bmode": 1, "semode": 3, "swe": 3},
                          embracement_size=16, decision_units=(8, 8))
    predictions = model(_three_modality_inputs())
    assert set(predictions) == {"decision", "bmode", "semode", "swe"}
    assert predictions["decision"].shape == (2, 2)
    assert model.get_layer("embracenet").num_modalities == 3


HARNESS_CASES = [
    # constructor arguments besides the backbone
    dict(modalities={"bmode": 1, "semode": 3, "swe": 3}, embracement_size=8, decision_units=(4, 4),
         decision_loss_weight=0.5, normalization="caffe", num_classes=3, seed=1),
]


@pytest.mark.parametrize("kwargs", HARNESS_CASES)
def test_mff_harness(kwargs, tmp_path):
    """Shapes and saving; the dtypes under mixed policies are checked on ``mff`` by the factory
    test."""
    inputs = _three_modality_inputs() if "modalities" in kwargs else batch(2)
    num_classes = kwargs.get("num_classes", 2)
    model = run_model_test(
        lambda: MFFClassifier(tiny_backbone(), **kwargs), inputs, (None, num_classes), mixed_precision_policies=()
    )
    run_model_saving_test(model, inputs, tmp_path)


def test_mff_shares_one_backbone_and_names_its_layers():
    model = build_classifier("mff", TINY, "standardize")
    backbones = [layer for layer in model.layers if isinstance(layer, VGG16Backbone)]
    assert len(backbones) == 1, "B-mode and SE-mode share one VGG-16 (§3.3.2)"
    for name in ("bmode_to_rgb", "embracenet", "decision_fc1", "decision_fc2", "decision_predictions",
                 "bmode_predictions", "semode_predictions"):
        model.get_layer(name)
    two = build_classifier("mff_intermediate", TINY, "standardize")
    assert {layer.name for layer in two.layers if isinstance(layer, VGG16Backbone)} == {
        "bmode_backbone", "semode_backbone"}


def _cross_entropy(labels, probabilities):
    return -np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0))


def test_mff_loss_is_integrated_plus_lambda_decision():
    model = MFFClassifier(tiny_backbone(), embracement_size=16, decision_units=(8, 8), decision_loss_weight=0.4)
    availability = np.array([[1, 1], [1, 0], [1, 1], [1, 0]], "float32")
    inputs = batch(4, availability=availability)
    labels = np.array([0, 1, 1, 0])
    predictions = {key: np.asarray(value) for key, value in model(inputs, training=False).items()}
    # The parts, computed apart: each modality's cross-entropy over the samples that have it.
    bmode = _cross_entropy(labels, predictions["bmode"]).mean()
    semode = _cross_entropy(labels, predictions["semode"])[availability[:, 1] > 0].mean()
    decision = _cross_entropy(labels, predictions["decision"]).mean()
    terms = {key: float(value) for key, value in model.loss_terms(inputs, labels, predictions).items()}
    np.testing.assert_allclose(terms["bmode"], bmode, rtol=1e-5)
    np.testing.assert_allclose(terms["semode"], semode, rtol=1e-5)
    np.testing.assert_allclose(terms["decision"], decision, rtol=1e-5)
    np.testing.assert_allclose(terms["total"], bmode + semode + 0.4 * decision, rtol=1e-5)
    total = float(model.compute_loss(inputs, labels, predictions))
    np.testing.assert_allclose(total, bmode + semode + 0.4 * decision, rtol=1e-5)


def test_mff_ignores_an_unavailable_semode_image():
    model = build_classifier("mff", TINY, "standardize")
    inputs = batch(3, availability=[[1, 0]] * 3)
    other = dict(inputs, semode=np.zeros_like(inputs["semode"]))
    np.testing.assert_allclose(model(inputs)["decision"], model(other)["decision"], rtol=1e-6)
    with_semode = dict(inputs, availability=np.ones((3, 2), "float32"))
    assert not np.allclose(model(with_semode)["decision"], model(inputs)["decision"])


INVALID_ARGUMENTS = [
    (dict(modalities={"bmode": 1}), "at least 2 modalities"),
    (dict(decision_loss_weight=-1.0), "decision_loss_weight"),
    (dict(embracenet_inference="mean"), "inference"),
    (dict(embracenet_inference="mc", embracenet_mc_samples=0), "mc_samples"),
    (dict(num_classes=1), "num_classes"),
    (dict(normalization="imagenet"), "normalization"),
]


@pytest.mark.parametrize("kwargs, message", INVALID_ARGUMENTS)
def test_invalid_mff_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MFFClassifier(tiny_backbone(), **kwargs)


# --------------------------------------------------------------------------- EmbraceNet at inference


def _mff(inference, **kwargs):
    return MFFClassifier(tiny_backbone(), embracement_size=16, decision_units=(8, 8), embracenet_inference=inference,
                         seed=2, **kwargs)


def test_mc_decision_is_the_mean_of_the_decision_network_over_k_draws():
    model = _mff("mc", embracenet_mc_samples=4)
    inputs = batch(3, availability=[[1, 1], [1, 0], [1, 1]])
    probe = keras.Model(model.inputs, [model.get_layer("embracenet").output,
                                       model.get_layer("decision_predictions").output, model.output["decision"]])
    embraced, per_draw, decision = (np.asarray(x) for x in probe(inputs, training=False))
    assert embraced.shape == (4 * 3, 16) and per_draw.shape == (4 * 3, 2)
    np.testing.assert_allclose(decision, per_draw.reshape(4, 3, 2).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(decision.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(decision, np.asarray(model(inputs, training=False)["decision"]))


@pytest.mark.parametrize("inference", ["expected", "mc"])
def test_deterministic_rules_save_and_reload_to_the_same_predictions(inference, tmp_path):
    model = _mff(inference, embracenet_mc_samples=3)
    reloaded = run_model_saving_test(model, batch(2), tmp_path)
    assert reloaded.get_layer("embracenet").inference == inference
    assert reloaded.embracenet_mc_samples == 3


def test_sample_rule_draws_anew_at_test_time():
    model = _mff("sample")
    inputs = batch(2)
    first, second = (np.asarray(model(inputs, training=False)["decision"]) for _ in range(2))
    assert not np.array_equal(first, second)
    restored = MFFClassifier.from_config(model.get_config())
    assert restored.get_layer("embracenet").inference == "sample"


def test_every_rule_has_the_same_graph_and_may_be_switched():
    names = {inference: [layer.name for layer in _mff(inference).layers] for inference in ("sample", "expected", "mc")}
    assert names["sample"] == names["expected"] == names["mc"]
    model = _mff("expected", embracenet_mc_samples=5)
    inputs = batch(3)
    expected = np.asarray(model(inputs)["decision"])
    model.get_layer("embracenet").inference = "mc"
    switched = np.asarray(model(inputs)["decision"])
    assert switched.shape == expected.shape and not np.allclose(switched, expected)


def test_mc_model_trains_one_step_on_single_draws():
    model = _mff("mc", embracenet_mc_samples=4)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    before = np.array(model.get_layer("decision_fc1").kernel)
    history = model.fit(batch(4), np.array([0, 1, 1, 0]), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.array_equal(before, np.array(model.get_layer("decision_fc1").kernel))


def test_factory_passes_the_embracenet_settings():
    config = dataclasses.replace(TINY, embracenet_inference="mc", embracenet_mc_samples=6)
    layer = build_classifier("mff", config, "standardize").get_layer("embracenet")
    assert (layer.inference, layer.mc_samples) == ("mc", 6)


def test_presets_choose_the_rule_and_the_config_checks_it():
    assert CLASSIFICATION_PRESETS["paper"].embracenet_inference == "mc"
    assert CLASSIFICATION_PRESETS["paper"].embracenet_mc_samples == 16
    assert CLASSIFICATION_PRESETS["cpu"].embracenet_inference == "mc"
    assert CLASSIFICATION_PRESETS["quick"].embracenet_inference == "expected"
    for changes, rule in [(dict(embracenet_inference="mean"), "embracenet_inference must be one of"),
                          (dict(embracenet_mc_samples=0), "embracenet_mc_samples must be an int >= 1"),
                          (dict(embracenet_mc_samples=True), "embracenet_mc_samples must be an int >= 1")]:
        with pytest.raises(ValueError, match=rule):
            ClassificationConfig(**changes)
