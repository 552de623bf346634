"""Statistics over the folds: mean ± SD (Tables 1 and 2) and paired t-tests of the proposed
method against the others (§4.2.1, §4.2.2).

**Mean ± SD.** :func:`mean_sd` and :func:`summarize_folds` report the mean and the population
SD (``ddof=0``) of per-fold values, the convention that reproduces the paper's Table 2 (see
:mod:`tf_bimodal.evaluation.classification`) and serves both tables; the per-fold values are
kept for the t-tests.

**Paired t-tests.**

What is tested: for one metric, the K per-fold values of the proposed (reference) method and
those of another method are **paired samples**: fold k of both was trained and validated on the
same patients and scored on the same test images, so the fold, not the image, is the unit of
observation. The paper tests over the five folds of its cross-validation (Table 2, Table 3).

The null hypothesis is the paper's: "the performance of the proposed model was equivalent to
other models" (§4.2.1), i.e. the mean of the per-fold differences ``reference - other`` is zero.
The test is **two-sided** because §4.2.2 says "two-tailed paired t-test" and because a one-sided
test in favour of the proposed method could never report that it is significantly worse
(``scipy.stats.ttest_rel`` with ``alternative="two-sided"``).

Marks, at the paper's 95 % level (``alpha = 0.05``):

* ``"+"``: ``p <= alpha`` and the reference is better (the paper's "+", "statistically
  significant", i.e. the null hypothesis is rejected in favour of the proposed method);
* ``"≈"``: ``p > alpha`` (the paper's "≈", "statistically not significant": equivalence cannot
  be rejected);
* ``"−"`` (U+2212 minus): ``p <= alpha`` but the reference is *worse*. The paper never shows
  this sign; it exists so that a significant loss is not silently printed as "+".

"Better" means a larger mean over the folds, or a smaller one with ``higher_is_better=False``
(losses, error rates).

Degenerate differences, where ``scipy`` divides by a zero standard deviation:

* every difference zero (identical per-fold values): ``t = 0``, ``p = 1``, mark ``"≈"``
  (scipy returns NaN);
* every difference the same non-zero number: the mean difference is known exactly, so
  ``t = ±inf`` and ``p = 0``, marked like any significant result (scipy returns the same).

Differences are called constant when their spread is below ``1e-12`` times the largest value,
so that floating-point noise from subtracting metric values does not turn an exact tie into a
spurious ``t`` of 1e15.
"""

from __future__ import annotations

import collections.abc
import math

import numpy as np
from scipy import stats

BETTER, EQUIVALENT, WORSE = "+", "≈", "−"
"""The marks of :func:`paired_t_test` (``WORSE`` is U+2212, not a hyphen)."""

SD_DDOF = 0
"""The SD over folds is the population SD (``ddof=0``) in both tables."""

DEFAULT_ALPHA = 0.05
"""The paper's significance level: "p-values are provided for a 95% confidence interval"."""

CONSTANT_TOLERANCE = 1e-12
"""Relative spread below which the per-fold differences count as constant (see module doc)."""


def mean_sd(values) -> dict:
    """``{"mean", "sd", "values", "nan"}`` of per-fold values, population SD (``ddof=0``).

    NaN values (undefined ratios) are left out of the mean and SD and counted in ``"nan"``.

    Raises:
        ValueError: no value.
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_sd: needs at least one value")
    finite = [v for v in values if not math.isnan(v)]
    return {
        "mean": float(np.mean(finite)) if finite else float("nan"),
        "sd": float(np.std(finite, ddof=SD_DDOF)) if finite else float("nan"),
        "values": values,
        "nan": len(values) - len(finite),
    }


def summarize_folds(fold_metrics, names) -> dict:
    """``{metric: mean_sd(...)}`` of the metrics ``names`` over per-fold metric dicts."""
    return {name: mean_sd([metrics[name] for metrics in fold_metrics]) for name in names}


def _fold_values(values, argument: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"paired_t_test: {argument} must hold numbers, got {values!r}") from error
    if array.ndim != 1:
        raise ValueError(
            f"paired_t_test: {argument} must be one value per fold (1-D), got shape {array.shape}"
        )
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        kind = "NaN" if np.isnan(array[bad]).any() else "infinite"
        raise ValueError(
            f"paired_t_test: {argument} holds {kind} values at fold index(es) {bad.tolist()}"
        )
    return array


def paired_t_test(reference, other, alpha: float = DEFAULT_ALPHA, higher_is_better: bool = True) -> dict:
    """Two-sided paired t-test of the reference's per-fold values against another's (§4.2.1).

    Args:
        reference: per-fold values of the proposed method (list or 1-D array), e.g. the five
            fold accuracies of the EmbraceNet MFF model.
        other: per-fold values of the compared method, in the same fold order.
        alpha: significance level; the paper uses 0.05 (p <= alpha is significant).
        higher_is_better: True for scores (accuracy, Dice); False for losses, where "+"
            means the reference is significantly *lower*.

    Returns:
        ``{"t", "p", "n", "mean_difference", "mark"}``: the t statistic of
        ``reference - other`` (float, may be ±inf), the two-sided p-value (float), the number
        of folds (int), the mean of ``reference - other`` (float) and the mark ``"+"``,
        ``"≈"`` or ``"−"`` (see the module docstring).

    Raises:
        ValueError: fewer than two paired values, arguments of different lengths, values that
            are NaN or infinite (the message names the argument and the folds), non 1-D
            values, or ``alpha`` outside (0, 1).
    """
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"paired_t_test: alpha must be in (0, 1), got {alpha}")
    reference = _fold_values(reference, "reference")
    other = _fold_values(other, "other")
    if reference.size != other.size:
        raise ValueError(
            f"paired_t_test: reference and other must be paired per fold (same length), got "
            f"{reference.size} and {other.size} values"
        )
    if reference.size < 2:
        raise ValueError(
            f"paired_t_test: need at least 2 paired values (folds), got {reference.size}"
        )
    differences = reference - other
    mean_difference = float(np.mean(differences))
    scale = max(1.0, float(np.max(np.abs(np.concatenate([reference, other])))))
    tolerance = CONSTANT_TOLERANCE * scale
    if np.ptp(differences) <= tolerance:
        if abs(mean_difference) <= tolerance:
            t_statistic, p_value, mean_difference = 0.0, 1.0, 0.0
        else:
            t_statistic, p_value = math.copysign(math.inf, mean_difference), 0.0
    else:
        result = stats.ttest_rel(reference, other, alternative="two-sided")
        t_statistic, p_value = float(result.statistic), float(result.pvalue)

    if p_value > alpha:
        mark = EQUIVALENT
    else:
        reference_better = mean_difference > 0 if higher_is_better else mean_difference < 0
        mark = BETTER if reference_better else WORSE
    return {
        "t": t_statistic,
        "p": p_value,
        "n": int(reference.size),
        "mean_difference": mean_difference,
        "mark": mark,
    }


def compare_to_reference(
    per_fold,
    reference: str,
    metrics,
    alpha: float = DEFAULT_ALPHA,
    higher_is_better=True,
) -> dict:
    """Paired t-tests of the reference method against every other method (Table 2, Table 3).

    Args:
        per_fold: ``{method: {metric: per-fold values}}``, the folds in the same order for
            every method.
        reference: the proposed method's key in ``per_fold``.
        metrics: the metric names to test, e.g. ``("accuracy", "f1", "auc")``.
        alpha: significance level (0.05 in the paper).
        higher_is_better: a bool for all metrics, or ``{metric: bool}`` (metrics not in the
            mapping count as higher-is-better).

    Returns:
        ``{method: {metric: paired_t_test result}}`` for every method other than
        ``reference``, in ``per_fold``'s order; a metric a method lacks is omitted from that
        method's dict (which may then be empty).

    Raises:
        ValueError: ``reference`` not in ``per_fold``, or a requested metric missing from the
            reference (nothing could be compared), or any error of :func:`paired_t_test`.
    """
    if reference not in per_fold:
        raise ValueError(
            f"compare_to_reference: reference {reference!r} not among the methods {list(per_fold)}"
        )
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    missing = [metric for metric in metrics if metric not in per_fold[reference]]
    if missing:
        raise ValueError(
            f"compare_to_reference: the reference {reference!r} has no values for {missing}"
        )
    if isinstance(higher_is_better, collections.abc.Mapping):
        direction = {metric: bool(higher_is_better.get(metric, True)) for metric in metrics}
    else:
        direction = {metric: bool(higher_is_better) for metric in metrics}

    comparisons = {}
    for method, scores in per_fold.items():
        if method == reference:
            continue
        comparisons[method] = {}
        for metric in metrics:
            if metric not in scores:
                continue
            try:
                comparisons[method][metric] = paired_t_test(
                    per_fold[reference][metric],
                    scores[metric],
                    alpha=alpha,
                    higher_is_better=direction[metric],
                )
            except ValueError as error:
                raise ValueError(f"compare_to_reference: {method!r}, {metric!r}: {error}") from error
    return comparisons
