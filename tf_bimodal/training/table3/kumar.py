"""Kumar et al.'s training (IEEE JBHI 2017; Table 3, §4.2.2): fine-tune AlexNet and GoogLeNet,
then an SVM with probabilities on each network's penultimate features, probabilities averaged.

Each network is fine-tuned alone with its softmax head (:func:`~.fitting.fit_network`); its
features (the layer before the head) of the training images, standardised, train a
scikit-learn SVM with probabilities (``SVC(C=Table3Config.svm_c)``, RBF kernel, Platt scaling
on cross-validated decisions as ``SVC(probability=True)``, seeded; :func:`fit_svm`); the two
SVMs' probabilities are averaged
(:class:`~tf_bimodal.models.classification.table3.ensembles.ProbabilityAveragingEnsemble`).
The original's kernel and scaling are not stated: those are readings.
"""

from __future__ import annotations

import os

import joblib
import keras
import numpy as np

from tf_bimodal.models.classification.table3 import kumar as kumar_model
from tf_bimodal.models.classification.table3.classifiers import features_model
from tf_bimodal.models.classification.table3.ensembles import ProbabilityAveragingEnsemble
from tf_bimodal.training.table3.fitting import fit_network, labels_of
from tf_bimodal.training.table3.method import Table3Method


def fit_svm(features: np.ndarray, labels: np.ndarray, c: float, seed: int):
    """An SVM with probabilities fitted on standardised ``features``: ``SVC`` with Platt
    scaling (sigmoid) on its cross-validated decisions, what ``SVC(probability=True)`` does
    (``CalibratedClassifierCV(SVC(), ensemble=False)``, scikit-learn's replacement for it;
    up to 5 stratified folds, fewer when a class has fewer images).

    Raises:
        ValueError: fewer than 2 images of a class.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    smallest = int(np.bincount(labels, minlength=2).min())
    if smallest < 2:
        raise ValueError(f"kumar: the SVMs need at least 2 training images of each class, got {np.bincount(labels)}")
    folds = StratifiedKFold(min(5, smallest), shuffle=True, random_state=seed)
    svm = CalibratedClassifierCV(SVC(C=c, random_state=seed), method="sigmoid", cv=folds, ensemble=False)
    return make_pipeline(StandardScaler(), svm).fit(features, labels)


class KumarMethod(Table3Method):
    """AlexNet + GoogLeNet features into SVMs with probabilities, averaged (B-mode)."""

    def __init__(self, name, modalities, config, seed, image_size):
        super().__init__(name, modalities, config, seed, image_size)
        self.networks = {}
        self.ensemble = None

    def fit(self, train: dict, val: dict, folder: str, label: str = "") -> dict:
        _, weights = self.prepare(folder)
        self.networks = kumar_model.build_kumar(self.image_size, self.config.width, name=self.name)
        stages, members = {}, []
        for backbone, network in self.networks.items():
            stages[backbone] = fit_network(network, train, val, self.config, os.path.join(folder, backbone),
                                           f"{label or self.name} {backbone}")
            extractor = features_model(network)
            features = ProbabilityAveragingEnsemble.features(extractor, train, self.config.batch_size)
            members.append((extractor, fit_svm(features, labels_of(train), self.config.svm_c, self.seed)))
        self.ensemble = ProbabilityAveragingEnsemble(members)
        fitted = {"epochs_run": sum(stage["epochs_run"] for stage in stages.values()), "best_epoch": None}
        return self.record(fitted, weights, {"networks": stages, "svm_c": self.config.svm_c, "svm_kernel": "rbf"})

    def predict(self, images: dict) -> np.ndarray:
        return self.ensemble.predict_proba(images, self.config.batch_size)[:, 1].astype(np.float64)

    def save(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        for (backbone, network), (_, svm) in zip(self.networks.items(), self.ensemble.members):
            network.save(self.model_path(folder, backbone))
            joblib.dump(svm, os.path.join(folder, f"{self.name}_{backbone}_svm.joblib"))

    def load(self, folder: str) -> KumarMethod:
        self.networks, members = {}, []
        for backbone in kumar_model.BACKBONES:
            network = keras.saving.load_model(self.model_path(folder, backbone))
            self.networks[backbone] = network
            svm = joblib.load(os.path.join(folder, f"{self.name}_{backbone}_svm.joblib"))
            members.append((features_model(network), svm))
        self.ensemble = ProbabilityAveragingEnsemble(members)
        return self
