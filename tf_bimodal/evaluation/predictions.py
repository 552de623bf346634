"""Per-image predictions of a fold classifier: ``predictions.csv`` written and read back.

One row per validation or test image: ``split, image_id, patient_id, label,
probability_malignant, prediction`` (``prediction`` = probability >= the fold's Youden
threshold, §3.3.1). The report, the ROC figures (Fig. 6), the fold ensemble and the B-mode-only
evaluation read these files.
"""

from __future__ import annotations

import csv

import numpy as np

COLUMNS = ("split", "image_id", "patient_id", "label", "probability_malignant", "prediction")


def write_predictions(path: str, parts: dict, threshold: float) -> str:
    """Write ``{"val": predictions, "test": predictions}`` (each with ``image_id``,
    ``patient_id``, ``label``, ``probability``) as ``predictions.csv``; returns ``path``."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for part, predictions in parts.items():
            for image_id, patient_id, label, probability in zip(
                predictions["image_id"], predictions["patient_id"], predictions["label"], predictions["probability"]
            ):
                writer.writerow(
                    [part, image_id, patient_id, int(label), f"{probability:.6f}", int(probability >= threshold)]
                )
    return path


def read_prediction_rows(path: str, split: str | None = None) -> list[dict]:
    """The rows of a ``predictions.csv`` (those of one ``split`` if given), as dicts of str."""
    with open(path) as handle:
        return [row for row in csv.DictReader(handle) if split is None or row["split"] == split]


def read_test_predictions(path: str) -> dict:
    """The test rows of a ``predictions.csv``: ``{"label", "probability"}`` arrays."""
    rows = read_prediction_rows(path, "test")
    return {
        "label": np.asarray([int(row["label"]) for row in rows], np.int64),
        "probability": np.asarray([float(row["probability_malignant"]) for row in rows], np.float64),
    }
