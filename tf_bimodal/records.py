"""The typed part of a run's ``summary.json``: what it ran on, one schema for its writers and readers.

Every cross-validated run (segmentation, classification, the grid search) writes the same
provenance block, made by
:meth:`tf_bimodal.experiments.experiment_data.ExperimentData.record`; the exporter
(:mod:`tf_bimodal.export.sources`) reads it back with :meth:`RunRecord.from_summary`, which
names what a summary lacks rather than falling back to defaults::

    "dataset": "bimodal_breast_us/phantom", "dataset_version": "1.3.0",
    "source_fingerprint": {...}, "synthetic": true, "notice": "...",
    "data_config": {...}, "image_size": {"data": 336, "model": 336}

At the bottom of the package: it imports nothing of it.
"""

from __future__ import annotations

import dataclasses

SCHEMA_VERSION = 2
"""The version of this block; part of every run's cache key, so a run made before a change of
the block is trained again rather than read with missing fields."""


@dataclasses.dataclass(frozen=True)
class ImageSizes:
    """The data's side and the model's input side, in pixels (paper §3.1: both 336)."""

    data: int
    model: int


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """What a run ran on (see the module docstring)."""

    dataset: str
    dataset_version: str
    source_fingerprint: dict
    synthetic: bool
    notice: str | None
    data_config: dict
    image_size: ImageSizes

    def to_dict(self) -> dict:
        """The JSON-ready block, as ``summary.json`` holds it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_summary(cls, summary: dict, path: str) -> RunRecord:
        """The block of a run's ``summary`` read from ``path``.

        Raises:
            ValueError: a key missing (a run made by an older version of the package), naming
                the file and the keys; train the run again.
        """
        names = [field.name for field in dataclasses.fields(cls)]
        missing = [name for name in names if name not in summary]
        sizes = summary.get("image_size")
        if not missing and not (isinstance(sizes, dict) and {"data", "model"} <= set(sizes)):
            missing = ["image_size.data", "image_size.model"]
        if missing:
            raise ValueError(f"{path}: the run's summary lacks {', '.join(missing)} (made by an older version of "
                             "tf_bimodal): train the run again")
        values = {name: summary[name] for name in names}
        values["image_size"] = ImageSizes(data=int(sizes["data"]), model=int(sizes["model"]))
        return cls(**values)
