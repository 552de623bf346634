"""Shared fixtures: the BUSI sample location, a guard against network access, and the
package's progress lines."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pathlib
import socket

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_script(path: pathlib.Path):
    """A script of the repository (not installed: ``run_experiments.py``, a benchmark, a
    notebook tool) imported as a module named after its file."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
BUSI_SAMPLE = REPO_ROOT.parent / "shared" / "data" / "busi_sample"


@pytest.fixture
def busi_sample_dir():
    if not BUSI_SAMPLE.is_dir():
        pytest.skip(f"BUSI sample not found at {BUSI_SAMPLE}")
    return str(BUSI_SAMPLE)


@pytest.fixture
def no_network(monkeypatch):
    """Fail any attempt to connect to a non-local address."""
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("/"):
            raise AssertionError(f"network access attempted: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    yield


class _Lines(logging.Handler):
    def __init__(self, lines, hook=None):
        super().__init__(logging.DEBUG)
        self.lines, self.hook = lines, hook

    def emit(self, record):
        line = record.getMessage()
        if self.hook is not None:
            self.hook(line)  # may raise: an interruption while the line is printed
        self.lines.append(line)


@contextlib.contextmanager
def captured_progress(hook=None):
    """The messages the package logs (``tf_bimodal`` logger) while the block runs, as a list of
    str; ``hook`` sees each line first."""
    lines = []
    handler = _Lines(lines, hook)
    logger = logging.getLogger("tf_bimodal")
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@pytest.fixture
def progress():
    """The messages the package logs during the test (:func:`captured_progress`)."""
    with captured_progress() as lines:
        yield lines


def quick_experiment(name: str = "quick", runtime=None, **overrides):
    """The ``quick`` preset's ``ExperimentConfig``, with ``overrides`` (``segmentation=...``)."""
    from tf_bimodal.config import resolve_experiment

    return resolve_experiment("quick", runtime=runtime, name=name, **overrides)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
