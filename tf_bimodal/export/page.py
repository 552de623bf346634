"""``predictions.html``: the cases of one ``tf-bimodal predict`` run in one page to browse.

One self-contained file (:mod:`tf_bimodal.pages`: no network, pictures inlined as thumbnails)
beside ``predictions.csv``: the model's provenance (``export.json``), the synthetic-model
notice where it applies, the failed cases with their errors, and one table row per case with
its overlay and mask, sortable by a click on a header (p(malignant), label, lesion area,
status, id); ``#sort=p_malignant&order=desc`` opens it sorted.
"""

from __future__ import annotations

import os

from tf_bimodal import pages

PREDICTIONS_HTML = "predictions.html"

TABLE_COLUMNS = (
    # (key, header, type)
    ("id", "case", "text"),
    ("status", "status", "text"),
    ("label", "label", "text"),
    ("p_malignant", "p(malignant)", "number"),
    ("lesion_area_px", "lesion area (px)", "number"),
    ("lesion_area_fraction", "lesion area (fraction)", "number"),
    ("box", "box x0, y0, x1, y1", "text"),
    ("modalities", "modalities", "text"),
    ("overlay", "overlay", "text"),
    ("mask", "mask", "text"),
    ("note", "note / error", "text"),
)


def _provenance(provenance: dict) -> str:
    segmenter, classifier = provenance.get("segmenter") or {}, provenance.get("classifier") or {}
    items = [
        ("export", provenance.get("export")),
        ("modalities", "+".join(provenance.get("modalities") or [])),
        ("segmenter", f"{segmenter.get('run')} on {segmenter.get('dataset')}, folds {segmenter.get('folds')}"),
        ("classifier", f"{classifier.get('run')} on {classifier.get('dataset')}, folds {classifier.get('folds')}, "
                       f"embracement {classifier.get('embracement')}, threshold {classifier.get('threshold')}"),
        ("versions", ", ".join(f"{name} {version}" for name, version in (provenance.get("versions") or {}).items())),
    ]
    rows = "".join(f"<tr><th>{pages.escape(name)}</th><td>{pages.escape(value)}</td></tr>\n" for name, value in items)
    return f'<h2>Model</h2>\n<table class="provenance">\n{rows}</table>'


def _cell(row: dict, key: str) -> str:
    if key == "box":
        box = [row.get(name) for name in ("box_x0", "box_y0", "box_x1", "box_y1")]
        return f'<td class="box">{pages.escape(", ".join(str(v) for v in box) if None not in box else "")}</td>'
    if key in ("overlay", "mask"):
        path = row.get(key)
        side, kind = (pages.THUMBNAIL_SIDE, "jpeg") if key == "overlay" else (pages.MASK_THUMBNAIL_SIDE, "png")
        uri = pages.image_data_uri(path, side, kind) if path else None
        if not uri:
            return "<td></td>"
        return (f'<td class="{key}"><a href="{pages.escape(os.path.basename(path))}"><img src="{uri}" '
                f'alt="{pages.escape(row["id"])} {key}"></a></td>')
    value = row.get(key)
    if key == "note" and row.get("status") != "ok":
        value = row.get("error")
    number = isinstance(value, (int, float))
    css = f' class="{pages.escape(value)}"' if key == "label" and value else ' class="number"' if number else ""
    data = f' data-value="{pages.escape(value)}"' if number else ""
    return f"<td{css}{data}>{pages.escape(value)}</td>"


def predictions_page(rows: list[dict], provenance: dict, notice: str | None = None) -> str:
    """The HTML of ``predictions.html`` for ``predict``'s ``rows`` and the model's ``provenance``
    (``predictions.json``'s ``model``); ``notice`` (the synthetic-model notice) on top."""
    failed = [row for row in rows if row.get("status") != "ok"]
    parts = ["<h1>Predictions</h1>"]
    if notice:
        parts.append(f'<p class="notice">{pages.escape(notice)}</p>')
    parts.append(f'<p id="counts">{len(rows) - len(failed)} of {len(rows)} cases predicted, {len(failed)} failed. '
                 "Click a header to sort; boxes are x0, y0 (top left), x1, y1 (bottom right, exclusive) in the "
                 "B-mode image's pixels; the files are beside this page.</p>")
    parts.append(_provenance(provenance))
    if failed:
        items = "".join(f"<li><strong>{pages.escape(row['id'])}</strong>: {pages.escape(row.get('error'))}</li>\n"
                        for row in failed)
        parts.append(f'<h2>Errors</h2>\n<ul id="errors">\n{items}</ul>')
    header = "".join(f'<th data-key="{key}" data-type="{kind}">{pages.escape(title)}</th>'
                     for key, title, kind in TABLE_COLUMNS)
    body = "".join(
        f'<tr class="{"ok" if row.get("status") == "ok" else "error"}" data-id="{pages.escape(row["id"])}">'
        + "".join(_cell(row, key) for key, _, _ in TABLE_COLUMNS) + "</tr>\n"
        for row in rows
    )
    parts.append(f'<h2>Cases</h2>\n<table class="sortable" id="cases">\n<thead><tr>{header}</tr></thead>\n'
                 f"<tbody>\n{body}</tbody>\n</table>")
    return pages.page("Predictions", "\n".join(parts), sortable=True)


def write_predictions_page(output_dir: str, rows: list[dict], provenance: dict, notice: str | None = None) -> str:
    """Write ``<output_dir>/predictions.html`` (:func:`predictions_page`); returns its path."""
    return pages.write_page(os.path.join(output_dir, PREDICTIONS_HTML), predictions_page(rows, provenance, notice))


__all__ = ["PREDICTIONS_HTML", "predictions_page", "write_predictions_page"]
