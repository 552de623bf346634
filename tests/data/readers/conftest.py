"""Fixtures of the reader tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fresh generator, seed 0, for each test."""
    return np.random.default_rng(0)
