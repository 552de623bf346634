"""Build the five segmenters of Table 1 (paper §4.1.1) from a ``SegmentationConfig``."""

from __future__ import annotations

import logging

from tf_bimodal.config import SEGMENTATION_MODELS, SegmentationConfig
from tf_bimodal.layers.colour_input import modal_path_names
from tf_bimodal.models.pretrained import load_pretrained_vgg16
from tf_bimodal.models.segmentation.multimodal_unet import MultimodalUNet
from tf_bimodal.models.segmentation.unet import UNet
from tf_bimodal.models.segmentation.vgg_unet import VGG16UNet
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
"""The weighting of each multimodal model; ``w_mm_unet``'s ``auto`` becomes ``prestage`` or
stays ``auto`` (end to end) by ``SegmentationConfig.auto_weight`` (:func:`model_weighting`)."""

logger = logging.getLogger(__name__)


def check_model_name(model_name: str) -> str:
    """Raise ``ValueError`` unless ``model_name`` is one of ``SEGMENTATION_MODELS``."""
    if model_name not in SEGMENTATION_MODELS:
        raise ValueError(f"segmentation model must be one of {SEGMENTATION_MODELS}, got {model_name!r}")
    return model_name


def is_multimodal(model_name: str) -> bool:
    """Whether the model needs the SE-mode image as well as the B-mode image."""
    return len(MODEL_INPUTS[check_model_name(model_name)]) > 1


def model_weighting(model_name: str, config: SegmentationConfig) -> str | None:
    """The ``MultimodalUNet`` weighting ``model_name`` is built with under ``config``
    (None for the single-modal U-Nets)."""
    weighting = MODEL_WEIGHTING.get(check_model_name(model_name))
    if weighting == "auto" and config.auto_weight == "prestage":
        return "prestage"
    return weighting


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


def build_segmenter(model_name: str, config: SegmentationConfig, image_size=None, modality_weights=None):
    """The model ``model_name`` (one of ``SEGMENTATION_MODELS``) built from ``config``.

    ``unet_bmode`` / ``unet_semode``: :class:`UNet` on the B-mode image / the SE colour image,
    or with ``config.encoder == "vgg16"`` a :class:`VGG16UNet` (initialised from
    ``config.encoder_weights``; the provenance record is its ``weights_record`` attribute).
    ``mm_unet``, ``w_mm_unet_manual``, ``w_mm_unet``: :class:`MultimodalUNet` on
    ``[bmode, semode]`` with ``weighting`` equal, manual (``config.manual_weights`` or
    :func:`default_manual_weights`) and automatic: with ``config.auto_weight="prestage"``
    the fixed weights of the auto-weight pre-stage (``modality_weights``, made by
    :func:`tf_bimodal.training.segmentation.train_auto_weight_prestage`), with
    ``"end_to_end"`` the auto-weight ResNet inside the model. The contraction block, the skip
    fusion and the dense connections across levels come from ``config``.

    Args:
        model_name: which model.
        config: the ``SegmentationConfig``.
        image_size: side used when ``config.image_size`` is None; None leaves it open.
        modality_weights: the pre-stage's weights, one per modal path, for ``w_mm_unet``
            under ``auto_weight="prestage"``. Without them (a benchmark, a memory plan)
            equal weights stand in, with a warning: the architecture and its cost are the same.

    Raises:
        ValueError: an unknown model, or ``modality_weights`` for a model that takes none.
    """
    weighting = model_weighting(model_name, config)
    if modality_weights is not None and weighting != "prestage":
        raise ValueError(
            "build_segmenter: modality_weights are the auto-weight pre-stage's, for w_mm_unet with "
            f"auto_weight='prestage'; got them for {model_name!r} (weighting {weighting!r})"
        )
    size = config.image_size or image_size
    input_names = MODEL_INPUTS[model_name]
    if len(input_names) == 1 and config.encoder == "vgg16":
        return build_vgg16_unet(model_name, config, size)
    if len(input_names) == 1:
        return UNet(
            input_channels=MODALITY_CHANNELS[input_names[0]], stackwise_num_filters=config.stackwise_num_filters,
            bottleneck_filters=config.bottleneck_filters, use_batch_norm=config.use_batch_norm, image_size=size,
            input_name=input_names[0], name=model_name,
        )
    return build_multimodal_unet(model_name, config, size, weighting, modality_weights)


def build_vgg16_unet(model_name: str, config: SegmentationConfig, image_size) -> VGG16UNet:
    """A single-modal :class:`VGG16UNet` initialised from ``config.encoder_weights``, the
    provenance record as its ``weights_record`` attribute."""
    input_name = MODEL_INPUTS[model_name][0]
    model = VGG16UNet(
        input_channels=MODALITY_CHANNELS[input_name], encoder_depth=config.encoder_depth,
        decoder_filters=config.decoder_filters, frozen_blocks=config.frozen_blocks,
        normalization="caffe" if config.encoder_weights != "none" else "standardize",
        use_batch_norm=config.use_batch_norm, image_size=image_size, input_name=input_name, name=model_name,
    )
    if config.encoder_weights != "none":
        model.weights_record = load_pretrained_vgg16(model, config.encoder_weights)
    else:
        model.weights_record = {"requested": "none", "used": "random", "reason": None, "layers": 0}
    return model


def build_multimodal_unet(model_name: str, config: SegmentationConfig, image_size, weighting: str,
                          modality_weights=None) -> MultimodalUNet:
    """A :class:`MultimodalUNet` with ``weighting``: manual weights from ``config`` (or
    :func:`default_manual_weights`), the pre-stage's ``modality_weights`` (equal ones standing
    in, with a warning, when none are given), or none (equal, auto)."""
    input_names = MODEL_INPUTS[model_name]
    input_channels = [MODALITY_CHANNELS[name] for name in input_names]
    if weighting == "manual":
        modality_weights = config.manual_weights or default_manual_weights(
            input_names, input_channels, config.colour_mode
        )
    elif weighting == "prestage" and modality_weights is None:
        num_paths = len(modal_path_names(input_names, input_channels, config.colour_mode))
        modality_weights = [1.0 / num_paths] * num_paths
        logger.warning(f"build_segmenter: {model_name} without auto-weight pre-stage weights; equal weights "
                       "stand in (train_auto_weight_prestage makes them)")
    return MultimodalUNet(
        input_names=input_names, input_channels=input_channels, stackwise_num_filters=config.stackwise_num_filters,
        bottleneck_filters=config.bottleneck_filters, colour_mode=config.colour_mode, weighting=weighting,
        modality_weights=modality_weights, auto_weight_filters=config.auto_weight_filters,
        use_batch_norm=config.use_batch_norm, image_size=image_size, dense_across_levels=config.dense_across_levels,
        contraction_block=config.contraction_block, skip_fusion=config.skip_fusion, name=model_name,
    )
