"""Segmenters (paper §3.2, §4.1): the U-Net baselines, MM-U-Net and W-MM-U-Net.

``build_segmenter(model_name, config)`` makes any of the five models of Table 1 from a
``SegmentationConfig`` (``tf_bimodal.config``).
``AutoWeightClassifier`` is the ResNet of the auto-weight pre-stage (§3.2.2).
"""

from tf_bimodal.layers.colour_input import modal_path_names
from tf_bimodal.models.segmentation.auto_weight import AutoWeightClassifier
from tf_bimodal.models.segmentation.factory import MODEL_INPUTS, build_segmenter, is_multimodal
from tf_bimodal.models.segmentation.multimodal_unet import MultimodalUNet
from tf_bimodal.models.segmentation.unet import UNet
from tf_bimodal.models.segmentation.vgg_unet import VGG16UNet

__all__ = [
    "MODEL_INPUTS",
    "AutoWeightClassifier",
    "MultimodalUNet",
    "UNet",
    "VGG16UNet",
    "build_segmenter",
    "is_multimodal",
    "modal_path_names",
]
