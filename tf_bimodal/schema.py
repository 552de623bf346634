"""The one example format shared by every data source (clinical, BUSI, phantom).

Every source yields plain Python dicts with these keys; the TFDS builder stores them as
features of the same names and the ``tf.data`` pipeline consumes them.

=============  ======================  ==================================================
key            type / shape            meaning
=============  ======================  ==================================================
image_id       str                     unique per B/SE pair
patient_id     str                     the unit of every split (paper §3.1)
label          str                     one of ``LABELS``
bmode          uint8 (H, W, 1)         grey B-mode image
semode         uint8 (H, W, 3)         colour SE-mode image (RGB); zeros if absent
mask           uint8 (H, W, 1)         lesion mask, values in {0, 1}; zeros if absent
has_semode     bool                    False for B-mode-only data (BUSI): no SE exists
has_mask       bool                    False where no lesion mask was given
=============  ======================  ==================================================

The phantom adds ``ground_truth`` (see ``tf_bimodal.data.phantom``).
"""

LABELS = ("benign", "malignant", "normal")
"""Class names. Index 0 = benign, 1 = malignant, so binary tasks use the index directly;
``normal`` (lesion-free) occurs only in BUSI."""

BINARY_LABELS = ("benign", "malignant")

DEFAULT_IMAGE_SIZE = 336
"""Paper §3.1: all images are resized to 336 x 336."""

EXAMPLE_KEYS = (
    "image_id",
    "patient_id",
    "label",
    "bmode",
    "semode",
    "mask",
    "has_semode",
    "has_mask",
)

MODALITY_CHANNELS = {"bmode": 1, "semode": 3}
"""The two modal inputs of every model and their channels: grey B-mode, colour (RGB) SE-mode."""

SYNTHETIC_NOTICE = (
    "SYNTHETIC PHANTOM: these images are simulated (tf_bimodal.data.phantom), not patient "
    "data; results on them say nothing about clinical performance."
)
"""Printed and recorded wherever results on the phantom appear."""
