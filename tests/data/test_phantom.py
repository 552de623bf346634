"""Tests of the synthetic bimodal phantom (tf_bimodal.data.phantom): small images, few patients."""

from __future__ import annotations

import dataclasses
import re

import cv2
import numpy as np
import pytest

from tf_bimodal.config import PhantomConfig
from tf_bimodal.data import phantom
from tf_bimodal.schema import EXAMPLE_KEYS

SMALL = PhantomConfig(num_benign_patients=3, num_malignant_patients=3, image_size=64, seed=7)


@pytest.fixture(scope="module")
def small_patients():
    return phantom.sample_patients(SMALL)


@pytest.fixture(scope="module")
def cohort():
    """A larger cohort of parameters only (no rendering) for class statistics."""
    return phantom.sample_patients(PhantomConfig(num_benign_patients=200, num_malignant_patients=200, seed=1))


def _ring(mask: np.ndarray, inner: int, outer: int) -> np.ndarray:
    """Pixels between ``inner`` and ``outer`` pixels away from the mask."""
    def grow(radius):
        return cv2.dilate(mask.astype(np.uint8), np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)).astype(bool)

    return grow(outer) & ~grow(inner)


# --- patients ----------------------------------------------------------------------------------


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


# --- rendering ---------------------------------------------------------------------------------


@pytest.mark.parametrize("image_size", [32, 64, 96])
def test_render_pair_schema_shapes_and_ranges(small_patients, image_size):
    for patient in small_patients:
        example = phantom.render_pair(patient, 1, image_size, seed=3, return_strain=True)
        assert set(EXAMPLE_KEYS) <= set(example)
        assert example["image_id"] == f"{patient.patient_id}_v1"
        assert example["patient_id"] == patient.patient_id and example["label"] == patient.label
        assert example["bmode"].shape == (image_size, image_size, 1) and example["bmode"].dtype == np.uint8
        assert example["semode"].shape == (image_size, image_size, 3) and example["semode"].dtype == np.uint8
        assert example["mask"].shape == (image_size, image_size, 1) and example["mask"].dtype == np.uint8
        assert example["has_semode"] is True and example["has_mask"] is True
        assert example["strain"].shape == (image_size, image_size) and example["strain"].dtype == np.float32
        assert 0.0 <= example["strain"].min() and example["strain"].max() <= 1.0
        # The grey image uses a real dynamic range, not a few levels.
        assert example["bmode"].std() > 15 and len(np.unique(example["bmode"])) > 50


def test_mask_binary_nonempty_inside_image_and_roi(small_patients):
    size = 64
    for patient in small_patients:
        for view in range(patient.num_pairs):
            example = phantom.render_pair(patient, view, size, seed=0, return_strain=True)
            mask = example["mask"][:, :, 0]
            assert set(np.unique(mask)) == {0, 1}
            rows, cols = np.nonzero(mask)
            # Fully inside: never touching the image border.
            assert rows.min() > 0 and cols.min() > 0 and rows.max() < size - 1 and cols.max() < size - 1
            top, left, bottom, right = example["se_roi"]
            assert top <= rows.min() and rows.max() < bottom and left <= cols.min() and cols.max() < right
            assert example["ground_truth"]["lesion_area_px"] == int(mask.sum())


def test_semode_colour_only_inside_roi(small_patients):
    example = phantom.render_pair(
        small_patients[0], 0, 96, seed=0, return_strain=True, annotation_fraction=1.0, return_layers=True
    )
    semode = example["semode"].astype(int)
    grey = example["bmode_unmarked"][:, :, 0].astype(int)  # SE's underlay carries no operator marks
    top, left, bottom, right = example["se_roi"]
    outside = np.ones(grey.shape, bool)
    outside[top - 1 : bottom + 1, left - 1 : right + 1] = False  # ROI and its frame
    for channel in range(3):
        np.testing.assert_array_equal(semode[..., channel][outside], grey[outside])
    inside = semode[top:bottom, left:right]
    assert np.abs(inside[..., 0] - inside[..., 2]).mean() > 20  # coloured, not grey


def test_colour_map_inverts_to_strain(small_patients):
    """The ROI colour is the elastography scale of ``strain`` blended over the B-mode."""
    example = phantom.render_pair(small_patients[1], 0, 64, seed=0, return_strain=True, return_layers=True)
    top, left, bottom, right = example["se_roi"]
    grey = example["bmode_unmarked"][top:bottom, left:right].astype(np.float32)
    shown = example["semode"][top:bottom, left:right].astype(np.float32)
    colour = (shown - (1 - phantom._SE_ALPHA) * grey) / phantom._SE_ALPHA
    distances = ((colour[:, :, None, :] - phantom.ELASTO_LUT[None, None].astype(np.float32)) ** 2).sum(-1)
    recovered = distances.argmin(-1) / 255.0
    error = np.abs(recovered - example["strain"][top:bottom, left:right])
    assert np.median(error) < 0.02 and np.mean(error) < 0.05


def test_strain_to_rgb_scale():
    blue, green, red = phantom.strain_to_rgb(np.array([0.0, 0.5, 1.0]))
    assert blue[2] > 150 and blue[0] < 50  # hard
    assert green[1] > 150 and green[0] < 50 and green[2] < 50  # average
    assert red[0] > 150 and red[2] < 50  # soft


def test_render_pair_deterministic_and_seeded(small_patients):
    patient = small_patients[2]
    first = phantom.render_pair(patient, 0, 64, seed=5)
    second = phantom.render_pair(patient, 0, 64, seed=5)
    for key in ("bmode", "semode", "mask"):
        np.testing.assert_array_equal(first[key], second[key])
    assert first["ground_truth"] == second["ground_truth"]
    reseeded = phantom.render_pair(patient, 0, 64, seed=6)
    assert not np.array_equal(first["bmode"], reseeded["bmode"])
    assert not np.array_equal(first["semode"], reseeded["semode"])


def test_views_share_ground_truth_but_differ(small_patients):
    patient = next(p for p in small_patients if p.num_pairs >= 2)
    views = [phantom.render_pair(patient, v, 64, seed=0) for v in range(2)]
    truths = [{k: v for k, v in view["ground_truth"].items() if k != "lesion_area_px"} for view in views]
    assert truths[0] == truths[1]
    assert views[0]["ground_truth"]["elasticity_score"] == patient.elasticity_score
    for key in ("bmode", "semode", "mask"):
        assert not np.array_equal(views[0][key], views[1][key])
    assert views[0]["image_id"] != views[1]["image_id"]


def test_ground_truth_keys_types_and_vocabularies(small_patients):
    truth = phantom.render_pair(small_patients[0], 0, 64, seed=0)["ground_truth"]
    assert tuple(truth) == phantom.GROUND_TRUTH_KEYS
    for key, value in truth.items():
        assert type(value) is phantom.GROUND_TRUTH_TYPES[key], key
        if key in phantom.GROUND_TRUTH_VOCABULARIES:
            assert value in phantom.GROUND_TRUTH_VOCABULARIES[key], key
    assert (truth["orientation"] == "not_parallel") == (truth["aspect_ratio"] > 1.0)


def test_iter_phantom_order_and_count(small_patients):
    examples = list(phantom.iter_phantom(SMALL))
    expected = [f"{p.patient_id}_v{v}" for p in small_patients for v in range(p.num_pairs)]
    assert [e["image_id"] for e in examples] == expected
    assert all(e["bmode"].shape == (SMALL.image_size, SMALL.image_size, 1) for e in examples)
    np.testing.assert_array_equal(examples[0]["semode"], phantom.render_pair(small_patients[0], 0, 64, SMALL.seed)["semode"])


@pytest.mark.parametrize(
    "kwargs", [{"image_size": 16}, {"view_index": -1}, {"annotation_fraction": -0.1}, {"annotation_fraction": 1.5}]
)
def test_render_pair_rejects_bad_arguments(small_patients, kwargs):
    arguments = {"view_index": 0, "image_size": 64, "seed": 0, **kwargs}
    with pytest.raises(ValueError):
        phantom.render_pair(small_patients[0], **arguments)


# --- class-conditional content -------------------------------------------------------------


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


def test_malignant_lesions_look_stiffer_on_semode():
    patients = phantom.sample_patients(PhantomConfig(num_benign_patients=6, num_malignant_patients=6, seed=11))
    blueness = {"benign": [], "malignant": []}
    for patient in patients:
        example = phantom.render_pair(patient, 0, 64, seed=11)
        inside = example["mask"][:, :, 0].astype(bool)
        semode = example["semode"].astype(np.float32)
        blueness[patient.label].append(float((semode[..., 2] - semode[..., 0])[inside].mean()))
    assert np.mean(blueness["malignant"]) > np.mean(blueness["benign"]) + 30


def test_lesions_are_hypoechoic_some_nearly_isoechoic():
    """Lesions are darker than the tissue around them on average, from markedly (cysts) to
    hardly at all (nearly isoechoic: low contrast, as in clinical images)."""
    patients = phantom.sample_patients(PhantomConfig(num_benign_patients=10, num_malignant_patients=10, seed=2))
    contrasts = []
    for patient in patients:
        example = phantom.render_pair(patient, 0, 96, seed=2, return_layers=True)
        mask = example["mask"][:, :, 0].astype(bool)
        bmode = example["bmode_unmarked"][:, :, 0].astype(np.float32)
        contrasts.append(bmode[_ring(mask, 2, 5)].mean() - bmode[mask].mean())
    contrasts = np.array(contrasts)
    assert np.median(contrasts) > 15 and np.mean(contrasts > 0) >= 0.8
    assert contrasts.max() > 50  # conspicuous lesions (cysts, dark masses)
    assert contrasts.min() < 12  # and lesions hard to tell from their surroundings


def test_speckle_is_finer_axially_than_laterally(small_patients):
    """The PSF is narrower along depth than across, so speckle grains are wider than tall."""
    bmode = phantom.render_pair(small_patients[0], 0, 96, seed=0)["bmode"][:, :, 0].astype(np.float32)
    detail = bmode - cv2.GaussianBlur(bmode, (0, 0), 4)

    def correlation(a, b):
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    axial = correlation(detail[:-2, :], detail[2:, :])
    lateral = correlation(detail[:, :-2], detail[:, 2:])
    assert lateral > axial + 0.1


def test_difficulty_table_calibration():
    table = phantom.difficulty_table(num_patients=600, seed=0)
    assert table["semode"] > table["bmode"] + 0.03
    assert table["both"] > max(table["bmode"], table["semode"])
    assert 0.6 < table["bmode"] < 0.82 and table["semode"] < 0.95 and table["both"] < 1.0
    assert table["num_patients"] == 600


# --- clinical realism: what makes real images hard ---------------------------------------------


def test_operator_marks_on_some_images_never_in_the_mask():
    config = PhantomConfig(num_benign_patients=8, num_malignant_patients=8, seed=4)
    marked_views = 0
    for patient in phantom.sample_patients(config):
        plain = phantom.render_pair(patient, 0, 96, seed=4, annotation_fraction=0.0, return_layers=True)
        marked = phantom.render_pair(patient, 0, 96, seed=4, annotation_fraction=1.0, return_layers=True)
        default = phantom.render_pair(patient, 0, 96, seed=4, annotation_fraction=config.annotation_fraction,
                                      return_layers=True)
        marked_views += int(default["annotations"].any())
        # Marks are burnt into the B-mode only: the mask, the SE image and everything else
        # stay exactly as without them.
        assert not plain["annotations"].any()
        np.testing.assert_array_equal(plain["bmode"], plain["bmode_unmarked"])
        np.testing.assert_array_equal(plain["bmode_unmarked"], marked["bmode_unmarked"])
        np.testing.assert_array_equal(plain["mask"], marked["mask"])
        np.testing.assert_array_equal(plain["semode"], marked["semode"])
        marks = marked["annotations"].astype(bool)
        assert marks.any()
        changed = marked["bmode"][:, :, 0] != plain["bmode"][:, :, 0]
        assert not (changed & ~marks).any()
        # Markers sit outside the outline; only the thin dotted lines cross the lesion.
        mask = marked["mask"][:, :, 0].astype(bool)
        assert (marks & mask).sum() <= 0.2 * mask.sum()
    assert 0 < marked_views < 16  # some images carry marks, others none


def test_look_alikes_are_dark_and_have_no_mask():
    config = PhantomConfig(num_benign_patients=8, num_malignant_patients=8, seed=4, max_distractors=6)
    with_look_alikes = 0
    for patient in phantom.sample_patients(config):
        example = phantom.render_pair(patient, 0, 96, seed=4, return_layers=True)
        footprint = example["distractors"].astype(bool)
        assert not (footprint & example["mask"][:, :, 0].astype(bool)).any()
        if footprint.sum() > 20:
            with_look_alikes += 1
            bmode = example["bmode_unmarked"][:, :, 0].astype(np.float32)
            assert bmode[footprint].mean() < bmode[_ring(footprint, 2, 5)].mean()  # hypoechoic, like a lesion
    assert with_look_alikes >= 4
    clean = phantom.sample_patients(dataclasses.replace(config, max_distractors=0))
    assert all(p.num_distractors == 0 for p in clean)
    assert not phantom.render_pair(clean[0], 0, 96, seed=4, return_layers=True)["distractors"].any()


def test_posterior_shadowing_darkens_below_malignant_lesions():
    """Echoes below the lesion minus echoes beside them at the same depth."""
    patients = phantom.sample_patients(PhantomConfig(num_benign_patients=12, num_malignant_patients=12, seed=5))
    by_label, by_feature = {"benign": [], "malignant": []}, {}
    for patient in patients:
        example = phantom.render_pair(patient, 0, 96, seed=5, return_layers=True)
        mask = example["mask"][:, :, 0].astype(bool)
        bmode = example["bmode_unmarked"][:, :, 0].astype(np.float32)
        rows, cols = np.nonzero(mask)
        left, right = cols.min(), cols.max() + 1
        width, band = right - left, slice(rows.max() + 2, rows.max() + 2 + max(4, rows.max() - rows.min()))
        beside = np.concatenate([bmode[band, max(0, left - width) : left].ravel(), bmode[band, right : right + width].ravel()])
        difference = float(bmode[band, left:right].mean() - beside.mean())
        by_label[patient.label].append(difference)
        by_feature.setdefault(patient.posterior, []).append(difference)
    assert np.mean(by_label["malignant"]) < np.mean(by_label["benign"]) - 15
    assert np.mean(by_feature["shadowing"]) < -15 and np.mean(by_feature["enhancement"]) > 5


def test_lesion_sizes_span_small_to_large(cohort):
    sizes = np.array([p.lesion_size for p in cohort])
    assert sizes.min() < 0.08 and sizes.max() > 0.45
    assert np.percentile(sizes, 90) / np.percentile(sizes, 10) > 2.5


def test_gain_and_depth_vary_between_images():
    patients = phantom.sample_patients(PhantomConfig(num_benign_patients=6, num_malignant_patients=6, seed=3))
    means = [phantom.render_pair(p, v, 64, seed=3)["bmode"].mean() for p in patients for v in range(2)]
    assert np.std(means) > 12 and max(means) - min(means) > 50


def test_cysts_show_layered_strain_artefact(cohort):
    cyst = next(p for p in cohort if p.echo_pattern == "anechoic")
    example = phantom.render_pair(cyst, 0, 96, seed=0, return_strain=True)
    mask = example["mask"][:, :, 0].astype(bool)
    rows = np.nonzero(mask.any(axis=1))[0]
    third = max(1, len(rows) // 3)
    top = example["strain"][rows[:third]][mask[rows[:third]]].mean()
    bottom = example["strain"][rows[-third:]][mask[rows[-third:]]].mean()
    assert bottom - top > 0.25  # blue (top) - green - red (bottom)


# --- configuration and figure ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_benign_patients": -1},
        {"num_benign_patients": 0, "num_malignant_patients": 0},
        {"min_pairs_per_patient": 0},
        {"min_pairs_per_patient": 3, "max_pairs_per_patient": 2},
        {"image_size": 16},
        {"annotation_fraction": -0.1},
        {"annotation_fraction": 1.01},
        {"max_distractors": -1},
    ],
)
def test_phantom_config_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        PhantomConfig(**kwargs)


def test_save_phantom_montage(tmp_path):
    from tf_bimodal.evaluation.figures import save_phantom_montage

    path = tmp_path / "montage.png"
    save_phantom_montage(path, SMALL, num_per_class=1, image_size=64)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        save_phantom_montage(tmp_path / "none.png", SMALL, num_per_class=0)


def test_public_names():
    assert re.fullmatch(r"phantom_p\d{3}_v\d", phantom.render_pair(phantom.sample_patients(SMALL)[0], 0, 32, 0)["image_id"])
    for name in ("sample_patients", "render_pair", "iter_phantom", "difficulty_table", "PatientParams"):
        assert hasattr(phantom, name)
