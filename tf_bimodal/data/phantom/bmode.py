"""B-mode image formation: echoes, attenuation, gain, speckle and log compression.

Speckle is formed physically: a complex Gaussian scatterer field whose density and amplitude
depend on the tissue, convolved with a point-spread function (Gaussian-windowed carrier along
depth, wider Gaussian across), envelope-detected and log-compressed to the view's dynamic range.
Depth attenuation is only partly corrected by time-gain compensation; the receiver's noise
floor fills deep and shadowed regions.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from tf_bimodal.data.phantom.anatomy import TissueMaps, View
from tf_bimodal.data.phantom.raster import blur

_ATTENUATION_DB = 30.0  # round-trip depth attenuation over a 336-pixel field (~4 cm, ~10 MHz)
_GLAND_LEVEL_DB = -19.0  # where glandular tissue (rms) sits below white on the display


def form_bmode(
    tissue: TissueMaps, view: View, speckle_scale: float, size: int, rng: np.random.Generator
) -> np.ndarray:
    """The uint8 ``(size, size)`` B-mode image of the tissue maps (lesion included).

    Depth attenuation (~30 dB over a zoom-1 field at 10 MHz), extra attenuation of lesions,
    look-alikes and ribs; then the receiver's noise floor, and TGC/gain amplify both. The
    speckle's grain follows ``speckle_scale`` (probe frequency and depth setting).
    """
    depth = tissue.depth
    echoes = tissue.amplitude * _posterior_factor(tissue.attenuation, size)
    echoes = echoes * (10.0 ** (-_ATTENUATION_DB * depth / 20.0)).astype(np.float32)
    floor = 10.0 ** (view.noise_floor_db / 20.0)
    power = echoes**2 + floor**2
    amplitude = np.sqrt(power) * 10.0 ** (_receiver_gain_db(view, depth, size) / 20.0)
    density = tissue.density + (1.0 - tissue.density) * (floor**2 / power)  # noise is fully developed

    envelope = _envelope(amplitude, np.clip(density, 0.05, 1.0), rng, speckle_scale)
    # Light smoothing of the log image, as scanner post-processing (compounding) does.
    decibels = blur(20.0 * np.log10(envelope + 1e-6), 0.5 * size / 336.0)
    dynamic_range = view.dynamic_range_db
    grey = (decibels + _GLAND_LEVEL_DB + dynamic_range) * (255.0 / dynamic_range)
    return np.clip(grey, 0, 255).astype(np.uint8)


def _psf(size: int, speckle_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Analytic point-spread function: axial Gaussian-windowed carrier, lateral Gaussian.

    Axial resolution is finer than lateral (linear-array PSF). Sizes are in pixels of a 336-pixel
    image covering ~4 cm of depth, times ``speckle_scale`` (probe frequency and depth setting),
    scaled with the image side but never below ~1.5 pixels per carrier cycle, so small images
    still show (coarser) speckle instead of pixel noise.
    """
    scale = size / 336.0 * speckle_scale
    sigma_axial = max(0.8, 1.2 * scale)
    wavelength = max(2.4, 2.8 * scale)
    sigma_lateral = max(1.4, 2.8 * scale)
    half_axial = int(math.ceil(3 * sigma_axial))
    n = np.arange(-half_axial, half_axial + 1, dtype=np.float32)
    window = np.exp(-0.5 * (n / sigma_axial) ** 2)
    axial_real = (window * np.cos(2 * np.pi * n / wavelength)).astype(np.float32)
    axial_imag = (window * np.sin(2 * np.pi * n / wavelength)).astype(np.float32)
    half_lateral = int(math.ceil(3 * sigma_lateral))
    m = np.arange(-half_lateral, half_lateral + 1, dtype=np.float32)
    lateral = np.exp(-0.5 * (m / sigma_lateral) ** 2).astype(np.float32)
    return axial_real, axial_imag, lateral


def _envelope(
    amplitude: np.ndarray, density: np.ndarray, rng: np.random.Generator, speckle_scale: float = 1.0
) -> np.ndarray:
    """Speckle envelope: scatterers convolved with the PSF, magnitude of the analytic signal.

    Each pixel holds a complex Gaussian scatterer whose presence follows the tissue's scatterer
    density (sparse in fat: grainier, non-Rayleigh speckle) and whose strength follows its
    echogenicity; the result is normalised so that a unit-amplitude tissue has unit rms.
    """
    size = amplitude.shape[0]
    amplitude = amplitude.astype(np.float32, copy=False)
    density = density.astype(np.float32, copy=False)
    axial_real, axial_imag, lateral = _psf(size, speckle_scale)
    present = rng.random(amplitude.shape, dtype=np.float32) < density
    strength = amplitude * present / np.sqrt(density)
    real = rng.standard_normal(amplitude.shape, dtype=np.float32) * strength
    imag = rng.standard_normal(amplitude.shape, dtype=np.float32) * strength

    def conv(image, axial):
        return cv2.sepFilter2D(image, cv2.CV_32F, lateral, axial, borderType=cv2.BORDER_REFLECT)

    rf_real = conv(real, axial_real) - conv(imag, axial_imag)
    rf_imag = conv(real, axial_imag) + conv(imag, axial_real)
    unit_rms = math.sqrt(2.0 * float(np.sum(axial_real**2 + axial_imag**2)) * float(np.sum(lateral**2)))
    return cv2.magnitude(rf_real, rf_imag) / unit_rms

def _posterior_factor(attenuation: np.ndarray, size: int) -> np.ndarray:
    """Echo amplitude factor from the extra attenuation accumulated along each beam line."""
    path = np.cumsum(attenuation, axis=0)
    path = cv2.blur(path, (max(1, size // 80) * 2 + 1, 1))  # beam width softens shadow edges
    return np.exp(-np.clip(path, -1.2, 12.0))


def _receiver_gain_db(view: View, depth: np.ndarray, size: int) -> np.ndarray:
    """Display gain in dB per pixel: overall gain, TGC (a share of the depth attenuation plus
    uneven slider bands) and, sometimes, a dark lateral strip where the probe lost contact."""
    image_depth = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None]
    knots = np.linspace(0.0, 1.0, len(view.tgc_bands_db))
    bands = np.interp(image_depth, knots, view.tgc_bands_db).astype(np.float32)
    gain = view.gain_db + view.tgc_fraction * _ATTENUATION_DB * depth + bands
    side, width, loss_db = view.contact_loss
    if side:
        xs = np.linspace(0.0, 1.0, size, dtype=np.float32)[None, :]
        distance = xs if side < 0 else 1.0 - xs
        gain = gain - loss_db * np.clip(1.0 - distance / width, 0.0, 1.0) ** 1.5
    return np.broadcast_to(gain, (size, size)).astype(np.float32)
