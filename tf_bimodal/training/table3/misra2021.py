"""Misra et al. 2021's training (Table 3's last row, §4.2.2), in either reading.

``ensemble`` (default, ``Table3Config.misra2021_reading``), as the paper describes it (where
the authors' code ``sampamisra/BUS_Classification`` departs from the paper, the paper is
followed: the code defines augmentation that it never applies, builds AlexNet without
pre-trained weights in stage 1 but with them in stage 2, and keeps the last epoch rather than
the best; here no augmentation, the same starting weights in both stages, the best epoch):

* stage 1: ResNet-18 and AlexNet, each behind the 4 -> 3 channel adapter with a softmax head,
  trained alone (cross-entropy, SGD with ``learning_rate`` and ``momentum``, early stopping).
  On ImageNet weights ResNet-18 would be frozen up to ``layer2`` and AlexNet's ``conv1``-``conv4``;
  Keras has no ImageNet weights for either, so ``imagenet`` stops at the weights policy and
  from scratch (``none``) nothing is frozen: a frozen random layer learns nothing.
* stage 2: both networks frozen, their features concatenated -> ReLU -> dense softmax, trained
  with SGD at ``learning_rate`` and momentum :data:`STAGE2_MOMENTUM`.

``stackwise``: Table 2's ``mff_stack`` (6 channels -> 1x1 convolution -> VGG-16 -> decision
network), its VGG-16 and decision network narrowed by ``width``, trained by the same SGD fit
as the other rows (Table 3's settings, not Table 2's weight decay and augmentation).
"""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np

from tf_bimodal.config.classification import ClassificationConfig
from tf_bimodal.models.classification.table3 import misra2021 as misra_model
from tf_bimodal.models.classification.table3.common import scaled
from tf_bimodal.training.classification import build_classifier_for_training
from tf_bimodal.training.table3.fitting import fit_network, predict_decision
from tf_bimodal.training.table3.method import Table3Method

STAGE2_MOMENTUM = 0.8
"""The momentum of the 2021 method's stage 2 (SGD 1e-3, momentum 0.8)."""


class Misra2021Method(Table3Method):
    """Misra et al. 2021: the two-stage ResNet-18 + AlexNet ensemble, or the stack-wise VGG-16."""

    def __init__(self, name, modalities, config, seed, image_size):
        super().__init__(name, modalities, config, seed, image_size)
        self.network = None

    def fit(self, train: dict, val: dict, folder: str, label: str = "") -> dict:
        paths, weights = self.prepare(folder)
        label = label or self.name
        if self.config.misra2021_reading == "stackwise":
            return self.fit_stackwise(train, val, folder, label, paths, weights)
        networks = misra_model.build_misra2021_networks(self.image_size, self.config.width, name=self.name)
        stages, frozen = {}, {}
        for backbone, network in networks.items():
            if weights["used"] == "imagenet":
                frozen[backbone] = misra_model.freeze_pretrained_layers(network, backbone)
            stages[backbone] = fit_network(network, train, val, self.config, os.path.join(folder, backbone),
                                           f"{label} stage 1 {backbone}")
        # Uncompiled copies with the trained weights: the ensemble saves no stage-1 optimizer.
        trained = misra_model.build_misra2021_networks(self.image_size, self.config.width, name=self.name)
        for backbone, network in trained.items():
            network.set_weights(networks[backbone].get_weights())
        self.network = misra_model.build_misra2021_ensemble(trained, name=self.name)
        stages["ensemble"] = fit_network(self.network, train, val, self.config, os.path.join(folder, "ensemble"),
                                         f"{label} stage 2", momentum=STAGE2_MOMENTUM)
        fitted = {"epochs_run": sum(stage["epochs_run"] for stage in stages.values()),
                  "best_epoch": stages["ensemble"]["best_epoch"]}
        return self.record(fitted, weights, {"reading": "ensemble", "stages": stages, "frozen": frozen,
                                             "stage2_momentum": STAGE2_MOMENTUM})

    def fit_stackwise(self, train, val, folder, label, paths, weights) -> dict:
        """The ``stackwise`` reading: Table 2's ``mff_stack`` fitted by :func:`fit_network`."""
        config = stackwise_classification_config(self.config, self.image_size, self.seed)
        path = paths.get("vgg16")
        loader = (lambda: keras.applications.VGG16(weights=path, include_top=True)) if path else None
        self.network, records, normalization = build_classifier_for_training("mff_stack", config, loader=loader,
                                                                             seed=self.seed)
        fitted = fit_network(self.network, train, val, self.config, folder, f"{label} stack-wise")
        return self.record(fitted, weights, {"reading": "stackwise", "model": "mff_stack",
                                             "normalization": normalization, "backbones": records})

    def predict(self, images: dict) -> np.ndarray:
        return predict_decision(self.network, images, self.config.batch_size)

    def save(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        self.network.save(self.model_path(folder))

    def load(self, folder: str) -> Misra2021Method:
        self.network = keras.saving.load_model(self.model_path(folder))
        return self


def stackwise_classification_config(config, image_size: int, seed: int) -> ClassificationConfig:
    """Table 2's classification settings for ``mff_stack`` as Table 3's ``config`` sizes it:
    the VGG-16's filters, fully connected units and the decision network times ``width``,
    ImageNet VGG-16 weights required when ``backbone_weights="imagenet"``."""
    base = ClassificationConfig()
    return dataclasses.replace(
        base,
        input_size=image_size,
        stackwise_num_filters=tuple(scaled(count, config.width) for count in base.stackwise_num_filters),
        fc_units=scaled(base.fc_units, config.width),
        decision_units=tuple(scaled(count, config.width) for count in base.decision_units),
        backbone_weights=config.backbone_weights,
        require_backbone_weights=config.backbone_weights == "imagenet",
        learning_rate=config.learning_rate, momentum=config.momentum, batch_size=config.batch_size,
        epochs=config.epochs, early_stopping_patience=config.early_stopping_patience, augment=False, seed=seed,
    )
