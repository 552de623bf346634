"""Export a trained experiment as SavedModels for serving (paper §3.1-§3.3).

:func:`export_experiment` writes the segmenter (W-MM-U-Net fold union), the classifier (MFF
fold mean) and the end-to-end CAD pipeline (raw B-mode + SE-mode images in; lesion mask, crop
box, probability of malignancy and label out, the preprocessing in the graph), plus
``export.json``. The SavedModels load with ``tf.saved_model.load`` where ``tf_bimodal`` is not
installed. See :mod:`tf_bimodal.export.exporter`. Other runs of the experiment can be chained
(``unet_bmode`` then ``vgg16_bmode``: a pipeline that reads B-mode only);
:mod:`tf_bimodal.export.predict` serves an export on new files and
:mod:`tf_bimodal.export.evaluate` scores it on another labelled data set.
"""

from tf_bimodal.export.exporter import EXPORT_FILE, SAVED_MODELS, export_experiment
from tf_bimodal.export.modules import (
    CADPipeline,
    ClassifierEnsemble,
    ClassifierServing,
    SegmenterEnsemble,
    SegmenterServing,
)
from tf_bimodal.export.sources import find_classifier, find_segmenter, load_fold_models

__all__ = [
    "EXPORT_FILE",
    "SAVED_MODELS",
    "CADPipeline",
    "ClassifierEnsemble",
    "ClassifierServing",
    "SegmenterEnsemble",
    "SegmenterServing",
    "export_experiment",
    "find_classifier",
    "find_segmenter",
    "load_fold_models",
]
