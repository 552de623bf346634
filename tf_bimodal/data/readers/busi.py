"""BUSI (Al-Dhabyani et al. 2020): the public B-mode-only dataset in its published folder layout.

BUSI has no SE image and no patient ids: its near-duplicate images become pseudo-patients
(:func:`busi_groups`, :mod:`tf_bimodal.data.duplicates`).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import re
import time
from collections.abc import Sequence
from typing import Iterator

import numpy as np
import tensorflow as tf

from tf_bimodal.config import BUSI_DUPLICATE_RULES
from tf_bimodal.data import duplicates
from tf_bimodal.data.errors import DataError
from tf_bimodal.data.readers import files
from tf_bimodal.data.readers.colour import to_grey
from tf_bimodal.data.readers.images import read_image, read_mask, resize_image, resize_mask, size_text

BUSI_FOLDER = "Dataset_BUSI_with_GT"
BUSI_CLASSES = ("benign", "malignant", "normal")

logger = logging.getLogger(__name__)


_BUSI_IMAGE = re.compile(r"^(benign|malignant|normal) \((\d+)\)\.png$", re.IGNORECASE)
_BUSI_MASK = re.compile(
    r"^((?:benign|malignant|normal) \(\d+\))_mask(?:_\d+)?\.png$", re.IGNORECASE
)


def find_busi_root(manual_dir) -> str:
    """The ``Dataset_BUSI_with_GT`` folder: inside ``manual_dir`` or ``manual_dir`` itself.

    Raises:
        DataError: neither holds a ``benign``, ``malignant`` or ``normal`` folder.
    """
    manual_dir = str(manual_dir).rstrip("/")
    for candidate in (files.join(manual_dir, BUSI_FOLDER), manual_dir):
        if any(tf.io.gfile.isdir(files.join(candidate, name)) for name in BUSI_CLASSES):
            return candidate
    raise DataError(
        manual_dir,
        f"BUSI layout not found: expected {BUSI_FOLDER}/<benign|malignant|normal>/"
        "'<class> (N).png' with '<class> (N)_mask.png' beside each image",
    )


def busi_listing(folder: str) -> list[tuple[int, str, list[str]]]:
    """``(N, image name, mask names)`` per image of one class folder, sorted by N."""
    names = sorted(name.rstrip("/") for name in tf.io.gfile.listdir(folder))
    images, masks = {}, {}
    for name in names:
        image_match = _BUSI_IMAGE.match(name)
        if image_match:
            images[name[: -len(".png")]] = (int(image_match.group(2)), name)
            continue
        mask_match = _BUSI_MASK.match(name)
        if mask_match:
            masks.setdefault(mask_match.group(1), []).append(name)
    return sorted((number, name, masks.get(stem, [])) for stem, (number, name) in images.items())


@dataclasses.dataclass(frozen=True)
class BusiImage:
    """One BUSI image file and its masks (:func:`busi_images`)."""

    image_id: str
    label: str
    number: int
    folder: str
    image_name: str
    mask_names: tuple[str, ...]

    @property
    def path(self) -> str:
        return files.join(self.folder, self.image_name)

    @property
    def file_name(self) -> str:
        """``<class>/<class> (N).png``, as named in warnings."""
        return f"{self.label}/{self.image_name}"


def busi_images(manual_dir) -> list[BusiImage]:
    """Every BUSI image of ``manual_dir`` (see :func:`iter_busi`), class by class, by number.

    Raises:
        DataError: the layout is not found, or holds no image.
    """
    root = find_busi_root(manual_dir)
    images = []
    for label in BUSI_CLASSES:
        folder = files.join(root, label)
        if not tf.io.gfile.isdir(folder):
            continue
        for number, image_name, mask_names in busi_listing(folder):
            images.append(BusiImage(f"busi_{label}_{number}", label, number, folder, image_name, tuple(mask_names)))
    if not images:
        raise DataError(root, "no BUSI images found ('<class> (N).png' in the class folders)")
    return images


@dataclasses.dataclass(frozen=True)
class BusiGroups:
    """BUSI's pseudo-patients: near-duplicate images grouped (:func:`busi_groups`).

    Attributes:
        rule: ``DataConfig.busi_duplicates`` (``drop_conflicts``, ``group`` or ``none``).
        patient_ids: image id -> patient id of every image kept: ``busi_group_<class>_<N>``
            for a group (``<class> (N)`` its first image, in class order and by number), the
            image id itself for an image that has no near-duplicate.
        groups: the image ids of each near-duplicate group (two or more images).
        conflicts: the groups whose images carry more than one label.
        dropped: image ids left out (``drop_conflicts``: every image of a conflicting group).
        file_names: image id -> ``<class>/<class> (N).png``.
    """

    rule: str
    patient_ids: dict[str, str]
    groups: tuple[tuple[str, ...], ...]
    conflicts: tuple[tuple[str, ...], ...]
    dropped: tuple[str, ...]
    file_names: dict[str, str]

    def summary(self) -> dict:
        """JSON-ready counts, stored with the prepared data (``metadata.json``) and in the data
        summary: ``rule``, ``searched``, ``images``, ``groups``, ``grouped_images``,
        ``group_sizes`` (``{"2": count, ...}``), ``conflicts`` (count),
        ``conflict_files`` (file names per conflicting group), ``dropped_images``."""
        sizes = collections.Counter(len(group) for group in self.groups)
        return {
            "rule": self.rule,
            "searched": self.rule != "none",
            "images": len(self.file_names),
            "groups": len(self.groups),
            "grouped_images": sum(len(group) for group in self.groups),
            "group_sizes": {str(size): sizes[size] for size in sorted(sizes)},
            "conflicts": len(self.conflicts),
            "conflict_files": [[self.file_names[image_id] for image_id in group] for group in self.conflicts],
            "dropped_images": len(self.dropped),
        }


def describe_busi_groups(summary: dict) -> str:
    """One line of :meth:`BusiGroups.summary`, e.g. ``366 images, 53 near-duplicate groups
    (118 images, sizes 2-4), 5 label conflicts: 12 images left out (rule drop_conflicts)``."""
    if not summary.get("searched"):
        return f"{summary['images']} images, near-duplicates not searched (rule none: each image its own patient)"
    sizes = [int(size) for size in summary["group_sizes"]]
    size_range = f", sizes {min(sizes)}-{max(sizes)}" if sizes and min(sizes) != max(sizes) else ""
    groups = "group" if summary["groups"] == 1 else "groups"
    conflicts = "conflict" if summary["conflicts"] == 1 else "conflicts"
    line = (f"{summary['images']} images, {summary['groups']} near-duplicate {groups} "
            f"({summary['grouped_images']} images{size_range}), {summary['conflicts']} label {conflicts}")
    if summary["conflicts"]:
        line += (f": {summary['dropped_images']} images left out" if summary["dropped_images"]
                 else ": kept, one pseudo-patient each")
    return f"{line} (rule {summary['rule']})"


def _busi_order(image: BusiImage) -> tuple[int, int]:
    return BUSI_CLASSES.index(image.label), image.number


def _busi_group_id(group: Sequence[BusiImage]) -> str:
    return "busi_group_" + min(group, key=_busi_order).image_id[len("busi_"):]


def busi_groups(manual_dir, rule: str = "drop_conflicts", images: Sequence[BusiImage] | None = None) -> BusiGroups:
    """Group BUSI's near-duplicate images into pseudo-patients (``DataConfig.busi_duplicates``).

    Every image is read once (grey, native size) and compared with all others
    (:func:`tf_bimodal.data.duplicates.find_duplicate_groups`); each group of near-duplicates
    becomes one patient. The ids depend only on the files' names and pixels, not on the order
    in which the folder lists them. A group whose images carry different labels (the same
    scan filed as benign and as malignant, or as benign and as normal) is a label conflict,
    logged as a warning naming the files. Rules:

    * ``drop_conflicts`` (default): the images of a conflicting group are left out. Their
      true label is unknown, they would teach contradicting targets (a lesion and no lesion,
      benign and malignant) and the patient vote (§4.2) refuses a patient with two labels.
    * ``group``: they are kept as one pseudo-patient, each image with its own label (for
      segmentation studies; benign-vs-malignant evaluation will refuse that patient).
    * ``none``: no search, every image is its own patient (BUSI read as published).

    Args:
        manual_dir: the BUSI folder (see :func:`iter_busi`).
        rule: one of ``tf_bimodal.config.BUSI_DUPLICATE_RULES``.
        images: :func:`busi_images` of ``manual_dir``, if already listed.

    Raises:
        ValueError: an unknown ``rule``.
        DataError: layout not found, or an unreadable image.
    """
    if rule not in BUSI_DUPLICATE_RULES:
        raise ValueError(f"busi_duplicates must be one of {BUSI_DUPLICATE_RULES}, got {rule!r}")
    images = list(images) if images is not None else busi_images(manual_dir)
    file_names = {image.image_id: image.file_name for image in images}
    patient_ids = {image.image_id: image.image_id for image in images}
    if rule == "none":
        return BusiGroups(rule, patient_ids, (), (), (), file_names)
    started = time.time()
    greys = [to_grey(read_image(image.path)) for image in images]
    found = duplicates.find_duplicate_groups(greys, names=[image.path for image in images])
    groups, conflicts, dropped = [], [], []
    found = sorted((sorted((images[index] for index in indices), key=_busi_order) for indices in found),
                   key=lambda members: _busi_order(members[0]))
    for members in found:
        group_id = _busi_group_id(members)
        ids = tuple(image.image_id for image in members)
        groups.append(ids)
        for image in members:
            patient_ids[image.image_id] = group_id
        if len({image.label for image in members}) > 1:
            conflicts.append(ids)
            names = ", ".join(image.file_name for image in members)
            if rule == "drop_conflicts":
                dropped.extend(ids)
                for image_id in ids:
                    del patient_ids[image_id]
                logger.warning("BUSI: near-duplicates with different labels, left out "
                               "(busi_duplicates='group' keeps them): %s", names)
            else:
                logger.warning("BUSI: near-duplicates with different labels, kept as one pseudo-patient "
                               "%s, each with its own label: %s", group_id, names)
    result = BusiGroups(rule, patient_ids, tuple(groups), tuple(conflicts), tuple(dropped), file_names)
    logger.info("BUSI: %s; grouped in %.1f s", describe_busi_groups(result.summary()), time.time() - started)
    return result


def iter_busi(manual_dir, image_size: int, busi_duplicates: str = "drop_conflicts",
              groups: BusiGroups | None = None) -> Iterator[dict]:
    """Yield the public BUSI dataset as schema dicts (B-mode only).

    Layout: ``Dataset_BUSI_with_GT/<benign|malignant|normal>/<class> (N).png`` with the mask
    ``<class> (N)_mask.png`` beside it, and ``_mask_1.png``, ``_mask_2.png`` where a lesion has
    several masks; those are merged by union. ``manual_dir`` may be the folder containing
    ``Dataset_BUSI_with_GT`` or that folder itself. Other files are ignored.

    Known limitations of BUSI, kept visible in the data:

    * **No SE-mode image**: ``has_semode`` is False and ``semode`` all zeros; no SE image is
      ever made up.
    * **No patient ids, and near-duplicates**: the same scan saved twice (with or without
      calipers and text, cropped, resized, sometimes under two labels). Each group of
      near-duplicates is one pseudo-patient (``patient_id == "busi_group_<class>_<N>"``), every
      other image its own patient (``patient_id == image_id == "busi_<class>_<N>"``), so that
      patient-level splits never put copies of one scan on two sides; label conflicts follow
      ``busi_duplicates`` (:func:`busi_groups`). Other frames of one lesion are not always
      recognised as such: two images of one woman may still be split apart.
    * ``normal`` images have no lesion: their mask is empty (allowed), ``has_mask`` is True.
    * An image without any mask file gets ``has_mask`` False and an all-zero mask.

    Args:
        manual_dir: see above.
        image_size: output side in pixels.
        busi_duplicates: ``drop_conflicts``, ``group`` or ``none`` (``DataConfig.busi_duplicates``).
        groups: :func:`busi_groups` of ``manual_dir``, if already computed (then
            ``busi_duplicates`` is not used).

    Yields:
        Dicts with the keys of ``schema.EXAMPLE_KEYS``, class by class, by image number.

    Raises:
        DataError: layout not found, an unreadable image or mask, a mask of another size than
            its image, or an empty mask for a benign/malignant image.
    """
    images = busi_images(manual_dir)
    if groups is None:
        groups = busi_groups(manual_dir, busi_duplicates, images=images)
    empty_semode = np.zeros((image_size, image_size, 3), np.uint8)
    for image in images:
        if image.image_id not in groups.patient_ids:
            continue
        bmode = to_grey(read_image(image.path))
        mask = np.zeros(bmode.shape[:2] + (1,), np.uint8)
        for mask_name in image.mask_names:
            mask_path = files.join(image.folder, mask_name)
            single = read_mask(mask_path)
            if single.shape[:2] != bmode.shape[:2]:
                raise DataError(
                    mask_path,
                    f"mask size {size_text(single)} differs from the B-mode image "
                    f"{size_text(bmode)}",
                )
            mask = np.maximum(mask, single)
        if image.mask_names and image.label != "normal" and not mask.any():
            raise DataError(
                files.join(image.folder, image.mask_names[0]),
                f"empty mask: a {image.label} image needs a lesion, but all mask pixels are 0",
            )
        yield {
            "image_id": image.image_id,
            "patient_id": groups.patient_ids[image.image_id],
            "label": image.label,
            "bmode": resize_image(bmode, image_size),
            "semode": empty_semode,
            "mask": resize_mask(mask, image_size),
            "has_semode": False,
            "has_mask": bool(image.mask_names),
        }
