"""Pixel normalization in front of a VGG-16 (paper §3.3.2)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_bimodal.layers.image_normalization import ImageNormalization

from harness import check_config_round_trip, run_layer_test


def test_caffe_normalization_is_keras_vgg16_preprocess_input():
    images = np.random.default_rng(1).uniform(size=(2, 4, 4, 3)).astype("float32")
    expected = keras.applications.vgg16.preprocess_input(images * 255.0)
    np.testing.assert_allclose(ImageNormalization("caffe")(images).numpy(), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ImageNormalization("standardize")(images).numpy(), images * 2 - 1, rtol=1e-6)


HARNESS_CASES = [
    # init kwargs, input shape, expected output shape
    (dict(mode="caffe"), (2, 16, 16, 3), (None, 16, 16, 3)),
    (dict(mode="standardize"), (2, 16, 16, 1), (None, 16, 16, 1)),
]


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", HARNESS_CASES)
def test_image_normalization_harness(kwargs, input_shape, expected_shape):
    images = np.random.default_rng(0).uniform(size=input_shape).astype("float32")
    run_layer_test(ImageNormalization, kwargs, images, expected_shape)


def test_normalization_invalid():
    with pytest.raises(ValueError, match="mode"):
        ImageNormalization("imagenet")
    with pytest.raises(ValueError, match="3"):
        ImageNormalization("caffe")(np.zeros((1, 4, 4, 1), "float32"))


def test_layer_config_round_trip():
    check_config_round_trip(ImageNormalization(name="probe", mode="caffe"))
