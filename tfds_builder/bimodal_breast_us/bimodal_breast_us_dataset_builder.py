"""TFDS's entry module of the ``bimodal_breast_us`` dataset (what ``tfds build`` reads).

The builder is :class:`tf_bimodal.data.builder.BimodalBreastUs`, whose description and
citation ship with it (``tf_bimodal/data/bimodal_breast_us/``); this folder holds its
``dummy_data/`` and its conformance test.
"""

from tf_bimodal.data.builder import BimodalBreastUs, BimodalBreastUsConfig

Builder = BimodalBreastUs

__all__ = ["BimodalBreastUs", "BimodalBreastUsConfig", "Builder"]
