"""Data layer: sources (clinical folder, BUSI, synthetic phantom), pipeline, splits, cropping."""

from tf_bimodal.data.errors import DataError
from tf_bimodal.schema import BINARY_LABELS, DEFAULT_IMAGE_SIZE, LABELS

__all__ = ["BINARY_LABELS", "DEFAULT_IMAGE_SIZE", "LABELS", "DataError"]
