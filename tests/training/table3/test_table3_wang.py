"""Wang et al.'s loss-weight search (§4.2.2): the REINFORCE policy, the weights it changes and
records, and the fixed equal weights without it."""

from __future__ import annotations

import dataclasses

import numpy as np
from table3_harness import QUICK, run_method_test

from tf_bimodal.training.table3.wang import LossWeightPolicy


def test_policy_moves_towards_the_rewarded_step():
    policy = LossWeightPolicy(weights=2, delta=0.5, learning_rate=1.0, seed=0)
    np.testing.assert_allclose(policy.probabilities(), 1 / 3)
    actions = np.array([[2, 0], [0, 0]])  # the first candidate steps weight 0 up and is rewarded
    policy.update(actions, rewards=[1.0, -1.0])
    probabilities = policy.probabilities()
    assert probabilities[0, 2] > 1 / 3 > probabilities[0, 0]
    np.testing.assert_allclose(probabilities[1], 1 / 3)  # weight 1 took the same step in both
    np.testing.assert_allclose(policy.steps(actions), [[0.5, -0.5], [-0.5, -0.5]])


def test_policy_ignores_equal_rewards():
    policy = LossWeightPolicy(weights=3, delta=0.2)
    policy.update(np.array([[0, 1, 2], [2, 1, 0]]), rewards=[0.3, 0.3])
    np.testing.assert_allclose(policy.logits, 0.0)


def test_search_changes_the_loss_weights_and_records_them(tmp_path):
    config = dataclasses.replace(QUICK, epochs=2, wang_candidates=2)
    details = run_method_test("wang", config, tmp_path)["details"]
    assert details["search"] is True and details["candidates"] == 2
    assert len(details["loss_logits"]) == len(details["candidate_val_losses"]) == 2
    assert all(len(losses) == 2 for losses in details["candidate_val_losses"])
    assert any(np.any(np.abs(logits) > 0) for logits in details["loss_logits"])
    np.testing.assert_allclose(np.sum(details["loss_weights"], axis=1), 1.0, atol=1e-5)


def test_without_search_the_weights_stay_equal(tmp_path):
    config = dataclasses.replace(QUICK, epochs=2, wang_search=False)
    details = run_method_test("wang", config, tmp_path)["details"]
    assert details["search"] is False and details["candidates"] == 1
    np.testing.assert_allclose(details["loss_weights"], 1 / 3, atol=1e-6)
