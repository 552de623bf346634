"""TFDS's entry module of the ``bimodal_breast_us`` dataset (what ``tfds build`` reads).

The builder is :class:`tf_bimodal.data.builder.BimodalBreastUs`; this folder holds its
metadata (``README.md``, ``CITATIONS.bib``), its ``dummy_data/`` and its conformance test.
"""

from tf_bimodal.data.builder import BimodalBreastUs, BimodalBreastUsConfig

Builder = BimodalBreastUs

__all__ = ["BimodalBreastUs", "BimodalBreastUsConfig", "Builder"]
