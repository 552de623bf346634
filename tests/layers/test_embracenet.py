"""EmbraceNet (paper §3.3.1; Choi & Lee 2019): statistics, availability, inference, config."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.layers.embracenet import EmbraceNet

from harness import check_config_round_trip, run_layer_test, run_model_saving_test


def _labelled_layer(num_modalities, embracement_size, **kwargs):
    """An EmbraceNet whose docked features are the constant m + 1 for modality m.

    Zero kernels and bias m + 1 (ReLU keeps it), so every embraced value names the modality
    it was taken from.
    """
    layer = EmbraceNet(embracement_size, **kwargs)
    layer.build([(None, 3)] * num_modalities)
    for index, docking in enumerate(layer.dockings):
        docking.kernel.assign(np.zeros(docking.kernel.shape, "float32"))
        docking.bias.assign(np.full(docking.bias.shape, index + 1.0, "float32"))
    return layer


def _inputs(batch, num_modalities):
    return [np.ones((batch, 3), "float32") for _ in range(num_modalities)]


SHARE_CASES = [
    # probabilities per sample, availability per sample, expected shares
    ([[0.5, 0.5]], [[1, 1]], [0.5, 0.5]),
    ([[0.2, 0.8]], [[1, 1]], [0.2, 0.8]),
    ([[0.5, 0.3, 0.2]], [[1, 1, 1]], [0.5, 0.3, 0.2]),
    ([[0.5, 0.3, 0.2]], [[1, 0, 1]], [0.5 / 0.7, 0.0, 0.2 / 0.7]),
    ([[0.9, 0.1]], [[0, 1]], [0.0, 1.0]),
]


DRAW_RULES = [
    # layer arguments, call arguments, independent draws per sample and feature
    (dict(), dict(training=True), 1),  # training: always the reference's draw
    (dict(inference="sample"), dict(training=False), 1),  # the reference at test time
    (dict(inference="mc", mc_samples=4), dict(training=False), 4),  # K seeded draws
]


@pytest.mark.parametrize("layer_kwargs, call_kwargs, draws_per_feature", DRAW_RULES)
@pytest.mark.parametrize("probabilities, availability, expected", SHARE_CASES)
def test_share_of_each_modality_matches_its_probability(
    probabilities, availability, expected, layer_kwargs, call_kwargs, draws_per_feature
):
    """The reference's rule (Choi & Lee's TF1 and PyTorch code): per feature, a multinomial
    over the available modalities with the probabilities renormalised over them."""
    num_modalities = len(expected)
    batch, size = 8, 4000
    layer = _labelled_layer(num_modalities, size, seed=3, **layer_kwargs)
    probabilities = np.repeat(np.asarray(probabilities, "float32"), batch, axis=0)
    availability = np.repeat(np.asarray(availability, "float32"), batch, axis=0)
    embraced = layer(
        _inputs(batch, num_modalities),
        availabilities=availability,
        selection_probabilities=probabilities,
        **call_kwargs,
    ).numpy()
    assert embraced.shape == (draws_per_feature * batch, size)
    chosen = np.rint(embraced).astype(int) - 1
    # The "mc" draws share their noise across the batch, so only K * size are independent.
    draws = chosen.size if draws_per_feature == 1 else draws_per_feature * size
    for modality, share in enumerate(expected):
        observed = np.mean(chosen == modality)
        # 5 binomial standard deviations: a false alarm is practically impossible.
        tolerance = 5 * np.sqrt(max(share * (1 - share), 1e-12) / draws)
        assert abs(observed - share) <= tolerance, (modality, observed, share)
        if share == 0.0:
            assert not np.any(chosen == modality), "an unavailable modality was selected"


def test_uniform_default_and_per_sample_availability():
    layer = _labelled_layer(2, 2000, seed=0)
    availability = np.array([[1, 0], [0, 1], [1, 1]], "float32")
    chosen = np.rint(layer(_inputs(3, 2), availabilities=availability, training=True).numpy()) - 1
    assert np.all(chosen[0] == 0) and np.all(chosen[1] == 1)
    assert abs(np.mean(chosen[2] == 0) - 0.5) < 5 * np.sqrt(0.25 / 2000)


def test_no_available_modality_raises_eagerly():
    layer = _labelled_layer(2, 8)
    availability = np.array([[1, 1], [0, 0]], "float32")
    for training in (True, False):
        with pytest.raises(ValueError, match="at least one available modality"):
            layer(_inputs(2, 2), availabilities=availability, training=training)


def test_zero_probability_on_the_only_available_modality_raises():
    layer = _labelled_layer(2, 8)
    with pytest.raises(ValueError, match="at least one available modality"):
        layer(
            _inputs(1, 2),
            availabilities=np.array([[1, 0]], "float32"),
            selection_probabilities=np.array([[0.0, 1.0]], "float32"),
        )


def test_no_available_modality_fails_the_graph_assertion_not_nan():
    layer = _labelled_layer(2, 8)

    @tf.function
    def embrace(availability):
        return layer(_inputs(2, 2), availabilities=availability, training=True)

    assert np.all(np.isfinite(embrace(tf.constant([[1.0, 0.0], [0.0, 1.0]])).numpy()))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one available modality"):
        embrace(tf.constant([[1.0, 0.0], [0.0, 0.0]]))


def test_expected_inference_is_the_probability_weighted_sum():
    layer = EmbraceNet(6, inference="expected", seed=1)
    rng = np.random.default_rng(0)
    features = [rng.normal(size=(4, 5)).astype("float32"), rng.normal(size=(4, 3)).astype("float32")]
    probabilities = np.array([[0.3, 0.7], [0.5, 0.5], [1.0, 1.0], [0.2, 0.8]], "float32")
    availability = np.array([[1, 1], [1, 0], [0, 1], [1, 1]], "float32")
    output = layer(features, availabilities=availability, selection_probabilities=probabilities).numpy()
    docked = [docking(f).numpy() for docking, f in zip(layer.dockings, features)]
    weights = probabilities * availability
    weights /= weights.sum(axis=1, keepdims=True)
    expected = weights[:, :1] * docked[0] + weights[:, 1:] * docked[1]
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(output, layer(features, availabilities=availability, selection_probabilities=probabilities).numpy())


def test_sample_inference_draws_at_test_time_and_is_seeded():
    features = _inputs(2, 2)
    first = _labelled_layer(2, 256, inference="sample", seed=7)
    second = _labelled_layer(2, 256, inference="sample", seed=7)
    a, b = first(features).numpy(), first(features).numpy()
    assert not np.array_equal(a, b), "inference='sample' should draw anew on every call"
    assert set(np.unique(a).tolist()) <= {1.0, 2.0}
    np.testing.assert_array_equal(a, second(features).numpy())


def test_mc_inference_stacks_k_seeded_draws_per_sample():
    layer = _labelled_layer(2, 64, inference="mc", mc_samples=5, seed=11)
    twin = _labelled_layer(2, 64, inference="mc", mc_samples=5, seed=11)
    other = _labelled_layer(2, 64, inference="mc", mc_samples=5, seed=12)
    availability = np.array([[1, 1], [1, 0], [1, 1]], "float32")
    first = layer(_inputs(3, 2), availabilities=availability).numpy()
    assert first.shape == (5 * 3, 64)
    draws = first.reshape(5, 3, 64)  # sample-major: row k * N + n
    assert np.all(draws[:, 1] == 1.0), "sample 1 has only modality 0"
    assert len({draws[k, 0].tobytes() for k in range(5)}) == 5, "the K draws differ"
    np.testing.assert_array_equal(draws[:, 0], draws[:, 2])  # same probabilities, same draws
    np.testing.assert_array_equal(first, layer(_inputs(3, 2), availabilities=availability).numpy())
    np.testing.assert_array_equal(first, twin(_inputs(3, 2), availabilities=availability).numpy())
    assert not np.array_equal(first, other(_inputs(3, 2), availabilities=availability).numpy())


def test_mc_draws_of_a_sample_do_not_depend_on_its_batch():
    layer = _labelled_layer(2, 32, inference="mc", mc_samples=3, seed=0)
    probabilities = np.array([[0.3, 0.7], [0.9, 0.1], [0.5, 0.5]], "float32")
    alone = layer(_inputs(1, 2), selection_probabilities=probabilities[1:2]).numpy()
    together = layer(_inputs(3, 2), selection_probabilities=probabilities).numpy().reshape(3, 3, 32)
    np.testing.assert_array_equal(alone, together[:, 1])


def test_mc_training_draws_like_the_other_rules():
    layer = _labelled_layer(2, 32, inference="mc", mc_samples=6, seed=0)
    assert layer(_inputs(4, 2), training=True).shape == (4, 32)


SHAPE_CASES = [
    # feature sizes per modality, embracement size
    ([5, 3], 8),
    ([16, 16], 4),
    ([7, 2, 9], 10),
]


@pytest.mark.parametrize("sizes, embracement_size", SHAPE_CASES)
def test_shapes_symbolic_and_eager(sizes, embracement_size):
    inputs = [keras.Input((size,)) for size in sizes]
    availability = keras.Input((len(sizes),))
    layer = EmbraceNet(embracement_size, seed=0)
    symbolic = layer(inputs, availabilities=availability)
    assert tuple(symbolic.shape) == (None, embracement_size)
    eager = layer([np.ones((3, size), "float32") for size in sizes], training=True)
    assert tuple(eager.shape) == (3, embracement_size)
    assert len(layer.dockings) == len(sizes)


INVALID_CASES = [
    (dict(embracement_size=0), "embracement_size"),
    (dict(embracement_size=2.5), "embracement_size"),
    (dict(inference="mean"), "inference"),
    (dict(mc_samples=0), "mc_samples"),
    (dict(mc_samples=True), "mc_samples"),
    (dict(mc_samples=2.0), "mc_samples"),
    (dict(seed="7"), "seed"),
]


@pytest.mark.parametrize("kwargs, message", INVALID_CASES)
def test_invalid_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EmbraceNet(**kwargs)


def test_one_modality_or_bad_rank_raises():
    with pytest.raises(ValueError, match="at least 2"):
        EmbraceNet(4)([np.ones((2, 3), "float32")])
    with pytest.raises(ValueError, match="batch, features"):
        EmbraceNet(4)([np.ones((2, 3, 1), "float32"), np.ones((2, 3, 1), "float32")])


def test_config_round_trip():
    check_config_round_trip(EmbraceNet(12, inference="sample", seed=5, kernel_initializer="he_normal", name="fuse"))
    restored = check_config_round_trip(EmbraceNet(12, inference="mc", mc_samples=7, seed=5, name="fuse"))
    assert (restored.inference, restored.mc_samples, restored.seed) == ("mc", 7, 5)


def test_saved_model_reloads_to_identical_outputs(tmp_path):
    inputs = [keras.Input((5,), name="a"), keras.Input((3,), name="b")]
    availability = keras.Input((2,), name="availability")
    outputs = EmbraceNet(8, seed=2, name="embracenet")(inputs, availabilities=availability)
    model = keras.Model([*inputs, availability], outputs)
    rng = np.random.default_rng(1)
    feed = [rng.normal(size=(4, 5)).astype("float32"), rng.normal(size=(4, 3)).astype("float32"),
            np.array([[1, 1], [1, 0], [0, 1], [1, 1]], "float32")]
    run_model_saving_test(model, feed, tmp_path)


HARNESS_CASES = [
    # init kwargs, feature sizes, call with availability and selection probabilities
    (dict(embracement_size=8, seed=0), [5, 3], False),
    (dict(embracement_size=4, seed=1, docking_activation="tanh", kernel_initializer="he_normal"), [6, 6, 2], True),
]


@pytest.mark.parametrize("kwargs, sizes, with_masks", HARNESS_CASES)
def test_embracenet_harness(kwargs, sizes, with_masks):
    rng = np.random.default_rng(0)
    features = [rng.normal(size=(4, size)).astype("float32") for size in sizes]
    if with_masks:
        availability = np.ones((4, len(sizes)), "float32")
        availability[1, 0] = availability[2, -1] = 0.0
        data = {"inputs": features, "availabilities": availability,
                "selection_probabilities": rng.uniform(0.1, 1.0, size=(4, len(sizes))).astype("float32")}
    else:
        data = features
    run_layer_test(EmbraceNet, kwargs, data, (None, kwargs["embracement_size"]))


def test_embracenet_sample_inference_harness():
    """``inference="sample"`` draws at ``training=False`` too, and Keras does not save the
    state of a ``SeedGenerator``: a reloaded model draws differently, so no saving check."""
    rng = np.random.default_rng(0)
    features = [rng.normal(size=(4, 5)).astype("float32"), rng.normal(size=(4, 3)).astype("float32")]
    run_layer_test(EmbraceNet, dict(embracement_size=8, inference="sample", seed=3), features, (None, 8),
                   run_saving_check=False)


def test_embracenet_mc_inference_harness():
    """``inference="mc"``: K seeded draws per sample at ``training=False``; stateless, so a
    reloaded model gives the same outputs (the saving check)."""
    rng = np.random.default_rng(0)
    features = [rng.normal(size=(4, 5)).astype("float32"), rng.normal(size=(4, 3)).astype("float32")]
    run_layer_test(EmbraceNet, dict(embracement_size=8, inference="mc", mc_samples=3, seed=3), features, (None, 8))
