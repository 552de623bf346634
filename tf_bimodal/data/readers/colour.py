"""Tell colour from grey: the SE-mode strain map is a colour image, the B-mode image grey
(paper §3.1)."""

from __future__ import annotations

import cv2
import numpy as np

COLOUR_CHROMA_MIN = 32
"""A pixel is coloured when max(R, G, B) - min(R, G, B) exceeds this (0-255 scale); grey
pixels, JPEG noise included, stay well below it."""

MIN_COLOUR_FRACTION = 0.002
"""An image (or dual-view pane) holds colour when at least this fraction of its pixels is
coloured: an SE-mode colour map covers far more, a grey image none."""


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W, 1)``: a grey image as is, an RGB image through ``cv2.COLOR_RGB2GRAY``."""
    if image.shape[-1] == 1:
        return image
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)[..., None]


def _chroma(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.int16)
    return image.max(axis=-1) - image.min(axis=-1)


def colour_fraction(image: np.ndarray) -> float:
    """Fraction of pixels whose chroma (max - min over R, G, B) exceeds ``COLOUR_CHROMA_MIN``.

    This is the saturation measure used to tell a colour SE-mode image from a grey one; it is
    robust to dark pixels (unlike HSV saturation) and to JPEG noise. Grey images give 0.
    """
    if image.ndim != 3 or image.shape[-1] < 3 or image.size == 0:
        return 0.0
    return float((_chroma(image[..., :3]) > COLOUR_CHROMA_MIN).mean())


def is_colour(image: np.ndarray) -> bool:
    """True when at least ``MIN_COLOUR_FRACTION`` of the pixels are coloured."""
    return colour_fraction(image) >= MIN_COLOUR_FRACTION
