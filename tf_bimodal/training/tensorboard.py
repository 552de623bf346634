"""TensorBoard logs of every fold (issue: delivery)."""

from __future__ import annotations

import os

import keras

from tf_bimodal.config import RuntimeConfig

LOG_DIR = "tensorboard"


def fold_callbacks(runtime: RuntimeConfig | None, fold_dir: str, kind: str, **context) -> list:
    """TensorBoard callbacks of one fold, writing to ``<fold_dir>/tensorboard``.

    Args:
        runtime: the ``RuntimeConfig`` (none when ``runtime.tensorboard`` is False).
        fold_dir: the fold's folder.
        kind: ``"segmentation"`` or ``"classification"``.
        context: what richer summaries need (e.g. ``val_inputs``, ``val_masks``).
    """
    runtime = runtime or RuntimeConfig()
    if not runtime.tensorboard:
        return []
    return [keras.callbacks.TensorBoard(os.path.join(fold_dir, LOG_DIR), write_graph=False, update_freq="epoch")]
