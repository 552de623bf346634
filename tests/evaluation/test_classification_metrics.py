"""Threshold, patient voting and metrics of the classifiers (§3.3.1, §3.4, §4.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score, roc_curve

from tf_bimodal.evaluation.classification import (
    DEFAULT_THRESHOLD,
    binary_metrics,
    evaluate_predictions,
    patient_vote,
    predict_labels,
    roc_points,
    summarize_folds,
    youden_threshold,
)
from tf_bimodal.evaluation.figures import draw_roc_curves, save_roc_figure
from tf_bimodal.evaluation.statistics import mean_sd


@pytest.mark.parametrize("seed", range(5))
def test_youden_threshold_against_sklearn_roc(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=60)
    scores = np.clip(0.5 * labels + rng.normal(0.25, 0.25, size=60), 0, 1)
    fpr, tpr, thresholds = roc_curve(labels, scores)
    best = int(np.argmax(tpr - fpr))
    result = youden_threshold(labels, scores)
    assert result["threshold"] == pytest.approx(thresholds[best])
    assert result["youden_index"] == pytest.approx(tpr[best] - fpr[best])
    predictions = predict_labels(scores, result["threshold"])
    sensitivity = np.mean(predictions[labels == 1] == 1)
    specificity = np.mean(predictions[labels == 0] == 0)
    assert sensitivity + specificity - 1 == pytest.approx(result["youden_index"])


def test_roc_points_hand_example_and_sklearn():
    """The one ROC helper (§3.3.1, Fig. 6): sklearn's points and AUC, None for one class."""
    # Scores 0.2 (benign), 0.4 (malignant), 0.6 (benign), 0.8 (malignant): of the four
    # benign-malignant pairs, three are ordered right, so AUC = 3/4.
    labels, scores = [0, 1, 0, 1], np.float32([0.2, 0.4, 0.6, 0.8])
    roc = roc_points(labels, scores)
    assert roc.auc == pytest.approx(0.75) and isinstance(roc.auc, float)
    assert roc.fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0] and roc.tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert np.isinf(roc.thresholds[0]) and roc.thresholds[1:].tolist() == pytest.approx([0.8, 0.6, 0.4, 0.2])
    rng = np.random.default_rng(3)
    labels, scores = rng.integers(0, 2, size=50), rng.random(50)
    expected = roc_curve(labels, scores)
    roc = roc_points(labels, scores)
    assert len(expected) == 3 and all(np.array_equal(a, b) for a, b in zip(roc[:3], expected))
    assert roc.auc == roc_auc_score(labels, scores) == binary_metrics(labels, scores > 0.5, scores)["auc"]
    assert roc_points([1, 1, 1], [0.2, 0.5, 0.9]) is None


def test_draw_roc_curves_names_a_one_class_curve_and_marks_the_threshold():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    curves = {"fold 0": roc_points([0, 1, 0, 1], [0.2, 0.4, 0.6, 0.8]), "fold 1": None}
    draw_roc_curves(axes, curves, "ROC", operating_point=(0.5, 1.0, "threshold 0.400"))
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["fold 0 (AUC 0.75)", "threshold 0.400"]
    assert axes.get_title() == "ROC\n(no ROC for fold 1: one class only)"
    plt.close(figure)
    figure, axes = plt.subplots()
    draw_roc_curves(axes, {"": None}, "ROC, test images", operating_point=(0.0, 1.0, "threshold"))
    assert axes.get_legend() is None and axes.get_title() == "ROC, test images"
    assert [text.get_text() for text in axes.texts] == ["one class only: no ROC curve"]
    plt.close(figure)


def test_youden_threshold_hand_example():
    # 0.48 separates perfectly: J = 1 there, and >= puts 0.48 itself on the malignant side.
    labels = [0, 0, 0, 1, 1, 1]
    scores = [0.10, 0.30, 0.47, 0.48, 0.70, 0.90]
    result = youden_threshold(labels, scores)
    assert result == {"threshold": 0.48, "youden_index": 1.0, "tpr": 1.0, "fpr": 0.0, "reason": None}
    assert predict_labels(scores, 0.48).tolist() == labels


FALLBACK_CASES = [
    ([1, 1, 1], [0.2, 0.5, 0.9], "one class"),
    ([0, 1, 0, 1], [0.9, 0.1, 0.8, 0.2], "Youden index <= 0"),
]


@pytest.mark.parametrize("labels, scores, reason", FALLBACK_CASES)
def test_youden_threshold_falls_back_with_a_reason(labels, scores, reason):
    result = youden_threshold(labels, scores)
    assert result["threshold"] == DEFAULT_THRESHOLD and reason in result["reason"]


@pytest.mark.parametrize("labels, scores", [([], []), ([0, 1], [0.5]), ([0, 2], [0.1, 0.2])])
def test_youden_threshold_invalid(labels, scores):
    with pytest.raises(ValueError):
        youden_threshold(labels, scores)


VOTE_CASES = [
    # image predictions of one patient, the patient's vote
    ([1], 1),
    ([0], 0),
    ([0, 0, 1], 0),
    ([1, 1, 0], 1),
    ([0, 1], 1),  # tie -> malignant (§4.2)
    ([0, 0, 1, 1], 1),  # tie -> malignant
    ([0, 0, 0, 1], 0),
]


@pytest.mark.parametrize("predictions, vote", VOTE_CASES)
def test_patient_vote_majority_and_tie_to_malignant(predictions, vote):
    result = patient_vote(["p"] * len(predictions), predictions)
    assert result["patient_ids"].tolist() == ["p"] and result["predictions"].tolist() == [vote]


def test_patient_vote_several_patients_labels_and_scores():
    result = patient_vote(
        ["b", "a", "b", "a", "c"], [0, 1, 1, 1, 0], labels=[0, 1, 0, 1, 0], scores=[0.2, 0.9, 0.6, 0.7, 0.1]
    )
    assert result["patient_ids"].tolist() == ["a", "b", "c"]
    assert result["predictions"].tolist() == [1, 1, 0]
    assert result["labels"].tolist() == [1, 0, 0]
    np.testing.assert_allclose(result["scores"], [0.8, 0.4, 0.1])
    with pytest.raises(ValueError, match="different labels"):
        patient_vote(["a", "a"], [0, 1], labels=[0, 1])


def test_metrics_against_a_hand_computed_confusion_table():
    # TP 3, FN 1, FP 2, TN 4.
    labels = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    predictions = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]
    metrics = binary_metrics(labels, predictions)
    assert (metrics["tp"], metrics["fn"], metrics["fp"], metrics["tn"]) == (3, 1, 2, 4)
    assert metrics["accuracy"] == pytest.approx(7 / 10)
    assert metrics["precision"] == pytest.approx(3 / 5)
    assert metrics["sensitivity"] == pytest.approx(3 / 4)
    assert metrics["specificity"] == pytest.approx(4 / 6)
    assert metrics["f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    assert math.isnan(metrics["auc"])


@pytest.mark.parametrize("seed", range(3))
def test_metrics_against_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 40)
    scores = rng.uniform(size=40)
    predictions = predict_labels(scores, 0.5)
    metrics = binary_metrics(labels, predictions, scores)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(labels, predictions))
    assert metrics["precision"] == pytest.approx(precision_score(labels, predictions))
    assert metrics["sensitivity"] == pytest.approx(recall_score(labels, predictions))
    assert metrics["specificity"] == pytest.approx(recall_score(labels, predictions, pos_label=0))
    assert metrics["f1"] == pytest.approx(f1_score(labels, predictions))
    assert metrics["auc"] == pytest.approx(roc_auc_score(labels, scores))


def test_undefined_ratios_are_nan_not_zero():
    metrics = binary_metrics([0, 0, 1], [0, 0, 0])
    assert math.isnan(metrics["precision"])
    assert metrics["sensitivity"] == 0.0 and metrics["f1"] == 0.0


def test_mean_sd_is_the_population_sd_that_reproduces_table_2():
    # MFF specificity, Table 2: 7 benign test patients, 3 folds all right, 2 folds one wrong.
    folds = [1.0, 1.0, 1.0, 6 / 7, 6 / 7]
    result = mean_sd(folds)
    assert round(100 * result["mean"], 2) == 94.29 and round(100 * result["sd"], 2) == 7.0
    # Accuracy 96.92 ± 3.77 over 13 patients.
    result = mean_sd([1.0, 1.0, 1.0, 12 / 13, 12 / 13])
    assert round(100 * result["mean"], 2) == 96.92 and round(100 * result["sd"], 2) == 3.77
    with_nan = mean_sd([0.5, float("nan"), 0.7])
    assert with_nan["mean"] == pytest.approx(0.6) and with_nan["nan"] == 1


def test_evaluate_predictions_and_summaries(tmp_path):
    labels = np.array([0, 0, 1, 1, 1, 0])
    scores = np.array([0.1, 0.6, 0.7, 0.4, 0.9, 0.2])
    patients = ["a", "a", "b", "b", "c", "d"]
    result = evaluate_predictions(labels, scores, patients, threshold=0.5)
    assert result["image"]["count"] == 6 and result["patient"]["count"] == 4
    # Patient a: votes (0, 1) tie -> malignant, wrong; b: (1, 0) -> malignant; c, d right.
    assert result["patient"]["accuracy"] == pytest.approx(3 / 4)
    summary = summarize_folds([result["patient"], result["patient"]])
    assert set(summary) == {"accuracy", "precision", "specificity", "sensitivity", "f1", "auc"}
    assert summary["accuracy"]["sd"] == 0.0
    path = save_roc_figure({"fold 0": (labels, scores)}, str(tmp_path / "roc.png"))
    assert (tmp_path / "roc.png").stat().st_size > 1000 and path.endswith("roc.png")
