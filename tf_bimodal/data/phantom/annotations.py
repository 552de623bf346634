"""Operator marks burnt into B-mode images, as clinical archives have them: caliper markers with
dotted lines across the lesion, text labels, depth ticks and a focus marker. The mask never
includes them.
"""

from __future__ import annotations

import cv2
import numpy as np

from tf_bimodal.data.phantom.raster import disc

_TEXT_LABELS = (
    "RT BREAST", "LT BREAST", "RT 10:00 3CM FN", "LT 2:00 4CM FN", "RT 7:30 2CM FN", "LT 12:00 1CM FN",
    "RADIAL", "ANTI-RAD", "TRANS", "LONG", "RT AXILLA", "LT AXILLA", "L 1.24cm", "D1 0.84cm D2 1.31cm",
    "RT6", "LT3", "MASS", "CYST?",
)
"""Labels operators type on breast images (side, clock position, distance from the nipple,
probe orientation, measurements)."""



def annotate(bmode: np.ndarray, mask: np.ndarray, zoom: float, rng: np.random.Generator):
    """Burn operator marks into a B-mode image, as clinical archives have them.

    Caliper markers (``+`` or ``x``) sit just outside the lesion at the ends of its longest
    diameter and, often, of the perpendicular one, joined by dotted lines across the lesion;
    text labels go to a corner clear of the lesion; depth ticks and a focus marker run along a
    side. Returns the marked image and the (uint8 0/1) footprint of the marks.
    """
    size = bmode.shape[0]
    scale = size / 336.0
    ink = np.zeros((size, size), np.uint8)
    thickness = max(1, int(round(scale)))
    ys, xs = np.nonzero(mask)
    points = np.stack([xs, ys], axis=1).astype(np.float32)
    center = points.mean(axis=0)
    if len(points) > 2:
        _, vectors = np.linalg.eigh(np.cov((points - center).T))
        axes = [vectors[:, 1], vectors[:, 0]]  # longest diameter first
    else:
        axes = [np.array([1.0, 0.0]), np.array([0.0, 1.0])]
    calipers, text, depth_scale = rng.random(3) < (0.75, 0.8, 0.6)
    if calipers:
        arm = max(2, int(round(rng.uniform(0.01, 0.018) * size)))
        marker = "+" if rng.random() < 0.7 else "x"
        for axis in axes[: 1 + int(rng.random() < 0.6)]:
            projection = (points - center) @ axis
            ends = []
            for extreme, sign in ((projection.min(), -1.0), (projection.max(), 1.0)):
                # The operator clicks on the border; the marker sits just outside the outline.
                end = center + axis * (extreme + sign * (arm + 1.5))
                ends.append(np.clip(end, arm + 1, size - arm - 2))
            for x, y in ends:
                x, y = int(round(x)), int(round(y))
                if marker == "+":
                    cv2.line(ink, (x - arm, y), (x + arm, y), 255, thickness)
                    cv2.line(ink, (x, y - arm), (x, y + arm), 255, thickness)
                else:
                    cv2.line(ink, (x - arm, y - arm), (x + arm, y + arm), 255, thickness)
                    cv2.line(ink, (x - arm, y + arm), (x + arm, y - arm), 255, thickness)
            step = max(3.0, rng.uniform(0.009, 0.015) * size)
            start, stop = ends
            length = float(np.linalg.norm(stop - start))
            for t in np.arange(arm + 2, length - arm - 1, step) / max(length, 1e-6):
                x, y = np.round(start + t * (stop - start)).astype(int)
                cv2.circle(ink, (int(x), int(y)), thickness - 1, 200, -1)
    font_scale = 0.5 * scale * rng.uniform(0.8, 1.4)
    guard = cv2.dilate(mask, disc(max(1, size // 60)))
    if text:
        label = _TEXT_LABELS[int(rng.integers(len(_TEXT_LABELS)))]
        (width, height), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        corners = [
            (int(0.04 * size), int(0.95 * size)),
            (int(0.96 * size) - width, int(0.95 * size)),
            (int(0.5 * size - width / 2), int(0.93 * size)),
            (int(0.04 * size), int(0.05 * size) + height),
        ]
        for index in rng.permutation(len(corners)):
            x, y = corners[index]
            box = guard[max(0, y - height - 2) : y + 3, max(0, x - 2) : x + width + 2]
            if not box.any():
                cv2.putText(ink, label, (x, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, 230, thickness, cv2.LINE_AA)
                break
    if depth_scale or not ink.any():  # an annotated view has at least one mark
        # Depth scale: a dot per centimetre (the field is ~4 cm at zoom 1), focus marker.
        column = int(0.985 * size) - thickness
        spacing = size * zoom / 4.0
        for depth in np.arange(spacing, size - 2, spacing):
            cv2.circle(ink, (column, int(depth)), thickness, 180, -1)
        focus = int(rng.uniform(0.3, 0.7) * size)
        tip = int(0.965 * size)
        half = max(2, int(0.012 * size))
        cv2.fillPoly(ink, [np.array([[tip, focus], [size - 1, focus - half], [size - 1, focus + half]])], 210)
    alpha = ink.astype(np.float32) / 255.0
    level = np.where(ink > 0, np.maximum(ink, 200), 0).astype(np.float32)
    marked = np.clip(bmode * (1 - alpha) + level * alpha, 0, 255).astype(np.uint8)
    return marked, (ink > 0).astype(np.uint8)
