"""Qualitative comparison of segmentation models, in the style of Figure 5 (§4.1.2).

One row per test image; the columns are the B-mode image, the SE-mode image, the radiologist's
ground truth and then one predicted mask per model, the proposed model last. Figure 5's caption
gives the colouring of a predicted mask: "the green part is the ground-truth part, and the gray
part is the predicted part. The bright green part is precisely predicted part." Here, on a dark
background:

* ground truth only (missed lesion): green :data:`TRUTH_ONLY_COLOUR`;
* prediction only (false positive): grey :data:`PREDICTION_ONLY_COLOUR`;
* both (correctly predicted lesion): bright green :data:`BOTH_COLOUR`.

Each predicted mask carries its per-image Dice ``2 |T ∩ P| / (|T| + |P|)`` in the corner
(1 when both masks are empty), so the picture can be read against Table 1.
"""

from __future__ import annotations

import os

import numpy as np

BACKGROUND_COLOUR = (0.05, 0.05, 0.05)
TRUTH_ONLY_COLOUR = (0.0, 0.5, 0.0)
PREDICTION_ONLY_COLOUR = (0.6, 0.6, 0.6)
BOTH_COLOUR = (0.3, 1.0, 0.3)
"""RGB in [0, 1] of the mask overlay (Figure 5's caption): dark, green, grey, bright green."""

CELL_INCHES = 1.7
"""Width and height of one panel cell in inches."""

DPI = 110


def _masks(values, argument: str, function: str, count: int | None = None, size=None) -> np.ndarray:
    """``values`` as a bool N x H x W array, accepting a trailing channel of 1."""
    array = np.asarray(values)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    expected = "N x H x W or N x H x W x 1"
    if count is not None:
        expected = f"{count} x {size[0]} x {size[1]} (x 1)"
    if array.ndim != 3 or (count is not None and array.shape != (count, *size)):
        raise ValueError(f"{function}: {argument} must be masks of shape {expected}, got {np.shape(values)}")
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{function}: {argument} must hold 0/1 masks, got values {np.unique(array)[:5]} ...")
    return array.astype(bool)


def _mask_2d(values, argument: str, shape=None) -> np.ndarray:
    """``values`` as a bool H x W mask, accepting a trailing channel of 1."""
    array = np.asarray(values)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2 or (shape is not None and array.shape != tuple(shape)):
        expected = "H x W (x 1)" if shape is None else f"{shape[0]} x {shape[1]} (x 1), like truth"
        raise ValueError(
            f"overlay_masks: {argument} must be a mask of shape {expected}, got {np.shape(values)}"
        )
    return _masks(array[None], argument, "overlay_masks")[0]


def _dice_per_image(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Dice of every image of bool N x H x W masks; 1 where both masks are empty."""
    intersection = np.logical_and(truth, prediction).sum(axis=(1, 2))
    total = truth.sum(axis=(1, 2)) + prediction.sum(axis=(1, 2))
    return np.where(total == 0, 1.0, 2.0 * intersection / np.maximum(total, 1))


def overlay_masks(truth, prediction) -> np.ndarray:
    """Colour one predicted mask against its ground truth as Figure 5 does (§4.1.2).

    Args:
        truth: H x W (or H x W x 1) 0/1 ground-truth mask.
        prediction: predicted 0/1 mask of the same shape.

    Returns:
        H x W x 3 float RGB image in [0, 1]: :data:`BACKGROUND_COLOUR` where neither mask is
        set, :data:`TRUTH_ONLY_COLOUR` (green) for ground truth only,
        :data:`PREDICTION_ONLY_COLOUR` (grey) for prediction only and :data:`BOTH_COLOUR`
        (bright green) where both are set.

    Raises:
        ValueError: masks not 2-D of equal shape, or not 0/1.
    """
    truth_mask = _mask_2d(truth, "truth")
    prediction_mask = _mask_2d(prediction, "prediction", truth_mask.shape)
    image = np.empty((*truth_mask.shape, 3), dtype=np.float64)
    image[:] = BACKGROUND_COLOUR
    image[truth_mask & ~prediction_mask] = TRUTH_ONLY_COLOUR
    image[~truth_mask & prediction_mask] = PREDICTION_ONLY_COLOUR
    image[truth_mask & prediction_mask] = BOTH_COLOUR
    return image


def pick_panel_images(truth, per_model_masks, count: int = 4) -> list:
    """Indices of ``count`` informative test images for the panel, deterministically (§4.1.2).

    Rule: rank the images by the Dice of the reference model (the *last* entry of
    ``per_model_masks``, the proposed W-MM-U-Net in Figure 5) from best to worst, ties broken
    by the lower index, and take the ranks ``round(linspace(0, N - 1, count))``: the best
    image, the worst, and evenly spaced quantiles between. Showing the whole range, and not
    only the best cases, keeps the figure honest about the failures.

    Args:
        truth: N x H x W (x 1) 0/1 ground-truth masks.
        per_model_masks: ``{model name: N x H x W (x 1) 0/1 masks}``, the reference last.
        count: how many images to pick (all N, ranked, when ``count >= N``).

    Returns:
        ``min(count, N)`` distinct indices into the N images, best reference Dice first.

    Raises:
        ValueError: no models, ``count < 1``, or masks of the wrong shape or values.
    """
    if not per_model_masks:
        raise ValueError(
            "pick_panel_images: per_model_masks must hold at least one model (the reference last)"
        )
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"pick_panel_images: count must be an integer >= 1, got {count!r}")
    truth_masks = _masks(truth, "truth", "pick_panel_images")
    reference_name = list(per_model_masks)[-1]
    reference = _masks(per_model_masks[reference_name], f"per_model_masks[{reference_name!r}]",
                       "pick_panel_images", len(truth_masks), truth_masks.shape[1:])
    dice = _dice_per_image(truth_masks, reference)
    ranked = np.argsort(-dice, kind="stable")
    if count >= len(ranked):
        return [int(index) for index in ranked]
    # the spacing between the ranks is >= 1, so rounding keeps them distinct
    ranks = np.round(np.linspace(0, len(ranked) - 1, count)).astype(int)
    return [int(ranked[rank]) for rank in ranks]


def save_segmentation_panel(bmode, semode, truth, predictions, path: str, title: str, image_ids=None) -> str:
    """Write the Figure 5 qualitative comparison of segmentation models to a PNG (§4.1.2).

    Args:
        bmode: N x H x W or N x H x W x 1 uint8 B-mode images (shown in grey).
        semode: N x H x W x 3 uint8 SE-mode (colour elastography) images.
        truth: N x H x W (x 1) 0/1 ground-truth masks.
        predictions: ordered ``{column title: N x H x W (x 1) 0/1 masks}``, one column per
            model in this order (Figure 5: B-mode/U-Net, SE-mode/U-Net, MM-U-Net, W-MM-U-Net).
        path: the PNG file to write; its folder is created.
        title: the figure title (say "synthetic" there for phantom data).
        image_ids: N row labels (e.g. the image ids); the row numbers when None.

    Returns:
        ``path``.

    Raises:
        ValueError: an argument of the wrong shape, dtype or values (the message names it
            and the expected shape), no images, or ``image_ids`` of the wrong length.
    """
    function = "save_segmentation_panel"
    bmode = np.asarray(bmode)
    if bmode.ndim == 4 and bmode.shape[-1] == 1:
        bmode = bmode[..., 0]
    if bmode.ndim != 3 or bmode.shape[0] == 0:
        raise ValueError(
            f"{function}: bmode must be N x H x W or N x H x W x 1 with N >= 1, got {np.shape(bmode)}"
        )
    count, height, width = bmode.shape
    semode = np.asarray(semode)
    if semode.shape != (count, height, width, 3):
        raise ValueError(
            f"{function}: semode must be {count} x {height} x {width} x 3 (RGB), got {semode.shape}"
        )
    for argument, images in (("bmode", bmode), ("semode", semode)):
        if images.dtype != np.uint8:
            raise ValueError(f"{function}: {argument} must be uint8 (0..255), got {images.dtype}")
    truth_masks = _masks(truth, "truth", function, count, (height, width))
    predicted = {
        name: _masks(masks, f"predictions[{name!r}]", function, count, (height, width))
        for name, masks in predictions.items()
    }
    if image_ids is None:
        image_ids = [str(index) for index in range(count)]
    elif len(image_ids) != count:
        raise ValueError(f"{function}: image_ids must label the {count} rows, got {len(image_ids)}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    columns = 3 + len(predicted)
    figure, axes = plt.subplots(
        count, columns, figsize=(CELL_INCHES * columns, CELL_INCHES * count + 0.9),
        squeeze=False, layout="constrained",
    )
    truth_image = np.where(truth_masks[..., None], 1.0, np.array(BACKGROUND_COLOUR))
    dice = {name: _dice_per_image(truth_masks, masks) for name, masks in predicted.items()}
    for row in range(count):
        cells = [
            ("B-mode", lambda ax: ax.imshow(bmode[row], cmap="gray", vmin=0, vmax=255)),
            ("SE-mode", lambda ax: ax.imshow(semode[row])),
            ("ground truth", lambda ax: ax.imshow(truth_image[row], interpolation="nearest")),
        ]
        for name, masks in predicted.items():
            cells.append((name, lambda ax, masks=masks: ax.imshow(
                overlay_masks(truth_masks[row], masks[row]), interpolation="nearest")))
        for column, (column_title, draw) in enumerate(cells):
            ax = axes[row, column]
            draw(ax)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(column_title, fontsize=8)
            if column >= 3:
                ax.text(0.03, 0.97, f"Dice {dice[column_title][row]:.2f}", transform=ax.transAxes,
                        ha="left", va="top", fontsize=7, color="white",
                        bbox={"facecolor": "black", "alpha": 0.6, "pad": 1.0, "linewidth": 0})
        axes[row, 0].set_ylabel(str(image_ids[row]), fontsize=7)
    figure.suptitle(title, fontsize=9)
    legend = [
        Patch(color=TRUTH_ONLY_COLOUR, label="ground truth only (missed)"),
        Patch(color=PREDICTION_ONLY_COLOUR, label="prediction only (false positive)"),
        Patch(color=BOTH_COLOUR, label="both (correctly predicted)"),
    ]
    figure.legend(handles=legend, loc="outside lower center", ncol=3, fontsize=7, frameon=False,
                  title="predicted masks (Dice per image in the corner)", title_fontsize=7)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path
