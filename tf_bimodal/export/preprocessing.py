"""The CAD pipeline's preprocessing as graph ops: checks, resizing, normalisation, crop (§3.1).

Everything here is TensorFlow ops only, so it is traced into the exported SavedModels and
runs where ``tf_bimodal`` is not installed. Each step reproduces what the training and
evaluation pipelines do, so that an image of the data set's size gives exactly the masks,
crops and probabilities of the protocol:

* **Model input** (:func:`to_model_input`): the segmenters were trained on images resized to
  the model size by :func:`tf_bimodal.experiments.segmentation.resize_arrays` (bilinear with
  antialiasing, rounded back to uint8), then normalised by
  :func:`tf_bimodal.data.pipeline.normalize` (``convert_image_dtype``: ``x / 255``).
* **Mask at the input size**: each fold model's probabilities are resized bilinearly to the
  input size, thresholded (``p > threshold``) and the K masks are voted per pixel
  (``2 * votes > K``), as ``run_segmentation`` makes ``predicted_masks.npz``
  (:func:`tf_bimodal.evaluation.segmentation.majority_vote`).
* **Crop box** (:func:`lesion_box`): the mask's bounding box
  (:func:`tf_bimodal.data.cropping.mask_bounding_box`) grown by the paper's 50-pixel margin at
  336 pixels, scaled to the input size (:func:`scaled_margin`, the rule of
  :func:`tf_bimodal.experiments.classification.crop_margin`), clipped to the image. An empty
  mask gives the whole image, as in training.
* **Classifier input** (:func:`crop_and_resize`): the normalised images cut to the box and
  resized bilinearly to the classifier's input size, as
  :func:`tf_bimodal.data.cropping.crop_pair` does after ``normalize``.

Input checks (:func:`check_pair`, :func:`check_batch`) fail with an ``InvalidArgumentError``
whose message names the input, the rule and the shape received.
"""

from __future__ import annotations

import tensorflow as tf

from tf_bimodal.data.cropping import mask_bounding_box

BMODE_RULE = "bmode must be a uint8 grey B-mode image of shape [H, W] or [H, W, 1]"
SEMODE_RULE = "semode must be a uint8 colour SE-mode image of shape [H, W, 3]"
BATCH_BMODE_RULE = "bmode must be a uint8 batch of grey B-mode images of shape [N, H, W] or [N, H, W, 1]"
BATCH_SEMODE_RULE = "semode must be a uint8 batch of colour SE-mode images of shape [N, H, W, 3]"


def _require(condition, message: str, *data):
    return tf.debugging.Assert(condition, [message, *data], summarize=8)


def _check_images(bmode, semode, where: str, batched: bool):
    """The checks of :func:`check_pair` (``batched=False``) and :func:`check_batch` (``True``)."""
    lead = int(batched)  # leading batch axes
    bmode_rule, semode_rule = (BATCH_BMODE_RULE, BATCH_SEMODE_RULE) if batched else (BMODE_RULE, SEMODE_RULE)
    bmode = tf.convert_to_tensor(bmode)
    semode = tf.convert_to_tensor(semode)
    b_shape = tf.shape(bmode)
    s_shape = tf.shape(semode)
    b_rank = tf.rank(bmode)
    s_rank = tf.rank(semode)
    shapes = ["bmode shape", b_shape, "semode shape", s_shape]
    rank_checks = [
        _require(tf.logical_or(tf.equal(b_rank, 2 + lead), tf.equal(b_rank, 3 + lead)),
                 f"{where}: {bmode_rule}; got rank", b_rank, *shapes),
        _require(tf.equal(s_rank, 3 + lead), f"{where}: {semode_rule}; got rank", s_rank, *shapes),
    ]
    # Shape entries are read only once the ranks are known to be right.
    with tf.control_dependencies(rank_checks):
        channel_checks = [
            _require(tf.reduce_all(tf.equal(b_shape[2 + lead:], 1)),
                     f"{where}: {bmode_rule}; got a channel count other than 1:", *shapes),
            _require(tf.equal(s_shape[2 + lead], 3),
                     f"{where}: {semode_rule}; got", s_shape[2 + lead], "channels:", *shapes),
        ]
    with tf.control_dependencies(channel_checks):
        height, width = b_shape[lead], b_shape[lead + 1]
        size_checks = [
            _require(tf.logical_and(height > 0, width > 0),
                     f"{where}: bmode is empty (zero height or width); images need H, W > 0:", *shapes),
            _require(tf.logical_and(s_shape[lead] > 0, s_shape[lead + 1] > 0),
                     f"{where}: semode is empty (zero height or width); images need H, W > 0:", *shapes),
        ]
        if batched:
            size_checks.append(
                _require(b_shape[0] > 0, f"{where}: the batch is empty (N = 0); send at least one pair:", *shapes)
            )
    with tf.control_dependencies(size_checks):
        match_check = _require(
            tf.reduce_all(tf.equal(b_shape[:2 + lead], s_shape[:2 + lead])),
            f"{where}: bmode and semode must hold as many images, of the same height and width; got"
            if batched else f"{where}: bmode and semode must have the same height and width (one B/SE pair); got",
            *shapes,
        )
    with tf.control_dependencies([match_check]):
        leading = [b_shape[0]] if batched else []
        return (tf.reshape(bmode, tf.stack([*leading, height, width, 1])),
                tf.reshape(semode, tf.stack([*leading, height, width, 3])))


def check_pair(bmode, semode, where: str = "cad_pipeline"):
    """Validate one B-mode / SE-mode pair of any (unknown) rank; return it as [H, W, C].

    Checks, in order: ranks (bmode [H, W] or [H, W, 1], semode [H, W, 3]), channel counts,
    non-empty images (H, W > 0), equal sizes. A failed check raises
    ``tf.errors.InvalidArgumentError`` with ``"<where>: <rule>"`` and the shapes received.

    Returns:
        ``(bmode [H, W, 1], semode [H, W, 3])``, same dtype, static ranks and channels.
    """
    return _check_images(bmode, semode, where, batched=False)


def check_batch(bmode, semode, where: str = "cad_pipeline.serve_batch"):
    """Validate a batch of pairs, as :func:`check_pair` with a leading batch axis N >= 1.

    Returns:
        ``(bmode [N, H, W, 1], semode [N, H, W, 3])``.
    """
    return _check_images(bmode, semode, where, batched=True)


def normalize_image(image) -> tf.Tensor:
    """uint8 -> float32 in [0, 1], exactly as :func:`tf_bimodal.data.pipeline.normalize`."""
    return tf.image.convert_image_dtype(image, tf.float32)


def to_model_input(images, size: int) -> tf.Tensor:
    """uint8 [N, H, W, C] images as the segmenter saw them in training: float32 [N, S, S, C].

    Bilinear resizing with antialiasing, rounded back to uint8
    (:func:`tf_bimodal.experiments.segmentation.resize_arrays`), then ``x / 255``. A side that
    already is ``size`` stays exactly as it is (the resize is the identity, and the rounding
    removes any float error).
    """
    resized = tf.image.resize(tf.cast(images, tf.float32), (size, size), method="bilinear", antialias=True)
    return normalize_image(tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8))


def lesion_box(mask, margin_y, margin_x) -> tf.Tensor:
    """The crop box of one [H, W] mask: its bounding box grown by the margins, clipped (§3.1).

    With equal margins this is :func:`tf_bimodal.data.cropping.mask_bounding_box`; the margin
    is per axis so that a non-square image keeps the paper's margin relative to each side.

    Returns:
        int32 [4] ``[y0, x0, y1, x1]``, ends exclusive; an empty mask gives ``[0, 0, H, W]``.
    """
    y0, x0, y1, x1 = mask_bounding_box(mask, margin=0)
    height = tf.shape(mask, out_type=tf.int32)[0]
    width = tf.shape(mask, out_type=tf.int32)[1]
    grown = tf.stack([
        tf.maximum(y0 - margin_y, 0),
        tf.maximum(x0 - margin_x, 0),
        tf.minimum(y1 + margin_y, height),
        tf.minimum(x1 + margin_x, width),
    ])
    found = tf.reduce_any(tf.not_equal(mask, tf.zeros([], mask.dtype)))
    return tf.where(found, grown, tf.stack([0, 0, height, width]))


def crop_and_resize(image, box, size: int) -> tf.Tensor:
    """One float [H, W, C] image cut to ``box`` and resized bilinearly to [size, size, C].

    The slice and resize of :func:`tf_bimodal.data.cropping.crop_pair` (``rectangle``), not
    ``tf.image.crop_and_resize``, whose sampling grid differs.
    """
    cropped = image[box[0]:box[2], box[1]:box[3]]
    return tf.cast(tf.image.resize(cropped, (size, size), method="bilinear"), tf.float32)


def majority(votes, num_models: int) -> tf.Tensor:
    """Pixels marked by more than half of ``num_models`` models (the fold union, §3.4), bool."""
    return 2 * votes > num_models
