"""Lesion cropping (paper §3.1, Fig. S2) on hand-made masks with known boxes."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.data.cropping import crop_pair, dilate_square, mask_bounding_box

SIZE = 32


def box_mask(y0, x0, y1, x1, size=SIZE):
    mask = np.zeros((size, size, 1), np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def ramp_images(size=SIZE):
    """B-mode and SE-mode whose pixel values encode their position, so crops can be traced."""
    rows, cols = np.mgrid[0:size, 0:size]
    bmode = (rows * size + cols).astype(np.float32)[..., None]
    semode = np.stack([bmode[..., 0], bmode[..., 0] + 1, bmode[..., 0] + 2], axis=-1)
    return bmode, semode


def as_ints(box):
    return tuple(int(v) for v in box)


@pytest.mark.parametrize(
    "lesion, margin, expected",
    [
        ((10, 12, 15, 20), 0, (10, 12, 15, 20)),
        ((10, 12, 15, 20), 3, (7, 9, 18, 23)),
        ((2, 1, 5, 4), 5, (0, 0, 10, 9)),  # clipped at the top-left
        ((28, 29, 32, 32), 4, (24, 25, 32, 32)),  # clipped at the bottom-right
        ((10, 12, 15, 20), 50, (0, 0, SIZE, SIZE)),  # the paper's margin on a tiny image
        ((16, 16, 17, 17), 0, (16, 16, 17, 17)),  # a single pixel
    ],
)
def test_bounding_box(lesion, margin, expected):
    assert as_ints(mask_bounding_box(box_mask(*lesion), margin)) == expected


def test_bounding_box_of_two_blobs_and_2d_mask():
    mask = box_mask(3, 4, 6, 8)[..., 0] + box_mask(20, 18, 25, 22)[..., 0]
    assert as_ints(mask_bounding_box(mask, 1)) == (2, 3, 26, 23)


def test_empty_mask_gives_full_image():
    assert as_ints(mask_bounding_box(np.zeros((SIZE, 24, 1), np.uint8), 5)) == (0, 0, SIZE, 24)


def test_crop_pair_cuts_both_modalities_identically():
    bmode, semode = ramp_images()
    mask = box_mask(10, 12, 15, 20)
    bmode_crop, semode_crop, mask_crop = crop_pair(bmode, semode, mask, margin=2)
    np.testing.assert_array_equal(bmode_crop, bmode[8:17, 10:22])
    np.testing.assert_array_equal(semode_crop, semode[8:17, 10:22])
    np.testing.assert_array_equal(mask_crop, mask[8:17, 10:22])
    assert bmode_crop.dtype == tf.float32 and mask_crop.dtype == tf.uint8


def test_mask_shape_blanks_pixels_beyond_the_margin():
    bmode, semode = ramp_images()
    bmode += 1  # no zero pixel, so every zero in the output was blanked
    semode += 1
    # An L-shaped lesion: its box holds pixels far from the mask.
    mask = np.zeros((SIZE, SIZE, 1), np.uint8)
    mask[8:24, 8:11] = 1
    mask[21:24, 8:24] = 1
    margin = 2
    bmode_crop, semode_crop, mask_crop = crop_pair(bmode, semode, mask, margin=margin, shape="mask")
    y0, x0, y1, x1 = as_ints(mask_bounding_box(mask, margin))
    near = np.zeros((SIZE, SIZE), bool)
    for y, x in zip(*np.nonzero(mask[..., 0])):  # Chebyshev distance <= margin
        near[max(y - margin, 0) : y + margin + 1, max(x - margin, 0) : x + margin + 1] = True
    near = near[y0:y1, x0:x1]
    assert not near.all()  # the test would be void otherwise
    np.testing.assert_array_equal(bmode_crop.numpy()[..., 0] != 0, near)
    np.testing.assert_array_equal(np.all(semode_crop.numpy() != 0, -1), near)
    np.testing.assert_array_equal(bmode_crop.numpy()[near], bmode[y0:y1, x0:x1][near])
    np.testing.assert_array_equal(mask_crop, mask[y0:y1, x0:x1])


def test_dilate_square_matches_hand_result():
    mask = np.zeros((7, 7, 1), np.uint8)
    mask[3, 3] = 1
    expected = np.zeros((7, 7, 1), np.float32)
    expected[2:5, 2:5] = 1
    np.testing.assert_array_equal(dilate_square(mask, 1), expected)
    np.testing.assert_array_equal(dilate_square(mask, 0), mask.astype(np.float32))


def test_empty_mask_keeps_full_unblanked_image():
    bmode, semode = ramp_images()
    empty = np.zeros((SIZE, SIZE, 1), np.uint8)
    for shape in ("rectangle", "mask"):
        bmode_crop, semode_crop, _ = crop_pair(bmode, semode, empty, margin=3, shape=shape)
        np.testing.assert_array_equal(bmode_crop, bmode)
        np.testing.assert_array_equal(semode_crop, semode)


def test_output_size_resizes_and_keeps_mask_binary():
    bmode, semode = ramp_images()
    mask = box_mask(10, 12, 15, 20)
    bmode_crop, semode_crop, mask_crop = crop_pair(
        bmode.astype(np.uint8), semode.astype(np.uint8), mask, margin=3, output_size=16
    )
    assert bmode_crop.shape == (16, 16, 1) and semode_crop.shape == (16, 16, 3)
    assert mask_crop.shape == (16, 16, 1)
    assert bmode_crop.dtype == tf.uint8 and mask_crop.dtype == tf.uint8
    assert set(np.unique(mask_crop)) == {0, 1}


def test_batched_crop_matches_single_crops():
    bmode, semode = ramp_images()
    masks = np.stack([box_mask(10, 12, 15, 20), box_mask(0, 0, 4, 6)])
    bmodes, semodes = np.stack([bmode, bmode]), np.stack([semode, semode])
    batch = crop_pair(bmodes, semodes, masks, margin=2, output_size=(8, 8))
    for index in range(2):
        single = crop_pair(bmode, semode, masks[index], margin=2, output_size=(8, 8))
        assert len(batch) == len(single) == 3
        for got, want in zip(batch, single):
            np.testing.assert_allclose(got[index], want)


def test_works_inside_tf_function_with_unknown_sizes():
    bmode, semode = ramp_images()
    mask = box_mask(10, 12, 15, 20)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, 1], tf.float32),
            tf.TensorSpec([None, None, 3], tf.float32),
            tf.TensorSpec([None, None, 1], tf.uint8),
        ]
    )
    def crop(b, s, m):
        return crop_pair(b, s, m, margin=2, shape="mask", output_size=(12, 12))

    got = crop(bmode, semode, mask)
    want = crop_pair(bmode, semode, mask, margin=2, shape="mask", output_size=(12, 12))
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w)
    empty = crop(bmode, semode, np.zeros_like(mask))  # no error inside the graph
    assert empty[0].shape == (12, 12, 1)


def test_works_in_tf_data_map():
    bmode, semode = ramp_images()
    masks = np.stack([box_mask(10, 12, 15, 20), np.zeros((SIZE, SIZE, 1), np.uint8)])
    ds = tf.data.Dataset.from_tensor_slices(
        {"bmode": np.stack([bmode] * 2), "semode": np.stack([semode] * 2), "mask": masks}
    )
    ds = ds.map(lambda ex: crop_pair(ex["bmode"], ex["semode"], ex["mask"], margin=1))
    shapes = [tuple(b.shape) for b, _, _ in ds]
    assert shapes == [(7, 10, 1), (SIZE, SIZE, 1)]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"margin": -1}, "margin must be >= 0"),
        ({"margin": 2.5}, "non-negative int"),
        ({"shape": "circle"}, "shape must be one of"),
        ({"output_size": (0, 4)}, "output_size"),
        ({"semode": np.zeros((16, SIZE, 3), np.float32)}, "same height and width"),
        ({"mask": np.zeros((SIZE, 16, 1), np.uint8)}, "same height and width"),
        ({"semode": np.zeros((SIZE, SIZE), np.float32)}, "both be"),
        ({"mask": np.zeros((SIZE,), np.uint8)}, "mask must be"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    bmode, semode = ramp_images()
    arguments = {"bmode": bmode, "semode": semode, "mask": box_mask(10, 12, 15, 20)}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        crop_pair(**arguments)


def test_batch_needs_output_size():
    bmode, semode = ramp_images()
    with pytest.raises(ValueError, match="needs output_size"):
        crop_pair(bmode[None], semode[None], box_mask(1, 1, 3, 3)[None])


def test_bounding_box_bad_arguments():
    with pytest.raises(ValueError, match="margin must be >= 0"):
        mask_bounding_box(box_mask(1, 1, 3, 3), -2)
    with pytest.raises(ValueError, match="mask must be"):
        mask_bounding_box(np.zeros((2, 2, 2, 1)), 1)


def test_survives_saved_model_round_trip(tmp_path):
    bmode, semode = ramp_images()
    mask = box_mask(10, 12, 15, 20)

    class Cropper(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None, SIZE, SIZE, 1], tf.float32),
                tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32),
                tf.TensorSpec([None, SIZE, SIZE, 1], tf.uint8),
            ]
        )
        def __call__(self, b, s, m):
            return crop_pair(b, s, m, margin=2, shape="mask", output_size=(12, 12))

    path = str(tmp_path / "cropper")
    tf.saved_model.save(Cropper(), path)
    restored = tf.saved_model.load(path)
    got = restored(bmode[None], semode[None], mask[None])
    want = crop_pair(bmode, semode, mask, margin=2, shape="mask", output_size=(12, 12))
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        np.testing.assert_allclose(g[0], w)
