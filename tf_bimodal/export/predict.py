"""Run an exported CAD pipeline on new patients' files: folder in, folder out (§3.1-§3.3).

:func:`predict` reads cases (a B-mode/SE pair, a dual-view screenshot, every image of a folder,
or the rows of a CSV without labels), runs the exported ``cad_pipeline`` SavedModel on each
and writes, per case, the lesion mask at the input's size (``<id>_mask.png``) and an overlay
picture (``<id>_overlay.png``: B-mode and SE side by side, the lesion contour, the crop box,
p(malignant), the label and the threshold), and for all cases one row each in
``predictions.csv`` and ``predictions.json``: id, files, p_malignant, label, threshold, box,
lesion area, the modalities used, the spread of p over the fold models (and over repeated
draws where the classifier samples its embracement), the model's provenance and, for a case
that failed, the error naming its file. A bad case never stops the others; every file is
written atomically; :func:`predict` reports how many cases failed.

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
from tf_bimodal.io import read_json, write_json
from tf_bimodal.schema import BINARY_LABELS

logger = logging.getLogger(__name__)

PREDICTIONS_CSV = "predictions.csv"
PREDICTIONS_JSON = "predictions.json"
CSV_COLUMNS = (
    "id", "status", "error", "bmode", "semode", "dual_view", "p_malignant", "label", "threshold",
    "p_fold_sd", "p_draw_sd", "box", "lesion_area_px", "lesion_area_fraction", "modalities", "mask", "overlay",
    "note",
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


def _unique(cases: list[Case]) -> list[Case]:
    seen: dict[str, int] = {}
    out = []
    for case in cases:
        base = _safe_id(case.case_id)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.append(dataclasses.replace(case, case_id=base if count == 0 else f"{base}_{count + 1}"))
    return out


def pair_case(bmode: str, semode: str | None = None, case_id: str | None = None) -> Case:
    """One pair of files (SE optional)."""
    return Case(case_id or os.path.splitext(os.path.basename(bmode))[0], bmode=str(bmode),
                semode=None if semode is None else str(semode))


def dual_view_case(path: str, boxes: str | None = None, case_id: str | None = None) -> Case:
    """One dual-view screenshot; ``boxes`` as ``"x0 y0 x1 y1;x0 y0 x1 y1"`` (B-mode first)."""
    return Case(case_id or os.path.splitext(os.path.basename(path))[0], dual_view=str(path),
                dual_view_boxes=readers.parse_boxes(boxes) if boxes else None)


_SE_NAME = re.compile(r"(?i)(.*?)[_ -]?(se|semode|se_mode|strain|elasto)$")
_BMODE_NAME = re.compile(r"(?i)(.*?)[_ -]?(b|bmode|b_mode)$")


def folder_cases(folder: str) -> list[Case]:
    """Every image below ``folder`` as a case: files named ``<stem>_bmode.*`` and
    ``<stem>_semode.*`` (or ``_b`` / ``_se``, ``_strain``) are paired, any other image is a
    B-mode-only case; files whose name contains ``mask`` are skipped (BUSI's masks).

    Raises:
        DataError: the folder does not exist or holds no image.
    """
    if not os.path.isdir(folder):
        raise DataError(folder, "folder not found")
    pairs: dict[str, dict[str, str]] = {}
    singles = []
    for root, _, names in sorted(os.walk(folder)):
        for name in sorted(names):
            stem, ending = os.path.splitext(name)
            if ending.lower() not in IMAGE_ENDINGS or "mask" in stem.lower():
                continue
            path = os.path.join(root, name)
            relative = os.path.relpath(os.path.join(root, stem), folder)
            se_match, b_match = _SE_NAME.fullmatch(relative), _BMODE_NAME.fullmatch(relative)
            if se_match:
                pairs.setdefault(se_match.group(1), {})["semode"] = path
            elif b_match:
                pairs.setdefault(b_match.group(1), {})["bmode"] = path
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
    return _unique(sorted(cases, key=lambda case: case.case_id))


def csv_cases(path: str) -> list[Case]:
    """The rows of a CSV without labels: columns ``bmode`` (and optionally ``semode``), or
    ``dual_view`` (and optionally ``dual_view_boxes``), and optionally ``id``; paths relative to
    the CSV's folder.

    Raises:
        DataError: the file is missing, empty, or lacks the columns.
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
    cases = []
    for number, row in enumerate(rows, start=2):
        row = {key.strip().lower(): (value or "").strip() for key, value in row.items() if key}
        case_id = row.get("id") or f"row{number}"

        def where(name, row=row):
            value = row.get(name)
            return None if not value else (value if os.path.isabs(value) else os.path.join(folder, value))

        if row.get("dual_view"):
            cases.append(Case(case_id, dual_view=where("dual_view"),
                              dual_view_boxes=readers.parse_boxes(row["dual_view_boxes"])
                              if row.get("dual_view_boxes") else None))
        else:
            cases.append(Case(case_id, bmode=where("bmode"), semode=where("semode")))
    return _unique(cases)


# --------------------------------------------------------------------------- the model


def load_pipeline(source: str) -> tuple:
    """The exported ``cad_pipeline`` and its ``export.json`` record.

    ``source`` is an export folder (``export_experiment``'s output) or an experiment folder
    (``runs/<dataset>-<preset>``), which is exported first into ``<source>/export``.

    Raises:
        FileNotFoundError: neither an export nor a trained experiment, saying what to run.
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
    return tf.saved_model.load(os.path.join(source, "cad_pipeline")), record


# --------------------------------------------------------------------------- one case


def read_case(case: Case) -> tuple[np.ndarray, np.ndarray | None]:
    """The case's grey B-mode ``(H, W, 1)`` and colour SE ``(H, W, 3)`` (or None) images.

    Raises:
        DataError: an unreadable file, a grey SE image, or panes of different sizes.
    """
    if case.dual_view:
        screenshot = readers.read_image(case.dual_view)
        bmode, semode = readers.split_dual_view(screenshot, case.dual_view_boxes, where=case.dual_view)
        if semode.shape[:2] != bmode.shape[:2]:
            semode = tf.image.resize(semode, bmode.shape[:2], method="bilinear").numpy()
            semode = np.clip(np.round(semode), 0, 255).astype(np.uint8)
        return readers.to_grey(bmode), semode
    if not case.bmode:
        raise DataError(case.semode or case.case_id, "an SE-mode image without its B-mode image")
    bmode = readers.to_grey(readers.read_image(case.bmode))
    if not case.semode:
        return bmode, None
    semode = readers.read_image(case.semode)
    if semode.shape[-1] != 3 or not readers.is_colour(semode):
        raise DataError(case.semode, "grey SE-mode image where colour is expected (the strain map is a colour image)")
    if semode.shape[:2] != bmode.shape[:2]:
        raise DataError(case.semode, f"SE-mode image {semode.shape[1]}x{semode.shape[0]} differs in size from "
                                     f"the B-mode image {bmode.shape[1]}x{bmode.shape[0]}")
    return bmode, semode


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


def predict_case(pipeline, record: dict, case: Case, output_dir: str) -> dict:
    """Run one case and write its mask and overlay; returns its row (see the module docstring).
    For a B-mode-only export an SE-mode image of the case is ignored, with a warning."""
    note = ""
    if bmode_only(record) and (case.semode or case.dual_view):
        note = SE_IGNORED
        logger.warning(f"{case.case_id}: {SE_IGNORED} ({case.semode or case.dual_view + ': its SE pane'})")
        case = dataclasses.replace(case, semode=None)
    bmode, semode = read_case(case)
    semode = None if bmode_only(record) else semode
    outputs = serve_case(pipeline, record, bmode, semode)
    draws = [float(outputs["p_malignant"])]
    if (record.get("classifier") or {}).get("embracement") == "sample":
        draws += [float(serve_case(pipeline, record, bmode, semode)["p_malignant"])
                  for _ in range(SAMPLED_DRAWS - 1)]
    p_malignant = float(np.mean(draws))
    threshold = float(outputs["threshold"])
    label = BINARY_LABELS[int(p_malignant >= threshold)]
    mask = outputs["mask"].astype(np.uint8)
    box = [int(v) for v in outputs["box"]]
    mask_path = _write_atomic(os.path.join(output_dir, f"{case.case_id}_mask.png"), _png_bytes(mask[..., None] * 255))
    overlay = dict(path=os.path.join(output_dir, f"{case.case_id}_overlay.png"), title=case.case_id,
                   notice=SYNTHETIC_MODEL_NOTICE if record.get("synthetic") else None)
    if bmode_only(record):
        overlay_path = save_bmode_prediction_overlay(bmode, mask, box, p_malignant, label, threshold, **overlay)
    else:
        overlay_path = save_prediction_overlay(bmode, semode, mask, box, p_malignant, label, threshold, **overlay)
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
        "p_draw_sd": round(float(np.std(draws)), 6) if len(draws) > 1 else "",
        "box": " ".join(str(v) for v in box),
        "lesion_area_px": int(mask.sum()),
        "lesion_area_fraction": round(float(mask.mean()), 6),
        "modalities": "+".join(modalities),
        "mask": mask_path,
        "overlay": overlay_path,
        "note": note,
    }


# --------------------------------------------------------------------------- many cases


def predict(source: str, cases: list[Case], output_dir: str, progress: bool = True) -> dict:
    """Run the exported CAD pipeline of ``source`` on ``cases``; write into ``output_dir``.

    Args:
        source: an export folder, or an experiment folder (exported first).
        cases: from :func:`pair_case`, :func:`dual_view_case`, :func:`folder_cases` or
            :func:`csv_cases`.
        output_dir: where the masks, overlays, ``predictions.csv`` and ``predictions.json`` go.
        progress: show a progress bar over the cases.

    Returns:
        ``{"cases", "failed", "csv", "json", "rows"}``; a failed case has ``status`` ``error``
        and its ``error`` (naming the file); the others ran regardless.
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
            row = {column: "" for column in CSV_COLUMNS}
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
                           {"model": provenance, "cases": len(rows), "failed": failed, "rows": rows})
    logger.info(f"{len(rows) - failed} of {len(rows)} cases predicted, {failed} failed; wrote {csv_path} and "
                f"{json_path}")
    return {"cases": len(rows), "failed": failed, "csv": csv_path, "json": json_path, "rows": rows}


__all__ = ["Case", "bmode_only", "csv_cases", "dual_view_case", "export_modalities", "folder_cases", "load_pipeline",
           "pair_case", "predict", "predict_case", "read_case", "serve_case"]
