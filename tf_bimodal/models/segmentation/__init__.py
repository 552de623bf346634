"""Segmenters (paper §3.2, §4.1): the U-Net baselines, MM-U-Net and W-MM-U-Net.

``build_segmenter(model_name, config)`` makes any of the five models of Table 1 from a
``SegmentationConfig`` (``tf_bimodal.config``).
"""

from tf_bimodal.models.segmentation.factory import MODEL_INPUTS, build_segmenter, is_multimodal
from tf_bimodal.models.segmentation.multimodal_unet import MultimodalUNet, modal_path_names
from tf_bimodal.models.segmentation.unet import UNet

__all__ = ["MODEL_INPUTS", "MultimodalUNet", "UNet", "build_segmenter", "is_multimodal", "modal_path_names"]
