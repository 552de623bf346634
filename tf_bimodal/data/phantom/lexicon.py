"""The phantom's vocabularies: BI-RADS ultrasound lexicon descriptors, the Itoh elasticity score,
the keys of each example's ``ground_truth`` and the kinds of lesion look-alikes."""

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
