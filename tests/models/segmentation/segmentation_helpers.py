"""Tiny segmenters and inputs shared by the segmentation model tests (paper §3.2, §4.1.1)."""

from __future__ import annotations

import numpy as np

from tf_bimodal.config import SegmentationConfig

TINY = dict(stackwise_num_filters=(4, 8), bottleneck_filters=8)
"""Two levels of 4 and 8 filters: any side that is a multiple of 4 works."""

TINY_CONFIG = SegmentationConfig(image_size=32, auto_weight_filters=(4,), batch_size=4, learning_rate=1e-2, **TINY)

RNG = np.random.default_rng(0)


def random_inputs(channels, batch=2, size=32):
    """One random (batch, size, size, c) image in [0, 1) per entry of ``channels``."""
    return [RNG.random((batch, size, size, c), dtype=np.float32) for c in channels]


def random_example_inputs(batch=2, size=32):
    """``{"bmode", "semode"}`` random images, the example-dict input of every segmenter."""
    bmode, semode = random_inputs([1, 3], batch, size)
    return {"bmode": bmode, "semode": semode}


def blob_batch(batch=4, size=32, seed=0):
    """B-mode with a dark disc, SE red inside the disc and blue outside, mask = the disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks, bmodes, semodes = [], [], []
    for index in range(batch):
        cy, cx, radius = 10 + 3 * index, 12 + 2 * index, 6 + index
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < radius**2).astype(np.float32)
        masks.append(disc[..., None])
        bmodes.append((0.7 - 0.5 * disc + 0.05 * rng.random((size, size)))[..., None])
        semodes.append(np.stack([disc, 0.3 * np.ones_like(disc), 1 - disc], axis=-1))
    return {"bmode": np.float32(bmodes), "semode": np.float32(semodes)}, np.float32(masks)
