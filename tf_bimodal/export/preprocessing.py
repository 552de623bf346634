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
  :data:`tf_bimodal.data.cropping.PAPER_MARGIN`), clipped to the image. An empty
  mask gives the whole image, as in training.
* **Classifier input** (:func:`crop_and_resize`): the normalised images cut to the box and
  resized bilinearly to the classifier's input size, as
  :func:`tf_bimodal.data.cropping.crop_pair` does after ``normalize``.

* **Image formats** (:func:`check_pair`, :func:`check_batch`, :func:`check_bmode`,
  :func:`check_bmode_batch`): what scanners and public data sets write is accepted as the
  readers accept it (:func:`tf_bimodal.data.readers.read_image`): a B-mode image grey, or grey
  stored as RGB or RGBA (BUSI's PNGs, screenshots), is made grey by :func:`to_grey`, the rule
  of :func:`tf_bimodal.data.readers.to_grey` (OpenCV's ``RGB2GRAY``), so grey stored as RGB
  gives exactly its grey values; an SE-mode image RGB or RGBA keeps its R, G, B. Alpha is
  dropped, never blended.

The checks fail with an ``InvalidArgumentError`` whose message names the input, the rule and
the shapes received; they are graph ops, so a user of the plain SavedModel gets them too.
"""

from __future__ import annotations

import tensorflow as tf

from tf_bimodal.data.cropping import mask_bounding_box

BMODE_CHANNELS = (1, 3, 4)
"""Channel counts of a B-mode image: grey, or grey stored as RGB or RGBA (§3.1)."""
SEMODE_CHANNELS = (3, 4)
"""Channel counts of an SE-mode image: RGB, or RGBA (§3.1)."""

BMODE_RULE = ("bmode must be a uint8 grey B-mode image of shape [H, W] or [H, W, 1], "
              "or grey stored as RGB [H, W, 3] or RGBA [H, W, 4]")
SEMODE_RULE = "semode must be a uint8 colour SE-mode image of shape [H, W, 3] (RGB) or [H, W, 4] (RGBA)"
BATCH_BMODE_RULE = ("bmode must be a uint8 batch of grey B-mode images of shape [N, H, W] or [N, H, W, 1], "
                    "or grey stored as RGB [N, H, W, 3] or RGBA [N, H, W, 4]")
BATCH_SEMODE_RULE = ("semode must be a uint8 batch of colour SE-mode images of shape [N, H, W, 3] (RGB) or "
                     "[N, H, W, 4] (RGBA)")

# OpenCV's 8-bit RGB -> grey (cv2.COLOR_RGB2GRAY): fixed point with 15 fractional bits, rounded.
GREY_WEIGHTS = (9798, 19235, 3735)
"""0.299, 0.587 and 0.114 in units of 2**-15; they sum to 2**15, so R = G = B = v gives v."""
GREY_SHIFT = 15


def _require(condition, message: str, *data):
    return tf.debugging.Assert(condition, [message, *data], summarize=8)


def _rules(batched: bool) -> dict:
    return ({"bmode": BATCH_BMODE_RULE, "semode": BATCH_SEMODE_RULE} if batched
            else {"bmode": BMODE_RULE, "semode": SEMODE_RULE})


def _check_images(images: dict, where: str, batched: bool) -> dict:
    """The checks of :func:`check_pair` and :func:`check_bmode` (``batched=False``) and of
    :func:`check_batch` and :func:`check_bmode_batch` (``True``); ``images`` holds ``bmode``
    and, unless B-mode only, ``semode``. Returns them as ``[(N,) H, W, 1]`` grey and
    ``[(N,) H, W, 3]`` RGB."""
    lead = int(batched)  # leading batch axes
    rules = _rules(batched)
    tensors = {name: tf.convert_to_tensor(image) for name, image in images.items()}
    shapes = {name: tf.shape(tensor) for name, tensor in tensors.items()}
    shown = [item for name in tensors for item in (f"{name} shape", shapes[name])]
    allowed = {"bmode": BMODE_CHANNELS, "semode": SEMODE_CHANNELS}

    rank_checks = []
    for name, tensor in tensors.items():
        rank = tf.rank(tensor)
        right = tf.equal(rank, 3 + lead)
        if name == "bmode":  # a grey image may come without its channel axis
            right = tf.logical_or(right, tf.equal(rank, 2 + lead))
        rank_checks.append(_require(right, f"{where}: {rules[name]}; got rank", rank, *shown))
    # Shape entries are read only once the ranks are known to be right.
    with tf.control_dependencies(rank_checks):
        channels = {name: tf.reduce_prod(shape[2 + lead:]) for name, shape in shapes.items()}  # 1 without the axis
        channel_checks = [
            _require(tf.reduce_any(tf.equal(channels[name], allowed[name])),
                     f"{where}: {rules[name]}; got", channels[name], "channels:", *shown)
            for name in tensors
        ]
    with tf.control_dependencies(channel_checks):
        size_checks = [
            _require(tf.logical_and(shapes[name][lead] > 0, shapes[name][lead + 1] > 0),
                     f"{where}: {name} is empty (zero height or width); images need H, W > 0:", *shown)
            for name in tensors
        ]
        if batched:
            size_checks.append(_require(
                shapes["bmode"][0] > 0,
                f"{where}: the batch is empty (N = 0); send at least one "
                + ("pair:" if "semode" in tensors else "image:"),
                *shown,
            ))
    checks = size_checks
    if "semode" in tensors:
        with tf.control_dependencies(size_checks):
            checks = [_require(
                tf.reduce_all(tf.equal(shapes["bmode"][:2 + lead], shapes["semode"][:2 + lead])),
                f"{where}: bmode and semode must hold as many images, of the same height and width; got"
                if batched else f"{where}: bmode and semode must have the same height and width (one B/SE pair); got",
                *shown,
            )]
    with tf.control_dependencies(checks):
        b_shape = shapes["bmode"]
        leading = [b_shape[0]] if batched else []
        height, width = b_shape[lead], b_shape[lead + 1]

        def as_image(name: str, out_channels: int):
            image = tf.reshape(tensors[name], tf.stack([*leading, height, width, channels[name]]))
            image = to_grey(image) if name == "bmode" else image[..., :3]
            return tf.reshape(image, tf.stack([*leading, height, width, out_channels]))

        return {name: as_image(name, 1 if name == "bmode" else 3) for name in tensors}


def check_pair(bmode, semode, where: str = "cad_pipeline"):
    """Validate one B-mode / SE-mode pair of any (unknown) rank; return it as grey and RGB.

    Accepted: ``bmode`` uint8 ``[H, W]`` or ``[H, W, 1]`` (grey), ``[H, W, 3]`` (grey stored
    as RGB) or ``[H, W, 4]`` (RGBA); ``semode`` uint8 ``[H, W, 3]`` (RGB) or ``[H, W, 4]``
    (RGBA). Checks, in order: ranks, channel counts, non-empty images (H, W > 0), equal
    sizes. A failed check raises ``tf.errors.InvalidArgumentError`` with
    ``"<where>: <rule>"`` and the shapes received. The dtype is the signature's
    (``tf.uint8``).

    Returns:
        ``(bmode [H, W, 1], semode [H, W, 3])``: B-mode through :func:`to_grey`, SE-mode
        without its alpha; same dtype, static ranks and channels.
    """
    images = _check_images({"bmode": bmode, "semode": semode}, where, batched=False)
    return images["bmode"], images["semode"]


def check_batch(bmode, semode, where: str = "cad_pipeline.serve_batch"):
    """Validate a batch of pairs, as :func:`check_pair` with a leading batch axis N >= 1.

    Returns:
        ``(bmode [N, H, W, 1], semode [N, H, W, 3])``.
    """
    images = _check_images({"bmode": bmode, "semode": semode}, where, batched=True)
    return images["bmode"], images["semode"]


def check_bmode(bmode, where: str = "cad_pipeline.serve_bmode_only"):
    """Validate one B-mode image without its SE-mode image, as :func:`check_pair` does.

    Returns:
        bmode ``[H, W, 1]``, grey.
    """
    return _check_images({"bmode": bmode}, where, batched=False)["bmode"]


def check_bmode_batch(bmode, where: str = "cad_pipeline.serve_bmode_only_batch"):
    """Validate a batch of B-mode images (N >= 1, one size), as :func:`check_batch` does.

    Returns:
        bmode ``[N, H, W, 1]``, grey.
    """
    return _check_images({"bmode": bmode}, where, batched=True)["bmode"]


def to_grey(images) -> tf.Tensor:
    """uint8 ``[..., C]``, C in {1, 3, 4}, to grey uint8 ``[..., 1]`` (§3.1).

    The rule of :func:`tf_bimodal.data.readers.to_grey`, which the training data went
    through: OpenCV's ``COLOR_RGB2GRAY`` for 8-bit images,
    ``Y = (9798 R + 19235 G + 3735 B + 2**14) >> 15`` (0.299, 0.587, 0.114, rounded); alpha
    is ignored. The weights sum to ``2**15``, so a grey image (one channel, or R = G = B) keeps
    exactly its values.
    """
    images = tf.convert_to_tensor(images)
    channels = tf.shape(images)[-1]
    # R, G, B; a one-channel image gives its channel three times.
    rgb = tf.cast(tf.gather(images, tf.minimum(tf.range(3), channels - 1), axis=-1), tf.int32)
    weighted = tf.add_n([rgb[..., index:index + 1] * weight for index, weight in enumerate(GREY_WEIGHTS)])
    return tf.cast(tf.bitwise.right_shift(weighted + (1 << (GREY_SHIFT - 1)), GREY_SHIFT), tf.uint8)


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
