"""Fixtures of the phantom tests: the small cohort they render and a large one for class
statistics (§3.1). Each is drawn once per test module."""

from __future__ import annotations

import pytest

from tf_bimodal.config import PhantomConfig
from tf_bimodal.data import phantom

from helpers import small_phantom


@pytest.fixture(scope="module")
def small_patients():
    """The patients of :func:`helpers.small_phantom`."""
    return phantom.sample_patients(small_phantom())


@pytest.fixture(scope="module")
def cohort():
    """A larger cohort of parameters only (no rendering) for class statistics."""
    return phantom.sample_patients(PhantomConfig(num_benign_patients=200, num_malignant_patients=200, seed=1))
