"""Wang et al.'s training (MICCAI 2020; Table 3, §4.2.2): the auto-weighted loss and its search.

The loss is ``L = sum_m softmax(c)_m * L_m`` over the B-mode head, the SE-mode head and the
fused head (:class:`~tf_bimodal.models.classification.table3.wang.WangClassifier`). The
weights' logits ``c`` are searched as the original's reinforcement learning does (the same
group's AWSnet has such a search; the details here are a reading):

* every epoch, ``Table3Config.wang_candidates`` candidates ``c' = c + delta * a`` are drawn,
  ``a`` one step per weight from ``{-1, 0, +1}`` (``delta = wang_delta``) sampled from a
  policy: one categorical distribution per weight, logits ``theta`` (zeros at first);
* each candidate trains one epoch from the same checkpoint (weights and optimizer state, the
  same batches: the generators are re-seeded per epoch) and is scored by the fused head's
  validation cross-entropy; the best is carried on (its weights and its ``c``);
* the policy is updated by REINFORCE with the candidates' rewards (minus that loss),
  standardised over the candidates: ``theta += POLICY_LEARNING_RATE * mean_k adv_k *
  (onehot(a_k) - p)``.

``wang_search=False`` keeps ``c = 0`` (equal weights) and trains one epoch per epoch. Early
stopping and the best epoch are on the fused head's validation loss (the weighted total moves
with ``c``, so it cannot compare epochs). ``c`` per epoch is recorded in the fit's details.
This loop is not resumable: an interrupted fit starts again.
"""

from __future__ import annotations

import logging
import math
import os

import keras
import numpy as np

from tf_bimodal.models.classification.table3.wang import LOSS_OUTPUTS, build_wang
from tf_bimodal.training.table3.fitting import feed, labels_of, predict_decision, sgd
from tf_bimodal.training.table3.method import Table3Method

logger = logging.getLogger(__name__)

POLICY_LEARNING_RATE = 0.5
"""The REINFORCE step of the policy's logits."""

MONITOR = "decision_loss"
"""The fused head's cross-entropy, what candidates and epochs are selected on (on validation)."""


class LossWeightPolicy:
    """One categorical distribution per loss weight over the steps ``{-delta, 0, +delta}``.

    Args:
        weights: how many loss weights.
        delta: the step of a logit.
        learning_rate: the REINFORCE step (:data:`POLICY_LEARNING_RATE`).
        seed: the seed of the draws.
    """

    def __init__(self, weights: int, delta: float, learning_rate: float = POLICY_LEARNING_RATE, seed: int = 0):
        self.logits = np.zeros((weights, 3))
        self.delta = float(delta)
        self.learning_rate = float(learning_rate)
        self.rng = np.random.default_rng(seed)

    def probabilities(self) -> np.ndarray:
        """``(weights, 3)``: the probabilities of the steps -delta, 0, +delta per weight."""
        shifted = np.exp(self.logits - self.logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def sample(self, count: int) -> np.ndarray:
        """``(count, weights)`` action indices (0: -delta, 1: 0, 2: +delta)."""
        probabilities = self.probabilities()
        return np.stack([[self.rng.choice(3, p=row) for row in probabilities] for _ in range(count)])

    def steps(self, actions: np.ndarray) -> np.ndarray:
        """The logit steps of ``actions``."""
        return (np.asarray(actions) - 1) * self.delta

    def update(self, actions: np.ndarray, rewards) -> None:
        """One REINFORCE step from the candidates' ``rewards`` (higher is better)."""
        rewards = np.asarray(rewards, np.float64)
        spread = rewards.std()
        if len(rewards) < 2 or spread == 0:
            return
        advantages = (rewards - rewards.mean()) / spread
        probabilities = self.probabilities()
        gradient = np.zeros_like(self.logits)
        for advantage, action in zip(advantages, actions):
            gradient += advantage * (np.eye(3)[action] - probabilities)
        self.logits += self.learning_rate * gradient / len(rewards)


def snapshot(model: keras.Model) -> list[np.ndarray]:
    """The values of the model's and its optimizer's variables."""
    return [np.array(variable.numpy()) for variable in [*model.variables, *model.optimizer.variables]]


def restore(model: keras.Model, values: list[np.ndarray]) -> None:
    """Give back the values :func:`snapshot` took."""
    for variable, value in zip([*model.variables, *model.optimizer.variables], values):
        variable.assign(value)


class WangMethod(Table3Method):
    """B-mode + SE-mode through a shared ResNet-18, branch and fused heads, the loss weights
    searched (or fixed with ``wang_search=False``)."""

    def __init__(self, name, modalities, config, seed, image_size):
        super().__init__(name, modalities, config, seed, image_size)
        self.network = None

    def fit(self, train: dict, val: dict, folder: str, label: str = "") -> dict:
        _, weights = self.prepare(folder)
        config = self.config
        self.network = build_wang(self.image_size, config.width, name=self.name)
        self.network.compile(optimizer=sgd(config.learning_rate, config.momentum))
        policy = LossWeightPolicy(len(LOSS_OUTPUTS), config.wang_delta, seed=self.seed)
        logits = np.zeros(len(LOSS_OUTPUTS))
        epochs = {"loss_logits": [], "loss_weights": [], "candidate_val_losses": [], "val_loss": []}
        best, best_epoch, best_values, wait = math.inf, None, None, 0
        for epoch in range(config.epochs):
            logits, loss, losses = self.search_epoch(train, val, logits, policy, epoch)
            epochs["loss_logits"].append([round(float(v), 6) for v in logits])
            epochs["loss_weights"].append([round(float(v), 6) for v in np.exp(logits) / np.exp(logits).sum()])
            epochs["candidate_val_losses"].append([round(float(v), 6) for v in losses])
            epochs["val_loss"].append(round(float(loss), 6))
            logger.info(f"{label or self.name} epoch {epoch + 1}/{config.epochs}: fused val loss {loss:.4f}, "
                        f"loss weights {epochs['loss_weights'][-1]}")
            if loss < best:
                best, best_epoch, best_values, wait = loss, epoch, snapshot(self.network), 0
            else:
                wait += 1
                if wait >= config.early_stopping_patience:
                    break
        restore(self.network, best_values)
        self.network.set_loss_logits(epochs["loss_logits"][best_epoch])
        details = {"search": config.wang_search, "candidates": config.wang_candidates if config.wang_search else 1,
                   "delta": config.wang_delta, "policy_learning_rate": POLICY_LEARNING_RATE,
                   "loss_outputs": list(LOSS_OUTPUTS), "policy_probabilities": policy.probabilities().round(6).tolist(),
                   **epochs}
        return self.record({"epochs_run": len(epochs["val_loss"]), "best_epoch": best_epoch + 1}, weights, details)

    def search_epoch(self, train: dict, val: dict, logits: np.ndarray, policy: LossWeightPolicy, epoch: int):
        """One epoch: every candidate trained from the same start, the best kept; returns
        ``(its logits, its fused validation loss, every candidate's loss)``."""
        if self.config.wang_search:
            actions = policy.sample(self.config.wang_candidates)
            candidates = [logits + policy.steps(action) for action in actions]
        else:
            actions, candidates = None, [logits]
        start = snapshot(self.network)
        results = []
        for candidate in candidates:
            restore(self.network, start)
            self.network.set_loss_logits(candidate)
            keras.utils.set_random_seed(self.seed + epoch)  # the same batches for every candidate
            self.network.fit(feed(self.network, train), labels_of(train), batch_size=self.config.batch_size,
                             epochs=1, shuffle=True, verbose=0)
            scores = self.network.evaluate(feed(self.network, val), labels_of(val), batch_size=self.config.batch_size,
                                           verbose=0, return_dict=True)
            results.append((float(scores[MONITOR]), snapshot(self.network)))
        losses = [loss for loss, _ in results]
        chosen = int(np.argmin(losses))
        restore(self.network, results[chosen][1])
        self.network.set_loss_logits(candidates[chosen])
        if actions is not None:
            policy.update(actions, [-loss for loss in losses])
        return candidates[chosen], losses[chosen], losses

    def predict(self, images: dict) -> np.ndarray:
        return predict_decision(self.network, images, self.config.batch_size)

    def save(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        self.network.save(self.model_path(folder))

    def load(self, folder: str) -> WangMethod:
        self.network = keras.saving.load_model(self.model_path(folder))
        return self
