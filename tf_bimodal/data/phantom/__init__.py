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

Modules: :mod:`~tf_bimodal.data.phantom.lexicon` (vocabularies and ground-truth keys),
:mod:`~tf_bimodal.data.phantom.patients` (the lesion model and the cohort),
:mod:`~tf_bimodal.data.phantom.anatomy` (the breast, the view and the tissue maps),
:mod:`~tf_bimodal.data.phantom.lesion`, :mod:`~tf_bimodal.data.phantom.bmode`,
:mod:`~tf_bimodal.data.phantom.semode` and :mod:`~tf_bimodal.data.phantom.annotations` (what
each image shows), :mod:`~tf_bimodal.data.phantom.render` (one pair),
:mod:`~tf_bimodal.data.phantom.generator` (the cohort for the TFDS builder) and
:mod:`~tf_bimodal.data.phantom.calibration` (``difficulty_table``), on top of
:mod:`~tf_bimodal.data.phantom.raster` (shared raster operations).

Example:
    >>> from tf_bimodal.config import PhantomConfig
    >>> from tf_bimodal.data import phantom
    >>> patients = phantom.sample_patients(PhantomConfig(num_benign_patients=1,
    ...                                                  num_malignant_patients=1))
    >>> example = phantom.render_pair(patients[0], view_index=0, image_size=128, seed=0)
    >>> example["bmode"].shape, example["semode"].shape, example["mask"].shape
    ((128, 128, 1), (128, 128, 3), (128, 128, 1))
"""

from tf_bimodal.data.phantom.calibration import difficulty_table
from tf_bimodal.data.phantom.generator import iter_phantom
from tf_bimodal.data.phantom.lexicon import (
    DISTRACTOR_KINDS,
    ECHO_PATTERNS,
    ELASTICITY_SCORES,
    GROUND_TRUTH_KEYS,
    GROUND_TRUTH_TYPES,
    GROUND_TRUTH_VOCABULARIES,
    MARGINS,
    ORIENTATIONS,
    POSTERIOR_FEATURES,
    SHAPE_CLASSES,
)
from tf_bimodal.data.phantom.patients import PatientParams, sample_patients
from tf_bimodal.data.phantom.render import render_pair
from tf_bimodal.data.phantom.semode import ELASTO_LUT, strain_to_rgb

__all__ = [
    "DISTRACTOR_KINDS",
    "ECHO_PATTERNS",
    "ELASTICITY_SCORES",
    "ELASTO_LUT",
    "GROUND_TRUTH_KEYS",
    "GROUND_TRUTH_TYPES",
    "GROUND_TRUTH_VOCABULARIES",
    "MARGINS",
    "ORIENTATIONS",
    "POSTERIOR_FEATURES",
    "SHAPE_CLASSES",
    "PatientParams",
    "difficulty_table",
    "iter_phantom",
    "render_pair",
    "sample_patients",
    "strain_to_rgb",
]
