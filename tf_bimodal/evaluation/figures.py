"""Every figure the package draws: Figure 5, Figure 6, the grid search, data examples.

* :func:`save_segmentation_panel` (Figure 5), :func:`save_roc_figure` (Figure 6 and each
  classifier's ``roc.png``; :func:`draw_roc_curves` also draws TensorBoard's ROC image),
  :func:`save_grid_figure` (the grid search of §3.4), :func:`save_examples_figure` (a data
  set's examples) and :func:`save_phantom_montage` (the phantom's README figure). Figures
  are PNG files written with Matplotlib's ``Agg`` backend.

**Figure 5: qualitative comparison of segmentation models** (§4.1.2).

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

import io
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from tf_bimodal.config import GridSearchConfig, PhantomConfig
from tf_bimodal.data import phantom
from tf_bimodal.evaluation.classification import roc_points

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
    bmode, semode, truth_masks, predicted, image_ids = _check_panel_inputs(
        bmode, semode, truth, predictions, image_ids
    )
    count = len(bmode)

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
            ("B-mode", lambda ax, row=row: ax.imshow(bmode[row], cmap="gray", vmin=0, vmax=255)),
            ("SE-mode", lambda ax, row=row: ax.imshow(semode[row])),
            ("ground truth", lambda ax, row=row: ax.imshow(truth_image[row], interpolation="nearest")),
        ]
        for name, masks in predicted.items():
            cells.append((name, lambda ax, masks=masks, row=row: ax.imshow(
                overlay_masks(truth_masks[row], masks[row]), interpolation="nearest")))
        _draw_panel_row(axes[row], cells, dice, row)
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


def _check_panel_inputs(bmode, semode, truth, predictions, image_ids):
    """:func:`save_segmentation_panel`'s arguments checked: ``(bmode N x H x W, semode,
    truth masks, {column title: masks}, image_ids)``, the masks as bool arrays."""
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
    return bmode, semode, truth_masks, predicted, image_ids


def _draw_panel_row(row_axes, cells, dice: dict, row: int):
    """One row of Figure 5: each ``(column title, draw)`` cell drawn without ticks, the
    titles on the first row, each predicted mask (from the fourth column) with its Dice."""
    for column, (column_title, draw) in enumerate(cells):
        ax = row_axes[column]
        draw(ax)
        ax.set_xticks([])
        ax.set_yticks([])
        if row == 0:
            ax.set_title(column_title, fontsize=8)
        if column >= 3:
            ax.text(0.03, 0.97, f"Dice {dice[column_title][row]:.2f}", transform=ax.transAxes,
                    ha="left", va="top", fontsize=7, color="white",
                    bbox={"facecolor": "black", "alpha": 0.6, "pad": 1.0, "linewidth": 0})


# --------------------------------------------------------------------------- data examples


def _as_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def save_examples_figure(examples, path, title: str, captions=None, panel_size: float = 2.4):
    """Save a PNG grid: one row per example, columns B-mode | SE-mode | mask over B-mode.

    Args:
        examples: schema dicts (numpy values) as the data sources yield them.
        path: output PNG path (written atomically: a temporary file, then a rename).
        title: figure title; say there whether the data are synthetic.
        captions: optional list of one string per example, shown above its B-mode panel.
        panel_size: inches per panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    examples = list(examples)
    if not examples:
        raise ValueError("save_examples_figure: no examples to draw")
    rows = len(examples)
    fig, axes = plt.subplots(rows, 3, figsize=(3 * panel_size, rows * panel_size + 0.6), squeeze=False)
    for row, example in enumerate(examples):
        bmode = np.asarray(example["bmode"])[..., 0]
        semode = np.asarray(example["semode"])
        mask = np.asarray(example["mask"])[..., 0]
        caption = captions[row] if captions else (
            f"{_as_text(example['image_id'])}"
        )
        axes[row, 0].imshow(bmode, cmap="gray", vmin=0, vmax=255)
        axes[row, 0].set_title(caption, fontsize=8)
        if bool(example.get("has_semode", True)):
            axes[row, 1].imshow(semode)
            axes[row, 1].set_title("SE-mode", fontsize=8)
        else:
            axes[row, 1].set_facecolor("white")
            axes[row, 1].text(0.5, 0.5, "no SE image\nin this data set", ha="center", va="center", fontsize=9)
        axes[row, 2].imshow(bmode, cmap="gray", vmin=0, vmax=255)
        if mask.any():
            axes[row, 2].contour(mask, levels=[0.5], colors=["lime"], linewidths=1.0)
        axes[row, 2].set_title("mask" if bool(example.get("has_mask", True)) else "no mask", fontsize=8)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = str(path)
    tmp_path = path + ".tmp.png"
    fig.savefig(tmp_path, dpi=80)
    plt.close(fig)
    tf.io.gfile.rename(tmp_path, path, overwrite=True)
    return path


def save_phantom_montage(path, config: PhantomConfig | None = None, num_per_class: int = 3,
                         image_size: int = 256) -> None:
    """Save a PNG grid of phantom examples: B-mode | SE-mode | mask outline over B-mode.

    Rows show the first ``num_per_class`` benign and malignant patients (view 0), each titled
    with its label, elasticity score and stiffness ratio.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if num_per_class < 1:
        raise ValueError(f"save_phantom_montage: num_per_class must be >= 1, got {num_per_class}")
    config = config or PhantomConfig()
    patients = phantom.sample_patients(config)
    chosen = [p for p in patients if p.label == "benign"][:num_per_class]
    chosen += [p for p in patients if p.label == "malignant"][:num_per_class]
    rows = len(chosen)
    fig, axes = plt.subplots(rows, 3, figsize=(7.2, 2.45 * rows + 0.5), squeeze=False)
    for row, patient in enumerate(chosen):
        example = phantom.render_pair(patient, 0, image_size, config.seed)
        bmode = example["bmode"][:, :, 0]
        truth = example["ground_truth"]
        axes[row, 0].imshow(bmode, cmap="gray", vmin=0, vmax=255)
        axes[row, 0].set_title(
            f"{patient.label}: {truth['shape_class']}, {truth['margin']}\n"
            f"{truth['orientation']}, posterior {truth['posterior']}",
            fontsize=7,
        )
        axes[row, 1].imshow(example["semode"])
        axes[row, 1].set_title(
            f"SE: score {truth['elasticity_score']}, ratio {truth['stiffness_ratio']:.1f}",
            fontsize=7,
        )
        axes[row, 2].imshow(bmode, cmap="gray", vmin=0, vmax=255)
        axes[row, 2].contour(example["mask"][:, :, 0], levels=[0.5], colors=["lime"], linewidths=0.8)
        axes[row, 2].set_title(f"mask ({patient.patient_id})", fontsize=7)
        for axis in axes[row]:
            axis.set_xticks([])
            axis.set_yticks([])
    fig.suptitle("Synthetic phantom (not patient data): B-mode | SE-mode | mask", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    # Speckle compresses badly; a 256-colour palette keeps the figure small enough for a repo.
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    image.save(path, format="PNG", optimize=True)


# --------------------------------------------------------------------------- ROC curves (Fig. 6)


def draw_roc_curves(axes, curves: dict, title: str, operating_point=None, auc_digits: int = 2,
                    legend_fontsize: float = 7) -> None:
    """Draw ROC curves on Matplotlib ``axes`` (Fig. 6), for the report and for TensorBoard.

    Each curve is a line with its AUC in the legend (``"<label> (AUC 0.93)"``, or
    ``"AUC 0.930"`` for an unlabelled one), over the chance diagonal, with false positive rate
    on x and true positive rate on y.

    Args:
        axes: the Matplotlib axes.
        curves: ``{legend label: RocCurve or None}``
            (:func:`tf_bimodal.evaluation.classification.roc_points`); None, a set of one class
            only, is named in the title, or said on the axes when no curve is drawn.
        title: the axes title.
        operating_point: optional ``(fpr, tpr, legend label)``, drawn as a red dot (the
            decision threshold) when a curve is drawn.
        auc_digits: decimals of the AUC in the legend.
        legend_fontsize: font size of the legend.
    """
    skipped = [label for label, roc in curves.items() if roc is None]
    for label, roc in curves.items():
        if roc is not None:
            auc = f"AUC {roc.auc:.{auc_digits}f}"
            axes.plot(roc.fpr, roc.tpr, label=f"{label} ({auc})" if label else auc)
    drawn = len(skipped) < len(curves)
    if drawn and operating_point is not None:
        point_fpr, point_tpr, point_label = operating_point
        axes.plot([point_fpr], [point_tpr], "o", color="red", label=point_label)
    if not drawn and not any(skipped):
        axes.text(0.5, 0.5, "one class only: no ROC curve", ha="center", va="center")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set_xlabel("1 - specificity (false positive rate)")
    axes.set_ylabel("sensitivity (true positive rate)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    if any(skipped):
        title += f"\n(no ROC for {', '.join(label for label in skipped if label)}: one class only)"
    axes.set_title(title, fontsize=9)
    if drawn:
        axes.legend(loc="lower right", fontsize=legend_fontsize)


def save_roc_figure(curves, path: str, title: str = "ROC curves") -> str:
    """Plot ROC curves to a PNG (Fig. 6).

    Args:
        curves: ``{legend label: (labels, scores)}``; the AUC is added to each label.
        path: the PNG file to write.
        title: the figure title (say "synthetic" there for phantom data).

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 5.0))
    draw_roc_curves(axes, {label: roc_points(labels, scores) for label, (labels, scores) in curves.items()}, title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


# --------------------------------------------------------------------------- grid search (Table S4)


def save_grid_figure(path, models, grid: GridSearchConfig, title: str) -> str:
    """Heatmaps of validation Dice over learning rate x batch size, one per model and loss;
    the chosen setting of each model is framed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learning_rates, batch_sizes, losses = grid.learning_rates, grid.batch_sizes, grid.losses
    figure, axes = plt.subplots(
        len(models), len(losses), squeeze=False, layout="constrained",
        figsize=(
            (0.5 * len(batch_sizes) + 1.6) * len(losses) + 1.2,
            (0.35 * len(learning_rates) + 1.3) * len(models) + 0.8,
        ),
    )
    image = None
    for row_axes, (model_name, result) in zip(axes, models.items()):
        for ax, loss in zip(row_axes, losses):
            scores = np.full((len(learning_rates), len(batch_sizes)), np.nan)
            for row in result["settings"]:
                if row["loss"] == loss and row["val_dice"] is not None:
                    scores[learning_rates.index(row["learning_rate"]), batch_sizes.index(row["batch_size"])] = (
                        row["val_dice"]
                    )
            image = ax.imshow(scores, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
            for (i, j), value in np.ndenumerate(scores):
                text = "-" if np.isnan(value) else f"{value:.2f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="black" if not np.isnan(value) and value > 0.6 else "white")
            chosen = result["chosen_row"]
            if chosen is not None and chosen["loss"] == loss:
                i, j = learning_rates.index(chosen["learning_rate"]), batch_sizes.index(chosen["batch_size"])
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
            ax.set_xticks(range(len(batch_sizes)), [str(b) for b in batch_sizes], fontsize=7)
            ax.set_yticks(range(len(learning_rates)), [f"{lr:.0e}" for lr in learning_rates], fontsize=7)
            ax.set_xlabel("batch size", fontsize=7)
            ax.set_ylabel("learning rate", fontsize=7)
            ax.set_title(f"{model_name}, {loss} loss", fontsize=8)
    figure.suptitle(title, fontsize=8)
    if image is not None:
        colorbar = figure.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8)
        colorbar.set_label("best validation Dice", fontsize=7)
        colorbar.ax.tick_params(labelsize=7)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


# --------------------------------------------------------------------------- a prediction


def _case_arrays(bmode, mask, box) -> tuple:
    """A case's B-mode image and mask as 2-D arrays, and its crop box as ints."""
    bmode = np.asarray(bmode)
    bmode = bmode[..., 0] if bmode.ndim == 3 else bmode
    mask = np.asarray(mask)
    mask = mask[..., 0] if mask.ndim == 3 else mask
    return bmode, mask, tuple(int(v) for v in box)


def _save_case_figure(plt, figure, lines: list[str], path: str) -> str:
    """Title a case's figure with ``lines`` and write it to ``path`` atomically; returns ``path``."""
    figure.suptitle("\n".join(lines), fontsize=7)
    figure.tight_layout()
    tmp_path = f"{path}.tmp.png"
    figure.savefig(tmp_path, dpi=100)
    plt.close(figure)
    os.replace(tmp_path, path)
    return path


def save_prediction_overlay(bmode, semode, mask, box, p_malignant: float, label: str, threshold: float,
                            path: str, title: str = "", notice: str | None = None) -> str:
    """One case's picture: B-mode and SE-mode side by side with the lesion contour and the crop
    box, titled with p(malignant), the label and the threshold (the CAD chain of §3.1-§3.3).

    Args:
        bmode: uint8 ``(H, W)`` or ``(H, W, 1)``.
        semode: uint8 ``(H, W, 3)``, or None for a B-mode-only case (the panel says so).
        mask: ``(H, W)`` 0/1 lesion mask.
        box: ``[y0, x0, y1, x1]`` crop box (ends exclusive).
        p_malignant, label, threshold: the classifier's output.
        path: the PNG to write (atomically: a temporary file, then a rename).
        title: the case's name.
        notice: a warning printed across the top (the synthetic-data notice).

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    bmode, mask, (y0, x0, y1, x1) = _case_arrays(bmode, mask, box)
    height, width = bmode.shape
    panel = 3.2
    figure, axes = plt.subplots(1, 2, figsize=(2 * panel, panel * height / max(width, 1) + 0.9), squeeze=False)
    for axis, (name, image) in zip(axes[0], (("B-mode", bmode), ("SE-mode", semode))):
        if image is None:
            axis.set_facecolor("black")
            axis.text(0.5, 0.5, "SE-mode not available\n(B-mode only)", ha="center", va="center", color="white",
                      fontsize=8, transform=axis.transAxes)
        else:
            axis.imshow(image, cmap="gray" if image.ndim == 2 or image.shape[-1] == 1 else None, vmin=0, vmax=255)
            if mask.any():
                axis.contour(mask, levels=[0.5], colors=["lime"], linewidths=1.0)
            axis.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="yellow",
                                     linewidth=1.0, linestyle="--"))
        axis.set_title(name, fontsize=8)
        axis.set_xticks([])
        axis.set_yticks([])
    lines = [f"{title}: {label}, p(malignant) {p_malignant:.3f} (threshold {threshold:.3f})",
             "lesion contour green, crop box yellow" if mask.any() else "no lesion found: the whole image is the crop"]
    return _save_case_figure(plt, figure, [notice, *lines] if notice else lines, path)


# --------------------------------------------------------------------------- training curves, confusion


def _panel_grid(plt, count: int, max_columns: int, width: float, height: float):
    """A figure of ``count`` panels, at most ``max_columns`` a row, each ``width`` x ``height`` inches."""
    columns = min(max_columns, count)
    rows = -(-count // columns)
    return plt.subplots(rows, columns, figsize=(width * columns, height * rows + 0.6), squeeze=False)


def _save_panel_grid(plt, figure, axes, used: int, title: str, path: str) -> str:
    for axis in axes.ravel()[used:]:
        axis.axis("off")
    figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def save_training_curves(histories: dict, path: str, title: str = "") -> str | None:
    """One panel per run: the training and validation loss of every fold over the epochs, and
    the validation score the run selects on (``val_dice`` or ``val_accuracy``) on a second axis.

    Args:
        histories: ``{run name: [one dict of per-epoch lists per fold]}`` (a fold's
            ``history.csv`` columns: ``loss``, ``val_loss``, ``val_dice``, ...).
        path: the PNG to write.
        title: the figure title (say "synthetic" there for phantom data).

    Returns:
        ``path``, or None when there is no history.
    """
    histories = {name: [h for h in folds if h.get("loss")] for name, folds in histories.items()}
    histories = {name: folds for name, folds in histories.items() if folds}
    if not histories:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, axes = _panel_grid(plt, len(histories), 4, 3.4, 2.6)
    for axis, (name, folds) in zip(axes.ravel(), histories.items()):
        score_axis = axis.twinx()
        for number, history in enumerate(folds):
            epochs = np.arange(1, len(history["loss"]) + 1)
            axis.plot(epochs, history["loss"], color="tab:blue", linewidth=0.8, alpha=0.7,
                      label="train loss" if number == 0 else None)
            if history.get("val_loss"):
                axis.plot(epochs, history["val_loss"], color="tab:orange", linewidth=0.8, alpha=0.7,
                          label="val loss" if number == 0 else None)
            score = "val_dice" if history.get("val_dice") else "val_accuracy"
            if history.get(score):
                score_axis.plot(epochs, history[score], color="tab:green", linewidth=0.8, linestyle="--",
                                label=score if number == 0 else None)
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axis.set_title(f"{name} ({len(folds)} folds)", fontsize=8)
        axis.set_xlabel("epoch", fontsize=7)
        axis.set_ylabel("loss", fontsize=7)
        score_axis.set_ylim(0, 1)
        axis.tick_params(labelsize=6)
        score_axis.tick_params(labelsize=6)
        handles = axis.get_legend_handles_labels()[0] + score_axis.get_legend_handles_labels()[0]
        axis.legend(handles=handles, fontsize=6, loc="upper right")
    return _save_panel_grid(plt, figure, axes, len(histories), title, path)


def save_confusion_matrices(matrices: dict, path: str, title: str = "") -> str | None:
    """One 2 x 2 confusion matrix per classifier (rows: true benign / malignant; columns:
    predicted), with counts and the row shares.

    Args:
        matrices: ``{run name: [[TN, FP], [FN, TP]]}``.
        path: the PNG to write.
        title: the figure title.

    Returns:
        ``path``, or None when there is no matrix.
    """
    if not matrices:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = _panel_grid(plt, len(matrices), 5, 2.4, 2.4)
    for axis, (name, counts) in zip(axes.ravel(), matrices.items()):
        counts = np.asarray(counts, dtype=np.int64)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        axis.imshow(shares, vmin=0, vmax=1, cmap="Blues")
        for (i, j), value in np.ndenumerate(counts):
            axis.text(j, i, f"{value}\n{100 * shares[i, j]:.0f} %", ha="center", va="center", fontsize=7,
                      color="white" if shares[i, j] > 0.6 else "black")
        axis.set_xticks([0, 1], ["benign", "malignant"], fontsize=6)
        axis.set_yticks([0, 1], ["benign", "malignant"], fontsize=6)
        axis.set_xlabel("predicted", fontsize=6)
        axis.set_ylabel("true", fontsize=6)
        axis.set_title(name, fontsize=7)
    return _save_panel_grid(plt, figure, axes, len(matrices), title, path)


# --------------------------------------------------------------------------- B-mode-only cases, external validation


def save_bmode_prediction_overlay(bmode, mask, box, p_malignant: float, label: str, threshold: float,
                                  path: str, title: str = "", notice: str | None = None) -> str:
    """One case of a B-mode-only pipeline: the B-mode image alone with the lesion contour and
    the crop box, titled with p(malignant), the label and the threshold (no SE-mode column:
    the pipeline reads none). Arguments as :func:`save_prediction_overlay`'s; returns ``path``,
    written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    bmode, mask, (y0, x0, y1, x1) = _case_arrays(bmode, mask, box)
    height, width = bmode.shape
    panel = 4.8  # wide enough for the title lines
    figure, axis = plt.subplots(figsize=(panel, min(panel * height / max(width, 1), 2 * panel) + 0.9))
    axis.imshow(bmode, cmap="gray", vmin=0, vmax=255)
    if mask.any():
        axis.contour(mask, levels=[0.5], colors=["lime"], linewidths=1.0)
    axis.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="yellow",
                             linewidth=1.0, linestyle="--"))
    axis.set_xticks([])
    axis.set_yticks([])
    lines = [f"{title}: {label}, p(malignant) {p_malignant:.3f} (threshold {threshold:.3f})",
             "B-mode only; " + ("lesion contour green, crop box yellow" if mask.any()
                                else "no lesion found: the whole image is the crop")]
    return _save_case_figure(plt, figure, [notice, *lines] if notice else lines, path)


def save_operating_roc_figure(curves: dict, operating_points: dict, path: str, title: str) -> str:
    """ROC curves side by side (one panel each, e.g. per image and per patient), each with its
    operating point (the exported threshold) as a red dot.

    Args:
        curves: ``{panel title: RocCurve or None}`` (:func:`~tf_bimodal.evaluation.classification.roc_points`).
        operating_points: ``{panel title: (fpr, tpr, legend label)}``; a panel without one has no dot.
        path: the PNG to write.
        title: the figure title.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = _panel_grid(plt, len(curves), 3, 4.2, 4.0)
    for axis, (name, roc) in zip(axes.ravel(), curves.items()):
        draw_roc_curves(axis, {"": roc}, name, operating_point=operating_points.get(name), auc_digits=3)
    return _save_panel_grid(plt, figure, axes, len(curves), title, path)


def save_dice_histogram(dice, path: str, title: str, missed_below: float) -> str:
    """Histogram of per-image lesion Dice in 20 bins over [0, 1], with the missed-lesion
    threshold (:data:`tf_bimodal.evaluation.segmentation.MISSED_DICE`) as a dashed line.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dice = np.asarray(dice, dtype=np.float64).reshape(-1)
    figure, axis = plt.subplots(figsize=(5.0, 3.4))
    axis.hist(dice, bins=np.linspace(0.0, 1.0, 21), color="tab:blue", edgecolor="white")
    axis.axvline(missed_below, color="red", linestyle="--", linewidth=1.0,
                 label=f"missed: Dice < {missed_below} ({int(np.sum(dice < missed_below))} of {dice.size})")
    axis.set_xlim(0, 1)
    axis.set_xlabel("lesion Dice per image")
    axis.set_ylabel("images")
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def save_case_gallery(bmode, truth, predicted, captions, path: str, title: str, max_columns: int = 4) -> str:
    """A gallery of cases (e.g. the worst-segmented ones): each B-mode image with the true
    lesion contour (green) and the predicted one (red), captioned.

    Args:
        bmode: N uint8 images ``(H, W)`` or ``(H, W, 1)`` (sizes may differ).
        truth, predicted: N 0/1 masks of the images' sizes.
        captions: N strings.
        path: the PNG to write.
        title: the figure title.
        max_columns: panels per row.

    Returns:
        ``path``.

    Raises:
        ValueError: no case, or lists of different lengths.
    """
    if not len(bmode) or not len(bmode) == len(truth) == len(predicted) == len(captions):
        raise ValueError(f"save_case_gallery: needs as many images, masks and captions (at least one), got "
                         f"{len(bmode)}, {len(truth)}, {len(predicted)}, {len(captions)}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = _panel_grid(plt, len(bmode), max_columns, 2.4, 2.6)
    for axis, image, true_mask, predicted_mask, caption in zip(axes.ravel(), bmode, truth, predicted, captions):
        image = np.asarray(image)
        axis.imshow(image[..., 0] if image.ndim == 3 else image, cmap="gray", vmin=0, vmax=255)
        for mask, colour in ((true_mask, "lime"), (predicted_mask, "red")):
            mask = np.asarray(mask)
            mask = mask[..., 0] if mask.ndim == 3 else mask
            if mask.any():
                axis.contour(mask, levels=[0.5], colors=[colour], linewidths=0.9)
        axis.set_title(caption, fontsize=6)
        axis.set_xticks([])
        axis.set_yticks([])
    return _save_panel_grid(plt, figure, axes, len(bmode), title + "\n(truth green, prediction red)", path)
