"""The one registry of named experiments and the one place a preset name becomes settings
(:func:`resolve_experiment`)."""

from __future__ import annotations

import dataclasses

from tf_bimodal.config.experiment import ExperimentConfig
from tf_bimodal.config.overrides import Overrides, apply_overrides
from tf_bimodal.config.presets import (
    CLASSIFICATION_PRESETS,
    GRID_SEARCH_PRESETS,
    PRESETS,
    SEGMENTATION_PRESETS,
    TABLE3_PRESETS,
)
from tf_bimodal.config.runtime import RuntimeConfig

EXPERIMENT_PRESETS = {
    name: ExperimentConfig(
        name=name,
        segmentation=SEGMENTATION_PRESETS[name],
        classification=CLASSIFICATION_PRESETS[name],
        grid_search=GRID_SEARCH_PRESETS[name],
        table3=TABLE3_PRESETS[name],
    )
    for name in PRESETS
}
"""The named experiments: ``paper`` (a GPU), ``cpu`` (Tables 1-2 on a 2-core CPU), ``quick``."""


DEFAULT_PRESET = "auto"
"""``paper`` when TensorFlow sees a GPU, else ``cpu`` (:func:`resolve_experiment`)."""


def resolve_experiment(preset: str = DEFAULT_PRESET, runtime: RuntimeConfig | None = None, gpus: int = 0,
                       overrides: Overrides = (), **fields) -> ExperimentConfig:
    """The ``ExperimentConfig`` of a preset name: the one place names become settings.

    Args:
        preset: ``paper``, ``cpu``, ``quick``, or ``auto`` (``paper`` when ``gpus`` > 0, else
            ``cpu``).
        runtime: the ``RuntimeConfig`` (default: ``RuntimeConfig()``).
        gpus: how many GPUs the caller's TensorFlow sees (for ``auto``).
        overrides: ``section.key=value`` strings, ``(section, key, value)`` triples or a
            ``{section: {key: value}}`` mapping (:func:`apply_overrides`), applied after
            ``runtime`` and ``fields``, later ones winning; recorded in
            ``ExperimentConfig.overrides``.
        fields: fields of ``ExperimentConfig`` to replace (``segmentation=...``, ``name=...``).

    Raises:
        ValueError: an unknown preset; a bad override (see :func:`parse_override` and
            :func:`apply_overrides`).
    """
    if preset == "auto":
        preset = "paper" if gpus > 0 else "cpu"
    if preset not in EXPERIMENT_PRESETS:
        raise ValueError(f"preset must be one of {PRESETS} or 'auto', got {preset!r}")
    experiment = dataclasses.replace(EXPERIMENT_PRESETS[preset], runtime=runtime or RuntimeConfig(), **fields)
    return apply_overrides(experiment, overrides)
