"""What every Table 3 network's training shares (§4.2.2): feeds, SGD, the Keras fit with early
stopping on the validation loss and the best epoch restored, predictions.

The originals train with SGD and momentum; each network here runs at most
``Table3Config.epochs`` epochs and stops when its validation loss has not improved for
``early_stopping_patience`` epochs, keeping the weights of its best epoch. The fit is
resumable (the callbacks of :func:`~tf_bimodal.training.callbacks.resumable_callbacks`, its
history in ``<folder>/history.csv``).
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from tf_bimodal.config.table3 import Table3Config
from tf_bimodal.training.callbacks import ProgressLogger, resumable_callbacks

logger = logging.getLogger(__name__)

MONITOR = "val_loss"


def feed(model: keras.Model, images: dict) -> dict:
    """The arrays of ``images`` that ``model`` reads (its dict inputs).

    Raises:
        KeyError: a modality the model needs that ``images`` lacks (named).
    """
    missing = [name for name in model.input if name not in images]
    if missing:
        raise KeyError(f"{model.name}: the images lack {missing}; it reads {sorted(model.input)}")
    return {name: np.asarray(images[name], np.float32) for name in model.input}


def labels_of(images: dict) -> np.ndarray:
    """The ``label`` column as int32 (0 benign, 1 malignant)."""
    return np.asarray(images["label"]).astype(np.int32).reshape(-1)


def sgd(learning_rate: float, momentum: float) -> keras.optimizers.Optimizer:
    """SGD with momentum, the optimizer of every original that states one."""
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)


def fit_network(model: keras.Model, train: dict, val: dict, config: Table3Config, folder: str, label: str = "",
                learning_rate: float | None = None, momentum: float | None = None) -> dict:
    """Compile ``model`` (a classifier whose loss is its own, output ``decision``) with SGD and
    fit it, keeping the epoch of lowest validation loss.

    Args:
        model: the network; trained in place.
        train, val: ``{modality: images, "label": labels}``.
        config: ``epochs``, ``batch_size``, ``early_stopping_patience`` and, unless given,
            ``learning_rate`` and ``momentum``.
        folder: where the history and the resumable state go.
        label: what the progress lines call the network.

    Returns:
        ``{"epochs_run", "best_epoch"}`` (epochs from 1).
    """
    model.compile(optimizer=sgd(config.learning_rate if learning_rate is None else learning_rate,
                                config.momentum if momentum is None else momentum))
    callbacks, early_stopping = resumable_callbacks(folder, monitor=MONITOR,
                                                    patience=config.early_stopping_patience)
    progress = ProgressLogger(label or model.name, config.epochs, log=logger.info)
    model.fit(feed(model, train), labels_of(train), validation_data=(feed(model, val), labels_of(val)),
              batch_size=config.batch_size, epochs=config.epochs, shuffle=True,
              callbacks=[*callbacks, progress], verbose=0)
    return {"epochs_run": int(early_stopping.last_epoch) + 1, "best_epoch": int(early_stopping.best_epoch) + 1}


def predict_decision(model: keras.Model, images: dict, batch_size: int = 64) -> np.ndarray:
    """``p(malignant)`` of every image: column 1 of the model's ``decision`` output."""
    outputs = model.predict(feed(model, images), batch_size=batch_size, verbose=0)
    return np.asarray(outputs["decision"], np.float64)[:, 1]
