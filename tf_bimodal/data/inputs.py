"""The models' inputs: in-memory arrays, training and prediction batches, crop masks (§3.1, §3.4).

What every experiment, the exporter, the benchmarks and the tests build their inputs with:

* :func:`load_arrays` reads a prepared data set into NumPy arrays (the data sets are small:
  hundreds of pairs), :func:`resize_arrays` brings them to a model's size;
* :func:`segmentation_dataset` and :func:`classification_dataset` turn them into ``fit`` /
  ``predict`` batches through :func:`tf_bimodal.data.pipeline.make_dataset` (augmentation,
  lesion crop, resize), :func:`drop_modalities` hides one modality of a pair in training;
* :func:`save_predicted_masks` / :func:`load_predicted_masks` store a segmenter's masks, and
  :func:`apply_crop_masks` gives a classifier the masks it crops with (``predicted``,
  ``manual`` or ``none``); :func:`tf_bimodal.data.cropping.scaled_margin` is the one margin rule (§3.1: 50 px at 336 px,
  :func:`tf_bimodal.data.cropping.scaled_margin`).
"""

from __future__ import annotations

import io
import os

import numpy as np
import tensorflow as tf

from tf_bimodal.config import AugmentConfig, CropConfig, crop_masks
from tf_bimodal.data import pipeline

ARRAY_KEYS = ("image_id", "patient_id", "label", "bmode", "semode", "mask", "has_semode", "has_mask")
"""The example keys the experiments hold in memory (every key of the schema)."""

PREDICTION_BATCH = 32
"""Batch size of the prediction passes of both tasks."""

BINARY_CLASSES = (0, 1)
"""Label indices of the benign-vs-malignant task (``normal`` is left out, §4.2)."""


def load_arrays(ds: tf.data.Dataset, keys=ARRAY_KEYS) -> dict:
    """The ``keys`` of every example of ``ds`` as NumPy arrays, in dataset order.

    Identifiers (``image_id``, ``patient_id``) are decoded to ``str``, ``label`` to int64.
    """
    keys = tuple(keys)
    ds = ds.map(lambda example: {key: example[key] for key in keys})
    columns = {key: [] for key in keys}
    for batch in ds.batch(64).as_numpy_iterator():
        for key in keys:
            columns[key].append(batch[key])
    arrays = {key: np.concatenate(values) for key, values in columns.items()}
    for key in ("image_id", "patient_id"):
        if key in arrays:
            arrays[key] = np.array([value.decode() for value in arrays[key]])
    if "label" in arrays:
        arrays["label"] = arrays["label"].astype(np.int64)
    return arrays


def resize_arrays(arrays: dict, size: int) -> dict:
    """Images and masks resized to ``size`` x ``size`` (uint8), for training at model size.

    Images: bilinear with antialiasing (speckle would alias when shrinking 336 -> 64).
    Masks: area-weighted, then > 0.5, so they stay binary and keep the lesion's extent.
    """
    if arrays["bmode"].shape[1] == size:
        return arrays
    out = dict(arrays)
    for key in ("bmode", "semode", "mask"):
        parts = []
        for start in range(0, len(arrays[key]), 64):
            chunk = tf.convert_to_tensor(arrays[key][start : start + 64], tf.float32)
            resized = tf.image.resize(chunk, (size, size), method="bilinear", antialias=True).numpy()
            if key == "mask":
                parts.append((resized > 0.5).astype(np.uint8))
            else:
                parts.append(np.clip(np.round(resized), 0, 255).astype(np.uint8))
        out[key] = np.concatenate(parts)
    return out


def segmentation_dataset(
    arrays: dict,
    image_ids,
    input_keys,
    batch_size: int,
    training: bool,
    augment: bool = False,
    seed: int = 0,
    replicas: int = 1,
) -> tf.data.Dataset:
    """Batches of ``(inputs, mask)`` of ``image_ids`` for a segmenter's ``fit``.

    Training batches are shuffled and, with ``augment``, augmented (``AugmentConfig()``).
    A last batch that would leave one of ``replicas`` empty is left out
    (:func:`~tf_bimodal.data.pipeline.replica_batches`).
    """
    num_batches = pipeline.replica_batches(len(image_ids), batch_size, replicas)
    ds = tf.data.Dataset.from_tensor_slices(arrays)
    ds = pipeline.make_dataset(
        ds, batch_size, training=training, augment_config=AugmentConfig() if (training and augment) else None,
        seed=seed, keys=(*input_keys, "mask"), image_ids=image_ids,
    )
    ds = ds.map(lambda batch: ({key: batch[key] for key in input_keys}, batch["mask"]))
    # Selecting ids filters, which hides the number of batches from Keras; state it.
    ds = ds.take(num_batches).apply(tf.data.experimental.assert_cardinality(num_batches))
    return pipeline.with_data_sharding(ds)


def prediction_batches(arrays: dict, input_keys, batch_size: int = 16) -> tf.data.Dataset:
    """Unshuffled, unaugmented batches of the model inputs ``input_keys`` of every image."""
    ds = tf.data.Dataset.from_tensor_slices({key: arrays[key] for key in input_keys})
    return pipeline.make_dataset(ds, batch_size, training=False, cache=False)


def classification_dataset(
    arrays: dict,
    image_ids,
    input_keys,
    input_size: int,
    crop_config: CropConfig | None,
    batch_size: int = PREDICTION_BATCH,
    training: bool = False,
    augment: bool = False,
    modality_dropout: float = 0.0,
    seed: int = 0,
    with_metadata: bool = False,
    replicas: int = 1,
    context_crop: CropConfig | None = None,
) -> tf.data.Dataset:
    """Batches of ``(inputs, label)`` with the model inputs ``input_keys`` of ``image_ids``.

    Uses :func:`tf_bimodal.data.pipeline.make_dataset`: augmentation (``training`` and
    ``augment``) before the crop, so the crop follows the moved lesion, then the crop
    (``crop_config``) or a plain resize to ``input_size``; for training, the three are one
    resampling at ``input_size``. Images are float32 in [0, 1];
    ``availability`` is ``[1, has_semode]``. With ``modality_dropout`` > 0 (training only) a
    pair loses one of its two images (zeroed, availability 0) with that probability, see
    :func:`drop_modalities`. ``with_metadata`` adds ``image_id``, ``patient_id`` and ``label``
    to the inputs dict, for prediction. For ``fit`` under ``replicas`` replicas, a last batch
    of fewer images than replicas is left out (:func:`~tf_bimodal.data.pipeline.replica_batches`).

    ``context_crop`` (``ClassificationConfig.context_margin``) adds ``bmode_context`` and
    ``semode_context``: the same images cropped with that second crop, through the same seeded
    pipeline (the same order and augmentation draws), for ``input_keys`` that ask for them.
    """
    input_keys = tuple(input_keys)
    if context_crop is None and any(key.endswith("_context") for key in input_keys):
        raise ValueError(f"classification_dataset: inputs {input_keys} need a context_crop (a second, wider crop)")

    def batches(crop):
        return pipeline.make_dataset(
            tf.data.Dataset.from_tensor_slices(arrays),
            batch_size,
            training=training,
            augment_config=AugmentConfig() if (training and augment) else None,
            seed=seed,
            crop=crop,
            output_size=input_size,
            keys=("image_id", "patient_id", "label", "bmode", "semode", "has_semode"),
            image_ids=image_ids,
        )

    context_keys = {"bmode": "bmode_context", "semode": "semode_context"}
    ds = batches(crop_config)
    if context_crop is not None:
        ds = tf.data.Dataset.zip(ds, batches(context_crop)).map(
            lambda batch, context: {**batch, **{name: context[key] for key, name in context_keys.items()}}
        )

    def to_inputs(batch):
        has_semode = tf.cast(batch["has_semode"], tf.float32)
        availability = tf.stack([tf.ones_like(has_semode), has_semode], axis=-1)
        inputs = {"bmode": batch["bmode"], "semode": batch["semode"], "availability": availability}
        inputs.update({name: batch[name] for name in context_keys.values() if name in batch})
        inputs = {key: inputs[key] for key in input_keys}
        if with_metadata:
            inputs.update({key: batch[key] for key in ("image_id", "patient_id", "label")})
        return inputs, batch["label"]

    # The id filter hides the size from Keras; state it (one partial batch at the end).
    num_batches = pipeline.replica_batches(len(set(image_ids)), batch_size, replicas)
    ds = ds.map(to_inputs).take(num_batches)
    ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches))
    ds = pipeline.with_data_sharding(ds)
    if training and modality_dropout > 0:
        if "availability" not in input_keys:
            raise ValueError("modality_dropout needs a model with an 'availability' input")
        seeds = tf.data.Dataset.random(seed=seed + 7919, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda example, pair: (drop_modalities(example[0], pair, modality_dropout), example[1])
        )
    return ds


def drop_modalities(inputs: dict, seed, rate: float) -> dict:
    """With probability ``rate`` per pair that has both images, hide one of the two.

    The hidden image is zeroed and its availability set to 0; returns the new inputs dict.
    """
    availability = inputs["availability"]
    batch = tf.shape(availability)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    drop = tf.random.stateless_uniform([batch], seeds[0]) < rate
    both = tf.reduce_all(availability > 0, axis=-1)
    which = tf.random.stateless_uniform([batch], seeds[1], 0, 2, dtype=tf.int32)
    hidden = tf.one_hot(which, 2) * tf.cast(drop & both, tf.float32)[:, None]
    availability = availability * (1.0 - hidden)
    out = dict(inputs)
    out["availability"] = availability
    for column, key in enumerate(("bmode", "semode")):
        out[key] = inputs[key] * availability[:, column][:, None, None, None]
    return out


# --------------------------------------------------------------------------- crop masks


def save_predicted_masks(path: str, image_ids, masks, rule: str = "") -> str:
    """Write ``image_ids`` (str array) and ``masks`` (uint8 N x S x S) to an ``.npz`` file,
    atomically.

    ``rule`` (stored as ``rule``) says how the masks were made. Returns ``path``.
    """
    image_ids = np.asarray([str(i) for i in image_ids])
    masks = np.asarray(masks)
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if masks.ndim != 3 or len(masks) != len(image_ids):
        raise ValueError(
            f"save_predicted_masks: need N masks (N, S, S) for N image ids, got {masks.shape} for {len(image_ids)} ids"
        )
    if not np.isin(masks, (0, 1)).all():
        raise ValueError("save_predicted_masks: masks must be binary (0 or 1)")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, image_ids=image_ids, masks=masks.astype(np.uint8), rule=np.asarray(rule))
    tmp_path = path + ".tmp"
    with open(tmp_path, "wb") as handle:
        handle.write(buffer.getvalue())
    os.replace(tmp_path, path)
    return path


def load_predicted_masks(path: str) -> dict:
    """``{image_id: uint8 (S, S) mask}`` from a ``predicted_masks.npz`` (see
    :func:`save_predicted_masks`), for cropping the classifier's inputs (§3.1, §4.1)."""
    with np.load(path, allow_pickle=False) as data:
        image_ids = [str(i) for i in data["image_ids"]]
        masks = data["masks"]
    return {image_id: masks[index] for index, image_id in enumerate(image_ids)}


def check_predicted_masks(path: str, segmenter: str) -> str:
    """``path`` if the segmenter's masks exist there.

    Raises:
        FileNotFoundError: they do not exist yet, saying which run makes them.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"crop='predicted' needs the W-MM-U-Net masks at {path}, which does not exist; run "
            f"`python run_experiments.py --model {segmenter}` first (same "
            "--output and data options), or choose crop='manual' or 'none'"
        )
    return path


def apply_crop_masks(arrays: dict, crop: str, masks_path: str | None = None) -> tuple[dict, dict]:
    """The arrays with the masks ``crop`` asks for, and a record of what was used.

    Args:
        arrays: from :func:`load_arrays`.
        crop: ``predicted`` (the masks in ``masks_path``), ``manual`` (the ground truth) or
            ``none`` (no crop); a ``*_mask_shape`` crop takes the masks of its prefix
            (:func:`tf_bimodal.config.crop_masks`).
        masks_path: a :func:`save_predicted_masks` file (``crop="predicted"`` only).

    Raises:
        FileNotFoundError: ``crop="predicted"`` without the segmentation's masks file.
        ValueError: an unknown ``crop``, or predicted masks missing images or of another size.
    """
    crop = crop_masks(crop)  # raises for an unknown crop
    if crop == "none":
        return arrays, {"crop": "none", "masks": None}
    if crop == "manual":
        missing = int(np.sum(~arrays["has_mask"]))
        return arrays, {
            "crop": "manual",
            "masks": "ground truth (dataset 'mask')",
            "images_without_mask_left_uncropped": missing,
        }
    if masks_path is None or not os.path.isfile(masks_path):
        raise FileNotFoundError(f"crop='predicted' needs a predicted masks file, got {masks_path!r}")
    masks = load_predicted_masks(masks_path)
    missing = [image_id for image_id in arrays["image_id"] if image_id not in masks]
    if missing:
        raise ValueError(
            f"{masks_path}: has no predicted mask for {len(missing)} of {len(arrays['image_id'])} images "
            f"(e.g. {missing[:3]}); it was made for other data"
        )
    stacked = np.stack([masks[image_id] for image_id in arrays["image_id"]])
    if stacked.ndim == 3:
        stacked = stacked[..., None]
    if stacked.shape[1:3] != arrays["mask"].shape[1:3]:
        raise ValueError(
            f"{masks_path}: masks are {stacked.shape[1:3]} pixels, the images {arrays['mask'].shape[1:3]}"
        )
    out = dict(arrays)
    out["mask"] = (stacked > 0).astype(np.uint8)
    return out, {"crop": "predicted", "masks": masks_path}
