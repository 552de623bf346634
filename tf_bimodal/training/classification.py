"""Build, compile, train and apply one classifier of Table 2 on one fold (paper §3.3, §3.4).

* :func:`build_classifier_for_training`: the backbones with their starting weights (ImageNet
  VGG-16 when asked for and available, else random, recorded either way, or an error when
  ``require_backbone_weights`` is set), the pixel normalisation that goes with them, and the
  classifier (§3.3.2);
* :func:`compile_classifier`: SGD with momentum and weight decay (§3.4; L2 through the
  gradient, as PyTorch's SGD, unless ``weight_decay_mode="decoupled"``), the loss
  ``l_i + lambda * l_d`` of Eq. (1) being the model's own (:class:`ClassifierTask`);
* :func:`fit_classifier`: training with the weights of the lowest validation loss kept, and
  resumable after an interruption; a model whose branches train independently (late
  integration, §3.3.3) keeps each branch's own best epoch (:class:`BranchEarlyStopping`);
* :func:`predict_probabilities`: the probability of malignancy of every image of a batch stream.

Which of these choices are the paper's and which are our reading: ``docs/fidelity.md``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import warnings

import keras
import numpy as np
import tensorflow as tf

from tf_bimodal.config import SINGLE_MODAL_MODELS, ClassificationConfig
from tf_bimodal.models.classification.backbone_weights import imagenet_vgg16, load_backbone_weights
from tf_bimodal.models.classification.factory import backbone_names, build_backbone, build_classifier
from tf_bimodal.models.classification.optimizer import classification_optimizer
from tf_bimodal.training import runtime as runtime_lib
from tf_bimodal.training.callbacks import (
    BACKUP_DIR,
    HISTORY_FILE,
    ProgressLogger,
    ResumableCSVLogger,
    cosine_schedule,
    resumable_callbacks,
)

logger = logging.getLogger(__name__)

PROGRESS_BAR = 1
"""Keras' progress bar within epochs when the output is a terminal; a line per epoch otherwise."""

MONITOR = "val_loss"
"""Model selection and early stopping of the classifiers: the validation loss of Eq. (1)."""


class CachedImagenet:
    """Loads the ImageNet VGG-16 at most once per run (or fails once): a ``loader`` for
    :func:`~tf_bimodal.models.classification.backbone_weights.load_backbone_weights`."""

    def __init__(self):
        self.model = None
        self.error = None

    def __call__(self):
        if self.error is not None:
            raise self.error
        if self.model is None:
            try:
                self.model = imagenet_vgg16()
            except Exception as error:
                self.error = error
                raise
        return self.model


def build_classifier_for_training(model: str, config: ClassificationConfig, loader=None,
                                  seed: int | None = None) -> tuple:
    """The classifier ``model`` with backbones initialised as ``config.backbone_weights`` asks.

    Call it inside the strategy's scope. When ImageNet weights are asked for but cannot be
    loaded (no network), the backbones start from random weights, with a warning, and the
    record says so; with ``config.require_backbone_weights`` the failure is an error instead.

    Args:
        model: a ``CLASSIFICATION_MODELS`` name.
        config: the classification settings (``backbone_weights``,
            ``require_backbone_weights``, the backbone's shape, ``normalization``).
        loader: the ImageNet VGG-16 loader (default: a :class:`CachedImagenet`, so that all
            backbones of a run load or fail once).
        seed: the seed of the model's own draws (EmbraceNet); default ``config.seed``, a
            cross-validation fold ``k`` passes ``config.seed + k``
            (:func:`~tf_bimodal.models.classification.factory.build_classifier`).

    Returns:
        ``(classifier, records, normalization)``: the uncompiled model, ``{backbone name:
        {"requested", "used", "reason", ...}}`` and the pixel normalisation chosen
        (``caffe`` with ImageNet weights, else ``standardize``, unless ``config`` names one).

    Raises:
        BackboneWeightsUnavailable: ImageNet weights required but not loadable (a
            ``RuntimeError`` saying how to provide a weights file).
        ValueError: a ``backbone_weights`` path with no file, or a file that does not load;
            ``head_fit="logistic"`` for a model other than a single-modal VGG-16.
    """
    if config.head_fit == "logistic" and model not in SINGLE_MODAL_MODELS:
        raise ValueError(
            f"head_fit='logistic' fits the class layer of a single-modal VGG-16 {SINGLE_MODAL_MODELS}; "
            f"{model!r} has layers after the backbones to train: use head_fit='sgd'"
        )
    loader = loader or CachedImagenet()
    backbones, records = {}, {}
    for name in backbone_names(model):
        backbone = build_backbone(config, name)
        records[name] = load_backbone_weights(
            backbone,
            config.backbone_weights,
            allow_fallback=not config.require_backbone_weights,
            loader=loader,
            log=logger.info,
        )
        freeze_vgg_blocks(backbone, config.frozen_blocks)
        backbones[name] = backbone
    normalization = config.normalization
    if normalization == "auto":
        used = {record["used"] for record in records.values()}
        normalization = "caffe" if used and used <= {"imagenet", "hed"} else "standardize"
    classifier = build_classifier(model, config, normalization, backbones=backbones, seed=seed)
    return classifier, records, normalization


def freeze_vgg_blocks(backbone: keras.Model, blocks: int) -> list[str]:
    """Stop training the convolutions of the first ``blocks`` VGG-16 blocks
    (``ClassificationConfig.frozen_blocks``); returns the layers frozen."""
    frozen = [layer.name for layer in backbone.layers
              if layer.name.startswith("block") and "_conv" in layer.name and int(layer.name[5]) <= blocks]
    for name in frozen:
        backbone.get_layer(name).trainable = False
    return frozen


def compile_classifier(classifier: keras.Model, config: ClassificationConfig,
                       accumulation_steps: int = 1) -> keras.Model:
    """Compile with SGD (``learning_rate``, ``momentum``, ``weight_decay`` as
    ``weight_decay_mode`` says; §3.4,
    :func:`~tf_bimodal.models.classification.optimizer.classification_optimizer`), stepping
    once per ``accumulation_steps`` micro-batches; the loss is the model's own (Eq. 1)."""
    classifier.compile(optimizer=classification_optimizer(config, accumulation_steps))
    return classifier


def _write_json_atomic(path: str, payload: dict) -> None:
    tmp_path = path + ".tmp"
    with open(tmp_path, "w") as handle:
        json.dump(payload, handle)
    os.replace(tmp_path, path)


class BranchEarlyStopping(keras.callbacks.Callback):
    """Early stopping and best-epoch selection per branch of a model (§3.3.3 late integration).

    "Separate classifiers are trained independently using images of different modalities"
    (§3.3.3): each branch (``{name: [variables]}``, e.g.
    :meth:`LateIntegrationClassifier.branch_weights`) is watched on its own validation loss
    ``val_<name>_loss`` as Keras' ``EarlyStopping(restore_best_weights=True)`` watches one
    model: an epoch that lowers a branch's loss makes it that branch's best epoch and saves
    its weights; a branch whose loss has not improved for ``patience`` epochs is done. The fit
    stops when every branch is done (or at its last epoch); then each branch gets back the
    weights of its own best epoch. A branch done earlier goes on being updated meanwhile, but
    its weights are replaced by its best ones at the end, and since the branches share no
    weight and the loss is a sum over branches, nothing of those updates reaches the other
    branch: the result is that of two fits with their own early stopping on the same batches.

    Like :class:`~tf_bimodal.training.callbacks.ResumableEarlyStopping`, the state (per branch:
    best value, best epoch, epochs without improvement, done) and the best weights are saved
    in ``backup_dir`` after every epoch and reloaded when an interrupted fit resumes.

    Attributes:
        best_epochs: ``{name: epoch}`` counted from 0 (-1 before the first epoch).
        last_epoch: the last epoch run, from 0, over interrupted and resumed parts.
        resumed_from: the epoch a resumed fit went on from (None for a fresh one).

    Raises:
        ValueError: fewer than two branches, a branch without variables, or a variable in
            two branches.
        KeyError: (at an epoch's end) a branch whose ``val_<name>_loss`` is not logged.
    """

    STATE_FILE = "branch_early_stopping.json"
    WEIGHTS_FILE = "branch_best_weights.npz"

    def __init__(self, branches: dict, patience: int, backup_dir: str):
        super().__init__()
        if len(branches) < 2 or not all(branches.values()):
            raise ValueError(
                "BranchEarlyStopping: needs at least 2 branches, each with its variables, got "
                f"{ {name: len(variables) for name, variables in branches.items()} }"
            )
        seen = set()
        for name, variables in branches.items():
            paths = {id(variable) for variable in variables}
            if paths & seen:
                raise ValueError(f"BranchEarlyStopping: branch {name!r} shares variables with another branch")
            seen |= paths
        self.branches = {name: list(variables) for name, variables in branches.items()}
        self.patience = int(patience)
        self.backup_dir = backup_dir
        self._reset()

    def _reset(self):
        self.best = {name: math.inf for name in self.branches}
        self.best_epochs = {name: -1 for name in self.branches}
        self.wait = {name: 0 for name in self.branches}
        self.done = {name: False for name in self.branches}
        self.best_weights = {name: None for name in self.branches}
        self.last_epoch = -1
        self.resumed_from = None

    @staticmethod
    def monitor(name: str) -> str:
        """The logged value branch ``name`` is selected on."""
        return f"val_{name}_loss"

    def on_train_begin(self, logs=None):
        self._reset()
        state_path = os.path.join(self.backup_dir, self.STATE_FILE)
        if not os.path.isfile(state_path):
            return
        with open(state_path) as handle:
            state = json.load(handle)
        for name, branch in state["branches"].items():
            self.best[name] = math.inf if branch["best"] is None else branch["best"]
            self.best_epochs[name] = branch["best_epoch"]
            self.wait[name] = branch["wait"]
            self.done[name] = branch["done"]
        self.last_epoch = state["last_epoch"]
        self.resumed_from = self.last_epoch + 1
        weights_path = os.path.join(self.backup_dir, self.WEIGHTS_FILE)
        if os.path.isfile(weights_path):
            with np.load(weights_path) as stored:
                for name, variables in self.branches.items():
                    if f"{name}/0" in stored.files:
                        self.best_weights[name] = [stored[f"{name}/{i}"] for i in range(len(variables))]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        improved = []
        for name, variables in self.branches.items():
            if self.done[name]:
                continue
            monitor = self.monitor(name)
            if monitor not in logs:
                raise KeyError(f"BranchEarlyStopping: {monitor!r} is not logged; logged are {sorted(logs)}")
            current = float(logs[monitor])
            self.wait[name] += 1
            if current < self.best[name] or self.best_weights[name] is None:
                self.best[name] = min(current, self.best[name])
                self.best_epochs[name] = epoch
                self.best_weights[name] = [np.array(variable.numpy()) for variable in variables]
                self.wait[name] = 0
                improved.append(name)
            elif self.wait[name] >= self.patience:
                self.done[name] = True
        self.last_epoch = epoch
        if all(self.done.values()):
            self.model.stop_training = True
        self._save(improved)

    def _save(self, improved):
        os.makedirs(self.backup_dir, exist_ok=True)
        if improved:
            weights_path = os.path.join(self.backup_dir, self.WEIGHTS_FILE)
            tmp_path = weights_path + ".tmp.npz"
            np.savez(tmp_path, **{f"{name}/{i}": weight for name, weights in self.best_weights.items()
                                  if weights is not None for i, weight in enumerate(weights)})
            os.replace(tmp_path, weights_path)
        _write_json_atomic(os.path.join(self.backup_dir, self.STATE_FILE), {
            "branches": {
                name: {"best": None if math.isinf(self.best[name]) else self.best[name],
                       "best_epoch": self.best_epochs[name], "wait": self.wait[name], "done": self.done[name]}
                for name in self.branches
            },
            "last_epoch": self.last_epoch,
        })

    def on_train_end(self, logs=None):
        for name, variables in self.branches.items():
            if self.best_weights[name] is not None:
                for variable, value in zip(variables, self.best_weights[name]):
                    variable.assign(value)


def fit_classifier(
    classifier: keras.Model,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset,
    config: ClassificationConfig,
    fold_dir: str,
    label: str = "",
    started: float | None = None,
    extra_callbacks=(),
) -> dict:
    """Train a compiled classifier, keeping the weights of its lowest-validation-loss epoch.

    Training runs for at most ``config.epochs`` epochs and stops when the validation loss of
    Eq. (1) has not improved for ``config.early_stopping_patience`` epochs. A model with
    independent branches (one with a ``branch_weights()`` method: late integration, §3.3.3)
    is selected per branch instead (:class:`BranchEarlyStopping`): each branch keeps its own
    best epoch on its own validation loss, and training stops when every branch has stopped
    improving. The history goes to ``fold_dir/history.csv`` and the fit is resumable: killed,
    the next call with the same ``fold_dir`` goes on from its last finished epoch
    (:func:`~tf_bimodal.training.callbacks.resumable_callbacks`).

    With ``config.head_fit == "logistic"`` only the class layer is fitted, once
    (:func:`fit_logistic_head`), and ``val_ds`` is not used.

    Returns:
        ``{"best_epoch", "epochs_run", "resumed_from_epoch", "branch_best_epochs"}`` (epochs
        counted from 1); for a per-branch selection ``best_epoch`` is None and
        ``branch_best_epochs`` is ``{branch: epoch}``, else ``branch_best_epochs`` is None.
        A logistic head has no epochs (``best_epoch`` None, ``epochs_run`` 0) and adds
        ``head_fit``, see :func:`fit_logistic_head`.
    """
    if config.head_fit == "logistic":
        return fit_logistic_head(classifier, train_ds, label=label)
    progress = ProgressLogger(label, config.epochs, log=logger.info, started=started)
    branches = classifier.branch_weights() if hasattr(classifier, "branch_weights") else None
    if branches is None:
        callbacks, early_stopping = resumable_callbacks(
            fold_dir, monitor=MONITOR, patience=config.early_stopping_patience
        )
    else:
        # resumable_callbacks' three, with the per-branch selection in place of the single one.
        backup_dir = os.path.join(fold_dir, BACKUP_DIR)
        early_stopping = BranchEarlyStopping(branches, config.early_stopping_patience, backup_dir)
        callbacks = [
            ResumableCSVLogger(os.path.join(fold_dir, HISTORY_FILE), backup_dir),
            early_stopping,
            keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True, delete_checkpoint=True),
        ]
    if config.lr_schedule == "cosine":
        callbacks.append(keras.callbacks.LearningRateScheduler(cosine_schedule(config.learning_rate, config.epochs)))
    classifier.fit(
        **runtime_lib.fit_datasets(train_ds, val_ds), epochs=config.epochs,
        callbacks=[*callbacks, progress, *extra_callbacks], shuffle=False,
        verbose=PROGRESS_BAR if sys.stdout.isatty() else 0,
    )
    resumed_from = early_stopping.resumed_from
    result = {
        "best_epoch": None,
        "epochs_run": int(early_stopping.last_epoch) + 1,
        "resumed_from_epoch": None if resumed_from is None else resumed_from + 1,
        "branch_best_epochs": None,
    }
    if branches is None:
        result["best_epoch"] = int(early_stopping.best_epoch) + 1
    else:
        result["branch_best_epochs"] = {name: int(epoch) + 1 for name, epoch in early_stopping.best_epochs.items()}
    return result


LOGISTIC_STRENGTHS = tuple(float(c) for c in np.logspace(-4, 0, 9))
"""The inverse L2 strengths ``C`` that :func:`fit_logistic_head` chooses from."""


def fit_logistic_head(classifier: keras.Model, train_ds: tf.data.Dataset, label: str = "") -> dict:
    """Fit a single-modal classifier's class layer as a logistic regression on frozen features.

    The features that reach the ``predictions`` layer are computed once for every training
    image (``train_ds``, unaugmented); an L2 logistic regression on the standardised features
    is fitted, its strength chosen from :data:`LOGISTIC_STRENGTHS` by a stratified 4-fold
    cross-validation of the training images (ROC AUC), and written into the softmax layer:
    standardisation folded into the weights, the malignant logit ``w . x + b`` against a
    benign logit of 0, so the model's softmax gives the regression's probability exactly. The
    rest of the model is left as it is (a frozen pre-trained backbone).

    Returns:
        ``{"best_epoch": None, "epochs_run": 0, "resumed_from_epoch": None,
        "branch_best_epochs": None, "head_fit": {"method", "C", "cv_auc", "features",
        "images"}}``.

    Raises:
        ValueError: a model without a ``predictions`` layer of two classes, or training
            images of one class only.
    """
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    names = {layer.name for layer in classifier.layers}
    if "predictions" not in names or classifier.get_layer("predictions").units != 2:
        raise ValueError(
            f"fit_logistic_head: {classifier.name!r} has no two-class 'predictions' layer; head_fit='logistic' "
            "is for the single-modal VGG-16 classifiers"
        )
    head = classifier.get_layer("predictions")
    features_model = keras.Model(classifier.inputs, head.input)
    features, labels = [], []
    for inputs, batch_labels in train_ds:
        features.append(np.asarray(features_model(inputs, training=False), np.float64))
        labels.append(np.asarray(batch_labels).astype(np.int64))
    features, labels = np.concatenate(features), np.concatenate(labels)
    counts = np.bincount(labels, minlength=2)
    if counts.min() < 2:
        raise ValueError(
            f"fit_logistic_head: the training images hold {counts[0]} benign and {counts[1]} malignant; "
            "a logistic head needs at least 2 of each"
        )
    scaler = StandardScaler().fit(features)
    folds = StratifiedKFold(min(4, int(counts.min())), shuffle=True, random_state=0)
    regression = LogisticRegressionCV(Cs=list(LOGISTIC_STRENGTHS), cv=folds, scoring="roc_auc", max_iter=3000)
    with warnings.catch_warnings():
        # scikit-learn 1.8-1.9 announce new defaults that leave an L2 fit as it is.
        warnings.simplefilter("ignore", FutureWarning)
        regression.fit(scaler.transform(features), labels)
    weights = regression.coef_[0] / scaler.scale_
    kernel = np.zeros(head.kernel.shape, np.float32)
    kernel[:, 1] = weights
    bias = np.array([0.0, regression.intercept_[0] - float(np.dot(weights, scaler.mean_))], np.float32)
    head.set_weights([kernel, bias])
    strength = float(np.ravel(regression.C_)[0])
    cv_auc = float(np.max(np.mean(regression.scores_[1], axis=0)))
    logger.info(f"{label}: logistic head on {features.shape[1]} frozen features of {len(labels)} images, "
                f"C {strength:g} (cross-validated AUC {cv_auc:.3f})")
    return {
        "best_epoch": None, "epochs_run": 0, "resumed_from_epoch": None, "branch_best_epochs": None,
        "head_fit": {"method": "logistic", "C": strength, "cv_auc": cv_auc, "features": int(features.shape[1]),
                     "images": int(len(labels))},
    }


def predict_probabilities(classifier: keras.Model, ds: tf.data.Dataset) -> dict:
    """Probability of malignancy per image of a ``with_metadata`` dataset
    (:func:`tf_bimodal.data.inputs.classification_dataset`), with its ids and labels."""
    input_names = set(classifier.input.keys()) if isinstance(classifier.input, dict) else None
    columns = {"image_id": [], "patient_id": [], "label": [], "probability": []}
    for inputs, _ in ds:
        feed = {key: value for key, value in inputs.items() if input_names is None or key in input_names}
        outputs = classifier(feed, training=False)
        columns["probability"].append(np.asarray(outputs["decision"])[:, 1])
        for key in ("image_id", "patient_id"):
            columns[key].extend(value.decode() for value in inputs[key].numpy())
        columns["label"].append(inputs["label"].numpy())
    return {
        "image_id": np.asarray(columns["image_id"]),
        "patient_id": np.asarray(columns["patient_id"]),
        "label": np.concatenate(columns["label"]).astype(np.int64),
        "probability": np.concatenate(columns["probability"]).astype(np.float64),
    }
