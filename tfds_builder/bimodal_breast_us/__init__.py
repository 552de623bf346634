"""The ``bimodal_breast_us`` TFDS dataset: B-mode + SE-mode breast ultrasound (Misra 2022)."""

from tfds_builder.bimodal_breast_us.bimodal_breast_us_dataset_builder import (
    BimodalBreastUs,
    BimodalBreastUsConfig,
)

__all__ = ["BimodalBreastUs", "BimodalBreastUsConfig"]
