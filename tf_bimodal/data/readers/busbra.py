"""BUS-BRA (Gómez-Flores, Gregorio-Calas and Pereira, Medical Physics 2024): the public
B-mode-only breast ultrasound set in its release layout.

The folder holds::

    Images/bus_NNNN-{l,r,s}.png   8-bit grey B-mode images at their native size
    Masks/mask_NNNN-{l,r,s}.png   the lesion mask of each image (binary, same size)
    bus_data.csv                  ID, Case, Histology, Pathology, BIRADS, Device, Width, Height, Side, BBOX
    5-fold-cv.csv, 10-fold-cv.csv ID, Pathology, kFold, valid_1 ... valid_K (optional)

``Case`` is the patient (most patients have two views of one lesion, ``-l`` and ``-r``; ``-s``
is a single view), ``Pathology`` the biopsy-proven class. The fold files are the data set's own
patient-grouped, class-stratified partitions: ``kFold`` is the fold that tests the image. Their
``valid_k`` columns (the authors' validation part of fold k) are **not** read: they are drawn
per image, so two views of one patient can sit on both sides of training and validation, and a
model would be stopped early and given its threshold on views of patients it trains on.
``SplitConfig(scheme="official")`` (:mod:`tf_bimodal.data.splits`) draws validation
patient-grouped instead.

Like BUSI, BUS-BRA has no SE-mode image: ``has_semode`` is False and ``semode`` all zeros.
Unlike BUSI it has real patient ids, so no near-duplicate search is needed.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tf_bimodal.data.errors import DataError
from tf_bimodal.data.readers import files
from tf_bimodal.data.readers.colour import to_grey
from tf_bimodal.data.readers.images import read_image, read_mask, resize_image, resize_mask, size_text
from tf_bimodal.schema import BINARY_LABELS, OFFICIAL_FOLD_COUNTS, official_fold_key

BUSBRA_DATA = "bus_data.csv"
BUSBRA_IMAGES = "Images"
BUSBRA_MASKS = "Masks"
BUSBRA_COLUMNS = ("ID", "Case", "Histology", "Pathology", "BIRADS", "Device", "Side")
"""The columns of ``bus_data.csv`` that are read (``Width``, ``Height`` and ``BBOX`` are not:
the image and its mask give them)."""

BUSBRA_FOLD_FILES = {num_folds: f"{num_folds}-fold-cv.csv" for num_folds in OFFICIAL_FOLD_COUNTS}
"""The data set's own partitions, by number of folds."""

BUSBRA_FOLD_COLUMNS = ("ID", "kFold")

_IMAGE_PREFIX, _MASK_PREFIX = "bus_", "mask_"


@dataclasses.dataclass(frozen=True)
class BusbraRecord:
    """One row of ``bus_data.csv``, checked (:func:`read_busbra`).

    Attributes:
        image_id: ``ID`` (``bus_0001-l``).
        patient_id: ``busbra_<Case>``.
        label: ``Pathology``, ``benign`` or ``malignant``.
        birads, histology, device, side: the row's ``BIRADS``, ``Histology``, ``Device``,
            ``Side`` as written (stripped; side in lower case).
        image_path, mask_path: ``Images/<ID>.png`` and ``Masks/mask_<NNNN-x>.png``.
        test_folds: number of folds -> the fold (1-based, as ``kFold``) that tests this image
            in the data set's own partition; absent where the folder has no such file.
        row: the row's line in ``bus_data.csv``.
    """

    image_id: str
    patient_id: str
    label: str
    birads: str
    histology: str
    device: str
    side: str
    image_path: str
    mask_path: str
    test_folds: Mapping[int, int] = dataclasses.field(default_factory=dict)
    row: int = 0


def _read_csv(path: str) -> tuple[list[str], list[tuple[int, dict]]]:
    """Header and ``(line, cells)`` of every non-blank row of a CSV file (BOM and CRLF allowed)."""
    text = files.read_text(path)
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in (reader.fieldnames or []) if name is not None]
    reader.fieldnames = header
    rows = []
    for values in reader:
        cells = {key: (value or "").strip() for key, value in values.items() if key is not None}
        if any(cells.values()):
            rows.append((reader.line_num, cells))
    return header, rows


def _check_columns(header: Sequence[str], required: Sequence[str], path: str) -> None:
    missing = [name for name in required if name not in header]
    if missing:
        raise DataError(path, f"missing column{'s' * (len(missing) > 1)} {', '.join(missing)}: BUS-BRA's "
                              f"{path.rsplit('/', 1)[-1]} needs {', '.join(required)} (found: {', '.join(header)})")


def _listing(folder: str) -> set[str]:
    if not tf.io.gfile.isdir(folder):
        raise DataError(folder, "folder not found: BUS-BRA's release layout has Images/bus_NNNN-x.png, "
                                f"Masks/mask_NNNN-x.png and {BUSBRA_DATA}")
    return {name.rstrip("/") for name in tf.io.gfile.listdir(folder)}


def busbra_mask_name(image_id: str) -> str:
    """The mask file of an image: ``bus_0001-l`` -> ``mask_0001-l.png``."""
    stem = image_id[len(_IMAGE_PREFIX):] if image_id.startswith(_IMAGE_PREFIX) else image_id
    return f"{_MASK_PREFIX}{stem}.png"


def read_busbra(manual_dir) -> list[BusbraRecord]:
    """Read and check ``bus_data.csv`` and the fold files of a BUS-BRA folder, before any image
    is decoded.

    Args:
        manual_dir: the folder of BUS-BRA's release (``Images/``, ``Masks/``, ``bus_data.csv``).

    Returns:
        One :class:`BusbraRecord` per row, in file order.

    Raises:
        DataError: naming the file (and row) and the rule: no ``bus_data.csv``, a missing
            column, an empty ``ID`` or ``Case``, an ``ID`` listed twice, an unknown pathology,
            a patient with two pathologies, a row whose image is not in ``Images/``, an image
            without its mask in ``Masks/``; in a fold file a missing column, a ``kFold`` out of
            range, or a patient whose images sit in two test folds.
    """
    root = str(manual_dir).rstrip("/")
    path = files.join(root, BUSBRA_DATA)
    if not files.exists(path):
        raise DataError(path, f"{BUSBRA_DATA} not found: BUS-BRA's release layout has Images/, Masks/ "
                              f"and {BUSBRA_DATA} ({', '.join(BUSBRA_COLUMNS)}, ...)")
    header, rows = _read_csv(path)
    _check_columns(header, BUSBRA_COLUMNS, path)
    if not rows:
        raise DataError(path, "no data rows")
    images, masks = _listing(files.join(root, BUSBRA_IMAGES)), _listing(files.join(root, BUSBRA_MASKS))
    records, labels_of = [], collections.defaultdict(dict)
    seen = set()
    for line, cells in rows:
        record = _record(root, path, line, cells, images, masks)
        if record.image_id in seen:
            raise DataError(f"{path}, row {line}", f"ID {record.image_id!r} is listed twice")
        seen.add(record.image_id)
        labels_of[record.patient_id].setdefault(record.label, record.image_id)
        if len(labels_of[record.patient_id]) > 1:
            raise DataError(f"{path}, row {line}", f"Case {cells['Case']!r} has two pathologies "
                                                   f"{dict(labels_of[record.patient_id])}: one patient, one biopsy "
                                                   "result")
        records.append(record)
    folds = {num_folds: _read_folds(root, num_folds, records) for num_folds in OFFICIAL_FOLD_COUNTS}
    return [dataclasses.replace(record, test_folds={k: folds[k][record.image_id] for k in folds
                                                    if record.image_id in folds[k]})
            for record in records]


def _record(root: str, path: str, line: int, cells: dict, images: set, masks: set) -> BusbraRecord:
    where = f"{path}, row {line}"
    image_id, case = cells["ID"], cells["Case"]
    if not image_id or not case:
        raise DataError(where, "empty ID or Case: every row names its image (ID) and its patient (Case)")
    pathology = cells["Pathology"].lower()
    if pathology not in BINARY_LABELS:
        raise DataError(where, f"unknown pathology {cells['Pathology']!r} of {image_id}: BUS-BRA's Pathology is "
                               f"{' or '.join(BINARY_LABELS)} (biopsy-proven)")
    image_name = f"{image_id}.png"
    if image_name not in images:
        raise DataError(where, f"image {BUSBRA_IMAGES}/{image_name} not found: every row of {BUSBRA_DATA} "
                               f"names an image of {BUSBRA_IMAGES}/")
    mask_name = busbra_mask_name(image_id)
    if mask_name not in masks:
        raise DataError(files.join(root, f"{BUSBRA_MASKS}/{mask_name}"),
                        f"mask not found for {BUSBRA_IMAGES}/{image_name}: every BUS-BRA image has its lesion "
                        f"mask in {BUSBRA_MASKS}/")
    return BusbraRecord(
        image_id=image_id, patient_id=f"busbra_{case}", label=pathology, birads=cells["BIRADS"],
        histology=cells["Histology"], device=cells["Device"], side=cells["Side"].lower(),
        image_path=files.join(root, f"{BUSBRA_IMAGES}/{image_name}"),
        mask_path=files.join(root, f"{BUSBRA_MASKS}/{mask_name}"), row=line,
    )


def _read_folds(root: str, num_folds: int, records: Sequence[BusbraRecord]) -> dict[str, int]:
    """Image id -> ``kFold`` of ``<K>-fold-cv.csv`` (empty if the folder has no such file); rows
    of images not in ``bus_data.csv`` are ignored."""
    path = files.join(root, BUSBRA_FOLD_FILES[num_folds])
    if not files.exists(path):
        return {}
    header, rows = _read_csv(path)
    _check_columns(header, BUSBRA_FOLD_COLUMNS, path)
    patient_of = {record.image_id: record.patient_id for record in records}
    folds, fold_of_patient = {}, {}
    for line, cells in rows:
        image_id = cells["ID"]
        if image_id not in patient_of:
            continue
        try:
            fold = int(float(cells["kFold"]))
        except ValueError:
            fold = 0
        if not 1 <= fold <= num_folds:
            raise DataError(f"{path}, row {line}", f"kFold {cells['kFold']!r} of {image_id}: the test fold must be "
                                                   f"a whole number from 1 to {num_folds}")
        patient = patient_of[image_id]
        first = fold_of_patient.setdefault(patient, (fold, image_id))
        if first[0] != fold:
            raise DataError(f"{path}, row {line}", f"patient {patient} has {first[1]} in test fold {first[0]} and "
                                                   f"{image_id} in test fold {fold}: all images of a patient must sit "
                                                   "in one test fold")
        folds[image_id] = fold
    return folds


def busbra_files(manual_dir, records: Sequence[BusbraRecord] | None = None) -> list[str]:
    """Every file a BUS-BRA folder is read from: the CSV files present, each row's image and mask
    (what its fingerprint covers, :mod:`tf_bimodal.data.fingerprint`)."""
    root = str(manual_dir).rstrip("/")
    records = read_busbra(root) if records is None else records
    tables = [files.join(root, name) for name in (BUSBRA_DATA, *BUSBRA_FOLD_FILES.values())]
    return [path for path in tables if files.exists(path)] + [
        path for record in records for path in (record.image_path, record.mask_path)]


def iter_busbra(manual_dir, image_size: int, records: Sequence[BusbraRecord] | None = None) -> Iterator[dict]:
    """Yield BUS-BRA as schema dicts (B-mode only), in the order of ``bus_data.csv``.

    ``image_id`` is the row's ``ID``, ``patient_id`` ``busbra_<Case>``, ``label`` its
    ``Pathology``; ``pathology``, ``birads``, ``histology``, ``device`` and ``side`` keep the
    row's values and ``test_fold_5`` / ``test_fold_10`` the image's test fold in the data set's
    own partitions (0 where the folder lacks the file). No SE-mode image exists: ``has_semode``
    is False and ``semode`` zeros. The mask is ``Masks/mask_<NNNN-x>.png``.

    Args:
        manual_dir: the BUS-BRA folder (see :func:`read_busbra`).
        image_size: output side in pixels.
        records: :func:`read_busbra` of ``manual_dir``, if already read.

    Raises:
        DataError: see :func:`read_busbra`; also an unreadable image or mask, a mask of another
            size than its image, or an empty mask (every BUS-BRA image shows one lesion).
    """
    records = read_busbra(manual_dir) if records is None else records
    empty_semode = np.zeros((image_size, image_size, 3), np.uint8)
    for record in records:
        bmode = to_grey(read_image(record.image_path))
        mask = read_mask(record.mask_path)
        if mask.shape[:2] != bmode.shape[:2]:
            raise DataError(record.mask_path, f"mask size {size_text(mask)} differs from the B-mode image "
                                              f"{size_text(bmode)}")
        if not mask.any():
            raise DataError(record.mask_path, f"empty mask: a {record.label} image needs a lesion, but all mask "
                                              "pixels are 0")
        example = {
            "image_id": record.image_id,
            "patient_id": record.patient_id,
            "label": record.label,
            "bmode": resize_image(bmode, image_size),
            "semode": empty_semode,
            "mask": resize_mask(mask, image_size),
            "has_semode": False,
            "has_mask": True,
            "pathology": record.label,
            "birads": record.birads,
            "histology": record.histology,
            "device": record.device,
            "side": record.side,
        }
        for num_folds in OFFICIAL_FOLD_COUNTS:
            example[official_fold_key(num_folds)] = int(record.test_folds.get(num_folds, 0))
        yield example
