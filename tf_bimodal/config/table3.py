"""Settings of Table 3 (paper §4.2.2): the six earlier methods that the paper compares with MFF
on the same folds, and ``Table3Config``; read by ``tf_bimodal.models.classification.table3``,
``tf_bimodal.training.table3`` and ``tf_bimodal.experiments.table3``.

What is known of each method, what is a reading and how sure it is, is in
``docs/fidelity.md`` ("Table 3").
"""

from __future__ import annotations

import dataclasses

from tf_bimodal.config.base import check_choice

TABLE3_METHODS = ("yap", "fujioka", "zhang", "kumar", "wang", "misra2021")
"""Table 3's rows in the paper's order: Yap et al. (B-mode, AlexNet), Fujioka et al. (SE-mode,
DenseNet-169), Zhang et al. (B-mode, InceptionV3), Kumar et al. (B-mode, AlexNet + GoogLeNet
features into SVMs), Wang et al. (B-mode + SE-mode, shared ResNet-18, auto-weighted losses) and
Misra et al. 2021 (B-mode + SE-mode, ResNet-18 and AlexNet ensemble)."""

TABLE3_INPUTS = ("full", "crop")
"""What the methods read: the full images (§4.2.2: "on the same full breast US images") or the
crops around the lesion that MFF reads (§3.1)."""

MISRA2021_READINGS = ("ensemble", "stackwise")
"""Misra 2021 as its authors' code builds it (``ensemble``: ResNet-18 and AlexNet, each behind a
1x1 convolution 4 -> 3 channels, trained alone, then frozen and joined by a dense layer), or the
2022 paper's stack-wise description (6 channels -> 1x1 convolution -> 3 channels -> VGG-16:
Table 2's ``mff_stack``), whose numbers Table 3's row repeats digit for digit."""

TABLE3_BACKBONE_WEIGHTS = ("imagenet", "none")
"""``imagenet``: the originals' pre-trained weights (required unless ``none``: a run stops when
they are missing, never training from random weights silently); ``none``: from scratch."""


@dataclasses.dataclass(frozen=True)
class Table3Config:
    """The six methods of Table 3 (§4.2.2): their inputs, sizes and training.

    Attributes:
        methods: which rows to run, a subset of ``TABLE3_METHODS``.
        inputs: ``full`` images (default, as §4.2.2 states) or ``crop`` (MFF's crops).
        input_size: side of the square input of every method (the originals': 224 for
            AlexNet, ResNet-18, DenseNet-169 and GoogLeNet, 299 for InceptionV3; the paper
            preset keeps each original's size when this is None).
        width: multiplier of every backbone's filters and units (1.0: the originals).
        backbone_weights: ``imagenet`` or ``none`` (``TABLE3_BACKBONE_WEIGHTS``).
        learning_rate, batch_size, epochs, early_stopping_patience: the training of each
            network (SGD with momentum as the originals; Adam where stated in the method).
        momentum: SGD momentum.
        svm_c: Kumar's SVMs' regularisation.
        wang_candidates: Wang's loss-weight search: candidate weight vectors tried per epoch.
        wang_delta: the step of a loss weight's logit per candidate.
        wang_search: False keeps Wang's loss weights fixed (equal) instead of searching them.
        misra2021_reading: ``ensemble`` or ``stackwise`` (``MISRA2021_READINGS``).
        seed: the seed of every method's initialisation and sampling.
    """

    methods: tuple[str, ...] = TABLE3_METHODS
    inputs: str = "full"
    input_size: int | None = None
    width: float = 1.0
    backbone_weights: str = "imagenet"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    batch_size: int = 32
    epochs: int = 100
    early_stopping_patience: int = 10
    svm_c: float = 1.0
    wang_candidates: int = 4
    wang_delta: float = 0.2
    wang_search: bool = True
    misra2021_reading: str = "ensemble"
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "methods", tuple(self.methods))
        unknown = [method for method in self.methods if method not in TABLE3_METHODS]
        if unknown or not self.methods:
            raise ValueError(f"Table3Config: methods must be a non-empty subset of {TABLE3_METHODS}, got "
                             f"{self.methods!r}")
        check_choice("Table3Config", "inputs", self.inputs, TABLE3_INPUTS)
        check_choice("Table3Config", "backbone_weights", self.backbone_weights, TABLE3_BACKBONE_WEIGHTS)
        check_choice("Table3Config", "misra2021_reading", self.misra2021_reading, MISRA2021_READINGS)
        if self.input_size is not None and self.input_size < 32:
            raise ValueError(f"Table3Config: input_size must be >= 32 or None, got {self.input_size}")
        if not 0.0 < self.width <= 1.0:
            raise ValueError(f"Table3Config: width must be in (0, 1], got {self.width}")
        if self.wang_candidates < 1 or self.wang_delta <= 0:
            raise ValueError("Table3Config: wang_candidates must be >= 1 and wang_delta > 0, got "
                             f"{self.wang_candidates} and {self.wang_delta}")
        for name in ("batch_size", "epochs", "early_stopping_patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"Table3Config: {name} must be >= 1, got {getattr(self, name)}")
