"""One worker of ``tests/experiments/test_multi_worker.py``: train a tiny model a few steps, write the result.

Usage: ``python tests/multi_worker_job.py OUTPUT.json STRATEGY [unet|classifier]`` with
``STRATEGY`` a ``RuntimeConfig.strategy`` (``multi_worker`` reads ``TF_CONFIG``); ``unet``
(default) trains a tiny U-Net with a Keras loss, ``classifier`` a tiny VGG-16 classifier
with its own loss (``ClassifierTask.compute_loss``). Every worker, and the
single-worker reference, builds the same model from the same seed and trains it on the same
deterministic images with the same global batch; the JSON holds the per-epoch losses, every
weight, and what the runtime says about this process.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The repository root (this file is tests/experiments/multi_worker_job.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

NUM_IMAGES = 16
GLOBAL_BATCH = 8  # 2 steps per epoch; 4 images per replica on 2 workers
EPOCHS = 3
IMAGE_SIZE = 32
SEED = 3


def images(num_images=NUM_IMAGES, size=IMAGE_SIZE, seed=SEED):
    """Deterministic B-mode-like images with one bright disc each, and the disc masks."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    centres = rng.uniform([8, 8, 3], [24, 24, 8], size=(num_images, 3))
    masks = np.stack([(yy - cy) ** 2 + (xx - cx) ** 2 < r**2 for cy, cx, r in centres]).astype("float32")
    bmode = np.clip(0.3 + 0.4 * masks + 0.1 * rng.standard_normal(masks.shape), 0.0, 1.0).astype("float32")
    return bmode[..., None], masks[..., None]


def _classifier(config_seed):
    """A tiny VGG-16 classifier (no dropout) and its compile, under the current scope."""
    import dataclasses

    import keras

    from tf_bimodal.config import CLASSIFICATION_PRESETS
    from tf_bimodal.models.classification.factory import build_classifier

    config = dataclasses.replace(CLASSIFICATION_PRESETS["quick"], fc_dropout=0.0, decision_dropout=0.0,
                                 seed=config_seed)
    model = build_classifier("vgg16_bmode", config, "standardize")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-2, momentum=0.8))
    return model


def main(output_path: str, strategy_name: str, kind: str = "unet") -> dict:
    from tf_bimodal.config import RuntimeConfig
    from tf_bimodal.training import runtime as runtime_lib

    runtime = RuntimeConfig(strategy=strategy_name, tensorboard=False)
    # First of all: MultiWorkerMirroredStrategy must exist before any other TensorFlow op.
    strategy = runtime_lib.strategy_for(runtime)

    import keras
    import numpy as np
    import tensorflow as tf

    from tf_bimodal.config import SegmentationConfig
    from tf_bimodal.data import pipeline
    from tf_bimodal.models.segmentation.factory import build_segmenter
    from tf_bimodal.training.losses import segmentation_loss
    from tf_bimodal.training.metrics import SegmentationScore

    # No batch norm (its statistics are per replica) and no dropout or augmentation, so the
    # distributed and the single-worker step compute the same function of the same batch.
    config = SegmentationConfig(
        image_size=IMAGE_SIZE, stackwise_num_filters=(4, 8), bottleneck_filters=8, use_batch_norm=False,
        loss="dice_bce", batch_size=GLOBAL_BATCH, epochs=EPOCHS, augment=False, seed=SEED,
    )
    keras.utils.set_random_seed(SEED)
    bmode, masks = images()
    with strategy.scope():
        if kind == "classifier":
            model = _classifier(SEED)
            targets = (np.arange(NUM_IMAGES) % 2).astype("int64")
        else:
            model = build_segmenter("unet_bmode", config, IMAGE_SIZE)
            # SGD rather than the segmenters' Adam: Adam's step does not change when every
            # gradient is scaled alike, so it would hide replica gradients summed, not averaged.
            model.compile(
                optimizer=keras.optimizers.SGD(learning_rate=0.5, momentum=0.8),
                loss=segmentation_loss(config.loss),
                metrics=[SegmentationScore("dice", threshold=config.threshold)],
            )
            targets = masks
    ds = tf.data.Dataset.from_tensor_slices(({"bmode": bmode}, targets)).batch(GLOBAL_BATCH)
    history = model.fit(pipeline.with_data_sharding(ds), epochs=EPOCHS, shuffle=False, verbose=0)
    weights = [np.asarray(w) for w in model.get_weights()]
    result = {
        "strategy": strategy_name,
        "replicas": int(strategy.num_replicas_in_sync),
        "is_chief": runtime_lib.is_chief(runtime),
        "worker_output": runtime_lib.worker_output("runs", runtime),
        "loss": [float(v) for v in history.history["loss"]],
        "dice": [float(v) for v in history.history.get("dice", [])],
        "weights": [w.ravel().tolist() for w in weights],
        "checksum": float(sum(np.abs(w).sum(dtype=np.float64) for w in weights)),
    }
    with open(output_path, "w") as handle:
        json.dump(result, handle)
    return result


if __name__ == "__main__":
    main(*sys.argv[1:4])
