"""Synthetic bimodal breast ultrasound phantom: paired B-mode and strain-elastography images.

The package's default data source, so that every command runs offline. It mimics the paper's
cohort (Misra et al. 2022, §3.1: 73 patients, 37 benign and 36 malignant, 212 B/SE pairs from a
linear 18-5 MHz probe, images resized to 336 x 336) and follows textbook domain knowledge (the
ACR BI-RADS ultrasound lexicon, the Itoh et al. 2006 elasticity score, the WFUMB breast
elastography guidelines). It is meant to be about as hard as clinical images, not a clean
textbook picture:

* **B-mode.** Speckle is formed physically: a complex Gaussian scatterer field whose density
  and amplitude depend on the tissue, convolved with a point-spread function (Gaussian-windowed
  carrier along depth, wider Gaussian across, so axial resolution is finer than lateral; its
  size follows the probe frequency and the depth setting), envelope-detected and
  log-compressed to a 44-62 dB dynamic range. Layers from the skin down: skin line,
  subcutaneous fat lobules with echogenic septa, streaky heterogeneous fibroglandular tissue
  with fat islands, retromammary fat, striated pectoral muscle and sometimes a rib with its
  shadow. Depth attenuation is only partly corrected by time-gain compensation (with uneven
  slider bands); gain, depth setting and probe contact vary between images; the receiver's
  noise floor fills deep and shadowed regions.
* **Lesions** are hypoechoic, from anechoic (cysts) to nearly isoechoic, homogeneous,
  heterogeneous or complex cystic-solid, about 5-60 % of the image width. Their BI-RADS descriptors
  (shape, margin incl. indistinct, angular, microlobulated and spiculated, orientation,
  posterior feature, echogenic halo) are drawn per class from strongly overlapping
  distributions. Posterior shadowing (mostly malignant) attenuates inside the mass, so its
  lower border sinks into the shadow and the noise floor; cysts and some solid masses enhance
  the echoes below them and cast thin lateral edge shadows.
* **Look-alikes without a mask**: each breast holds up to ``PhantomConfig.max_distractors``
  simple cysts, dilated ducts, hypoechoic fat lobules and Cooper's-ligament shadows.
* **Burnt-in marks** on ``PhantomConfig.annotation_fraction`` of the B-mode images: caliper
  markers (``+``/``x``) on the lesion's border with dotted lines across it, text labels,
  depth ticks and a focus marker, as in clinical archives. The mask never includes them.
* **SE-mode.** A Young's-modulus map (tissue-specific background, the lesion with a class-
  dependent lesion-to-fat stiffness ratio and an Itoh 5-point elasticity pattern) is turned into
  strain (~ stress / stiffness, stress decaying with depth), blurred as displacement tracking
  does, normalised to the ROI (strain images are relative), corrupted by decorrelation noise
  that grows in deep and dark regions and with poor probe pressure, and shown like a scanner:
  a translucent blue (hard) - green (average) - red (soft) map over the B-mode inside a
  rectangular ROI. Cysts show the blue-green-red layered artefact. Malignant lesions are
  mostly stiffer and larger on SE than on B-mode.
* **Mask.** The lesion outline a radiologist would trace on B-mode.

Every image of one patient shows the same lesion (shape, stiffness, score) and the same breast
(layers, look-alikes) seen in a different view: small shift/rotation/scale, new speckle,
another gain, pressure and noise draw, marks or none.

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

MARGINS = ("circumscribed", "indistinct", "angular", "microlobulated", "spiculated")
"""BI-RADS margin: circumscribed, or not (indistinct, angular, microlobulated, spiculated)."""

ORIENTATIONS = ("parallel", "not_parallel")
"""BI-RADS orientation: parallel (wider than tall) or not parallel (taller than wide)."""

POSTERIOR_FEATURES = ("enhancement", "none", "shadowing")
"""BI-RADS posterior acoustic feature."""

ECHO_PATTERNS = ("anechoic", "homogeneous", "heterogeneous", "complex")
"""BI-RADS echo pattern: anechoic (simple cyst), homogeneous or heterogeneous hypoechoic (to
nearly isoechoic) solid mass, complex cystic and solid."""

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

DISTRACTOR_KINDS = ("cyst", "duct", "fat_lobule", "ligament_shadow")
"""Lesion look-alikes of the breast that have no mask: simple cysts (anechoic, posterior
enhancement), dilated ducts (anechoic tubes with echogenic walls), hypoechoic fat lobules inside
the glandular tissue, and refraction shadows of Cooper's ligaments."""

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

_NUM_CONTOUR_POINTS = 256

# Relative tissue echogenicity (scatterer amplitude) and scatterer density; glandular = 1.
_SKIN, _FAT, _GLAND, _RETRO_FAT, _MUSCLE, _CHEST = range(6)
_LAYER_AMPLITUDE = np.array([1.4, 0.22, 1.0, 0.18, 0.42, 0.3], np.float32)
_LAYER_DENSITY = np.array([1.0, 0.35, 1.0, 0.35, 0.9, 0.8], np.float32)
# Young's modulus relative to fat (fibroglandular tissue ~2x fat, muscle and skin stiffer).
_LAYER_STIFFNESS = np.array([3.0, 1.0, 2.0, 1.0, 3.5, 5.0], np.float32)

_FLUID_AMPLITUDE = 0.03  # anechoic: cysts, ducts (what shows is the noise floor)
_ATTENUATION_DB = 30.0  # round-trip depth attenuation over a 336-pixel field (~4 cm, ~10 MHz)
_GLAND_LEVEL_DB = -19.0  # where glandular tissue (rms) sits below white on the display
_SE_ALPHA = 0.6  # translucency of the colour overlay

_TEXT_LABELS = (
    "RT BREAST", "LT BREAST", "RT 10:00 3CM FN", "LT 2:00 4CM FN", "RT 7:30 2CM FN", "LT 12:00 1CM FN",
    "RADIAL", "ANTI-RAD", "TRANS", "LONG", "RT AXILLA", "LT AXILLA", "L 1.24cm", "D1 0.84cm D2 1.31cm",
    "RT6", "LT3", "MASS", "CYST?",
)
"""Labels operators type on breast images (side, clock position, distance from the nipple,
probe orientation, measurements)."""


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


def _draw_patient(
    rng: np.random.Generator,
    index: int,
    label: str,
    num_pairs: int,
    id_width: int = 3,
    max_distractors: int = PhantomConfig.max_distractors,
):
    """Draw one patient's lesion from the class-conditional model (no rendering)."""
    sign = 1.0 if label == "malignant" else -1.0
    b_latent = sign * _B_SEPARATION + rng.standard_normal()
    se_latent = sign * _SE_SEPARATION + rng.standard_normal()
    kind = rng.random()
    is_cyst = label == "benign" and kind < _CYST_FRACTION
    is_complex = not is_cyst and kind > 1.0 - _COMPLEX_FRACTION

    def b_look(noise):
        return b_latent + noise * rng.standard_normal()

    if is_cyst:
        # Simple cyst: oval or round, circumscribed, anechoic, posterior enhancement.
        shape_class = "round" if rng.random() < 0.35 else "oval"
        margin = "circumscribed"
        log_aspect = rng.normal(0.0, 0.05) if shape_class == "round" else rng.normal(-0.35, 0.15)
        posterior = "enhancement" if rng.random() < 0.85 else "none"
        echogenic_halo = False
        echo_pattern = "anechoic"
        echo_level = float(rng.uniform(0.6, 1.4) * _FLUID_AMPLITUDE)
        log_size = _CYST_SIZE_LOG_MID + _SIZE_LOG_SD * rng.standard_normal()
    else:
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
    # Squash smoothly into the plausible range (no pile-up of flat or tall lesions at a bound).
    aspect_ratio = math.exp(_squash(log_aspect, math.log(_ASPECT_RANGE[0]), math.log(_ASPECT_RANGE[1])))
    orientation = "not_parallel" if aspect_ratio > 1.0 else "parallel"
    lesion_size = math.exp(_squash(log_size, math.log(_SIZE_RANGE[0]), math.log(_SIZE_RANGE[1])))

    log_ratio = _STIFFNESS_LOG_MID + _STIFFNESS_LOG_SLOPE * se_latent
    stiffness_ratio = float(np.clip(np.exp(log_ratio), *_STIFFNESS_RANGE))
    score = 1 + _ordinal(math.log(stiffness_ratio) + _SCORE_NOISE * rng.standard_normal(), _SCORE_LOG_CUTS)
    if score == 5:
        se_size_ratio = rng.uniform(1.25, 1.7)  # stiff desmoplastic halo beyond the B-mode mass
    elif score == 4:
        se_size_ratio = rng.uniform(0.95, 1.15)
    else:
        se_size_ratio = rng.uniform(0.8, 1.0)  # benign: same size or smaller on SE

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
        lesion_size=round(lesion_size, 4),
        center=(float(rng.uniform(0.25, 0.75)), float(rng.uniform(0.2, 0.5))),
        tilt_deg=float(rng.normal(0.0, tilt_sd)),
        echo_level=echo_level,
        elasticity_score=int(score),
        stiffness_ratio=round(stiffness_ratio, 4),
        se_size_ratio=round(float(se_size_ratio), 4),
        contour=tuple(float(r) for r in _contour(rng, shape_class, margin)),
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
        patients.append(_draw_patient(rng, index, str(label), num_pairs, id_width, config.max_distractors))
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
    dynamic_range_db: float
    tgc_bands_db: tuple[float, ...]  # slider offsets at equally spaced depths
    noise_floor_db: float  # receiver noise relative to glandular echoes at the skin
    contact_loss: tuple[float, float, float]  # side (-1 left, +1 right, 0 none), width, depth in dB


def _draw_view(rng: np.random.Generator) -> _View:
    side = float(rng.choice((-1.0, 1.0))) if rng.random() < 0.25 else 0.0
    return _View(
        shift=(float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.04, 0.04))),
        rotation_deg=float(rng.uniform(-7.0, 7.0)),
        scale=float(rng.uniform(0.9, 1.1)),
        pressure=float(rng.uniform(0.55, 1.5)),
        gain_db=float(rng.uniform(-9.0, 4.0)),
        tgc_fraction=float(rng.uniform(0.3, 0.9)),
        roi_margins=tuple(float(v) for v in rng.uniform((0.4, 0.4, 0.3, 0.35), (0.9, 0.9, 0.8, 0.8))),
        dynamic_range_db=float(rng.uniform(44.0, 62.0)),
        tgc_bands_db=tuple(float(v) for v in rng.normal(0.0, 1.8, 6)),
        noise_floor_db=float(rng.uniform(-58.0, -48.0)),
        contact_loss=(side, float(rng.uniform(0.08, 0.25)), float(rng.uniform(6.0, 18.0))),
    )


def _smooth_field(rng: np.random.Generator, size: int, cells: int, lateral_cells: int | None = None) -> np.ndarray:
    """Zero-mean, unit-variance random field correlated over ~size/cells pixels (along depth;
    across, over ~size/lateral_cells pixels when given: streaks for lateral_cells < cells)."""
    lateral_cells = cells if lateral_cells is None else lateral_cells
    coarse = rng.standard_normal((cells + 2, lateral_cells + 2), dtype=np.float32)
    pad_y, pad_x = size // cells, size // lateral_cells
    fine = cv2.resize(coarse, (size + 2 * pad_x, size + 2 * pad_y), interpolation=cv2.INTER_CUBIC)
    fine = fine[pad_y : pad_y + size, pad_x : pad_x + size]
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


@dataclasses.dataclass(frozen=True)
class _Distractor:
    """A lesion look-alike in world coordinates (see ``DISTRACTOR_KINDS``)."""

    kind: str
    x: float  # lateral position, fraction of the (zoom 1) field width
    depth: float  # position within the glandular layer: 0 its top, 1 its bottom
    half_axes: tuple[float, float]  # fractions of the field width
    angle_deg: float
    level: float  # echogenicity (cyst, duct, lobule) or extra attenuation in nepers (shadow)


class _Anatomy:
    """The patient's breast: layer boundaries (depth fractions), fat lobules, look-alikes, and
    the examination's depth setting and probe frequency.

    Drawn in "world" coordinates (fractions of a field at zoom 1, laterally wider than the
    image), so a probe shift just samples another part of the same breast.
    """

    def __init__(self, seed: int, num_distractors: int = 0):
        rng = np.random.default_rng(seed)
        self.skin = (rng.uniform(0.025, 0.04), _undulation(rng, 0.004))
        self.fat = (rng.uniform(0.08, 0.24), _undulation(rng, 0.06))
        self.gland = (rng.uniform(0.62, 0.74), _undulation(rng, 0.08))
        self.retro_thickness = rng.uniform(0.03, 0.06)
        self.muscle_thickness = rng.uniform(0.09, 0.15)
        self.muscle_period = rng.uniform(0.012, 0.02)
        self.muscle_slope = rng.uniform(-0.08, 0.08)
        self.has_rib = bool(rng.random() < 0.4)
        self.rib_x = rng.uniform(0.1, 0.9)
        # Depth setting (> 1: a shallower field, everything looks larger) and probe frequency
        # (> 1: a lower frequency, coarser speckle).
        self.zoom = rng.uniform(0.8, 1.3)
        self.speckle_scale = rng.uniform(0.75, 1.5)
        # How streaky the glandular tissue is (ducts and ligaments running along the skin).
        self.streakiness = rng.uniform(0.15, 0.55)
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
        self.distractors = tuple(self._distractor(rng) for _ in range(num_distractors))

    @staticmethod
    def _distractor(rng: np.random.Generator) -> _Distractor:
        kind = DISTRACTOR_KINDS[int(rng.choice(len(DISTRACTOR_KINDS), p=(0.3, 0.2, 0.38, 0.12)))]
        x, depth = float(rng.uniform(-0.05, 1.05)), float(rng.uniform(0.05, 0.85))
        if kind == "cyst":
            half = float(rng.uniform(0.012, 0.05))
            axes = (half, half * float(rng.uniform(0.55, 1.0)))
            angle, level = float(rng.uniform(-15, 15)), _FLUID_AMPLITUDE
        elif kind == "duct":
            axes = (float(rng.uniform(0.05, 0.14)), float(rng.uniform(0.01, 0.022)))
            angle, level = float(rng.uniform(-25, 25)), 1.5 * _FLUID_AMPLITUDE
        elif kind == "fat_lobule":
            axes = (float(rng.uniform(0.025, 0.07)), float(rng.uniform(0.014, 0.035)))
            angle, level = float(rng.uniform(-20, 20)), float(rng.uniform(0.08, 0.3))
        else:  # a refraction shadow behind a Cooper's ligament: a dark column
            axes = (float(rng.uniform(0.006, 0.02)), 0.0)
            angle, level = 0.0, float(rng.uniform(0.8, 2.2))
        return _Distractor(kind, x, depth, axes, angle, level)


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


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _psf(size: int, speckle_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Analytic point-spread function: axial Gaussian-windowed carrier, lateral Gaussian.

    Axial resolution is finer than lateral (linear-array PSF). Sizes are in pixels of a 336-pixel
    image covering ~4 cm of depth, times ``speckle_scale`` (probe frequency and depth setting),
    scaled with the image side but never below ~1.5 pixels per carrier cycle, so small images
    still show (coarser) speckle instead of pixel noise.
    """
    scale = size / 336.0 * speckle_scale
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


def _envelope(
    amplitude: np.ndarray, density: np.ndarray, rng: np.random.Generator, speckle_scale: float = 1.0
) -> np.ndarray:
    """Speckle envelope: scatterers convolved with the PSF, magnitude of the analytic signal.

    Each pixel holds a complex Gaussian scatterer whose presence follows the tissue's scatterer
    density (sparse in fat: grainier, non-Rayleigh speckle) and whose strength follows its
    echogenicity; the result is normalised so that a unit-amplitude tissue has unit rms.
    """
    size = amplitude.shape[0]
    amplitude = amplitude.astype(np.float32, copy=False)
    density = density.astype(np.float32, copy=False)
    axial_real, axial_imag, lateral = _psf(size, speckle_scale)
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


@dataclasses.dataclass
class _Tissue:
    """Per-pixel maps of the breast around the lesion (float32, (size, size) unless noted)."""

    depth: np.ndarray  # (size, 1) physical depth, fractions of a zoom-1 field
    amplitude: np.ndarray  # echogenicity
    density: np.ndarray  # scatterer density
    stiffness: np.ndarray  # Young's modulus relative to fat
    attenuation: np.ndarray  # extra attenuation (nepers) entered at each pixel, integrated along depth later
    distractors: np.ndarray  # uint8 footprint of the look-alikes that the view shows


def _tissue_maps(
    anatomy: _Anatomy, view: _View, size: int, lesion_bottom: float, guard: np.ndarray, rng: np.random.Generator
) -> _Tissue:
    """Echogenicity, scatterer density, stiffness and extra attenuation of the breast without
    the lesion, with the look-alikes that fall in the view and clear of ``guard`` (the lesion and
    a margin around it)."""
    zoom = anatomy.zoom * view.scale
    pixel = (np.arange(size, dtype=np.float32) + 0.5) / size
    xs = (pixel - 0.5) / zoom + 0.5 - view.shift[0]  # world lateral position of each column
    ys = (pixel / zoom)[:, None]  # world depth of each row

    def to_pixels(x_world, y_world):
        return ((x_world + view.shift[0] - 0.5) * zoom + 0.5) * size, y_world * zoom * size

    skin = _boundary(xs, *anatomy.skin) + view.shift[1] * 0.2
    fat = _boundary(xs, *anatomy.fat) + view.shift[1]
    gland = _boundary(xs, *anatomy.gland) + view.shift[1]
    fat = np.clip(fat, skin + 0.03, None)
    # Lesions sit in the fibroglandular layer: push the deep layers below the lesion.
    gland = gland + max(0.0, lesion_bottom / zoom + 0.05 - float(gland.min()))
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
    attenuation = np.zeros((size, size), np.float32)

    # Skin: a thin bright entry line over the dermis.
    amplitude = np.where(ys < 0.4 * skin, 2.6, amplitude)

    # Subcutaneous fat lobules separated by echogenic septa (Cooper's ligaments).
    lobule_image = np.ones((size, size), np.float32)
    septa = np.zeros((size, size), np.float32)
    fat_top, fat_depth = float(skin.mean()), float(np.mean(fat - skin))
    for x, y, ax, ay, angle, level in anatomy.lobules:
        cx, cy = to_pixels(x, fat_top + y * fat_depth)
        axes = (max(1, int(ax * zoom * size)), max(1, int(ay * zoom * size)))
        cv2.ellipse(lobule_image, (int(round(cx)), int(round(cy))), axes, angle, 0, 360, float(level), -1)
        cv2.ellipse(septa, (int(round(cx)), int(round(cy))), axes, angle, 0, 360, 1.0, 1)
    is_fat = (labels == _FAT) | (labels == _RETRO_FAT)
    fat_amp = amplitude * lobule_image + 1.1 * _blur(septa, 0.5)
    amplitude = np.where(is_fat, fat_amp, amplitude)
    stiffness = np.where(is_fat, stiffness * (0.85 + 0.3 * (lobule_image - 0.75) / 0.55), stiffness)

    # Fibroglandular tissue: heterogeneous echo texture, streaks along the skin (ducts and
    # ligaments) and interspersed fat islands.
    texture = _smooth_field(rng, size, 10)
    streaks = _smooth_field(rng, size, max(8, int(28 * zoom)), 5)
    islands = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(3, 9))):
        center = (int(rng.uniform(0, size)), int(rng.uniform(fat.mean(), gland.mean()) * zoom * size))
        axes = (
            int(rng.uniform(0.03, 0.08) * zoom * size) + 1,
            int(rng.uniform(0.012, 0.03) * zoom * size) + 1,
        )
        cv2.ellipse(islands, center, axes, float(rng.uniform(-15, 15)), 0, 360, 1.0, -1)
    islands = _blur(islands, 0.01 * size)
    is_gland = labels == _GLAND
    gland_amp = np.exp(0.35 * texture + anatomy.streakiness * streaks) * (1.0 - 0.8 * islands)
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
        amplitude = amplitude + 1.2 * np.exp(-0.5 * ((ys - boundary) * zoom * size / 0.8) ** 2)

    # Rib: a bright curved surface that blocks the beam (black shadow below).
    if anatomy.has_rib:
        rib_top = float(muscle.min()) + 0.04
        if rib_top * zoom < 0.93:
            cx, cy = to_pixels(anatomy.rib_x, rib_top + 0.06)
            axes = (int(0.13 * zoom * size), int(0.06 * zoom * size))
            rib = np.zeros((size, size), np.uint8)
            cv2.ellipse(rib, (int(cx), int(cy)), axes, 0, 0, 360, 1, -1)
            rib_surface = rib.astype(np.float32) - cv2.erode(rib, np.ones((3, 3), np.uint8)).astype(np.float32)
            amplitude = amplitude + 8.0 * _blur(rib_surface, 0.7)
            # The beam is blocked just under the bony surface, so the surface itself shows.
            depth_shift = max(2, size // 100)
            attenuation[depth_shift:] += rib[:-depth_shift] * (8.0 / (0.02 * size))
            stiffness = np.where(rib > 0, 50.0, stiffness)

    # Look-alikes: never over the lesion (the guard), otherwise where the breast has them.
    footprint = np.zeros((size, size), np.uint8)
    for item in anatomy.distractors:
        column = int(np.clip(to_pixels(item.x, 0.0)[0], 0, size - 1))
        y_world = fat[column] + item.depth * (gland[column] - fat[column])
        cx, cy = to_pixels(item.x, y_world)
        if not (0 <= cx < size and 0 <= cy < size):
            continue
        shape = np.zeros((size, size), np.uint8)
        if item.kind == "ligament_shadow":
            half_width = max(1, int(round(item.half_axes[0] * zoom * size)))
            top = int(np.clip(fat[column] * zoom * size, 0, size - 1))
            left, right = max(0, int(cx) - half_width), min(size, int(cx) + half_width + 1)
            if (guard[:, left:right]).any():
                continue
            profile = np.exp(-0.5 * ((np.arange(left, right) - cx) / (0.6 * half_width)) ** 2)
            attenuation[top, left:right] += item.level * profile.astype(np.float32)
            continue
        axes = tuple(max(1, int(round(half * zoom * size))) for half in item.half_axes)
        cv2.ellipse(shape, (int(cx), int(cy)), axes, item.angle_deg, 0, 360, 1, -1)
        if (shape & guard).any() or not shape.any():
            continue
        footprint |= shape
        inside = shape.astype(np.float32)
        height = float(np.count_nonzero(shape.any(axis=1)))
        if item.kind == "fat_lobule":
            soft = _blur(inside, 0.006 * size + 0.5)
            amplitude = amplitude * (1 - soft) + item.level * np.exp(0.3 * texture) * soft
            density = density * (1 - soft) + 0.35 * soft
            stiffness = stiffness * (1 - soft) + 0.9 * soft
        else:  # fluid: anechoic with an echogenic wall, enhancement below (more for cysts)
            wall = cv2.dilate(shape, _disc(max(1, size // 200))).astype(np.float32) - inside
            soft = _blur(inside, 0.3)
            amplitude = amplitude * (1 - soft) * (1.0 + 0.8 * _blur(wall, 0.5)) + item.level * soft
            density = density * (1 - soft) + soft
            stiffness = stiffness * (1 - soft) + 0.5 * soft
            enhancement = 0.9 if item.kind == "cyst" else 0.35
            attenuation -= inside * (enhancement / height)
    return _Tissue(ys, amplitude, density, stiffness, attenuation, footprint)


def _insert_lesion_bmode(patient, tissue: _Tissue, mask, polygon, size, rng):
    """Hypoechoic lesion with its margin, internal echo pattern, echogenic halo, spicules and
    posterior feature (as extra attenuation, added to ``tissue.attenuation``).

    Returns:
        The blurred lesion footprint (the lesion's weight in each pixel).
    """
    amplitude, density = tissue.amplitude, tissue.density
    mask_f = mask.astype(np.float32)
    scale = size / 336.0
    edge_sigma = {
        "circumscribed": 0.6,
        "indistinct": float(rng.uniform(4.0, 12.0)),
        "angular": 1.0,
        "microlobulated": 1.0,
        "spiculated": 1.5,
    }[patient.margin]
    if patient.echo_pattern == "anechoic":
        edge_sigma = 0.4
    soft = _blur(mask_f, edge_sigma * scale + 0.3)
    if patient.echo_pattern in ("heterogeneous", "complex"):
        texture = np.exp(0.75 * _smooth_field(rng, size, 24) + 0.3 * _smooth_field(rng, size, 48))
    else:
        texture = np.exp(0.15 * _smooth_field(rng, size, 24))
    lesion_amp = patient.echo_level * texture
    if patient.echo_pattern == "complex":
        # Cystic spaces inside a solid mass.
        cystic = _blur((_smooth_field(rng, size, 14) > 0.4).astype(np.float32), 1.0 * scale + 0.3)
        lesion_amp = lesion_amp * (1 - cystic) + _FLUID_AMPLITUDE * cystic
    # Microcalcifications: bright specks inside heterogeneous irregular masses.
    if patient.echo_pattern == "heterogeneous" and patient.shape_class in ("irregular", "spiculated"):
        ys, xs = np.nonzero(mask)
        for i in rng.choice(len(ys), size=min(len(ys), int(rng.integers(0, 7))), replace=False):
            lesion_amp[ys[i], xs[i]] = 4.0
    if patient.margin == "spiculated":
        # Spicules show as alternating hypo- and hyperechoic lines; their tails reach beyond
        # the traced outline into the surrounding tissue.
        border = cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(np.float32) - mask_f
        amplitude = amplitude * (1.0 + 1.5 * _blur(border, 0.5))
        center = polygon.mean(axis=0)
        tails = np.zeros((size, size), np.uint8)
        for _ in range(int(rng.integers(4, 11))):
            point = polygon[int(rng.integers(len(polygon)))]
            direction = (point - center) / (np.linalg.norm(point - center) + 1e-6)
            length = rng.uniform(0.3, 0.8) * np.linalg.norm(point - center)
            end = point + direction * length
            cv2.line(tails, tuple(int(v) for v in point), tuple(int(v) for v in end), 1, max(1, round(1.5 * scale)))
        tails = _blur((tails & (1 - mask)).astype(np.float32), 0.5)
        amplitude = amplitude * (1.0 - 0.6 * tails)
    if patient.echogenic_halo:
        thickness = max(2, int(round(rng.uniform(0.02, 0.035) * size)))
        ring = cv2.dilate(mask, _disc(thickness)).astype(np.float32) - mask_f
        ring = _blur(ring * (0.7 + 0.6 * (_smooth_field(rng, size, 16) > 0)), thickness * 0.4)
        amplitude = amplitude * (1.0 + 1.6 * ring)
    if patient.echo_pattern == "anechoic":
        # The cyst's thin echogenic wall.
        wall = cv2.dilate(mask, _disc(max(1, size // 200))).astype(np.float32) - mask_f
        amplitude = amplitude * (1.0 + 0.8 * _blur(wall, 0.5))
    tissue.amplitude = amplitude * (1.0 - soft) + lesion_amp * soft
    tissue.density = density * (1.0 - soft) + soft
    tissue.attenuation = tissue.attenuation + _lesion_attenuation(patient, soft, mask, size, rng)
    return soft


def _lesion_attenuation(patient, soft_lesion, mask, size, rng) -> np.ndarray:
    """Extra (or reduced) attenuation entered inside the lesion; integrated along each beam line
    it makes the posterior feature start at the lesion and persist below it.

    Shadowing masses attenuate more than the tissue around them, increasingly towards their
    deep part, so that the lower border sinks into the shadow; fluid-like ones attenuate less
    (posterior enhancement). Smooth round masses and cysts refract at their sides: thin lateral
    edge shadows.
    """
    rows = np.nonzero(mask.any(axis=1))[0]
    top, height = float(rows[0]), float(rows[-1] - rows[0] + 1)
    if patient.posterior == "shadowing":
        coefficient = rng.uniform(1.2, 3.2)
        ramp = np.clip((np.arange(size, dtype=np.float32)[:, None] - top) / height, 0.0, 1.0)
        extra = soft_lesion * (2.0 * coefficient / height) * ramp
    else:
        coefficient = {
            "none": rng.uniform(-0.1, 0.1),
            "enhancement": -rng.uniform(1.0, 1.6) if patient.echo_pattern == "anechoic" else -rng.uniform(0.7, 1.2),
        }[patient.posterior]
        extra = soft_lesion * (coefficient / height)
    smooth = patient.margin == "circumscribed" and patient.shape_class in ("oval", "round")
    if smooth and rng.random() < (0.7 if patient.echo_pattern == "anechoic" else 0.35):
        # Widest row: edge shadows start where the beam grazes the lesion's sides.
        widths = mask.sum(axis=1)
        row = int(np.argmax(widths))
        columns = np.nonzero(mask[row])[0]
        half_width = max(1.0, 0.004 * size)
        for column in (columns[0] - 0.5, columns[-1] + 0.5):
            near = np.arange(max(0, int(column - 3 * half_width)), min(size, int(column + 3 * half_width) + 1))
            profile = np.exp(-0.5 * ((near - column) / half_width) ** 2).astype(np.float32)
            extra[row, near] += rng.uniform(0.6, 1.5) * profile
    return extra


def _posterior_factor(attenuation: np.ndarray, size: int) -> np.ndarray:
    """Echo amplitude factor from the extra attenuation accumulated along each beam line."""
    path = np.cumsum(attenuation, axis=0)
    path = cv2.blur(path, (max(1, size // 80) * 2 + 1, 1))  # beam width softens shadow edges
    return np.exp(-np.clip(path, -1.2, 12.0))


def _receiver_gain_db(view: _View, depth: np.ndarray, size: int) -> np.ndarray:
    """Display gain in dB per pixel: overall gain, TGC (a share of the depth attenuation plus
    uneven slider bands) and, sometimes, a dark lateral strip where the probe lost contact."""
    image_depth = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None]
    knots = np.linspace(0.0, 1.0, len(view.tgc_bands_db))
    bands = np.interp(image_depth, knots, view.tgc_bands_db).astype(np.float32)
    gain = view.gain_db + view.tgc_fraction * _ATTENUATION_DB * depth + bands
    side, width, loss_db = view.contact_loss
    if side:
        xs = np.linspace(0.0, 1.0, size, dtype=np.float32)[None, :]
        distance = xs if side < 0 else 1.0 - xs
        gain = gain - loss_db * np.clip(1.0 - distance / width, 0.0, 1.0) ** 1.5
    return np.broadcast_to(gain, (size, size)).astype(np.float32)


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


def _elastogram(stiffness, ys, bmode, roi, view: _View, size, rng, cyst=None) -> np.ndarray:
    """Normalised display strain in [0, 1] (0 hard, 0.5 ROI average, 1 soft).

    Strain ~ stress / stiffness with the applied stress decaying with depth and slightly uneven
    across the probe; blurred by displacement tracking (more when the pressure is off its
    ideal); expressed relative to the ROI mean (SE is relative); plus decorrelation
    noise that grows with depth and in dark (low-echo) regions. Inside a cyst (``cyst``: its
    mask), fluid decorrelation gives the layered blue (top) - green - red (bottom) artefact.
    """
    scale = size / 336.0
    off_pressure = abs(view.pressure - 1.0)
    lateral_tilt = float(rng.uniform(-0.15, 0.15))
    xs = np.linspace(-0.5, 0.5, size, dtype=np.float32)[None, :]
    stress = view.pressure * (1.0 - 0.45 * np.clip(ys, 0.0, 1.2)) * (1.0 + lateral_tilt * xs)
    log_strain = np.log(_blur(stress / stiffness, (2.5 + 4.0 * off_pressure) * scale + 0.4))
    top, left, bottom, right = roi
    log_strain -= float(log_strain[top:bottom, left:right].mean())
    # Over- or under-pressing compresses the displayed contrast.
    gain = 0.36 * (1.0 - 0.5 * off_pressure)
    display = 0.5 + gain * log_strain / math.log(2.0)
    if cyst is not None:
        rows = np.nonzero(cyst.any(axis=1))[0]
        layered = np.clip((np.arange(size, dtype=np.float32)[:, None] - rows[0]) / max(1, rows[-1] - rows[0]), 0, 1)
        weight = _blur(cyst.astype(np.float32), 1.5 * scale + 0.3)
        display = display * (1 - weight) + (0.12 + 0.76 * layered) * weight
    darkness = 1.0 - _blur(bmode.astype(np.float32), 3.0 * scale + 0.5) / 255.0
    noise_sd = (0.03 + 0.08 * ys + 0.08 * darkness**2) * (1.0 + 1.5 * off_pressure)
    noise_sigma = 4.0 * scale + 0.5
    noise = _blur(rng.standard_normal((size, size), dtype=np.float32), noise_sigma)
    noise = noise * (2 * math.sqrt(math.pi) * noise_sigma)
    return np.clip(display + noise_sd * noise, 0.0, 1.0).astype(np.float32)


def _annotate(bmode: np.ndarray, mask: np.ndarray, zoom: float, rng: np.random.Generator):
    """Burn operator marks into a B-mode image, as clinical archives have them.

    Caliper markers (``+`` or ``x``) sit just outside the lesion at the ends of its longest
    diameter and, often, of the perpendicular one, joined by dotted lines across the lesion;
    text labels go to a corner clear of the lesion; depth ticks and a focus marker run along a
    side. Returns the marked image and the (uint8 0/1) footprint of the marks.
    """
    size = bmode.shape[0]
    scale = size / 336.0
    ink = np.zeros((size, size), np.uint8)
    thickness = max(1, int(round(scale)))
    ys, xs = np.nonzero(mask)
    points = np.stack([xs, ys], axis=1).astype(np.float32)
    center = points.mean(axis=0)
    if len(points) > 2:
        _, vectors = np.linalg.eigh(np.cov((points - center).T))
        axes = [vectors[:, 1], vectors[:, 0]]  # longest diameter first
    else:
        axes = [np.array([1.0, 0.0]), np.array([0.0, 1.0])]
    calipers, text, depth_scale = rng.random(3) < (0.75, 0.8, 0.6)
    if calipers:
        arm = max(2, int(round(rng.uniform(0.01, 0.018) * size)))
        marker = "+" if rng.random() < 0.7 else "x"
        for axis in axes[: 1 + int(rng.random() < 0.6)]:
            projection = (points - center) @ axis
            ends = []
            for extreme, sign in ((projection.min(), -1.0), (projection.max(), 1.0)):
                # The operator clicks on the border; the marker sits just outside the outline.
                end = center + axis * (extreme + sign * (arm + 1.5))
                ends.append(np.clip(end, arm + 1, size - arm - 2))
            for x, y in ends:
                x, y = int(round(x)), int(round(y))
                if marker == "+":
                    cv2.line(ink, (x - arm, y), (x + arm, y), 255, thickness)
                    cv2.line(ink, (x, y - arm), (x, y + arm), 255, thickness)
                else:
                    cv2.line(ink, (x - arm, y - arm), (x + arm, y + arm), 255, thickness)
                    cv2.line(ink, (x - arm, y + arm), (x + arm, y - arm), 255, thickness)
            step = max(3.0, rng.uniform(0.009, 0.015) * size)
            start, stop = ends
            length = float(np.linalg.norm(stop - start))
            for t in np.arange(arm + 2, length - arm - 1, step) / max(length, 1e-6):
                x, y = np.round(start + t * (stop - start)).astype(int)
                cv2.circle(ink, (int(x), int(y)), thickness - 1, 200, -1)
    font_scale = 0.5 * scale * rng.uniform(0.8, 1.4)
    guard = cv2.dilate(mask, _disc(max(1, size // 60)))
    if text:
        label = _TEXT_LABELS[int(rng.integers(len(_TEXT_LABELS)))]
        (width, height), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        corners = [
            (int(0.04 * size), int(0.95 * size)),
            (int(0.96 * size) - width, int(0.95 * size)),
            (int(0.5 * size - width / 2), int(0.93 * size)),
            (int(0.04 * size), int(0.05 * size) + height),
        ]
        for index in rng.permutation(len(corners)):
            x, y = corners[index]
            box = guard[max(0, y - height - 2) : y + 3, max(0, x - 2) : x + width + 2]
            if not box.any():
                cv2.putText(ink, label, (x, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, 230, thickness, cv2.LINE_AA)
                break
    if depth_scale or not ink.any():  # an annotated view has at least one mark
        # Depth scale: a dot per centimetre (the field is ~4 cm at zoom 1), focus marker.
        column = int(0.985 * size) - thickness
        spacing = size * zoom / 4.0
        for depth in np.arange(spacing, size - 2, spacing):
            cv2.circle(ink, (column, int(depth)), thickness, 180, -1)
        focus = int(rng.uniform(0.3, 0.7) * size)
        tip = int(0.965 * size)
        half = max(2, int(0.012 * size))
        cv2.fillPoly(ink, [np.array([[tip, focus], [size - 1, focus - half], [size - 1, focus + half]])], 210)
    alpha = ink.astype(np.float32) / 255.0
    level = np.where(ink > 0, np.maximum(ink, 200), 0).astype(np.float32)
    marked = np.clip(bmode * (1 - alpha) + level * alpha, 0, 255).astype(np.uint8)
    return marked, (ink > 0).astype(np.uint8)


def render_pair(
    patient: PatientParams,
    view_index: int,
    image_size: int,
    seed: int,
    return_strain: bool = False,
    annotation_fraction: float = PhantomConfig.annotation_fraction,
    return_layers: bool = False,
) -> dict:
    """Render one B-mode / SE-mode pair of a patient.

    The random stream is derived from ``(seed, patient.index, view_index)`` alone: a pair is
    deterministic in its arguments and independent of any other pair. Whether the view carries
    burnt-in marks, and which, comes from a stream of its own, so ``annotation_fraction``
    changes nothing else in the images.

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
        annotation_fraction: probability that this view has operator marks burnt into its
            B-mode (``PhantomConfig.annotation_fraction``; ``iter_phantom`` passes the config's).
        return_layers: also return ``annotations`` and ``distractors``, uint8 (H, W) 0/1 maps
            of the burnt-in marks and of the look-alikes' footprints (neither is in the mask),
            and ``bmode_unmarked``, the B-mode before the marks (the SE-mode's underlay).

    Returns:
        The schema dict (``tf_bimodal.schema``) plus ``ground_truth``.
    """
    if image_size < 32:
        raise ValueError(f"render_pair: image_size must be >= 32, got {image_size}")
    if view_index < 0:
        raise ValueError(f"render_pair: view_index must be >= 0, got {view_index}")
    if not 0.0 <= annotation_fraction <= 1.0:
        raise ValueError(f"render_pair: annotation_fraction must be in [0, 1], got {annotation_fraction}")
    size = int(image_size)
    # Tagged (2) so that no render stream coincides with a patient-parameter stream (1).
    rng = np.random.default_rng([seed, 2, patient.index, view_index])
    view = _draw_view(rng)
    anatomy = _Anatomy(patient.anatomy_seed, patient.num_distractors)

    polygon = _lesion_polygon(patient, view, size)
    mask = _fill(polygon, size)
    if not mask.any():  # a degenerate outline can only happen for tiny images; keep a seed pixel
        cx, cy = np.clip(np.round(polygon.mean(axis=0)).astype(int), 0, size - 1)
        mask[cy, cx] = 1
    lesion_bottom = float(polygon[:, 1].max()) / size
    guard = cv2.dilate(mask, _disc(max(2, int(0.04 * size))))

    tissue = _tissue_maps(anatomy, view, size, lesion_bottom, guard, rng)
    _insert_lesion_bmode(patient, tissue, mask, polygon, size, rng)
    depth = tissue.depth
    # Depth attenuation (~30 dB over a zoom-1 field at 10 MHz), extra attenuation of lesions,
    # look-alikes and ribs; then the receiver's noise floor, and TGC/gain amplify both.
    echoes = tissue.amplitude * _posterior_factor(tissue.attenuation, size)
    echoes = echoes * (10.0 ** (-_ATTENUATION_DB * depth / 20.0)).astype(np.float32)
    floor = 10.0 ** (view.noise_floor_db / 20.0)
    power = echoes**2 + floor**2
    amplitude = np.sqrt(power) * 10.0 ** (_receiver_gain_db(view, depth, size) / 20.0)
    density = tissue.density + (1.0 - tissue.density) * (floor**2 / power)  # noise is fully developed

    speckle_scale = anatomy.speckle_scale * anatomy.zoom * view.scale
    envelope = _envelope(amplitude, np.clip(density, 0.05, 1.0), rng, speckle_scale)
    # Light smoothing of the log image, as scanner post-processing (compounding) does.
    decibels = _blur(20.0 * np.log10(envelope + 1e-6), 0.5 * size / 336.0)
    dynamic_range = view.dynamic_range_db
    grey = (decibels + _GLAND_LEVEL_DB + dynamic_range) * (255.0 / dynamic_range)
    bmode = np.clip(grey, 0, 255).astype(np.uint8)

    stiffness = _stiffness_with_lesion(patient, tissue.stiffness, mask, polygon, size, rng)
    roi = _roi(polygon, patient.se_size_ratio if patient.elasticity_score == 5 else 1.0, view, size)
    cyst = mask if patient.echo_pattern == "anechoic" else None
    strain = _elastogram(stiffness, depth, bmode, roi, view, size, rng, cyst)

    top, left, bottom, right = roi
    semode = np.repeat(bmode[:, :, None], 3, axis=2)
    colour = strain_to_rgb(strain[top:bottom, left:right]).astype(np.float32)
    under = semode[top:bottom, left:right].astype(np.float32)
    semode[top:bottom, left:right] = np.clip((1 - _SE_ALPHA) * under + _SE_ALPHA * colour, 0, 255).astype(np.uint8)
    # ROI frame, as drawn by the scanner.
    cv2.rectangle(semode, (left - 1, top - 1), (right, bottom), (210, 210, 210), 1)

    marks_rng = np.random.default_rng([seed, 4, patient.index, view_index])
    annotations = np.zeros((size, size), np.uint8)
    marked = bmode
    if marks_rng.random() < annotation_fraction:
        marked, annotations = _annotate(bmode, mask, anatomy.zoom * view.scale, marks_rng)

    example = {
        "image_id": f"{patient.patient_id}_v{view_index}",
        "patient_id": patient.patient_id,
        "label": patient.label,
        "bmode": marked[:, :, None],
        "semode": semode,
        "mask": mask[:, :, None],
        "has_semode": True,
        "has_mask": True,
        "ground_truth": patient.ground_truth(int(mask.sum())),
    }
    if return_strain:
        example["strain"] = strain
        example["se_roi"] = roi
    if return_layers:
        example["annotations"] = annotations
        example["distractors"] = tissue.distractors
        example["bmode_unmarked"] = bmode[:, :, None]
    return example


def iter_phantom(config: PhantomConfig = PhantomConfig()) -> Iterator[dict]:
    """Yield every pair of the cohort: patients in id order, views ``0 .. num_pairs - 1``.

    Images are ``config.image_size`` pixels square, rendered with seed ``config.seed`` and
    marked on ``config.annotation_fraction`` of the views.
    """
    for patient in sample_patients(config):
        for view_index in range(patient.num_pairs):
            yield render_pair(
                patient, view_index, config.image_size, config.seed, annotation_fraction=config.annotation_fraction
            )


# ---------------------------------------------------------------------------------------------
# Calibration and figures
# ---------------------------------------------------------------------------------------------


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
