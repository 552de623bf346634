"""Gradient accumulation: k micro-batches step like one batch of k times the size (§3.4)."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.config import ClassificationConfig
from tf_bimodal.models.accumulation import AccumulatingAdam, AccumulatingSGD
from tf_bimodal.models.classification.optimizer import AccumulatingSGDWithL2, classification_optimizer

IMAGES = 16


def _data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(IMAGES, 5)).astype("float32")
    return x, (x.sum(1, keepdims=True) > 0).astype("float32")


def _train(make_optimizer, batch, steps, strategy=None, epochs=1):
    """Weights after ``epochs`` over the data in batches of ``batch`` (no batch norm)."""
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
        model.compile(optimizer=make_optimizer(steps), loss="mse")
    x, y = _data()
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(batch), epochs=epochs, verbose=0, shuffle=False)
    return model.get_weights(), int(np.asarray(model.optimizer.iterations))


OPTIMIZERS = {
    "adam": lambda steps: AccumulatingAdam(0.05, accumulation_steps=steps),
    "sgd_decoupled": lambda steps: AccumulatingSGD(0.05, momentum=0.8, weight_decay=0.01, accumulation_steps=steps),
    "sgd_l2": lambda steps: AccumulatingSGDWithL2(0.05, momentum=0.8, l2_weight_decay=0.01, accumulation_steps=steps),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_k_micro_batches_step_as_one_batch_of_k_times_the_size(name):
    make = OPTIMIZERS[name]
    whole, whole_steps = _train(make, batch=8, steps=1, epochs=2)  # 4 optimizer steps
    micro, micro_steps = _train(make, batch=2, steps=4, epochs=2)  # 16 micro-batches, 4 steps
    assert whole_steps == micro_steps == 4
    assert len(whole) == len(micro) == 4
    for a, b in zip(whole, micro, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-6)
    # and not the same as stepping on every micro-batch
    every, _ = _train(make, batch=2, steps=1, epochs=2)
    assert max(np.abs(a - b).max() for a, b in zip(whole, every, strict=True)) > 1e-3


MIRRORED_SCRIPT = """
import sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[1])
import test_accumulation as t
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
whole, _ = t._train(t.OPTIMIZERS["adam"], batch=8, steps=1)
mirrored, steps = t._train(t.OPTIMIZERS["adam"], batch=4, steps=2, strategy=strategy)  # 2 replicas x 2 x 2 passes
assert steps == 2 and strategy.num_replicas_in_sync == 2, steps
print(max(float(np.abs(a - b).max()) for a, b in zip(whole, mirrored, strict=True)))
"""


def test_accumulation_under_mirrored_strategy():
    """Keras' own gradient_accumulation_steps fails under MirroredStrategy; ours steps as one batch."""
    done = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, os.path.dirname(__file__)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.strip().splitlines()[-1]) < 2e-6


def test_classification_optimizer_accumulates_and_round_trips():
    config = ClassificationConfig()
    optimizer = classification_optimizer(config, accumulation_steps=4)
    assert isinstance(optimizer, AccumulatingSGDWithL2) and optimizer.accumulation_steps == 4
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is AccumulatingSGDWithL2 and restored.accumulation_steps == 4
    assert restored.l2_weight_decay == optimizer.l2_weight_decay
    assert type(classification_optimizer(config)).__name__ == "SGDWithL2"


def test_bad_accumulation_arguments():
    with pytest.raises(ValueError, match="accumulation_steps must be >= 1"):
        AccumulatingAdam(accumulation_steps=0)
    with pytest.raises(ValueError, match="not gradient_accumulation_steps"):
        AccumulatingAdam(gradient_accumulation_steps=2)
