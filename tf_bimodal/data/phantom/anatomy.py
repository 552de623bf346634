"""The patient's breast and the probe's view of it: layers, fat lobules, look-alikes, and the
per-pixel tissue maps (echogenicity, scatterer density, stiffness, attenuation) a view sees.

The breast is drawn in "world" coordinates (fractions of a field at zoom 1, laterally wider than
the image), so a probe shift just samples another part of the same breast. The lesion is added
afterwards (:mod:`tf_bimodal.data.phantom.lesion`).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from tf_bimodal.data.phantom.lexicon import DISTRACTOR_KINDS
from tf_bimodal.data.phantom.raster import blur, disc, smooth_field

# Relative tissue echogenicity (scatterer amplitude) and scatterer density; glandular = 1.
_SKIN, _FAT, _GLAND, _RETRO_FAT, _MUSCLE, _CHEST = range(6)
_LAYER_AMPLITUDE = np.array([1.4, 0.22, 1.0, 0.18, 0.42, 0.3], np.float32)
_LAYER_DENSITY = np.array([1.0, 0.35, 1.0, 0.35, 0.9, 0.8], np.float32)
# Young's modulus relative to fat (fibroglandular tissue ~2x fat, muscle and skin stiffer).
_LAYER_STIFFNESS = np.array([3.0, 1.0, 2.0, 1.0, 3.5, 5.0], np.float32)

FLUID_AMPLITUDE = 0.03
"""Echogenicity of fluid (cysts, ducts) relative to glandular tissue: anechoic, what shows is the
noise floor."""


@dataclasses.dataclass(frozen=True)
class View:
    """What changes between two acquisitions of the same lesion."""

    shift: tuple[float, float]  # lateral, depth, fractions of the image side
    rotation_deg: float
    scale: float
    pressure: float  # operator compression, 1 = ideal
    gain_db: float
    tgc_fraction: float  # share of the depth attenuation that TGC compensates
    roi_margins: tuple[float, float, float, float]  # left, right, top, bottom, in lesion sizes
    dynamic_range_db: float
    tgc_bands_db: tuple[float, ...]  # slider offsets at equally spaced depths
    noise_floor_db: float  # receiver noise relative to glandular echoes at the skin
    contact_loss: tuple[float, float, float]  # side (-1 left, +1 right, 0 none), width, depth in dB


def draw_view(rng: np.random.Generator) -> View:
    """One acquisition's probe position, settings and pressure (the render stream's first draws)."""
    side = float(rng.choice((-1.0, 1.0))) if rng.random() < 0.25 else 0.0
    return View(
        shift=(float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.04, 0.04))),
        rotation_deg=float(rng.uniform(-7.0, 7.0)),
        scale=float(rng.uniform(0.9, 1.1)),
        pressure=float(rng.uniform(0.55, 1.5)),
        gain_db=float(rng.uniform(-9.0, 4.0)),
        tgc_fraction=float(rng.uniform(0.3, 0.9)),
        roi_margins=tuple(float(v) for v in rng.uniform((0.4, 0.4, 0.3, 0.35), (0.9, 0.9, 0.8, 0.8))),
        dynamic_range_db=float(rng.uniform(44.0, 62.0)),
        tgc_bands_db=tuple(float(v) for v in rng.normal(0.0, 1.8, 6)),
        noise_floor_db=float(rng.uniform(-58.0, -48.0)),
        contact_loss=(side, float(rng.uniform(0.08, 0.25)), float(rng.uniform(6.0, 18.0))),
    )


def _undulation(rng: np.random.Generator, amplitude: float) -> tuple[tuple[float, float, float], ...]:
    """Random low-frequency sinusoid components (amplitude, frequency, phase) of a boundary."""
    return tuple(
        (amplitude * rng.uniform(0.3, 1.0) / (k + 1), rng.uniform(0.5, 1.5) * (k + 1), rng.uniform(0, 2 * np.pi))
        for k in range(3)
    )


def _boundary(x: np.ndarray, base: float, components) -> np.ndarray:
    """Depth of a layer boundary at lateral positions ``x``: ``base`` plus its undulation."""
    out = np.full_like(x, base)
    for amplitude, frequency, phase in components:
        out += amplitude * np.sin(2 * np.pi * frequency * x + phase)
    return out


@dataclasses.dataclass(frozen=True)
class Distractor:
    """A lesion look-alike in world coordinates (see ``DISTRACTOR_KINDS``)."""

    kind: str
    x: float  # lateral position, fraction of the (zoom 1) field width
    depth: float  # position within the glandular layer: 0 its top, 1 its bottom
    half_axes: tuple[float, float]  # fractions of the field width
    angle_deg: float
    level: float  # echogenicity (cyst, duct, lobule) or extra attenuation in nepers (shadow)


class Anatomy:
    """The patient's breast: layer boundaries (depth fractions), fat lobules, look-alikes, and
    the examination's depth setting and probe frequency.

    Drawn in "world" coordinates (fractions of a field at zoom 1, laterally wider than the
    image), so a probe shift just samples another part of the same breast.
    """

    def __init__(self, seed: int, num_distractors: int = 0):
        rng = np.random.default_rng(seed)
        self.skin = (rng.uniform(0.025, 0.04), _undulation(rng, 0.004))
        self.fat = (rng.uniform(0.08, 0.24), _undulation(rng, 0.06))
        self.gland = (rng.uniform(0.62, 0.74), _undulation(rng, 0.08))
        self.retro_thickness = rng.uniform(0.03, 0.06)
        self.muscle_thickness = rng.uniform(0.09, 0.15)
        self.muscle_period = rng.uniform(0.012, 0.02)
        self.muscle_slope = rng.uniform(-0.08, 0.08)
        self.has_rib = bool(rng.random() < 0.4)
        self.rib_x = rng.uniform(0.1, 0.9)
        # Depth setting (> 1: a shallower field, everything looks larger) and probe frequency
        # (> 1: a lower frequency, coarser speckle).
        self.zoom = rng.uniform(0.8, 1.3)
        self.speckle_scale = rng.uniform(0.75, 1.5)
        # How streaky the glandular tissue is (ducts and ligaments running along the skin).
        self.streakiness = rng.uniform(0.15, 0.55)
        # Fat lobules: flattened ellipses (x, y within the fat layer, half axes, echo level).
        count = 40
        self.lobules = np.stack(
            [
                rng.uniform(-0.3, 1.3, count),
                rng.uniform(0.0, 1.0, count),
                rng.uniform(0.05, 0.12, count),
                rng.uniform(0.02, 0.045, count),
                rng.uniform(-10, 10, count),
                rng.uniform(0.75, 1.3, count),
            ],
            axis=1,
        )
        self.distractors = tuple(self._distractor(rng) for _ in range(num_distractors))

    @staticmethod
    def _distractor(rng: np.random.Generator) -> Distractor:
        kind = DISTRACTOR_KINDS[int(rng.choice(len(DISTRACTOR_KINDS), p=(0.3, 0.2, 0.38, 0.12)))]
        x, depth = float(rng.uniform(-0.05, 1.05)), float(rng.uniform(0.05, 0.85))
        if kind == "cyst":
            half = float(rng.uniform(0.012, 0.05))
            axes = (half, half * float(rng.uniform(0.55, 1.0)))
            angle, level = float(rng.uniform(-15, 15)), FLUID_AMPLITUDE
        elif kind == "duct":
            axes = (float(rng.uniform(0.05, 0.14)), float(rng.uniform(0.01, 0.022)))
            angle, level = float(rng.uniform(-25, 25)), 1.5 * FLUID_AMPLITUDE
        elif kind == "fat_lobule":
            axes = (float(rng.uniform(0.025, 0.07)), float(rng.uniform(0.014, 0.035)))
            angle, level = float(rng.uniform(-20, 20)), float(rng.uniform(0.08, 0.3))
        else:  # a refraction shadow behind a Cooper's ligament: a dark column
            axes = (float(rng.uniform(0.006, 0.02)), 0.0)
            angle, level = 0.0, float(rng.uniform(0.8, 2.2))
        return Distractor(kind, x, depth, axes, angle, level)


# ---------------------------------------------------------------------------------------------
# Tissue maps of one view
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TissueMaps:
    """Per-pixel maps of the breast around the lesion (float32, (size, size) unless noted)."""

    depth: np.ndarray  # (size, 1) physical depth, fractions of a zoom-1 field
    amplitude: np.ndarray  # echogenicity
    density: np.ndarray  # scatterer density
    stiffness: np.ndarray  # Young's modulus relative to fat
    attenuation: np.ndarray  # extra attenuation (nepers) entered at each pixel, integrated along depth later
    distractors: np.ndarray  # uint8 footprint of the look-alikes that the view shows


@dataclasses.dataclass(frozen=True)
class _Frame:
    """Where a view's pixels lie in the breast (world coordinates)."""

    size: int
    zoom: float
    shift_x: float
    xs: np.ndarray  # (size,) world lateral position of each column
    ys: np.ndarray  # (size, 1) world depth of each row

    def to_pixels(self, x_world, y_world):
        return ((x_world + self.shift_x - 0.5) * self.zoom + 0.5) * self.size, y_world * self.zoom * self.size


@dataclasses.dataclass(frozen=True)
class _Layers:
    """Depth of each layer boundary per column (world coordinates) and the layer of each pixel."""

    skin: np.ndarray
    fat: np.ndarray
    gland: np.ndarray
    retro: np.ndarray
    muscle: np.ndarray
    labels: np.ndarray  # (size, size) int8: _SKIN .. _CHEST


def tissue_maps(
    anatomy: Anatomy, view: View, size: int, lesion_bottom: float, guard: np.ndarray, rng: np.random.Generator
) -> TissueMaps:
    """Echogenicity, scatterer density, stiffness and extra attenuation of the breast without
    the lesion, with the look-alikes that fall in the view and clear of ``guard`` (the lesion and
    a margin around it).

    Layers from the skin down: skin line, subcutaneous fat lobules with echogenic septa, streaky
    fibroglandular tissue with fat islands, retromammary fat, striated pectoral muscle and
    sometimes a rib with its shadow; then the look-alikes.
    """
    zoom = anatomy.zoom * view.scale
    pixel = (np.arange(size, dtype=np.float32) + 0.5) / size
    xs = (pixel - 0.5) / zoom + 0.5 - view.shift[0]  # world lateral position of each column
    ys = (pixel / zoom)[:, None]  # world depth of each row
    frame = _Frame(size, zoom, view.shift[0], xs, ys)
    layers = _layers(anatomy, view, frame, lesion_bottom)
    maps = TissueMaps(
        depth=ys,
        amplitude=_LAYER_AMPLITUDE[layers.labels],
        density=_LAYER_DENSITY[layers.labels],
        stiffness=_LAYER_STIFFNESS[layers.labels],
        attenuation=np.zeros((size, size), np.float32),
        distractors=np.zeros((size, size), np.uint8),
    )
    # Skin: a thin bright entry line over the dermis.
    maps.amplitude = np.where(ys < 0.4 * layers.skin, 2.6, maps.amplitude)
    _fat_lobules(maps, anatomy, frame, layers)
    texture = _glandular_tissue(maps, anatomy, frame, layers, rng)
    _pectoral_muscle(maps, anatomy, frame, layers, texture)
    if anatomy.has_rib:
        _rib(maps, anatomy, frame, layers)
    _look_alikes(maps, anatomy, frame, layers, guard, texture)
    return maps


def _layers(anatomy: Anatomy, view: View, frame: _Frame, lesion_bottom: float) -> _Layers:
    """Layer boundaries under each column and the layer of each pixel."""
    xs, ys = frame.xs, frame.ys
    skin = _boundary(xs, *anatomy.skin) + view.shift[1] * 0.2
    fat = _boundary(xs, *anatomy.fat) + view.shift[1]
    gland = _boundary(xs, *anatomy.gland) + view.shift[1]
    fat = np.clip(fat, skin + 0.03, None)
    # Lesions sit in the fibroglandular layer: push the deep layers below the lesion.
    gland = gland + max(0.0, lesion_bottom / frame.zoom + 0.05 - float(gland.min()))
    gland = np.maximum(gland, fat + 0.15)
    retro = gland + anatomy.retro_thickness
    muscle = retro + anatomy.muscle_thickness
    labels = (
        (ys >= skin).astype(np.int8)
        + (ys >= fat)
        + (ys >= gland)
        + (ys >= retro)
        + (ys >= muscle)
    )
    return _Layers(skin, fat, gland, retro, muscle, labels)


def _fat_lobules(maps: TissueMaps, anatomy: Anatomy, frame: _Frame, layers: _Layers) -> None:
    """Subcutaneous fat lobules separated by echogenic septa (Cooper's ligaments)."""
    size, zoom = frame.size, frame.zoom
    lobule_image = np.ones((size, size), np.float32)
    septa = np.zeros((size, size), np.float32)
    fat_top, fat_depth = float(layers.skin.mean()), float(np.mean(layers.fat - layers.skin))
    for x, y, ax, ay, angle, level in anatomy.lobules:
        cx, cy = frame.to_pixels(x, fat_top + y * fat_depth)
        axes = (max(1, int(ax * zoom * size)), max(1, int(ay * zoom * size)))
        cv2.ellipse(lobule_image, (int(round(cx)), int(round(cy))), axes, angle, 0, 360, float(level), -1)
        cv2.ellipse(septa, (int(round(cx)), int(round(cy))), axes, angle, 0, 360, 1.0, 1)
    is_fat = (layers.labels == _FAT) | (layers.labels == _RETRO_FAT)
    fat_amp = maps.amplitude * lobule_image + 1.1 * blur(septa, 0.5)
    maps.amplitude = np.where(is_fat, fat_amp, maps.amplitude)
    maps.stiffness = np.where(is_fat, maps.stiffness * (0.85 + 0.3 * (lobule_image - 0.75) / 0.55), maps.stiffness)


def _glandular_tissue(
    maps: TissueMaps, anatomy: Anatomy, frame: _Frame, layers: _Layers, rng: np.random.Generator
) -> np.ndarray:
    """Fibroglandular tissue: heterogeneous echo texture, streaks along the skin (ducts and
    ligaments) and interspersed fat islands. Returns the texture field (reused below)."""
    size, zoom = frame.size, frame.zoom
    texture = smooth_field(rng, size, 10)
    streaks = smooth_field(rng, size, max(8, int(28 * zoom)), 5)
    islands = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(3, 9))):
        center = (int(rng.uniform(0, size)), int(rng.uniform(layers.fat.mean(), layers.gland.mean()) * zoom * size))
        axes = (
            int(rng.uniform(0.03, 0.08) * zoom * size) + 1,
            int(rng.uniform(0.012, 0.03) * zoom * size) + 1,
        )
        cv2.ellipse(islands, center, axes, float(rng.uniform(-15, 15)), 0, 360, 1.0, -1)
    islands = blur(islands, 0.01 * size)
    is_gland = layers.labels == _GLAND
    gland_amp = np.exp(0.35 * texture + anatomy.streakiness * streaks) * (1.0 - 0.8 * islands)
    maps.amplitude = np.where(is_gland, gland_amp, maps.amplitude)
    maps.density = np.where(is_gland, 1.0 - 0.6 * islands, maps.density)
    maps.stiffness = np.where(
        is_gland, maps.stiffness * np.exp(0.2 * texture) * (1.0 - 0.45 * islands), maps.stiffness
    )
    return texture


def _pectoral_muscle(
    maps: TissueMaps, anatomy: Anatomy, frame: _Frame, layers: _Layers, texture: np.ndarray
) -> None:
    """Pectoral muscle: bright striations roughly parallel to the fascia; the fasciae between
    the deep layers as thin echogenic lines."""
    ys = frame.ys
    phase = (ys - layers.retro + anatomy.muscle_slope * frame.xs) / anatomy.muscle_period
    striation = (0.5 + 0.5 * np.sin(2 * np.pi * phase + 0.6 * texture)) ** 8
    is_muscle = layers.labels >= _MUSCLE
    amplitude = np.where(is_muscle, maps.amplitude * (0.6 + 2.2 * striation), maps.amplitude)
    for boundary in (layers.retro, layers.muscle):
        amplitude = amplitude + 1.2 * np.exp(-0.5 * ((ys - boundary) * frame.zoom * frame.size / 0.8) ** 2)
    maps.amplitude = amplitude


def _rib(maps: TissueMaps, anatomy: Anatomy, frame: _Frame, layers: _Layers) -> None:
    """Rib: a bright curved surface that blocks the beam (black shadow below)."""
    size, zoom = frame.size, frame.zoom
    rib_top = float(layers.muscle.min()) + 0.04
    if rib_top * zoom < 0.93:
        cx, cy = frame.to_pixels(anatomy.rib_x, rib_top + 0.06)
        axes = (int(0.13 * zoom * size), int(0.06 * zoom * size))
        rib = np.zeros((size, size), np.uint8)
        cv2.ellipse(rib, (int(cx), int(cy)), axes, 0, 0, 360, 1, -1)
        rib_surface = rib.astype(np.float32) - cv2.erode(rib, np.ones((3, 3), np.uint8)).astype(np.float32)
        maps.amplitude = maps.amplitude + 8.0 * blur(rib_surface, 0.7)
        # The beam is blocked just under the bony surface, so the surface itself shows.
        depth_shift = max(2, size // 100)
        maps.attenuation[depth_shift:] += rib[:-depth_shift] * (8.0 / (0.02 * size))
        maps.stiffness = np.where(rib > 0, 50.0, maps.stiffness)


def _look_alikes(
    maps: TissueMaps, anatomy: Anatomy, frame: _Frame, layers: _Layers, guard: np.ndarray, texture: np.ndarray
) -> None:
    """Look-alikes: never over the lesion (the guard), otherwise where the breast has them.

    Fat lobules are hypoechoic and soft; cysts and ducts anechoic with an echogenic wall and
    enhancement below; a ligament shadow is a dark column of extra attenuation. Their footprint
    goes to ``maps.distractors``.
    """
    size, zoom = frame.size, frame.zoom
    fat, gland = layers.fat, layers.gland
    for item in anatomy.distractors:
        column = int(np.clip(frame.to_pixels(item.x, 0.0)[0], 0, size - 1))
        y_world = fat[column] + item.depth * (gland[column] - fat[column])
        cx, cy = frame.to_pixels(item.x, y_world)
        if not (0 <= cx < size and 0 <= cy < size):
            continue
        shape = np.zeros((size, size), np.uint8)
        if item.kind == "ligament_shadow":
            half_width = max(1, int(round(item.half_axes[0] * zoom * size)))
            top = int(np.clip(fat[column] * zoom * size, 0, size - 1))
            left, right = max(0, int(cx) - half_width), min(size, int(cx) + half_width + 1)
            if (guard[:, left:right]).any():
                continue
            profile = np.exp(-0.5 * ((np.arange(left, right) - cx) / (0.6 * half_width)) ** 2)
            maps.attenuation[top, left:right] += item.level * profile.astype(np.float32)
            continue
        axes = tuple(max(1, int(round(half * zoom * size))) for half in item.half_axes)
        cv2.ellipse(shape, (int(cx), int(cy)), axes, item.angle_deg, 0, 360, 1, -1)
        if (shape & guard).any() or not shape.any():
            continue
        maps.distractors |= shape
        inside = shape.astype(np.float32)
        height = float(np.count_nonzero(shape.any(axis=1)))
        if item.kind == "fat_lobule":
            soft = blur(inside, 0.006 * size + 0.5)
            maps.amplitude = maps.amplitude * (1 - soft) + item.level * np.exp(0.3 * texture) * soft
            maps.density = maps.density * (1 - soft) + 0.35 * soft
            maps.stiffness = maps.stiffness * (1 - soft) + 0.9 * soft
        else:  # fluid: anechoic with an echogenic wall, enhancement below (more for cysts)
            wall = cv2.dilate(shape, disc(max(1, size // 200))).astype(np.float32) - inside
            soft = blur(inside, 0.3)
            maps.amplitude = maps.amplitude * (1 - soft) * (1.0 + 0.8 * blur(wall, 0.5)) + item.level * soft
            maps.density = maps.density * (1 - soft) + soft
            maps.stiffness = maps.stiffness * (1 - soft) + 0.5 * soft
            enhancement = 0.9 if item.kind == "cyst" else 0.35
            maps.attenuation -= inside * (enhancement / height)
