"""Classifier batches from the experiment arrays (``tf_bimodal.data.inputs``)."""

from __future__ import annotations

import numpy as np
import pytest

from tf_bimodal.config import CropConfig
from tf_bimodal.data.inputs import classification_dataset, load_predicted_masks, save_predicted_masks

SIZE = 64


def lesion_arrays(count=6):
    """Dark images with a bright 12-pixel square lesion, its mask, at a place per image."""
    bmode = np.full((count, SIZE, SIZE, 1), 20, np.uint8)
    mask = np.zeros((count, SIZE, SIZE, 1), np.uint8)
    for i in range(count):
        top = 10 + 5 * i
        bmode[i, top:top + 12, 20:32] = 220
        mask[i, top:top + 12, 20:32] = 1
    return {
        "image_id": np.array([f"img{i}" for i in range(count)]),
        "patient_id": np.array([f"p{i}" for i in range(count)]),
        "label": (np.arange(count) % 2).astype(np.int64),
        "bmode": bmode,
        "semode": np.repeat(bmode, 3, axis=-1),
        "mask": mask,
        "has_semode": np.ones(count, bool),
        "has_mask": np.ones(count, bool),
    }


@pytest.mark.parametrize("training", [False, True])
def test_the_context_crop_is_the_same_lesion_with_more_around_it(training):
    arrays = lesion_arrays()
    ids = list(arrays["image_id"])
    ds = classification_dataset(arrays, ids, ("bmode", "bmode_context"), 32, CropConfig(margin=0), batch_size=4,
                                training=training, augment=training, seed=3, with_metadata=True,
                                context_crop=CropConfig(margin=16))
    seen = []
    for inputs, labels in ds:
        tight, wide = inputs["bmode"].numpy(), inputs["bmode_context"].numpy()
        assert tight.shape == wide.shape and tight.shape[1:] == (32, 32, 1)
        # The tight crop is mostly lesion; the wide one, under the same augmentation draws,
        # holds the dark tissue around it.
        assert np.all(tight.mean(axis=(1, 2, 3)) > wide.mean(axis=(1, 2, 3)) + 0.25)
        np.testing.assert_array_equal(inputs["label"].numpy(), labels.numpy())
        seen += [i.decode() for i in inputs["image_id"].numpy()]
    assert sorted(seen) == sorted(ids)


def test_a_context_input_without_a_context_crop_is_refused():
    arrays = lesion_arrays(2)
    with pytest.raises(ValueError, match=r"need a context_crop"):
        classification_dataset(arrays, list(arrays["image_id"]), ("bmode", "bmode_context"), 32, CropConfig())


def test_predicted_masks_round_trip(tmp_path):
    masks = np.zeros((3, 4, 4, 1), np.uint8)
    masks[1, 1:3, 1:3] = 1
    path = save_predicted_masks(str(tmp_path / "m" / "predicted_masks.npz"), ["a", "b", "c"], masks, rule="test")
    loaded = load_predicted_masks(path)
    assert list(loaded) == ["a", "b", "c"]
    assert loaded["b"].dtype == np.uint8 and loaded["b"].shape == (4, 4) and loaded["b"].sum() == 4
    with pytest.raises(ValueError, match="N masks"):
        save_predicted_masks(str(tmp_path / "x.npz"), ["a"], masks)
