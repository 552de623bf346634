"""Training and applying Table 3's six earlier methods (paper §4.2.2), one fold at a time.

Each method (:class:`Table3Method`) is built by name from ``Table3Config``, fitted on a fold's
training images with its validation images for selection, predicts ``p(malignant)`` and saves
itself; the weights policy (:func:`check_weights`, :class:`Table3WeightsError`) never lets a
method required to start from ImageNet weights start from random ones.
"""

from tf_bimodal.training.table3.method import Table3Method
from tf_bimodal.training.table3.registry import build_method, load_method, method_input_size, method_modalities
from tf_bimodal.training.table3.weights import Table3WeightsError, check_weights

__all__ = [
    "Table3Method",
    "Table3WeightsError",
    "build_method",
    "check_weights",
    "load_method",
    "method_input_size",
    "method_modalities",
]
