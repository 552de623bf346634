"""TFDS dataset builders of tf_bimodal (``bimodal_breast_us``)."""
