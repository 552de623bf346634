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
