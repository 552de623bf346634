"""tf.distribute strategies and mixed precision for training (the design card; issue: delivery).

``strategy_for(runtime)`` gives the ``tf.distribute.Strategy`` to build and compile models
under; ``precision(runtime)`` is a context that sets the Keras dtype policy while models are
built and trained.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from tf_bimodal.config import RuntimeConfig

_STRATEGIES: dict = {}


def strategy_for(runtime: RuntimeConfig | None) -> tf.distribute.Strategy:
    """The strategy ``runtime.strategy`` names, created once per process and reused."""
    name = (runtime or RuntimeConfig()).strategy
    if name not in _STRATEGIES:
        gpus = tf.config.list_physical_devices("GPU")
        if name == "auto":
            strategy = tf.distribute.MirroredStrategy() if gpus else tf.distribute.get_strategy()
        elif name == "mirrored":
            strategy = tf.distribute.MirroredStrategy()
        elif name == "multi_worker":
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        else:
            strategy = tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
        _STRATEGIES[name] = strategy
    return _STRATEGIES[name]


@contextlib.contextmanager
def precision(runtime: RuntimeConfig | None):
    """Set the Keras dtype policy of ``runtime.precision`` inside the block, restore it after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy((runtime or RuntimeConfig()).precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def describe(runtime: RuntimeConfig | None) -> dict:
    """What a run records about where it trained."""
    runtime = runtime or RuntimeConfig()
    strategy = strategy_for(runtime)
    return {
        "strategy": runtime.strategy,
        "strategy_class": type(strategy).__name__,
        "replicas": int(strategy.num_replicas_in_sync),
        "precision": runtime.precision,
    }
