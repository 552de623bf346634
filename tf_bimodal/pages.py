"""Self-contained HTML pages: one file that opens anywhere, with no network.

The pages of ``tf-bimodal predict`` (``predictions.html``) and of the experiment report
(``report.html``) are written with what is here: every picture inlined as a ``data:`` URI
(shrunk to a thumbnail side first, so a page of 200 cases stays a few megabytes), the style and
the script inline, no reference to anything outside the file. Tables of class ``sortable`` sort
by a click on a header (again: the other way); the page honours a fragment
``#sort=<column>&order=desc`` on opening by clicking that header itself, so a link, or a
headless browser, can open it sorted. :func:`markdown_to_html` converts the subset of Markdown
the report is written in.
"""

from __future__ import annotations

import base64
import html
import os
import re

import cv2
import numpy as np

THUMBNAIL_SIDE = 480
"""Longest side of an overlay inlined in ``predictions.html``."""
MASK_THUMBNAIL_SIDE = 160
"""Longest side of a mask inlined in ``predictions.html``."""
FIGURE_SIDE = 1600
"""Longest side of a figure inlined in ``report.html``."""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[data-order="asc"]::after { content: " \\25B2"; }
table.sortable th[data-order="desc"]::after { content: " \\25BC"; }
tr.error td { background: #fde8e8; }
.notice { background: #fff3cd; border: 1px solid #e0c36a; padding: 0.5em 0.8em; font-weight: bold; }
.malignant { color: #b00020; font-weight: bold; } .benign { color: #1b5e20; font-weight: bold; }
img { max-width: 100%; } td img { display: block; }
td.overlay img { width: 320px; max-width: none; } td.mask img { width: 96px; max-width: none; }
td.number, td.box { white-space: nowrap; }
code { background: #f4f4f4; padding: 0 0.2em; }
blockquote { border-left: 4px solid #e0c36a; margin: 0.8em 0; padding: 0.2em 0.8em; background: #fffbe8; }
"""

SORT_SCRIPT = """
function sortBy(header) {
  var table = header.closest('table');
  var column = Array.prototype.indexOf.call(header.parentNode.children, header);
  var order = header.getAttribute('data-order') === 'asc' ? 'desc' : 'asc';
  var numeric = header.getAttribute('data-type') === 'number';
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  function key(row) {
    var cell = row.cells[column];
    var value = cell.hasAttribute('data-value') ? cell.getAttribute('data-value') : cell.textContent.trim();
    if (!numeric) return value.toLowerCase();
    return value === '' ? NaN : parseFloat(value);
  }
  rows.sort(function (a, b) {
    var x = key(a), y = key(b);
    if (numeric) {  // empty cells (failed cases) last, whatever the order
      if (isNaN(x) || isNaN(y)) return isNaN(x) - isNaN(y);
      return order === 'asc' ? x - y : y - x;
    }
    return order === 'asc' ? x.localeCompare(y) : y.localeCompare(x);
  });
  rows.forEach(function (row) { body.appendChild(row); });
  Array.prototype.forEach.call(header.parentNode.children, function (th) { th.removeAttribute('data-order'); });
  header.setAttribute('data-order', order);
  table.setAttribute('data-sorted', (header.getAttribute('data-key') || column) + ' ' + order);
}
document.querySelectorAll('table.sortable th').forEach(function (header) {
  header.addEventListener('click', function () { sortBy(header); });
});
(function () {  // #sort=<data-key>&order=desc: open the page sorted, by clicking the header
  var options = {};
  location.hash.replace(/^#/, '').split('&').forEach(function (part) {
    var pair = part.split('='); if (pair[0]) options[pair[0]] = decodeURIComponent(pair[1] || '');
  });
  if (!options.sort) return;
  var header = document.querySelector('table.sortable th[data-key="' + options.sort + '"]');
  if (!header) return;
  header.click();
  if (options.order === 'desc') header.click();
})();
"""


def escape(text) -> str:
    """``text`` (any value; None is empty) safe inside HTML text and attributes."""
    return html.escape("" if text is None else str(text), quote=True)


def image_data_uri(path: str, max_side: int = THUMBNAIL_SIDE, kind: str = "png") -> str | None:
    """The image file ``path`` shrunk to ``max_side`` (area averaging) as a ``data:`` URI,
    ``kind`` ``png`` (masks, figures with text) or ``jpeg`` (overlays, smaller); None if the
    file cannot be read."""
    image = cv2.imread(path, cv2.IMREAD_COLOR) if os.path.isfile(path) else None
    if image is None:
        return None
    height, width = image.shape[:2]
    if max(height, width) > max_side:
        scale = max_side / max(height, width)
        image = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
    ending, options = (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 85]) if kind == "jpeg" else (".png", [])
    ok, data = cv2.imencode(ending, np.ascontiguousarray(image), options)
    if not ok:
        return None
    return f"data:image/{kind};base64," + base64.b64encode(data.tobytes()).decode("ascii")


def page(title: str, body: str, sortable: bool = False) -> str:
    """A whole HTML document: ``body`` (HTML) under ``title``, the style inline, and with
    ``sortable`` the script that sorts ``table.sortable`` by its headers."""
    script = f"<script>{SORT_SCRIPT}</script>\n" if sortable else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{escape(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n{script}</body>\n</html>\n")


def write_page(path: str, text: str) -> str:
    """Write the page ``text`` to ``path`` atomically; returns ``path``."""
    tmp_path = f"{path}.tmp"
    with open(tmp_path, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp_path, path)
    return path


# --------------------------------------------------------------------------- Markdown


_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)\s]+)\)$")
_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


def _inline(text: str) -> str:
    """Escaped ``text`` with ``**bold**``, ``*em*``, `` `code` `` and ``[text](relative link)``."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{escape(part[1:-1])}</code>")
            continue
        part = escape(part)
        part = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part)
        part = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", part)
        # Links to files beside the page stay links; web addresses stay text (the page needs no network).
        part = re.sub(r"\[([^\]]+)\]\(((?!https?:|//)[^)\s]+)\)", r'<a href="\2">\1</a>', part)
        part = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r"\1 (\2)", part)
        out.append(part)
    return "".join(out)


def _table(lines: list[str]) -> str:
    def cells(line):
        return [cell.strip() for cell in line.strip().strip("|").split("|")]

    head = "".join(f"<th>{_inline(cell)}</th>" for cell in cells(lines[0]))
    rows = "".join("<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in cells(line)) + "</tr>\n"
                   for line in lines[2:])
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}</tbody>\n</table>"


def markdown_to_html(markdown: str, folder: str) -> str:
    """The HTML body of the Markdown the report is written in: ``#`` headings, paragraphs,
    ``-`` lists, ``>`` quotes, pipe tables, and images alone on their line
    (``![caption](file)``, ``file`` relative to ``folder``) inlined as ``data:`` URIs
    (:func:`image_data_uri`); a missing image becomes its caption."""
    blocks, lines = [], markdown.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].rstrip()
        if not line.strip():
            index += 1
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", line)
        image = _IMAGE.match(line.strip())
        if heading:
            level = len(heading.group(1))
            blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            index += 1
        elif image:
            uri = image_data_uri(os.path.join(folder, image.group(2)), FIGURE_SIDE)
            caption = escape(image.group(1))
            blocks.append(f'<figure><img src="{uri}" alt="{caption}"><figcaption>{caption}</figcaption></figure>'
                          if uri else f"<p><em>{caption} ({escape(image.group(2))} not found)</em></p>")
            index += 1
        elif line.startswith("|") and index + 1 < len(lines) and _TABLE_RULE.match(lines[index + 1].strip()):
            end = index + 2
            while end < len(lines) and lines[end].strip().startswith("|"):
                end += 1
            blocks.append(_table(lines[index:end]))
            index = end
        else:
            kind = "ul" if line.startswith("- ") else "blockquote" if line.startswith(">") else "p"
            end = index
            while end < len(lines) and lines[end].strip() and not re.match(r"^(#|\||!\[)", lines[end]):
                if kind != "p" and not lines[end].startswith("- " if kind == "ul" else ">"):
                    break
                if kind == "p" and lines[end].startswith(("- ", ">")):
                    break
                end += 1
            end = max(end, index + 1)
            chunk = lines[index:end]
            if kind == "ul":
                items = "".join(f"<li>{_inline(item[2:])}</li>\n" for item in chunk)
                blocks.append(f"<ul>\n{items}</ul>")
            elif kind == "blockquote":
                blocks.append("<blockquote>" + " ".join(_inline(item.lstrip("> ")) for item in chunk) + "</blockquote>")
            else:
                blocks.append("<p>" + " ".join(_inline(item) for item in chunk) + "</p>")
            index = end
    return "\n".join(blocks)


__all__ = ["FIGURE_SIDE", "MASK_THUMBNAIL_SIDE", "THUMBNAIL_SIDE", "escape", "image_data_uri", "markdown_to_html",
           "page", "write_page"]
