"""Tiny classifiers and inputs shared by the classification model tests (paper §3.3)."""

from __future__ import annotations

import dataclasses

import numpy as np

from tf_bimodal.config import CLASSIFICATION_PRESETS
from tf_bimodal.models.classification import VGG16Backbone
from tf_bimodal.models.classification.factory import model_input_keys

SIZE = 32
"""Input side: the smallest a five-stage VGG-16 accepts (one pixel after five poolings)."""

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
    """A five-stage VGG-16 of one narrow convolution per stage and 16 features."""
    return VGG16Backbone([4, 4, 8, 8, 8], [1, 1, 1, 1, 1], fc_units=16, image_shape=(SIZE, SIZE, 3),
                         name=name, **kwargs)


def batch(size=4, seed=0, availability=None):
    """Random ``{"bmode", "semode", "availability"}`` inputs (all available by default)."""
    rng = np.random.default_rng(seed)
    return {
        "bmode": rng.uniform(size=(size, SIZE, SIZE, 1)).astype("float32"),
        "semode": rng.uniform(size=(size, SIZE, SIZE, 3)).astype("float32"),
        "availability": np.ones((size, 2), "float32") if availability is None else np.asarray(availability, "float32"),
    }


def feed(model_name, inputs):
    """The inputs ``model_name`` reads."""
    return {key: inputs[key] for key in model_input_keys(model_name)}
