"""What one experiment is: ``ExperimentConfig``, every setting of one request resolved (the
command line, or a notebook, turns a preset name into one once and everything below receives
that object); and what a request may name, the rows of Tables 1 and 2 among them, read by
``tf_bimodal.experiments.protocol``."""

from __future__ import annotations

import dataclasses

from tf_bimodal import layout
from tf_bimodal.config.classification import CLASSIFICATION_MODELS, ClassificationConfig, crop_masks, crop_shape
from tf_bimodal.config.presets import SEGMENTATION_PRESETS
from tf_bimodal.config.runtime import RuntimeConfig
from tf_bimodal.config.segmentation import SEGMENTATION_MODELS, GridSearchConfig, SegmentationConfig
from tf_bimodal.config.table3 import TABLE3_METHODS, Table3Config


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Every setting of one experiment, resolved: what the runners receive.

    Attributes:
        name: the preset's name (``paper``, ``cpu``, ``quick``), or the name a caller gives
            its own settings; it names the experiment's folder (``<dataset>-<name>``) and is
            recorded in every summary.
        segmentation: the segmenters' settings (Table 1).
        classification: the classifiers' settings (Table 2).
        grid_search: the grid of §3.4 (Table S4).
        table3: the six earlier methods of Table 3 (§4.2.2).
        runtime: strategy, precision and TensorBoard.
        overrides: the ``section.key=value`` overrides applied on top of the preset
            (:func:`apply_overrides`), normalised, one per key, for reports and summaries.
            They are already in the section configs, hence in every run's cache key.
    """

    name: str = "paper"
    segmentation: SegmentationConfig = dataclasses.field(default_factory=lambda: SEGMENTATION_PRESETS["paper"])
    classification: ClassificationConfig = dataclasses.field(default_factory=ClassificationConfig)
    grid_search: GridSearchConfig = dataclasses.field(default_factory=GridSearchConfig)
    table3: Table3Config = dataclasses.field(default_factory=Table3Config)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)
    overrides: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.name or "/" in self.name or "-" in self.name:
            raise ValueError(
                f"ExperimentConfig: name must be a non-empty folder-safe word without '/' or '-', got {self.name!r}"
            )
        if not isinstance(self.overrides, (tuple, list)) or not all(
            isinstance(item, str) and "=" in item and "." in item.split("=", 1)[0] for item in self.overrides
        ):
            raise ValueError(
                "ExperimentConfig: overrides must be a sequence of 'section.key=value' strings, "
                f"got {self.overrides!r}"
            )
        object.__setattr__(self, "overrides", tuple(self.overrides))


# =========================================================================== requests and tables

EXPERIMENTS = ("table1", "table2", "table3", "all", "grid_search")
"""Requests beyond one model: whole tables, everything (Tables 1 and 2), or the grid search
(§3.4). ``table3`` is MFF (Table 2's proposed row, the same step) and the methods of
``Table3Config.methods`` (§4.2.2)."""

REQUESTS = SEGMENTATION_MODELS + CLASSIFICATION_MODELS + EXPERIMENTS
"""Everything a request (``run_experiments.py --model``) may name."""


@dataclasses.dataclass(frozen=True)
class TableRow:
    """One row of Table 1 or Table 2: which model, on which input, cropped how.

    Attributes:
        name: the run's name, also its folder under the experiment's output.
        model: a ``SEGMENTATION_MODELS``, ``CLASSIFICATION_MODELS`` or ``TABLE3_METHODS`` name.
        modality: the input column of the paper's table.
        network: the network column.
        crop: classification rows: ``predicted``, ``manual`` or ``none`` (None for Tables 1 and
            3; a Table 3 method's inputs are ``Table3Config.inputs``).
        proposed: the paper's proposed method, the reference of the paired t-tests.
    """

    name: str
    model: str
    modality: str
    network: str
    crop: str | None = None
    proposed: bool = False


TABLE1_ROWS = (
    TableRow("unet_bmode", "unet_bmode", "B-mode", "U-Net"),
    TableRow("unet_semode", "unet_semode", "SE-mode", "U-Net"),
    TableRow("mm_unet", "mm_unet", "B-mode + SE-mode", "MM-U-Net"),
    TableRow("w_mm_unet_manual", "w_mm_unet_manual", "B-mode + SE-mode", "W-MM-U-Net (manual)"),
    TableRow("w_mm_unet", "w_mm_unet", "B-mode + SE-mode", "W-MM-U-Net (automatic)", proposed=True),
)
"""Table 1 (§4.1.1), in the paper's order."""

TABLE2_ROWS = (
    TableRow("mff_crop_none", "mff", "Full image (B-mode + SE-mode)", "MFF (EmbraceNet)", crop="none"),
    TableRow("mff_crop_manual", "mff", "Cropped image (B-mode + SE-mode)", "MFF (EmbraceNet)", crop="manual"),
    TableRow("vgg16_bmode", "vgg16_bmode", "Cropped image (B-mode)", "VGG-16 (single)", crop="predicted"),
    TableRow("vgg16_semode", "vgg16_semode", "Cropped image (SE-mode)", "VGG-16 (single)", crop="predicted"),
    TableRow("mff_early", "mff_early", "Cropped image (B-mode + SE-mode)", "MFF (early)", crop="predicted"),
    TableRow("mff_late", "mff_late", "Cropped image (B-mode + SE-mode)", "MFF (late)", crop="predicted"),
    TableRow("mff_stack", "mff_stack", "Cropped image (B-mode + SE-mode)", "MFF (stack-wise)", crop="predicted"),
    TableRow("mff_intermediate", "mff_intermediate", "Cropped image (B-mode + SE-mode)", "MFF (intermediate)",
             crop="predicted"),
    TableRow("mff", "mff", "Cropped image (B-mode + SE-mode)", "MFF (EmbraceNet)", crop="predicted", proposed=True),
)
"""Table 2 (§4.2.1), in the paper's order; the segmentation column is W-MM-U-Net for the
``predicted`` crops, the ground truth for ``manual`` and none for ``none``."""


TABLE3_ROWS = tuple(
    TableRow(f"table3_{method}", method, modality, network)
    for method, modality, network in zip(TABLE3_METHODS, (
        "B-mode", "SE-mode", "B-mode", "B-mode", "B-mode + SE-mode", "B-mode + SE-mode",
    ), ("Yap et al.", "Fujioka et al.", "Zhang et al.", "Kumar et al.", "Wang et al.", "Misra et al. 2021"),
        strict=True)
)
"""Table 3 (§4.2.2), the earlier methods in the paper's order (MFF, Table 2's proposed row, is
the reference of its t-tests); the run folders are ``tf_bimodal.layout.table3_run_name``'s."""


def classification_row(model: str, crop: str) -> TableRow:
    """The row of the classifier ``model`` on the crops ``crop``: its Table 2 row (§4.2.1), or,
    for a pair the paper's table does not list (``vgg16_bmode`` on manual crops, any model on
    a mask-shaped crop), its row on W-MM-U-Net crops with the image column naming the crop.
    The image column names only the modalities the model reads (``vgg16_bmode``: B-mode).

    Raises:
        ValueError: ``model`` is not one of ``CLASSIFICATION_MODELS``.
    """
    for row in TABLE2_ROWS:
        if row.model == model and row.crop == crop:
            return row
    base = {row.model: row for row in TABLE2_ROWS if row.crop == "predicted"}
    if model not in base:
        raise ValueError(f"classification_row: model must be one of {CLASSIFICATION_MODELS}, got {model!r}")
    modality = base[model].modality
    if crop_masks(crop) == "none":
        modality = modality.replace("Cropped image", "Full image")
    elif crop_shape(crop) == "mask":
        modality = modality.replace("Cropped image", "Cropped image, mask shape")
    return TableRow(layout.classification_run_name(model, crop), model, modality, base[model].network, crop=crop)
