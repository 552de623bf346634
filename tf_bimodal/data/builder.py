"""TFDS builder ``bimodal_breast_us``: B-mode + SE-mode breast ultrasound (Misra et al. 2022).

The builder belongs to the data layer (it reads with :mod:`tf_bimodal.data.readers` and
:mod:`tf_bimodal.data.phantom`, and :mod:`tf_bimodal.data.dataset` loads through it). Its
description and citation (``README.md``, ``CITATIONS.bib``) ship with it, in
``tf_bimodal/data/bimodal_breast_us/``, so an installed package needs nothing outside itself.
TFDS's dataset folder ``tfds_builder/bimodal_breast_us/`` (the module ``tfds build`` reads,
``dummy_data/`` and the conformance test) re-exports the builder, so imports run one way:
``tfds_builder`` -> ``tf_bimodal.data``.

One builder, four sources, one example format (:mod:`tf_bimodal.schema`):

* ``clinical``: the user's B/SE pairs listed in ``manual_dir/manifest.csv`` (paper §3.1).
* ``busi``: the public B-mode-only BUSI dataset in ``manual_dir`` (no SE image).
* ``busbra``: the public B-mode-only BUS-BRA dataset (Gómez-Flores et al., Medical Physics
  2024) in its release layout in ``manual_dir`` (no SE image; patient ids, BI-RADS, histology,
  scanner, side and its own test folds kept as features).
* ``phantom``: the synthetic bimodal phantom (:mod:`tf_bimodal.data.phantom`); needs no files.

Everything is read and written locally: the builder never looks up Google Cloud Storage (no
pre-computed dataset info, no pre-built dataset download), whatever ``DownloadConfig`` says.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from tf_bimodal.config import BUSI_DUPLICATE_RULES, DATA_SOURCES, DataConfig, PhantomConfig, check_choice
from tf_bimodal.data import phantom as phantom_lib
from tf_bimodal.data import readers
from tf_bimodal.data.errors import DataError
from tf_bimodal.data.fingerprint import source_fingerprint
from tf_bimodal.schema import DEFAULT_IMAGE_SIZE, EXAMPLE_KEYS, LABELS, METADATA_DEFAULTS

logger = logging.getLogger(__name__)

MIN_IMAGE_SIZE = 32

DATASET_FOLDER = pathlib.Path(__file__).resolve().parent / "bimodal_breast_us"
"""TFDS's metadata folder of this dataset (``pkg_dir_path``): its ``README.md`` (the
description) and ``CITATIONS.bib``, package data of :mod:`tf_bimodal.data`."""

@dataclasses.dataclass(eq=False)
class BimodalBreastUsConfig(tfds.core.BuilderConfig):
    """Which source to read and at which size.

    Attributes:
        source: ``clinical``, ``busi``, ``busbra`` or ``phantom`` (``tf_bimodal.config.DATA_SOURCES``).
        image_size: side of the square stored images (paper §3.1: 336).
        phantom: phantom settings, used when ``source == "phantom"``; its ``image_size`` is
            replaced by this config's ``image_size``, which is the one that counts.
        busi_duplicates: how BUSI's near-duplicates become pseudo-patients, used when
            ``source == "busi"`` (``tf_bimodal.config.DataConfig.busi_duplicates``).

    Example:
        ``BimodalBreastUsConfig(name="phantom_64", source="phantom", image_size=64,
        phantom=PhantomConfig(num_benign_patients=3, num_malignant_patients=3))``
    """

    source: str = "clinical"
    image_size: int = DEFAULT_IMAGE_SIZE
    phantom: PhantomConfig = dataclasses.field(default_factory=PhantomConfig)
    busi_duplicates: str = DataConfig.busi_duplicates

    def __post_init__(self):
        check_choice("BimodalBreastUsConfig", "source", self.source, DATA_SOURCES)
        check_choice("BimodalBreastUsConfig", "busi_duplicates", self.busi_duplicates, BUSI_DUPLICATE_RULES)
        if not isinstance(self.image_size, int) or self.image_size < MIN_IMAGE_SIZE:
            raise ValueError(
                f"BimodalBreastUsConfig: image_size must be an int >= {MIN_IMAGE_SIZE}, "
                f"got {self.image_size!r}"
            )
        if self.phantom.image_size != self.image_size:
            self.phantom = dataclasses.replace(self.phantom, image_size=self.image_size)
        if self.description is None:
            self.description = _CONFIG_DESCRIPTIONS[self.source].format(size=self.image_size)


_CONFIG_DESCRIPTIONS = {
    "clinical": "The user's clinical B-mode + SE-mode pairs (manifest.csv), {size}x{size} px.",
    "busi": "Public BUSI images, B-mode only (no SE image), {size}x{size} px.",
    "busbra": "Public BUS-BRA images, B-mode only (no SE image), with patient ids and folds, {size}x{size} px.",
    "phantom": "Synthetic bimodal phantom with ground truth, {size}x{size} px.",
}


_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Only the `clinical`, `busi` and `busbra` configs read files; `phantom` needs none and never looks at
`manual_dir`. Pass the folder with
`tfds.download.DownloadConfig(manual_dir=...)`.

clinical: a folder holding `manifest.csv` and the images it lists (paths relative to the
folder). Columns, comma separated, with a header row:

    patient_id,label,bmode,semode,mask
    P001,benign,P001/b1.png,P001/se1.png,P001/mask1.png
    P002,malignant,P002/b1.dcm,P002/se1.png,

* `patient_id` (required): every row of one patient must carry the same label.
* `label` (required): `benign` or `malignant` (biopsy result).
* `bmode` + `semode`: the two images of a pair, of equal size; the SE-mode image is the
  colour strain map. PNG, JPEG, BMP, TIFF or DICOM.
* or `dual_view` instead: one scanner screenshot with the B-mode and SE-mode panes side by
  side; the panes are found automatically (the SE pane is the coloured one), or give
  `dual_view_boxes` as `x0 y0 x1 y1;x0 y0 x1 y1` (pixels, B-mode box first).
* `mask` (optional): the lesion drawn on the B-mode image (any non-zero pixel is lesion),
  of the B-mode image's size (for a dual view: the B-mode pane's or the whole screenshot's).

busi: the public BUSI dataset (Al-Dhabyani et al. 2020) as published: `manual_dir` contains
`Dataset_BUSI_with_GT/` (or is that folder), holding `benign/`, `malignant/` and `normal/`
with `<class> (N).png` and its masks `<class> (N)_mask.png`, `<class> (N)_mask_1.png`, ...
BUSI has no patient ids: near-duplicate images (one scan saved twice) are grouped into one
pseudo-patient, and groups filed under two labels are left out (`busi_duplicates`).

busbra: the public BUS-BRA dataset (Gómez-Flores et al., Medical Physics 2024) in its release layout:
`manual_dir` holds `Images/bus_NNNN-{l,r,s}.png`, `Masks/mask_NNNN-{l,r,s}.png`,
`bus_data.csv` (`ID, Case, Histology, Pathology, BIRADS, Device, Width, Height, Side, BBOX`)
and, optionally, `5-fold-cv.csv` and `10-fold-cv.csv`. `Case` is the patient id.
"""


class _LocalDatasetInfo(tfds.core.DatasetInfo):
    """Dataset info that is never initialised from the public TFDS GCS bucket.

    This dataset is never hosted there; skipping the lookup keeps the builder offline.
    """

    def initialize_from_bucket(self) -> None:
        return None


class BimodalBreastUs(tfds.core.GeneratorBasedBuilder):
    """B-mode + strain-elastography breast ultrasound (Misra et al. 2022, §3.1).

    Configs ``clinical``, ``busi``, ``busbra`` and ``phantom`` store 336 x 336 images (paper §3.1); make
    others with :class:`BimodalBreastUsConfig`. All examples go to the one split ``train``;
    cross-validation folds are drawn at patient level later (``tf_bimodal.data.splits``).

    Bad input files raise :class:`tf_bimodal.data.errors.DataError` naming the file and the
    rule; the clinical manifest is validated before any image is read. TFDS writes into a
    temporary folder and renames it only when everything succeeded, so a failed or interrupted
    build never leaves a dataset that looks prepared. The source's fingerprint
    (:mod:`tf_bimodal.data.fingerprint`) is stored in ``metadata.json`` of the prepared data.
    """

    VERSION = tfds.core.Version("1.4.0")
    RELEASE_NOTES = {
        "1.0.0": "Clinical folders, BUSI and the synthetic phantom.",
        "1.1.0": "Phantom lesions range from markedly hypoechoic to nearly isoechoic.",
        "1.2.0": "Prepared data record the fingerprint of their source (metadata.json).",
        "1.3.0": "BUSI: near-duplicate images are one pseudo-patient (busi_group_<class>_<N>); "
                 "groups with two labels are left out by default (DataConfig.busi_duplicates). "
                 "A phantom as hard as clinical images: look-alikes without a mask, burnt-in calipers "
                 "and text, shadowing that hides the lower border, wider size and gain spread.",
        "1.4.0": "BUS-BRA (busbra). Every example records pathology, BI-RADS, histology, device, side and "
                 "the source's own test folds (test_fold_5, test_fold_10); empty text or 0 where a source "
                 "records none.",
    }
    BUILDER_CONFIGS = [
        BimodalBreastUsConfig(name="clinical", source="clinical"),
        BimodalBreastUsConfig(name="busi", source="busi"),
        BimodalBreastUsConfig(name="busbra", source="busbra"),
        BimodalBreastUsConfig(name="phantom", source="phantom"),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "phantom"
    MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
    # The description and citation (README.md, CITATIONS.bib) ship with the package.
    pkg_dir_path = epath.Path(DATASET_FOLDER)

    def download_and_prepare(self, *, download_dir=None, download_config=None, **kwargs):
        """Prepare the dataset; like TFDS's, but never tries to fetch a pre-built copy from GCS."""
        download_config = dataclasses.replace(
            download_config or tfds.download.DownloadConfig(), try_download_gcs=False
        )
        return super().download_and_prepare(
            download_dir=download_dir, download_config=download_config, **kwargs
        )

    # TFDS prints these two with ``print`` (standard output, whatever the log level); the
    # package's own lines say the same, on its logger.
    def _log_download_bytes(self) -> None:
        logger.info(f"Preparing {self.name}/{self.builder_config.name} in {self.data_dir} (once: later runs reuse it)")

    def _log_download_done(self) -> None:
        logger.info(f"Prepared {self.name}/{self.builder_config.name} in {self.data_dir}")

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        features = {
            "image_id": tfds.features.Text(),
            "patient_id": tfds.features.Text(),
            "label": tfds.features.ClassLabel(names=list(LABELS)),
            "bmode": tfds.features.Image(shape=(size, size, 1)),
            "semode": tfds.features.Image(shape=(size, size, 3)),
            "mask": tfds.features.Image(shape=(size, size, 1)),
            "has_semode": tfds.features.Tensor(shape=(), dtype=np.bool_),
            "has_mask": tfds.features.Tensor(shape=(), dtype=np.bool_),
        }
        features.update({key: _feature_for(type(default)) for key, default in METADATA_DEFAULTS.items()})
        if self.builder_config.source == "phantom":
            features["ground_truth"] = tfds.features.FeaturesDict(_ground_truth_features())
        metadata = self.get_metadata()
        return _LocalDatasetInfo(
            builder=self,
            description=metadata.description,
            features=tfds.features.FeaturesDict(features),
            supervised_keys=None,
            homepage="https://doi.org/10.1002/btm2.10480",
            citation=metadata.citation,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        source = self.builder_config.source
        if source == "phantom":
            self.info.metadata["source_fingerprint"] = source_fingerprint(
                source, phantom=self.builder_config.phantom
            )
            return {"train": self._generate_examples(source=source)}
        manual_dir = _manual_dir(dl_manager, source)
        # Stored with the prepared data (metadata.json), checked on every load.
        self.info.metadata["source_fingerprint"] = source_fingerprint(
            source, manual_dir=manual_dir, busi_duplicates=self.builder_config.busi_duplicates
        )
        if source == "clinical":
            records = readers.read_manifest(manual_dir)  # fail before any image is decoded
            examples = self._generate_examples(
                source=source, manual_dir=manual_dir, records=records
            )
            return {"train": examples}
        if source == "busbra":
            records = readers.read_busbra(manual_dir)  # fail before any image is decoded
            return {"train": self._generate_examples(source=source, manual_dir=manual_dir, records=records)}
        groups = readers.busi_groups(manual_dir, self.builder_config.busi_duplicates)
        self.info.metadata["busi_duplicates"] = groups.summary()
        return {"train": self._generate_examples(source=source, manual_dir=manual_dir, groups=groups)}

    def _generate_examples(self, source: str, manual_dir: str | None = None, records=None, groups=None):
        size = self.builder_config.image_size
        if source == "clinical":
            examples = readers.iter_clinical(manual_dir, size, records=records)
        elif source == "busi":
            examples = readers.iter_busi(manual_dir, size, groups=groups)
        elif source == "busbra":
            examples = readers.iter_busbra(manual_dir, size, records=records)
        else:
            examples = phantom_lib.iter_phantom(self.builder_config.phantom)
        for example in examples:
            stored = _checked_example(example, size, with_ground_truth=source == "phantom")
            yield stored["image_id"], stored


def _ground_truth_features() -> dict:
    """FeaturesDict spec of the phantom's ``ground_truth``: int32, float32 or Text per key,
    from ``phantom.GROUND_TRUTH_TYPES``."""
    return {key: _feature_for(phantom_lib.GROUND_TRUTH_TYPES[key]) for key in phantom_lib.GROUND_TRUTH_KEYS}


def _feature_for(kind):
    if kind in (str, bytes) or kind == "str":
        return tfds.features.Text()
    dtype = np.dtype(kind)
    if dtype.kind == "b":
        return tfds.features.Tensor(shape=(), dtype=np.bool_)
    if dtype.kind in "iu":
        return tfds.features.Tensor(shape=(), dtype=np.int32)
    if dtype.kind == "f":
        return tfds.features.Tensor(shape=(), dtype=np.float32)
    return tfds.features.Text()


def _manual_dir(dl_manager, source: str) -> str:
    try:
        return str(dl_manager.manual_dir)
    except AssertionError as error:
        raise DataError(
            "manual_dir",
            f"the {source!r} config reads the user's files: give an existing, non-empty folder "
            f"with tfds.download.DownloadConfig(manual_dir=...) ({str(error).splitlines()[0]})",
        ) from None


def _checked_example(example: dict, size: int, with_ground_truth: bool) -> dict:
    """Keep the schema keys (plus ground truth) and check shapes before TFDS encodes them; what
    the source does not record of the case gets ``schema.METADATA_DEFAULTS``.

    A wrong example would otherwise fail deep inside TFDS with the whole array in the message.
    """
    where = str(example.get("image_id", "example"))
    missing = [key for key in EXAMPLE_KEYS if key not in example]
    if with_ground_truth and "ground_truth" not in example:
        missing.append("ground_truth")
    if missing:
        raise DataError(where, f"example lacks keys {missing}")
    stored = {key: example[key] for key in EXAMPLE_KEYS}
    if stored["label"] not in LABELS:
        raise DataError(where, f"unknown label {stored['label']!r}; expected one of {LABELS}")
    for key, channels in (("bmode", 1), ("semode", 3), ("mask", 1)):
        array = np.asarray(stored[key])
        if array.shape != (size, size, channels) or array.dtype != np.uint8:
            raise DataError(
                where,
                f"{key} must be uint8 {(size, size, channels)}, got {array.dtype} {array.shape}",
            )
        stored[key] = array
    if stored["mask"].max(initial=0) > 1:
        raise DataError(where, "mask values must be 0 or 1")
    stored["has_semode"] = bool(stored["has_semode"])
    stored["has_mask"] = bool(stored["has_mask"])
    for key, default in METADATA_DEFAULTS.items():
        value = example.get(key, default)
        stored[key] = int(value) if isinstance(default, int) else str(value)
    if with_ground_truth:
        stored["ground_truth"] = dict(example["ground_truth"])
    return stored
