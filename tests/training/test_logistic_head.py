"""The class layer of a single-modal VGG-16 fitted as a logistic regression on frozen features."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from tf_bimodal.config import ClassificationConfig
from tf_bimodal.training.classification import (
    build_classifier_for_training,
    fit_classifier,
    fit_logistic_head,
)

SIZE = 32
CONFIG = ClassificationConfig(
    input_size=SIZE, stackwise_num_filters=(4, 4, 8, 8, 8), stackwise_num_repeats=(1, 1, 1, 1, 1),
    backbone_weights="none", backbone_features="pooled", head_fit="logistic", frozen_blocks=5, augment=False,
    kernel_initializer="he_normal",
)


def images_and_labels(count=40, seed=0):
    """Textured crops, the malignant ones darker on average (a learnable but noisy cue)."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(count) % 2).astype(np.int64)
    images = rng.uniform(0.2, 1.0, size=(count, SIZE, SIZE, 1)) - 0.15 * labels[:, None, None, None]
    return images.astype(np.float32), labels


def dataset(images, labels, batch=8):
    return tf.data.Dataset.from_tensor_slices(({"bmode": images}, labels)).batch(batch)


def test_the_model_gives_the_fitted_regressions_probabilities():
    keras.utils.set_random_seed(0)
    classifier, records, normalization = build_classifier_for_training("vgg16_bmode", CONFIG)
    images, labels = images_and_labels()
    frozen = [w.numpy().copy() for w in classifier.get_layer("backbone").weights]
    result = fit_logistic_head(classifier, dataset(images, labels), label="test")
    assert result["best_epoch"] is None and result["epochs_run"] == 0
    record = result["head_fit"]
    assert record["method"] == "logistic" and record["images"] == 40 and record["features"] == 2 * (8 + 8 + 8)
    assert 1e-4 <= record["C"] <= 1.0 and 0.0 <= record["cv_auc"] <= 1.0
    # The backbone is untouched; the softmax is the regression on standardised features.
    assert len(frozen) == len(classifier.get_layer("backbone").weights) > 0
    for before, after in zip(frozen, classifier.get_layer("backbone").weights):
        np.testing.assert_array_equal(before, after.numpy())
    features_model = keras.Model(classifier.inputs, classifier.get_layer("predictions").input)
    features = np.asarray(features_model({"bmode": images}), np.float64)
    scaler = StandardScaler().fit(features)
    reference = LogisticRegression(C=record["C"], max_iter=3000).fit(scaler.transform(features), labels)
    expected = reference.predict_proba(scaler.transform(features))[:, 1]
    probability = np.asarray(classifier({"bmode": images}, training=False)["decision"])[:, 1]
    np.testing.assert_allclose(probability, expected, atol=2e-3)
    # fit_classifier takes this path for head_fit="logistic".
    again = fit_classifier(classifier, dataset(images, labels), None, CONFIG, fold_dir="unused")
    assert again["head_fit"]["C"] == record["C"]


def test_one_class_and_fusion_models_are_refused():
    classifier, _, _ = build_classifier_for_training("vgg16_bmode", CONFIG)
    images, labels = images_and_labels()
    with pytest.raises(ValueError, match="20 benign and 0 malignant; a logistic head needs at least 2 of each"):
        fit_logistic_head(classifier, dataset(images[labels == 0], labels[labels == 0]))
    with pytest.raises(ValueError, match="head_fit='logistic' fits the class layer of a single-modal VGG-16"):
        build_classifier_for_training("mff", CONFIG)


def test_a_context_crop_doubles_the_features_the_regression_reads():
    config = dataclasses.replace(CONFIG, context_margin=150)
    classifier, _, _ = build_classifier_for_training("vgg16_bmode", config)
    images, labels = images_and_labels()
    context = dataset(images, labels).map(lambda inputs, y: ({**inputs, "bmode_context": inputs["bmode"][:, ::-1]}, y))
    record = fit_logistic_head(classifier, context)["head_fit"]
    assert record["features"] == 2 * 2 * (8 + 8 + 8)
    with pytest.raises(ValueError, match="context_margin .* single-modal VGG-16 .* got model 'mff'"):
        build_classifier_for_training("mff", dataclasses.replace(config, head_fit="sgd"))
