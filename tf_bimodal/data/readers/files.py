"""Paths and file access through ``tf.io.gfile``, so that ``manual_dir`` may be a local folder or
any filesystem TensorFlow supports."""

from __future__ import annotations

import tensorflow as tf

from tf_bimodal.data.errors import DataError


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


def read_text(path: str) -> str:
    """The UTF-8 text of a file (a byte-order mark dropped).

    Raises:
        DataError: the file cannot be read or is not UTF-8, naming it.
    """
    try:
        with tf.io.gfile.GFile(path, "rb") as handle:
            data = handle.read()
    except tf.errors.OpError as error:
        raise DataError(path, f"cannot read file: {error.message}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(path, f"not UTF-8 text: {error}") from None
