"""Models: segmenters (``models.segmentation``) and classifiers (``models.classification``)."""

from tf_bimodal.models import classification
