"""Paths and file access through ``tf.io.gfile``, so that ``manual_dir`` may be a local folder or
any filesystem TensorFlow supports."""

from __future__ import annotations

import tensorflow as tf


def exists(path: str) -> bool:
    """Whether ``path`` exists; False (not an error) when the filesystem cannot tell."""
    try:
        return tf.io.gfile.exists(path)
    except (tf.errors.OpError, OSError, ValueError):
        return False


def extension(path: str) -> str:
    """The lower-case file ending with its dot (``.png``), or ``""``."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def stem(path: str) -> str:
    """The file name without its ending."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def join(root: str, relative: str) -> str:
    """``relative`` under ``root``; absolute paths and URLs are returned as they are."""
    if relative.startswith("/") or "://" in relative:
        return relative
    return tf.io.gfile.join(root, relative)
