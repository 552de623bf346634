"""The base of every model of the package: a functional ``keras.Model`` whose config is its arguments.

As keras-hub's backbones and tasks, each model builds its functional graph in ``__init__``,
stores every constructor argument it was given (after validation) and returns exactly those
from ``get_config``; ``from_config`` calls the constructor again. The storing, the config and
its reading back are written once here, so a model states only its own arguments.
"""

from __future__ import annotations

import keras


def config_value(value):
    """A stored argument as a config holds it: lists for sequences, a plain dict for a mapping.

    Keras tracks a model's list and dict attributes in its own containers; the config holds
    plain Python values.
    """
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


class ConfiguredModel(keras.Model):
    """A functional model whose ``get_config`` is the arguments it recorded, in order.

    A subclass builds its graph, calls ``super().__init__(inputs=..., outputs=..., **kwargs)``
    and then :meth:`_record_config` with its constructor arguments (validated and normalised:
    the values its ``get_config`` returns and its attributes hold). The arguments named in
    :attr:`sub_model_arguments` are Keras models (backbones): serialised in the config and
    deserialised by :meth:`from_config`.
    """

    sub_model_arguments: tuple[str, ...] = ()
    """Constructor arguments that are Keras layers or models, serialised as such."""

    def _record_config(self, **arguments):
        """Keep each argument as an attribute of the same name, and its name for the config."""
        self._config_arguments = tuple(arguments)
        for name, value in arguments.items():
            setattr(self, name, value)

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        for name in self._config_arguments:
            value = getattr(self, name)
            config[name] = keras.layers.serialize(value) if name in self.sub_model_arguments else config_value(value)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in cls.sub_model_arguments:
            if isinstance(config.get(name), dict):
                config[name] = keras.layers.deserialize(config[name])
        return cls(**config)
