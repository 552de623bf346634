"""The weights policy of Table 3 (§4.2.2): ImageNet required means found locally or an error
naming the method, never silently random; nothing downloads."""

from __future__ import annotations

import dataclasses

import pytest
from table3_harness import QUICK, tiny_images

from tf_bimodal.config.table3 import TABLE3_METHODS
from tf_bimodal.training.table3 import Table3WeightsError, build_method, check_weights

IMAGENET = dataclasses.replace(QUICK, backbone_weights="imagenet")


@pytest.fixture
def empty_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras" / "models"


def test_every_method_is_reported_without_weights(empty_keras_cache, no_network):
    lines = check_weights(IMAGENET)
    assert len(lines) == len(TABLE3_METHODS)
    for name, line in zip(TABLE3_METHODS, lines):
        assert f"'{name}'" in line and "--set table3.backbone_weights=none" in line and "\n" not in line
    assert "Keras ships no ImageNet weights for alexnet" in lines[0]
    assert str(empty_keras_cache / "densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5") in lines[1]
    assert check_weights(QUICK) == []


def test_a_cached_file_satisfies_its_method_at_width_one(empty_keras_cache):
    empty_keras_cache.mkdir(parents=True)
    (empty_keras_cache / "densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"")
    assert check_weights(dataclasses.replace(IMAGENET, methods=("fujioka",), width=1.0)) == []
    narrow = check_weights(dataclasses.replace(IMAGENET, methods=("fujioka",)))
    assert len(narrow) == 1 and "fits width 1 only" in narrow[0]


def test_stackwise_reading_looks_for_table2_vgg16_file(empty_keras_cache):
    config = dataclasses.replace(IMAGENET, methods=("misra2021",), misra2021_reading="stackwise")
    (line,) = check_weights(config)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels.h5" in line


@pytest.mark.parametrize("name", ["yap", "zhang"])
def test_fit_refuses_to_start_from_random_weights(name, empty_keras_cache, no_network, tmp_path):
    method = build_method(name, IMAGENET, seed=0)
    images = tiny_images(32, 4)
    with pytest.raises(Table3WeightsError, match=f"'{name}'.*--set table3.backbone_weights=none") as raised:
        method.fit(images, images, str(tmp_path))
    assert "\n" not in str(raised.value)
