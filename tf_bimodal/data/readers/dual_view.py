"""Dual-view screenshots: a scanner screen showing the B-mode and SE-mode panes side by side
(paper Fig. S1), split into the two images."""

from __future__ import annotations

import numpy as np

from tf_bimodal.data.errors import DataError
from tf_bimodal.data.readers.colour import MIN_COLOUR_FRACTION, colour_fraction, to_grey

DARK_LEVEL = 12
"""Rows and columns whose mean grey level is below this are dark border (0-255 scale)."""

SPLIT_SEARCH_RANGE = (0.3, 0.7)
"""Where the split between the two panes of a dual view is searched, as fractions of the width."""

DUAL_VIEW_SIZE_TOLERANCE = 0.1
"""The two panes of a dual view may differ in height and width by this fraction at most."""

Box = tuple[int, int, int, int]
"""``(x0, y0, x1, y1)`` in pixels, end exclusive."""


def _content_range(profile: np.ndarray) -> tuple[int, int]:
    """First and one-past-last index whose mean level is not dark."""
    bright = np.flatnonzero(profile >= DARK_LEVEL)
    if bright.size == 0:
        return 0, 0
    return int(bright[0]), int(bright[-1]) + 1


def _trim_dark_border(grey: np.ndarray, x_offset: int) -> Box:
    rows = grey.mean(axis=1)
    cols = grey.mean(axis=0)
    y0, y1 = _content_range(rows)
    x0, x1 = _content_range(cols)
    return (x0 + x_offset, y0, x1 + x_offset, y1)


def _find_split_column(grey: np.ndarray) -> int:
    """The darkest (lowest-content) column in the central band of the width."""
    width = grey.shape[1]
    profile = grey.mean(axis=0)
    window = max(3, width // 100)
    smooth = np.convolve(profile, np.ones(window) / window, mode="same")
    start = int(width * SPLIT_SEARCH_RANGE[0])
    stop = max(start + 1, int(np.ceil(width * SPLIT_SEARCH_RANGE[1])))
    band = smooth[start:stop]
    darkest = np.flatnonzero(band <= band.min() + 1e-6)
    # A dark gap several columns wide: split in its middle.
    return start + int(darkest[len(darkest) // 2])


def find_dual_view_boxes(image: np.ndarray, where: str = "dual view image") -> tuple[Box, Box]:
    """Locate the B-mode and SE-mode panes of a side-by-side scanner screenshot (Fig. S1).

    Rule: the split column is the darkest vertical band (mean grey level, smoothed over about
    1 % of the width) within the central 30-70 % of the width. Of the two halves, the SE-mode
    pane is the one holding colour (the larger :func:`colour_fraction`); at least
    ``MIN_COLOUR_FRACTION`` of its pixels must be coloured. Each pane is then trimmed of its
    dark border rows and columns (mean level below ``DARK_LEVEL``). Text, scale bars or a
    colour legend beside the panes are not removed: give explicit boxes for such screens.

    Args:
        image: uint8 ``(H, W, 3)`` RGB screenshot.
        where: name used in error messages (the file).

    Returns:
        ``(bmode_box, semode_box)``, each ``(x0, y0, x1, y1)`` in pixels, end exclusive.

    Raises:
        DataError: grey screenshot (no colour SE pane), or a pane that is all dark.
    """
    if image.ndim != 3 or image.shape[-1] != 3:
        raise DataError(
            where, "grey dual view: no colour SE pane found (image has no colour channels)"
        )
    height, width = image.shape[:2]
    if width < 8 or height < 4:
        raise DataError(where, f"dual view image too small to split ({width}x{height})")
    grey = to_grey(image)[..., 0].astype(np.float32)
    split = _find_split_column(grey)
    halves = ((0, split), (split, width))
    fractions = [colour_fraction(image[:, x0:x1]) for x0, x1 in halves]
    if max(fractions) < MIN_COLOUR_FRACTION:
        raise DataError(where, "grey dual view: no colour SE pane found")
    se_index = int(np.argmax(fractions))
    boxes = []
    for x0, x1 in halves:
        box = _trim_dark_border(grey[:, x0:x1], x_offset=x0)
        if box[2] <= box[0] or box[3] <= box[1]:
            raise DataError(where, f"dual view pane at columns {x0}-{x1} is all dark")
        boxes.append(box)
    return boxes[1 - se_index], boxes[se_index]


def _check_box(box, image_shape, where: str, name: str) -> Box:
    height, width = image_shape[:2]
    try:
        x0, y0, x1, y1 = (int(v) for v in box)
    except (TypeError, ValueError):
        raise DataError(
            where, f"{name} box must be four integers (x0, y0, x1, y1), got {box!r}"
        ) from None
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise DataError(
            where,
            f"{name} box {(x0, y0, x1, y1)} is empty or outside the image ({width}x{height}); "
            "need 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height",
        )
    return x0, y0, x1, y1


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    """The part of ``image`` inside ``box``, as a contiguous array."""
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def split_dual_view(image: np.ndarray, boxes=None, where: str = "dual view image"):
    """Cut a dual-view scanner screenshot into its B-mode and SE-mode panes (paper Fig. S1).

    With ``boxes`` (two ``(x0, y0, x1, y1)`` boxes, B-mode first, end exclusive) the panes are
    simply cropped. Without, they are detected by :func:`find_dual_view_boxes`: the SE pane is
    the one with colour, the split is the darkest vertical band in the central 30-70 % of the
    width, and each pane is trimmed of its dark border.

    Args:
        image: uint8 ``(H, W, C)`` screenshot (``C`` = 3 for detection).
        boxes: optional ``((x0, y0, x1, y1), (x0, y0, x1, y1))``, B-mode pane first.
        where: name used in error messages (the file).

    Returns:
        ``(bmode, semode)`` crops of ``image`` (same channels as ``image``).

    Raises:
        DataError: ``"grey dual view: no colour SE pane found"``, or bad boxes.
    """
    bmode_box, semode_box = pane_boxes(image, boxes, where)
    return crop(image, bmode_box), crop(image, semode_box)


def pane_boxes(image: np.ndarray, boxes, where: str) -> tuple[Box, Box]:
    """``(bmode_box, semode_box)``: ``boxes`` checked against the image, or detected by
    :func:`find_dual_view_boxes` when ``boxes`` is None.

    Raises:
        DataError: not two boxes, a box empty or outside the image, or no pane found.
    """
    if boxes is None:
        return find_dual_view_boxes(image, where)
    if len(boxes) != 2:
        raise DataError(where, f"dual view needs two boxes (B-mode, SE-mode), got {len(boxes)}")
    return (
        _check_box(boxes[0], image.shape, where, "B-mode"),
        _check_box(boxes[1], image.shape, where, "SE-mode"),
    )


def parse_boxes(text: str) -> tuple[Box, Box]:
    """Parse ``"x0 y0 x1 y1;x0 y0 x1 y1"`` (B-mode box first) into two integer boxes.

    Raises:
        ValueError: not two boxes of four integers each.
    """
    parts = [part.strip() for part in text.split(";")]
    if len(parts) != 2:
        raise ValueError("expected two boxes separated by ';'")
    boxes = []
    for part in parts:
        values = part.replace(",", " ").split()
        if len(values) != 4:
            raise ValueError(f"expected four integers per box, got {part!r}")
        x0, y0, x1, y1 = (int(value) for value in values)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"box {part!r} is empty: need x0 < x1 and y0 < y1")
        boxes.append((x0, y0, x1, y1))
    return boxes[0], boxes[1]

