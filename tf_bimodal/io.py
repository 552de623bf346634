"""Files every layer writes: JSON results written atomically, and read back.

At the bottom of the package (with :mod:`tf_bimodal.config`, :mod:`tf_bimodal.schema` and
:mod:`tf_bimodal.layout`): any module may import it, it imports no other module of the package.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np


def json_default(value: Any) -> Any:
    """``json.dump``'s ``default``: NumPy scalars and arrays become Python numbers and lists."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def write_json(path, payload: Any) -> str:
    """Write ``payload`` as JSON to ``path`` atomically: a temporary file, then a rename, so an
    interrupted run never leaves a half-written results file. NumPy scalars and arrays are
    allowed. Returns ``path``."""
    path = str(path)
    tmp_path = path + ".tmp"
    with open(tmp_path, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True, default=json_default)
    os.replace(tmp_path, path)
    return path


def read_json(path) -> Any:
    """The JSON content of ``path``."""
    with open(path) as handle:
        return json.load(handle)


def read_json_or_none(path) -> Any:
    """The JSON content of ``path``, or None if it is missing or not valid JSON (a file that a
    killed process may have left behind is treated as absent)."""
    if not os.path.isfile(path):
        return None
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None
