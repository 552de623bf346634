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

from tf_bimodal.layers.adaptive_pooling import AdaptiveAveragePooling2D
from tf_bimodal.layers.colour_input import ColourInputProcessing, modal_path_names, strain_from_colour
from tf_bimodal.layers.embracenet import EmbraceNet
from tf_bimodal.layers.hyper_dense import apply_hyper_dense_contraction
from tf_bimodal.layers.image_normalization import ImageNormalization
from tf_bimodal.layers.ivdnet_blocks import apply_contraction_block, apply_dilated_inception_block
from tf_bimodal.layers.soft_voting import SoftVoting
from tf_bimodal.layers.stacked_sample_mean import StackedSampleMean
from tf_bimodal.layers.unet_blocks import (
    apply_average_up_block,
    apply_conv_block,
    apply_down_sample,
    apply_segmentation_head,
    apply_up_block,
)
from tf_bimodal.layers.weighted_skip import FixedModalityWeights, WeightedSkip, normalize_weights

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
