"""SE-mode image formation: strain from stiffness, the elastography colour scale and the
translucent colour overlay inside a rectangular ROI, as a scanner shows it.

A Young's-modulus map is turned into strain (~ stress / stiffness, stress decaying with depth),
blurred as displacement tracking does, normalised to the ROI (strain images are relative),
corrupted by decorrelation noise and shown as a blue (hard) - green (average) - red (soft) map
over the B-mode (Hitachi RTE convention).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from tf_bimodal.data.phantom.anatomy import View
from tf_bimodal.data.phantom.raster import blur

SE_ALPHA = 0.6
"""Opacity of the colour overlay: the ROI shows ``(1 - SE_ALPHA) * B-mode + SE_ALPHA * colour``."""


_COLORMAP_ANCHORS = (
    (0.0, (0, 0, 200)),
    (0.22, (0, 110, 255)),
    (0.5, (0, 220, 0)),
    (0.75, (250, 235, 0)),
    (1.0, (230, 0, 0)),
)
"""Elastography colour scale (Hitachi RTE convention): blue = hard (low strain), green =
average, red = soft (high strain)."""


def _build_lut() -> np.ndarray:
    positions = np.array([p for p, _ in _COLORMAP_ANCHORS])
    colours = np.array([c for _, c in _COLORMAP_ANCHORS], np.float32)
    grid = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(grid, positions, colours[:, c]) for c in range(3)], axis=1).round().astype(np.uint8)


ELASTO_LUT = _build_lut()
"""(256, 3) uint8 RGB lookup table: row ``round(255 * strain)`` is the colour of a normalised
strain value (0 = hard/blue, 0.5 = average/green, 1 = soft/red)."""


def strain_to_rgb(strain: np.ndarray) -> np.ndarray:
    """Colour a normalised strain map (values in [0, 1]) with the elastography scale.

    Args:
        strain: float array, 0 = hard (blue), 0.5 = average (green), 1 = soft (red).

    Returns:
        uint8 RGB array of shape ``strain.shape + (3,)``.
    """
    index = np.clip(np.round(np.asarray(strain, np.float32) * 255.0), 0, 255).astype(np.uint8)
    return ELASTO_LUT[index]


def se_roi(polygon, se_size_ratio, view: View, size: int) -> tuple[int, int, int, int]:
    """Rectangular SE region of interest (top, left, bottom, right), containing the lesion and
    its stiff halo with a margin, as an operator would place it."""
    center = polygon.mean(axis=0)
    extended = center + (polygon - center) * max(1.0, se_size_ratio)
    (x0, y0), (x1, y1) = extended.min(axis=0), extended.max(axis=0)
    width, height = x1 - x0, y1 - y0
    left_m, right_m, top_m, bottom_m = view.roi_margins
    left = int(max(1, x0 - left_m * width))
    right = int(min(size - 2, x1 + right_m * width))
    top = int(max(0.05 * size, y0 - top_m * height))
    bottom = int(min(size - 2, y1 + bottom_m * height))
    # The lesion itself is always inside (the polygon was already fitted into the image).
    (lx0, ly0), (lx1, ly1) = np.floor(polygon.min(axis=0)), np.ceil(polygon.max(axis=0))
    return (
        int(min(top, ly0 - 1)),
        int(min(left, lx0 - 1)),
        int(max(bottom, ly1 + 1)),
        int(max(right, lx1 + 1)),
    )


def elastogram(stiffness, ys, bmode, roi, view: View, size, rng, cyst=None) -> np.ndarray:
    """Normalised display strain in [0, 1] (0 hard, 0.5 ROI average, 1 soft).

    Strain ~ stress / stiffness with the applied stress decaying with depth and slightly uneven
    across the probe; blurred by displacement tracking (more when the pressure is off its
    ideal); expressed relative to the ROI mean (SE is relative); plus decorrelation
    noise that grows with depth and in dark (low-echo) regions. Inside a cyst (``cyst``: its
    mask), fluid decorrelation gives the layered blue (top) - green - red (bottom) artefact.
    """
    scale = size / 336.0
    off_pressure = abs(view.pressure - 1.0)
    lateral_tilt = float(rng.uniform(-0.15, 0.15))
    xs = np.linspace(-0.5, 0.5, size, dtype=np.float32)[None, :]
    stress = view.pressure * (1.0 - 0.45 * np.clip(ys, 0.0, 1.2)) * (1.0 + lateral_tilt * xs)
    log_strain = np.log(blur(stress / stiffness, (2.5 + 4.0 * off_pressure) * scale + 0.4))
    top, left, bottom, right = roi
    log_strain -= float(log_strain[top:bottom, left:right].mean())
    # Over- or under-pressing compresses the displayed contrast.
    gain = 0.36 * (1.0 - 0.5 * off_pressure)
    display = 0.5 + gain * log_strain / math.log(2.0)
    if cyst is not None:
        rows = np.nonzero(cyst.any(axis=1))[0]
        layered = np.clip((np.arange(size, dtype=np.float32)[:, None] - rows[0]) / max(1, rows[-1] - rows[0]), 0, 1)
        weight = blur(cyst.astype(np.float32), 1.5 * scale + 0.3)
        display = display * (1 - weight) + (0.12 + 0.76 * layered) * weight
    darkness = 1.0 - blur(bmode.astype(np.float32), 3.0 * scale + 0.5) / 255.0
    noise_sd = (0.03 + 0.08 * ys + 0.08 * darkness**2) * (1.0 + 1.5 * off_pressure)
    noise_sigma = 4.0 * scale + 0.5
    noise = blur(rng.standard_normal((size, size), dtype=np.float32), noise_sigma)
    noise = noise * (2 * math.sqrt(math.pi) * noise_sigma)
    return np.clip(display + noise_sd * noise, 0.0, 1.0).astype(np.float32)


def overlay_strain(bmode: np.ndarray, strain: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
    """uint8 ``(size, size, 3)`` SE-mode image: the B-mode in grey with the colour of ``strain``
    blended over it inside ``roi`` (top, left, bottom, right) and the scanner's ROI frame."""
    top, left, bottom, right = roi
    semode = np.repeat(bmode[:, :, None], 3, axis=2)
    colour = strain_to_rgb(strain[top:bottom, left:right]).astype(np.float32)
    under = semode[top:bottom, left:right].astype(np.float32)
    semode[top:bottom, left:right] = np.clip((1 - SE_ALPHA) * under + SE_ALPHA * colour, 0, 255).astype(np.uint8)
    # ROI frame, as drawn by the scanner.
    cv2.rectangle(semode, (left - 1, top - 1), (right, bottom), (210, 210, 210), 1)
    return semode
