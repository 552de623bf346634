"""The one registry of configurations and hyperparameters.

Every default of the package lives here, as a frozen dataclass; the CLI, the notebooks and the
TFDS builder read them from here and never repeat them. Every name is importable from
``tf_bimodal.config``; the modules hold one subject each:

    base: the rule for a value among named choices, and ``to_dict``.
    data: ``DataConfig``, ``PhantomConfig``, ``SplitConfig``, ``AugmentConfig``, ``CropConfig``
        (§3.1, §3.4).
    segmentation: the models of Table 1, ``SegmentationConfig`` (§3.2, §3.4) and
        ``GridSearchConfig`` (§3.4, Table S4).
    classification: the models of Table 2, the classifier crops and ``ClassificationConfig``
        (§3.3, §3.4).
    runtime: ``RuntimeConfig``: tf.distribute, precision, TensorBoard, micro-batches.
    presets: what ``paper``, ``cpu`` and ``quick`` set, section by section.
    experiment: ``ExperimentConfig``, the requests and the rows of Tables 1 and 2.
    overrides: ``section.key=value`` settings on top of a preset (``--set``, ``--config``).
    table3: the six earlier methods of Table 3 and ``Table3Config`` (§4.2.2).
    registry: ``EXPERIMENT_PRESETS`` and ``resolve_experiment``, where a name becomes settings.
"""

from tf_bimodal.config.base import check_choice, to_dict
from tf_bimodal.config.classification import (
    BACKBONE_FEATURES,
    CLASSIFICATION_CROPS,
    CLASSIFICATION_MODELS,
    EMBRACENET_INFERENCE_MODES,
    HEAD_FITS,
    MASK_SHAPE_SUFFIX,
    SINGLE_MODAL_MODELS,
    WEIGHT_DECAY_MODES,
    ClassificationConfig,
    crop_masks,
    crop_shape,
)
from tf_bimodal.config.data import (
    BUSI_DUPLICATE_RULES,
    DATA_SOURCES,
    MIN_IMAGE_SIZE,
    OFFICIAL_SPLIT_SOURCES,
    SPLIT_SCHEMES,
    AugmentConfig,
    CropConfig,
    DataConfig,
    PhantomConfig,
    SplitConfig,
    check_image_size,
    check_split_source,
    model_input_size,
)
from tf_bimodal.config.experiment import (
    EXPERIMENTS,
    REQUESTS,
    TABLE1_ROWS,
    TABLE2_ROWS,
    TABLE3_ROWS,
    ExperimentConfig,
    TableRow,
    classification_row,
)
from tf_bimodal.config.overrides import (
    OVERRIDE_FORMAT,
    Overrides,
    apply_overrides,
    check_override,
    format_override,
    load_overrides_file,
    normalize_overrides,
    override_keys,
    parse_override,
)
from tf_bimodal.config.presets import (
    CLASSIFICATION_PRESETS,
    GRID_SEARCH_PRESETS,
    LINEAR_READOUT,
    PAPER_PATH_WIDTHS,
    PRESETS,
    SEGMENTATION_PRESETS,
    TABLE3_PRESETS,
)
from tf_bimodal.config.registry import DEFAULT_PRESET, EXPERIMENT_PRESETS, resolve_experiment
from tf_bimodal.config.runtime import PRECISIONS, STRATEGIES, RuntimeConfig
from tf_bimodal.config.segmentation import (
    AUTO_WEIGHT_MODES,
    CONTRACTION_BLOCKS,
    SEGMENTATION_ENCODERS,
    SEGMENTATION_LOSSES,
    SEGMENTATION_MODELS,
    SKIP_FUSIONS,
    GridSearchConfig,
    SegmentationConfig,
)
from tf_bimodal.config.table3 import (
    MISRA2021_READINGS,
    TABLE3_BACKBONE_WEIGHTS,
    TABLE3_INPUTS,
    TABLE3_METHODS,
    Table3Config,
)

__all__ = [
    # data
    "DATA_SOURCES",
    "MIN_IMAGE_SIZE",
    "check_image_size",
    "model_input_size",
    "BUSI_DUPLICATE_RULES",
    "SPLIT_SCHEMES",
    "OFFICIAL_SPLIT_SOURCES",
    "check_split_source",
    "PhantomConfig",
    "DataConfig",
    "SplitConfig",
    "AugmentConfig",
    "CropConfig",
    # classification
    "CLASSIFICATION_MODELS",
    "SINGLE_MODAL_MODELS",
    "MASK_SHAPE_SUFFIX",
    "CLASSIFICATION_CROPS",
    "crop_masks",
    "crop_shape",
    "WEIGHT_DECAY_MODES",
    "EMBRACENET_INFERENCE_MODES",
    "BACKBONE_FEATURES",
    "HEAD_FITS",
    "ClassificationConfig",
    # segmentation and the grid search
    "SEGMENTATION_MODELS",
    "SEGMENTATION_LOSSES",
    "SEGMENTATION_ENCODERS",
    "CONTRACTION_BLOCKS",
    "SKIP_FUSIONS",
    "AUTO_WEIGHT_MODES",
    "SegmentationConfig",
    "GridSearchConfig",
    # table 3
    "TABLE3_METHODS",
    "TABLE3_INPUTS",
    "MISRA2021_READINGS",
    "TABLE3_BACKBONE_WEIGHTS",
    "Table3Config",
    # runtime
    "STRATEGIES",
    "PRECISIONS",
    "RuntimeConfig",
    # presets
    "PRESETS",
    "PAPER_PATH_WIDTHS",
    "SEGMENTATION_PRESETS",
    "LINEAR_READOUT",
    "CLASSIFICATION_PRESETS",
    "GRID_SEARCH_PRESETS",
    "TABLE3_PRESETS",
    # experiments
    "EXPERIMENTS",
    "REQUESTS",
    "TableRow",
    "classification_row",
    "TABLE1_ROWS",
    "TABLE2_ROWS",
    "TABLE3_ROWS",
    "ExperimentConfig",
    "EXPERIMENT_PRESETS",
    "DEFAULT_PRESET",
    "resolve_experiment",
    # overrides
    "OVERRIDE_FORMAT",
    "Overrides",
    "override_keys",
    "parse_override",
    "check_override",
    "format_override",
    "normalize_overrides",
    "load_overrides_file",
    "apply_overrides",
    # shared
    "check_choice",
    "to_dict",
]
