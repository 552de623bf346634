"""The lesion in one view: its outline, its B-mode appearance and its stiffness pattern.

B-mode (BI-RADS lexicon): margin, internal echo pattern, echogenic halo, spicules and posterior
feature; SE-mode: the Itoh/Tsukuba elasticity pattern of its score (Itoh et al. 2006).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from tf_bimodal.data.phantom.anatomy import FLUID_AMPLITUDE, TissueMaps, View
from tf_bimodal.data.phantom.patients import NUM_CONTOUR_POINTS, PatientParams
from tf_bimodal.data.phantom.raster import blur, disc, fill, smooth_field


def lesion_polygon(patient: PatientParams, view: View, size: int) -> np.ndarray:
    """Lesion outline in pixels (x, y), fully inside the image (moved or shrunk if needed)."""
    theta = np.linspace(0.0, 2.0 * np.pi, NUM_CONTOUR_POINTS, endpoint=False)
    radius = np.asarray(patient.contour) * 0.5 * patient.lesion_size * size * view.scale
    stretch = math.sqrt(patient.aspect_ratio)
    x = radius * np.cos(theta) / stretch
    y = radius * np.sin(theta) * stretch
    angle = math.radians(patient.tilt_deg + view.rotation_deg)
    cos, sin = math.cos(angle), math.sin(angle)
    points = np.stack([x * cos - y * sin, x * sin + y * cos], axis=1)
    center = np.array(
        [(patient.center[0] + view.shift[0]) * size, (patient.center[1] + view.shift[1]) * size]
    )
    # Keep it inside: below the skin (top margin) and clear of the other edges.
    low = np.array([0.04 * size + 2, 0.09 * size + 2])
    high = np.array([size - 0.04 * size - 3, size - 0.06 * size - 3])
    extent = points.max(axis=0) - points.min(axis=0)
    fit = np.min((high - low) / np.maximum(extent, 1e-6))
    if fit < 1.0:
        points *= fit
    upper_left = center + points.min(axis=0)
    lower_right = center + points.max(axis=0)
    center = center + np.maximum(low - upper_left, 0) - np.maximum(lower_right - high, 0)
    return points + center


def insert_lesion_bmode(patient: PatientParams, tissue: TissueMaps, mask, polygon, size, rng) -> np.ndarray:
    """Hypoechoic lesion with its margin, internal echo pattern, echogenic halo, spicules and
    posterior feature (as extra attenuation, added to ``tissue.attenuation``).

    Returns:
        The blurred lesion footprint (the lesion's weight in each pixel).
    """
    amplitude, density = tissue.amplitude, tissue.density
    mask_f = mask.astype(np.float32)
    scale = size / 336.0
    edge_sigma = {
        "circumscribed": 0.6,
        "indistinct": float(rng.uniform(4.0, 12.0)),
        "angular": 1.0,
        "microlobulated": 1.0,
        "spiculated": 1.5,
    }[patient.margin]
    if patient.echo_pattern == "anechoic":
        edge_sigma = 0.4
    soft = blur(mask_f, edge_sigma * scale + 0.3)
    if patient.echo_pattern in ("heterogeneous", "complex"):
        texture = np.exp(0.75 * smooth_field(rng, size, 24) + 0.3 * smooth_field(rng, size, 48))
    else:
        texture = np.exp(0.15 * smooth_field(rng, size, 24))
    lesion_amp = patient.echo_level * texture
    if patient.echo_pattern == "complex":
        # Cystic spaces inside a solid mass.
        cystic = blur((smooth_field(rng, size, 14) > 0.4).astype(np.float32), 1.0 * scale + 0.3)
        lesion_amp = lesion_amp * (1 - cystic) + FLUID_AMPLITUDE * cystic
    # Microcalcifications: bright specks inside heterogeneous irregular masses.
    if patient.echo_pattern == "heterogeneous" and patient.shape_class in ("irregular", "spiculated"):
        ys, xs = np.nonzero(mask)
        for i in rng.choice(len(ys), size=min(len(ys), int(rng.integers(0, 7))), replace=False):
            lesion_amp[ys[i], xs[i]] = 4.0
    if patient.margin == "spiculated":
        # Spicules show as alternating hypo- and hyperechoic lines; their tails reach beyond
        # the traced outline into the surrounding tissue.
        border = cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(np.float32) - mask_f
        amplitude = amplitude * (1.0 + 1.5 * blur(border, 0.5))
        center = polygon.mean(axis=0)
        tails = np.zeros((size, size), np.uint8)
        for _ in range(int(rng.integers(4, 11))):
            point = polygon[int(rng.integers(len(polygon)))]
            direction = (point - center) / (np.linalg.norm(point - center) + 1e-6)
            length = rng.uniform(0.3, 0.8) * np.linalg.norm(point - center)
            end = point + direction * length
            cv2.line(tails, tuple(int(v) for v in point), tuple(int(v) for v in end), 1, max(1, round(1.5 * scale)))
        tails = blur((tails & (1 - mask)).astype(np.float32), 0.5)
        amplitude = amplitude * (1.0 - 0.6 * tails)
    if patient.echogenic_halo:
        thickness = max(2, int(round(rng.uniform(0.02, 0.035) * size)))
        ring = cv2.dilate(mask, disc(thickness)).astype(np.float32) - mask_f
        ring = blur(ring * (0.7 + 0.6 * (smooth_field(rng, size, 16) > 0)), thickness * 0.4)
        amplitude = amplitude * (1.0 + 1.6 * ring)
    if patient.echo_pattern == "anechoic":
        # The cyst's thin echogenic wall.
        wall = cv2.dilate(mask, disc(max(1, size // 200))).astype(np.float32) - mask_f
        amplitude = amplitude * (1.0 + 0.8 * blur(wall, 0.5))
    tissue.amplitude = amplitude * (1.0 - soft) + lesion_amp * soft
    tissue.density = density * (1.0 - soft) + soft
    tissue.attenuation = tissue.attenuation + _lesion_attenuation(patient, soft, mask, size, rng)
    return soft


def _lesion_attenuation(patient, soft_lesion, mask, size, rng) -> np.ndarray:
    """Extra (or reduced) attenuation entered inside the lesion; integrated along each beam line
    it makes the posterior feature start at the lesion and persist below it.

    Shadowing masses attenuate more than the tissue around them, increasingly towards their
    deep part, so that the lower border sinks into the shadow; fluid-like ones attenuate less
    (posterior enhancement). Smooth round masses and cysts refract at their sides: thin lateral
    edge shadows.
    """
    rows = np.nonzero(mask.any(axis=1))[0]
    top, height = float(rows[0]), float(rows[-1] - rows[0] + 1)
    if patient.posterior == "shadowing":
        coefficient = rng.uniform(1.2, 3.2)
        ramp = np.clip((np.arange(size, dtype=np.float32)[:, None] - top) / height, 0.0, 1.0)
        extra = soft_lesion * (2.0 * coefficient / height) * ramp
    else:
        coefficient = {
            "none": rng.uniform(-0.1, 0.1),
            "enhancement": -rng.uniform(1.0, 1.6) if patient.echo_pattern == "anechoic" else -rng.uniform(0.7, 1.2),
        }[patient.posterior]
        extra = soft_lesion * (coefficient / height)
    smooth = patient.margin == "circumscribed" and patient.shape_class in ("oval", "round")
    if smooth and rng.random() < (0.7 if patient.echo_pattern == "anechoic" else 0.35):
        # Widest row: edge shadows start where the beam grazes the lesion's sides.
        widths = mask.sum(axis=1)
        row = int(np.argmax(widths))
        columns = np.nonzero(mask[row])[0]
        half_width = max(1.0, 0.004 * size)
        for column in (columns[0] - 0.5, columns[-1] + 0.5):
            near = np.arange(max(0, int(column - 3 * half_width)), min(size, int(column + 3 * half_width) + 1))
            profile = np.exp(-0.5 * ((near - column) / half_width) ** 2).astype(np.float32)
            extra[row, near] += rng.uniform(0.6, 1.5) * profile
    return extra


def stiffness_with_lesion(patient, stiffness, mask, polygon, size, rng) -> np.ndarray:
    """Young's modulus map with the lesion's Itoh elasticity pattern."""
    ratio = patient.stiffness_ratio
    center = polygon.mean(axis=0)
    sigma = 1.5 * size / 336.0 + 0.3

    def scaled_region(factor):
        return blur(fill(center + (polygon - center) * factor, size).astype(np.float32), sigma)

    stiff = scaled_region(patient.se_size_ratio)
    score = patient.elasticity_score
    if score == 5:
        # Lesion and surrounding tissue stiff: the stiff area exceeds the B-mode lesion.
        stiffness = stiffness * (1 - stiff) + 0.75 * ratio * stiff
        lesion = blur(mask.astype(np.float32), sigma)
        return stiffness * (1 - lesion) + ratio * lesion
    if score == 4:
        return stiffness * (1 - stiff) + ratio * stiff
    if score == 3:
        # Stiff centre, soft (straining) rim.
        core = scaled_region(0.6 * patient.se_size_ratio)
        rim = np.clip(blur(mask.astype(np.float32), sigma) - core, 0, 1)
        stiffness = stiffness * (1 - rim) + 1.3 * rim
        return stiffness * (1 - core) + 1.15 * ratio * core
    if score == 2:
        # Mosaic: mostly straining lesion with scattered stiff spots.
        spots = blur((smooth_field(rng, size, 28) > 0.7).astype(np.float32), sigma)
        lesion_e = 0.7 * ratio * (1.0 + 1.4 * spots)
        return stiffness * (1 - stiff) + lesion_e * stiff
    return stiffness * (1 - stiff) + ratio * stiff
