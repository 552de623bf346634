"""The single-modal U-Net baseline (paper §4.1.1, Table 1 rows 1-2)."""

from __future__ import annotations

import numpy as np
import pytest

from tf_bimodal.models.segmentation import UNet

from harness import run_model_saving_test, run_model_test
from segmentation_helpers import TINY, random_inputs


@pytest.mark.parametrize("channels, size", [(1, 32), (3, 32), (1, 48)])
def test_unet_output_shape(channels, size):
    model = UNet(input_channels=channels, image_size=size, **TINY)
    assert tuple(model(random_inputs([channels], size=size)).shape) == (2, size, size, 1)
    assert model.modality_weights_model is None


HARNESS_CASES = [
    # constructor arguments, input side
    (dict(input_channels=3, stackwise_num_filters=(4,), bottleneck_filters=4, use_batch_norm=False,
          image_size=(16, 24)), (16, 24)),
]


@pytest.mark.parametrize("kwargs, side", HARNESS_CASES)
def test_unet_harness(kwargs, side, tmp_path):
    """Shapes and saving; the dtypes under mixed policies are checked on ``unet_bmode`` and
    ``unet_semode`` by the factory test."""
    height, width = (side, side) if isinstance(side, int) else side
    image = np.random.default_rng(0).random((2, height, width, kwargs["input_channels"]), dtype=np.float32)
    model = run_model_test(lambda: UNet(**kwargs), [image], (None, height, width, 1), mixed_precision_policies=())
    run_model_saving_test(model, [image], tmp_path)


@pytest.mark.parametrize(
    "kwargs, rule",
    [
        ({"input_channels": 2}, "input_channels must be 1 \\(grey\\) or 3"),
        ({"image_size": 18}, "multiples of 2\\*\\*2 = 4"),
        ({"stackwise_num_filters": [8, 16, 32], "image_size": 36}, "multiples of 2\\*\\*3 = 8"),
    ],
)
def test_unet_rejects_bad_arguments(kwargs, rule):
    with pytest.raises(ValueError, match=rule):
        UNet(**{**TINY, **kwargs})
