"""Settings of the data: its source, the synthetic phantom, the patient-level splits, the
training augmentation and the lesion crop (paper §3.1, §3.4)."""

from __future__ import annotations

import dataclasses

from tf_bimodal.config.base import check_choice
from tf_bimodal.schema import DEFAULT_IMAGE_SIZE, OFFICIAL_FOLD_COUNTS

DATA_SOURCES = ("phantom", "busi", "busbra", "clinical")

SPLIT_SCHEMES = ("paper", "kfold", "official")
"""What ``SplitConfig.scheme`` may be (see ``tf_bimodal.data.splits``)."""

OFFICIAL_SPLIT_SOURCES = ("busbra",)
"""The sources that ship their own patient-grouped test folds (``--split official``)."""

MIN_IMAGE_SIZE = 32
"""The smallest side of an image or a model input: the U-Nets halve it at each of their
levels (four in the paper's W-MM-U-Net, §3.2) and VGG-16's five poolings need at least
32 px to leave one pixel (§3.3)."""


def check_image_size(size: int, what: str) -> None:
    """The one check of an image or model input side (:data:`MIN_IMAGE_SIZE`).

    Raises:
        ValueError: ``size`` below the minimum, naming ``what``.
    """
    if size < MIN_IMAGE_SIZE:
        raise ValueError(f"{what} must be >= {MIN_IMAGE_SIZE} pixels, got {size}")


def model_input_size(requested: int | None, data_size: int) -> int:
    """A model's input side: ``requested`` (a preset's ``segmentation.image_size``) or, when
    None, the data's own side (``DataConfig.image_size``). The one home of that rule.

    Raises:
        ValueError: a side below :data:`MIN_IMAGE_SIZE`.
    """
    size = int(data_size if requested is None else requested)
    check_image_size(size, "model input size")
    return size


@dataclasses.dataclass(frozen=True)
class PhantomConfig:
    """The synthetic bimodal phantom (see ``tf_bimodal.data.phantom``).

    Defaults mirror the paper's cohort (§3.1): 73 patients, 37 benign and 36 malignant, with
    2-4 B/SE pairs each (about 212 pairs).

    Attributes:
        annotation_fraction: share of B-mode images with marks burnt in by the scanner's
            operator, as in clinical archives: calipers (``+``/``x`` markers with a dotted line
            across the lesion), text labels, depth ticks. The mask never includes them.
        max_distractors: each patient's breast holds 0 to this many lesion look-alikes without
            a mask (simple cysts, dilated ducts, hypoechoic fat lobules, ligament shadows).
    """

    num_benign_patients: int = 37
    num_malignant_patients: int = 36
    min_pairs_per_patient: int = 2
    max_pairs_per_patient: int = 4
    image_size: int = DEFAULT_IMAGE_SIZE
    seed: int = 0
    annotation_fraction: float = 0.5
    max_distractors: int = 6

    def __post_init__(self):
        if self.num_benign_patients < 0 or self.num_malignant_patients < 0:
            raise ValueError(
                "PhantomConfig: patient counts must be >= 0, got "
                f"num_benign_patients={self.num_benign_patients}, "
                f"num_malignant_patients={self.num_malignant_patients}"
            )
        if self.num_benign_patients + self.num_malignant_patients == 0:
            raise ValueError("PhantomConfig: at least one patient is required")
        if not 1 <= self.min_pairs_per_patient <= self.max_pairs_per_patient:
            raise ValueError(
                "PhantomConfig: need 1 <= min_pairs_per_patient <= max_pairs_per_patient, got "
                f"{self.min_pairs_per_patient} and {self.max_pairs_per_patient}"
            )
        check_image_size(self.image_size, "PhantomConfig: image_size")
        if not 0.0 <= self.annotation_fraction <= 1.0:
            raise ValueError(f"PhantomConfig: annotation_fraction must be in [0, 1], got {self.annotation_fraction}")
        if self.max_distractors < 0:
            raise ValueError(f"PhantomConfig: max_distractors must be >= 0, got {self.max_distractors}")


BUSI_DUPLICATE_RULES = ("drop_conflicts", "group", "none")
"""What ``DataConfig.busi_duplicates`` may be (see ``tf_bimodal.data.readers.busi_groups``)."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data to read and where.

    Attributes:
        source: ``phantom`` (default, needs nothing), ``busi`` (the public B-mode set, in
            ``manual_dir``), ``busbra`` (the public B-mode set BUS-BRA in its release layout,
            Gómez-Flores et al., Medical Physics 2024, in ``manual_dir``) or ``clinical`` (a
            ``manifest.csv`` in ``manual_dir``).
        image_size: side of the square images (paper §3.1: 336).
        manual_dir: folder holding the user's data for ``busi``, ``busbra`` and ``clinical``.
        data_dir: where TFDS stores the prepared dataset (TFDS default when None).
        phantom: phantom settings, used when ``source == "phantom"``.
        busi_duplicates: BUSI has no patient ids; near-duplicate images (one scan saved twice,
            ``tf_bimodal.data.duplicates``) become one pseudo-patient, so that no split puts
            them on two sides. ``drop_conflicts`` (default) also leaves out every group whose
            copies carry different labels (the true label is unknown); ``group`` keeps them
            as one pseudo-patient, each image with its own label (for segmentation: the
            patient vote of §4.2 refuses a patient with two labels); ``none`` makes every
            image its own patient (no search). Used by ``source == "busi"`` only.
    """

    source: str = "phantom"
    image_size: int = DEFAULT_IMAGE_SIZE
    manual_dir: str | None = None
    data_dir: str | None = None
    phantom: PhantomConfig = dataclasses.field(default_factory=PhantomConfig)
    busi_duplicates: str = "drop_conflicts"

    @property
    def phantom_settings(self) -> PhantomConfig:
        """The phantom rendered at this data's ``image_size`` (the one home of the size;
        ``phantom.image_size`` is replaced by it)."""
        return dataclasses.replace(self.phantom, image_size=self.image_size)

    @classmethod
    def from_dict(cls, record: dict) -> DataConfig:
        """The ``DataConfig`` of its JSON form (``to_dict``, as ``protocol.json`` records it)."""
        fields = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in record.items() if key in fields}
        if isinstance(values.get("phantom"), dict):
            values["phantom"] = PhantomConfig(**values["phantom"])
        return cls(**values)

    def __post_init__(self):
        check_choice("DataConfig", "source", self.source, DATA_SOURCES)
        check_choice("DataConfig", "busi_duplicates", self.busi_duplicates, BUSI_DUPLICATE_RULES)
        check_image_size(self.image_size, "DataConfig: image_size")
        if self.source != "phantom" and not self.manual_dir:
            raise ValueError(
                f"DataConfig: source {self.source!r} reads the user's files and needs manual_dir"
            )


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """Patient-level splits (paper §3.1, §3.4); see ``tf_bimodal.data.splits``.

    ``scheme="paper"`` (default): the paper's protocol. A patient-level test set sized like
    its 41 of 212 pairs is held out, and K folds are made of the rest (fold k validates on
    part k, trains on the others: 137/34/41 pairs per fold on the paper's 212). All folds are
    tested on the same pairs, so the fold union (§4.1) is defined. ``scheme="kfold"``:
    rotating K-fold; fold k tests on part k, validates on part (k + 1) mod K and trains on
    the rest, so every pair is tested once (no fold union). ``val_fraction`` (``kfold`` only):
    validate fold k on that share of the non-test patients instead of a whole part (0.125:
    70/10/20 % rather than 60/20/20 %). ``scheme="official"`` (sources of
    ``OFFICIAL_SPLIT_SOURCES``, BUS-BRA): the data set's own patient-grouped test folds
    (``num_folds`` 5 or 10), validation drawn patient-grouped inside each fold's training
    part: ``val_fraction`` of its patients, by default one fold's worth (1 / (K - 1)).
    """

    scheme: str = "paper"
    num_folds: int = 5
    seed: int = 0
    paper_sizes: tuple[int, int, int] = (137, 34, 41)
    val_fraction: float | None = None

    def __post_init__(self):
        check_choice("SplitConfig", "scheme", self.scheme, SPLIT_SCHEMES)
        if self.val_fraction is not None:
            if self.scheme == "paper" or not 0.0 < self.val_fraction <= 0.5:
                raise ValueError(
                    "SplitConfig: val_fraction needs scheme 'kfold' or 'official' and a share in (0, 0.5], "
                    f"got {self.val_fraction} with scheme {self.scheme!r}"
                )
        if self.scheme == "official" and self.num_folds not in OFFICIAL_FOLD_COUNTS:
            raise ValueError(
                f"SplitConfig: scheme 'official' reads the data set's own {' or '.join(map(str, OFFICIAL_FOLD_COUNTS))}"
                f"-fold partition (5-fold-cv.csv, 10-fold-cv.csv), got num_folds {self.num_folds}"
            )
        minimum = 3 if self.scheme == "kfold" else 2
        if self.num_folds < minimum:
            raise ValueError(
                f"SplitConfig: num_folds must be >= {minimum} for scheme {self.scheme!r} "
                f"(kfold needs a test, a validation and a training part), got {self.num_folds}"
            )


def check_split_source(split: SplitConfig, source: str) -> None:
    """Refuse ``--split official`` for a source without its own folds.

    Raises:
        ValueError: ``split.scheme == "official"`` and ``source`` not in ``OFFICIAL_SPLIT_SOURCES``.
    """
    if split.scheme == "official" and source not in OFFICIAL_SPLIT_SOURCES:
        raise ValueError(
            f"split 'official' uses the data set's own test folds, which only {', '.join(OFFICIAL_SPLIT_SOURCES)} "
            f"ships; source {source!r} has none: use --split kfold or paper"
        )


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation, applied identically to B-mode, SE-mode and mask."""

    flip_left_right: bool = True
    max_rotation_deg: float = 10.0
    max_scale: float = 0.1
    max_translation: float = 0.05
    max_brightness: float = 0.1
    max_contrast: float = 0.1


@dataclasses.dataclass(frozen=True)
class CropConfig:
    """Lesion cropping (paper §3.1, Fig. S2): a box around the mask plus a margin.

    ``shape="rectangle"`` keeps the whole box; ``shape="mask"`` also blanks what lies
    farther than ``margin`` pixels from the mask.
    """

    margin: int = 50
    shape: str = "rectangle"

    def __post_init__(self):
        if self.margin < 0:
            raise ValueError(f"CropConfig: margin must be >= 0 pixels, got {self.margin}")
        if self.shape not in ("rectangle", "mask"):
            raise ValueError(f"CropConfig: shape must be 'rectangle' or 'mask', got {self.shape!r}")

