"""Phantom patients: the class-conditional lesion model and the cohort (paper §3.1).

Every patient's lesion is drawn once (BI-RADS descriptors, stiffness, Itoh score, outline) and
shown by each of its views (:mod:`tf_bimodal.data.phantom.render`). The cohort mirrors the
paper's: 37 benign and 36 malignant patients with 2-4 B/SE pairs each.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from tf_bimodal.config import PhantomConfig
from tf_bimodal.data.phantom.anatomy import FLUID_AMPLITUDE
from tf_bimodal.data.phantom.lexicon import ECHO_PATTERNS, POSTERIOR_FEATURES, SHAPE_CLASSES
from tf_bimodal.schema import BINARY_LABELS

# ---------------------------------------------------------------------------------------------
# Class-conditional lesion model (calibrated with ``difficulty_table``)
# ---------------------------------------------------------------------------------------------
# Each patient has two independent latent "malignancy looks": one for B-mode appearance and one
# for stiffness, each N(+-separation, 1) for malignant/benign. Every B-mode descriptor is an
# ordinal cut of the B-mode latent plus its own noise, so descriptors agree more often than not
# but atypical lesions exist in both classes (BI-RADS: many lesions are atypical). The
# separations set the information each modality carries.

_B_SEPARATION = 0.65
_SE_SEPARATION = 1.08

_CYST_FRACTION = 0.2  # share of benign lesions that are simple cysts
_COMPLEX_FRACTION = 0.08  # complex cystic-solid masses, either class

_SHAPE_NOISE, _SHAPE_CUTS = 0.9, (-0.55, -0.25, 0.25, 1.3)
_MARGIN_NOISE, _MARGIN_CUTS = 0.9, (-0.25, 0.75)  # circumscribed | indistinct | angular or microlobulated
_POSTERIOR_NOISE, _POSTERIOR_CUTS = 0.9, (-0.80, 0.45)
_ASPECT_NOISE, _ASPECT_LOG_MID, _ASPECT_LOG_SLOPE = 0.8, -0.22, 0.27
_ASPECT_RANGE = (0.33, 1.9)
_HALO_NOISE, _HALO_CUT = 1.0, 1.45
_ECHO_NOISE, _ECHO_CUT = 1.0, -0.3
# Equivalent diameter as a fraction of the image width: lognormal, wide (a few millimetres to
# most of the field), malignant masses slightly larger on average.
_SIZE_LOG_MID, _SIZE_LOG_SLOPE, _SIZE_LOG_SD = math.log(0.24), 0.15, 0.48
_CYST_SIZE_LOG_MID = math.log(0.16)
_SIZE_RANGE = (0.045, 0.8)

# Lesion-to-fat stiffness ratio: lognormal per class, medians ~2.1 (benign) and ~5.2
# (malignant), overlapping (strain ratio: benign mostly below ~3-4, malignant above).
_STIFFNESS_LOG_MID = math.log(3.3)
_STIFFNESS_LOG_SLOPE = 0.42
_STIFFNESS_RANGE = (0.8, 15.0)
# Elasticity score: ordinal cut of the log stiffness ratio plus reader noise.
_SCORE_NOISE = 0.25
_SCORE_LOG_CUTS = tuple(math.log(c) for c in (1.8, 2.7, 3.9, 6.0))

NUM_CONTOUR_POINTS = 256
"""Angles at which a lesion outline (``PatientParams.contour``) is sampled."""


@dataclasses.dataclass(frozen=True)
class PatientParams:
    """One phantom patient: the lesion every view of this patient shows.

    Attributes:
        index: position in the cohort; with the render seed it fixes each view's random draws.
        patient_id: ``phantom_p000``-style identifier (the unit of every split, paper §3.1).
        label: ``benign`` or ``malignant``.
        num_pairs: number of B/SE pairs (views) of this patient.
        shape_class, margin, orientation, posterior, echo_pattern: BI-RADS descriptors, see
            the module vocabularies.
        echogenic_halo: whether a hyperechoic rim surrounds the mass (suggests malignancy).
        aspect_ratio: lesion height / width before the view's rotation (> 1: taller than wide).
        lesion_size: equivalent diameter (diameter of the disc of equal area) as a fraction of
            the image width.
        center: lesion centre (lateral, depth) as fractions of the image side.
        tilt_deg: tilt of the lesion's long axis.
        echo_level: lesion echogenicity relative to glandular tissue (hypoechoic: < 1).
        elasticity_score: Itoh score 1-5.
        stiffness_ratio: lesion / fat Young's modulus, i.e. the fat-to-lesion strain ratio.
        se_size_ratio: size of the stiff region on SE relative to the B-mode lesion (> 1: the
            stiff halo of score 5, typical of the desmoplastic reaction of cancers).
        contour: lesion radius at ``NUM_CONTOUR_POINTS`` equally spaced angles, normalised
            to unit equivalent radius (shape and margin irregularities live here).
        anatomy_seed: seed of the patient's breast anatomy (layer thicknesses, fat lobules,
            look-alikes, depth setting, probe frequency).
        num_distractors: lesion look-alikes (``DISTRACTOR_KINDS``) in this breast; a view
            shows those that fall in its field and clear of the lesion.
    """

    index: int
    patient_id: str
    label: str
    num_pairs: int
    shape_class: str
    margin: str
    orientation: str
    posterior: str
    echo_pattern: str
    echogenic_halo: bool
    aspect_ratio: float
    lesion_size: float
    center: tuple[float, float]
    tilt_deg: float
    echo_level: float
    elasticity_score: int
    stiffness_ratio: float
    se_size_ratio: float
    contour: tuple[float, ...] = dataclasses.field(repr=False)
    anatomy_seed: int = 0
    num_distractors: int = 0

    def ground_truth(self, lesion_area_px: int = 0) -> dict:
        """The ``ground_truth`` dict of an example of this patient (see ``GROUND_TRUTH_KEYS``)."""
        return {
            "shape_class": self.shape_class,
            "margin": self.margin,
            "orientation": self.orientation,
            "posterior": self.posterior,
            "echo_pattern": self.echo_pattern,
            "echogenic_halo": int(self.echogenic_halo),
            "aspect_ratio": float(self.aspect_ratio),
            "elasticity_score": int(self.elasticity_score),
            "stiffness_ratio": float(self.stiffness_ratio),
            "se_size_ratio": float(self.se_size_ratio),
            "lesion_area_px": int(lesion_area_px),
        }


# ---------------------------------------------------------------------------------------------
# Patient sampling
# ---------------------------------------------------------------------------------------------


def _ordinal(value: float, cuts) -> int:
    return int(np.searchsorted(cuts, value))


def _squash(value: float, low: float, high: float) -> float:
    """Map ``value`` smoothly into (low, high): identity near the middle, no pile-up at a bound."""
    middle, half = 0.5 * (low + high), 0.5 * (high - low)
    return middle + half * math.tanh((value - middle) / half)


def _contour(rng: np.random.Generator, shape_class: str, margin: str) -> np.ndarray:
    """Lesion radius versus angle, unit equivalent radius.

    Shapes follow BI-RADS: oval/round are smooth; lobulated has 3-5 gentle lobes; irregular has
    broad random undulations; spiculated adds thin radiating spicules. Margins modify the
    outline: angular replaces it by a polygon with sharp corners, microlobulated adds many
    small scallops, indistinct adds fine ripples (the blur is added when rendering).
    """
    theta = np.linspace(0.0, 2.0 * np.pi, NUM_CONTOUR_POINTS, endpoint=False)
    radius = np.ones_like(theta)
    for k in (2, 3):
        radius += rng.uniform(0.0, 0.04) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    if shape_class == "lobulated":
        lobes = int(rng.integers(3, 6))
        depth = rng.uniform(0.07, 0.14)
        # |cos| gives rounded lobes with notches between them, like a macrolobulated mass.
        radius += depth * (2.0 * np.abs(np.cos(0.5 * lobes * theta + rng.uniform(0, np.pi))) - 1.2)
    elif shape_class in ("irregular", "spiculated"):
        scale = 1.0 if shape_class == "irregular" else 0.6
        for k in range(2, 10):
            radius += scale * rng.normal(0.0, 0.16 / k**0.8) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    if margin == "angular":
        num_vertices = int(rng.integers(5, 9))
        angles = np.sort(
            (np.arange(num_vertices) + rng.uniform(-0.3, 0.3, num_vertices)) * 2 * np.pi / num_vertices
        )
        vertex_radii = np.interp(angles, theta, radius, period=2 * np.pi) * rng.uniform(0.9, 1.25, num_vertices)
        radius = _polygon_radius(theta, angles, vertex_radii)
    elif margin == "microlobulated":
        scallops = int(rng.integers(12, 22))
        depth = rng.uniform(0.03, 0.06) * (1.0 + 0.5 * np.cos(theta + rng.uniform(0, 2 * np.pi)))
        radius += depth * (2.0 * np.abs(np.cos(0.5 * scallops * theta + rng.uniform(0, np.pi))) - 1.2)
    elif margin == "indistinct":
        for k in range(10, 25, 2):
            radius += rng.normal(0.0, 0.012) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    if shape_class == "spiculated":
        num_spicules = int(rng.integers(6, 15))
        for angle in rng.uniform(0, 2 * np.pi, num_spicules):
            offset = np.angle(np.exp(1j * (theta - angle)))
            width = rng.uniform(0.045, 0.08)
            radius += rng.uniform(0.2, 0.55) * np.exp(-0.5 * (offset / width) ** 2)
    radius = np.maximum(radius, 0.3)
    return radius / np.sqrt(np.mean(radius**2))  # area of the polar outline = pi * mean(r^2)


def _polygon_radius(theta, vertex_angles, vertex_radii) -> np.ndarray:
    """Polar radius of the polygon with the given vertices, at angles ``theta``."""
    a1 = vertex_angles
    a2 = np.roll(vertex_angles, -1)
    a2 = np.where(a2 <= a1, a2 + 2 * np.pi, a2)
    r1, r2 = vertex_radii, np.roll(vertex_radii, -1)
    # Which edge each angle falls on (angles measured from the first vertex, wrapped).
    edge = (np.searchsorted(vertex_angles, theta, side="right") - 1) % len(vertex_angles)
    t = np.where(theta < a1[edge], theta + 2 * np.pi, theta)
    numerator = r1[edge] * r2[edge] * np.sin(a2[edge] - a1[edge])
    denominator = r1[edge] * np.sin(t - a1[edge]) + r2[edge] * np.sin(a2[edge] - t)
    return numerator / denominator


class _BmodeLook(NamedTuple):
    """The B-mode descriptors of one lesion, before the aspect ratio and size are squashed."""

    shape_class: str
    margin: str
    log_aspect: float
    posterior: str
    echogenic_halo: bool
    echo_pattern: str
    echo_level: float
    log_size: float


def _cyst_look(rng: np.random.Generator) -> _BmodeLook:
    """Simple cyst: oval or round, circumscribed, anechoic, posterior enhancement."""
    shape_class = "round" if rng.random() < 0.35 else "oval"
    margin = "circumscribed"
    log_aspect = rng.normal(0.0, 0.05) if shape_class == "round" else rng.normal(-0.35, 0.15)
    posterior = "enhancement" if rng.random() < 0.85 else "none"
    echogenic_halo = False
    echo_pattern = "anechoic"
    echo_level = float(rng.uniform(0.6, 1.4) * FLUID_AMPLITUDE)
    log_size = _CYST_SIZE_LOG_MID + _SIZE_LOG_SD * rng.standard_normal()
    return _BmodeLook(shape_class, margin, log_aspect, posterior, echogenic_halo, echo_pattern, echo_level, log_size)


def _solid_look(rng: np.random.Generator, b_latent: float, is_complex: bool) -> _BmodeLook:
    """Solid mass: every descriptor an ordinal cut of the B-mode latent plus its own noise."""

    def b_look(noise):
        return b_latent + noise * rng.standard_normal()

    shape_class = SHAPE_CLASSES[_ordinal(b_look(_SHAPE_NOISE), _SHAPE_CUTS)]
    margin_level = _ordinal(b_look(_MARGIN_NOISE), _MARGIN_CUTS)
    margin = ("circumscribed", "indistinct", "angular" if rng.random() < 0.5 else "microlobulated")[margin_level]
    # Keep descriptors mutually consistent: spicules make a spiculated margin; an irregular
    # mass is not circumscribed; an oval or round mass has no angular corners.
    if shape_class == "spiculated":
        margin = "spiculated"
    elif shape_class == "irregular" and margin == "circumscribed":
        margin = "indistinct"
    elif shape_class in ("oval", "round") and margin == "angular":
        margin = "microlobulated"
    if shape_class == "round":
        log_aspect = rng.normal(0.0, 0.05)
    else:
        log_aspect = _ASPECT_LOG_MID + _ASPECT_LOG_SLOPE * b_look(_ASPECT_NOISE)
    posterior = POSTERIOR_FEATURES[_ordinal(b_look(_POSTERIOR_NOISE), _POSTERIOR_CUTS)]
    echogenic_halo = bool(b_look(_HALO_NOISE) > _HALO_CUT)
    if is_complex:
        echo_pattern = "complex"
    else:
        echo_pattern = ECHO_PATTERNS[1 + int(b_look(_ECHO_NOISE) > _ECHO_CUT)]
    # From markedly hypoechoic to nearly isoechoic with the glandular tissue (about -20 to
    # -1 dB), so that some lesions are hard to tell from fat lobules and their boundary is
    # uncertain; posterior enhancement goes with the darker, more fluid-like ones.
    echo_level = float(np.exp(rng.uniform(np.log(0.1), np.log(0.9))))
    if posterior == "enhancement":
        echo_level *= 0.7
    log_size = _SIZE_LOG_MID + _SIZE_LOG_SLOPE * b_latent + _SIZE_LOG_SD * rng.standard_normal()
    return _BmodeLook(shape_class, margin, log_aspect, posterior, echogenic_halo, echo_pattern, echo_level, log_size)


def _stiffness(rng: np.random.Generator, se_latent: float) -> tuple[float, int, float]:
    """``(stiffness_ratio, elasticity_score, se_size_ratio)`` from the stiffness latent."""
    log_ratio = _STIFFNESS_LOG_MID + _STIFFNESS_LOG_SLOPE * se_latent
    stiffness_ratio = float(np.clip(np.exp(log_ratio), *_STIFFNESS_RANGE))
    score = 1 + _ordinal(math.log(stiffness_ratio) + _SCORE_NOISE * rng.standard_normal(), _SCORE_LOG_CUTS)
    if score == 5:
        se_size_ratio = rng.uniform(1.25, 1.7)  # stiff desmoplastic halo beyond the B-mode mass
    elif score == 4:
        se_size_ratio = rng.uniform(0.95, 1.15)
    else:
        se_size_ratio = rng.uniform(0.8, 1.0)  # benign: same size or smaller on SE
    return stiffness_ratio, score, se_size_ratio


def draw_patient(
    rng: np.random.Generator,
    index: int,
    label: str,
    num_pairs: int,
    id_width: int = 3,
    max_distractors: int = PhantomConfig.max_distractors,
) -> PatientParams:
    """Draw one patient's lesion from the class-conditional model (no rendering).

    Two independent latents, one for the B-mode look and one for stiffness, each
    N(+-separation, 1) for malignant/benign, feed the BI-RADS descriptors and the Itoh score.

    Args:
        rng: the patient's own random stream (``sample_patients``: ``(seed, 1, index)``).
        index: position in the cohort.
        label: ``benign`` or ``malignant``.
        num_pairs: B/SE pairs of this patient.
        id_width: digits of the patient id.
        max_distractors: the breast holds 0 to this many look-alikes.
    """
    sign = 1.0 if label == "malignant" else -1.0
    b_latent = sign * _B_SEPARATION + rng.standard_normal()
    se_latent = sign * _SE_SEPARATION + rng.standard_normal()
    kind = rng.random()
    is_cyst = label == "benign" and kind < _CYST_FRACTION
    is_complex = not is_cyst and kind > 1.0 - _COMPLEX_FRACTION
    look = _cyst_look(rng) if is_cyst else _solid_look(rng, b_latent, is_complex)
    # Squash smoothly into the plausible range (no pile-up of flat or tall lesions at a bound).
    aspect_ratio = math.exp(_squash(look.log_aspect, math.log(_ASPECT_RANGE[0]), math.log(_ASPECT_RANGE[1])))
    orientation = "not_parallel" if aspect_ratio > 1.0 else "parallel"
    lesion_size = math.exp(_squash(look.log_size, math.log(_SIZE_RANGE[0]), math.log(_SIZE_RANGE[1])))
    stiffness_ratio, score, se_size_ratio = _stiffness(rng, se_latent)

    tilt_sd = 8.0 if orientation == "parallel" else 14.0
    return PatientParams(
        index=index,
        patient_id=f"phantom_p{index:0{id_width}d}",
        label=label,
        num_pairs=int(num_pairs),
        shape_class=look.shape_class,
        margin=look.margin,
        orientation=orientation,
        posterior=look.posterior,
        echo_pattern=look.echo_pattern,
        echogenic_halo=look.echogenic_halo,
        aspect_ratio=round(aspect_ratio, 4),
        lesion_size=round(lesion_size, 4),
        center=(float(rng.uniform(0.25, 0.75)), float(rng.uniform(0.2, 0.5))),
        tilt_deg=float(rng.normal(0.0, tilt_sd)),
        echo_level=look.echo_level,
        elasticity_score=int(score),
        stiffness_ratio=round(stiffness_ratio, 4),
        se_size_ratio=round(float(se_size_ratio), 4),
        contour=tuple(float(r) for r in _contour(rng, look.shape_class, look.margin)),
        anatomy_seed=int(rng.integers(0, 2**31 - 1)),
        num_distractors=int(rng.integers(0, max_distractors + 1)),
    )


def sample_patients(config: PhantomConfig = PhantomConfig()) -> list[PatientParams]:
    """Draw the phantom cohort: ``num_benign_patients + num_malignant_patients`` patients.

    Mirrors the paper's cohort (§3.1: 37 benign and 36 malignant patients with 2-4 B/SE pairs
    each). Labels are shuffled over patient ids; every patient's parameters come from its own
    random stream ``(config.seed, index)``, so the result is deterministic in ``config``.

    Args:
        config: the phantom settings.

    Returns:
        One ``PatientParams`` per patient, in patient-id order.
    """
    num_patients = config.num_benign_patients + config.num_malignant_patients
    labels = np.array(
        [BINARY_LABELS[0]] * config.num_benign_patients + [BINARY_LABELS[1]] * config.num_malignant_patients
    )
    np.random.default_rng([config.seed, 0]).shuffle(labels)
    id_width = max(3, len(str(num_patients - 1)))
    patients = []
    for index, label in enumerate(labels):
        rng = np.random.default_rng([config.seed, 1, index])
        num_pairs = rng.integers(config.min_pairs_per_patient, config.max_pairs_per_patient + 1)
        patients.append(draw_patient(rng, index, str(label), num_pairs, id_width, config.max_distractors))
    return patients
