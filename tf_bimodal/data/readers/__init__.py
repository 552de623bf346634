"""Read the user's files: images (PNG/JPEG/DICOM), dual-view screenshots, clinical folders, BUSI, BUS-BRA.

Every reader turns bad input into a :class:`~tf_bimodal.data.errors.DataError` that names the
offending file and the rule it breaks; no decoder or TensorFlow traceback reaches the user.
All file access goes through ``tf.io.gfile``, so ``manual_dir`` may be a local folder or any
filesystem TensorFlow supports.

One module per kind of source, each yielding the example dicts of :mod:`tf_bimodal.schema`:

* :mod:`~tf_bimodal.data.readers.clinical` (:func:`iter_clinical`): B-mode + SE-mode pairs
  listed in a ``manifest.csv``, as separate files or as one scanner screenshot showing both
  panes side by side (paper §3.1, Fig. S1, split by :func:`split_dual_view`).
* :mod:`~tf_bimodal.data.readers.busi` (:func:`iter_busi`): the public B-mode-only dataset
  (Al-Dhabyani et al. 2020) in its published folder layout. BUSI has no SE image and no patient
  ids: its near-duplicate images become pseudo-patients (:func:`busi_groups`,
  :mod:`tf_bimodal.data.duplicates`).
* :mod:`~tf_bimodal.data.readers.busbra` (:func:`iter_busbra`): the public B-mode-only
  BUS-BRA (Gómez-Flores et al., Medical Physics 2024) in its release layout, with real patient
  ids, BI-RADS, histology, scanner and its own patient-grouped folds (:func:`read_busbra`).

They share :mod:`~tf_bimodal.data.readers.images` (single image and mask files, DICOM
included, and resizing), :mod:`~tf_bimodal.data.readers.colour` (colour versus grey),
:mod:`~tf_bimodal.data.readers.dual_view` (side-by-side screenshots) and
:mod:`~tf_bimodal.data.readers.files` (paths through ``tf.io.gfile``).

All images are resized to ``image_size x image_size`` (paper §3.1: 336).
"""

from tf_bimodal.data.readers.busbra import (
    BUSBRA_COLUMNS,
    BUSBRA_DATA,
    BUSBRA_FOLD_FILES,
    BusbraRecord,
    busbra_files,
    busbra_mask_name,
    iter_busbra,
    read_busbra,
)
from tf_bimodal.data.readers.busi import (
    BUSI_CLASSES,
    BUSI_FOLDER,
    BusiGroups,
    BusiImage,
    busi_groups,
    busi_images,
    busi_listing,
    describe_busi_groups,
    find_busi_root,
    iter_busi,
)
from tf_bimodal.data.readers.clinical import (
    MANIFEST_NAME,
    ClinicalRecord,
    clinical_image_id,
    inside_folder,
    iter_clinical,
    load_clinical_pair,
    read_manifest,
)
from tf_bimodal.data.readers.colour import COLOUR_CHROMA_MIN, MIN_COLOUR_FRACTION, colour_fraction, is_colour, to_grey
from tf_bimodal.data.readers.dual_view import (
    DARK_LEVEL,
    DUAL_VIEW_SIZE_TOLERANCE,
    SPLIT_SEARCH_RANGE,
    Box,
    find_dual_view_boxes,
    parse_boxes,
    split_dual_view,
)
from tf_bimodal.data.readers.images import (
    DICOM_EXTENSIONS,
    MASK_HALF_LEVEL,
    MASK_LABEL_MAX,
    MAX_ASPECT_RATIO,
    MAX_IMAGE_PIXELS,
    MAX_READ_SIDE,
    RASTER_EXTENSIONS,
    check_proportions,
    raster_size,
    read_image,
    read_image_within,
    read_mask,
    resize_image,
    resize_mask,
    shrink_to,
)

__all__ = [
    "BUSBRA_COLUMNS",
    "BUSBRA_DATA",
    "BUSBRA_FOLD_FILES",
    "BUSI_CLASSES",
    "BUSI_FOLDER",
    "COLOUR_CHROMA_MIN",
    "DARK_LEVEL",
    "DICOM_EXTENSIONS",
    "DUAL_VIEW_SIZE_TOLERANCE",
    "MANIFEST_NAME",
    "MASK_HALF_LEVEL",
    "MASK_LABEL_MAX",
    "MAX_ASPECT_RATIO",
    "MAX_IMAGE_PIXELS",
    "MAX_READ_SIDE",
    "MIN_COLOUR_FRACTION",
    "RASTER_EXTENSIONS",
    "SPLIT_SEARCH_RANGE",
    "Box",
    "BusbraRecord",
    "BusiGroups",
    "BusiImage",
    "ClinicalRecord",
    "busbra_files",
    "busbra_mask_name",
    "busi_groups",
    "busi_images",
    "busi_listing",
    "check_proportions",
    "clinical_image_id",
    "colour_fraction",
    "describe_busi_groups",
    "find_busi_root",
    "find_dual_view_boxes",
    "inside_folder",
    "is_colour",
    "iter_busbra",
    "iter_busi",
    "iter_clinical",
    "load_clinical_pair",
    "parse_boxes",
    "raster_size",
    "read_busbra",
    "read_image",
    "read_image_within",
    "read_manifest",
    "read_mask",
    "resize_image",
    "resize_mask",
    "shrink_to",
    "split_dual_view",
    "to_grey",
]
