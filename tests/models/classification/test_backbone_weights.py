"""Initial weights of the VGG-16 backbone: ImageNet, none or a local file (paper §3.3.2)."""

from __future__ import annotations

import dataclasses
import re

import keras
import numpy as np
import pytest

from tf_bimodal.models.classification import VGG16Backbone, load_backbone_weights
from tf_bimodal.models.classification import backbone_weights as backbone_weights_lib
from tf_bimodal.models.classification.backbone_weights import (
    IMAGENET_WEIGHTS_FILE,
    IMAGENET_WEIGHTS_URL,
    BackboneWeightsUnavailable,
    check_backbone_weights,
    keras_cache_dir,
)
from tf_bimodal.training.classification import build_classifier_for_training

from classification_helpers import SIZE, TINY, tiny_backbone


def _fail_offline():
    raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]")


def test_imagenet_unavailable_falls_back_to_random_and_records_it():
    backbone = VGG16Backbone(image_shape=(SIZE, SIZE, 3))
    before = backbone.get_layer("block1_conv1").kernel.numpy().copy()
    lines = []
    with pytest.warns(UserWarning, match="RANDOM initialisation"):
        record = load_backbone_weights(backbone, "imagenet", loader=_fail_offline, log=lines.append)
    assert record["requested"] == "imagenet" and record["used"] == "random"
    assert "URL fetch failure" in record["reason"]
    assert any("WARNING" in line for line in lines)
    np.testing.assert_array_equal(backbone.get_layer("block1_conv1").kernel.numpy(), before)
    with pytest.raises(RuntimeError, match="unavailable"):
        load_backbone_weights(backbone, "imagenet", allow_fallback=False, loader=_fail_offline)
    np.testing.assert_array_equal(backbone.get_layer("block1_conv1").kernel.numpy(), before)


def test_imagenet_weights_copied_by_name_when_available():
    source = keras.applications.VGG16(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    backbone = VGG16Backbone(image_shape=(SIZE, SIZE, 3))
    record = load_backbone_weights(backbone, "imagenet", loader=lambda: source)
    assert record == {"requested": "imagenet", "used": "imagenet", "reason": None, "layers": 13}
    np.testing.assert_array_equal(backbone.get_layer("block3_conv2").bias.numpy(),
                                  source.get_layer("block3_conv2").bias.numpy())


def test_weights_none_file_and_narrow_imagenet(tmp_path):
    backbone = tiny_backbone()
    assert load_backbone_weights(backbone, "none")["used"] == "random"
    with pytest.raises(ValueError, match="standard VGG-16"):
        load_backbone_weights(backbone, "imagenet", loader=_fail_offline)
    path = str(tmp_path / "tiny.weights.h5")
    backbone.save_weights(path)
    other = tiny_backbone()
    record = load_backbone_weights(other, path)
    assert record["used"] == path
    np.testing.assert_array_equal(other.get_layer("fc2").kernel.numpy(), backbone.get_layer("fc2").kernel.numpy())
    with pytest.raises(ValueError, match="existing file"):
        load_backbone_weights(other, str(tmp_path / "missing.h5"))


# --------------------------------------------------------------------------- the weights policy


def test_required_imagenet_weights_fail_with_how_to_provide_them():
    backbone = VGG16Backbone(image_shape=(SIZE, SIZE, 3))
    with pytest.raises(BackboneWeightsUnavailable) as caught:
        load_backbone_weights(backbone, "imagenet", allow_fallback=False, loader=_fail_offline)
    message = str(caught.value)
    assert isinstance(caught.value, RuntimeError)
    assert "backbone_weights='imagenet' was required" in message  # what was asked for
    assert "URL fetch failure" in message  # why it failed
    assert IMAGENET_WEIGHTS_FILE in message and "classification.backbone_weights=PATH" in message  # how to fix
    assert "require_backbone_weights false" in message


@pytest.mark.parametrize("allow_fallback", [True, False])
def test_a_missing_weights_path_is_an_error_naming_it(tmp_path, allow_fallback):
    missing = tmp_path / "nowhere" / "vgg16.weights.h5"
    with pytest.raises(ValueError, match=f"existing file.*{re.escape(str(missing))} does not exist"):
        load_backbone_weights(tiny_backbone(), str(missing), allow_fallback=allow_fallback, loader=_fail_offline)
    with pytest.raises(ValueError, match=f"{re.escape(str(tmp_path))} is a folder"):
        load_backbone_weights(tiny_backbone(), str(tmp_path), allow_fallback=allow_fallback)


def test_a_weights_file_that_does_not_load_is_an_error_naming_it(tmp_path):
    path = tmp_path / "broken.weights.h5"
    path.write_bytes(b"not an HDF5 file")
    with pytest.raises(ValueError, match=f"weights file {re.escape(str(path))} could not be loaded"):
        load_backbone_weights(tiny_backbone(), str(path))


def _standard_config(**fields):
    """The paper's standard VGG-16 on 32-pixel inputs (no adaptive pooling), small heads."""
    return dataclasses.replace(TINY, stackwise_num_filters=(64, 128, 256, 512, 512),
                               stackwise_num_repeats=(2, 2, 3, 3, 3), fc_units=4096, pooled_size=None, **fields)


def test_training_falls_back_by_default_and_fails_when_weights_are_required():
    with pytest.warns(UserWarning, match="RANDOM initialisation"):
        _, records, normalization = build_classifier_for_training(
            "vgg16_bmode", _standard_config(backbone_weights="imagenet"), loader=_fail_offline
        )
    assert [record["used"] for record in records.values()] == ["random"]
    assert normalization == "standardize"
    required = _standard_config(backbone_weights="imagenet", require_backbone_weights=True)
    with pytest.raises(BackboneWeightsUnavailable, match="was required"):
        build_classifier_for_training("vgg16_bmode", required, loader=_fail_offline)


def test_training_refuses_a_missing_weights_file_even_with_the_fallback(tmp_path):
    config = dataclasses.replace(TINY, backbone_weights=str(tmp_path / "missing.weights.h5"))
    assert not config.require_backbone_weights
    with pytest.raises(ValueError, match="missing.weights.h5 does not exist"):
        build_classifier_for_training("vgg16_bmode", config, loader=_fail_offline)


def test_check_backbone_weights_before_training(tmp_path):
    fetched = []
    check_backbone_weights("none", required=False, fetch=_fail_offline)
    check_backbone_weights(None, fetch=_fail_offline)
    check_backbone_weights("imagenet", required=False, fetch=_fail_offline)  # falls back later, with a warning
    check_backbone_weights("imagenet", required=True, fetch=lambda: fetched.append(1) or "/cache/vgg16.h5")
    assert fetched == [1]
    with pytest.raises(BackboneWeightsUnavailable, match="is required .*URL fetch failure.*" + IMAGENET_WEIGHTS_FILE):
        check_backbone_weights("imagenet", required=True, fetch=_fail_offline)
    path = tmp_path / "vgg16.weights.h5"
    path.write_bytes(b"")
    check_backbone_weights(str(path), required=True)
    with pytest.raises(ValueError, match="check_backbone_weights: .*absent.h5 does not exist"):
        check_backbone_weights(str(tmp_path / "absent.h5"), required=False)


def test_required_weights_error_speaks_the_command_lines_words(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(backbone_weights_lib, "fetch_imagenet_weights_file", _fail_offline)  # the default fetch
    with pytest.raises(BackboneWeightsUnavailable) as caught:
        check_backbone_weights("imagenet", required=True)
    settings, command_line = str(caught.value), caught.value.command_line
    assert "classification.backbone_weights=PATH" in settings and "--backbone-weights" not in settings
    assert "\n" not in command_line and "classification.backbone_weights=PATH" not in command_line
    assert "--backbone-weights PATH" in command_line and "--backbone-weights none" in command_line
    assert IMAGENET_WEIGHTS_URL in command_line and "URL fetch failure" in command_line
    cached = str(tmp_path / "keras" / "models" / IMAGENET_WEIGHTS_FILE)
    assert keras_cache_dir() == str(tmp_path / "keras" / "models") and cached in command_line and cached in settings
    assert BackboneWeightsUnavailable("a message").command_line == "a message"
