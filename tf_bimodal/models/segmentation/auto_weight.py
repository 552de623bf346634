"""The auto-weight stage of W-MM-U-Net (paper §1 contribution 3, §3.2.2, §4.1.1).

§3.2.2: "in the Auto-weight stage, we automatically searched weight to reflect the importance
of each modal before passing the input data through the MM-U-Net. Here, a classification
network (ResNet) is employed to find the most appropriate weights for each input. Input data
with four channels were passed through the ResNet model, and the weight vector with four
values was obtained." §1: "We use the classification network to obtain the weight vector
value showing the importance of each modal before utilizing it in the segmentation network."
Two readings are offered (``SegmentationConfig.auto_weight``):

``"prestage"`` (the ``paper`` preset), :class:`AutoWeightClassifier` and
:func:`input_channel_importance`: a stage *before* the segmenter, as the paper describes it.

* A small ResNet (He et al. 2016: a stem convolution, one basic residual block per stage,
  each halving the resolution, global average pooling) is trained per fold to tell benign
  from malignant, the paper's classification task, on the fold's training images; its input
  is the four modal inputs stacked as channels (B-mode, and the R, G, B channels of the SE
  image from the colour input processing, §3.2.1). The fold's validation images select its
  epoch. The test images are never used.
* One weight vector per fold is then read from the trained network by passing the training
  images through it: the weight of channel ``c`` is the mean over images and pixels of
  ``|d s / d x_c|``, with ``s = z_malignant - z_benign`` the network's log-odds of
  malignancy, normalised to sum 1 (:func:`prestage_weights`). This is the sensitivity of the
  classifier's decision to each modal input, its learned "importance of each modal". Read
  this way the weights use all the training images and are positive and smooth. The other
  candidate, the drop in validation accuracy when a channel is blanked, was set aside: with
  the paper's 34 validation images each accuracy is a multiple of 1/34, so drops of zero or
  below are common and do not normalise into weights, and a blanked channel is an input the
  network never saw. The absolute gradient, not gradient x input, is used because every modal
  input lies in [0, 1] but the SE colour channels are mostly 0 outside their colour class:
  gradient x input would weigh a channel by how often it is lit rather than by how much the
  decision depends on it.
* The vector is frozen and given to the segmenter's weighted skip as fixed weights
  (``MultimodalUNet(weighting="prestage")``, the same graph as the manual weights).

``"end_to_end"`` (the small presets), :func:`apply_auto_weight_resnet`: the ResNet is a branch
of the segmentation graph on the same stacked input, ending in a softmax of P weights per
image, trained by the segmentation loss through the weighted skip (§3.2.3); no class labels
are used and nothing is trained before the segmenter. Its logits layer starts at zero, so
training starts from equal weights (MM-U-Net). The model exposes the weights as its
``modality_weights`` layer; a run records their mean over each fold's test images.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tf_bimodal.layers.colour_input import COLOUR_MODES, ColourInputProcessing, modal_path_names
from tf_bimodal.layers.unet_blocks import check_image_size
from tf_bimodal.models.base import ConfiguredModel

PRESTAGE_CLASSES = ("benign", "malignant")
"""The pre-stage classifier's classes, label indices 0 and 1 (§3.2.2 uses the paper's task)."""

PRESTAGE_BATCH_NORM_MOMENTUM = 0.9
"""The pre-stage classifier's batch-normalization momentum: PyTorch's (ResNet's reference
framework), so the moving statistics its inference-mode gradients use settle within the
few dozen steps a fold's pre-stage trains (Keras' 0.99 needs hundreds)."""

PRESTAGE_RULE = (
    "auto-weight pre-stage (§3.2.2): a ResNet classifier (benign vs malignant) trained on the fold's training "
    "images (B-mode and the SE colour channels stacked), epoch chosen on its validation images; weight of each "
    "modal path = mean over the training images and pixels of |d(z_malignant - z_benign) / d input channel|, "
    "normalised to sum 1; one vector per fold, frozen in the weighted skip connection (§3.2.3)"
)
"""How the ``prestage`` weights are made, as a run records it."""


def apply_residual_block(x, filters: int, stride: int, use_batch_norm: bool, name: str,
                         batch_norm_momentum: float = 0.99):
    """A ResNet basic block (He et al. 2016): two 3x3 convolutions and a shortcut.

    When the shape changes, the shortcut is a ``stride`` x ``stride`` average pooling and a
    1x1 convolution (the "ResNet-D" shortcut of He et al. 2019, which also uses every input
    pixel rather than one in four). A strided 1x1 convolution, the original shortcut,
    corrupts the heap in the oneDNN CPU kernels of TensorFlow 2.21 when trained with odd
    batch sizes (such as a fold's last, partial batch). Layers ``{name}_conv1``,
    ``{name}_conv2``, ``{name}_shortcut_pool``, ``{name}_shortcut``, ``{name}_add``,
    ``{name}_out``. ``batch_norm_momentum``: of the moving statistics (Keras' 0.99 default;
    PyTorch's ResNets use 0.9 in these terms).
    """
    shortcut = x
    if stride != 1:
        shortcut = keras.layers.AveragePooling2D(stride, padding="same", name=f"{name}_shortcut_pool")(shortcut)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, use_bias=not use_batch_norm, name=f"{name}_shortcut")(shortcut)
        if use_batch_norm:
            shortcut = keras.layers.BatchNormalization(momentum=batch_norm_momentum, name=f"{name}_shortcut_bn")(
                shortcut
            )
    x = keras.layers.Conv2D(
        filters, 3, strides=stride, padding="same", use_bias=not use_batch_norm,
        kernel_initializer="he_normal", name=f"{name}_conv1",
    )(x)
    if use_batch_norm:
        x = keras.layers.BatchNormalization(momentum=batch_norm_momentum, name=f"{name}_bn1")(x)
    x = keras.layers.Activation("relu", name=f"{name}_relu1")(x)
    x = keras.layers.Conv2D(
        filters, 3, padding="same", use_bias=not use_batch_norm,
        kernel_initializer="he_normal", name=f"{name}_conv2",
    )(x)
    if use_batch_norm:
        x = keras.layers.BatchNormalization(momentum=batch_norm_momentum, name=f"{name}_bn2")(x)
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def apply_resnet_trunk(x, stackwise_num_filters, use_batch_norm: bool, name: str, batch_norm_momentum: float = 0.99):
    """The auto-weight ResNet up to its pooled features (§3.2.2).

    Layers: ``{name}_stem_conv`` (3x3, stride 2, ``stackwise_num_filters[0]`` filters),
    ``{name}_stage{s}_block1_*`` (one basic block per stage, stride 2), ``{name}_pool``
    (global average). Returns (batch, ``stackwise_num_filters[-1]``).
    ``batch_norm_momentum`` as in :func:`apply_residual_block`.
    """
    filters = list(stackwise_num_filters)
    x = keras.layers.Conv2D(
        filters[0], 3, strides=2, padding="same", use_bias=not use_batch_norm,
        kernel_initializer="he_normal", name=f"{name}_stem_conv",
    )(x)
    if use_batch_norm:
        x = keras.layers.BatchNormalization(momentum=batch_norm_momentum, name=f"{name}_stem_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_stem_relu")(x)
    for stage, stage_filters in enumerate(filters, start=1):
        x = apply_residual_block(
            x, stage_filters, 2, use_batch_norm, f"{name}_stage{stage}_block1", batch_norm_momentum
        )
    return keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)


def apply_auto_weight_resnet(
    stacked_inputs, num_weights: int, stackwise_num_filters, use_batch_norm: bool = True, name: str = "auto_weight"
):
    """The end-to-end auto-weight branch: stacked modal inputs -> (batch, num_weights) softmax.

    :func:`apply_resnet_trunk`, then ``{name}_logits`` (dense, zero-initialised) and
    ``modality_weights`` (softmax, float32).
    """
    x = apply_resnet_trunk(stacked_inputs, stackwise_num_filters, use_batch_norm, name)
    logits = keras.layers.Dense(
        num_weights, kernel_initializer="zeros", bias_initializer="zeros", dtype="float32", name=f"{name}_logits"
    )(x)
    return keras.layers.Softmax(dtype="float32", name="modality_weights")(logits)


@keras.saving.register_keras_serializable(package="tf_bimodal")
class AutoWeightClassifier(ConfiguredModel):
    """The auto-weight pre-stage classifier (§3.2.2): stacked modal inputs -> class logits.

    The inputs go through the colour input processing (§3.2.1, layers
    ``{input_name}_colour_processing``) and are stacked as P channels (layer
    ``auto_weight_input``: B-mode + SE R, G, B = the paper's four channels), then the
    ResNet of :func:`apply_resnet_trunk` (layers ``auto_weight_*``, batch-normalization
    momentum ``PRESTAGE_BATCH_NORM_MOMENTUM``) and a dense layer
    ``auto_weight_class_logits`` with one logit per class of ``PRESTAGE_CLASSES`` (float32).
    :attr:`path_names` names the stacked channels, as the segmenter names its paths.

    Args:
        input_names: the inputs, in order (example-dict keys); default ``("bmode", "semode")``.
        input_channels: channels of each input, 1 or 3; default ``(1, 3)``.
        colour_mode: ``"channels"`` (default, the paper) or ``"strain"``, as the segmenter.
        stackwise_num_filters: filters of the stem and of each stage; default ``(16, 32, 64)``.
        use_batch_norm: batch normalization after each convolution; default True.
        image_size: None (any size), an int or ``(height, width)``; any side works, the
            strided convolutions round up ("same" padding).

    Inputs: a list of float (batch, H, W, C_i) in [0, 1], or a dict keyed by ``input_names``.
    Output: (batch, 2) logits (benign, malignant), float32.
    """

    def __init__(
        self,
        input_names=("bmode", "semode"),
        input_channels=(1, 3),
        colour_mode: str = "channels",
        stackwise_num_filters=(16, 32, 64),
        use_batch_norm: bool = True,
        image_size=None,
        **kwargs,
    ):
        where = "AutoWeightClassifier"
        input_names = [str(name) for name in input_names]
        input_channels = [int(channels) for channels in input_channels]
        if not input_names or len(input_names) != len(input_channels):
            raise ValueError(
                f"{where}: needs one channel count per input and at least one input, got input_names={input_names} "
                f"and input_channels={input_channels}"
            )
        for channels in input_channels:
            ColourInputProcessing.check_channels(channels, where)
        if colour_mode not in COLOUR_MODES:
            raise ValueError(f"{where}: colour_mode must be one of {COLOUR_MODES}, got {colour_mode!r}")
        filters = [int(f) for f in stackwise_num_filters]
        if not filters or min(filters) < 1:
            raise ValueError(f"{where}: stackwise_num_filters needs >= 1 stage of >= 1 filters, got {filters}")
        size = check_image_size(image_size, 0, where) or (None, None)

        inputs = [
            keras.Input(shape=(*size, channels), name=name) for name, channels in zip(input_names, input_channels)
        ]
        paths = []
        for name, tensor in zip(input_names, inputs):
            paths.extend(ColourInputProcessing(mode=colour_mode, name=f"{name}_colour_processing")(tensor))
        if len(paths) == 1:
            stacked = keras.layers.Identity(name="auto_weight_input")(paths[0])
        else:
            stacked = keras.layers.Concatenate(name="auto_weight_input")(paths)
        features = apply_resnet_trunk(stacked, filters, use_batch_norm, "auto_weight", PRESTAGE_BATCH_NORM_MOMENTUM)
        logits = keras.layers.Dense(len(PRESTAGE_CLASSES), dtype="float32", name="auto_weight_class_logits")(features)
        kwargs.setdefault("name", "auto_weight_classifier")
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self._record_config(
            input_names=input_names, input_channels=input_channels, colour_mode=colour_mode,
            stackwise_num_filters=filters, use_batch_norm=bool(use_batch_norm),
            image_size=None if image_size is None else list(size),
        )
        self.path_names = modal_path_names(input_names, input_channels, colour_mode)


def input_channel_importance(classifier: AutoWeightClassifier, batches) -> np.ndarray:
    """Mean ``|d s / d x_c|`` per stacked input channel ``c`` over every image and pixel of
    ``batches`` (§3.2.2), ``s = z_malignant - z_benign`` the classifier's log-odds.

    Args:
        classifier: a trained :class:`AutoWeightClassifier`.
        batches: an iterable of input dicts (or ``(inputs, labels)`` pairs) of the
            classifier's inputs.

    Returns:
        float64 (P,) non-negative importances, in :attr:`AutoWeightClassifier.path_names`
        order.
    """
    stacked_tensor = classifier.get_layer("auto_weight_input").output
    stacker = keras.Model(classifier.inputs, stacked_tensor)
    head = keras.Model(stacked_tensor, classifier.output)
    total, count = None, 0
    for batch in batches:
        inputs = batch[0] if isinstance(batch, tuple) else batch
        inputs = {name: inputs[name] for name in classifier.input_names}
        stacked = tf.cast(stacker(inputs, training=False), tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(stacked)
            logits = tf.cast(head(stacked, training=False), tf.float32)
            # Samples do not interact at inference, so the gradient of the summed log-odds
            # holds each image's own gradient.
            log_odds = tf.reduce_sum(logits[:, 1] - logits[:, 0])
        gradient = tape.gradient(log_odds, stacked)
        part = tf.reduce_sum(tf.abs(gradient), axis=(0, 1, 2)).numpy().astype(np.float64)
        total = part if total is None else total + part
        count += int(np.prod(gradient.shape[:3]))
    if total is None:
        raise ValueError("input_channel_importance: batches held no image")
    return total / count


def prestage_weights(importance) -> list[float]:
    """Importances normalised to sum 1; a channel of zero importance keeps a floor of 1e-6
    of the total, so every weight stays > 0 as the weighted skip requires (§3.2.3)."""
    values = np.asarray(importance, dtype=np.float64).reshape(-1)
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0) or values.sum() <= 0:
        raise ValueError(f"prestage_weights: importances must be finite, >= 0 and not all 0, got {list(values)}")
    values = values / values.sum()
    values = np.maximum(values, 1e-6)
    return [float(v) for v in values / values.sum()]
