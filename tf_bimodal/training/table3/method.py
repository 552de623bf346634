"""The protocol every Table 3 method follows (§4.2.2), and the single-network methods.

A method is built from ``Table3Config`` and a seed, fitted on one fold's training and
validation images, predicts ``p(malignant)`` per image, and saves itself to a folder it can be
loaded from (:meth:`Table3Method.load`). Images are ``{"bmode": (N, S, S, 1), "semode":
(N, S, S, 3), "label": (N,)}`` in [0, 1]; a method reads only its modalities.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from tf_bimodal.config.table3 import Table3Config
from tf_bimodal.models.classification.table3 import fujioka, yap, zhang
from tf_bimodal.training.table3.fitting import fit_network, predict_decision
from tf_bimodal.training.table3.weights import resolve_weights


class Table3Method:
    """Base of the six methods: their name, modalities, settings, seed and input size.

    Args:
        name: a ``TABLE3_METHODS`` name.
        modalities: what it reads, ``("bmode",)``, ``("semode",)`` or both.
        config: the Table 3 settings.
        seed: the seed of its initialisation and sampling (a fold passes its own).
        image_size: the side of its square inputs
            (:func:`~tf_bimodal.training.table3.registry.method_input_size`).
    """

    def __init__(self, name: str, modalities: tuple, config: Table3Config, seed: int, image_size: int):
        self.name = name
        self.modalities = tuple(modalities)
        self.config = config
        self.seed = int(seed)
        self.image_size = int(image_size)

    def fit(self, train: dict, val: dict, folder: str, label: str = "") -> dict:
        """Train on ``train``, select on ``val``; returns the JSON-able record ``{"epochs_run",
        "best_epoch", "backbone_weights": {"requested", "used", "reason"}, "details"}``.

        Raises:
            Table3WeightsError: ImageNet weights required and missing.
        """
        raise NotImplementedError

    def predict(self, images: dict) -> np.ndarray:
        """``p(malignant)`` of every image, float ``(N,)``."""
        raise NotImplementedError

    def save(self, folder: str) -> None:
        """Write the trained method into ``folder`` (``.keras`` files, SVMs with joblib)."""
        raise NotImplementedError

    def load(self, folder: str) -> Table3Method:
        """Read back what :meth:`save` wrote; returns ``self``."""
        raise NotImplementedError

    def prepare(self, folder: str):
        """Resolve the weights (or raise), seed every generator, create ``folder``; returns
        ``({backbone: ImageNet path or None}, weights record)``."""
        paths, record = resolve_weights(self.name, self.config)
        keras.utils.set_random_seed(self.seed)
        os.makedirs(folder, exist_ok=True)
        return paths, record

    @staticmethod
    def record(fitted: dict, weights: dict, details: dict) -> dict:
        """The fit record of the contract from ``{"epochs_run", "best_epoch"}``."""
        return {"epochs_run": int(fitted["epochs_run"]), "best_epoch": fitted.get("best_epoch"),
                "backbone_weights": dict(weights), "details": details}

    def model_path(self, folder: str, part: str | None = None) -> str:
        """``<folder>/<name>[_<part>].keras``."""
        return os.path.join(folder, f"{self.name}{'_' + part if part else ''}.keras")


SINGLE_NETWORK_BUILDERS = {
    "yap": (yap.build_yap, yap.BACKBONE),
    "fujioka": (fujioka.build_fujioka, fujioka.BACKBONE),
    "zhang": (zhang.build_zhang, zhang.BACKBONE),
}
"""The methods that are one network with a softmax head: its builder and backbone."""


class SingleNetworkMethod(Table3Method):
    """Yap (AlexNet, B-mode), Fujioka (DenseNet-169, SE-mode), Zhang (InceptionV3, B-mode): one
    network fine-tuned with SGD and momentum, selected on the validation loss
    (:func:`~tf_bimodal.training.table3.fitting.fit_network`)."""

    def __init__(self, name: str, modalities: tuple, config: Table3Config, seed: int, image_size: int):
        super().__init__(name, modalities, config, seed, image_size)
        self.network = None

    def fit(self, train: dict, val: dict, folder: str, label: str = "") -> dict:
        paths, weights = self.prepare(folder)
        builder, backbone = SINGLE_NETWORK_BUILDERS[self.name]
        self.network = builder(self.image_size, self.config.width, paths[backbone], name=self.name)
        fitted = fit_network(self.network, train, val, self.config, folder, label or self.name)
        return self.record(fitted, weights, {"backbone": backbone, "parameters": int(self.network.count_params())})

    def predict(self, images: dict) -> np.ndarray:
        return predict_decision(self.network, images, self.config.batch_size)

    def save(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        self.network.save(self.model_path(folder))

    def load(self, folder: str) -> SingleNetworkMethod:
        self.network = keras.saving.load_model(self.model_path(folder))
        return self
