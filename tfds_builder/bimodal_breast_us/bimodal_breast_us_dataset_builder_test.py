"""TFDS conformance tests of the ``bimodal_breast_us`` builder on ``dummy_data/``.

``dummy_data/`` (written by ``make_dummy_data.py``) holds a clinical manifest with 5 pairs
(PNG, JPEG, DICOM and two dual-view screenshots) and a 3-image BUSI layout; the phantom needs
no files. Every test fails on any attempt to open a non-local network connection.
"""

from __future__ import annotations

import socket
from unittest import mock

import tensorflow_datasets as tfds

from tf_bimodal.config import PhantomConfig
from tfds_builder.bimodal_breast_us import bimodal_breast_us_dataset_builder as builder_lib
from tfds_builder.bimodal_breast_us.make_dummy_data import DUMMY_DIR

_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_real_connect = socket.socket.connect


def _guarded_connect(sock, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and host not in _LOCAL_HOSTS and not host.startswith("/"):
        raise AssertionError(f"network access attempted: {address!r}")
    return _real_connect(sock, address)


class _Offline:
    """Mixin (not a test case itself): the builder under test, no checksums, no network."""

    DATASET_CLASS = builder_lib.BimodalBreastUs
    EXAMPLE_DIR = str(DUMMY_DIR)  # this folder's; the builder's code lives in tf_bimodal.data
    SKIP_CHECKSUMS = True  # nothing is downloaded

    def setUp(self):
        super().setUp()
        patcher = mock.patch.object(socket.socket, "connect", _guarded_connect)
        patcher.start()
        self.patchers.append(patcher)


class ClinicalTest(_Offline, tfds.testing.DatasetBuilderTestCase):
    """The clinical manifest: 4 patients, 5 pairs, 4 with masks."""

    BUILDER_CONFIG_NAMES_TO_TEST = ["clinical"]
    SPLITS = {"train": 5}


class BusiTest(_Offline, tfds.testing.DatasetBuilderTestCase):
    """The BUSI layout: benign (two masks), malignant (RGBA mask), normal (empty mask)."""

    BUILDER_CONFIG_NAMES_TO_TEST = ["busi"]
    SPLITS = {"train": 3}


class PhantomTest(_Offline, tfds.testing.DatasetBuilderTestCase):
    """A small phantom (2 patients x 2 pairs, 64 px) with its ground-truth features."""

    BUILDER_CONFIG_NAMES_TO_TEST = [
        builder_lib.BimodalBreastUsConfig(
            name="phantom_test",
            source="phantom",
            image_size=64,
            phantom=PhantomConfig(
                num_benign_patients=1,
                num_malignant_patients=1,
                min_pairs_per_patient=2,
                max_pairs_per_patient=2,
            ),
        )
    ]
    SPLITS = {"train": 4}


if __name__ == "__main__":
    tfds.testing.test_main()
