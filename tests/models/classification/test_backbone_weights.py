"""Initial weights of the VGG-16 backbone: ImageNet, none or a local file (paper §3.3.2)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_bimodal.models.classification import VGG16Backbone, load_backbone_weights

from classification_helpers import SIZE, tiny_backbone


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
