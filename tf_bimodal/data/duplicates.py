"""Near-duplicate images: the same scan saved twice, found among a set of grey images.

BUSI (Al-Dhabyani et al. 2020) has no patient ids, and it holds near-duplicates: one frame
saved twice, with and without calipers or text burnt in, slightly cropped or resized,
sometimes under two labels. Patient-level splits (paper §3.1, §3.4; :mod:`tf_bimodal.data.splits`)
keep a patient's images together only if near-duplicates share a patient id, so
:func:`find_duplicate_groups` finds them and :func:`tf_bimodal.data.readers.iter_busi` turns
each group into one pseudo-patient.

Method
------
1. **Clean.** The grey image is resized (area interpolation) so that its longer side is
   ``WORKING_SIDE`` = 128 px, then opened (grey erosion, then dilation) with a
   ``MARKER_SIZE`` = 5 px square (about 4 % of the side). The opening removes bright
   structures narrower than the square: caliper crosses and dotted lines, burnt-in text,
   probe markers, all 1-3 px strokes on the native image. Tissue keeps its shape at this scale.
2. **Describe.** The cleaned image and 39 windows of it (``CROP_SCALES``: 95, 90 and 85 % of
   both sides at the 3 x 3 corners, edge centres and centre; 95 and 90 % of one side only, at
   its start, middle and end) are each resized to ``DESCRIPTOR_SIDE`` = 32 px square, stripped
   of their coarse shading (minus a Gaussian blur of sigma ``DETAIL_SIGMA`` = 3 px: the
   depth-dependent gain, the overall brightness) and normalised to zero mean and unit length.
   The dot product of two such vectors is their Pearson correlation: insensitive to
   brightness, contrast and size, and carried by the tissue pattern (fat lobules, Cooper's
   ligaments, the lesion) at 3-30 % of the image size. Without the shading removal, B-mode
   images resemble each other through their bright near field and dark far field: plain
   thumbnails of different BUSI scans correlate at 0.54 in the median and up to 0.93.
3. **Compare.** The similarity of images a and b is the largest correlation of a's whole
   image with b's whole image or any of b's windows, or the other way round. A crop of a few
   % per side (or one side cropped by up to about 10 %, a black border added, another
   aspect ratio) is matched by the window that covers the same tissue. All similarities come
   from one matrix product per block of rows, ``n x 40 n`` dot products of 1024 values,
   without a loop over pairs: a few seconds for 1000 images on two cores.
4. **Group.** Pairs at or above ``MATCH_THRESHOLD`` = 0.72 are joined; the groups are the
   connected components (union-find), so A ~ B and B ~ C put A, B and C in one group.

Why these thresholds
--------------------
Measured on the 416 real BUSI images of the development set and the sample (86,320 pairs),
the pairs near the threshold checked by eye. Copies of one frame (with and without calipers
or text, cropped, resized, filed under two labels) score 0.81-1.00, 80 % of them above 0.95.
The synthetic edits of ``tests/data/test_duplicates.py`` on real images (calipers and text,
5 % crops of all sides or of two, an 8 % crop of two sides, resizing to 60 %, another aspect
ratio, a black border, a gamma and gain change, all of them at once) score 0.82 or more.
Scans of different women score at most 0.62; of all pairs left apart, 99.99 % score below
0.62 and 99.9 % below 0.54. 0.72 lies in the gap, about 0.1 from either side. Between the two
lie other frames of one lesion (the probe moved a little, 0.6-0.85): those above 0.72 are
merged, the others not, so a group holds the copies of a scan but not every image of a woman.
The marker size is a trade-off: 3 px leaves more of the calipers (drawn ones score 0.93
instead of 0.99) and weakens crop matches (0.74 for the 8 % crop); 7 px lifts unrelated
pairs (up to 0.70). A flat image (one grey level) has no pattern and matches nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

WORKING_SIDE = 128
"""Longer side (px) of the image that is cleaned and cropped."""

MARKER_SIZE = 5
"""Side (px at ``WORKING_SIDE``) of the square opening that removes calipers, text and markers."""

DESCRIPTOR_SIDE = 32
"""Side of the square thumbnail compared (``DESCRIPTOR_SIDE ** 2`` values)."""

DETAIL_SIGMA = 3.0
"""Gaussian sigma (px at ``DESCRIPTOR_SIDE``) of the shading taken off each thumbnail."""

CROP_SCALES = ((0.95, 0.95), (0.9, 0.9), (0.85, 0.85), (1.0, 0.95), (0.95, 1.0), (1.0, 0.9), (0.9, 1.0))
"""(height, width) of the windows, as fractions of the image's: the crops that are tolerated."""

CROP_POSITIONS = 3
"""Windows per scale along each axis (3: start, middle and end)."""

MATCH_THRESHOLD = 0.72
"""Images whose similarity (a correlation) is at least this are near-duplicates."""

_ROW_BLOCK = 256
"""Rows of the similarity matrix computed at once (bounds the memory to about 20 MB for 1000 images)."""


def _as_grey(image, where: str) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    elif array.ndim == 3 and array.shape[-1] in (3, 4):
        array = cv2.cvtColor(np.ascontiguousarray(array[..., :3]).astype(np.float32), cv2.COLOR_RGB2GRAY)
    if array.ndim != 2 or min(array.shape) < 2:
        raise ValueError(
            f"{where}: expected a grey (H, W) or (H, W, 1) or an RGB (H, W, 3) image of at least "
            f"2 x 2 pixels, got shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_:
        raise ValueError(f"{where}: expected numeric pixels, got {array.dtype}")
    return array.astype(np.float32)


def cleaned_image(image, where: str = "image") -> np.ndarray:
    """Step 1 of the module docstring: float32, longer side ``WORKING_SIDE``, opened.

    Args:
        image: grey ``(H, W)`` / ``(H, W, 1)`` or RGB ``(H, W, 3)``, any numeric type.
        where: names the image in errors.

    Raises:
        ValueError: another shape, fewer than 2 x 2 pixels, or non-numeric pixels.
    """
    grey = _as_grey(image, where)
    height, width = grey.shape
    scale = WORKING_SIDE / max(height, width)
    size = (max(DESCRIPTOR_SIDE, round(width * scale)), max(DESCRIPTOR_SIDE, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(grey, size, interpolation=interpolation)
    element = cv2.getStructuringElement(cv2.MORPH_RECT, (MARKER_SIZE, MARKER_SIZE))
    return cv2.morphologyEx(small, cv2.MORPH_OPEN, element)


def _windows(image: np.ndarray) -> list[np.ndarray]:
    height, width = image.shape
    windows = [image]
    for height_scale, width_scale in CROP_SCALES:
        window_height, window_width = round(height * height_scale), round(width * width_scale)
        rows = range(CROP_POSITIONS) if window_height < height else [0]
        columns = range(CROP_POSITIONS) if window_width < width else [0]
        for row in rows:
            for column in columns:
                top = round((height - window_height) * row / (CROP_POSITIONS - 1))
                left = round((width - window_width) * column / (CROP_POSITIONS - 1))
                windows.append(image[top:top + window_height, left:left + window_width])
    return windows


def _thumbnail_vectors(windows: list[np.ndarray]) -> np.ndarray:
    side = (DESCRIPTOR_SIDE, DESCRIPTOR_SIDE)
    thumbnails = np.stack([cv2.resize(window, side, interpolation=cv2.INTER_AREA) for window in windows], axis=-1)
    detail = thumbnails - cv2.GaussianBlur(thumbnails, (0, 0), DETAIL_SIGMA).reshape(thumbnails.shape)
    vectors = detail.reshape(-1, len(windows)).T.astype(np.float64)
    vectors -= vectors.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    flat = norms < 1e-6 * vectors.shape[1]  # a flat image has no pattern: it matches nothing
    vectors = np.where(flat, 0.0, vectors / np.where(flat, 1.0, norms))
    return vectors.astype(np.float32)


def image_descriptor(image, where: str = "image") -> np.ndarray:
    """Steps 1-2 of the module docstring: one unit vector per window.

    Returns:
        float32 ``(1 + len(CROP_SCALES) * CROP_POSITIONS**2, DESCRIPTOR_SIDE**2)``; row 0
        describes the whole image, the others its windows. All zeros for a flat image.

    Raises:
        ValueError: see :func:`cleaned_image`.
    """
    return _thumbnail_vectors(_windows(cleaned_image(image, where)))


def similarity_matrix(descriptors: np.ndarray) -> np.ndarray:
    """Step 3: ``(n, n)`` float32 similarities of the images of ``descriptors``, symmetric.

    ``similarity[a, b]`` is the largest correlation of a's whole image with b's whole image or
    a window of b, or of b's whole image with a window of a. The diagonal is each image's
    self-similarity (1, or 0 for a flat image).

    Args:
        descriptors: ``(n, windows, values)``, the stacked :func:`image_descriptor` of n images.

    Raises:
        ValueError: ``descriptors`` not of that shape.
    """
    descriptors = np.asarray(descriptors, dtype=np.float32)
    if descriptors.ndim != 3 or descriptors.shape[1] < 1:
        raise ValueError(
            f"descriptors: expected shape (images, windows, values), got {descriptors.shape}"
        )
    count, windows, values = descriptors.shape
    wholes = descriptors[:, 0]
    every_window = descriptors.reshape(count * windows, values)
    whole_to_any = np.empty((count, count), np.float32)
    for start in range(0, count, _ROW_BLOCK):
        block = wholes[start:start + _ROW_BLOCK] @ every_window.T
        whole_to_any[start:start + _ROW_BLOCK] = block.reshape(-1, count, windows).max(axis=-1)
    return np.maximum(whole_to_any, whole_to_any.T)


def matching_pairs(similarity: np.ndarray, threshold: float = MATCH_THRESHOLD) -> list[tuple[int, int]]:
    """Index pairs ``(a, b)``, ``a < b``, whose similarity is at least ``threshold``, sorted."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    rows, columns = np.nonzero(np.triu(np.asarray(similarity) >= threshold, k=1))
    return [(int(a), int(b)) for a, b in zip(rows, columns)]


def connected_groups(count: int, pairs: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Step 4: the connected components of ``count`` items joined by ``pairs`` (union-find).

    Returns:
        Every component of more than one item, each sorted, sorted by their first item.
    """
    parent = list(range(count))

    def root(item: int) -> int:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for first, second in pairs:
        if not (0 <= first < count and 0 <= second < count):
            raise ValueError(f"pairs: index out of range 0..{count - 1}: {(first, second)}")
        first_root, second_root = root(first), root(second)
        if first_root != second_root:
            parent[max(first_root, second_root)] = min(first_root, second_root)
    members: dict[int, list[int]] = {}
    for item in range(count):
        members.setdefault(root(item), []).append(item)
    return sorted((group for group in members.values() if len(group) > 1), key=lambda group: group[0])


def find_duplicate_groups(images: Sequence, threshold: float = MATCH_THRESHOLD,
                          names: Sequence[str] | None = None) -> list[list[int]]:
    """Groups of near-duplicate images (the whole method of the module docstring).

    Args:
        images: grey ``(H, W)`` / ``(H, W, 1)`` or RGB images of any sizes.
        threshold: the similarity at which two images are near-duplicates.
        names: optional names of the images, used in errors.

    Returns:
        The indices of each group of two or more near-duplicates, each group sorted, the
        groups sorted by their first index; images that match no other are in no group.

    Raises:
        ValueError: a bad image (naming it) or threshold.
    """
    if names is not None and len(names) != len(images):
        raise ValueError(f"names: {len(names)} names for {len(images)} images")
    if not images:
        return []
    descriptors = np.stack([
        image_descriptor(image, names[index] if names is not None else f"images[{index}]")
        for index, image in enumerate(images)
    ])
    return connected_groups(len(images), matching_pairs(similarity_matrix(descriptors), threshold))
