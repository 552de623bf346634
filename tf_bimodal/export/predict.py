"""Run an exported CAD pipeline on new patients' files: folder in, folder out (§3.1-§3.3).

:func:`predict` reads cases (a B-mode/SE pair, a dual-view screenshot, every image of a folder,
or the rows of a CSV without labels), runs the exported ``cad_pipeline`` SavedModel on each
and writes, per case, the lesion mask at the input's size (``<id>_mask.png``) and an overlay
picture (``<id>_overlay.png``: B-mode and SE side by side, the lesion contour, the crop box,
p(malignant), the label and the threshold), and for all cases one row each in
``predictions.csv`` and ``predictions.json``: id, files, p_malignant, label, threshold, the crop
box as ``box_x0, box_y0, box_x1, box_y1`` (top left, bottom right exclusive, in the B-mode
image's pixels: the convention of ``--boxes``; the SavedModel's own ``box`` output is
``[y0, x0, y1, x1]``), the image's width and height, lesion area, the modalities used, the
spread of p over the fold models (and over repeated draws where the classifier samples its
embracement), the model's provenance and, for a case that failed, the error naming its file;
numbers are JSON numbers (null where there is none). ``predictions.html``
(:mod:`tf_bimodal.export.page`) shows it all in one page. A bad case never stops the others;
every file is written atomically; :func:`predict` reports how many cases failed.

Nonsense is refused case by case: an image with a side under 32 px or more elongated than 4:1
(:func:`tf_bimodal.data.readers.check_proportions`). An image larger than 2048 px
(``readers.MAX_READ_SIDE``) is shrunk on read, before any float conversion, and served at that
size; its mask and box are given at the file's size and its row's ``note`` says so. Ids follow
one rule for every kind of case (:func:`case_id_of`); two cases with one id are an error.

Images may be PNG, JPEG, BMP, TIFF or DICOM, grey, RGB or RGBA
(:mod:`tf_bimodal.data.readers`). A case without an SE image is served B-mode only (the
classifier's SE input is marked unavailable, §3.3.1) and says so in its row.

A **B-mode-only export** (``export.json``'s ``modalities`` ``["bmode"]``: ``unet_bmode`` then
``vgg16_bmode``) serves every case from its B-mode image; its overlay has no SE-mode column. A
case given with an SE-mode image (``--semode``, an SE file of a pair, a dual view's SE pane) is
served all the same: the SE-mode image is ignored (not read), a warning says so and the row's
``note`` repeats it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import os
import re
import sys

import keras
import numpy as np
import tensorflow as tf

from tf_bimodal import layout
from tf_bimodal.data import readers
from tf_bimodal.data.errors import DataError
from tf_bimodal.evaluation.figures import save_bmode_prediction_overlay, save_prediction_overlay
from tf_bimodal.export.exporter import EXPORT_FILE, export_experiment
from tf_bimodal.export.page import write_predictions_page
from tf_bimodal.io import read_json, write_json
from tf_bimodal.schema import BINARY_LABELS

logger = logging.getLogger(__name__)

PREDICTIONS_CSV = "predictions.csv"
PREDICTIONS_JSON = "predictions.json"
BOX_COLUMNS = ("box_x0", "box_y0", "box_x1", "box_y1")
"""The crop box in the B-mode image's pixels, as ``--boxes`` gives panes: x0, y0 (top left),
x1, y1 (bottom right, exclusive)."""
BOX_CONVENTION = "box_x0, box_y0: top left; box_x1, box_y1: bottom right, exclusive; B-mode image pixels"
CSV_COLUMNS = (
    "id", "status", "error", "bmode", "semode", "dual_view", "p_malignant", "label", "threshold",
    "p_fold_sd", "p_draw_sd", *BOX_COLUMNS, "width", "height", "lesion_area_px", "lesion_area_fraction",
    "modalities", "mask", "overlay", "note",
)
IMAGE_ENDINGS = readers.RASTER_EXTENSIONS + readers.DICOM_EXTENSIONS
SAMPLED_DRAWS = 10
"""Calls per case when the exported classifier samples its embracement (``embracement="sample"``):
the SD of p over them is reported as an uncertainty."""

SYNTHETIC_MODEL_NOTICE = "SYNTHETIC PHANTOM MODEL: trained on simulated images; not for clinical use"
SE_IGNORED = "SE-mode image ignored: this export reads B-mode only"


def export_modalities(record: dict) -> tuple:
    """The modalities an exported pipeline reads (``export.json``'s ``modalities``); an export
    written before B-mode-only pipelines existed reads pairs."""
    return tuple(record.get("modalities") or ("bmode", "semode"))


def bmode_only(record: dict) -> bool:
    """Whether the export's pipeline reads the B-mode image alone (``unet_bmode`` + ``vgg16_bmode``)."""
    return export_modalities(record) == ("bmode",)


@dataclasses.dataclass(frozen=True)
class Case:
    """One patient image pair to classify.

    Attributes:
        case_id: a name unique among the cases (file names are made from it).
        bmode: the B-mode file, or None for a dual view.
        semode: the SE-mode file, or None (B-mode only, or a dual view).
        dual_view: a screenshot with both panes, or None.
        dual_view_boxes: explicit pane boxes for ``dual_view`` (see ``readers.parse_boxes``).
    """

    case_id: str
    bmode: str | None = None
    semode: str | None = None
    dual_view: str | None = None
    dual_view_boxes: tuple | None = None


# --------------------------------------------------------------------------- finding cases


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "case"


# The suffix follows a separator: "case.png" is a case, not the SE image of "ca".
_SE_NAME = re.compile(r"(?i)(.+?)[_ /-](se|semode|se_mode|strain|elasto)$")
_BMODE_NAME = re.compile(r"(?i)(.+?)[_ /-](b|bmode|b_mode)$")


def case_id_of(stem: str) -> str:
    """The id of a case named by its B-mode (or dual-view) file: the file's stem (its path
    below the folder or CSV for ``--folder`` and ``--csv``) without a B-mode suffix (``_bmode``,
    ``_b``, ``_b_mode``), characters other than letters, digits, ``.``, ``_`` and ``-`` made
    ``_``. The one rule for every kind of case: ``p1_bmode.png`` is ``p1`` alone, in a pair,
    in a folder or in a CSV."""
    match = _BMODE_NAME.fullmatch(stem)
    return _safe_id(match.group(1) if match and match.group(1) else stem)


def _file_of(case: Case) -> str:
    return case.bmode or case.dual_view or case.semode or ""


def check_unique(cases: list[Case], where: str) -> list[Case]:
    """``cases`` with their ids made safe for file names (:func:`case_id_of`'s characters).

    Raises:
        DataError: two cases share an id (after that cleaning), naming ``where``, the ids and
            their files: each id names a case's mask and overlay files.
    """
    cases = [dataclasses.replace(case, case_id=_safe_id(case.case_id)) for case in cases]
    files: dict[str, list[str]] = {}
    for case in cases:
        files.setdefault(case.case_id, []).append(_file_of(case))
    duplicates = {case_id: paths for case_id, paths in files.items() if len(paths) > 1}
    if duplicates:
        listed = "; ".join(f"'{case_id}' ({', '.join(paths)})" for case_id, paths in sorted(duplicates.items()))
        raise DataError(where, f"duplicate case ids {listed}: each case needs its own id (its mask and overlay "
                               "are named after it); rename the files or give each row its own id")
    return cases


def pair_case(bmode: str, semode: str | None = None, case_id: str | None = None) -> Case:
    """One pair of files (SE optional); its id by :func:`case_id_of`."""
    return Case(case_id or case_id_of(os.path.splitext(os.path.basename(bmode))[0]), bmode=str(bmode),
                semode=None if semode is None else str(semode))


def dual_view_case(path: str, boxes: str | None = None, case_id: str | None = None) -> Case:
    """One dual-view screenshot; ``boxes`` as ``"x0 y0 x1 y1;x0 y0 x1 y1"`` (B-mode first)."""
    return Case(case_id or case_id_of(os.path.splitext(os.path.basename(path))[0]), dual_view=str(path),
                dual_view_boxes=readers.parse_boxes(boxes) if boxes else None)


def folder_cases(folder: str) -> list[Case]:
    """Every image below ``folder`` as a case: files named ``<stem>_bmode.*`` and
    ``<stem>_semode.*`` (or ``_b`` / ``_se``, ``_strain``) are paired, any other image is a
    B-mode-only case; files whose name contains ``mask`` are skipped (BUSI's masks). Ids by
    :func:`case_id_of` from the path below ``folder``.

    Raises:
        DataError: the folder does not exist or holds no image; two images would give one
            id (``x.png`` and ``x.jpg``, ``x_bmode.png`` and ``x_bmode.jpg``), naming them.
    """
    if not os.path.isdir(folder):
        raise DataError(folder, "folder not found")
    pairs: dict[str, dict[str, str]] = {}
    taken: list[Case] = []  # a second file for a pair's slot
    singles = []
    for root, _, names in sorted(os.walk(folder)):
        for name in sorted(names):
            stem, ending = os.path.splitext(name)
            if ending.lower() not in IMAGE_ENDINGS or "mask" in stem.lower():
                continue
            path = os.path.join(root, name)
            relative = os.path.relpath(os.path.join(root, stem), folder)
            se_match, b_match = _SE_NAME.fullmatch(relative), _BMODE_NAME.fullmatch(relative)
            match, kind = (se_match, "semode") if se_match else (b_match, "bmode")
            if match:
                slots = pairs.setdefault(match.group(1), {})
                if kind in slots:
                    taken.append(Case(match.group(1), **{kind: path}))
                slots.setdefault(kind, path)
            else:
                singles.append(Case(relative, bmode=path))
    cases = list(singles)
    for key, files in sorted(pairs.items()):
        if "bmode" in files:
            cases.append(Case(key, bmode=files["bmode"], semode=files.get("semode")))
        else:  # an SE image without its B-mode image: reported as a failed case
            cases.append(Case(key, bmode=None, semode=files["semode"]))
    if not cases:
        raise DataError(folder, f"no image found (looked for {', '.join(IMAGE_ENDINGS)})")
    check_unique(cases + taken, folder)
    return sorted(check_unique(cases, folder), key=lambda case: case.case_id)


def csv_cases(path: str, allow_outside: bool = False) -> list[Case]:
    """The rows of a CSV without labels: columns ``bmode`` (and optionally ``semode``), or
    ``dual_view`` (and optionally ``dual_view_boxes``), and optionally ``id`` (by default the
    case's id is :func:`case_id_of` its file's path below the CSV's folder).

    Paths follow the data manifest's rule (:func:`tf_bimodal.data.readers.inside_folder`):
    relative to the CSV's folder and inside it, unless ``allow_outside`` (``--allow-outside``)
    also takes absolute paths and paths that climb out of it.

    Raises:
        DataError: the file is missing, empty or lacks the columns; a path outside the CSV's
            folder (without ``allow_outside``); bad pane boxes; duplicate ids (naming them).
    """
    if not os.path.isfile(path):
        raise DataError(path, "file not found")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise DataError(path, "no rows: expected a header (bmode,semode or dual_view) and one row per case")
    columns = {name.strip().lower() for name in rows[0]}
    if "bmode" not in columns and "dual_view" not in columns:
        raise DataError(path, f"needs a 'bmode' or a 'dual_view' column, got {sorted(columns)}")
    folder = os.path.dirname(os.path.abspath(path))
    listing = os.path.basename(path)
    cases = []
    for number, row in enumerate(rows, start=2):
        row = {key.strip().lower(): (value or "").strip() for key, value in row.items() if key}

        def fail(column, rule, number=number):
            raise DataError(path, f"row {number}, column {column}: {rule}")

        def where(name, row=row):
            value = row.get(name)
            if not value:
                return None
            if not allow_outside:
                readers.inside_folder(value, fail, name, listing=listing,
                                      remedy="link or copy the file into it, or pass --allow-outside")
            return os.path.normpath(os.path.join(folder, value))

        given = row.get("dual_view") or row.get("bmode") or row.get("semode") or f"row{number}"
        case_id = row.get("id") or case_id_of(os.path.splitext(given.replace("\\", "/").lstrip("./"))[0])
        if row.get("dual_view"):
            try:
                boxes = readers.parse_boxes(row["dual_view_boxes"]) if row.get("dual_view_boxes") else None
            except ValueError as error:
                fail("dual_view_boxes", str(error))
            cases.append(Case(case_id, dual_view=where("dual_view"), dual_view_boxes=boxes))
        else:
            cases.append(Case(case_id, bmode=where("bmode"), semode=where("semode")))
    return check_unique(cases, path)


def cases_from_arguments(bmode: str | None = None, semode: str | None = None, dual_view: str | None = None,
                         boxes: str | None = None, folder: str | None = None, csv_path: str | None = None,
                         allow_outside: bool = False) -> list[Case]:
    """The cases ``tf-bimodal predict``'s options name (one of ``bmode``, ``dual_view``,
    ``folder``, ``csv_path``), the options that do not apply to that kind refused.

    Raises:
        ValueError: ``--semode`` without ``--bmode``, ``--boxes`` without ``--dual-view``,
            ``--allow-outside`` without ``--csv``, or unreadable ``--boxes``; naming the option.
        DataError: from :func:`folder_cases` and :func:`csv_cases`.
    """
    given = "--bmode" if bmode else "--dual-view" if dual_view else "--folder" if folder else "--csv"
    if semode and not bmode:
        raise ValueError(f"--semode: names the SE-mode image of --bmode, it does not apply to {given} "
                         "(pair files in a folder as <stem>_bmode / <stem>_semode, in a CSV with a semode column)")
    if boxes and not dual_view:
        raise ValueError(f"--boxes: the panes of a --dual-view screenshot, it does not apply to {given} "
                         "(a CSV's screenshots take a dual_view_boxes column)")
    if allow_outside and not csv_path:
        raise ValueError(f"--allow-outside: lets a --csv name files outside its folder, it does not apply to {given}")
    if bmode:
        return [pair_case(bmode, semode)]
    if dual_view:
        try:
            return [dual_view_case(dual_view, boxes)]
        except ValueError as error:
            raise ValueError(f"--boxes: {error} (expected 'x0 y0 x1 y1;x0 y0 x1 y1', B-mode pane first)") from None
    if folder:
        return folder_cases(folder)
    return csv_cases(csv_path, allow_outside=allow_outside)


# --------------------------------------------------------------------------- the model


def missing_parts(export_dir: str, parts) -> list[str]:
    """What an export folder lacks of the SavedModels ``parts`` (``export.json``'s ``parts``,
    ``cad_pipeline`` always): each part's folder, its ``saved_model.pb`` and its variables
    (``variables/variables.index`` and the data shards it lists), as paths below ``export_dir``."""
    missing = []
    for part in dict.fromkeys([*parts, "cad_pipeline"]):
        folder = os.path.join(export_dir, part)
        if not os.path.isdir(folder):
            missing.append(f"{part}/")
            continue
        if not os.path.isfile(os.path.join(folder, "saved_model.pb")):
            missing.append(f"{part}/saved_model.pb")
        variables = os.path.join(folder, "variables")
        if not os.path.isdir(variables):
            missing.append(f"{part}/variables/")
            continue
        if not os.path.isfile(os.path.join(variables, "variables.index")):
            missing.append(f"{part}/variables/variables.index")
        if not any(name.startswith("variables.data-") for name in os.listdir(variables)):
            missing.append(f"{part}/variables/variables.data-*")
    return missing


def load_pipeline(source: str) -> tuple:
    """The exported ``cad_pipeline`` and its ``export.json`` record.

    ``source`` is an export folder (``export_experiment``'s output) or an experiment folder
    (``runs/<dataset>-<preset>``), which is exported first into ``<source>/export``.

    Raises:
        FileNotFoundError: neither an export nor a trained experiment, saying what to run; an
            incomplete export (a copy without a part ``export.json`` lists, a SavedModel
            without its variables: :func:`missing_parts`), naming what is missing.
    """
    if not os.path.isfile(os.path.join(source, EXPORT_FILE)):
        if os.path.isdir(os.path.join(source, layout.CROP_SEGMENTER)):
            target = os.path.join(source, "export")
            if not os.path.isfile(os.path.join(target, EXPORT_FILE)):
                logger.info(f"{source} is an experiment folder: exporting it to {target} first")
                export_experiment(source, target)
            source = target
        else:
            raise FileNotFoundError(
                f"{source}: neither an exported model (no {EXPORT_FILE}) nor an experiment folder (no "
                f"{layout.CROP_SEGMENTER}/); export one with `tf-bimodal export DIR`"
            )
    record = read_json(os.path.join(source, EXPORT_FILE))
    if "cad_pipeline" not in record.get("parts", []):
        raise FileNotFoundError(f"{source}: the export holds no cad_pipeline (parts {record.get('parts')})")
    missing = missing_parts(source, record.get("parts", []))
    if missing:
        raise FileNotFoundError(f"{source}: incomplete export, missing {', '.join(missing)} (listed in {EXPORT_FILE}: "
                                f"{', '.join(record.get('parts', []))}); copy the whole folder or export it again "
                                "with `tf-bimodal export`")
    return tf.saved_model.load(os.path.join(source, "cad_pipeline")), record


# --------------------------------------------------------------------------- one case


@dataclasses.dataclass(frozen=True)
class CaseImages:
    """A case's images as served, and the size its B-mode image has in its file.

    Attributes:
        bmode: grey ``(h, w, 1)`` uint8, shrunk to ``readers.MAX_READ_SIDE`` when larger.
        semode: colour ``(h, w, 3)`` uint8, or None (B-mode only).
        size: ``(height, width)`` of the B-mode image (a dual view's B-mode pane) in its file:
            masks and boxes are given at this size.
    """

    bmode: np.ndarray
    semode: np.ndarray | None
    size: tuple


def _scaled(box, factors, inverse: bool = False) -> tuple:
    """An ``(x0, y0, x1, y1)`` box from read pixels to file pixels (``inverse``: back)."""
    fy, fx = factors
    if inverse:
        fy, fx = 1 / fy, 1 / fx
    return tuple(int(round(value * (fx if index % 2 == 0 else fy))) for index, value in enumerate(box))


def _read_dual_view(case: Case, max_side: int) -> CaseImages:
    screenshot, (height, width) = readers.read_image_within(case.dual_view, max_side)
    factors = (height / screenshot.shape[0], width / screenshot.shape[1])
    boxes = case.dual_view_boxes
    if boxes is not None:
        for box in boxes:  # checked at the file's size, then taken to the size read
            if box[2] > width or box[3] > height:
                raise DataError(case.dual_view, f"pane box {' '.join(map(str, box))} reaches outside the "
                                                f"{width}x{height} screenshot")
        boxes = tuple(_scaled(box, factors, inverse=True) for box in boxes)
    bmode, semode = readers.split_dual_view(screenshot, boxes, where=case.dual_view)
    size = (round(bmode.shape[0] * factors[0]), round(bmode.shape[1] * factors[1]))
    readers.check_proportions(*size, f"{case.dual_view} (B-mode pane)")
    readers.check_proportions(round(semode.shape[0] * factors[0]), round(semode.shape[1] * factors[1]),
                              f"{case.dual_view} (SE-mode pane)")
    if semode.shape[:2] != bmode.shape[:2]:
        semode = tf.image.resize(semode, bmode.shape[:2], method="bilinear").numpy()
        semode = np.clip(np.round(semode), 0, 255).astype(np.uint8)
    return CaseImages(readers.to_grey(bmode), semode, size)


def read_case(case: Case, max_side: int | None = None) -> CaseImages:
    """The case's grey B-mode ``(h, w, 1)`` and colour SE ``(h, w, 3)`` (or None) images.

    An image whose longer side exceeds ``max_side`` (default ``readers.MAX_READ_SIDE``) is
    shrunk on read
    (:func:`tf_bimodal.data.readers.read_image_within`), so that a huge file costs its decoded
    pixels once and the rest of the case at most ``max_side`` squared pixels.

    Raises:
        DataError: an unreadable file, an image too small or too elongated
            (:func:`tf_bimodal.data.readers.check_proportions`), a grey SE image, or panes of
            different sizes.
    """
    max_side = max_side or readers.MAX_READ_SIDE
    if case.dual_view:
        return _read_dual_view(case, max_side)
    if not case.bmode:
        raise DataError(case.semode or case.case_id, "an SE-mode image without its B-mode image")
    bmode, size = readers.read_image_within(case.bmode, max_side)
    readers.check_proportions(*size, case.bmode)
    bmode = readers.to_grey(bmode)
    if not case.semode:
        return CaseImages(bmode, None, size)
    semode, semode_size = readers.read_image_within(case.semode, max_side)
    if semode.shape[-1] != 3 or not readers.is_colour(semode):
        raise DataError(case.semode, "grey SE-mode image where colour is expected (the strain map is a colour image)")
    if semode_size != size or semode.shape[:2] != bmode.shape[:2]:
        raise DataError(case.semode, f"SE-mode image {semode_size[1]}x{semode_size[0]} differs in size from "
                                     f"the B-mode image {size[1]}x{size[0]}")
    return CaseImages(bmode, semode, size)


def serve_case(pipeline, record: dict, bmode: np.ndarray, semode: np.ndarray | None) -> dict:
    """The pipeline's outputs (NumPy) for one case; ``semode`` None serves it B-mode only.

    Raises:
        DataError: a B-mode-only case for an export that cannot serve one.
    """
    if bmode_only(record):
        outputs = pipeline.serve(tf.constant(bmode))
    elif semode is None:
        if not hasattr(pipeline, "serve_bmode_only"):
            raise DataError("semode", "this export cannot serve B-mode-only cases; export the experiment again")
        outputs = pipeline.serve_bmode_only(tf.constant(bmode))
    else:
        outputs = pipeline.serve(tf.constant(bmode), tf.constant(semode))
    return {key: value.numpy() for key, value in outputs.items()}


def _png_bytes(image: np.ndarray) -> bytes:
    return tf.io.encode_png(tf.constant(image)).numpy()


def _write_atomic(path: str, data: bytes) -> str:
    tmp_path = f"{path}.tmp"
    with open(tmp_path, "wb") as handle:
        handle.write(data)
    os.replace(tmp_path, path)
    return path


def _at_file_size(mask: np.ndarray, box, size: tuple) -> tuple:
    """The mask and the ``(x0, y0, x1, y1)`` box of an image shrunk on read, at the file's size."""
    if mask.shape[:2] == tuple(size):
        return mask, tuple(box)
    factors = (size[0] / mask.shape[0], size[1] / mask.shape[1])
    full = tf.image.resize(mask[..., None], size, method="nearest").numpy()[..., 0]
    x0, y0, x1, y1 = _scaled(box, factors)
    return full, (x0, y0, min(x1, size[1]), min(y1, size[0]))


def predict_case(pipeline, record: dict, case: Case, output_dir: str) -> dict:
    """Run one case and write its mask and overlay; returns its row (see the module docstring).
    For a B-mode-only export an SE-mode image of the case is ignored, with a warning."""
    notes = []
    if bmode_only(record) and (case.semode or case.dual_view):
        notes.append(SE_IGNORED)
        logger.warning(f"{case.case_id}: {SE_IGNORED} ({case.semode or case.dual_view + ': its SE pane'})")
        case = dataclasses.replace(case, semode=None)
    images = read_case(case)
    bmode, semode = images.bmode, (None if bmode_only(record) else images.semode)
    if bmode.shape[:2] != tuple(images.size):
        notes.append(f"read at {bmode.shape[1]}x{bmode.shape[0]} px, shrunk from {images.size[1]}x{images.size[0]} "
                     f"(longer side over {readers.MAX_READ_SIDE} px); mask and box at the file's size")
    outputs = serve_case(pipeline, record, bmode, semode)
    draws = [float(outputs["p_malignant"])]
    if (record.get("classifier") or {}).get("embracement") == "sample":
        draws += [float(serve_case(pipeline, record, bmode, semode)["p_malignant"])
                  for _ in range(SAMPLED_DRAWS - 1)]
    p_malignant = float(np.mean(draws))
    threshold = float(outputs["threshold"])
    label = BINARY_LABELS[int(p_malignant >= threshold)]
    mask = outputs["mask"].astype(np.uint8)
    y0, x0, y1, x1 = (int(v) for v in outputs["box"])  # the pipeline's order; the row's is x0, y0, x1, y1
    overlay = dict(path=os.path.join(output_dir, f"{case.case_id}_overlay.png"), title=case.case_id,
                   notice=SYNTHETIC_MODEL_NOTICE if record.get("synthetic") else None)
    if bmode_only(record):
        overlay_path = save_bmode_prediction_overlay(bmode, mask, [y0, x0, y1, x1], p_malignant, label, threshold,
                                                     **overlay)
    else:
        overlay_path = save_prediction_overlay(bmode, semode, mask, [y0, x0, y1, x1], p_malignant, label, threshold,
                                               **overlay)
    mask, box = _at_file_size(mask, (x0, y0, x1, y1), images.size)
    mask_path = _write_atomic(os.path.join(output_dir, f"{case.case_id}_mask.png"), _png_bytes(mask[..., None] * 255))
    modalities = ["bmode", "semode"] if semode is not None else ["bmode"]
    return {
        "id": case.case_id,
        "status": "ok",
        "error": "",
        "bmode": case.bmode or "",
        "semode": case.semode or "",
        "dual_view": case.dual_view or "",
        "p_malignant": round(p_malignant, 6),
        "label": label,
        "threshold": round(threshold, 6),
        "p_fold_sd": round(float(np.std(outputs["fold_p_malignant"])), 6),
        "p_draw_sd": round(float(np.std(draws)), 6) if len(draws) > 1 else None,
        **dict(zip(BOX_COLUMNS, box)),
        "width": int(images.size[1]),
        "height": int(images.size[0]),
        "lesion_area_px": int(mask.sum()),
        "lesion_area_fraction": round(float(mask.mean()), 6),
        "modalities": "+".join(modalities),
        "mask": mask_path,
        "overlay": overlay_path,
        "note": "; ".join(notes),
    }


# --------------------------------------------------------------------------- many cases


def predict(source: str, cases: list[Case], output_dir: str, progress: bool = True) -> dict:
    """Run the exported CAD pipeline of ``source`` on ``cases``; write into ``output_dir``.

    Args:
        source: an export folder, or an experiment folder (exported first).
        cases: from :func:`pair_case`, :func:`dual_view_case`, :func:`folder_cases` or
            :func:`csv_cases`.
        output_dir: where the masks, overlays, ``predictions.csv``, ``predictions.json`` and
            ``predictions.html`` (:mod:`tf_bimodal.export.page`) go.
        progress: show a progress bar over the cases.

    Returns:
        ``{"cases", "failed", "csv", "json", "html", "rows"}``; a failed case has ``status``
        ``error`` and its ``error`` (naming the file); the others ran regardless.
    """
    pipeline, record = load_pipeline(source)
    os.makedirs(output_dir, exist_ok=True)
    provenance = {
        "export": os.path.abspath(source),
        "synthetic": bool(record.get("synthetic")),
        "notice": record.get("notice"),
        "modalities": list(export_modalities(record)),
        "segmenter": {key: (record.get("segmenter") or {}).get(key) for key in ("run", "dataset", "folds")},
        "classifier": {key: (record.get("classifier") or {}).get(key)
                       for key in ("run", "dataset", "folds", "embracement", "threshold")},
        "source_fingerprint": (record.get("classifier") or {}).get("source_fingerprint"),
        "versions": record.get("versions"),
    }
    if provenance["synthetic"]:
        logger.info(SYNTHETIC_MODEL_NOTICE)
    # A progress bar on a terminal; through a pipe or into a file, a line per case.
    bar = keras.utils.Progbar(len(cases), unit_name="case") if progress and sys.stdout.isatty() else None
    rows = []
    for number, case in enumerate(cases, start=1):
        try:
            row = predict_case(pipeline, record, case, output_dir)
        except (DataError, ValueError, tf.errors.InvalidArgumentError, OSError) as error:
            message = getattr(error, "message", None) or str(error)
            row = {column: None for column in CSV_COLUMNS}
            row.update(id=case.case_id, status="error", error=message.strip().splitlines()[-1],
                       bmode=case.bmode or "", semode=case.semode or "", dual_view=case.dual_view or "")
            logger.warning(f"{case.case_id}: failed: {row['error']}")
        rows.append(row)
        if bar is not None:
            bar.update(number)
        elif progress:
            logger.info(f"case {number}/{len(cases)} {case.case_id}: "
                        + (f"{row['label']}, p(malignant) {row['p_malignant']}" if row["status"] == "ok" else "failed"))
    failed = sum(row["status"] != "ok" for row in rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    csv_path = _write_atomic(os.path.join(output_dir, PREDICTIONS_CSV), buffer.getvalue().encode())
    json_path = write_json(os.path.join(output_dir, PREDICTIONS_JSON),
                           {"model": provenance, "cases": len(rows), "failed": failed, "box": BOX_CONVENTION,
                            "rows": rows})
    html_path = write_predictions_page(output_dir, rows, provenance,
                                       SYNTHETIC_MODEL_NOTICE if provenance["synthetic"] else None)
    logger.info(f"{len(rows) - failed} of {len(rows)} cases predicted, {failed} failed; wrote {csv_path}, "
                f"{json_path} and {html_path}")
    return {"cases": len(rows), "failed": failed, "csv": csv_path, "json": json_path, "html": html_path, "rows": rows}


__all__ = ["BOX_COLUMNS", "Case", "CaseImages", "bmode_only", "case_id_of", "cases_from_arguments", "check_unique",
           "csv_cases", "dual_view_case", "export_modalities", "folder_cases", "load_pipeline", "missing_parts",
           "pair_case", "predict", "predict_case", "read_case", "serve_case"]
