"""Shared fixtures: the BUSI sample location, a guard against network access, and the
package's progress lines. Helpers shared by several test modules live in ``helpers.py``."""

from __future__ import annotations

import os
import socket

import pytest

from helpers import BUSI_SAMPLE, captured_progress


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


@pytest.fixture
def progress():
    """The messages the package logs during the test (:func:`helpers.captured_progress`)."""
    with captured_progress() as lines:
        yield lines


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
