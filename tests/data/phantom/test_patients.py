"""Phantom patients: the cohort, its ids and pairs, and the class-conditional lesion model."""

from __future__ import annotations

import numpy as np

from tf_bimodal.config import PhantomConfig
from tf_bimodal.data import phantom

from helpers import small_phantom

SMALL = small_phantom()


def test_sample_patients_counts_ids_and_pairs(small_patients):
    labels = [p.label for p in small_patients]
    assert labels.count("benign") == 3 and labels.count("malignant") == 3
    assert [p.patient_id for p in small_patients] == [f"phantom_p{i:03d}" for i in range(6)]
    assert [p.index for p in small_patients] == list(range(6))
    assert all(SMALL.min_pairs_per_patient <= p.num_pairs <= SMALL.max_pairs_per_patient for p in small_patients)


def test_default_cohort_mirrors_paper():
    patients = phantom.sample_patients(PhantomConfig())
    assert sum(p.label == "benign" for p in patients) == 37
    assert sum(p.label == "malignant" for p in patients) == 36
    assert {p.num_pairs for p in patients} == {2, 3, 4}
    assert 180 <= sum(p.num_pairs for p in patients) <= 250  # paper: 212 pairs


def test_sample_patients_deterministic(small_patients):
    assert phantom.sample_patients(SMALL) == small_patients
    other = phantom.sample_patients(PhantomConfig(num_benign_patients=3, num_malignant_patients=3, seed=8))
    assert [p.stiffness_ratio for p in other] != [p.stiffness_ratio for p in small_patients]


def test_patient_ids_widen_for_large_cohorts():
    patients = phantom.sample_patients(
        PhantomConfig(num_benign_patients=600, num_malignant_patients=500, min_pairs_per_patient=1, max_pairs_per_patient=1)
    )
    assert patients[0].patient_id == "phantom_p0000" and patients[-1].patient_id == "phantom_p1099"


def test_class_conditional_statistics(cohort):
    benign = [p for p in cohort if p.label == "benign"]
    malignant = [p for p in cohort if p.label == "malignant"]

    def mean(patients, value):
        return float(np.mean([value(p) for p in patients]))

    assert mean(malignant, lambda p: np.log(p.stiffness_ratio)) > mean(benign, lambda p: np.log(p.stiffness_ratio)) + 0.5
    assert mean(malignant, lambda p: p.elasticity_score) > mean(benign, lambda p: p.elasticity_score) + 1.0
    assert mean(malignant, lambda p: p.aspect_ratio > 1) > mean(benign, lambda p: p.aspect_ratio > 1) + 0.2
    assert mean(malignant, lambda p: p.posterior == "shadowing") > mean(benign, lambda p: p.posterior == "shadowing")
    assert mean(benign, lambda p: p.shape_class == "oval") > 0.4
    assert mean(benign, lambda p: p.elasticity_score <= 3) > 0.75
    assert mean(malignant, lambda p: p.elasticity_score >= 4) > 0.6
    # The classes overlap: atypical lesions exist in both.
    assert any(p.shape_class in ("irregular", "lobulated") for p in benign)
    assert any(p.shape_class == "oval" for p in malignant)
    assert any(p.elasticity_score >= 4 for p in benign) and any(p.elasticity_score <= 2 for p in malignant)
    # Simple cysts (anechoic) are benign; complex masses occur in both classes.
    assert 0.1 < mean(benign, lambda p: p.echo_pattern == "anechoic") < 0.35
    assert not any(p.echo_pattern == "anechoic" for p in malignant)
    assert any(p.echo_pattern == "complex" for p in benign) and any(p.echo_pattern == "complex" for p in malignant)
    assert mean(malignant, lambda p: p.margin != "circumscribed") > mean(benign, lambda p: p.margin != "circumscribed") + 0.3
    assert {p.margin for p in malignant} == set(phantom.MARGINS)
    # B-mode cues are probabilistic: every non-circumscribed margin also occurs in benign lesions.
    assert {p.margin for p in benign} == set(phantom.MARGINS)
    # Score 5 means a stiff area larger than the B-mode lesion.
    assert all(p.se_size_ratio > 1.2 for p in cohort if p.elasticity_score == 5)
    assert all(p.se_size_ratio <= 1.0 for p in cohort if p.elasticity_score <= 3)


def test_lesion_sizes_span_small_to_large(cohort):
    sizes = np.array([p.lesion_size for p in cohort])
    assert sizes.min() < 0.08 and sizes.max() > 0.45
    assert np.percentile(sizes, 90) / np.percentile(sizes, 10) > 2.5
