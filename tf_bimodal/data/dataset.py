"""Load any data source as a ``tf.data.Dataset`` through the TFDS builder.

The builder (``tfds_builder/bimodal_breast_us``) prepares the dataset once into TFDS's data dir;
later calls read the prepared TFRecords. Each distinct source gets its own builder config name,
so prepared datasets never mix: the phantom's name spells out its settings, a user's folder
(``clinical``, ``busi``, ``busbra``) is named by its fingerprint (:mod:`tf_bimodal.data.fingerprint`:
resolved path, manifest, every file's size and modification time), e.g. ``busi_3fa2c1d9e0ab``.
Another folder, or the same folder changed, therefore prepares afresh into its own place; the
fingerprint is also stored with the prepared data and checked on every load.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tf_bimodal.config import DataConfig, PhantomConfig
from tf_bimodal.data import fingerprint as fingerprint_lib
from tf_bimodal.data.builder import BimodalBreastUs, BimodalBreastUsConfig
from tf_bimodal.data.errors import DataError
from tf_bimodal.data.inputs import load_arrays
from tf_bimodal.schema import DEFAULT_IMAGE_SIZE, LABELS, OFFICIAL_FOLD_COUNTS, official_fold_key


def source_fingerprint(config: DataConfig) -> dict:
    """The fingerprint of ``config``'s source (:func:`tf_bimodal.data.fingerprint.source_fingerprint`).

    Raises:
        DataError: a missing or empty ``manual_dir``, naming it.
    """
    return fingerprint_lib.source_fingerprint(config.source, manual_dir=config.manual_dir,
                                              phantom=config.phantom_settings,
                                              busi_duplicates=config.busi_duplicates)


def builder_config_name(config: DataConfig, fingerprint: dict | None = None) -> str:
    """The TFDS builder config name for ``config``.

    ``phantom`` for the default phantom (``phantom_64px_b4_...`` for other settings);
    ``<source>[_<N>px]_<digest>`` for a user's folder, the digest of its fingerprint.

    Args:
        config: the data.
        fingerprint: ``config``'s source fingerprint, if already computed.

    Raises:
        DataError: a missing or empty ``manual_dir``, naming it.
    """
    name = config.source
    if config.image_size != DEFAULT_IMAGE_SIZE:
        name += f"_{config.image_size}px"
    if config.source != "phantom":
        fingerprint = fingerprint or source_fingerprint(config)
        return f"{name}_{fingerprint['digest']}"
    if config.source == "phantom":
        phantom = dataclasses.replace(config.phantom, image_size=DEFAULT_IMAGE_SIZE)
        if phantom != PhantomConfig():
            name += (
                f"_b{phantom.num_benign_patients}_m{phantom.num_malignant_patients}"
                f"_p{phantom.min_pairs_per_patient}-{phantom.max_pairs_per_patient}"
                f"_seed{phantom.seed}"
            )
    return name


def make_builder(config: DataConfig, fingerprint: dict | None = None) -> BimodalBreastUs:
    """The ``BimodalBreastUs`` TFDS builder for ``config`` (not yet prepared)."""
    name = builder_config_name(config, fingerprint)
    registered = {c.name: c for c in BimodalBreastUs.BUILDER_CONFIGS}
    if name in registered:
        builder_config = registered[name]
    else:
        builder_config = BimodalBreastUsConfig(
            name=name,
            source=config.source,
            image_size=config.image_size,
            phantom=config.phantom_settings,
            busi_duplicates=config.busi_duplicates,
        )
    return BimodalBreastUs(config=builder_config, data_dir=config.data_dir)


def stored_fingerprint(builder) -> dict | None:
    """The source fingerprint stored with a prepared data set (None if it has none)."""
    metadata = builder.info.metadata
    if metadata is None or "source_fingerprint" not in metadata.keys():
        return None
    return dict(metadata["source_fingerprint"])


def prepare(config: DataConfig):
    """Build the dataset if it is not built yet; returns the prepared builder.

    The source's fingerprint names the prepared data (:func:`builder_config_name`) and is
    checked against the one stored with it. Preparation is atomic: TFDS writes into a
    temporary folder and renames it when everything succeeded, so a failed or interrupted
    preparation leaves nothing that a later call would reuse.

    Raises:
        tf_bimodal.data.DataError: a missing or empty ``manual_dir``; bad input files, naming
            the file and the rule; prepared data whose stored fingerprint differs; a folder
            that changed while it was being prepared.
    """
    fingerprint = source_fingerprint(config)
    builder = make_builder(config, fingerprint)
    if not builder.is_prepared():
        download_config = tfds.download.DownloadConfig(
            manual_dir=config.manual_dir, try_download_gcs=False
        )
        try:
            builder.download_and_prepare(download_config=download_config)
        except FileExistsError:
            # Another process (a second worker) finished preparing the same source first.
            builder = make_builder(config, fingerprint)
            if not builder.is_prepared():
                raise
        if source_fingerprint(config) != fingerprint:
            tf.io.gfile.rmtree(builder.data_dir)
            raise DataError(
                config.manual_dir or "phantom",
                "the folder changed while it was being prepared; the prepared copy was removed, "
                "run again once the folder is complete",
            )
    stored = stored_fingerprint(builder)
    if stored != fingerprint:
        raise DataError(
            builder.data_dir,
            f"prepared data of another source: it records {fingerprint_lib.describe(stored)}, "
            f"but the data asked for is {fingerprint_lib.describe(fingerprint)}; delete this "
            "folder to prepare it again",
        )
    return builder


def load_dataset(config: DataConfig) -> tuple[tf.data.Dataset, tfds.core.DatasetInfo]:
    """All examples of ``config``'s source (one TFDS split ``train``) and the dataset info."""
    builder = prepare(config)
    return builder.as_dataset(split="train", shuffle_files=False), builder.info


INDEX_METADATA_KEYS = ("device", "birads", *(official_fold_key(k) for k in OFFICIAL_FOLD_COUNTS))
"""What the index keeps of each case besides its identifiers (``schema.METADATA_DEFAULTS``):
the scanner and BI-RADS category for the data summary, the source's own test folds for
``SplitConfig(scheme="official")``."""


def _texts(values) -> np.ndarray:
    return np.array([value.decode() if isinstance(value, bytes) else str(value) for value in values])


@dataclasses.dataclass(frozen=True)
class DatasetIndex:
    """Identifiers of every example, in dataset order: what splits are made from.

    ``devices`` and ``birads`` (empty text where the source records none) and ``test_folds``
    (number of folds -> each image's test fold in the source's own partition, 0 for none) are
    None / empty for data prepared without them.
    """

    image_ids: np.ndarray
    patient_ids: np.ndarray
    labels: np.ndarray
    has_semode: np.ndarray
    has_mask: np.ndarray
    devices: np.ndarray | None = None
    birads: np.ndarray | None = None
    test_folds: Mapping[int, np.ndarray] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> DatasetIndex:
        """The index of examples read with :func:`tf_bimodal.data.inputs.load_arrays` (the
        metadata keys of :data:`INDEX_METADATA_KEYS` are used where present)."""
        folds = {k: np.asarray(arrays[official_fold_key(k)], np.int64) for k in OFFICIAL_FOLD_COUNTS
                 if official_fold_key(k) in arrays}
        return cls(
            image_ids=arrays["image_id"], patient_ids=arrays["patient_id"], labels=arrays["label"],
            has_semode=arrays["has_semode"].astype(bool), has_mask=arrays["has_mask"].astype(bool),
            devices=_texts(arrays["device"]) if "device" in arrays else None,
            birads=_texts(arrays["birads"]) if "birads" in arrays else None,
            test_folds=folds,
        )

    def __len__(self):
        return len(self.image_ids)

    def official_folds(self, num_folds: int) -> np.ndarray | None:
        """Each image's test fold (1 to ``num_folds``; 0: none) in the source's own
        ``num_folds``-fold partition, or None when no image has one."""
        folds = self.test_folds.get(num_folds)
        return folds if folds is not None and folds.any() else None

    def summary(self) -> dict:
        """Counts of images and patients per class, and of SE / mask availability; per device
        (``devices``) and per BI-RADS category (``birads``) where the source records them:
        ``{name: {"images", "patients", "<class>": images}}``."""
        out = {"num_images": int(len(self)), "num_patients": int(len(set(self.patient_ids)))}
        for index, name in enumerate(LABELS):
            selected = self.labels == index
            if selected.any():
                out[name] = {
                    "images": int(selected.sum()),
                    "patients": int(len(set(self.patient_ids[selected]))),
                }
        out["with_semode"] = int(self.has_semode.sum())
        out["with_mask"] = int(self.has_mask.sum())
        for key, values in (("devices", self.devices), ("birads", self.birads)):
            if values is not None and any(values):
                out[key] = self._counts_by(values)
        return out

    def _counts_by(self, values: np.ndarray) -> dict:
        counts = {}
        for value in sorted(set(values.tolist())):
            selected = values == value
            entry = {"images": int(selected.sum()), "patients": int(len(set(self.patient_ids[selected])))}
            for index, name in enumerate(LABELS):
                if (self.labels[selected] == index).any():
                    entry[name] = int((self.labels[selected] == index).sum())
            counts[value or "unknown"] = entry
        return counts


def index_dataset(builder) -> DatasetIndex:
    """Read the identifiers (and :data:`INDEX_METADATA_KEYS`) of all examples without
    decoding any image."""
    image_keys = ("bmode", "semode", "mask")
    decoders = {key: tfds.decode.SkipDecoding() for key in image_keys}
    ds = builder.as_dataset(split="train", shuffle_files=False, decoders=decoders)
    features = set(builder.info.features.keys())
    keys = ("image_id", "patient_id", "label", "has_semode", "has_mask",
            *(key for key in INDEX_METADATA_KEYS if key in features))
    return DatasetIndex.from_arrays(load_arrays(ds, keys))
