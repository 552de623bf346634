"""Progress lines through Python's ``logging``: the console, and a ``log.txt`` per run.

Every module logs to a child of the ``tf_bimodal`` logger (``logging.getLogger(__name__)``).
:func:`console` makes those lines appear on standard output exactly as printed lines (no
level or logger prefix), as the command line and the notebooks show them; :func:`run_log`
also copies them, with a time stamp, into a run's ``log.txt`` while the run works, so the
folder of results keeps the account of how it was made.

At the bottom of the package: it imports nothing of it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

LOGGER_NAME = "tf_bimodal"

logger = logging.getLogger(LOGGER_NAME)

_CONSOLE_MARK = "_tf_bimodal_console"


class _ToCurrentStdout(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stdout`` is at the time (pytest's and
    Jupyter's captured streams included)."""

    def __init__(self):
        super().__init__(sys.stdout)

    def emit(self, record):
        self.stream = sys.stdout
        super().emit(record)


def console(level: int = logging.INFO) -> logging.Logger:
    """Show the package's progress lines on standard output, as plain lines; idempotent.

    The ``tf_bimodal`` logger then stops passing its records on to the root logger, so that a
    handler installed there (by TensorFlow's ``absl`` or ``logging.basicConfig``) does not
    print every line a second time. Returns the ``tf_bimodal`` logger.
    """
    if not any(getattr(handler, _CONSOLE_MARK, False) for handler in logger.handlers):
        handler = _ToCurrentStdout()
        handler.setFormatter(logging.Formatter("%(message)s"))
        setattr(handler, _CONSOLE_MARK, True)
        logger.addHandler(handler)
    logger.propagate = False
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    return logger


@contextlib.contextmanager
def run_log(folder: str, file_name: str = "log.txt") -> Iterator[str]:
    """Copy the package's log lines into ``folder/file_name`` (appended, time-stamped) while
    the ``with`` block runs; yields the file's path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, file_name)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        handler.close()


def start_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow and probe its devices, hiding its start-up lines unless ``verbose``.

    TensorFlow's C++ start-up messages (oneDNN, the CUDA probe's ``failed call to cuInit`` on
    every machine without a GPU, which reads like a failure) bypass Python's logging and
    ``TF_CPP_MIN_LOG_LEVEL``; they are written to the process's standard error while it
    starts. Without ``verbose`` that stream is sent to ``os.devnull`` for the duration of the
    import and the device probe, then restored; later messages are shown as usual.
    """
    if verbose:
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        # Only the device probe: no tensor is made, so the runtime is not started yet (a
        # multi-worker strategy must be created before it is).
        tf.config.list_physical_devices("GPU")
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_libraries(quiet: bool = True) -> None:
    """Hide the libraries' own progress, or show it again (``quiet=False``, ``--verbose``):
    TFDS's progress bars (``Generating splits...``, whose cursor codes litter a redirected
    log) and absl's INFO lines (TensorFlow's and TFDS's Python logging). The data set's
    preparation is announced by the package's own lines (:mod:`tf_bimodal.data.builder`)."""
    import tensorflow_datasets as tfds
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR if quiet else absl_logging.INFO)
    tfds.display_progress_bar(not quiet)
