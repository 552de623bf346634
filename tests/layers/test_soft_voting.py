"""Soft voting over the class probabilities of several classifiers (paper §3.3.3)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.layers.soft_voting import SoftVoting

from harness import check_config_round_trip, run_layer_test


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


def _probabilities(batch, classes, seed):
    logits = np.random.default_rng(seed).normal(size=(batch, classes))
    return (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype("float32")


HARNESS_CASES = [
    # init kwargs, voters, classes, with availabilities, expected mixed-precision dtype
    (dict(), 3, 4, False, None),
    (dict(), 3, 4, True, None),
    # As the classifiers build it: float32 under any policy.
    (dict(dtype="float32"), 2, 2, True, "float32"),
]


@pytest.mark.parametrize("kwargs, voters, classes, with_availability, mixed_dtype", HARNESS_CASES)
def test_soft_voting_harness(kwargs, voters, classes, with_availability, mixed_dtype):
    probabilities = [_probabilities(4, classes, seed) for seed in range(voters)]
    data = probabilities
    if with_availability:
        availability = np.ones((4, voters), "float32")
        availability[0, 0] = availability[3, -1] = 0.0
        data = {"inputs": probabilities, "availabilities": availability}
    run_layer_test(SoftVoting, kwargs, data, (None, classes), expected_output_dtype=mixed_dtype)


def test_layer_config_round_trip():
    check_config_round_trip(SoftVoting(name="probe"))
