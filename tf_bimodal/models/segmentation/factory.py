"""Build the five segmenters of Table 1 (paper §4.1.1) from a ``SegmentationConfig``."""

from __future__ import annotations

from tf_bimodal.config import SEGMENTATION_MODELS, SegmentationConfig
from tf_bimodal.models.segmentation.multimodal_unet import MultimodalUNet, modal_path_names
from tf_bimodal.models.segmentation.unet import UNet
from tf_bimodal.schema import MODALITY_CHANNELS

"""Channels of each image feature of the example schema (``tf_bimodal.schema``)."""

MODEL_INPUTS = {
    "unet_bmode": ("bmode",),
    "unet_semode": ("semode",),
    "mm_unet": ("bmode", "semode"),
    "w_mm_unet_manual": ("bmode", "semode"),
    "w_mm_unet": ("bmode", "semode"),
}
"""The example keys each model reads."""

MODEL_WEIGHTING = {"mm_unet": "equal", "w_mm_unet_manual": "manual", "w_mm_unet": "auto"}


def check_model_name(model_name: str) -> str:
    """Raise ``ValueError`` unless ``model_name`` is one of ``SEGMENTATION_MODELS``."""
    if model_name not in SEGMENTATION_MODELS:
        raise ValueError(f"segmentation model must be one of {SEGMENTATION_MODELS}, got {model_name!r}")
    return model_name


def is_multimodal(model_name: str) -> bool:
    """Whether the model needs the SE-mode image as well as the B-mode image."""
    return len(MODEL_INPUTS[check_model_name(model_name)]) > 1


def default_manual_weights(input_names, input_channels, colour_mode: str = "channels"):
    """Every input modality weighted 1/M, split evenly among its modal paths.

    B-mode + RGB SE-mode: ``[1/2, 1/6, 1/6, 1/6]`` (the B-mode path weighs as much as the
    three SE colour paths together).
    """
    weights = []
    for name, channels in zip(input_names, input_channels):
        num_paths = len(modal_path_names([name], [channels], colour_mode))
        weights.extend([1.0 / (len(input_names) * num_paths)] * num_paths)
    return weights


def build_segmenter(model_name: str, config: SegmentationConfig, image_size=None):
    """The model ``model_name`` (one of ``SEGMENTATION_MODELS``) built from ``config``.

    ``unet_bmode`` / ``unet_semode``: :class:`UNet` on the B-mode image / the SE colour image.
    ``mm_unet``, ``w_mm_unet_manual``, ``w_mm_unet``: :class:`MultimodalUNet` on
    ``[bmode, semode]`` with ``weighting`` equal, manual (``config.manual_weights`` or
    :func:`default_manual_weights`) and auto.

    Args:
        model_name: which model.
        config: the ``SegmentationConfig``.
        image_size: side used when ``config.image_size`` is None; None leaves it open.
    """
    check_model_name(model_name)
    size = config.image_size or image_size
    input_names = MODEL_INPUTS[model_name]
    input_channels = [MODALITY_CHANNELS[name] for name in input_names]
    if len(input_names) == 1:
        return UNet(
            input_channels=input_channels[0],
            stackwise_num_filters=config.stackwise_num_filters,
            bottleneck_filters=config.bottleneck_filters,
            use_batch_norm=config.use_batch_norm,
            image_size=size,
            input_name=input_names[0],
            name=model_name,
        )
    weighting = MODEL_WEIGHTING[model_name]
    modality_weights = None
    if weighting == "manual":
        modality_weights = config.manual_weights or default_manual_weights(
            input_names, input_channels, config.colour_mode
        )
    return MultimodalUNet(
        input_names=input_names,
        input_channels=input_channels,
        stackwise_num_filters=config.stackwise_num_filters,
        bottleneck_filters=config.bottleneck_filters,
        colour_mode=config.colour_mode,
        weighting=weighting,
        modality_weights=modality_weights,
        auto_weight_filters=config.auto_weight_filters,
        use_batch_norm=config.use_batch_norm,
        image_size=size,
        dense_across_levels=config.dense_across_levels,
        name=model_name,
    )
