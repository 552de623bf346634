"""Clinical folders: B-mode + SE-mode pairs listed in a ``manifest.csv`` (paper §3.1).

The pairs are separate files, or one scanner screenshot showing both panes side by side
(Fig. S1, split by :func:`~tf_bimodal.data.readers.dual_view.split_dual_view`). The manifest is
validated whole before any image is decoded.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import posixpath
import re
from typing import Iterator

import numpy as np

from tf_bimodal.data.errors import DataError
from tf_bimodal.data.readers import files
from tf_bimodal.data.readers.colour import is_colour, to_grey
from tf_bimodal.data.readers.dual_view import DUAL_VIEW_SIZE_TOLERANCE, Box, crop, pane_boxes, parse_boxes
from tf_bimodal.data.readers.images import read_image, read_mask, resize_image, resize_mask, size_text
from tf_bimodal.schema import BINARY_LABELS

MANIFEST_NAME = "manifest.csv"
"""The file of a clinical folder that lists its pairs (:func:`read_manifest`)."""


@dataclasses.dataclass(frozen=True)
class ClinicalRecord:
    """One validated manifest row: a B/SE pair of one patient.

    Attributes:
        patient_id: the patient (unit of every split, paper §3.1).
        label: ``benign`` or ``malignant`` (biopsy result).
        row: line number in ``manifest.csv`` (the header is line 1).
        bmode: path of the B-mode image, or None for a dual-view row.
        semode: path of the SE-mode image, or None for a dual-view row.
        dual_view: path of a side-by-side screenshot, or None.
        dual_view_boxes: explicit ``(bmode_box, semode_box)`` for ``dual_view``, or None to
            detect the panes.
        mask: path of the lesion mask (drawn on the B-mode image), or None.
    """

    patient_id: str
    label: str
    row: int
    bmode: str | None = None
    semode: str | None = None
    dual_view: str | None = None
    dual_view_boxes: tuple[Box, Box] | None = None
    mask: str | None = None


def read_manifest(manual_dir) -> list[ClinicalRecord]:
    """Read and validate ``manual_dir/manifest.csv`` before any image is decoded.

    Columns (header names, any order; extra columns are ignored):

    * ``patient_id`` (required): one id per patient; all rows of a patient carry one label.
    * ``label`` (required): ``benign`` or ``malignant`` (the biopsy result, paper §3.1).
    * ``bmode`` and ``semode``: paths of the two images of a pair, **or**
    * ``dual_view``: path of one screenshot with both panes side by side (Fig. S1), with an
      optional ``dual_view_boxes`` ``"x0 y0 x1 y1;x0 y0 x1 y1"`` (B-mode first) to skip
      detection.
    * ``mask`` (optional): lesion mask drawn on the B-mode image (for a dual view: of the
      B-mode pane's size or of the whole screenshot's).

    Paths are relative to ``manual_dir`` and stay inside it (``/`` or ``\\`` separators);
    absolute paths and paths that climb out of the folder are refused, so that the folder holds
    the whole data set. The manifest may be saved with a byte-order mark and CRLF line ends.

    Args:
        manual_dir: folder holding ``manifest.csv`` and the images.

    Returns:
        One :class:`ClinicalRecord` per data row, in file order.

    Raises:
        DataError: naming ``manifest.csv``, the row and the column: missing manifest, empty
            manifest, a manifest separated by semicolons or tabs, missing required column, row
            with neither or both image forms, an absolute path or one leaving the folder, empty
            patient id, unknown label, one patient with two labels, malformed boxes, missing
            file, or an image (or mask) listed twice.
    """
    manual_dir = str(manual_dir)
    path = files.join(manual_dir, MANIFEST_NAME)
    if not files.exists(path):
        raise DataError(path, f"{MANIFEST_NAME} not found in {manual_dir}")
    reader = csv.DictReader(io.StringIO(files.read_text(path)))
    header = [name.strip().lower() for name in (reader.fieldnames or []) if name is not None]
    if not header:
        raise DataError(path, "empty manifest: no header and no rows")
    reader.fieldnames = header
    _check_header(header, path)

    checker = _ManifestChecker(manual_dir, path)
    records = []
    for values in reader:
        cells = {key: (value or "").strip() for key, value in values.items() if key is not None}
        if any(cells.values()):  # skip blank lines
            records.append(checker.record(cells, row=reader.line_num))
    if not records:
        raise DataError(path, "empty manifest: no data rows")
    return records


def _check_header(header: list[str], path: str) -> None:
    listed = ", ".join(header)
    if len(header) == 1:
        for separator, name in ((";", "semicolons"), ("\t", "tabs")):
            if separator in header[0]:
                raise DataError(
                    path,
                    f"the header is one column separated by {name} ({header[0]!r}): save "
                    "manifest.csv comma-separated (CSV UTF-8)",
                )
    for required in ("patient_id", "label"):
        if required not in header:
            raise DataError(path, f"missing required column {required!r} (header: {listed})")
    if not ("bmode" in header and "semode" in header) and "dual_view" not in header:
        raise DataError(
            path,
            "missing required column: need 'bmode' and 'semode', or 'dual_view' "
            f"(header: {listed})",
        )


_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def inside_folder(relative: str, fail, column: str, listing: str = MANIFEST_NAME,
                  remedy: str = "link or copy the file into it") -> str:
    """The path ``relative`` of a list of files (``listing``: ``manifest.csv``, or a ``predict
    --csv`` table) with ``/`` separators; refuses paths outside the list's folder.

    Every file of a clinical data set lives under ``manual_dir``, so that a copy of the folder
    is a complete copy and its fingerprint covers every file. Absolute paths (``/data/x.png``,
    ``C:\\x.png``, URLs) and relative paths that climb out (``../other/x.png``) are refused
    through ``fail(column, rule)``; Windows separators (``P001\\b1.png``) are accepted; a
    symbolic link inside the folder may point anywhere.
    """
    path = relative.replace("\\", "/")
    if path.startswith("/") or "://" in path or _WINDOWS_DRIVE.match(path):
        fail(column, f"absolute path {relative!r}: paths must be relative to the folder holding "
                     f"{listing} ({remedy})")
    normalised = posixpath.normpath(path)
    if normalised == ".." or normalised.startswith("../"):
        fail(column, f"path {relative!r} leaves the folder holding {listing}: every file must be "
                     f"inside it ({remedy})")
    return normalised


class _ManifestChecker:
    """Turns manifest rows into records, remembering what earlier rows said."""

    def __init__(self, manual_dir: str, path: str):
        self.manual_dir = manual_dir
        self.path = path
        self.label_of_patient: dict[str, tuple[str, int]] = {}
        self.seen_images: dict[str, tuple[int, str]] = {}
        self.seen_masks: dict[str, tuple[int, str]] = {}

    def record(self, cells: dict[str, str], row: int) -> ClinicalRecord:
        def fail(column, rule):
            raise DataError(self.path, f"row {row}, column {column}: {rule}")

        patient_id = cells.get("patient_id", "")
        if not patient_id:
            fail("patient_id", "empty patient id")
        label = cells.get("label", "").lower()
        if label not in BINARY_LABELS:
            expected = ", ".join(BINARY_LABELS)
            fail("label", f"unknown label {cells.get('label', '')!r}; expected one of {expected}")
        first_label, first_row = self.label_of_patient.setdefault(patient_id, (label, row))
        if first_label != label:
            fail(
                "label",
                f"patient {patient_id!r} has two labels: {label!r} here but {first_label!r} in "
                f"row {first_row} (one patient has one biopsy result)",
            )

        bmode, semode = cells.get("bmode", ""), cells.get("semode", "")
        dual = cells.get("dual_view", "")
        if dual and (bmode or semode):
            fail("dual_view", "give either bmode and semode, or dual_view, not both")
        if not dual and not bmode:
            fail("bmode", "missing B-mode image (or give dual_view)")
        if not dual and not semode:
            fail("semode", "missing SE-mode image (or give dual_view)")
        boxes = None
        if cells.get("dual_view_boxes", ""):
            if not dual:
                fail("dual_view_boxes", "boxes given without a dual_view image")
            try:
                boxes = parse_boxes(cells["dual_view_boxes"])
            except ValueError as error:
                expected = "expected 'x0 y0 x1 y1;x0 y0 x1 y1' (B-mode first)"
                fail("dual_view_boxes", f"{error}; {expected}")

        mask = cells.get("mask", "")
        columns = {"bmode": bmode, "semode": semode, "dual_view": dual, "mask": mask}
        resolved = {}
        for column, relative in columns.items():
            if relative:
                relative = inside_folder(relative, fail, column)
                full = files.join(self.manual_dir, relative)
                if not files.exists(full):
                    fail(column, f"file not found: {relative}")
                previous = self._previous_use(full, row, column)
                if previous:
                    kind = "mask" if column == "mask" else "image"
                    fail(column, f"duplicate {kind}: {relative} already listed in {previous}")
                resolved[column] = full
        return ClinicalRecord(
            patient_id=patient_id,
            label=label,
            row=row,
            bmode=resolved.get("bmode"),
            semode=resolved.get("semode"),
            dual_view=resolved.get("dual_view"),
            dual_view_boxes=boxes,
            mask=resolved.get("mask"),
        )

    def _previous_use(self, full: str, row: int, column: str) -> str | None:
        """Where this file was listed before ("row 2, column bmode"), or None; remembers it.

        Images and masks are counted apart: an image may not appear twice in any image column,
        and a mask may not belong to two rows.
        """
        key = full.replace("\\", "/")
        seen = self.seen_masks if column == "mask" else self.seen_images
        if key in seen:
            first_row, first_column = seen[key]
            return f"row {first_row}, column {first_column}"
        seen[key] = (row, column)
        return None


def _sizes_close(first: np.ndarray, second: np.ndarray, tolerance: float) -> bool:
    return all(
        abs(a - b) <= tolerance * max(a, b) for a, b in zip(first.shape[:2], second.shape[:2])
    )


def load_clinical_pair(record: ClinicalRecord) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read and check one manifest row at full resolution.

    Returns:
        ``(bmode (H, W, 1), semode (H, W, 3), mask (H, W, 1) in {0, 1} or None)``.

    Raises:
        DataError naming the file: B and SE of different sizes (separate files must match
        exactly; the panes of a dual view within ``DUAL_VIEW_SIZE_TOLERANCE``), a grey SE
        image, a mask of another size than the B-mode image, or an empty mask.
    """
    bmode_box = None
    if record.dual_view:
        screenshot = read_image(record.dual_view)
        bmode_box, semode_box = pane_boxes(
            screenshot, record.dual_view_boxes, record.dual_view
        )
        bmode, semode = crop(screenshot, bmode_box), crop(screenshot, semode_box)
        se_where = f"{record.dual_view} (SE-mode pane)"
        if not _sizes_close(bmode, semode, DUAL_VIEW_SIZE_TOLERANCE):
            raise DataError(
                record.dual_view,
                f"B-mode and SE-mode panes differ in size ({size_text(bmode)} vs "
                f"{size_text(semode)}) after splitting; give dual_view_boxes",
            )
    else:
        bmode, semode = read_image(record.bmode), read_image(record.semode)
        se_where = record.semode
        if bmode.shape[:2] != semode.shape[:2]:
            raise DataError(
                record.semode,
                f"B-mode and SE-mode images differ in size: {size_text(bmode)} "
                f"({files.stem(record.bmode)}) vs {size_text(semode)}; a pair shows one field of view",
            )
    if semode.shape[-1] != 3 or not is_colour(semode):
        raise DataError(
            se_where,
            "grey SE-mode image where colour is expected: the strain map must be a colour "
            "(RGB) image (paper §3.1)",
        )
    bmode = to_grey(bmode)

    mask = None
    if record.mask:
        mask = read_mask(record.mask)
        if bmode_box is not None and mask.shape[:2] == screenshot.shape[:2] != bmode.shape[:2]:
            mask = crop(mask, bmode_box)  # mask drawn on the whole screenshot
        if mask.shape[:2] != bmode.shape[:2]:
            raise DataError(
                record.mask,
                f"mask size {size_text(mask)} differs from the B-mode image {size_text(bmode)}",
            )
        if not mask.any():
            raise DataError(
                record.mask,
                f"empty mask: a {record.label} image needs a lesion, but all mask pixels are 0",
            )
    return bmode, semode, mask


def clinical_image_id(record: ClinicalRecord) -> str:
    """``<stem of the B-mode or dual-view file>_row<N>``: unique within one manifest."""
    return f"{files.stem(record.bmode or record.dual_view)}_row{record.row}"


def iter_clinical(
    manual_dir, image_size: int, records: list[ClinicalRecord] | None = None
) -> Iterator[dict]:
    """Yield the clinical B/SE pairs of ``manual_dir`` as schema dicts (paper §3.1).

    The manifest is validated first (:func:`read_manifest`); each pair is then checked
    (:func:`load_clinical_pair`) and resized to ``image_size x image_size`` (images with area
    or linear interpolation, masks nearest-neighbour and kept binary).

    Args:
        manual_dir: folder with ``manifest.csv``.
        image_size: output side in pixels (paper: 336).
        records: already validated manifest rows (read from ``manual_dir`` when None).

    Yields:
        Dicts with the keys of ``schema.EXAMPLE_KEYS``: ``image_id`` from the file stem and
        row, ``patient_id`` from the manifest, ``has_semode`` True, ``has_mask`` per row.

    Raises:
        DataError: naming the file and the rule (see :func:`read_manifest`,
            :func:`load_clinical_pair`).
    """
    if records is None:
        records = read_manifest(manual_dir)
    for record in records:
        bmode, semode, mask = load_clinical_pair(record)
        yield {
            "image_id": clinical_image_id(record),
            "patient_id": record.patient_id,
            "label": record.label,
            "bmode": resize_image(bmode, image_size),
            "semode": resize_image(semode, image_size),
            "mask": (
                resize_mask(mask, image_size)
                if mask is not None
                else np.zeros((image_size, image_size, 1), np.uint8)
            ),
            "has_semode": True,
            "has_mask": mask is not None,
        }

