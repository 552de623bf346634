"""Classifiers of Table 2 (§3.3): shapes, layer names, loss (Eq. 1), training, saving, weights."""

from __future__ import annotations

import dataclasses
import warnings

import keras
import numpy as np
import pytest

from tf_bimodal.config import CLASSIFICATION_MODELS, CLASSIFICATION_PRESETS
from tf_bimodal.models.classification import (
    EarlyIntegrationClassifier,
    IntermediateIntegrationClassifier,
    LateIntegrationClassifier,
    MFFClassifier,
    StackwiseIntegrationClassifier,
    VGG16Backbone,
    VGG16Classifier,
    build_classifier,
    load_backbone_weights,
)
from tf_bimodal.models.classification.backbone_weights import copy_weights_by_name
from tf_bimodal.models.classification.factory import model_input_keys

SIZE = 32
TINY = dataclasses.replace(
    CLASSIFICATION_PRESETS["quick"],
    input_size=SIZE,
    stackwise_num_filters=(4, 4, 8, 8, 8),
    stackwise_num_repeats=(1, 1, 1, 1, 1),
    fc_units=16,
    embracement_size=16,
    decision_units=(8, 8),
)


def tiny_backbone(name="backbone", **kwargs):
    return VGG16Backbone([4, 4, 8, 8, 8], [1, 1, 1, 1, 1], fc_units=16, image_shape=(SIZE, SIZE, 3),
                         name=name, **kwargs)


def batch(size=4, seed=0, availability=None):
    rng = np.random.default_rng(seed)
    return {
        "bmode": rng.uniform(size=(size, SIZE, SIZE, 1)).astype("float32"),
        "semode": rng.uniform(size=(size, SIZE, SIZE, 3)).astype("float32"),
        "availability": np.ones((size, 2), "float32") if availability is None else np.asarray(availability, "float32"),
    }


def feed(model_name, inputs):
    return {key: inputs[key] for key in model_input_keys(model_name)}


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


@pytest.mark.parametrize("name, inputs, outputs", MODEL_CASES)
def test_shapes_symbolic_and_eager(name, inputs, outputs):
    model = build_classifier(name, TINY, "standardize")
    assert set(model.input) == set(inputs)
    assert set(model.output) == set(outputs)
    for output in model.output.values():
        assert tuple(output.shape) == (None, 2)
    predictions = model(feed(name, batch(3)), training=False)
    for output in outputs:
        assert predictions[output].shape == (3, 2)
        np.testing.assert_allclose(np.sum(predictions[output], axis=-1), 1.0, rtol=1e-5)


def test_mff_three_modalities():
    model = MFFClassifier(tiny_backbone(), modalities={"bmode": 1, "semode": 3, "swe": 3},
                          embracement_size=16, decision_units=(8, 8))
    inputs = batch(2)
    inputs["swe"] = np.random.default_rng(3).uniform(size=(2, SIZE, SIZE, 3)).astype("float32")
    inputs["availability"] = np.array([[1, 1, 0], [0, 1, 1]], "float32")
    predictions = model(inputs)
    assert set(predictions) == {"decision", "bmode", "semode", "swe"}
    assert predictions["decision"].shape == (2, 2)
    assert model.get_layer("embracenet").num_modalities == 3


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


def test_backbone_layer_names_match_keras_applications():
    reference = keras.applications.VGG16(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    backbone = VGG16Backbone(image_shape=(SIZE, SIZE, 3), fc_units=4096)
    names = {layer.name for layer in backbone.layers}
    assert {layer.name for layer in reference.layers if layer.weights} <= names
    assert {"flatten", "fc1", "fc2"} <= names
    assert backbone.is_standard_vgg16 and not tiny_backbone().is_standard_vgg16
    copied = copy_weights_by_name(reference, backbone)
    assert len(copied) == 13
    np.testing.assert_array_equal(
        backbone.get_layer("block5_conv3").kernel.numpy(), reference.get_layer("block5_conv3").kernel.numpy()
    )


def test_backbone_config_round_trip():
    backbone = tiny_backbone(pooled_size=2, kernel_initializer=keras.initializers.HeNormal(seed=1))
    config = backbone.get_config()
    clone = VGG16Backbone.from_config(config)
    assert clone.get_config() == config
    assert [layer.name for layer in clone.layers] == [layer.name for layer in backbone.layers]


def test_backbone_output_and_adaptive_pooling():
    backbone = tiny_backbone(pooled_size=3)
    assert backbone.get_layer("adaptive_pool").output.shape[1:3] == (3, 3)
    assert backbone(np.zeros((2, SIZE, SIZE, 3), "float32")).shape == (2, 16)
    # 336 / 32 pools to 10 x 10, as in PyTorch; adaptive pooling then gives 7 x 7.
    big = VGG16Backbone([2, 2, 2, 2, 2], [1, 1, 1, 1, 1], fc_units=4, image_shape=(336, 336, 3), pooled_size=7)
    assert big.get_layer("block5_pool").output.shape[1:3] == (10, 10)
    assert big.get_layer("fc1").kernel.shape == (7 * 7 * 2, 4)


INVALID_BACKBONES = [
    (dict(stackwise_num_filters=[4, 4], stackwise_num_repeats=[1]), "same length"),
    (dict(stackwise_num_filters=[4, 0], stackwise_num_repeats=[1, 1]), "positive ints"),
    (dict(image_shape=(16, 16, 3)), "must be >= 2\\*\\*5"),
    (dict(fc_units=0), "fc_units"),
    (dict(fc_dropout=1.0), "fc_dropout"),
    (dict(pooled_size=0), "pooled_size"),
]


@pytest.mark.parametrize("kwargs, message", INVALID_BACKBONES)
def test_invalid_backbone_arguments(kwargs, message):
    arguments = dict(stackwise_num_filters=[4, 4, 8, 8, 8], stackwise_num_repeats=[1, 1, 1, 1, 1],
                     fc_units=16, image_shape=(SIZE, SIZE, 3))
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        VGG16Backbone(**arguments)


INVALID_TASKS = [
    (lambda: MFFClassifier(tiny_backbone(), modalities={"bmode": 1}), "at least 2 modalities"),
    (lambda: MFFClassifier(tiny_backbone(), decision_loss_weight=-1.0), "decision_loss_weight"),
    (lambda: MFFClassifier(tiny_backbone(), embracenet_inference="mean"), "inference"),
    (lambda: VGG16Classifier(tiny_backbone(), modality="doppler"), "modality"),
    (lambda: VGG16Classifier(tiny_backbone(), normalization="imagenet"), "normalization"),
    (lambda: EarlyIntegrationClassifier(tiny_backbone(), num_classes=1), "num_classes"),
    (lambda: LateIntegrationClassifier(*([tiny_backbone()] * 2)), "independent"),
    (lambda: IntermediateIntegrationClassifier(tiny_backbone("a"), tiny_backbone("a")), "different names"),
    (lambda: StackwiseIntegrationClassifier(tiny_backbone(), normalization="none"), "normalization"),
    (lambda: build_classifier("resnet", TINY, "standardize"), "model must be one of"),
]


@pytest.mark.parametrize("make, message", INVALID_TASKS)
def test_invalid_task_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


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


@pytest.mark.parametrize("name, weights", [
    ("mff_early", {"bmode": 1.0, "semode": 1.0, "decision": 0.0}),
    ("mff_late", {"bmode": 1.0, "semode": 1.0, "decision": 0.0}),
    ("mff_stack", {"decision": 1.0}),
    ("vgg16_semode", {"decision": 1.0}),
])
def test_baseline_loss_weights(name, weights):
    assert build_classifier(name, TINY, "standardize").output_loss_weights == weights


def test_compile_refuses_a_loss_and_defaults_to_paper_sgd():
    model = build_classifier("vgg16_bmode", TINY, "standardize")
    with pytest.raises(ValueError, match="loss"):
        model.compile(loss="mse")
    model.compile()
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert np.isclose(float(model.optimizer.momentum), 0.8)
    assert np.isclose(float(model.optimizer.weight_decay), 1e-4)


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


def test_mff_ignores_an_unavailable_semode_image():
    model = build_classifier("mff", TINY, "standardize")
    inputs = batch(3, availability=[[1, 0]] * 3)
    other = dict(inputs, semode=np.zeros_like(inputs["semode"]))
    np.testing.assert_allclose(model(inputs)["decision"], model(other)["decision"], rtol=1e-6)
    with_semode = dict(inputs, availability=np.ones((3, 2), "float32"))
    assert not np.allclose(model(with_semode)["decision"], model(inputs)["decision"])


@pytest.mark.parametrize("name", CLASSIFICATION_MODELS)
def test_config_and_saved_model_round_trip(name, tmp_path):
    model = build_classifier(name, TINY, "caffe" if name == "vgg16_semode" else "standardize")
    model.compile()
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        reloaded = keras.saving.load_model(path)
    assert type(reloaded) is type(model)
    inputs = feed(name, batch(2, seed=4))
    expected = model.predict(inputs, verbose=0)
    actual = reloaded.predict(inputs, verbose=0)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- backbone weights


def _fail_offline():
    raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]")


def test_imagenet_unavailable_falls_back_to_random_and_records_it():
    backbone = VGG16Backbone(image_shape=(SIZE, SIZE, 3))
    before = backbone.get_layer("block1_conv1").kernel.numpy().copy()
    lines = []
    with pytest.warns(UserWarning, match="RANDOM initialisation"):
        record = load_backbone_weights(backbone, "imagenet", loader=_fail_offline, log=lines.append)
    assert record["requested"] == "imagenet" and record["used"] == "random"
    assert "URL fetch failure" in record["reason"]
    assert any("WARNING" in line for line in lines)
    np.testing.assert_array_equal(backbone.get_layer("block1_conv1").kernel.numpy(), before)
    with pytest.raises(RuntimeError, match="unavailable"):
        load_backbone_weights(backbone, "imagenet", allow_fallback=False, loader=_fail_offline)


def test_imagenet_weights_copied_by_name_when_available():
    source = keras.applications.VGG16(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    backbone = VGG16Backbone(image_shape=(SIZE, SIZE, 3))
    record = load_backbone_weights(backbone, "imagenet", loader=lambda: source)
    assert record == {"requested": "imagenet", "used": "imagenet", "reason": None, "layers": 13}
    np.testing.assert_array_equal(backbone.get_layer("block3_conv2").bias.numpy(),
                                  source.get_layer("block3_conv2").bias.numpy())


def test_weights_none_file_and_narrow_imagenet(tmp_path):
    backbone = tiny_backbone()
    assert load_backbone_weights(backbone, "none")["used"] == "random"
    with pytest.raises(ValueError, match="standard VGG-16"):
        load_backbone_weights(backbone, "imagenet", loader=_fail_offline)
    path = str(tmp_path / "tiny.weights.h5")
    backbone.save_weights(path)
    other = tiny_backbone()
    record = load_backbone_weights(other, path)
    assert record["used"] == path
    np.testing.assert_array_equal(other.get_layer("fc2").kernel.numpy(), backbone.get_layer("fc2").kernel.numpy())
    with pytest.raises(ValueError, match="existing file"):
        load_backbone_weights(other, str(tmp_path / "missing.h5"))
