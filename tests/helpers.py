"""What several test modules share: the repository's paths, its scripts loaded as modules, the
package's progress lines, the tiny settings the end-to-end runs train with, and the small
images and phantom the data tests read.

Imported as ``from helpers import ...`` (``tests/`` is on ``sys.path`` through its
``conftest.py``, as for :mod:`harness`); the fixtures stay in ``conftest.py``.
"""

from __future__ import annotations

import importlib.util
import logging
import pathlib
import textwrap

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
BUSI_SAMPLE = SHARED_DATA / "busi_sample"
BUSBRA_DEV = SHARED_DATA / "busbra_dev"
"""934 images of 532 patients of BUS-BRA in its release layout (read-only; tests skip without it)."""

BUSBRA_HEADER = "ID,Case,Histology,Pathology,BIRADS,Device,Width,Height,Side,BBOX"


def write_busbra_folder(root: pathlib.Path, patients: int = 10, size=(48, 40)) -> pathlib.Path:
    """A tiny folder in BUS-BRA's release layout: ``patients`` patients, benign and malignant in
    turn, two views each (``-l``, ``-r``) except the last (``-s``); grey PNG images with one
    bright lesion, its mask (0/255), ``bus_data.csv`` and both fold files (``kFold``:
    case ``c`` in 5-fold ``(c - 1) % 5 + 1`` and 10-fold ``(c - 1) % 10 + 1``). Returns ``root``."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    (root / "Images").mkdir(parents=True)
    (root / "Masks").mkdir()
    rows, folds5, folds10 = [BUSBRA_HEADER], ["ID,Pathology,kFold,valid_1"], ["ID,Pathology,kFold,valid_1"]
    height, width = size
    for case in range(1, patients + 1):
        label = "benign" if case % 2 else "malignant"
        views = ("s",) if case == patients else ("l", "r")
        for view in views:
            image_id = f"bus_{case:04d}-{view}"
            image = rng.integers(20, 90, (height, width), dtype=np.uint8)
            mask = np.zeros((height, width), np.uint8)
            mask[10:24, 12:30] = 255
            image[mask > 0] = 200
            cv2.imwrite(str(root / "Images" / f"{image_id}.png"), image)
            cv2.imwrite(str(root / "Masks" / f"mask_{case:04d}-{view}.png"), mask)
            side = {"l": "left", "r": "right", "s": "single"}[view]
            device = "GE Logiq 7 @10-14MHz" if case % 3 else "Toshiba Aplio 300 @12-14 MHz"
            histology = "fibroadenoma" if label == "benign" else "invasive ductal carcinoma"
            rows.append(f'{image_id},{case},{histology},{label},{2 + case % 4},{device},{width},{height},{side},'
                        '"[12,10,18,14]"')
            folds5.append(f"{image_id},{label},{(case - 1) % 5 + 1},1")
            folds10.append(f"{image_id},{label},{(case - 1) % 10 + 1},1")
    (root / "bus_data.csv").write_text("\n".join(rows) + "\n")
    (root / "5-fold-cv.csv").write_text("\n".join(folds5) + "\n")
    (root / "10-fold-cv.csv").write_text("\n".join(folds10) + "\n")
    return root


def load_script(path: pathlib.Path):
    """A script of the repository (not installed: ``run_experiments.py``, a benchmark, a
    notebook tool) imported as a module named after its file."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- progress lines


class ProgressLines(logging.Handler):
    """A ``with`` block that collects the messages the package logs (``tf_bimodal`` logger)
    as a list of str; ``hook`` sees each line first and may raise (an interruption while the
    line is printed)."""

    def __init__(self, hook=None):
        super().__init__(logging.DEBUG)
        self.lines, self.hook = [], hook
        self.logger, self.previous_level = logging.getLogger("tf_bimodal"), None

    def emit(self, record):
        line = record.getMessage()
        if self.hook is not None:
            self.hook(line)
        self.lines.append(line)

    def __enter__(self) -> list[str]:
        self.previous_level = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)
        return self.lines

    def __exit__(self, *exc_info) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.previous_level)


def captured_progress(hook=None) -> ProgressLines:
    """The messages the package logs while the ``with`` block runs (:class:`ProgressLines`)."""
    return ProgressLines(hook)


# --------------------------------------------------------------------------- tiny settings


def quick_experiment(name: str = "quick", runtime=None, **overrides):
    """The ``quick`` preset's ``ExperimentConfig``, with ``overrides`` (``segmentation=...``)."""
    from tf_bimodal.config import resolve_experiment

    return resolve_experiment("quick", runtime=runtime, name=name, **overrides)


def tiny_phantom(seed: int, patients: int = 4, max_pairs: int = 3):
    """A phantom of ``patients`` benign and as many malignant patients with 2 to ``max_pairs``
    image pairs each: a data set that prepares in seconds."""
    from tf_bimodal.config import PhantomConfig

    return PhantomConfig(num_benign_patients=patients, num_malignant_patients=patients, min_pairs_per_patient=2,
                         max_pairs_per_patient=max_pairs, seed=seed)


def tiny_segmentation(**settings):
    """A two-level U-Net at 32 px (4 and 8 filters, an 8-filter bottleneck and auto-weight
    stage), with the other ``SegmentationConfig`` ``settings`` given."""
    from tf_bimodal.config import SegmentationConfig

    return SegmentationConfig(image_size=32, stackwise_num_filters=(4, 8), bottleneck_filters=8,
                              auto_weight_filters=(4,), **settings)


# --------------------------------------------------------------------------- small data

PATTERN_SIZE = 32
"""Side of the square :func:`pattern_image` and :func:`pattern_example` by default."""


def pattern_image(size: int = PATTERN_SIZE):
    """An asymmetric binary pattern: a block, a bar and a dot, so flips and turns show."""
    import numpy as np

    image = np.zeros((size, size), np.uint8)
    image[6:14, 5:12] = 1
    image[20:23, 8:28] = 1
    image[25:28, 24:27] = 1
    return image


def pattern_example(index: int = 0, size: int = PATTERN_SIZE, has_semode: bool = True) -> dict:
    """An example of the data schema whose B-mode, SE-mode and mask all show
    :func:`pattern_image` (SE-mode black where ``has_semode`` is false), so an aligned
    transform keeps them equal (§3.4); ``index`` names the image, its patient and label."""
    import numpy as np

    binary = pattern_image(size)
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


def geometry_only_augment():
    """An ``AugmentConfig`` that rotates, scales and translates but leaves brightness and
    contrast alone, so an augmented mask still matches its image pixel for pixel (§3.4)."""
    from tf_bimodal.config import AugmentConfig

    return AugmentConfig(max_rotation_deg=25.0, max_scale=0.2, max_translation=0.1, max_brightness=0.0,
                         max_contrast=0.0)


def small_phantom():
    """The ``PhantomConfig`` of the phantom unit tests: 3 benign and 3 malignant patients at
    64 px, seed 7."""
    from tf_bimodal.config import PhantomConfig

    return PhantomConfig(num_benign_patients=3, num_malignant_patients=3, image_size=64, seed=7)


def ring_around(mask, inner: int, outer: int):
    """Pixels between ``inner`` and ``outer`` pixels away from the boolean ``mask``."""
    import cv2
    import numpy as np

    def grow(radius):
        return cv2.dilate(mask.astype(np.uint8), np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)).astype(bool)

    return grow(outer) & ~grow(inner)


# --------------------------------------------------------------------------- serving scripts

BLOCK_TF_BIMODAL = textwrap.dedent('''
    class BlockTfBimodal:
        def find_spec(self, name, path=None, target=None):
            if name == "tf_bimodal" or name.startswith("tf_bimodal."):
                raise ImportError("tf_bimodal must not be needed to serve the export")
            return None


    sys.meta_path.insert(0, BlockTfBimodal())

    import numpy as np
    import tensorflow as tf
''')
"""Source lines for a serving script run in a subprocess: from here on importing ``tf_bimodal``
fails, so the script shows that TensorFlow alone serves the export (``sys`` imported before)."""
