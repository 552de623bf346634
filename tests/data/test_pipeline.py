"""The tf.data pipeline: normalization, aligned augmentation, batching, selection (§3.1, §3.4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.config import AugmentConfig, CropConfig
from tf_bimodal.data.pipeline import (
    apply_transform,
    augment,
    draw_augmentation,
    draw_values_batch,
    make_dataset,
    normalize,
    select_ids,
    transform_matrix,
    uniform_draws,
)

SIZE = 32
GEOMETRY_ONLY = AugmentConfig(
    max_rotation_deg=25.0, max_scale=0.2, max_translation=0.1, max_brightness=0.0, max_contrast=0.0
)


def pattern(size=SIZE):
    """An asymmetric binary pattern: a block, a bar and a dot, so flips and turns show."""
    image = np.zeros((size, size), np.uint8)
    image[6:14, 5:12] = 1
    image[20:23, 8:28] = 1
    image[25:28, 24:27] = 1
    return image


def example(index=0, size=SIZE, has_semode=True):
    binary = pattern(size)
    return {
        "image_id": f"img{index:02d}",
        "patient_id": f"p{index // 2:02d}",
        "label": np.int64(index % 2),
        "bmode": (binary * 255)[..., None],
        "semode": np.repeat((binary * 255)[..., None], 3, axis=-1) if has_semode
        else np.zeros((size, size, 3), np.uint8),
        "mask": binary[..., None],
        "has_semode": has_semode,
        "has_mask": True,
    }


def dataset(num=10, size=SIZE):
    examples = [example(i, size) for i in range(num)]
    columns = {key: np.stack([np.asarray(ex[key]) for ex in examples]) for key in examples[0]}
    return tf.data.Dataset.from_tensor_slices(columns)


def ids_of(ds):
    return [i.decode() for batch in ds for i in batch["image_id"].numpy()]


# --------------------------------------------------------------------------- normalize


def test_normalize_ranges_and_dtypes():
    normalized = normalize(example())
    for key in ("bmode", "semode", "mask"):
        assert normalized[key].dtype == tf.float32
    assert float(tf.reduce_min(normalized["bmode"])) == 0.0
    assert float(tf.reduce_max(normalized["bmode"])) == 1.0
    assert set(np.unique(normalized["mask"])) == {0.0, 1.0}
    assert normalized["image_id"] == "img00"
    again = normalize(normalized)  # idempotent
    np.testing.assert_array_equal(again["bmode"], normalized["bmode"])


# --------------------------------------------------------------------------- augment


def test_transform_matrix_identity_and_flip_are_exact():
    image = tf.constant(np.random.default_rng(0).random((SIZE, 24, 2)), tf.float32)
    identity = transform_matrix(SIZE, 24, False, 0.0, 1.0, (0.0, 0.0))
    np.testing.assert_allclose(apply_transform(image, identity, "BILINEAR"), image, atol=1e-6)
    flip = transform_matrix(SIZE, 24, True, 0.0, 1.0, (0.0, 0.0))
    np.testing.assert_allclose(
        apply_transform(image, flip, "BILINEAR"), image.numpy()[:, ::-1], atol=1e-6
    )
    shift = transform_matrix(SIZE, 24, False, 0.0, 1.0, (3.0, 2.0))  # down 3, right 2
    moved = apply_transform(image, shift, "NEAREST").numpy()
    np.testing.assert_allclose(moved[3:, 2:], image.numpy()[:-3, :-2], atol=1e-6)
    assert not moved[:3].any() and not moved[:, :2].any()  # fill value 0


def test_quarter_turn_matches_rot90():
    image = tf.constant(np.random.default_rng(1).random((SIZE, SIZE, 1)), tf.float32)
    turn = transform_matrix(SIZE, SIZE, False, math.pi / 2, 1.0, (0.0, 0.0))
    turned = apply_transform(image, turn, "NEAREST").numpy()
    assert any(np.allclose(turned, np.rot90(image.numpy(), k)) for k in (1, 3))


@pytest.mark.parametrize("seed", [(0, 0), (1, 2), (7, 3), (11, 5)])
def test_augment_moves_bmode_semode_and_mask_together(seed):
    original = normalize(example())
    augmented = augment(original, tf.constant(seed), GEOMETRY_ONLY)
    bmode = augmented["bmode"].numpy()[..., 0]
    semode = augmented["semode"].numpy()
    mask = augmented["mask"].numpy()[..., 0]
    assert not np.array_equal(mask, original["mask"].numpy()[..., 0])  # it did move
    assert set(np.unique(mask)) <= {0.0, 1.0}  # nearest keeps it binary
    for channel in range(3):
        np.testing.assert_allclose(semode[..., channel], bmode, atol=1e-6)
    # Bilinear of a binary image is >= 0.25 where the nearest source pixel is 1 and <= 0.75
    # where it is 0; a mask moved differently from the images would break this.
    assert np.all(bmode[mask == 1] >= 0.25 - 1e-5)
    assert np.all(bmode[mask == 0] <= 0.75 + 1e-5)
    assert mask.sum() > 0


def test_flip_only_gives_original_or_mirror():
    config = AugmentConfig(
        max_rotation_deg=0.0, max_scale=0.0, max_translation=0.0,
        max_brightness=0.0, max_contrast=0.0,
    )
    original = normalize(example())
    outcomes = set()
    for seed in range(12):
        mask = augment(original, tf.constant([seed, 0]), config)["mask"].numpy()
        if np.array_equal(mask, original["mask"].numpy()):
            outcomes.add("same")
        else:
            np.testing.assert_array_equal(mask, original["mask"].numpy()[:, ::-1])
            outcomes.add("flipped")
    assert outcomes == {"same", "flipped"}


def test_intensity_changes_images_only():
    config = AugmentConfig(
        flip_left_right=False, max_rotation_deg=0.0, max_scale=0.0, max_translation=0.0,
        max_brightness=0.2, max_contrast=0.2,
    )
    original = normalize(example())
    # Mid-grey values, so clipping at 0 and 1 cannot hide a change.
    original["bmode"] = 0.25 + 0.5 * original["bmode"]
    original["semode"] = 0.25 + 0.5 * original["semode"]
    augmented = augment(original, tf.constant([3, 4]), config)
    np.testing.assert_array_equal(augmented["mask"], original["mask"])
    assert not np.allclose(augmented["bmode"], original["bmode"])
    assert not np.allclose(augmented["semode"], original["semode"])
    for key in ("bmode", "semode"):
        values = augmented[key].numpy()
        assert 0.0 <= values.min() <= values.max() <= 1.0


def test_absent_semode_stays_zero():
    original = normalize(example(has_semode=False))
    augmented = augment(original, tf.constant([5, 6]), AugmentConfig(max_brightness=0.5))
    assert not np.any(augmented["semode"].numpy())


def test_augment_is_deterministic_by_seed():
    original = normalize(example())
    first = augment(original, tf.constant([1, 2]), AugmentConfig())
    second = augment(original, tf.constant([1, 2]), AugmentConfig())
    other = augment(original, tf.constant([2, 1]), AugmentConfig())
    for key in ("bmode", "semode", "mask"):
        np.testing.assert_array_equal(first[key], second[key])
    assert not np.array_equal(first["bmode"], other["bmode"])
    generated = [
        augment(original, tf.random.Generator.from_seed(9), AugmentConfig())["bmode"]
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*generated)


def test_augment_refuses_unnormalized_images_and_bad_seeds():
    with pytest.raises(ValueError, match="normalize first"):
        augment({k: tf.constant(v) for k, v in example().items()}, tf.constant([0, 0]))
    with pytest.raises(ValueError, match="seed"):
        augment(normalize(example()), tf.constant([1, 2, 3]))


def test_uniform_draws_are_uniform_independent_and_the_same_per_pair_or_batch():
    seeds = tf.constant(np.random.default_rng(0).integers(-2**62, 2**62, size=(20000, 2)), tf.int64)
    u = uniform_draws(seeds, 9).numpy()
    assert u.shape == (20000, 9) and u.dtype == np.float32
    assert u.min() >= 0.0 and u.max() < 1.0
    np.testing.assert_allclose(u.mean(axis=0), 0.5, atol=0.01)
    np.testing.assert_allclose(u.std(axis=0), 1 / math.sqrt(12), atol=0.005)
    for k in range(10):  # a 10-bin histogram of every draw flat within 4 binomial SDs
        share = ((u >= k / 10) & (u < (k + 1) / 10)).mean(axis=0)
        np.testing.assert_allclose(share, 0.1, atol=0.0085)
    correlation = np.corrcoef(u.T) - np.eye(9)
    assert np.abs(correlation).max() < 0.03
    # Neighbouring seeds (counters) are not correlated either.
    counters = tf.stack([tf.range(20000, dtype=tf.int64), tf.zeros(20000, tf.int64)], axis=1)
    v = uniform_draws(counters, 1).numpy()[:, 0]
    assert abs(np.corrcoef(v[:-1], v[1:])[0, 1]) < 0.03 and abs(v.mean() - 0.5) < 0.01
    # One pair gives the same values alone as inside any batch.
    np.testing.assert_array_equal(uniform_draws(seeds[7], 9).numpy(), u[7])
    np.testing.assert_array_equal(uniform_draws(seeds[5:9], 9).numpy(), u[5:9])


def test_batch_draws_are_the_per_example_draws_and_respect_the_ranges():
    config = AugmentConfig(max_rotation_deg=10.0, max_scale=0.1, max_translation=0.05,
                           max_brightness=0.2, max_contrast=0.3)
    seeds = tf.constant(np.random.default_rng(1).integers(0, 2**40, size=(256, 2)), tf.int64)
    values = draw_values_batch(seeds, config).numpy()
    assert values.shape == (256, 9)
    for i in (0, 100):  # what augment() draws for one example
        drawn = draw_augmentation(seeds[i], config, SIZE, SIZE)
        np.testing.assert_array_equal(drawn["bmode_intensity"].numpy(), values[i, 5:7])
        np.testing.assert_array_equal(drawn["semode_intensity"].numpy(), values[i, 7:9])
    limits = [(0, 1), (-math.radians(10), math.radians(10)), (0.9, 1.1), (-0.05, 0.05), (-0.05, 0.05),
              (-0.2, 0.2), (0.7, 1.3), (-0.2, 0.2), (0.7, 1.3)]
    for k, (low, high) in enumerate(limits):
        assert low <= values[:, k].min() and values[:, k].max() <= high
        assert values[:, k].max() - values[:, k].min() > 0.8 * (high - low)
    no_flip = draw_values_batch(seeds, AugmentConfig(flip_left_right=False)).numpy()
    assert (no_flip[:, 0] == 1.0).all()
    with pytest.raises(ValueError, match="seed"):
        uniform_draws(tf.constant([0.5, 1.5]), 9)


# --------------------------------------------------------------------------- make_dataset


def test_batches_have_expected_shapes_and_dtypes():
    batches = list(make_dataset(dataset(10), batch_size=4, training=False))
    assert [int(b["bmode"].shape[0]) for b in batches] == [4, 4, 2]
    first = batches[0]
    assert first["bmode"].shape == (4, SIZE, SIZE, 1) and first["bmode"].dtype == tf.float32
    assert first["semode"].shape == (4, SIZE, SIZE, 3) and first["semode"].dtype == tf.float32
    assert first["mask"].shape == (4, SIZE, SIZE, 1) and first["mask"].dtype == tf.float32
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
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert not np.array_equal(np.sort(first[0], 0), np.sort(first[2], 0))  # epochs differ


def test_training_batches_stay_aligned_and_binary():
    ds = make_dataset(dataset(8), 4, training=True, augment_config=GEOMETRY_ONLY, seed=3)
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
    assert batch["bmode"].shape == (2, SIZE, SIZE, 1)  # resized back to the input size
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
    for a, b in zip(fused, two_step):
        fill = b["bmode"] == 0  # sampled from outside the image, after the intensity change
        assert fill.any()
        assert a["bmode"][fill].mean() < 0.01


def test_fused_step_with_an_empty_mask_keeps_the_whole_image():
    ds = lesion_dataset(empty=range(8))
    cropped = crop_batches(True, ds=ds)
    whole = crop_batches(True, crop=None, ds=lesion_dataset(empty=range(8)))
    for a, b in zip(cropped, whole):
        np.testing.assert_allclose(a["bmode"], b["bmode"], atol=1e-6)


def test_fused_step_is_reproducible_and_the_mask_crop_is_not_fused():
    first, again = crop_batches(True), crop_batches(True)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["bmode"], b["bmode"])
    shaped = CropConfig(margin=6, shape="mask")
    for a, b in zip(crop_batches(True, crop=shaped), crop_batches(False, crop=shaped)):
        np.testing.assert_array_equal(a["bmode"], b["bmode"])


def test_fused_step_reads_float_images_as_uint8_ones_and_leaves_out_an_unasked_mask():
    """Float images in [0, 1] give the uint8 batches; without "mask" in keys none is sampled."""
    as_float = lesion_dataset().map(
        lambda e: {**e, "bmode": tf.cast(e["bmode"], tf.float32) / 255.0,
                   "semode": tf.cast(e["semode"], tf.float32) / 255.0}
    )
    for a, b in zip(crop_batches(True), crop_batches(True, ds=as_float)):
        for key in ("bmode", "semode"):
            np.testing.assert_allclose(a[key], b[key], atol=1e-6)
        np.testing.assert_array_equal(a["mask"], b["mask"])
    images_only = make_dataset(
        lesion_dataset(), 4, training=True, augment_config=AugmentConfig(), seed=5,
        crop=CropConfig(margin=6), output_size=32, keys=("image_id", "bmode", "semode"),
    )
    for a, b in zip(images_only, crop_batches(True)):
        assert set(a) == {"image_id", "bmode", "semode"}
        np.testing.assert_array_equal(a["bmode"].numpy(), b["bmode"])


def test_fused_step_needs_the_in_memory_cache():
    """With ``cache`` other than True the two steps run (the fused step holds the examples)."""
    uncached = make_dataset(
        lesion_dataset(), 4, training=True, augment_config=AugmentConfig(), seed=5,
        crop=CropConfig(margin=6), output_size=32, cache=False,
    )
    for a, b in zip(uncached, crop_batches(False)):
        np.testing.assert_array_equal(a["bmode"].numpy(), b["bmode"])
