"""The phantom as the TFDS builder reads it: every pair of the cohort, in a fixed order."""

from __future__ import annotations

from collections.abc import Iterator

from tf_bimodal.config import PhantomConfig
from tf_bimodal.data.phantom.patients import sample_patients
from tf_bimodal.data.phantom.render import render_pair


def iter_phantom(config: PhantomConfig = PhantomConfig()) -> Iterator[dict]:
    """Yield every pair of the cohort: patients in id order, views ``0 .. num_pairs - 1``.

    Images are ``config.image_size`` pixels square, rendered with seed ``config.seed`` and
    marked on ``config.annotation_fraction`` of the views.
    """
    for patient in sample_patients(config):
        for view_index in range(patient.num_pairs):
            yield render_pair(
                patient, view_index, config.image_size, config.seed, annotation_fraction=config.annotation_fraction
            )
