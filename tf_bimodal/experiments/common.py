"""What every experiment runner shares: the synthetic-data notice and atomic JSON output."""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

SYNTHETIC_NOTICE = (
    "SYNTHETIC PHANTOM: these images are simulated (tf_bimodal.data.phantom), not patient "
    "data; results on them say nothing about clinical performance."
)


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_json(path, payload):
    """Write ``payload`` as JSON to ``path`` atomically (a temporary file, then a rename), so an
    interrupted run never leaves a half-written results file; NumPy scalars and arrays allowed."""
    path = str(path)
    tmp_path = path + ".tmp"
    with tf.io.gfile.GFile(tmp_path, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True, default=_json_default)
    tf.io.gfile.rename(tmp_path, path, overwrite=True)
