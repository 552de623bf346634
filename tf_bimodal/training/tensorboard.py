"""TensorBoard logs of every fold and of the grid search (issue: delivery).

Every fold of :func:`~tf_bimodal.experiments.segmentation.run_segmentation` and
:func:`~tf_bimodal.experiments.classification.run_classification` logs into its own folder,
one TensorBoard *run* per sub-folder, under a folder of the process that wrote them (its
start time and pid, :data:`INVOCATION`), so that two runs never share a folder::

    <fold_dir>/tensorboard/<YYYYmmdd-HHMMSS>-pid<pid>/
        train/               epoch_loss, epoch_<metric> (e.g. epoch_dice), epoch_learning_rate
        validation/          epoch_loss, epoch_<metric>, evaluation_<name>_vs_iterations
        validation_samples/  segmentation: predicted_masks (images, every
                             RuntimeConfig.image_every epochs and at the last one) and
                             modality_weights/<path> (scalars, every epoch; multimodal models)
        test/                classification, at the end of the fold: roc_curve and
                             confusion_matrix (images), roc_auc, threshold, sensitivity,
                             specificity, accuracy (scalars), confusion_matrix_counts (text)

and the grid search (§3.4, Table S4) writes the HParams dashboard of each model::

    <output>/grid_search/tensorboard/<model>/                 the grid (hparams_config)
    <output>/grid_search/tensorboard/<model>/setting_<nn>_.../ one setting: its hparams, val_dice

Epochs are TensorBoard steps counted from 0, as ``keras.callbacks.TensorBoard`` counts them.
In a multi-worker run only the chief writes
(:func:`~tf_bimodal.training.runtime.is_chief`). Open the logs with
``tensorboard --logdir <output>``.
"""

from __future__ import annotations

import glob
import io
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tf_bimodal.config import RuntimeConfig
from tf_bimodal.data import pipeline
from tf_bimodal.evaluation.classification import roc_points
from tf_bimodal.evaluation.figures import draw_roc_curves
from tf_bimodal.training import runtime as runtime_lib

LOG_DIR = "tensorboard"
"""The folder, inside a fold's folder, that holds its TensorBoard runs."""

INVOCATION = f"{time.strftime('%Y%m%d-%H%M%S')}-pid{os.getpid()}"
"""This process's sub-folder of every fold's ``tensorboard/`` (:func:`fold_log_dir`): two runs
never write into one folder, and a fold resumed by a later run shows as a run of its own."""


def fold_log_dir(fold_dir: str) -> str:
    """``<fold_dir>/tensorboard/<start time>-pid<pid>``: where this process logs a fold."""
    return os.path.join(fold_dir, LOG_DIR, INVOCATION)

SAMPLES_RUN = "validation_samples"
TEST_RUN = "test"

MAX_IMAGES = 3
"""Validation images shown with their predicted masks."""

MAX_WEIGHT_IMAGES = 8
"""Validation images the mean modality weights are taken over (kept small: every epoch)."""


def _writes(runtime: RuntimeConfig | None) -> bool:
    """Whether to write: ``runtime.tensorboard``, and this process is the chief worker."""
    runtime = runtime or RuntimeConfig()
    return runtime.tensorboard and runtime_lib.is_chief(runtime)


def _fresh_writer(log_dir: str):
    """A summary writer on ``log_dir`` with its earlier event files removed, so that a run
    written again replaces, rather than repeats, what it wrote before."""
    os.makedirs(log_dir, exist_ok=True)
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        os.remove(path)
    return tf.summary.create_file_writer(log_dir)


# --------------------------------------------------------------------------- the fold callbacks


def fold_callbacks(runtime: RuntimeConfig | None, fold_dir: str, kind: str, **context) -> list:
    """TensorBoard callbacks of one fold, writing to :func:`fold_log_dir` (see the module).

    Both kinds log the training and validation loss and metrics of every epoch
    (``keras.callbacks.TensorBoard``, no graph, no profiling). Segmentation adds a
    :class:`SegmentationSamples` callback when ``val_inputs`` and ``val_masks`` are given.

    Args:
        runtime: the ``RuntimeConfig``; nothing is logged when ``runtime.tensorboard`` is
            False, nor on a worker other than the chief.
        fold_dir: the fold's folder.
        kind: ``"segmentation"`` or ``"classification"``.
        context: segmentation: ``val_inputs`` (``{input key: uint8 N x S x S x C}``, the
            fold's validation images at model size), ``val_masks`` (uint8 N x S x S x 1);
            ``model`` is accepted and unused (Keras hands the callbacks the model).

    Returns:
        The callbacks to add to the fold's ``fit`` (empty when nothing is logged).
    """
    if kind not in ("segmentation", "classification"):
        raise ValueError(f"fold_callbacks: kind must be 'segmentation' or 'classification', got {kind!r}")
    runtime = runtime or RuntimeConfig()
    if not _writes(runtime):
        return []
    log_dir = fold_log_dir(fold_dir)
    callbacks = [
        keras.callbacks.TensorBoard(log_dir, write_graph=False, update_freq="epoch", profile_batch=0)
    ]
    val_inputs, val_masks = context.get("val_inputs"), context.get("val_masks")
    if kind == "segmentation" and val_inputs and val_masks is not None and len(val_masks):
        callbacks.append(
            SegmentationSamples(os.path.join(log_dir, SAMPLES_RUN), val_inputs, val_masks, runtime.image_every)
        )
    return callbacks


def _spread(count: int, wanted: int) -> np.ndarray:
    """``min(count, wanted)`` indices spread evenly over ``range(count)``, first and last included."""
    return np.unique(np.round(np.linspace(0, count - 1, min(count, wanted))).astype(np.int64))


def _rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (N, S, S, 1 or 3) as uint8 RGB."""
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def mask_panels(inputs: dict, masks: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """One uint8 RGB strip per image: B-mode | SE-mode | ground truth | predicted probability.

    Args:
        inputs: ``{"bmode"?: uint8 (N, S, S, 1), "semode"?: uint8 (N, S, S, 3)}``; the panels
            of the images present, B-mode first.
        masks: the ground truth, (N, S, S, 1) in {0, 1}.
        probabilities: the model's lesion probabilities, (N, S, S, 1) in [0, 1].

    Returns:
        uint8 (N, S, P * S + 2 * (P - 1), 3), the P panels separated by 2-pixel grey bars.
    """
    panels = [_rgb(inputs[key]) for key in pipeline.IMAGE_KEYS if key in inputs]
    panels.append(_rgb((np.asarray(masks) > 0).astype(np.uint8) * 255))
    panels.append(_rgb(np.clip(np.round(np.asarray(probabilities, np.float32) * 255), 0, 255).astype(np.uint8)))
    bar = np.full((*panels[0].shape[:2], 2, 3), 128, np.uint8)
    strip = [panels[0]]
    for panel in panels[1:]:
        strip += [bar, panel]
    return np.concatenate(strip, axis=2)


class SegmentationSamples(keras.callbacks.Callback):
    """Predicted masks and modality weights of a few fixed validation images, in TensorBoard.

    Every ``image_every`` epochs, at the last epoch of the fit and at the epoch early
    stopping ends it, writes the image summary ``predicted_masks``: up to :data:`MAX_IMAGES`
    validation images (spread over the validation part), each a strip B-mode | SE-mode (for
    models that read it) | ground truth | predicted lesion probability (black 0, white 1).
    For models whose ``modality_weights_model`` is not None (the multimodal U-Nets; the auto
    weights of W-MM-U-Net, §3.2.3), writes every epoch the mean weight of each modal path
    over up to :data:`MAX_WEIGHT_IMAGES` validation images as ``modality_weights/<path>``
    (path names from ``model.path_names``).

    Images are normalised as the training pipeline does (:func:`~tf_bimodal.data.pipeline.normalize`)
    and predicted with ``training=False``. Put this callback after early stopping in the
    fit's list, so that it sees the stop at the epoch it is decided.

    Args:
        log_dir: the run folder (``<fold_dir>/tensorboard/validation_samples``).
        val_inputs: ``{input key: uint8 (N, S, S, C)}``, the model's inputs.
        val_masks: uint8 (N, S, S, 1), the ground truth of the same images.
        image_every: epochs between two image summaries (``RuntimeConfig.image_every``).
    """

    def __init__(self, log_dir: str, val_inputs: dict, val_masks, image_every: int = 5):
        super().__init__()
        if image_every < 1:
            raise ValueError(f"SegmentationSamples: image_every must be >= 1, got {image_every}")
        count = len(val_masks)
        if count == 0 or any(len(images) != count for images in val_inputs.values()):
            raise ValueError(
                "SegmentationSamples: val_inputs and val_masks must hold the same, non-zero number of images, "
                f"got {count} masks and {({key: len(images) for key, images in val_inputs.items()})}"
            )
        self.log_dir = log_dir
        self.image_every = int(image_every)
        shown, weighed = _spread(count, MAX_IMAGES), _spread(count, MAX_WEIGHT_IMAGES)
        self.raw_inputs = {key: np.asarray(images)[shown] for key, images in val_inputs.items()}
        self.masks = np.asarray(val_masks)[shown]
        self.shown_inputs = _model_inputs(self.raw_inputs)
        self.weighed_inputs = _model_inputs({key: np.asarray(images)[weighed] for key, images in val_inputs.items()})
        self._writer = None
        self._weights_model = None
        self._path_names = None

    def on_train_begin(self, logs=None):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        self._weights_model = getattr(self.model, "modality_weights_model", None)
        if self._weights_model is not None:
            names = getattr(self.model, "path_names", None)
            count = int(self._weights_model.output.shape[-1])
            self._path_names = list(names) if names is not None else [f"path{p + 1}" for p in range(count)]

    def on_epoch_end(self, epoch, logs=None):
        with self._writer.as_default():
            if self._weights_model is not None:
                weights = np.asarray(self._weights_model(self.weighed_inputs, training=False), np.float32)
                for name, value in zip(self._path_names, weights.mean(axis=0)):
                    tf.summary.scalar(f"modality_weights/{name}", float(value), step=epoch)
            last = epoch + 1 >= self.params.get("epochs", epoch + 1) or self.model.stop_training
            if (epoch + 1) % self.image_every == 0 or last:
                self._write_images(epoch)
        self._writer.flush()

    def _write_images(self, epoch):
        probabilities = np.asarray(self.model(self.shown_inputs, training=False), np.float32)
        strips = mask_panels(self.raw_inputs, self.masks, probabilities)
        panels = " | ".join([*(k for k in pipeline.IMAGE_KEYS if k in self.raw_inputs), "ground truth", "prediction"])
        tf.summary.image(
            "predicted_masks", strips, step=epoch, max_outputs=len(strips),
            description=f"Fixed validation images, each {panels} (predicted lesion probability, black 0, white 1).",
        )

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _model_inputs(arrays: dict) -> dict:
    """uint8 images as the model takes them: float32 in [0, 1], as the training pipeline feeds them."""
    normalized = pipeline.normalize({key: tf.convert_to_tensor(images) for key, images in arrays.items()})
    return {key: normalized[key] for key in arrays}


# --------------------------------------------------------------------------- end of a classification fold


def _figure_image(figure) -> tf.Tensor:
    """A matplotlib figure as a uint8 (1, H, W, 4) tensor, for ``tf.summary.image``."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return tf.image.decode_png(buffer.getvalue(), channels=4)[tf.newaxis]


def write_fold_summary(fold_dir: str, labels, probabilities, threshold: float,
                       runtime: RuntimeConfig | None = None, title: str = "test images") -> str | None:
    """The end of a classification fold in TensorBoard: ROC curve and confusion matrix (§3.3.1, §3.4).

    Writes into ``<fold_dir>/tensorboard/<invocation>/test`` (:func:`fold_log_dir`; replacing
    what an earlier write of this process left there),
    at step 0: the image-wise ROC curve of ``probabilities`` against ``labels`` with its AUC
    and the operating point of ``threshold`` (``roc_curve``, image; ``roc_auc``, scalar, when
    both classes are present), and the confusion matrix at ``threshold`` (malignant where
    ``p >= threshold``, as :func:`~tf_bimodal.evaluation.classification.predict_labels`):
    ``confusion_matrix`` (image), ``confusion_matrix_counts`` (markdown text), and the scalars
    ``threshold``, ``sensitivity``, ``specificity``, ``accuracy``.

    Args:
        fold_dir: the fold's folder.
        labels: 0/1 true classes (1 malignant) of the images.
        probabilities: their probabilities of malignancy.
        threshold: the fold's decision threshold (the Youden threshold of its validation images).
        runtime: the ``RuntimeConfig``; nothing is written when ``runtime.tensorboard`` is False
            or on a worker other than the chief.
        title: what the images are, for the figure titles.

    Returns:
        The run folder written, or None when nothing was written.
    """
    if not _writes(runtime):
        return None
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    probabilities = np.asarray(probabilities, np.float64).reshape(-1)
    predicted = (np.asarray(probabilities) >= threshold).astype(np.int64)  # malignant at p >= threshold
    counts = np.array([[np.sum((labels == truth) & (predicted == guess)) for guess in (0, 1)] for truth in (0, 1)])
    (tn, fp), (fn, tp) = counts
    roc = roc_points(labels, probabilities)

    log_dir = os.path.join(fold_log_dir(fold_dir), TEST_RUN)
    writer = _fresh_writer(log_dir)
    with writer.as_default():
        tf.summary.image("roc_curve", _roc_image(roc, counts, threshold, title), step=0,
                         description=f"Image-wise ROC curve of the {title}; red: the decision threshold.")
        tf.summary.image("confusion_matrix", _confusion_matrix_image(counts, threshold, title), step=0,
                         description=f"Image-wise confusion matrix of the {title} at the decision threshold.")
        tf.summary.text(
            "confusion_matrix_counts",
            f"threshold {threshold:.4f} (malignant if p >= threshold), {title}\n\n"
            "| true \\ predicted | benign | malignant |\n|---|---|---|\n"
            f"| benign | {tn} | {fp} |\n| malignant | {fn} | {tp} |",
            step=0,
        )
        if roc is not None:
            tf.summary.scalar("roc_auc", roc.auc, step=0)
        tf.summary.scalar("threshold", float(threshold), step=0)
        for name, numerator, denominator in (("sensitivity", tp, tp + fn), ("specificity", tn, tn + fp),
                                             ("accuracy", tp + tn, counts.sum())):
            if denominator:
                tf.summary.scalar(name, numerator / denominator, step=0)
    writer.close()
    return log_dir


def _roc_image(roc, counts, threshold: float, title: str):
    """The ROC curve (:func:`~tf_bimodal.evaluation.figures.draw_roc_curves`) with the
    operating point of ``threshold``, the rates of the confusion ``counts``, as an image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (tn, fp), (fn, tp) = counts
    figure, axes = plt.subplots(figsize=(4.5, 4.2))
    point = (fp / max(fp + tn, 1), tp / max(tp + fn, 1), f"threshold {threshold:.3f}")
    draw_roc_curves(axes, {"": roc}, f"ROC, {title}", operating_point=point, auc_digits=3, legend_fontsize=8)
    figure.tight_layout()
    return _figure_image(figure)


def _confusion_matrix_image(counts, threshold: float, title: str):
    """The 2 x 2 confusion ``counts`` (true rows, predicted columns) as an image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(3.8, 3.4))
    axes.imshow(counts, cmap="Blues", vmin=0, vmax=max(int(counts.max()), 1))
    for (i, j), value in np.ndenumerate(counts):
        axes.text(j, i, str(int(value)), ha="center", va="center",
                  color="white" if value > counts.max() / 2 else "black", fontsize=12)
    axes.set_xticks([0, 1], ["benign", "malignant"])
    axes.set_yticks([0, 1], ["benign", "malignant"])
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"Confusion matrix, {title}\nthreshold {threshold:.3f}", fontsize=9)
    figure.tight_layout()
    return _figure_image(figure)


# --------------------------------------------------------------------------- the HParams dashboard


def write_hparams(log_dir: str, domains: dict, metrics: dict, sessions: list, runtime: RuntimeConfig | None = None):
    """One HParams experiment (TensorBoard's HParams dashboard) in ``log_dir``.

    Writes the experiment (``hparams_config``: the hyperparameters and their values, the
    metrics) into ``log_dir`` and one session per sub-folder: its hyperparameter values
    (``hparams``) and its metrics as scalars at step 0. Writing again replaces what an
    earlier write left (event files are removed first), so a resumed search shows each
    setting once.

    Args:
        log_dir: the experiment's folder.
        domains: ``{hyperparameter: the values searched}``, in display order.
        metrics: ``{metric tag: description}``.
        sessions: ``[(run name, {hyperparameter: value}, {metric tag: value or None})]``; a
            None metric (a failed setting) is left out.
        runtime: the ``RuntimeConfig``; nothing is written when ``runtime.tensorboard`` is
            False or on a worker other than the chief.

    Returns:
        ``log_dir``, or None when nothing was written.
    """
    if not _writes(runtime):
        return None
    from tensorboard.plugins.hparams import api as hp

    hparams = {name: hp.HParam(name, hp.Discrete(list(values))) for name, values in domains.items()}
    writer = _fresh_writer(log_dir)
    with writer.as_default():
        hp.hparams_config(
            hparams=list(hparams.values()),
            metrics=[hp.Metric(tag, description=description) for tag, description in metrics.items()],
        )
    writer.close()
    for run_name, values, scores in sessions:
        writer = _fresh_writer(os.path.join(log_dir, run_name))
        with writer.as_default():
            hp.hparams({hparams[name]: value for name, value in values.items()}, trial_id=run_name)
            for tag, value in scores.items():
                if value is not None:
                    tf.summary.scalar(tag, float(value), step=0)
        writer.close()
    return log_dir
