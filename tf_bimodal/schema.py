"""The one example format shared by every data source (clinical, BUSI, BUS-BRA, phantom).

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

Every example also carries what a source records of the case (``METADATA_DEFAULTS``); a
source that does not record it leaves the default, empty text or fold 0:

=============  ======================  ==================================================
key            type                    meaning
=============  ======================  ==================================================
pathology      str                     the biopsy result as the source spells it
birads         str                     BI-RADS category (``"2"`` ... ``"5"``, ``"4a"``, ...)
histology      str                     histological type (``fibroadenoma``, ...)
device         str                     the scanner (and probe) that made the image
side           str                     ``left``, ``right`` (two views) or ``single``
test_fold_5    int32                   the source's own 5-fold partition: the fold (1-5)
                                       that tests this image; 0 where it has none
test_fold_10   int32                   the same, of its 10-fold partition (1-10)
=============  ======================  ==================================================

BUS-BRA (Gómez-Flores et al., Medical Physics 2024) fills all of them; clinical folders,
BUSI and the phantom none. The phantom adds ``ground_truth`` (see ``tf_bimodal.data.phantom``).
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

METADATA_DEFAULTS = {
    "pathology": "",
    "birads": "",
    "histology": "",
    "device": "",
    "side": "",
    "test_fold_5": 0,
    "test_fold_10": 0,
}
"""What a source may record of each case, with the value stored where it records nothing
(empty text: unknown; fold 0: not in the source's partition)."""

OFFICIAL_FOLD_COUNTS = (5, 10)
"""The partitions a source may ship (``test_fold_<K>``); ``SplitConfig(scheme="official")``
takes ``num_folds`` from these."""


def official_fold_key(num_folds: int) -> str:
    """The feature holding the source's own test fold of a ``num_folds``-fold partition."""
    return f"test_fold_{int(num_folds)}"


MODALITY_CHANNELS = {"bmode": 1, "semode": 3}
"""The two modal inputs of every model and their channels: grey B-mode, colour (RGB) SE-mode."""

SYNTHETIC_NOTICE = (
    "SYNTHETIC PHANTOM: these images are simulated (tf_bimodal.data.phantom), not patient "
    "data; results on them say nothing about clinical performance."
)
"""Printed and recorded wherever results on the phantom appear."""
