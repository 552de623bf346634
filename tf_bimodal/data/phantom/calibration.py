"""How hard the phantom is: the class separability each modality's ground truth allows.

The class-conditional lesion model (:mod:`tf_bimodal.data.phantom.patients`) is calibrated with
:func:`difficulty_table` so that neither modality separates the classes perfectly and SE carries
more information than B-mode, as in the paper (Table 2: SE-only VGG-16 81.5 % vs B-only 72.3 %
accuracy).
"""

from __future__ import annotations

import math

import numpy as np

from tf_bimodal.config import PhantomConfig
from tf_bimodal.data.phantom.lexicon import ECHO_PATTERNS, ELASTICITY_SCORES, MARGINS, POSTERIOR_FEATURES, SHAPE_CLASSES
from tf_bimodal.data.phantom.patients import PatientParams, draw_patient
from tf_bimodal.schema import BINARY_LABELS


def _bmode_features(patient: PatientParams) -> list[float]:
    return [
        *(float(patient.shape_class == c) for c in SHAPE_CLASSES),
        *(float(patient.margin == c) for c in MARGINS),
        float(patient.orientation == "not_parallel"),
        *(float(patient.posterior == c) for c in POSTERIOR_FEATURES),
        *(float(patient.echo_pattern == c) for c in ECHO_PATTERNS),
        math.log(patient.aspect_ratio),
        math.log(patient.lesion_size),
        float(patient.echogenic_halo),
    ]


def _semode_features(patient: PatientParams) -> list[float]:
    return [
        math.log(patient.stiffness_ratio),
        *(float(patient.elasticity_score == s) for s in ELASTICITY_SCORES),
        patient.se_size_ratio,
    ]


def difficulty_table(
    config: PhantomConfig = PhantomConfig(), seed: int = 0, num_patients: int = 2000, num_folds: int = 5
) -> dict:
    """How separable the classes are from each modality's ground-truth parameters.

    Draws a large balanced cohort from the same class-conditional model as ``sample_patients``
    (no rendering) and reports the stratified ``num_folds``-fold cross-validated accuracy of a
    logistic regression on (a) the B-mode descriptors (shape, margin, orientation, posterior
    feature, echo pattern, aspect ratio, size, echogenic halo; one-hot where categorical), (b)
    the SE parameters (log stiffness ratio, elasticity score, stiff-area size ratio) and (c)
    both. These are upper bounds of what a model can read from the images. The model is
    calibrated so that SE > B-mode, both < 1 and their combination beats either, mirroring the
    paper (Table 2: SE-only 81.5 % vs B-only 72.3 % accuracy with VGG-16).

    Args:
        config: its ``seed`` is combined with ``seed``.
        seed: seed of the cohort and of the folds.
        num_patients: cohort size (half benign, half malignant).
        num_folds: cross-validation folds.

    Returns:
        ``{"bmode": acc, "semode": acc, "both": acc, "bmode_std": ..., "semode_std": ...,
        "both_std": ..., "num_patients": n, "num_folds": k}``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if num_patients < 2 * num_folds:
        raise ValueError(f"difficulty_table: need num_patients >= 2 * num_folds, got {num_patients} and {num_folds}")
    rng = np.random.default_rng([config.seed, 3, seed])
    labels = np.arange(num_patients) % 2
    patients = [draw_patient(rng, i, BINARY_LABELS[y], 1) for i, y in enumerate(labels)]
    bmode = np.array([_bmode_features(p) for p in patients])
    semode = np.array([_semode_features(p) for p in patients])
    folds = StratifiedKFold(num_folds, shuffle=True, random_state=seed)
    result = {}
    for name, features in (("bmode", bmode), ("semode", semode), ("both", np.hstack([bmode, semode]))):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        scores = cross_val_score(model, features, labels, cv=folds, scoring="accuracy")
        result[name] = float(scores.mean())
        result[f"{name}_std"] = float(scores.std())
    result["num_patients"] = int(num_patients)
    result["num_folds"] = int(num_folds)
    return result
