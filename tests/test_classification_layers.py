"""The classifiers' small layers: adaptive pooling, VGG normalization, soft voting (§3.3)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.layers.adaptive_pooling import AdaptiveAveragePooling2D, adaptive_pooling_matrix
from tf_bimodal.layers.image_normalization import ImageNormalization
from tf_bimodal.layers.soft_voting import SoftVoting


def _torch_adaptive_average(values, output_size):
    """PyTorch's AdaptiveAvgPool2d bins, written out: floor(i n / m) .. ceil((i + 1) n / m)."""
    height, width = values.shape[1:3]
    out = np.zeros((values.shape[0], output_size, output_size, values.shape[3]))
    for i in range(output_size):
        h0, h1 = (i * height) // output_size, -((-(i + 1) * height) // output_size)
        for j in range(output_size):
            w0, w1 = (j * width) // output_size, -((-(j + 1) * width) // output_size)
            out[:, i, j] = values[:, h0:h1, w0:w1].mean(axis=(1, 2))
    return out


POOLING_CASES = [
    # input (H, W), output size
    ((10, 10), 7),  # a 336-pixel VGG-16 input, pooled as torchvision does
    ((7, 7), 7),  # 224 pixels: the identity
    ((2, 3), 7),  # smaller than the grid: inputs repeat
    ((9, 5), 3),
]


@pytest.mark.parametrize("size, output_size", POOLING_CASES)
def test_adaptive_pooling_matches_pytorch_bins(size, output_size):
    values = np.random.default_rng(0).normal(size=(2, *size, 3)).astype("float32")
    pooled = AdaptiveAveragePooling2D(output_size)(values).numpy()
    np.testing.assert_allclose(pooled, _torch_adaptive_average(values, output_size), rtol=1e-5, atol=1e-6)


def test_adaptive_pooling_identity_and_rows_sum_to_one():
    np.testing.assert_array_equal(adaptive_pooling_matrix(7, 7), np.eye(7, dtype="float32"))
    np.testing.assert_allclose(adaptive_pooling_matrix(10, 7).sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(output_size=0), dict(output_size=2.0)])
def test_adaptive_pooling_invalid(kwargs):
    with pytest.raises(ValueError, match="output_size"):
        AdaptiveAveragePooling2D(**kwargs)


def test_caffe_normalization_is_keras_vgg16_preprocess_input():
    images = np.random.default_rng(1).uniform(size=(2, 4, 4, 3)).astype("float32")
    expected = keras.applications.vgg16.preprocess_input(images * 255.0)
    np.testing.assert_allclose(ImageNormalization("caffe")(images).numpy(), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ImageNormalization("standardize")(images).numpy(), images * 2 - 1, rtol=1e-6)


def test_normalization_invalid():
    with pytest.raises(ValueError, match="mode"):
        ImageNormalization("imagenet")
    with pytest.raises(ValueError, match="3"):
        ImageNormalization("caffe")(np.zeros((1, 4, 4, 1), "float32"))


def test_soft_voting_averages_available_voters():
    bmode = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], "float32")
    semode = np.array([[0.5, 0.5], [0.4, 0.6], [0.0, 1.0]], "float32")
    availability = np.array([[1, 1], [1, 0], [0, 1]], "float32")
    voted = SoftVoting()([bmode, semode], availabilities=availability).numpy()
    np.testing.assert_allclose(voted, [[0.7, 0.3], [0.2, 0.8], [0.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(SoftVoting()([bmode, semode]).numpy(), (bmode + semode) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="available voter"):
        SoftVoting()([bmode, semode], availabilities=np.zeros((3, 2), "float32"))

    @tf.function
    def vote(availability):
        return SoftVoting()([bmode, semode], availabilities=availability)

    with pytest.raises(tf.errors.InvalidArgumentError, match="available voter"):
        vote(tf.zeros((3, 2)))


LAYER_CONFIG_CASES = [
    (AdaptiveAveragePooling2D, dict(output_size=5)),
    (ImageNormalization, dict(mode="caffe")),
    (SoftVoting, dict()),
]


@pytest.mark.parametrize("cls, kwargs", LAYER_CONFIG_CASES)
def test_layer_config_round_trip(cls, kwargs):
    layer = cls(name="probe", **kwargs)
    clone = cls.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is cls and restored.get_config() == layer.get_config()
