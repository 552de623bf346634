"""One data set resolved once per request: the object every step of an experiment shares.

The entry point (:mod:`tf_bimodal.workflow`) calls :func:`resolve_data` once; the protocol,
every fold task, the grid search, the report and the experiment folder take the
:class:`ExperimentData` it returns. Nothing below re-prepares the data set, recomputes its
source fingerprint or re-derives its name:

* **prepared builder** (:func:`tf_bimodal.data.dataset.prepare`: built once into TFDS's data
  dir, checked against its source's fingerprint);
* **name** and **fingerprint** (``phantom``, ``busi_<digest>``, ...; the fingerprint stored
  with the prepared data);
* **arrays**: every example in memory, read on first use (a request that only describes the
  data reads the identifiers alone, :attr:`ExperimentData.index`);
* **splits**: the patient-level folds, made once and kept in ``<folder>/data/<name>/splits.json``
  so every model of an experiment uses the same ones;
* **sizes**: the data's side (:attr:`ExperimentData.data_size`) and the rule that gives a
  model's input side (:meth:`ExperimentData.model_size`).

A step called directly with a ``DataConfig`` (a notebook, a test) resolves it itself with
:func:`experiment_data`, once for that step.
"""

from __future__ import annotations

import dataclasses
import functools
import logging

import numpy as np
import tensorflow_datasets as tfds

from tf_bimodal import layout
from tf_bimodal.config import DataConfig, SplitConfig, model_input_size, to_dict
from tf_bimodal.data import dataset as dataset_lib
from tf_bimodal.data import inputs
from tf_bimodal.data import splits as splits_lib
from tf_bimodal.data.errors import DataError
from tf_bimodal.records import ImageSizes, RunRecord
from tf_bimodal.schema import SYNTHETIC_NOTICE

logger = logging.getLogger(__name__)

__all__ = ["ExperimentData", "experiment_data", "resolve_data"]


@dataclasses.dataclass(frozen=True)
class ExperimentData:
    """One data set ready for an experiment (see the module docstring).

    Attributes:
        config: the ``DataConfig`` it was resolved from.
        split: the ``SplitConfig`` its folds were made with.
        name: the prepared data set's builder config name (``phantom``, ``busi_<digest>``).
        version: the TFDS data set version.
        fingerprint: its source's fingerprint (:mod:`tf_bimodal.data.fingerprint`).
        builder: the prepared TFDS builder.
        splits: the patient-level folds (:mod:`tf_bimodal.data.splits`).
        splits_path: where they are kept.
    """

    config: DataConfig
    split: SplitConfig
    name: str
    version: str
    fingerprint: dict
    builder: object = dataclasses.field(repr=False, compare=False)
    splits: list = dataclasses.field(repr=False)
    splits_path: str = ""

    @functools.cached_property
    def arrays(self) -> dict:
        """Every example in memory, in data set order (:func:`tf_bimodal.data.inputs.load_arrays`),
        read once, when resolved or on first use."""
        return _read_arrays(self.builder)

    @functools.cached_property
    def index(self) -> dataset_lib.DatasetIndex:
        """The identifiers of every example (:class:`tf_bimodal.data.dataset.DatasetIndex`)."""
        if "arrays" in self.__dict__:
            return dataset_lib.DatasetIndex.from_arrays(self.arrays)
        return dataset_lib.index_dataset(self.builder)

    @property
    def synthetic(self) -> bool:
        """Whether the images are the synthetic phantom's."""
        return self.config.source == "phantom"

    @property
    def title(self) -> str:
        """``bimodal_breast_us/<name>``, as summaries record it."""
        return f"bimodal_breast_us/{self.name}"

    @property
    def description(self) -> str:
        """A one-line description of the data, marking synthetic data as such."""
        if self.config.source == "phantom":
            return f"{self.title} (synthetic phantom)"
        if self.config.source == "busi":
            return f"{self.title} (BUSI, real, B-mode only)"
        if self.config.source == "busbra":
            return f"{self.title} (BUS-BRA, real, B-mode only)"
        return f"{self.title} ({self.config.source}, {self.config.manual_dir})"

    @property
    def data_size(self) -> int:
        """The side of the data set's square images (``DataConfig.image_size``, paper §3.1)."""
        return int(self.config.image_size)

    def model_size(self, requested: int | None) -> int:
        """A model's input side: ``requested`` (a preset's ``image_size`` / ``input_size``) or,
        when None, the data's own side. The one home of that rule.

        Raises:
            ValueError: a size below the smallest one the models take (``MIN_IMAGE_SIZE``).
        """
        return model_input_size(requested, self.data_size)

    def positions(self, image_ids) -> np.ndarray:
        """Row indices of ``image_ids`` in :attr:`arrays`."""
        position = {image_id: i for i, image_id in enumerate(self.arrays["image_id"])}
        return np.array([position[i] for i in image_ids], dtype=np.int64)

    def experiment_dir(self, output: str, preset: str) -> str:
        """The experiment folder of this data under ``preset``: ``<output>/<name>-<preset>``."""
        return layout.experiment_dir(output, self.name, preset)

    def record(self, model_size: int) -> dict:
        """What every run's ``summary.json`` says of its data, for a model of input side
        ``model_size`` (:class:`tf_bimodal.records.RunRecord`)."""
        return RunRecord(
            dataset=self.title,
            dataset_version=self.version,
            source_fingerprint=self.fingerprint,
            synthetic=self.synthetic,
            notice=SYNTHETIC_NOTICE if self.synthetic else None,
            data_config=to_dict(self.config),
            image_size=ImageSizes(data=self.data_size, model=int(model_size)),
        ).to_dict()


def _read_arrays(builder) -> dict:
    read_config = tfds.ReadConfig(try_autocache=False)
    features = set(builder.info.features.keys())
    keys = (*inputs.ARRAY_KEYS, *(key for key in dataset_lib.INDEX_METADATA_KEYS if key in features))
    return inputs.load_arrays(builder.as_dataset(split="train", shuffle_files=False, read_config=read_config), keys)


def resolve_data(data: DataConfig, split: SplitConfig, folder_of, in_memory: bool = True) -> ExperimentData:
    """Prepare (or reuse) ``data`` and make (or reuse) its folds: once per request.

    Args:
        data: which data.
        split: the patient-level split settings.
        folder_of: the folder that keeps the folds, ``<folder>/data/<name>/splits.json``: a
            path, or a function of the data set's name (the experiment folder is named after
            it, so it is known only once the data is prepared); None makes no folds (data
            that is only evaluated on).
        in_memory: read every example into memory now (one pass that also gives the
            identifiers); False reads only the identifiers (describing the data), and
            :attr:`ExperimentData.arrays` reads the rest if it is asked for.

    Raises:
        tf_bimodal.data.DataError: bad input files or a missing folder (see
            :func:`tf_bimodal.data.dataset.prepare`).
    """
    builder = dataset_lib.prepare(data)
    fingerprint = dataset_lib.stored_fingerprint(builder)
    name = dataset_lib.builder_config_name(data, fingerprint)
    folder = folder_of(name) if callable(folder_of) else folder_of
    path = "" if folder is None else layout.splits_path(folder, name)
    cached = {"arrays": _read_arrays(builder)} if in_memory else {}
    if in_memory and cached["arrays"]["bmode"].shape[1] != data.image_size:
        raise DataError(builder.data_dir, f"prepared images are {cached['arrays']['bmode'].shape[1]} px, the data "
                                          f"asks for {data.image_size} px; delete this folder to prepare it again")
    index = dataset_lib.DatasetIndex.from_arrays(cached["arrays"]) if in_memory else dataset_lib.index_dataset(builder)
    splits = [] if folder is None else splits_lib.load_or_make_splits(
        path, index.image_ids, index.patient_ids, index.labels, split,
        test_folds=index.official_folds(split.num_folds) if split.scheme == "official" else None)
    resolved = ExperimentData(config=data, split=split, name=name, version=str(builder.info.version),
                              fingerprint=fingerprint, builder=builder, splits=splits, splits_path=path)
    resolved.__dict__.update(index=index, **cached)  # what was read is kept, never read again
    return resolved


def experiment_data(data: DataConfig | ExperimentData, split: SplitConfig | None, folder: str) -> ExperimentData:
    """``data`` itself when it is already resolved, else :func:`resolve_data` with its folds in
    ``folder`` (a step called directly rather than through the protocol).

    Raises:
        ValueError: an ``ExperimentData`` with ``split`` other than the one it was made with.
    """
    if isinstance(data, ExperimentData):
        if split is not None and split != data.split:
            raise ValueError(f"split {to_dict(split)} differs from the one the data was resolved with "
                             f"({to_dict(data.split)}): resolve the data again with that split")
        return data
    return resolve_data(data, split or SplitConfig(), folder)
