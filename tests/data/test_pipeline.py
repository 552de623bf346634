"""The tf.data pipeline: normalization, aligned augmentation, batching, selection (§3.1, §3.4)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.config import AugmentConfig, CropConfig
from tf_bimodal.data.pipeline import make_dataset, normalize, select_ids

from helpers import PATTERN_SIZE, geometry_only_augment, pattern_example


def dataset(num=10, size=PATTERN_SIZE):
    examples = [pattern_example(i, size) for i in range(num)]
    columns = {key: np.stack([np.asarray(ex[key]) for ex in examples]) for key in examples[0]}
    return tf.data.Dataset.from_tensor_slices(columns)


def ids_of(ds):
    return [i.decode() for batch in ds for i in batch["image_id"].numpy()]


# --------------------------------------------------------------------------- normalize


def test_normalize_ranges_and_dtypes():
    normalized = normalize(pattern_example())
    for key in ("bmode", "semode", "mask"):
        assert normalized[key].dtype == tf.float32
    assert float(tf.reduce_min(normalized["bmode"])) == 0.0
    assert float(tf.reduce_max(normalized["bmode"])) == 1.0
    assert set(np.unique(normalized["mask"])) == {0.0, 1.0}
    assert normalized["image_id"] == "img00"
    again = normalize(normalized)  # idempotent
    np.testing.assert_array_equal(again["bmode"], normalized["bmode"])


# --------------------------------------------------------------------------- make_dataset


def test_batches_have_expected_shapes_and_dtypes():
    batches = list(make_dataset(dataset(10), batch_size=4, training=False))
    assert [int(b["bmode"].shape[0]) for b in batches] == [4, 4, 2]
    first = batches[0]
    assert first["bmode"].shape == (4, PATTERN_SIZE, PATTERN_SIZE, 1) and first["bmode"].dtype == tf.float32
    assert first["semode"].shape == (4, PATTERN_SIZE, PATTERN_SIZE, 3) and first["semode"].dtype == tf.float32
    assert first["mask"].shape == (4, PATTERN_SIZE, PATTERN_SIZE, 1) and first["mask"].dtype == tf.float32
    assert first["label"].dtype == tf.int64 and first["image_id"].dtype == tf.string
    assert first["has_semode"].dtype == tf.bool


def test_eval_keeps_order_and_training_shuffles():
    ds = dataset(12)
    in_order = [f"img{i:02d}" for i in range(12)]
    assert ids_of(make_dataset(ds, 5, training=False)) == in_order
    training = make_dataset(ds, 5, training=True, seed=0)
    epoch_one, epoch_two = ids_of(training), ids_of(training)
    assert sorted(epoch_one) == in_order and epoch_one != in_order
    assert epoch_two != epoch_one  # reshuffled every epoch


def test_training_pipeline_is_reproducible_by_seed():
    def two_epochs(seed):
        ds = make_dataset(dataset(6), 3, training=True, augment_config=AugmentConfig(), seed=seed)
        return [batch["bmode"].numpy() for _ in range(2) for batch in ds]

    first, again, other = two_epochs(1), two_epochs(1), two_epochs(2)
    assert len(first) == len(again) == len(other) == 4
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert not np.array_equal(np.sort(first[0], 0), np.sort(first[2], 0))  # epochs differ


def test_training_batches_stay_aligned_and_binary():
    ds = make_dataset(dataset(8), 4, training=True, augment_config=geometry_only_augment(), seed=3)
    for batch in ds:
        bmode, semode, mask = (batch[k].numpy() for k in ("bmode", "semode", "mask"))
        assert set(np.unique(mask)) <= {0.0, 1.0}
        np.testing.assert_allclose(semode[..., 1:2], bmode, atol=1e-6)
        assert np.all(bmode[mask == 1] >= 0.25 - 1e-5)
        assert np.all(bmode[mask == 0] <= 0.75 + 1e-5)


def test_select_ids_filters_and_keeps_order():
    wanted = ["img07", "img02", b"img05"]
    assert ids_of(select_ids(dataset(10), wanted).batch(10)) == ["img02", "img05", "img07"]
    assert ids_of(make_dataset(dataset(10), 2, training=False, image_ids=wanted)) == [
        "img02", "img05", "img07"
    ]
    with pytest.raises(ValueError, match="empty"):
        select_ids(dataset(2), [])


def test_crop_and_keys_in_pipeline():
    ds = make_dataset(
        dataset(4), 2, training=False, crop=CropConfig(margin=2, shape="mask"),
        keys=("bmode", "semode", "mask", "label"),
    )
    batch = next(iter(ds))
    assert set(batch) == {"bmode", "semode", "mask", "label"}
    assert batch["bmode"].shape == (2, PATTERN_SIZE, PATTERN_SIZE, 1)  # resized back to the input size
    assert set(np.unique(batch["mask"])) == {0.0, 1.0}
    resized = next(
        iter(make_dataset(dataset(4), 2, training=False, crop=CropConfig(), output_size=16))
    )
    assert resized["semode"].shape == (2, 16, 16, 3)
    plain = next(iter(make_dataset(dataset(4), 2, training=False, output_size=(16, 8))))
    assert plain["mask"].shape == (2, 16, 8, 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"keys": ("bmode", "nope")}, "not in the examples"),
        ({"crop": {"margin": 5}}, "CropConfig"),
    ],
)
def test_make_dataset_bad_arguments(kwargs, match):
    arguments = {"batch_size": 2, "training": False}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        make_dataset(dataset(2), **arguments)


# --------------------------------------------------------------------------- fused augment + crop

FUSED_SIZE = 96


def lesion_dataset(num=8, size=FUSED_SIZE, empty=()):
    """Smooth textured pairs with an elliptic lesion each (none for the indices in ``empty``)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    columns = {key: [] for key in ("image_id", "bmode", "semode", "mask", "has_semode")}
    for i in range(num):
        texture = rng.random((size // 8, size // 8, 4))
        texture = tf.image.resize(texture[None], (size, size), "bicubic")[0].numpy()
        cy, cx = rng.uniform(0.3, 0.7, 2) * size
        ry, rx = rng.uniform(0.08, 0.2, 2) * size
        mask = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).astype(np.uint8)
        if i in empty:
            mask[:] = 0
        image = np.clip(texture * 200 + 40 * mask[..., None], 0, 255).astype(np.uint8)
        columns["image_id"].append(f"img{i:02d}")
        columns["bmode"].append(image[..., :1])
        columns["semode"].append(image[..., 1:])
        columns["mask"].append(mask[..., None])
        columns["has_semode"].append(i % 3 != 2)
    return tf.data.Dataset.from_tensor_slices({k: np.stack(v) for k, v in columns.items()})


def crop_batches(fuse, crop=CropConfig(margin=6), config=AugmentConfig(), output_size=32, ds=None):
    ds = make_dataset(
        lesion_dataset() if ds is None else ds, 4, training=True, augment_config=config,
        seed=5, crop=crop, output_size=output_size, fuse=fuse,
    )
    return [{key: value.numpy() for key, value in batch.items()} for batch in ds]


@pytest.mark.parametrize("crop", [CropConfig(margin=6), None], ids=["lesion crop", "resize"])
def test_fused_step_matches_augment_then_crop(crop):
    """One resampling at the output size gives what augmenting, then cropping, gives."""
    fused, two_step = crop_batches(True, crop), crop_batches(False, crop)
    assert len(fused) == len(two_step) > 0
    for a, b in zip(fused, two_step):
        assert list(a["image_id"]) == list(b["image_id"])  # the same order and draws
        assert a["bmode"].shape == b["bmode"].shape == (len(a["image_id"]), 32, 32, 1)
        assert a["semode"].dtype == np.float32 and set(np.unique(a["mask"])) <= {0.0, 1.0}
        for i in range(len(a["image_id"])):
            fused_mask, reference = a["mask"][i] > 0, b["mask"][i] > 0
            iou = (fused_mask & reference).sum() / max((fused_mask | reference).sum(), 1)
            assert iou > 0.85, (a["image_id"][i], iou)
            for key in ("bmode", "semode"):
                assert np.abs(a[key][i] - b[key][i]).mean() < 0.03, (key, a["image_id"][i])


def test_fused_step_without_augmentation_is_the_crop():
    """With an identity augmentation the fused crop is exactly the crop and resize."""
    identity = AugmentConfig(
        flip_left_right=False, max_rotation_deg=0.0, max_scale=0.0, max_translation=0.0,
        max_brightness=0.0, max_contrast=0.0,
    )
    fused = crop_batches(True, config=identity, output_size=16)
    two_step = crop_batches(False, config=identity, output_size=16)
    assert len(fused) == len(two_step) > 0
    for a, b in zip(fused, two_step):
        np.testing.assert_allclose(a["bmode"], b["bmode"], atol=2e-5)
        np.testing.assert_allclose(a["semode"], b["semode"], atol=2e-5)
        np.testing.assert_array_equal(a["mask"], b["mask"])


def test_fused_step_keeps_the_fill_and_absent_semode_zero():
    far = AugmentConfig(max_rotation_deg=40.0, max_scale=0.3, max_translation=0.3)
    black = lesion_dataset().map(
        lambda e: {**e, "semode": tf.zeros_like(e["semode"]), "has_semode": False}
    )
    for batch in crop_batches(True, crop=None, config=far, ds=black):
        assert not batch["semode"].any()
    fused = crop_batches(True, crop=None, config=far)
    two_step = crop_batches(False, crop=None, config=far)
    assert len(fused) == len(two_step) > 0
    for a, b in zip(fused, two_step):
        fill = b["bmode"] == 0  # sampled from outside the image, after the intensity change
        assert fill.any()
        assert a["bmode"][fill].mean() < 0.01


def test_fused_step_with_an_empty_mask_keeps_the_whole_image():
    ds = lesion_dataset(empty=range(8))
    cropped = crop_batches(True, ds=ds)
    whole = crop_batches(True, crop=None, ds=lesion_dataset(empty=range(8)))
    assert len(cropped) == len(whole) > 0
    for a, b in zip(cropped, whole):
        np.testing.assert_allclose(a["bmode"], b["bmode"], atol=1e-6)


def test_fused_step_is_reproducible_and_the_mask_crop_is_not_fused():
    first, again = crop_batches(True), crop_batches(True)
    assert len(first) == len(again) > 0
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["bmode"], b["bmode"])
    shaped = CropConfig(margin=6, shape="mask")
    fused, two_step = crop_batches(True, crop=shaped), crop_batches(False, crop=shaped)
    assert len(fused) == len(two_step) > 0
    for a, b in zip(fused, two_step):
        np.testing.assert_array_equal(a["bmode"], b["bmode"])


def test_fused_step_reads_float_images_as_uint8_ones_and_leaves_out_an_unasked_mask():
    """Float images in [0, 1] give the uint8 batches; without "mask" in keys none is sampled."""
    as_float = lesion_dataset().map(
        lambda e: {**e, "bmode": tf.cast(e["bmode"], tf.float32) / 255.0,
                   "semode": tf.cast(e["semode"], tf.float32) / 255.0}
    )
    from_uint8, from_float = crop_batches(True), crop_batches(True, ds=as_float)
    assert len(from_uint8) == len(from_float) > 0
    for a, b in zip(from_uint8, from_float):
        for key in ("bmode", "semode"):
            np.testing.assert_allclose(a[key], b[key], atol=1e-6)
        np.testing.assert_array_equal(a["mask"], b["mask"])
    images_only = make_dataset(
        lesion_dataset(), 4, training=True, augment_config=AugmentConfig(), seed=5,
        crop=CropConfig(margin=6), output_size=32, keys=("image_id", "bmode", "semode"),
    )
    images_only = list(images_only)
    assert len(images_only) == len(from_uint8)
    for a, b in zip(images_only, from_uint8):
        assert set(a) == {"image_id", "bmode", "semode"}
        np.testing.assert_array_equal(a["bmode"].numpy(), b["bmode"])


def test_fused_step_needs_the_in_memory_cache(tmp_path):
    """With ``cache`` other than True (none, or a cache file) the two steps run: the fused step
    holds the examples in memory itself."""
    two_step = crop_batches(False)
    fused = crop_batches(True)
    assert len(fused) == len(two_step) > 0
    assert not all(np.array_equal(a["bmode"], b["bmode"]) for a, b in zip(fused, two_step))  # told apart
    for cache in (False, str(tmp_path / "examples")):
        batches = list(make_dataset(
            lesion_dataset(), 4, training=True, augment_config=AugmentConfig(), seed=5,
            crop=CropConfig(margin=6), output_size=32, cache=cache,
        ))
        assert len(batches) == len(two_step), cache
        for a, b in zip(batches, two_step):
            np.testing.assert_array_equal(a["bmode"].numpy(), b["bmode"], err_msg=str(cache))
