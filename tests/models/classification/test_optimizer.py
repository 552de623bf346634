"""The classifiers' SGD with L2 weight decay through the gradient (paper §3.4).

The reference is PyTorch's ``torch.optim.SGD(lr, momentum, weight_decay)`` (dampening 0, no
Nesterov), computed by hand::

    g = grad + weight_decay * w;  v = momentum * v + g;  w = w - lr * v
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.config import CLASSIFICATION_PRESETS, ClassificationConfig
from tf_bimodal.models.classification.optimizer import SGDWithL2, classification_optimizer
from tf_bimodal.training.classification import compile_classifier

LEARNING_RATE, MOMENTUM, DECAY = 0.1, 0.8, 0.05  # a large decay, so that a wrong form shows
STEPS = 3


def _tiny_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(2, bias_initializer="ones", name="dense")(inputs)
    return keras.Model(inputs, outputs)


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=(4, 2)).astype("float32")


def _gradients(weights, x, y):
    """The gradient of the mean squared error at ``weights`` (kernel, bias), as NumPy."""
    variables = [tf.Variable(w) for w in weights]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(x @ variables[0] + variables[1] - y))
    return [g.numpy() for g in tape.gradient(loss, variables)]


def _hand_computed(weights, x, y, coupled: bool):
    """``STEPS`` updates by hand: PyTorch's L2 SGD (``coupled``) or Keras' decoupled one."""
    weights = [w.astype("float64") for w in weights]
    velocity = [np.zeros_like(w) for w in weights]
    for _ in range(STEPS):
        grads = _gradients([w.astype("float32") for w in weights], x, y)
        for i, (w, g) in enumerate(zip(weights, grads)):
            if coupled:
                velocity[i] = MOMENTUM * velocity[i] + g + DECAY * w
                weights[i] = w - LEARNING_RATE * velocity[i]
            else:
                w = w - LEARNING_RATE * DECAY * w  # Keras: decay first, outside the momentum
                velocity[i] = MOMENTUM * velocity[i] + g
                weights[i] = w - LEARNING_RATE * velocity[i]
    return weights


def _trained(optimizer):
    model = _tiny_model()
    start = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=optimizer, loss="mse")
    x, y = _data()
    for _ in range(STEPS):
        model.train_on_batch(x, y)
    return start, model.get_weights()


def test_l2_steps_equal_pytorch_sgd_with_weight_decay():
    start, trained = _trained(SGDWithL2(LEARNING_RATE, momentum=MOMENTUM, l2_weight_decay=DECAY))
    x, y = _data()
    expected = _hand_computed(start, x, y, coupled=True)
    assert len(trained) == len(expected) == 2
    for name, got, want in zip(("kernel", "bias"), trained, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
    # The decoupled form lands elsewhere: the test tells the two apart (the bias decays too).
    decoupled = _hand_computed(start, x, y, coupled=False)
    assert len(decoupled) == 2
    for got, other in zip(trained, decoupled):
        assert np.max(np.abs(got - other)) > 1e-3


def test_decoupled_mode_is_keras_weight_decay():
    config = dataclasses.replace(ClassificationConfig(), learning_rate=LEARNING_RATE, momentum=MOMENTUM,
                                 weight_decay=DECAY, weight_decay_mode="decoupled")
    optimizer = classification_optimizer(config)
    assert type(optimizer) is keras.optimizers.SGD and np.isclose(float(optimizer.weight_decay), DECAY)
    start, trained = _trained(optimizer)
    x, y = _data()
    expected = _hand_computed(start, x, y, coupled=False)
    assert len(trained) == len(expected) == 2
    for got, want in zip(trained, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_presets_use_l2_and_compile_classifier_applies_it():
    for name in ("paper", "cpu"):
        assert CLASSIFICATION_PRESETS[name].weight_decay_mode == "l2", name
    config = CLASSIFICATION_PRESETS["paper"]
    optimizer = classification_optimizer(config)
    assert isinstance(optimizer, SGDWithL2)
    assert optimizer.l2_weight_decay == pytest.approx(1e-4) and optimizer.weight_decay is None
    assert float(optimizer.momentum) == pytest.approx(0.8)
    model = compile_classifier(_tiny_model(), config)
    assert isinstance(model.optimizer, SGDWithL2)


def test_optimizer_config_round_trip():
    optimizer = SGDWithL2(0.01, momentum=0.8, l2_weight_decay=1e-4)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is SGDWithL2
    assert restored.l2_weight_decay == pytest.approx(1e-4) and float(restored.momentum) == pytest.approx(0.8)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="l2_weight_decay"):
        SGDWithL2(0.01, weight_decay=1e-4)
    with pytest.raises(ValueError, match="l2_weight_decay must be >= 0"):
        SGDWithL2(0.01, l2_weight_decay=-1.0)
    with pytest.raises(ValueError, match="weight_decay_mode must be one of"):
        ClassificationConfig(weight_decay_mode="adamw")
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        ClassificationConfig(weight_decay=-1e-4)


def test_a_classifier_saved_with_it_reloads_with_it(tmp_path):
    from tf_bimodal.models.classification import build_classifier

    config = dataclasses.replace(CLASSIFICATION_PRESETS["quick"], fc_units=8, decision_units=(4, 4))
    model = compile_classifier(build_classifier("vgg16_bmode", config, "standardize"), config)
    rng = np.random.default_rng(0)
    model.fit({"bmode": rng.uniform(size=(2, 32, 32, 1)).astype("float32")}, np.array([0, 1]), epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded.optimizer, SGDWithL2)
    assert reloaded.optimizer.l2_weight_decay == pytest.approx(config.weight_decay)
    assert len(model.optimizer.variables) == len(reloaded.optimizer.variables) > 0
    for saved, loaded in zip(model.optimizer.variables, reloaded.optimizer.variables):
        np.testing.assert_allclose(np.asarray(saved), np.asarray(loaded))
