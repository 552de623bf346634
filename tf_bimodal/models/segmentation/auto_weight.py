"""The auto-weight stage of W-MM-U-Net (paper §3.2.2).

§3.2.2: "a classification network (ResNet) is employed to find the most appropriate weights
for each input. Input data with four channels were passed through the ResNet model, and the
weight vector with four values was obtained." The paper does not say what the ResNet is
trained on. Here it is part of the segmentation graph:

* input: the P modal inputs after colour processing, stacked as P channels (B-mode + R, G,
  B of the SE image = 4 channels);
* a small ResNet (stem convolution, one basic residual block per stage, each halving the
  resolution, global average pooling) and a dense layer give P logits, and a softmax turns
  them into the weight vector, one per image, positive and summing to 1;
* it is trained end to end by the segmentation loss through the weighted skip connection
  (§3.2.3), so the weights are those that help the segmentation most, which is what the
  paper asks of them; no class labels are needed (they would leak into a segmentation
  benchmark) and nothing is pre-trained;
* the logits layer starts at zero, so training starts from equal weights (MM-U-Net) and
  moves away from them only where the loss gains from it.

The learned weights are exposed as the ``modality_weights`` layer of the model; a run
records their mean over the test images of each fold.
"""

from __future__ import annotations

import keras


def apply_residual_block(x, filters: int, stride: int, use_batch_norm: bool, name: str):
    """A ResNet basic block (He et al. 2016): two 3x3 convolutions and a shortcut.

    When the shape changes, the shortcut is a ``stride`` x ``stride`` average pooling and a
    1x1 convolution (the "ResNet-D" shortcut of He et al. 2019, which also uses every input
    pixel rather than one in four). A strided 1x1 convolution, the original shortcut,
    corrupts the heap in the oneDNN CPU kernels of TensorFlow 2.21 when trained with odd
    batch sizes (such as a fold's last, partial batch). Layers ``{name}_conv1``,
    ``{name}_conv2``, ``{name}_shortcut_pool``, ``{name}_shortcut``, ``{name}_add``,
    ``{name}_out``.
    """
    shortcut = x
    if stride != 1:
        shortcut = keras.layers.AveragePooling2D(stride, padding="same", name=f"{name}_shortcut_pool")(shortcut)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, use_bias=not use_batch_norm, name=f"{name}_shortcut")(shortcut)
        if use_batch_norm:
            shortcut = keras.layers.BatchNormalization(name=f"{name}_shortcut_bn")(shortcut)
    x = keras.layers.Conv2D(
        filters, 3, strides=stride, padding="same", use_bias=not use_batch_norm,
        kernel_initializer="he_normal", name=f"{name}_conv1",
    )(x)
    if use_batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn1")(x)
    x = keras.layers.Activation("relu", name=f"{name}_relu1")(x)
    x = keras.layers.Conv2D(
        filters, 3, padding="same", use_bias=not use_batch_norm,
        kernel_initializer="he_normal", name=f"{name}_conv2",
    )(x)
    if use_batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn2")(x)
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


def apply_auto_weight_resnet(
    stacked_inputs, num_weights: int, stackwise_num_filters, use_batch_norm: bool = True, name: str = "auto_weight"
):
    """The auto-weight ResNet (§3.2.2): stacked modal inputs -> (batch, num_weights) softmax.

    Layers: ``{name}_stem_conv`` (3x3, stride 2, ``stackwise_num_filters[0]`` filters),
    ``{name}_stage{s}_block1_*`` (one basic block per stage, stride 2), ``{name}_pool``
    (global average), ``{name}_logits`` (dense, zero-initialised) and ``modality_weights``
    (softmax, float32).
    """
    filters = list(stackwise_num_filters)
    x = keras.layers.Conv2D(
        filters[0], 3, strides=2, padding="same", use_bias=not use_batch_norm,
        kernel_initializer="he_normal", name=f"{name}_stem_conv",
    )(stacked_inputs)
    if use_batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_stem_bn")(x)
    x = keras.layers.Activation("relu", name=f"{name}_stem_relu")(x)
    for stage, stage_filters in enumerate(filters, start=1):
        x = apply_residual_block(x, stage_filters, 2, use_batch_norm, name=f"{name}_stage{stage}_block1")
    x = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    logits = keras.layers.Dense(
        num_weights, kernel_initializer="zeros", bias_initializer="zeros", dtype="float32", name=f"{name}_logits"
    )(x)
    return keras.layers.Softmax(dtype="float32", name="modality_weights")(logits)
