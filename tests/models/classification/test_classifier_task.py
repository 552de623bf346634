"""What every classifier shares: heads, preprocessing, compile defaults (paper §3.3, §3.4)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_bimodal.models.classification import build_classifier
from tf_bimodal.models.classification.classifier_task import (
    apply_decision_network,
    apply_modality_preprocessing,
    apply_softmax_head,
    check_common_arguments,
)
from tf_bimodal.models.classification.optimizer import SGDWithL2

from classification_helpers import TINY
from harness import run_model_test

RNG = np.random.default_rng(0)


def test_compile_refuses_a_loss_and_defaults_to_paper_sgd():
    model = build_classifier("vgg16_bmode", TINY, "standardize")
    with pytest.raises(ValueError, match="loss"):
        model.compile(loss="mse")
    model.compile()
    assert isinstance(model.optimizer, SGDWithL2)  # weight decay as L2 through the gradient (§3.4)
    assert np.isclose(float(model.optimizer.momentum), 0.8)
    assert np.isclose(model.optimizer.l2_weight_decay, 1e-4) and model.optimizer.weight_decay is None


@pytest.mark.parametrize("hidden_units, num_classes", [((8, 4), 2), ((4,), 3)])
def test_heads_harness(hidden_units, num_classes):
    """The decision network (§3.3.1) and the softmax head: float32 probabilities under any
    policy (their docstrings), their hidden layers in the compute dtype."""

    def build():
        features = keras.Input((16,), name="features")
        return keras.Model(features, [
            apply_decision_network(features, hidden_units, num_classes, 0.5, name="decision"),
            apply_softmax_head(features, num_classes, name="predictions"),
        ])

    model = run_model_test(build, RNG.random((3, 16), dtype=np.float32), (None, num_classes),
                           expected_output_dtype="float32")
    expected = [name for index in range(1, len(hidden_units) + 1) for name in (f"decision_fc{index}",
                                                                                f"decision_fc{index}_dropout")]
    assert [layer.name for layer in model.layers if layer.name.startswith("decision_fc")] == expected


@pytest.mark.parametrize("channels, normalization", [(1, "standardize"), (1, "caffe"), (3, "caffe")])
def test_modality_preprocessing_harness(channels, normalization):
    """Grey repeated to RGB (§3.3.2), then normalised, in the compute dtype."""

    def build():
        image = keras.Input((16, 16, channels), name="image")
        return keras.Model(image, apply_modality_preprocessing(image, channels, normalization, name="bmode"))

    model = run_model_test(build, RNG.random((2, 16, 16, channels), dtype=np.float32), (None, 16, 16, 3))
    assert ("bmode_to_rgb" in {layer.name for layer in model.layers}) == (channels == 1)


def test_modality_preprocessing_rejects_other_channel_counts():
    with pytest.raises(ValueError, match="1 or 3 channels, got 2"):
        apply_modality_preprocessing(keras.Input((16, 16, 2)), 2, "standardize", name="swe")


@pytest.mark.parametrize(
    "num_classes, normalization, message",
    [(1, "caffe", "num_classes"), (2.0, "caffe", "num_classes"), (2, "imagenet", "normalization")],
)
def test_check_common_arguments(num_classes, normalization, message):
    with pytest.raises(ValueError, match=f"Owner: {message}"):
        check_common_arguments("Owner", num_classes, normalization)
