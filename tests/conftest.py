"""Shared fixtures: the BUSI sample location and a guard against network access."""

from __future__ import annotations

import os
import pathlib
import socket

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
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


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
