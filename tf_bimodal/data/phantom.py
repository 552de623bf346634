"""Synthetic bimodal breast ultrasound phantom: paired B-mode and strain-elastography images.

The package's default data source, so that every command runs offline. It mimics the paper's
cohort (Misra et al. 2022, §3.1: 73 patients, 37 benign and 36 malignant, 212 B/SE pairs from a
linear 18-5 MHz probe, images resized to 336 x 336) and follows textbook domain knowledge (the
ACR BI-RADS ultrasound lexicon, the Itoh et al. 2006 elasticity score, the WFUMB breast
elastography guidelines):

* **B-mode.** Speckle is formed physically: a complex Gaussian scatterer field whose density
  and amplitude depend on the tissue, convolved with a point-spread function (Gaussian-windowed
  carrier along depth, wider Gaussian across, so axial resolution is finer than lateral),
  envelope-detected (magnitude of the analytic signal) and log-compressed to a ~50 dB dynamic
  range. Layers from the skin down: skin line, subcutaneous fat lobules with echogenic septa,
  heterogeneous fibroglandular tissue, retromammary fat, striated pectoral muscle and sometimes
  a rib with its shadow. Depth attenuation is only partly corrected by time-gain compensation.
  Lesions are hypoechoic; their BI-RADS descriptors (shape, margin, orientation, echo pattern,
  posterior feature, echogenic halo) are drawn per class from overlapping distributions.
* **SE-mode.** A Young's-modulus map (tissue-specific background, the lesion with a class-
  dependent lesion-to-fat stiffness ratio and an Itoh 5-point elasticity pattern) is turned into
  strain (~ stress / stiffness, stress decaying with depth), blurred as displacement tracking
  does, normalised to the ROI (strain images are relative), corrupted by decorrelation noise
  that grows in deep and dark regions, and shown like a scanner: a translucent
  blue (hard) - green (average) - red (soft) map over the B-mode inside a rectangular ROI.
* **Mask.** The lesion outline a radiologist would trace on B-mode.

Every image of one patient shows the same lesion (shape, stiffness, score) seen in a different
view: small shift/rotation/scale, new speckle, another probe pressure and noise draw.

The class-conditional distributions are calibrated (``difficulty_table``) so that neither
modality separates the classes perfectly and SE carries more information than B-mode, as in
the paper (Table 2: SE-only VGG-16 81.5 % vs B-only 72.3 % accuracy).

Example:
    >>> from tf_bimodal.config import PhantomConfig
    >>> from tf_bimodal.data import phantom
    >>> patients = phantom.sample_patients(PhantomConfig(num_benign_patients=1,
    ...                                                  num_malignant_patients=1))
    >>> example = phantom.render_pair(patients[0], view_index=0, image_size=128, seed=0)
    >>> example["bmode"].shape, example["semode"].shape, example["mask"].shape
    ((128, 128, 1), (128, 128, 3), (128, 128, 1))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import cv2
import numpy as np

from tf_bimodal.config import PhantomConfig
from tf_bimodal.schema import BINARY_LABELS

# ---------------------------------------------------------------------------------------------
# Vocabularies and ground-truth keys
# ---------------------------------------------------------------------------------------------

SHAPE_CLASSES = ("oval", "round", "lobulated", "irregular", "spiculated")
"""Lesion shape, ordered from typically benign to typically malignant (BI-RADS shape: oval,
round, irregular; ``lobulated`` = macrolobulated oval, ``spiculated`` = irregular mass with
radiating spicules)."""

MARGINS = ("circumscribed", "indistinct", "angular", "spiculated")
"""BI-RADS margin: circumscribed, or not (indistinct, angular, spiculated)."""

ORIENTATIONS = ("parallel", "not_parallel")
"""BI-RADS orientation: parallel (wider than tall) or not parallel (taller than wide)."""

POSTERIOR_FEATURES = ("enhancement", "none", "shadowing")
"""BI-RADS posterior acoustic feature."""

ECHO_PATTERNS = ("homogeneous", "heterogeneous")
"""Internal echo pattern of the (hypoechoic) lesion."""

ELASTICITY_SCORES = (1, 2, 3, 4, 5)
"""Itoh/Tsukuba 5-point elasticity score: 1 whole lesion strains like its surroundings, 2 mosaic
with stiff spots, 3 stiff centre with a soft rim, 4 whole lesion stiff, 5 lesion and the tissue
around it stiff."""

GROUND_TRUTH_KEYS = (
    "shape_class",
    "margin",
    "orientation",
    "posterior",
    "echo_pattern",
    "echogenic_halo",
    "aspect_ratio",
    "elasticity_score",
    "stiffness_ratio",
    "se_size_ratio",
    "lesion_area_px",
)
"""Keys of ``example["ground_truth"]``. All but ``lesion_area_px`` are shared by every image of
a patient."""

GROUND_TRUTH_TYPES = {
    "shape_class": str,
    "margin": str,
    "orientation": str,
    "posterior": str,
    "echo_pattern": str,
    "echogenic_halo": int,
    "aspect_ratio": float,
    "elasticity_score": int,
    "stiffness_ratio": float,
    "se_size_ratio": float,
    "lesion_area_px": int,
}
"""Python type of each ground-truth value (``echogenic_halo`` is 0 or 1)."""

GROUND_TRUTH_VOCABULARIES = {
    "shape_class": SHAPE_CLASSES,
    "margin": MARGINS,
    "orientation": ORIENTATIONS,
    "posterior": POSTERIOR_FEATURES,
    "echo_pattern": ECHO_PATTERNS,
    "echogenic_halo": (0, 1),
    "elasticity_score": ELASTICITY_SCORES,
}
"""Allowed values of the categorical ground-truth keys."""

# ---------------------------------------------------------------------------------------------
# Class-conditional lesion model (calibrated with ``difficulty_table``)
# ---------------------------------------------------------------------------------------------
# Each patient has two independent latent "malignancy looks": one for B-mode appearance and one
# for stiffness, each N(+-separation, 1) for malignant/benign. Every B-mode descriptor is an
# ordinal cut of the B-mode latent plus its own noise, so descriptors agree more often than not
# but atypical lesions exist in both classes (BI-RADS: many lesions are atypical). The
# separations set the information each modality carries.

_B_SEPARATION = 0.80
_SE_SEPARATION = 1.08

_SHAPE_NOISE, _SHAPE_CUTS = 0.9, (-0.55, -0.25, 0.25, 1.3)
_MARGIN_NOISE, _MARGIN_CUTS = 0.9, (-0.20, 0.80)
_POSTERIOR_NOISE, _POSTERIOR_CUTS = 0.9, (-0.80, 0.45)
_ASPECT_NOISE, _ASPECT_LOG_MID, _ASPECT_LOG_SLOPE = 0.8, -0.22, 0.27
_ASPECT_RANGE = (0.33, 1.9)
_HALO_NOISE, _HALO_CUT = 1.0, 1.45
_ECHO_NOISE, _ECHO_CUT = 1.0, 0.0

# Lesion-to-fat stiffness ratio: lognormal per class, medians ~2.1 (benign) and ~5.2
# (malignant), overlapping (strain ratio: benign mostly below ~3-4, malignant above).
_STIFFNESS_LOG_MID = math.log(3.3)
_STIFFNESS_LOG_SLOPE = 0.42
_STIFFNESS_RANGE = (0.8, 15.0)
# Elasticity score: ordinal cut of the log stiffness ratio plus reader noise.
_SCORE_NOISE = 0.25
_SCORE_LOG_CUTS = tuple(math.log(c) for c in (1.8, 2.7, 3.9, 6.0))

_NUM_CONTOUR_POINTS = 256

# Relative tissue echogenicity (scatterer amplitude) and scatterer density; glandular = 1.
_SKIN, _FAT, _GLAND, _RETRO_FAT, _MUSCLE, _CHEST = range(6)
_LAYER_AMPLITUDE = np.array([1.4, 0.17, 1.0, 0.15, 0.42, 0.3], np.float32)
_LAYER_DENSITY = np.array([1.0, 0.35, 1.0, 0.35, 0.9, 0.8], np.float32)
# Young's modulus relative to fat (fibroglandular tissue ~2x fat, muscle and skin stiffer).
_LAYER_STIFFNESS = np.array([3.0, 1.0, 2.0, 1.0, 3.5, 5.0], np.float32)

_DYNAMIC_RANGE_DB = 50.0
_GLAND_LEVEL_DB = -14.0  # where glandular tissue (rms) sits below white on the display
_SE_ALPHA = 0.6  # translucency of the colour overlay


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
        contour: lesion radius at ``_NUM_CONTOUR_POINTS`` equally spaced angles, normalised
            to unit equivalent radius (shape and margin irregularities live here).
        anatomy_seed: seed of the patient's breast anatomy (layer thicknesses, fat lobules).
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


def _contour(rng: np.random.Generator, shape_class: str, margin: str) -> np.ndarray:
    """Lesion radius versus angle, unit equivalent radius.

    Shapes follow BI-RADS: oval/round are smooth; lobulated has 2-4 gentle lobes; irregular has
    broad random undulations; spiculated adds thin radiating spicules. Margins modify the
    outline: angular replaces it by a polygon with sharp corners, indistinct adds fine ripples
    (the blur is added when rendering).
    """
    theta = np.linspace(0.0, 2.0 * np.pi, _NUM_CONTOUR_POINTS, endpoint=False)
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


def _draw_patient(rng: np.random.Generator, index: int, label: str, num_pairs: int, id_width: int = 3):
    """Draw one patient's lesion from the class-conditional model (no rendering)."""
    sign = 1.0 if label == "malignant" else -1.0
    b_latent = sign * _B_SEPARATION + rng.standard_normal()
    se_latent = sign * _SE_SEPARATION + rng.standard_normal()

    def b_look(noise):
        return b_latent + noise * rng.standard_normal()

    shape_class = SHAPE_CLASSES[_ordinal(b_look(_SHAPE_NOISE), _SHAPE_CUTS)]
    margin = MARGINS[_ordinal(b_look(_MARGIN_NOISE), _MARGIN_CUTS)]
    # Keep descriptors mutually consistent: spicules make a spiculated margin; an irregular
    # mass is not circumscribed; an oval or round mass has no angular corners.
    if shape_class == "spiculated":
        margin = "spiculated"
    elif shape_class == "irregular" and margin == "circumscribed":
        margin = "indistinct"
    elif shape_class in ("oval", "round") and margin == "angular":
        margin = "indistinct"
    if shape_class == "round":
        log_aspect = rng.normal(0.0, 0.05)
    else:
        log_aspect = _ASPECT_LOG_MID + _ASPECT_LOG_SLOPE * b_look(_ASPECT_NOISE)
    # Squash smoothly into the plausible range (no pile-up of flat or tall lesions at a bound).
    low, high = math.log(_ASPECT_RANGE[0]), math.log(_ASPECT_RANGE[1])
    middle, half = 0.5 * (low + high), 0.5 * (high - low)
    aspect_ratio = math.exp(middle + half * math.tanh((log_aspect - middle) / half))
    orientation = "not_parallel" if aspect_ratio > 1.0 else "parallel"
    posterior = POSTERIOR_FEATURES[_ordinal(b_look(_POSTERIOR_NOISE), _POSTERIOR_CUTS)]
    echogenic_halo = bool(b_look(_HALO_NOISE) > _HALO_CUT)
    echo_pattern = ECHO_PATTERNS[int(b_look(_ECHO_NOISE) > _ECHO_CUT)]

    log_ratio = _STIFFNESS_LOG_MID + _STIFFNESS_LOG_SLOPE * se_latent
    stiffness_ratio = float(np.clip(np.exp(log_ratio), *_STIFFNESS_RANGE))
    score = 1 + _ordinal(math.log(stiffness_ratio) + _SCORE_NOISE * rng.standard_normal(), _SCORE_LOG_CUTS)
    if score == 5:
        se_size_ratio = rng.uniform(1.25, 1.7)  # stiff desmoplastic halo beyond the B-mode mass
    elif score == 4:
        se_size_ratio = rng.uniform(0.95, 1.15)
    else:
        se_size_ratio = rng.uniform(0.8, 1.0)  # benign: same size or smaller on SE

    # Lesion echogenicity spans markedly hypoechoic to nearly isoechoic with fat (about -14 to
    # -3 dB against glandular tissue), so that on B-mode some lesions are hard to tell from
    # fat lobules and their boundary is uncertain; anechoic-looking lesions go with posterior
    # enhancement (cysts, some fibroadenomas).
    echo_level = float(np.exp(rng.uniform(np.log(0.2), np.log(0.7))))
    if posterior == "enhancement":
        echo_level *= 0.7
    tilt_sd = 8.0 if orientation == "parallel" else 14.0
    return PatientParams(
        index=index,
        patient_id=f"phantom_p{index:0{id_width}d}",
        label=label,
        num_pairs=int(num_pairs),
        shape_class=shape_class,
        margin=margin,
        orientation=orientation,
        posterior=posterior,
        echo_pattern=echo_pattern,
        echogenic_halo=echogenic_halo,
        aspect_ratio=round(aspect_ratio, 4),
        lesion_size=float(rng.uniform(0.2, 0.36)),
        center=(float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.36, 0.5))),
        tilt_deg=float(rng.normal(0.0, tilt_sd)),
        echo_level=echo_level,
        elasticity_score=int(score),
        stiffness_ratio=round(stiffness_ratio, 4),
        se_size_ratio=round(float(se_size_ratio), 4),
        contour=tuple(float(r) for r in _contour(rng, shape_class, margin)),
        anatomy_seed=int(rng.integers(0, 2**31 - 1)),
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
        patients.append(_draw_patient(rng, index, str(label), num_pairs, id_width))
    return patients


# ---------------------------------------------------------------------------------------------
# Rendering helpers
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _View:
    """What changes between two acquisitions of the same lesion."""

    shift: tuple[float, float]  # lateral, depth, fractions of the image side
    rotation_deg: float
    scale: float
    pressure: float  # operator compression, 1 = ideal
    gain_db: float
    tgc_fraction: float  # share of the depth attenuation that TGC compensates
    roi_margins: tuple[float, float, float, float]  # left, right, top, bottom, in lesion sizes


def _draw_view(rng: np.random.Generator) -> _View:
    return _View(
        shift=(float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.04, 0.04))),
        rotation_deg=float(rng.uniform(-7.0, 7.0)),
        scale=float(rng.uniform(0.9, 1.1)),
        pressure=float(rng.uniform(0.6, 1.4)),
        gain_db=float(rng.uniform(-2.5, 2.5)),
        tgc_fraction=float(rng.uniform(0.6, 0.8)),
        roi_margins=tuple(float(v) for v in rng.uniform((0.4, 0.4, 0.3, 0.35), (0.9, 0.9, 0.8, 0.8))),
    )


def _smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-variance random field correlated over ~size/cells pixels."""
    coarse = rng.standard_normal((cells + 2, cells + 2), dtype=np.float32)
    fine = cv2.resize(coarse, (size + 2 * size // cells, size + 2 * size // cells), interpolation=cv2.INTER_CUBIC)
    offset = size // cells
    fine = fine[offset : offset + size, offset : offset + size]
    return (fine - fine.mean()) / (fine.std() + 1e-6)


def _undulation(rng: np.random.Generator, amplitude: float) -> tuple[tuple[float, float, float], ...]:
    """Random low-frequency sinusoid components (amplitude, frequency, phase) of a boundary."""
    return tuple(
        (amplitude * rng.uniform(0.3, 1.0) / (k + 1), rng.uniform(0.5, 1.5) * (k + 1), rng.uniform(0, 2 * np.pi))
        for k in range(3)
    )


def _boundary(x: np.ndarray, base: float, components) -> np.ndarray:
    out = np.full_like(x, base)
    for amplitude, frequency, phase in components:
        out += amplitude * np.sin(2 * np.pi * frequency * x + phase)
    return out


class _Anatomy:
    """The patient's breast: layer boundaries (depth fractions) and fat lobules.

    Drawn in "world" lateral coordinates wider than the image, so a probe shift just samples
    another part of the same breast.
    """

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        self.skin = (rng.uniform(0.025, 0.04), _undulation(rng, 0.004))
        self.fat = (rng.uniform(0.12, 0.24), _undulation(rng, 0.06))
        self.gland = (rng.uniform(0.62, 0.74), _undulation(rng, 0.08))
        self.retro_thickness = rng.uniform(0.03, 0.06)
        self.muscle_thickness = rng.uniform(0.09, 0.15)
        self.muscle_period = rng.uniform(0.012, 0.02)
        self.muscle_slope = rng.uniform(-0.08, 0.08)
        self.has_rib = bool(rng.random() < 0.5)
        self.rib_x = rng.uniform(0.1, 0.9)
        # Fat lobules: flattened ellipses (x, y within the fat layer, half axes, echo level).
        count = 40
        self.lobules = np.stack(
            [
                rng.uniform(-0.3, 1.3, count),
                rng.uniform(0.0, 1.0, count),
                rng.uniform(0.05, 0.12, count),
                rng.uniform(0.02, 0.045, count),
                rng.uniform(-10, 10, count),
                rng.uniform(0.75, 1.3, count),
            ],
            axis=1,
        )


def _lesion_polygon(patient: PatientParams, view: _View, size: int) -> np.ndarray:
    """Lesion outline in pixels (x, y), fully inside the image (moved or shrunk if needed)."""
    theta = np.linspace(0.0, 2.0 * np.pi, _NUM_CONTOUR_POINTS, endpoint=False)
    radius = np.asarray(patient.contour) * 0.5 * patient.lesion_size * size * view.scale
    stretch = math.sqrt(patient.aspect_ratio)
    x = radius * np.cos(theta) / stretch
    y = radius * np.sin(theta) * stretch
    angle = math.radians(patient.tilt_deg + view.rotation_deg)
    cos, sin = math.cos(angle), math.sin(angle)
    points = np.stack([x * cos - y * sin, x * sin + y * cos], axis=1)
    center = np.array(
        [(patient.center[0] + view.shift[0]) * size, (patient.center[1] + view.shift[1]) * size]
    )
    # Keep it inside: below the skin (top margin) and clear of the other edges.
    low = np.array([0.04 * size + 2, 0.09 * size + 2])
    high = np.array([size - 0.04 * size - 3, size - 0.06 * size - 3])
    extent = points.max(axis=0) - points.min(axis=0)
    fit = np.min((high - low) / np.maximum(extent, 1e-6))
    if fit < 1.0:
        points *= fit
    upper_left = center + points.min(axis=0)
    lower_right = center + points.max(axis=0)
    center = center + np.maximum(low - upper_left, 0) - np.maximum(lower_right - high, 0)
    return points + center


def _fill(polygon: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    # Sub-pixel vertices (4 fractional bits) keep small lesions smooth.
    cv2.fillPoly(mask, [np.round((polygon - 0.5) * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return mask


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0.05:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def _psf(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Analytic point-spread function: axial Gaussian-windowed carrier, lateral Gaussian.

    Axial resolution is finer than lateral (linear-array PSF). Sizes are in pixels of a 336-pixel
    image covering ~4 cm of depth, scaled with the image side but never below ~1.5 pixels per
    carrier cycle, so small images still show (coarser) speckle instead of pixel noise.
    """
    scale = size / 336.0
    sigma_axial = max(0.8, 1.2 * scale)
    wavelength = max(2.4, 2.8 * scale)
    sigma_lateral = max(1.4, 2.8 * scale)
    half_axial = int(math.ceil(3 * sigma_axial))
    n = np.arange(-half_axial, half_axial + 1, dtype=np.float32)
    window = np.exp(-0.5 * (n / sigma_axial) ** 2)
    axial_real = (window * np.cos(2 * np.pi * n / wavelength)).astype(np.float32)
    axial_imag = (window * np.sin(2 * np.pi * n / wavelength)).astype(np.float32)
    half_lateral = int(math.ceil(3 * sigma_lateral))
    m = np.arange(-half_lateral, half_lateral + 1, dtype=np.float32)
    lateral = np.exp(-0.5 * (m / sigma_lateral) ** 2).astype(np.float32)
    return axial_real, axial_imag, lateral


def _envelope(amplitude: np.ndarray, density: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Speckle envelope: scatterers convolved with the PSF, magnitude of the analytic signal.

    Each pixel holds a complex Gaussian scatterer whose presence follows the tissue's scatterer
    density (sparse in fat: grainier, non-Rayleigh speckle) and whose strength follows its
    echogenicity; the result is normalised so that a unit-amplitude tissue has unit rms.
    """
    size = amplitude.shape[0]
    amplitude = amplitude.astype(np.float32, copy=False)
    density = density.astype(np.float32, copy=False)
    axial_real, axial_imag, lateral = _psf(size)
    present = rng.random(amplitude.shape, dtype=np.float32) < density
    strength = amplitude * present / np.sqrt(density)
    real = rng.standard_normal(amplitude.shape, dtype=np.float32) * strength
    imag = rng.standard_normal(amplitude.shape, dtype=np.float32) * strength

    def conv(image, axial):
        return cv2.sepFilter2D(image, cv2.CV_32F, lateral, axial, borderType=cv2.BORDER_REFLECT)

    rf_real = conv(real, axial_real) - conv(imag, axial_imag)
    rf_imag = conv(real, axial_imag) + conv(imag, axial_real)
    unit_rms = math.sqrt(2.0 * float(np.sum(axial_real**2 + axial_imag**2)) * float(np.sum(lateral**2)))
    return cv2.magnitude(rf_real, rf_imag) / unit_rms


_COLORMAP_ANCHORS = (
    (0.0, (0, 0, 200)),
    (0.22, (0, 110, 255)),
    (0.5, (0, 220, 0)),
    (0.75, (250, 235, 0)),
    (1.0, (230, 0, 0)),
)
"""Elastography colour scale (Hitachi RTE convention): blue = hard (low strain), green =
average, red = soft (high strain)."""


def _build_lut() -> np.ndarray:
    positions = np.array([p for p, _ in _COLORMAP_ANCHORS])
    colours = np.array([c for _, c in _COLORMAP_ANCHORS], np.float32)
    grid = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(grid, positions, colours[:, c]) for c in range(3)], axis=1).round().astype(np.uint8)


ELASTO_LUT = _build_lut()
"""(256, 3) uint8 RGB lookup table: row ``round(255 * strain)`` is the colour of a normalised
strain value (0 = hard/blue, 0.5 = average/green, 1 = soft/red)."""


def strain_to_rgb(strain: np.ndarray) -> np.ndarray:
    """Colour a normalised strain map (values in [0, 1]) with the elastography scale.

    Args:
        strain: float array, 0 = hard (blue), 0.5 = average (green), 1 = soft (red).

    Returns:
        uint8 RGB array of shape ``strain.shape + (3,)``.
    """
    index = np.clip(np.round(np.asarray(strain, np.float32) * 255.0), 0, 255).astype(np.uint8)
    return ELASTO_LUT[index]


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _tissue_maps(anatomy: _Anatomy, view: _View, size: int, lesion_bottom: float, rng: np.random.Generator):
    """Per-pixel echogenicity, scatterer density and stiffness of the breast without the lesion.

    Returns the depth column (fractions), the three maps and the rib's beam-blocking mask.
    """
    xs = (np.arange(size, dtype=np.float32) + 0.5) / size - view.shift[0]
    ys = ((np.arange(size, dtype=np.float32) + 0.5) / size)[:, None]
    skin = _boundary(xs, *anatomy.skin) + view.shift[1] * 0.2
    fat = _boundary(xs, *anatomy.fat) + view.shift[1]
    gland = _boundary(xs, *anatomy.gland) + view.shift[1]
    fat = np.clip(fat, skin + 0.04, None)
    # Lesions sit in the fibroglandular layer: push the deep layers below the lesion.
    gland = gland + max(0.0, lesion_bottom + 0.05 - float(gland.min()))
    gland = np.maximum(gland, fat + 0.15)
    retro = gland + anatomy.retro_thickness
    muscle = retro + anatomy.muscle_thickness
    labels = (
        (ys >= skin).astype(np.int8)
        + (ys >= fat)
        + (ys >= gland)
        + (ys >= retro)
        + (ys >= muscle)
    )
    amplitude = _LAYER_AMPLITUDE[labels]
    density = _LAYER_DENSITY[labels]
    stiffness = _LAYER_STIFFNESS[labels]

    # Skin: a thin bright entry line over the dermis.
    amplitude = np.where(ys < 0.4 * skin, 2.6, amplitude)

    # Subcutaneous fat lobules separated by echogenic septa (Cooper's ligaments).
    lobule_image = np.ones((size, size), np.float32)
    septa = np.zeros((size, size), np.float32)
    fat_top, fat_depth = float(skin.mean()), float(np.mean(fat - skin))
    for x, y, ax, ay, angle, level in anatomy.lobules:
        center = (int(round((x + view.shift[0]) * size)), int(round((fat_top + y * fat_depth) * size)))
        axes = (max(1, int(ax * size)), max(1, int(ay * size)))
        cv2.ellipse(lobule_image, center, axes, angle, 0, 360, float(level), -1)
        cv2.ellipse(septa, center, axes, angle, 0, 360, 1.0, 1)
    is_fat = (labels == _FAT) | (labels == _RETRO_FAT)
    fat_amp = amplitude * lobule_image + 1.1 * _blur(septa, 0.5)
    amplitude = np.where(is_fat, fat_amp, amplitude)
    stiffness = np.where(is_fat, stiffness * (0.85 + 0.3 * (lobule_image - 0.75) / 0.55), stiffness)

    # Fibroglandular tissue: heterogeneous echo texture and interspersed fat islands.
    texture = _smooth_field(rng, size, 10)
    islands = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(3, 8))):
        center = (int(rng.uniform(0, size)), int(rng.uniform(fat.mean(), gland.mean()) * size))
        axes = (int(rng.uniform(0.03, 0.08) * size) + 1, int(rng.uniform(0.012, 0.03) * size) + 1)
        cv2.ellipse(islands, center, axes, float(rng.uniform(-15, 15)), 0, 360, 1.0, -1)
    islands = _blur(islands, 0.01 * size)
    is_gland = labels == _GLAND
    gland_amp = np.exp(0.35 * texture) * (1.0 - 0.8 * islands)
    amplitude = np.where(is_gland, gland_amp, amplitude)
    density = np.where(is_gland, 1.0 - 0.6 * islands, density)
    stiffness = np.where(is_gland, stiffness * np.exp(0.2 * texture) * (1.0 - 0.45 * islands), stiffness)

    # Pectoral muscle: bright striations roughly parallel to the fascia.
    phase = (ys - retro + anatomy.muscle_slope * xs) / anatomy.muscle_period
    striation = (0.5 + 0.5 * np.sin(2 * np.pi * phase + 0.6 * texture)) ** 8
    is_muscle = labels >= _MUSCLE
    amplitude = np.where(is_muscle, amplitude * (0.6 + 2.2 * striation), amplitude)
    # Fascia between the layers: thin echogenic lines.
    for boundary in (retro, muscle):
        amplitude = amplitude + 1.2 * np.exp(-0.5 * ((ys - boundary) * size / 0.8) ** 2)

    # Rib: a bright curved surface that blocks the beam (black shadow below).
    rib_block = np.zeros((size, size), np.float32)
    if anatomy.has_rib:
        rib_top = float(muscle.min()) + 0.04
        if rib_top < 0.93:
            cx = (anatomy.rib_x + view.shift[0]) * size
            axes = (int(0.13 * size), int(0.06 * size))
            rib = np.zeros((size, size), np.uint8)
            cv2.ellipse(rib, (int(cx), int((rib_top + 0.06) * size)), axes, 0, 0, 360, 1, -1)
            rib_surface = rib.astype(np.float32) - cv2.erode(rib, np.ones((3, 3), np.uint8)).astype(np.float32)
            amplitude = amplitude + 8.0 * _blur(rib_surface, 0.7)
            # The beam is blocked just under the bony surface, so the surface itself shows.
            depth_shift = max(2, size // 100)
            rib_block[depth_shift:] = rib[:-depth_shift]
            stiffness = np.where(rib > 0, 50.0, stiffness)
    return ys, amplitude.astype(np.float32), density.astype(np.float32), stiffness.astype(np.float32), rib_block


def _insert_lesion_bmode(patient, amplitude, density, mask, size, rng):
    """Hypoechoic lesion with its margin, internal echo pattern and echogenic halo."""
    mask_f = mask.astype(np.float32)
    edge_sigma = {"circumscribed": 0.6, "indistinct": 4.0, "angular": 1.0, "spiculated": 1.5}[patient.margin]
    soft = _blur(mask_f, edge_sigma * size / 336.0 + 0.3)
    if patient.echo_pattern == "heterogeneous":
        texture = np.exp(0.6 * _smooth_field(rng, size, 24) + 0.25 * _smooth_field(rng, size, 48))
    else:
        texture = np.exp(0.12 * _smooth_field(rng, size, 24))
    lesion_amp = patient.echo_level * texture
    # Microcalcifications: bright specks inside heterogeneous irregular masses.
    if patient.echo_pattern == "heterogeneous" and patient.shape_class in ("irregular", "spiculated"):
        ys, xs = np.nonzero(mask)
        for i in rng.choice(len(ys), size=min(len(ys), int(rng.integers(0, 7))), replace=False):
            lesion_amp[ys[i], xs[i]] = 4.0
    if patient.margin == "spiculated":
        # Spicules show as alternating hypo- and hyperechoic lines: brighten their borders.
        border = cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(np.float32) - mask_f
        amplitude = amplitude * (1.0 + 1.5 * _blur(border, 0.5))
    if patient.echogenic_halo:
        thickness = max(2, int(round(rng.uniform(0.02, 0.035) * size)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * thickness + 1, 2 * thickness + 1))
        ring = cv2.dilate(mask, kernel).astype(np.float32) - mask_f
        ring = _blur(ring * (0.7 + 0.6 * (_smooth_field(rng, size, 16) > 0)), thickness * 0.4)
        amplitude = amplitude * (1.0 + 1.6 * ring)
    amplitude = amplitude * (1.0 - soft) + lesion_amp * soft
    density = density * (1.0 - soft) + soft
    return amplitude, density, soft


def _posterior_attenuation(patient, soft_lesion, rib_block, mask, size, rng) -> np.ndarray:
    """Multiplicative echo change from extra (or reduced) attenuation along each beam line.

    Shadowing masses attenuate more than the tissue around them, fluid-like ones less
    (posterior enhancement); a rib blocks the beam. Integrating the extra attenuation along
    depth makes the effect start at the lesion and persist below it.
    """
    rows = np.nonzero(mask.any(axis=1))[0]
    height = float(rows[-1] - rows[0] + 1)
    coefficient = float(
        {
            "shadowing": rng.uniform(1.4, 2.4),
            "none": rng.uniform(-0.1, 0.1),
            "enhancement": -rng.uniform(0.8, 1.2),
        }[patient.posterior]
    )
    extra = soft_lesion * (coefficient / height) + rib_block * (8.0 / (0.02 * size))
    path = np.cumsum(extra, axis=0)
    path = cv2.blur(path, (max(1, size // 80) * 2 + 1, 1))  # beam width softens shadow edges
    return np.exp(-np.clip(path, -1.0, 12.0))


def _stiffness_with_lesion(patient, stiffness, mask, polygon, size, rng) -> np.ndarray:
    """Young's modulus map with the lesion's Itoh elasticity pattern."""
    ratio = patient.stiffness_ratio
    center = polygon.mean(axis=0)
    sigma = 1.5 * size / 336.0 + 0.3

    def scaled_region(factor):
        return _blur(_fill(center + (polygon - center) * factor, size).astype(np.float32), sigma)

    stiff = scaled_region(patient.se_size_ratio)
    score = patient.elasticity_score
    if score == 5:
        # Lesion and surrounding tissue stiff: the stiff area exceeds the B-mode lesion.
        stiffness = stiffness * (1 - stiff) + 0.75 * ratio * stiff
        lesion = _blur(mask.astype(np.float32), sigma)
        return stiffness * (1 - lesion) + ratio * lesion
    if score == 4:
        return stiffness * (1 - stiff) + ratio * stiff
    if score == 3:
        # Stiff centre, soft (straining) rim.
        core = scaled_region(0.6 * patient.se_size_ratio)
        rim = np.clip(_blur(mask.astype(np.float32), sigma) - core, 0, 1)
        stiffness = stiffness * (1 - rim) + 1.3 * rim
        return stiffness * (1 - core) + 1.15 * ratio * core
    if score == 2:
        # Mosaic: mostly straining lesion with scattered stiff spots.
        spots = _blur((_smooth_field(rng, size, 28) > 0.7).astype(np.float32), sigma)
        lesion_e = 0.7 * ratio * (1.0 + 1.4 * spots)
        return stiffness * (1 - stiff) + lesion_e * stiff
    return stiffness * (1 - stiff) + ratio * stiff


def _roi(polygon, se_size_ratio, view: _View, size: int) -> tuple[int, int, int, int]:
    """Rectangular SE region of interest (top, left, bottom, right), containing the lesion and
    its stiff halo with a margin, as an operator would place it."""
    center = polygon.mean(axis=0)
    extended = center + (polygon - center) * max(1.0, se_size_ratio)
    (x0, y0), (x1, y1) = extended.min(axis=0), extended.max(axis=0)
    width, height = x1 - x0, y1 - y0
    left_m, right_m, top_m, bottom_m = view.roi_margins
    left = int(max(1, x0 - left_m * width))
    right = int(min(size - 2, x1 + right_m * width))
    top = int(max(0.05 * size, y0 - top_m * height))
    bottom = int(min(size - 2, y1 + bottom_m * height))
    # The lesion itself is always inside (the polygon was already fitted into the image).
    (lx0, ly0), (lx1, ly1) = np.floor(polygon.min(axis=0)), np.ceil(polygon.max(axis=0))
    return (
        int(min(top, ly0 - 1)),
        int(min(left, lx0 - 1)),
        int(max(bottom, ly1 + 1)),
        int(max(right, lx1 + 1)),
    )


def _elastogram(stiffness, ys, bmode, roi, view: _View, size, rng) -> np.ndarray:
    """Normalised display strain in [0, 1] (0 hard, 0.5 ROI average, 1 soft).

    Strain ~ stress / stiffness with the applied stress decaying with depth and slightly uneven
    across the probe; blurred by displacement tracking (more when the pressure is off its
    ideal); expressed relative to the ROI mean (SE is relative); plus decorrelation
    noise that grows with depth and in dark (low-echo) regions.
    """
    scale = size / 336.0
    off_pressure = abs(view.pressure - 1.0)
    lateral_tilt = float(rng.uniform(-0.15, 0.15))
    xs = np.linspace(-0.5, 0.5, size, dtype=np.float32)[None, :]
    stress = view.pressure * (1.0 - 0.45 * ys) * (1.0 + lateral_tilt * xs)
    log_strain = np.log(_blur(stress / stiffness, (2.5 + 4.0 * off_pressure) * scale + 0.4))
    top, left, bottom, right = roi
    log_strain -= float(log_strain[top:bottom, left:right].mean())
    # Over- or under-pressing compresses the displayed contrast.
    gain = 0.36 * (1.0 - 0.5 * off_pressure)
    display = 0.5 + gain * log_strain / math.log(2.0)
    darkness = 1.0 - _blur(bmode.astype(np.float32), 3.0 * scale + 0.5) / 255.0
    noise_sd = (0.03 + 0.08 * ys + 0.08 * darkness**2) * (1.0 + 1.5 * off_pressure)
    noise_sigma = 4.0 * scale + 0.5
    noise = _blur(rng.standard_normal((size, size), dtype=np.float32), noise_sigma)
    noise = noise * (2 * math.sqrt(math.pi) * noise_sigma)
    return np.clip(display + noise_sd * noise, 0.0, 1.0).astype(np.float32)


def render_pair(
    patient: PatientParams, view_index: int, image_size: int, seed: int, return_strain: bool = False
) -> dict:
    """Render one B-mode / SE-mode pair of a patient.

    The random stream is derived from ``(seed, patient.index, view_index)`` alone: a pair is
    deterministic in its arguments and independent of any other pair.

    Args:
        patient: from ``sample_patients``.
        view_index: which view of this patient (``0 .. patient.num_pairs - 1`` in the cohort;
            any non-negative int works).
        image_size: side of the square images in pixels (paper §3.1: 336).
        seed: render seed (``iter_phantom`` passes ``config.seed``).
        return_strain: also return ``strain``, the normalised display strain (float32 (H, W) in
            [0, 1]; its colour ``strain_to_rgb(strain)`` is what the ROI shows, blended over the
            B-mode) and ``se_roi`` (top, left, bottom, right), the ROI box (bottom/right
            exclusive).

    Returns:
        The schema dict (``tf_bimodal.schema``) plus ``ground_truth``.
    """
    if image_size < 32:
        raise ValueError(f"render_pair: image_size must be >= 32, got {image_size}")
    if view_index < 0:
        raise ValueError(f"render_pair: view_index must be >= 0, got {view_index}")
    size = int(image_size)
    # Tagged (2) so that no render stream coincides with a patient-parameter stream (1).
    rng = np.random.default_rng([seed, 2, patient.index, view_index])
    view = _draw_view(rng)
    anatomy = _Anatomy(patient.anatomy_seed)

    polygon = _lesion_polygon(patient, view, size)
    mask = _fill(polygon, size)
    if not mask.any():  # a degenerate outline can only happen for tiny images; keep a seed pixel
        cx, cy = np.clip(np.round(polygon.mean(axis=0)).astype(int), 0, size - 1)
        mask[cy, cx] = 1
    lesion_bottom = float(polygon[:, 1].max()) / size

    ys, amplitude, density, stiffness, rib_block = _tissue_maps(anatomy, view, size, lesion_bottom, rng)
    amplitude, density, soft = _insert_lesion_bmode(patient, amplitude, density, mask, size, rng)
    amplitude = amplitude * _posterior_attenuation(patient, soft, rib_block, mask, size, rng)
    # Depth attenuation (~30 dB over the field at 10 MHz) only partly undone by TGC.
    residual_db = -30.0 * (1.0 - view.tgc_fraction) * ys + view.gain_db
    amplitude = amplitude * (10.0 ** (residual_db / 20.0)).astype(np.float32)

    envelope = _envelope(amplitude, np.clip(density, 0.05, 1.0), rng)
    # Light smoothing of the log image, as scanner post-processing (compounding) does.
    decibels = _blur(20.0 * np.log10(envelope + 1e-6), 0.5 * size / 336.0)
    grey = (decibels + _GLAND_LEVEL_DB + _DYNAMIC_RANGE_DB) * (255.0 / _DYNAMIC_RANGE_DB)
    bmode = np.clip(grey, 0, 255).astype(np.uint8)

    stiffness = _stiffness_with_lesion(patient, stiffness, mask, polygon, size, rng)
    roi = _roi(polygon, patient.se_size_ratio if patient.elasticity_score == 5 else 1.0, view, size)
    strain = _elastogram(stiffness, ys, bmode, roi, view, size, rng)

    top, left, bottom, right = roi
    semode = np.repeat(bmode[:, :, None], 3, axis=2)
    colour = strain_to_rgb(strain[top:bottom, left:right]).astype(np.float32)
    under = semode[top:bottom, left:right].astype(np.float32)
    semode[top:bottom, left:right] = np.clip((1 - _SE_ALPHA) * under + _SE_ALPHA * colour, 0, 255).astype(np.uint8)
    # ROI frame, as drawn by the scanner.
    cv2.rectangle(semode, (left - 1, top - 1), (right, bottom), (210, 210, 210), 1)

    example = {
        "image_id": f"{patient.patient_id}_v{view_index}",
        "patient_id": patient.patient_id,
        "label": patient.label,
        "bmode": bmode[:, :, None],
        "semode": semode,
        "mask": mask[:, :, None],
        "has_semode": True,
        "has_mask": True,
        "ground_truth": patient.ground_truth(int(mask.sum())),
    }
    if return_strain:
        example["strain"] = strain
        example["se_roi"] = roi
    return example


def iter_phantom(config: PhantomConfig = PhantomConfig()) -> Iterator[dict]:
    """Yield every pair of the cohort: patients in id order, views ``0 .. num_pairs - 1``.

    Images are ``config.image_size`` pixels square and rendered with seed ``config.seed``.
    """
    for patient in sample_patients(config):
        for view_index in range(patient.num_pairs):
            yield render_pair(patient, view_index, config.image_size, config.seed)


# ---------------------------------------------------------------------------------------------
# Calibration and figures
# ---------------------------------------------------------------------------------------------


def _bmode_features(patient: PatientParams) -> list[float]:
    return [
        *(float(patient.shape_class == c) for c in SHAPE_CLASSES),
        *(float(patient.margin == c) for c in MARGINS),
        float(patient.orientation == "not_parallel"),
        *(float(patient.posterior == c) for c in POSTERIOR_FEATURES),
        math.log(patient.aspect_ratio),
        float(patient.echogenic_halo),
        float(patient.echo_pattern == "heterogeneous"),
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
    feature, aspect ratio, echogenic halo, echo pattern; one-hot where categorical), (b) the SE
    parameters (log stiffness ratio, elasticity score, stiff-area size ratio) and (c) both.
    These are upper bounds of what a model can read from the images. The model is calibrated so
    that SE > B-mode, both < 1 and their combination beats either, mirroring the paper
    (Table 2: SE-only 81.5 % vs B-only 72.3 % accuracy with VGG-16).

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
    patients = [_draw_patient(rng, i, BINARY_LABELS[y], 1) for i, y in enumerate(labels)]
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
