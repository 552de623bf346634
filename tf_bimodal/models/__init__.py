"""Models: segmenters (``models.segmentation``, Table 1) and classifiers (``models.classification``,
Table 2); importing the package registers every model class with Keras' serialization."""

from tf_bimodal.models import classification, segmentation

__all__ = ["classification", "segmentation"]
