"""Render one B-mode / SE-mode pair of a phantom patient (paper §3.1: 336 x 336 images).

Every image of one patient shows the same lesion (shape, stiffness, score) and the same breast
(layers, look-alikes) seen in a different view: small shift/rotation/scale, new speckle, another
gain, pressure and noise draw, marks or none.
"""

from __future__ import annotations

import cv2
import numpy as np

from tf_bimodal.config import PhantomConfig
from tf_bimodal.data.phantom.anatomy import Anatomy, TissueMaps, View, draw_view, tissue_maps
from tf_bimodal.data.phantom.annotations import annotate
from tf_bimodal.data.phantom.bmode import form_bmode
from tf_bimodal.data.phantom.lesion import insert_lesion_bmode, lesion_polygon, stiffness_with_lesion
from tf_bimodal.data.phantom.patients import PatientParams
from tf_bimodal.data.phantom.raster import disc, fill
from tf_bimodal.data.phantom.semode import elastogram, overlay_strain, se_roi


def render_pair(
    patient: PatientParams,
    view_index: int,
    image_size: int,
    seed: int,
    return_strain: bool = False,
    annotation_fraction: float = PhantomConfig.annotation_fraction,
    return_layers: bool = False,
) -> dict:
    """Render one B-mode / SE-mode pair of a patient.

    The random stream is derived from ``(seed, patient.index, view_index)`` alone: a pair is
    deterministic in its arguments and independent of any other pair. Whether the view carries
    burnt-in marks, and which, comes from a stream of its own, so ``annotation_fraction``
    changes nothing else in the images.

    Args:
        patient: from ``sample_patients``.
        view_index: which view of this patient (``0 .. patient.num_pairs - 1`` in the cohort;
            any non-negative int works).
        image_size: side of the square images in pixels (paper §3.1: 336).
        seed: render seed (``iter_phantom`` passes ``config.seed``).
        return_strain: also return ``strain``, the normalised display strain (float32 (H, W) in
            [0, 1]; its colour ``strain_to_rgb(strain)`` is what the ROI shows, blended over the
            B-mode) and ``se_roi`` (top, left, bottom, right), the ROI box (bottom/right
            exclusive).
        annotation_fraction: probability that this view has operator marks burnt into its
            B-mode (``PhantomConfig.annotation_fraction``; ``iter_phantom`` passes the config's).
        return_layers: also return ``annotations`` and ``distractors``, uint8 (H, W) 0/1 maps
            of the burnt-in marks and of the look-alikes' footprints (neither is in the mask),
            and ``bmode_unmarked``, the B-mode before the marks (the SE-mode's underlay).

    Steps: the view and the breast (:mod:`~tf_bimodal.data.phantom.anatomy`), the lesion
    outline and mask (:mod:`~tf_bimodal.data.phantom.lesion`), the B-mode image
    (:mod:`~tf_bimodal.data.phantom.bmode`), the strain and its colour overlay
    (:mod:`~tf_bimodal.data.phantom.semode`), then the operator marks
    (:mod:`~tf_bimodal.data.phantom.annotations`).

    Returns:
        The schema dict (``tf_bimodal.schema``) plus ``ground_truth``.
    """
    _check_render_arguments(image_size, view_index, annotation_fraction)
    size = int(image_size)
    # Tagged (2) so that no render stream coincides with a patient-parameter stream (1).
    rng = np.random.default_rng([seed, 2, patient.index, view_index])
    view = draw_view(rng)
    anatomy = Anatomy(patient.anatomy_seed, patient.num_distractors)
    polygon, mask = _lesion_outline(patient, view, size)
    lesion_bottom = float(polygon[:, 1].max()) / size
    guard = cv2.dilate(mask, disc(max(2, int(0.04 * size))))

    tissue = tissue_maps(anatomy, view, size, lesion_bottom, guard, rng)
    insert_lesion_bmode(patient, tissue, mask, polygon, size, rng)
    bmode = form_bmode(tissue, view, anatomy.speckle_scale * anatomy.zoom * view.scale, size, rng)
    strain, roi = _strain(patient, tissue, bmode, mask, polygon, view, size, rng)
    semode = overlay_strain(bmode, strain, roi)
    marked, annotations = _operator_marks(
        bmode, mask, anatomy.zoom * view.scale, np.random.default_rng([seed, 4, patient.index, view_index]),
        annotation_fraction,
    )

    example = {
        "image_id": f"{patient.patient_id}_v{view_index}",
        "patient_id": patient.patient_id,
        "label": patient.label,
        "bmode": marked[:, :, None],
        "semode": semode,
        "mask": mask[:, :, None],
        "has_semode": True,
        "has_mask": True,
        "ground_truth": patient.ground_truth(int(mask.sum())),
    }
    if return_strain:
        example["strain"] = strain
        example["se_roi"] = roi
    if return_layers:
        example["annotations"] = annotations
        example["distractors"] = tissue.distractors
        example["bmode_unmarked"] = bmode[:, :, None]
    return example


def _check_render_arguments(image_size: int, view_index: int, annotation_fraction: float) -> None:
    if image_size < 32:
        raise ValueError(f"render_pair: image_size must be >= 32, got {image_size}")
    if view_index < 0:
        raise ValueError(f"render_pair: view_index must be >= 0, got {view_index}")
    if not 0.0 <= annotation_fraction <= 1.0:
        raise ValueError(f"render_pair: annotation_fraction must be in [0, 1], got {annotation_fraction}")


def _lesion_outline(patient: PatientParams, view: View, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The lesion's polygon in this view and its uint8 mask (never empty)."""
    polygon = lesion_polygon(patient, view, size)
    mask = fill(polygon, size)
    if not mask.any():  # a degenerate outline can only happen for tiny images; keep a seed pixel
        cx, cy = np.clip(np.round(polygon.mean(axis=0)).astype(int), 0, size - 1)
        mask[cy, cx] = 1
    return polygon, mask


def _strain(patient: PatientParams, tissue: TissueMaps, bmode, mask, polygon, view: View, size: int, rng):
    """``(strain, roi)``: the normalised display strain of the stiffness map with the lesion's
    elasticity pattern, and the SE region of interest around the lesion (and its stiff halo)."""
    stiffness = stiffness_with_lesion(patient, tissue.stiffness, mask, polygon, size, rng)
    roi = se_roi(polygon, patient.se_size_ratio if patient.elasticity_score == 5 else 1.0, view, size)
    cyst = mask if patient.echo_pattern == "anechoic" else None
    return elastogram(stiffness, tissue.depth, bmode, roi, view, size, rng, cyst), roi


def _operator_marks(bmode, mask, zoom: float, marks_rng: np.random.Generator, annotation_fraction: float):
    """``(marked B-mode, footprint of the marks)``; marks on ``annotation_fraction`` of the views,
    drawn from a stream of their own so that they change nothing else."""
    annotations = np.zeros(mask.shape, np.uint8)
    marked = bmode
    if marks_rng.random() < annotation_fraction:
        marked, annotations = annotate(bmode, mask, zoom, marks_rng)
    return marked, annotations
