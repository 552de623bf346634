"""The exported graphs: fold ensembles of the segmenter and the classifier, and the CAD chain.

:class:`SegmenterEnsemble` and :class:`ClassifierEnsemble` hold the fold models and the
ensembling rules (plain Python objects, so that a module saving them stores only its own
functions). The ``tf.Module`` s :class:`SegmenterServing`, :class:`ClassifierServing` and
:class:`CADPipeline` are what is saved: their serving functions are ``tf.function`` s with a
fixed ``input_signature``, and they track the Keras fold models as attributes, so
``tf.saved_model.save`` stores the variables and the traced graphs, and the SavedModel runs
with TensorFlow alone. Every model is called with ``training=False``: batch
normalisation uses its moving statistics, dropout is off, and EmbraceNet applies its
inference rule (the deterministic expected value unless the export asked for sampling,
:class:`tf_bimodal.layers.embracenet.EmbraceNet`).

Ensembles (the protocol's own rules, §3.4, §4):

* **Segmenter**: the fold union, the per-pixel majority (``2 * votes > K``) of the K fold
  models' masks thresholded at ``p > threshold``
  (:func:`tf_bimodal.evaluation.segmentation.majority_vote`), which is how the experiment makes
  the masks its classifiers crop with (``predicted_masks.npz``).
* **Classifier**: the mean of the K fold models' probabilities of malignancy; the decision
  threshold is the mean of the folds' Youden thresholds (§3.3.1), malignant if
  ``p >= threshold`` as in the evaluation.
"""

from __future__ import annotations

import tensorflow as tf

from tf_bimodal.config import CropConfig
from tf_bimodal.data.cropping import scaled_margin
from tf_bimodal.export import preprocessing
from tf_bimodal.schema import DEFAULT_IMAGE_SIZE, MODALITY_CHANNELS

AVAILABILITY = "availability"
CONTEXT_SUFFIX = "_context"
"""A classifier input ``<modality>_context``: a second, wider crop of the same lesion
(``ClassificationConfig.context_margin``, the linear read-out's)."""


def input_modality(name: str) -> str | None:
    """The modality an input ``name`` reads (``bmode_context`` -> ``bmode``); None for ``availability``."""
    modality = name.removesuffix(CONTEXT_SUFFIX)
    return modality if modality in MODALITY_CHANNELS else None


def _signature_function(body, specs):
    """A ``tf.function`` of positional tensors described by ``specs`` (named TensorSpecs) that
    calls ``body`` with them as a dict, so one class serves models with different inputs."""
    names = [spec.name for spec in specs]

    def function(*tensors):
        return body(dict(zip(names, tensors)))

    return tf.function(function, input_signature=list(specs), autograph=False)


def _all_variables(models) -> list:
    """Every variable of the models, random-seed states included (``keras.Layer.variables``).

    A ``keras.random.SeedGenerator`` (EmbraceNet's draws, dropout) is not a TensorFlow
    trackable, so its state is not reached through the model's object graph; a function that
    samples (``embracement="sample"``) captures it, and ``tf.saved_model.save`` refuses an
    untracked capture. Tracking this list as well makes every captured variable reachable.
    """
    return [variable for model in models for variable in model.variables]


def _as_float32(tensor):
    return tf.cast(tensor, tf.float32)


class SegmenterEnsemble:
    """The K fold segmenters at the model size, combined by the fold union (§3.2, §3.4).

    Args:
        models: the fold models (``keras.Model``), each mapping ``{name: float32 [N, S, S, C]}``
            in [0, 1] to lesion probabilities ``[N, S, S, 1]``.
        input_names: the image inputs the models read (``("bmode", "semode")``).
        model_size: S.
        threshold: a pixel is lesion for one model if its probability is ``> threshold``.
        test_time_flip: each model's probability is the mean over the images and their
            left-right mirrors (mirrored back), as ``SegmentationConfig.test_time_flip``.
    """

    def __init__(self, models, input_names, model_size: int, threshold: float, test_time_flip: bool = False):
        if not models:
            raise ValueError("SegmenterEnsemble: needs at least one fold model")
        unknown = sorted(set(input_names) - set(MODALITY_CHANNELS))
        if unknown:
            raise ValueError(f"SegmenterEnsemble: inputs must be among {sorted(MODALITY_CHANNELS)}, got {unknown}")
        self.models = list(models)
        self.input_names = tuple(input_names)
        self.model_size = int(model_size)
        self.threshold = float(threshold)
        self.num_models = len(self.models)
        self.test_time_flip = bool(test_time_flip)

    def fold_probabilities(self, images: dict) -> tf.Tensor:
        """float32 [N, S, S, K]: each fold model's lesion probability, folds on the last axis."""
        feed = {key: images[key] for key in self.input_names}
        if not self.test_time_flip:
            return tf.concat([_as_float32(model(feed, training=False)) for model in self.models], axis=-1)
        mirrored = {key: tf.reverse(value, axis=[2]) for key, value in feed.items()}
        return tf.concat([
            (_as_float32(model(feed, training=False))
             + tf.reverse(_as_float32(model(mirrored, training=False)), axis=[2])) / 2.0
            for model in self.models
        ], axis=-1)

    def vote(self, fold_probabilities) -> tuple:
        """``(votes int32 [..., 1], mask uint8 [..., 1])`` of K probability maps on the last axis."""
        votes = tf.reduce_sum(tf.cast(fold_probabilities > self.threshold, tf.int32), axis=-1, keepdims=True)
        return votes, tf.cast(preprocessing.majority(votes, self.num_models), tf.uint8)

    def segment(self, images: dict) -> dict:
        """The serving outputs for normalised float32 images at the model size."""
        fold_probabilities = self.fold_probabilities(images)
        votes, mask = self.vote(fold_probabilities)
        return {
            "probability": tf.reduce_mean(fold_probabilities, axis=-1, keepdims=True),
            "fold_probabilities": fold_probabilities,
            "votes": votes,
            "mask": mask,
        }


class ClassifierEnsemble:
    """The K fold classifiers on cropped inputs, averaged (§3.3).

    Args:
        models: the fold models, each mapping its inputs (``bmode`` float32 [N, C, C, 1],
            ``semode`` float32 [N, C, C, 3], values in [0, 1], for the availability models
            ``availability`` float32 [N, 2], and for a classifier with a context crop
            ``<modality>_context`` of the modality's shape) to a dict whose ``decision`` is the
            softmax [N, 2] (benign, malignant).
        input_names: the inputs the models read.
        input_size: C.
        fold_thresholds: each fold's Youden threshold; the ensemble's is their mean.
    """

    def __init__(self, models, input_names, input_size: int, fold_thresholds):
        if not models or len(models) != len(fold_thresholds):
            raise ValueError(
                f"ClassifierEnsemble: needs one threshold per fold model, got {len(models)} models and "
                f"{len(fold_thresholds)} thresholds"
            )
        unknown = sorted(name for name in input_names if name != AVAILABILITY and input_modality(name) is None)
        if unknown:
            raise ValueError(f"ClassifierEnsemble: unknown inputs {unknown}")
        self.models = list(models)
        self.input_names = tuple(input_names)
        self.input_size = int(input_size)
        self.fold_thresholds = tuple(float(t) for t in fold_thresholds)
        self.threshold = float(sum(self.fold_thresholds) / len(self.fold_thresholds))
        self.num_models = len(self.models)

    @property
    def image_inputs(self) -> tuple:
        """The image inputs, in order (``("bmode", "semode")``, ``("bmode", "bmode_context")``)."""
        return tuple(name for name in self.input_names if name != AVAILABILITY)

    @property
    def modalities(self) -> tuple:
        """The modalities the models read, in ``MODALITY_CHANNELS`` order."""
        read = {input_modality(name) for name in self.image_inputs}
        return tuple(modality for modality in MODALITY_CHANNELS if modality in read)

    @property
    def context(self) -> bool:
        """Whether the models also read a wider context crop (``<modality>_context``)."""
        return any(name.endswith(CONTEXT_SUFFIX) for name in self.image_inputs)

    def input_specs(self) -> list:
        """Named TensorSpecs of the models' inputs, batch first."""
        specs = []
        for key in self.input_names:
            if key == AVAILABILITY:
                specs.append(tf.TensorSpec([None, len(MODALITY_CHANNELS)], tf.float32, name=key))
            else:
                specs.append(tf.TensorSpec([None, self.input_size, self.input_size,
                                            MODALITY_CHANNELS[input_modality(key)]], tf.float32, name=key))
        return specs

    def fold_probabilities(self, inputs: dict) -> tf.Tensor:
        """float32 [N, K]: each fold model's probability of malignancy."""
        feed = {key: inputs[key] for key in self.input_names}
        return tf.stack(
            [_as_float32(model(feed, training=False)["decision"])[:, 1] for model in self.models], axis=-1
        )

    def classify(self, inputs: dict) -> dict:
        """The serving outputs for classifier inputs at the input size."""
        fold_probabilities = self.fold_probabilities(inputs)
        probability = tf.reduce_mean(fold_probabilities, axis=-1)
        threshold = tf.constant(self.threshold, tf.float32)
        return {
            "p_malignant": probability,
            "fold_p_malignant": fold_probabilities,
            "label": tf.cast(probability >= threshold, tf.int32),
            "threshold": tf.identity(threshold),
        }


class SegmenterServing(tf.Module):
    """The saved segmenter: a :class:`SegmenterEnsemble` behind serving signatures.

    Serving functions (inputs named as the models' inputs, S the model size, K the folds):
        ``serve(bmode uint8 [N, S, S, 1], semode uint8 [N, S, S, 3])``: 8-bit images at the
        model size, normalised as in training (``x / 255``);
        ``serve_float(...)``: the same with float32 images already in [0, 1].
        Both return ``probability`` float32 [N, S, S, 1] (mean of the folds),
        ``fold_probabilities`` float32 [N, S, S, K], ``votes`` int32 [N, S, S, 1] (fold models
        marking the pixel) and ``mask`` uint8 [N, S, S, 1] (the fold union, 0/1).
    """

    def __init__(self, ensemble: SegmenterEnsemble, name: str = "segmenter"):
        super().__init__(name=name)
        self.models = list(ensemble.models)
        self.model_variables = _all_variables(self.models)
        self._ensemble = ensemble
        size = ensemble.model_size

        def specs(dtype):
            return [tf.TensorSpec([None, size, size, MODALITY_CHANNELS[key]], dtype, name=key)
                    for key in ensemble.input_names]

        self.serve = _signature_function(
            lambda images: ensemble.segment({key: preprocessing.normalize_image(v) for key, v in images.items()}),
            specs(tf.uint8),
        )
        self.serve_float = _signature_function(ensemble.segment, specs(tf.float32))


class ClassifierServing(tf.Module):
    """The saved classifier: a :class:`ClassifierEnsemble` behind a serving signature.

    ``serve`` (inputs named as the models', C the input size, K the folds; images float32 in
    [0, 1] as the training pipeline feeds them, ``availability`` [N, 2] for the MFF) returns
    ``p_malignant`` float32 [N] (mean over the folds of ``decision[:, 1]``),
    ``fold_p_malignant`` float32 [N, K], ``label`` int32 [N] (1 malignant if
    ``p_malignant >= threshold``) and ``threshold`` float32 [].
    """

    def __init__(self, ensemble: ClassifierEnsemble, name: str = "classifier"):
        super().__init__(name=name)
        self.models = list(ensemble.models)
        self.model_variables = _all_variables(self.models)
        self._ensemble = ensemble
        self.serve = _signature_function(ensemble.classify, ensemble.input_specs())


class CADPipeline(tf.Module):
    """Raw B-mode (+ SE-mode) images in, lesion mask, crop box and diagnosis out (§3.1-§3.3).

    The chain of the paper, with all preprocessing in the graph
    (:mod:`tf_bimodal.export.preprocessing`): the images are made grey (B-mode) and RGB
    (SE-mode), resized to the segmenter's size and normalised; the fold segmenters'
    probabilities are resized back to the input size, thresholded and voted (fold union); the
    crop box is the mask's bounding box plus the paper's 50 px margin at 336 px scaled to each
    side of the input; the images are cut to it and resized to the classifier's input size;
    the fold classifiers' probabilities are averaged and compared with the mean Youden
    threshold. An empty mask (no lesion found) gives the whole image as the crop, as in
    training (:mod:`tf_bimodal.data.cropping`); the ``box`` output then is ``[0, 0, H, W]``
    and ``mask`` is all zero, so a caller can tell. A classifier with a context crop
    (``ClassificationConfig.context_margin``, the linear read-out's) also gets the same images
    cut to the mask's box grown by ``context_margin`` (at ``reference_size``, scaled per axis
    like the margin): its ``<modality>_context`` inputs.

    **B-mode-only pipelines** (:attr:`modalities` ``("bmode",)``): when neither the segmenter
    (``unet_bmode``) nor the classifier (``vgg16_bmode``, with or without a context crop) reads
    SE-mode, every serving function takes the B-mode image alone: ``serve(bmode)``,
    ``serve_batch(bmode)``, and ``serve_bmode_only`` / ``serve_bmode_only_batch`` are the same
    functions under the names a bimodal pipeline gives them; ``availability`` is ``[1, 0]``.

    **B-mode-only cases of a bimodal pipeline** (a missing modality, §3.3.1; BUSI has no
    SE-mode image): the classifier gets a zero SE-mode image and ``availability`` ``[1, 0]``, as
    the experiments feed a missing SE-mode image (:mod:`tf_bimodal.data.inputs`,
    :func:`tf_bimodal.experiments.bmode_only.evaluate_bmode_only`), so EmbraceNet fuses
    B-mode features alone. A segmenter that reads the SE-mode image (W-MM-U-Net, MM-U-Net)
    was never trained without one, and the protocol refuses to run it on B-mode-only data
    (:func:`tf_bimodal.experiments.segmentation.check_modalities`); it is therefore not run:
    ``segmented`` is False, ``mask`` and ``lesion_probability`` are zero and the crop is the
    whole image (the rule for an empty mask). A B-mode segmenter (``unet_bmode``) runs as
    usual. Only a classifier that can classify without SE-mode (one with an ``availability``
    input, or one that reads B-mode alone) gets the B-mode-only functions; see
    ``serves_bmode_only``.

    Args:
        segmenter: a :class:`SegmenterEnsemble`.
        classifier: a :class:`ClassifierEnsemble`.
        crop: cut the images to the lesion box (classifiers trained on crops) or not
            (``crop="none"`` runs, trained on full images: the box is always the whole image).
        margin, reference_size: the margin in pixels at ``reference_size`` (default
            ``CropConfig.margin`` at ``DEFAULT_IMAGE_SIZE``: the paper's 50 px at 336 px, §3.1).
        context_margin: the context crop's margin in pixels at ``reference_size``; required
            exactly when the classifier reads ``<modality>_context`` inputs (and ``crop``).

    Serving functions (all inputs uint8, of any size; a B-mode image grey ``[H, W]`` or
    ``[H, W, 1]``, or grey stored as RGB ``[H, W, 3]`` or RGBA ``[H, W, 4]``, made grey with
    OpenCV's luminance rule; an SE-mode image RGB ``[H, W, 3]`` or RGBA ``[H, W, 4]``; alpha
    is dropped):
        ``serve(bmode, semode)`` (``serve(bmode)`` in a B-mode-only pipeline), one case,
        returns ``mask`` uint8 [H, W],
        ``lesion_probability`` float32 [H, W] (mean of the fold segmenters), ``box`` int32 [4]
        ``[y0, x0, y1, x1]`` (ends exclusive), ``p_malignant`` float32 [],
        ``fold_p_malignant`` float32 [K], ``label`` int32 [], ``threshold`` float32 [],
        ``availability`` float32 [2] (the modalities of the case, ``[B-mode, SE-mode]``, 1
        given and 0 missing, as the classifier's ``availability`` input gets them: ``[1, 1]``
        for a pair) and ``segmented`` bool [] (whether the segmenter ran);
        ``serve_batch(bmode [N, H, W(, C)], semode [N, H, W, C])``, cases of one size,
        returns the same with a leading N;
        ``serve_bmode_only(bmode)`` and ``serve_bmode_only_batch(bmode [N, H, W(, C)])``: the
        same outputs for B-mode-only cases, ``availability`` ``[1, 0]`` (see above); defined
        only when ``serves_bmode_only``.
        Malformed inputs raise ``InvalidArgumentError`` naming the input and the rule
        (:func:`~tf_bimodal.export.preprocessing.check_pair`); other dtypes than uint8 are
        refused by the signatures. :meth:`serving_signatures` gives the functions to save.

    Raises:
        ValueError: ``context_margin`` given for a classifier without context inputs, or
            missing for one with them, or given with ``crop=False``.
    """

    def __init__(self, segmenter: SegmenterEnsemble, classifier: ClassifierEnsemble, crop: bool = True,
                 margin: int = CropConfig.margin, reference_size: int = DEFAULT_IMAGE_SIZE,
                 context_margin: int | None = None, name: str = "cad_pipeline"):
        super().__init__(name=name)
        if classifier.context != (context_margin is not None) or (context_margin is not None and not crop):
            raise ValueError(
                f"CADPipeline: context_margin={context_margin!r} with crop={crop} for a classifier with inputs "
                f"{classifier.input_names}: a context crop needs a classifier with <modality>_context inputs, "
                "cropped inputs, and a context_margin"
            )
        # The models are tracked (saved); the ensembles are plain objects, not saved themselves.
        self.segmenter_models = list(segmenter.models)
        self.classifier_models = list(classifier.models)
        self.model_variables = _all_variables(self.segmenter_models + self.classifier_models)
        self.segmenter = segmenter
        self.classifier = classifier
        self.crop = bool(crop)
        self.margin = int(margin)
        self.reference_size = int(reference_size)
        self.context_margin = None if context_margin is None else int(context_margin)
        read = {*segmenter.input_names, *classifier.modalities}
        self.modalities = tuple(modality for modality in MODALITY_CHANNELS if modality in read)
        self.bmode_only = self.modalities == ("bmode",)
        self.serves_bmode_only = AVAILABILITY in classifier.input_names or "semode" not in classifier.modalities
        bmode_spec = tf.TensorSpec(None, tf.uint8, name="bmode")
        if self.bmode_only:
            self.serve = tf.function(self._serve_bmode, input_signature=[bmode_spec], autograph=False)
            self.serve_batch = tf.function(self._serve_bmode_batch, input_signature=[bmode_spec], autograph=False)
            self.serve_bmode_only, self.serve_bmode_only_batch = self.serve, self.serve_batch
            return
        pair = [bmode_spec, tf.TensorSpec(None, tf.uint8, name="semode")]
        self.serve = tf.function(self._serve, input_signature=pair, autograph=False)
        self.serve_batch = tf.function(self._serve_batch, input_signature=pair, autograph=False)
        if self.serves_bmode_only:
            self.serve_bmode_only = tf.function(self._serve_bmode_only, input_signature=[bmode_spec],
                                                autograph=False)
            self.serve_bmode_only_batch = tf.function(self._serve_bmode_only_batch, input_signature=[bmode_spec],
                                                      autograph=False)

    def serving_signatures(self) -> dict:
        """``{signature name: function}`` for ``tf.saved_model.save(..., signatures=...)``.

        ``serving_default`` (one case) and ``serve_batch``, and where the classifier can do
        without SE-mode ``serve_bmode_only`` and ``serve_bmode_only_batch``. In a B-mode-only
        pipeline all four take the B-mode image alone.
        """
        signatures = {"serving_default": self.serve, "serve_batch": self.serve_batch}
        if self.serves_bmode_only:
            signatures |= {"serve_bmode_only": self.serve_bmode_only,
                           "serve_bmode_only_batch": self.serve_bmode_only_batch}
        return signatures

    @staticmethod
    def _unbatch(outputs: dict) -> dict:
        return {key: value if key == "threshold" else value[0] for key, value in outputs.items()}

    def _serve(self, bmode, semode):
        bmode, semode = preprocessing.check_pair(bmode, semode, where="cad_pipeline.serve")
        return self._unbatch(self.diagnose(bmode[tf.newaxis], semode[tf.newaxis]))

    def _serve_batch(self, bmode, semode):
        bmode, semode = preprocessing.check_batch(bmode, semode, where="cad_pipeline.serve_batch")
        return self.diagnose(bmode, semode)

    def _serve_bmode_only(self, bmode, where: str = "cad_pipeline.serve_bmode_only"):
        bmode = preprocessing.check_bmode(bmode, where=where)
        return self._unbatch(self.diagnose(bmode[tf.newaxis], None))

    def _serve_bmode_only_batch(self, bmode, where: str = "cad_pipeline.serve_bmode_only_batch"):
        bmode = preprocessing.check_bmode_batch(bmode, where=where)
        return self.diagnose(bmode, None)

    def _serve_bmode(self, bmode):
        return self._serve_bmode_only(bmode, where="cad_pipeline.serve")

    def _serve_bmode_batch(self, bmode):
        return self._serve_bmode_only_batch(bmode, where="cad_pipeline.serve_batch")

    def _crop_one(self, images: dict, mask, margins: dict) -> tuple:
        """``({classifier input: crop}, box)`` of one case: the lesion crop of each image the
        classifier reads, and the context crop of its ``<modality>_context`` inputs."""
        height, width = tf.shape(mask)[0], tf.shape(mask)[1]
        if self.crop:
            boxes = {key: preprocessing.lesion_box(mask, *margin) for key, margin in margins.items()}
        else:
            boxes = {"lesion": tf.stack([0, 0, height, width])}
        size = self.classifier.input_size
        crops = {}
        for key in self.classifier.image_inputs:
            box = boxes["context" if key.endswith(CONTEXT_SUFFIX) else "lesion"]
            crops[key] = preprocessing.crop_and_resize(
                preprocessing.normalize_image(images[input_modality(key)]), box, size)
        return crops, boxes["lesion"]

    def _segment(self, images: dict) -> tuple:
        """``(fold probabilities float32 [N, H, W, K], segmented)`` at the input size; zero and
        False when the segmenter needs the missing SE-mode image."""
        segmenter = self.segmenter
        height, width = tf.shape(images["bmode"])[1], tf.shape(images["bmode"])[2]
        if images["semode"] is None and "semode" in segmenter.input_names:
            shape = tf.stack([tf.shape(images["bmode"])[0], height, width, segmenter.num_models])
            return tf.zeros(shape, tf.float32), False
        model_inputs = {key: preprocessing.to_model_input(images[key], segmenter.model_size)
                        for key in segmenter.input_names}
        fold_probabilities = tf.image.resize(
            segmenter.fold_probabilities(model_inputs), tf.stack([height, width]), method="bilinear"
        )
        return fold_probabilities, True

    def _margins(self, height, width) -> dict:
        """``{"lesion": (y, x)}`` margins at this input size, and ``"context"`` with a context crop."""
        margins = {"lesion": (scaled_margin(height, self.margin, self.reference_size),
                              scaled_margin(width, self.margin, self.reference_size))}
        if self.context_margin is not None:
            margins["context"] = (scaled_margin(height, self.context_margin, self.reference_size),
                                  scaled_margin(width, self.context_margin, self.reference_size))
        return margins

    def diagnose(self, bmode, semode=None) -> dict:
        """The chain on checked uint8 batches ``[N, H, W, 1]`` and ``[N, H, W, 3]``.

        ``semode=None`` is a B-mode-only batch: a classifier that reads SE-mode gets a zero
        SE-mode image and availability ``[1, 0]``, and a segmenter that reads SE-mode is not
        run (see the class docstring).
        """
        batch, height, width = tf.shape(bmode)[0], tf.shape(bmode)[1], tf.shape(bmode)[2]
        fold_probabilities, segmented = self._segment({"bmode": bmode, "semode": semode})
        _, mask = self.segmenter.vote(fold_probabilities)
        mask = mask[..., 0]
        semode_available = semode is not None
        images = {"bmode": bmode}
        if "semode" in self.classifier.modalities:
            images["semode"] = semode if semode_available else tf.zeros(
                tf.stack([batch, height, width, MODALITY_CHANNELS["semode"]]), tf.uint8)
        margins = self._margins(height, width)
        size = self.classifier.input_size
        if bmode.shape[0] == 1:
            crops, box = self._crop_one({key: value[0] for key, value in images.items()}, mask[0], margins)
            crops, boxes = {key: value[tf.newaxis] for key, value in crops.items()}, box[tf.newaxis]
        else:
            crops, boxes = tf.map_fn(
                lambda case: self._crop_one(case[0], case[1], margins),
                (images, mask),
                fn_output_signature=(
                    {key: tf.TensorSpec([size, size, MODALITY_CHANNELS[input_modality(key)]], tf.float32)
                     for key in self.classifier.image_inputs},
                    tf.TensorSpec([4], tf.int32),
                ),
            )
        used = [[float(key == "bmode" or semode_available) for key in MODALITY_CHANNELS]]
        availability = tf.tile(tf.constant(used, tf.float32), tf.stack([batch, 1]))
        diagnosis = self.classifier.classify({**crops, AVAILABILITY: availability})
        return {
            "mask": mask,
            "lesion_probability": tf.reduce_mean(fold_probabilities, axis=-1),
            "box": boxes,
            **diagnosis,
            AVAILABILITY: availability,
            "segmented": tf.fill(tf.reshape(batch, [1]), segmented),
        }
