"""Paired t-tests over the folds and their +/≈ marks (§4.2.1, §4.2.2, Table 2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tf_bimodal.evaluation.statistics import (
    BETTER,
    EQUIVALENT,
    WORSE,
    compare_to_reference,
    paired_t_test,
)


@pytest.mark.parametrize("seed", range(4))
def test_matches_scipy_ttest_rel(seed):
    rng = np.random.default_rng(seed)
    reference = rng.uniform(0.6, 0.95, size=5)
    other = reference - rng.normal(0.02, 0.05, size=5)
    expected = stats.ttest_rel(reference, other)
    result = paired_t_test(reference, other)
    assert result["t"] == pytest.approx(expected.statistic)
    assert result["p"] == pytest.approx(expected.pvalue)
    assert result["n"] == 5
    assert result["mean_difference"] == pytest.approx(np.mean(reference - other))


def test_hand_computed_example():
    # differences 1, 2, 3: mean 2, sample SD 1, t = 2 / (1 / sqrt 3) = 2 sqrt 3 with 2 degrees of
    # freedom, whose two-sided p has the closed form 1 - t / sqrt(2 + t^2) = 1 - sqrt(12 / 14).
    result = paired_t_test([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert result["t"] == pytest.approx(2 * math.sqrt(3))
    assert result["p"] == pytest.approx(1 - math.sqrt(12 / 14))
    assert result["mean_difference"] == pytest.approx(2.0)
    assert result["mark"] == EQUIVALENT  # p = 0.074 > 0.05


def test_accepts_lists_and_arrays_alike():
    reference, other = [0.9, 0.8, 0.85, 0.7], [0.7, 0.75, 0.8, 0.72]
    assert paired_t_test(reference, other) == paired_t_test(np.array(reference), np.array(other))


def test_reproduces_the_sense_of_table_2():
    # Proposed model: 96.92 ± 3.77 % patient accuracy over five folds (13 test patients, all
    # right three times and 12/13 twice); a single-modal model clearly below it on every fold.
    proposed = [100.0, 100.0, 92.31, 100.0, 92.31]
    single_modal = [84.62, 76.92, 84.62, 84.62, 76.92]
    result = paired_t_test(proposed, single_modal)
    assert result["mark"] == BETTER
    assert result["p"] < 0.01
    assert result["t"] > 0


def test_equal_means_with_different_folds_are_equivalent():
    # Specificity 97.14 ± 5.71 (≈) for two models that miss one benign patient in different folds.
    result = paired_t_test([100, 100, 100, 85.71, 100], [100, 85.71, 100, 100, 100])
    assert result["p"] == pytest.approx(1.0)
    assert result["mark"] == EQUIVALENT


def test_significantly_worse_reference_is_marked_minus():
    result = paired_t_test([0.70, 0.72, 0.69, 0.71, 0.70], [0.80, 0.83, 0.79, 0.82, 0.81])
    assert result["p"] <= 0.05
    assert result["mean_difference"] < 0
    assert result["mark"] == WORSE == "\u2212"


def test_lower_is_better_flips_the_direction():
    losses_reference = [0.20, 0.22, 0.19, 0.21, 0.20]
    losses_other = [0.30, 0.33, 0.29, 0.32, 0.31]
    assert paired_t_test(losses_reference, losses_other, higher_is_better=False)["mark"] == BETTER
    assert paired_t_test(losses_reference, losses_other)["mark"] == WORSE


def test_alpha_is_inclusive_and_changes_the_mark():
    result = paired_t_test([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])  # p = 0.0742
    assert paired_t_test([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], alpha=0.1)["mark"] == BETTER
    assert paired_t_test([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], alpha=result["p"])["mark"] == BETTER


def test_identical_values_give_p_one_not_nan():
    values = [92.31, 100.0, 92.31, 100.0, 100.0]
    result = paired_t_test(values, list(values))
    assert result == {"t": 0.0, "p": 1.0, "n": 5, "mean_difference": 0.0, "mark": EQUIVALENT}


def test_ties_up_to_floating_point_noise_are_identical():
    reference, other = [0.3, 0.2, 0.5], [0.1 + 0.2, 0.2, 0.5]  # 0.1 + 0.2 = 0.30000000000000004
    assert np.ptp(np.subtract(reference, other)) > 0
    assert paired_t_test(reference, other)["p"] == 1.0


@pytest.mark.parametrize("shift, t_sign, mark", [(0.1, 1, BETTER), (-0.1, -1, WORSE)])
def test_constant_non_zero_differences_are_significant(shift, t_sign, mark):
    other = np.array([0.1, 0.2, 0.7, 0.3, 0.33])
    reference = other + shift
    # floating-point noise: scipy alone would give t ~ 1e16 here, not inf
    assert np.ptp(reference - other) > 0
    result = paired_t_test(reference, other)
    assert result["t"] == t_sign * math.inf
    assert result["p"] == 0.0
    assert result["mean_difference"] == pytest.approx(shift)
    assert result["mark"] == mark


@pytest.mark.parametrize(
    "reference, other, message",
    [
        ([0.9], [0.8], "at least 2"),
        ([], [], "at least 2"),
        ([0.9, 0.8, 0.7], [0.8, 0.7], "same length"),
        ([0.9, float("nan"), 0.7], [0.8, 0.7, 0.6], "reference holds NaN values at fold index"),
        ([0.9, 0.8, 0.7], [0.8, 0.7, np.nan], "other holds NaN"),
        ([0.9, 0.8, np.inf], [0.8, 0.7, 0.6], "reference holds infinite"),
        ([[0.9, 0.8], [0.7, 0.6]], [0.8, 0.7, 0.6, 0.5], "1-D"),
        (["a", "b"], [0.8, 0.7], "numbers"),
    ],
)
def test_invalid_values_raise(reference, other, message):
    with pytest.raises(ValueError, match=message):
        paired_t_test(reference, other)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.05])
def test_invalid_alpha_raises(alpha):
    with pytest.raises(ValueError, match="alpha"):
        paired_t_test([1.0, 2.0], [0.0, 0.5], alpha=alpha)


PER_FOLD = {
    "B-mode VGG-16": {
        "accuracy": [84.62, 76.92, 84.62, 84.62, 76.92],
        "auc": [0.8, 0.7, 0.82, 0.79, 0.75],
    },
    "early integration": {
        "accuracy": [92.31, 84.62, 92.31, 92.31, 84.62],
        "loss": [0.4, 0.5, 0.45, 0.42, 0.47],
    },
    "MFF (EmbraceNet)": {
        "accuracy": [100.0, 100.0, 92.31, 100.0, 92.31],
        "auc": [0.95, 0.9, 0.93, 0.97, 0.92],
        "loss": [0.2, 0.25, 0.22, 0.21, 0.24],
    },
}


def test_compare_to_reference_tests_every_other_method_and_skips_missing_metrics():
    comparisons = compare_to_reference(PER_FOLD, "MFF (EmbraceNet)", ["accuracy", "auc", "loss"],
                                       higher_is_better={"loss": False})
    assert list(comparisons) == ["B-mode VGG-16", "early integration"]
    assert set(comparisons["B-mode VGG-16"]) == {"accuracy", "auc"}
    assert set(comparisons["early integration"]) == {"accuracy", "loss"}
    reference = PER_FOLD["MFF (EmbraceNet)"]
    for method, results in comparisons.items():
        for metric, result in results.items():
            assert result == paired_t_test(reference[metric], PER_FOLD[method][metric],
                                           higher_is_better=metric != "loss")
    assert comparisons["B-mode VGG-16"]["accuracy"]["mark"] == BETTER
    assert comparisons["early integration"]["loss"]["mark"] == BETTER


def test_compare_to_reference_errors():
    with pytest.raises(ValueError, match="not among the methods"):
        compare_to_reference(PER_FOLD, "W-MM-U-Net", ["accuracy"])
    with pytest.raises(ValueError, match=r"has no values for \['f1'\]"):
        compare_to_reference(PER_FOLD, "MFF (EmbraceNet)", ["accuracy", "f1"])
    broken = {"proposed": {"dice": [0.8, 0.9, 0.85]}, "U-Net": {"dice": [0.7, 0.8]}}
    with pytest.raises(ValueError, match="'U-Net', 'dice'.*same length"):
        compare_to_reference(broken, "proposed", "dice")
