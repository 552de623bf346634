"""Raster operations shared by the phantom's renderers: smooth random fields, Gaussian blur, discs
and polygon filling."""

from __future__ import annotations

import cv2
import numpy as np


def smooth_field(rng: np.random.Generator, size: int, cells: int, lateral_cells: int | None = None) -> np.ndarray:
    """Zero-mean, unit-variance random field correlated over ~size/cells pixels (along depth;
    across, over ~size/lateral_cells pixels when given: streaks for lateral_cells < cells)."""
    lateral_cells = cells if lateral_cells is None else lateral_cells
    coarse = rng.standard_normal((cells + 2, lateral_cells + 2), dtype=np.float32)
    pad_y, pad_x = size // cells, size // lateral_cells
    fine = cv2.resize(coarse, (size + 2 * pad_x, size + 2 * pad_y), interpolation=cv2.INTER_CUBIC)
    fine = fine[pad_y : pad_y + size, pad_x : pad_x + size]
    return (fine - fine.mean()) / (fine.std() + 1e-6)


def fill(polygon: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``(size, size)`` mask, 1 inside ``polygon`` (``(N, 2)`` x, y pixel vertices)."""
    mask = np.zeros((size, size), np.uint8)
    # Sub-pixel vertices (4 fractional bits) keep small lesions smooth.
    cv2.fillPoly(mask, [np.round((polygon - 0.5) * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return mask


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma`` pixels (reflected borders); none below 0.05."""
    if sigma <= 0.05:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def disc(radius: int) -> np.ndarray:
    """Elliptic structuring element of the given radius, for dilation."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))

