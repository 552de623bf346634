"""The multimodal fusion framework (MFF) of the paper (§3.3.1-3.3.2, Fig. 3, Fig. 4e)."""

from __future__ import annotations

import keras

from tf_bimodal.layers.embracenet import EmbraceNet
from tf_bimodal.layers.stacked_sample_mean import StackedSampleMean
from tf_bimodal.models.classification import classifier_task as task
from tf_bimodal.schema import MODALITY_CHANNELS


@keras.saving.register_keras_serializable(package="tf_bimodal")
class MFFClassifier(task.ClassifierTask):
    """MFF: integrated feature network + EmbraceNet + decision network (§3.3.1, Fig. 3).

    * **Integrated feature network (IFN)**: one VGG-16 ``backbone`` whose weights are shared by
      all modalities ("the two modalities share the same network to decrease
      over-parameterization", §3.3.2); B-mode is repeated to three channels. Each modality's
      4096-d ``fc2`` features feed its own softmax head (``{modality}_predictions``), whose
      cross-entropies sum to the integrated feature loss ``l_i``.
    * **EmbraceNet** (``embracenet``): docks each modality's features to
      ``embracement_size`` and embraces them into one vector, restricted per sample to the
      modalities marked available.
    * **Decision network (DN)**: three FC layers and a softmax (``decision_*``), giving the
      decision loss ``l_d``. Its probabilities pass through ``decision_draw_mean``
      (:class:`~tf_bimodal.layers.stacked_sample_mean.StackedSampleMean`), which averages the
      K embracements of ``embracenet_inference="mc"`` and passes a single one through, so
      the graph is the same for every rule and an exported model may switch rules.

    Training minimises ``l = l_i + lambda * l_d`` (Eq. 1, ``decision_loss_weight`` = lambda),
    updating IFN, EmbraceNet and DN together.

    Args:
        backbone: a :class:`VGG16Backbone` (3-channel input), shared by all modalities.
        modalities: ``{name: channels}`` of the inputs, in EmbraceNet order (default
            ``{"bmode": 1, "semode": 3}``; any number >= 2).
        embracement_size: EmbraceNet docking size (paper: 4096).
        decision_units: the two hidden widths of the decision network.
        decision_dropout: dropout after each hidden decision layer.
        decision_loss_weight: lambda of Eq. (1) (default 1).
        embracenet_inference: EmbraceNet's rule at inference: ``"mc"`` (default, the paper
            preset: the decision probabilities averaged over ``embracenet_mc_samples`` seeded
            draws), ``"sample"`` (one fresh draw per call, as the reference implementation) or
            ``"expected"`` (the expected embracement); see
            :class:`tf_bimodal.layers.embracenet.EmbraceNet`. Training always draws.
        embracenet_mc_samples: K of ``"mc"`` (default 16).
        normalization: ``"standardize"`` or ``"caffe"`` (ImageNet weights).
        num_classes: 2 (benign, malignant).
        seed: seed of the EmbraceNet draws (training, ``"sample"``) and the fixed seed of its
            ``"mc"`` draws.

    Inputs: dict with each modality ``(batch, S, S, channels)`` (values in [0, 1], ``S`` the
    backbone's input size) and ``"availability"`` ``(batch, M)``.
    Outputs: dict ``{"decision": (batch, num_classes), <modality>: (batch, num_classes), ...}``.

    Raises:
        ValueError: fewer than 2 modalities, bad channels, or bad common arguments.
    """

    def __init__(
        self,
        backbone,
        modalities=None,
        embracement_size: int = 4096,
        decision_units=(1024, 256),
        decision_dropout: float = 0.5,
        decision_loss_weight: float = 1.0,
        embracenet_inference: str = "mc",
        embracenet_mc_samples: int = 16,
        normalization: str = "standardize",
        num_classes: int = 2,
        seed: int | None = None,
        **kwargs,
    ):
        modalities = dict(modalities or MODALITY_CHANNELS)
        if len(modalities) < 2:
            raise ValueError(f"MFFClassifier: needs at least 2 modalities, got {list(modalities)}")
        task.check_common_arguments("MFFClassifier", num_classes, normalization)
        if decision_loss_weight < 0:
            raise ValueError(
                f"MFFClassifier: decision_loss_weight must be >= 0, got {decision_loss_weight}"
            )

        # === Functional model ===
        inputs = task.modality_inputs(modalities, backbone.image_shape[0], availability=True)
        images = task.apply_modalities_preprocessing(inputs, modalities, normalization)
        features = {name: backbone(images[name]) for name in modalities}
        outputs = {
            name: task.apply_softmax_head(features[name], num_classes, name=f"{name}_predictions")
            for name in modalities
        }
        embraced = EmbraceNet(
            embracement_size, inference=embracenet_inference, mc_samples=embracenet_mc_samples, seed=seed,
            name="embracenet",
        )(list(features.values()), availabilities=inputs["availability"])
        decision = task.apply_decision_network(embraced, decision_units, num_classes, decision_dropout)
        decision = StackedSampleMean(dtype="float32", name="decision_draw_mean")(decision, inputs["availability"])
        super().__init__(
            inputs, {"decision": decision, **outputs},
            config=dict(
                backbone=backbone, modalities=modalities, embracement_size=embracement_size,
                decision_units=decision_units, decision_dropout=decision_dropout,
                decision_loss_weight=decision_loss_weight, embracenet_inference=embracenet_inference,
                embracenet_mc_samples=embracenet_mc_samples, normalization=normalization, num_classes=num_classes,
                seed=seed,
            ),
            output_loss_weights={**{name: 1.0 for name in modalities}, "decision": decision_loss_weight},
            output_modality_columns=task.availability_columns(modalities),
            **kwargs,
        )
