"""One harness for every Table 3 method (§4.2.2): build, one short fit on tiny random images,
probabilities of the right shape in [0, 1], save and reload with the same predictions."""

from __future__ import annotations

import dataclasses

import numpy as np

from tf_bimodal.config.presets import TABLE3_PRESETS
from tf_bimodal.training.table3 import build_method, load_method, method_input_size

QUICK = dataclasses.replace(TABLE3_PRESETS["quick"], epochs=1, batch_size=8)
"""The quick preset at 32 px and width 0.0625, one epoch."""


def tiny_images(size: int, count: int, seed: int = 0) -> dict:
    """Random ``{"bmode", "semode", "label"}`` with both classes."""
    rng = np.random.default_rng(seed)
    return {"bmode": rng.uniform(size=(count, size, size, 1)).astype("float32"),
            "semode": rng.uniform(size=(count, size, size, 3)).astype("float32"),
            "label": np.arange(count) % 2}


def run_method_test(name: str, config, tmp_path, train_count: int = 16, val_count: int = 8) -> dict:
    """Fit method ``name`` once, check its predictions and its save/reload; returns the record."""
    size = method_input_size(name, config)
    train, val = tiny_images(size, train_count, 0), tiny_images(size, val_count, 1)
    method = build_method(name, config, seed=3)
    assert method.name == name
    record = method.fit(train, val, str(tmp_path / "fit"), label=name)
    assert set(record) >= {"epochs_run", "best_epoch", "backbone_weights", "details"}
    assert record["epochs_run"] >= 1
    assert record["backbone_weights"]["used"] == "random"
    readable = {key: val[key] for key in method.modalities}  # a method reads only its modalities
    probabilities = method.predict(readable)
    assert probabilities.shape == (val_count,)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    method.save(str(tmp_path / "saved"))
    reloaded = load_method(name, config, 3, str(tmp_path / "saved"))
    np.testing.assert_allclose(reloaded.predict(readable), probabilities, rtol=1e-5, atol=1e-6)
    return record
