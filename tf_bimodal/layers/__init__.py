"""Custom Keras layers and blocks of the paper's networks; every layer is registered
serializable under the ``tf_bimodal`` package and passes the test harness (``tests/harness.py``).

Segmentation (§3.2):
    ColourInputProcessing: the colour input processing layer, an SE image split into modal
        inputs (R, G, B paths, or one decoded strain path) (§3.2.1).
    apply_hyper_dense_contraction: the hyper-densely connected multi-path contraction of
        IVD-Net that the paper adopts (§3.2.2).
    apply_dilated_inception_block, apply_contraction_block: IVD-Net's Inception-like dilated
        residual block, and the choice between it and U-Net's block (§3.2).
    WeightedSkip, FixedModalityWeights: the weighted skip connection at the top level and the
        manual / equal modality weights (§3.2.3).
    apply_conv_block, apply_down_sample, apply_up_block, apply_segmentation_head: U-Net blocks;
        apply_average_up_block: an expansion step with IVD-Net's skip fusion (§3.2.3).

Classification (§3.3):
    EmbraceNet: docking and stochastic multinomial embracement (§3.3.1, §3.3.3).
    StackedSampleMean: the mean of the decision network over EmbraceNet's "mc" draws.
    AdaptiveAveragePooling2D: torchvision-style adaptive pooling, so VGG-16's ``fc1`` fits
        336-pixel inputs.
    ImageNormalization: the backbone's pixel normalisation (Caffe-style for ImageNet weights).
    SoftVoting: late integration's mean over the available modalities (§3.3.3).
"""

import importlib

_SOURCES = {
    "AdaptiveAveragePooling2D": "tf_bimodal.layers.adaptive_pooling",
    "ColourInputProcessing": "tf_bimodal.layers.colour_input",
    "EmbraceNet": "tf_bimodal.layers.embracenet",
    "FixedModalityWeights": "tf_bimodal.layers.weighted_skip",
    "ImageNormalization": "tf_bimodal.layers.image_normalization",
    "SoftVoting": "tf_bimodal.layers.soft_voting",
    "StackedSampleMean": "tf_bimodal.layers.stacked_sample_mean",
    "WeightedSkip": "tf_bimodal.layers.weighted_skip",
    "apply_average_up_block": "tf_bimodal.layers.unet_blocks",
    "apply_contraction_block": "tf_bimodal.layers.ivdnet_blocks",
    "apply_conv_block": "tf_bimodal.layers.unet_blocks",
    "apply_dilated_inception_block": "tf_bimodal.layers.ivdnet_blocks",
    "apply_down_sample": "tf_bimodal.layers.unet_blocks",
    "apply_hyper_dense_contraction": "tf_bimodal.layers.hyper_dense",
    "apply_segmentation_head": "tf_bimodal.layers.unet_blocks",
    "apply_up_block": "tf_bimodal.layers.unet_blocks",
    "modal_path_names": "tf_bimodal.layers.colour_input",
    "normalize_weights": "tf_bimodal.layers.weighted_skip",
    "strain_from_colour": "tf_bimodal.layers.colour_input",
}
"""Where each public name lives: the layer modules load on first use, so that the option lists
of :mod:`tf_bimodal.layers.options` (read by the settings) need no TensorFlow."""


__all__ = [
    "AdaptiveAveragePooling2D",
    "ColourInputProcessing",
    "EmbraceNet",
    "FixedModalityWeights",
    "ImageNormalization",
    "SoftVoting",
    "StackedSampleMean",
    "WeightedSkip",
    "apply_average_up_block",
    "apply_contraction_block",
    "apply_conv_block",
    "apply_dilated_inception_block",
    "apply_down_sample",
    "apply_hyper_dense_contraction",
    "apply_segmentation_head",
    "apply_up_block",
    "modal_path_names",
    "normalize_weights",
    "strain_from_colour",
]


def __getattr__(name: str):
    if name in _SOURCES:
        return getattr(importlib.import_module(_SOURCES[name]), name)
    raise AttributeError(f"module 'tf_bimodal.layers' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
