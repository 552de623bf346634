"""The one registry of configurations and hyperparameters.

Every default of the package lives here, as a frozen dataclass; the CLI, the notebooks and the
TFDS builder read them from here and never repeat them.
"""

from __future__ import annotations

import dataclasses

from tf_bimodal.data.schema import DEFAULT_IMAGE_SIZE

DATA_SOURCES = ("phantom", "busi", "clinical")


@dataclasses.dataclass(frozen=True)
class PhantomConfig:
    """The synthetic bimodal phantom (see ``tf_bimodal.data.phantom``).

    Defaults mirror the paper's cohort (§3.1): 73 patients, 37 benign and 36 malignant, with
    2-4 B/SE pairs each (about 212 pairs).
    """

    num_benign_patients: int = 37
    num_malignant_patients: int = 36
    min_pairs_per_patient: int = 2
    max_pairs_per_patient: int = 4
    image_size: int = DEFAULT_IMAGE_SIZE
    seed: int = 0

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
        if self.image_size < 32:
            raise ValueError(f"PhantomConfig: image_size must be >= 32, got {self.image_size}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data to read and where.

    Attributes:
        source: ``phantom`` (default, needs nothing), ``busi`` (the public B-mode set, in
            ``manual_dir``) or ``clinical`` (a ``manifest.csv`` in ``manual_dir``).
        image_size: side of the square images (paper §3.1: 336).
        manual_dir: folder holding the user's data for ``busi`` and ``clinical``.
        data_dir: where TFDS stores the prepared dataset (TFDS default when None).
        phantom: phantom settings, used when ``source == "phantom"``.
    """

    source: str = "phantom"
    image_size: int = DEFAULT_IMAGE_SIZE
    manual_dir: str | None = None
    data_dir: str | None = None
    phantom: PhantomConfig = dataclasses.field(default_factory=PhantomConfig)

    def __post_init__(self):
        if self.source not in DATA_SOURCES:
            raise ValueError(
                f"DataConfig: source must be one of {DATA_SOURCES}, got {self.source!r}"
            )
        if self.image_size < 32:
            raise ValueError(f"DataConfig: image_size must be >= 32, got {self.image_size}")
        if self.source != "phantom" and not self.manual_dir:
            raise ValueError(
                f"DataConfig: source {self.source!r} reads the user's files and needs manual_dir"
            )


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """Patient-level splits (paper §3.1, §3.4).

    ``scheme="kfold"``: stratified K-fold grouped by patient; fold k tests on part k and
    validates on part (k + 1) mod K, training on the rest. ``scheme="paper"``: one
    train/validation/test split sized like the paper's 137/34/41 pairs.
    """

    scheme: str = "kfold"
    num_folds: int = 5
    seed: int = 0
    paper_sizes: tuple[int, int, int] = (137, 34, 41)

    def __post_init__(self):
        if self.scheme not in ("kfold", "paper"):
            raise ValueError(f"SplitConfig: scheme must be 'kfold' or 'paper', got {self.scheme!r}")
        if self.num_folds < 3:
            raise ValueError(
                "SplitConfig: num_folds must be >= 3 (one test, one validation and at least "
                f"one training part), got {self.num_folds}"
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


def to_dict(config) -> dict:
    """A JSON-ready dict of any config dataclass (nested ones included)."""
    return dataclasses.asdict(config)
