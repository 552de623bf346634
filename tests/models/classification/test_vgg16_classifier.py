"""The single-modal VGG-16 classifier, Table 2 "VGG-16 (single)" (paper §3.3.2, §4.2.1)."""

from __future__ import annotations

import pytest

from tf_bimodal.models.classification import VGG16Classifier

from classification_helpers import batch, tiny_backbone
from harness import run_model_saving_test, run_model_test


@pytest.mark.parametrize(
    "kwargs, expected_shape",
    [(dict(modality="semode", normalization="caffe", num_classes=3), (None, 3))],
)
def test_vgg16_classifier_harness(kwargs, expected_shape, tmp_path):
    """Shapes and saving; the dtypes under mixed policies are checked on ``vgg16_bmode`` and
    ``vgg16_semode`` by the factory test."""
    inputs = {kwargs["modality"]: batch(2)[kwargs["modality"]]}
    model = run_model_test(
        lambda: VGG16Classifier(tiny_backbone(), **kwargs), inputs, expected_shape, mixed_precision_policies=()
    )
    assert set(model.output) == {"decision"} and model.get_layer("predictions") is not None
    run_model_saving_test(model, inputs, tmp_path)


def test_context_input_shares_the_backbone_and_doubles_the_features(tmp_path):
    """``context=True``: a wider crop of the same lesion through the same backbone, its features
    concatenated with the crop's before the class layer (``ClassificationConfig.context_margin``)."""
    images = batch(2)["bmode"]
    inputs = {"bmode": images, "bmode_context": images[:, ::-1]}
    model = run_model_test(
        lambda: VGG16Classifier(tiny_backbone(), context=True), inputs, (None, 2), mixed_precision_policies=()
    )
    plain = VGG16Classifier(tiny_backbone())
    assert set(model.input) == {"bmode", "bmode_context"}
    assert model.get_layer("predictions").kernel.shape[0] == 2 * plain.get_layer("predictions").kernel.shape[0]
    assert len(model.trainable_weights) == len(plain.trainable_weights)  # one backbone, a wider class layer
    assert model.get_config()["context"] is True
    run_model_saving_test(model, inputs, tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(modality="doppler"), "modality"), (dict(normalization="imagenet"), "normalization")],
)
def test_invalid_vgg16_classifier_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VGG16Classifier(tiny_backbone(), **kwargs)
