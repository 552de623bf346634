"""Table 3's networks and ensembles (§4.2.2): the classifier with its channel adapter, Wang's
model, the feature-concatenation and probability-averaging ensembles; the parts the methods
share."""

from __future__ import annotations

import numpy as np
import pytest

from tf_bimodal.models.classification.table3 import (
    AlexNetBackbone,
    FeatureConcatenationEnsemble,
    ProbabilityAveragingEnsemble,
    ResNet18Backbone,
    Table3Classifier,
    build_backbone,
    features_model,
)
from tf_bimodal.models.classification.table3.kumar import build_kumar
from tf_bimodal.models.classification.table3.misra2021 import (
    build_misra2021_ensemble,
    build_misra2021_networks,
    freeze_pretrained_layers,
)
from tf_bimodal.models.classification.table3.wang import build_wang
from tf_bimodal.models.classification.table3.yap import build_yap

from harness import run_model_saving_test

SIZE, WIDTH = 32, 0.0625


def inputs(count=3):
    rng = np.random.default_rng(1)
    return {"bmode": rng.uniform(size=(count, SIZE, SIZE, 1)).astype("float32"),
            "semode": rng.uniform(size=(count, SIZE, SIZE, 3)).astype("float32")}


def test_single_modality_classifier_repeats_grey_and_round_trips(tmp_path):
    model = Table3Classifier(build_backbone("alexnet", SIZE, WIDTH), ("bmode",), name="net")
    assert "bmode_to_rgb" in {layer.name for layer in model.layers}
    probabilities = model({"bmode": inputs()["bmode"]})["decision"]
    np.testing.assert_allclose(np.sum(probabilities, axis=1), 1.0, rtol=1e-5)
    run_model_saving_test(model, {"bmode": inputs()["bmode"]}, tmp_path)


def test_channel_adapter_projects_four_channels_to_three(tmp_path):
    model = Table3Classifier(build_backbone("resnet18", SIZE, WIDTH), ("bmode", "semode"), name="net")
    adapter = model.get_layer("channel_adapter")
    assert adapter.kernel.shape == (1, 1, 4, 3) and adapter.trainable
    run_model_saving_test(model, inputs(), tmp_path)


def test_wang_model_keeps_its_loss_logits_through_saving(tmp_path):
    model = build_wang(SIZE, WIDTH)
    model.set_loss_logits([0.4, -0.2, 0.0])
    weights = np.asarray(model.loss_weights())
    np.testing.assert_allclose(weights, np.exp([0.4, -0.2, 0.0]) / np.exp([0.4, -0.2, 0.0]).sum(), rtol=1e-6)
    assert set(model(inputs())) == {"decision", "bmode", "semode"}
    reloaded = run_model_saving_test(model, inputs(), tmp_path)
    np.testing.assert_allclose(np.asarray(reloaded.loss_logits_variable), [0.4, -0.2, 0.0], rtol=1e-6)


def test_wang_loss_is_the_softmax_weighted_sum_of_the_heads():
    model = build_wang(SIZE, WIDTH)
    model.set_loss_logits([2.0, 0.0, -1.0])
    labels = np.array([0, 1, 1])
    predictions = model(inputs())
    terms = model.loss_terms(inputs(), labels, predictions)
    weights = np.exp([2.0, 0.0, -1.0]) / np.exp([2.0, 0.0, -1.0]).sum()
    expected = sum(w * float(terms[name]) for w, name in zip(weights, ("bmode", "semode", "decision")))
    assert float(terms["total"]) == pytest.approx(expected, rel=1e-5)


def test_feature_concatenation_ensemble_freezes_and_round_trips(tmp_path):
    networks = build_misra2021_networks(SIZE, WIDTH)
    ensemble = build_misra2021_ensemble(networks)
    concatenated = ensemble.get_layer("concatenated_features").output.shape[-1]
    assert concatenated == 32 + 256  # (512 + 4096) x 0.0625
    assert [v.path for v in ensemble.trainable_variables] == ["predictions/kernel", "predictions/bias"]
    run_model_saving_test(ensemble, inputs(), tmp_path)
    with pytest.raises(ValueError, match="at least 2 networks"):
        FeatureConcatenationEnsemble([networks["alexnet"]])


def test_misra2021_freezes_resnet_to_layer2_and_alexnet_conv1_to_4():
    networks = build_misra2021_networks(SIZE, WIDTH)
    resnet = freeze_pretrained_layers(networks["resnet18"], "resnet18")
    alexnet = freeze_pretrained_layers(networks["alexnet"], "alexnet")
    assert {"conv1", "bn1", "layer1_0_conv1", "layer2_1_bn2", "layer2_0_downsample_conv"} <= set(resnet)
    assert not [name for name in resnet if name.startswith(("layer3", "layer4"))]
    assert alexnet == ["conv1", "conv2", "conv3", "conv4"]


class MeanFeature:
    """A stand-in SVM: p(malignant) = the feature mean squashed."""

    def predict_proba(self, features):
        p = 1.0 / (1.0 + np.exp(-features.mean(axis=1)))
        return np.stack([1.0 - p, p], axis=1)


def test_probability_averaging_is_the_mean_of_the_members():
    networks = build_kumar(SIZE, WIDTH)
    members = [(features_model(network), MeanFeature()) for network in networks.values()]
    ensemble = ProbabilityAveragingEnsemble(members)
    images = inputs()
    each = ensemble.member_probabilities(images)
    np.testing.assert_allclose(ensemble.predict_proba(images), (each[0] + each[1]) / 2)
    assert not np.allclose(each[0], each[1])
    with pytest.raises(ValueError, match="predict_proba"):
        ProbabilityAveragingEnsemble([(members[0][0], object())])


def test_the_methods_share_their_backbone_builders():
    yap = build_yap(SIZE, WIDTH).get_layer("alexnet_backbone")
    kumar = build_kumar(SIZE, WIDTH)["alexnet"].get_layer("alexnet_backbone")
    misra = build_misra2021_networks(SIZE, WIDTH)["alexnet"].get_layer("alexnet_backbone")
    assert type(yap) is type(kumar) is type(misra) is AlexNetBackbone
    assert yap.get_config() == kumar.get_config() == misra.get_config()
    wang = build_wang(SIZE, WIDTH).get_layer("resnet18_backbone")
    resnet = build_misra2021_networks(SIZE, WIDTH)["resnet18"].get_layer("resnet18_backbone")
    assert type(wang) is type(resnet) is ResNet18Backbone
