"""Figures of examples: B-mode, SE-mode and the lesion mask side by side."""

from __future__ import annotations

import numpy as np


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
    import tensorflow as tf

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
