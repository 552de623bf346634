"""The two ways Table 3's ensembles join their networks (§4.2.2).

* :class:`FeatureConcatenationEnsemble` (Misra et al. 2021, stage 2): the networks' features,
  frozen, concatenated -> ReLU -> one dense softmax layer, a Keras model.
* :class:`ProbabilityAveragingEnsemble` (Kumar et al.): each member a feature extractor and
  a classifier with ``predict_proba`` (a scikit-learn SVM with probabilities), the members'
  probabilities averaged.
"""

from __future__ import annotations

import keras
import numpy as np

from tf_bimodal.models.classification import classifier_task as task
from tf_bimodal.models.classification.table3.adapters import modality_inputs
from tf_bimodal.models.classification.table3.classifiers import features_model


@keras.saving.register_keras_serializable(package="tf_bimodal")
class FeatureConcatenationEnsemble(task.ClassifierTask):
    """Networks' ``features`` concatenated, ReLU, a dense softmax (Misra et al. 2021, stage 2).

    Args:
        networks: models with a ``features`` layer and dict inputs among ``bmode`` /
            ``semode`` of one size (e.g. :class:`~.classifiers.Table3Classifier`).
        freeze: keep the networks' weights (the 2021 method's stage 2: "both frozen");
            frozen batch norms run in inference mode.
        num_classes: 2.

    Inputs: the union of the networks' inputs. Outputs: ``{"decision"}``.
    """

    def __init__(self, networks, freeze: bool = True, num_classes: int = 2, **kwargs):
        task.check_common_arguments("FeatureConcatenationEnsemble", num_classes, "standardize")
        networks = list(networks)
        if len(networks) < 2:
            raise ValueError(f"FeatureConcatenationEnsemble: needs at least 2 networks, got {len(networks)}")
        sizes = {network.input[name].shape[1] for network in networks for name in network.input}
        if len(sizes) != 1:
            raise ValueError(f"FeatureConcatenationEnsemble: the networks' inputs must share one size, got {sizes}")
        names = [name for name in ("bmode", "semode") if any(name in network.input for network in networks)]
        inputs = modality_inputs(names, sizes.pop())
        features = []
        for network in networks:
            network.trainable = not freeze  # the whole network: its unused head trains neither
            extractor = features_model(network)
            features.append(extractor({name: inputs[name] for name in network.input}))
        x = keras.layers.Concatenate(name="concatenated_features")(features)
        x = keras.layers.ReLU(name="concatenated_features_relu")(x)
        outputs = {"decision": task.apply_softmax_head(x, num_classes)}
        super().__init__(inputs, outputs, config=dict(networks=networks, freeze=bool(freeze), num_classes=num_classes),
                         output_loss_weights={"decision": 1.0}, **kwargs)
        self.apply_freeze()

    def apply_freeze(self) -> None:
        """Freeze (or not) the networks as ``freeze`` says; again before compiling, since a
        ``trainable`` flag set on the ensemble (e.g. when a saved one is read back) reaches
        every sublayer."""
        for network in [*self.networks, *(layer for layer in self.layers if isinstance(layer, keras.Model))]:
            network.trainable = not self.freeze

    def compile(self, optimizer="auto", **kwargs):
        self.apply_freeze()
        super().compile(optimizer=optimizer, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["networks"] = [keras.layers.serialize(network) for network in self.networks]
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["networks"] = [keras.layers.deserialize(network) for network in config["networks"]]
        return cls(**config)


class ProbabilityAveragingEnsemble:
    """Members' class probabilities averaged (Kumar et al.: one SVM per fine-tuned network).

    Args:
        members: ``[(features, classifier), ...]``: ``features`` a Keras model from dict
            inputs to a feature vector, ``classifier`` any object with ``predict_proba``
            (``(N, F)`` -> ``(N, classes)``, e.g. ``sklearn.svm.SVC(probability=True)``).
    """

    def __init__(self, members):
        members = list(members)
        if not members or not all(hasattr(classifier, "predict_proba") for _, classifier in members):
            raise ValueError("ProbabilityAveragingEnsemble: needs members (features, classifier with predict_proba)")
        self.members = members

    @staticmethod
    def features(model: keras.Model, images: dict, batch_size: int = 64) -> np.ndarray:
        """The features of ``images`` (a dict holding at least the model's inputs)."""
        feed = {name: images[name] for name in model.input}
        return np.asarray(model.predict(feed, batch_size=batch_size, verbose=0), np.float64)

    def member_probabilities(self, images: dict, batch_size: int = 64) -> list[np.ndarray]:
        """Each member's ``(N, classes)`` probabilities."""
        return [np.asarray(classifier.predict_proba(self.features(model, images, batch_size)))
                for model, classifier in self.members]

    def predict_proba(self, images: dict, batch_size: int = 64) -> np.ndarray:
        """The members' probabilities averaged, ``(N, classes)``."""
        return np.mean(self.member_probabilities(images, batch_size), axis=0)
