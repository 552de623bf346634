"""The CAD pipeline on what scanners and public data sets write, and on B-mode-only cases (§3.1, §3.3.1).

A tiny untrained pipeline (the ``quick`` W-MM-U-Net and MFF, one fold each) is enough: every
check compares the pipeline with itself on the same content in another format, or with its
own classifier fed as the experiments feed a missing SE-mode image. The SavedModel is also
served in a process that cannot import ``tf_bimodal``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.config import CLASSIFICATION_PRESETS, SEGMENTATION_PRESETS
from tf_bimodal.data.readers import to_grey
from tf_bimodal.export import CADPipeline, ClassifierEnsemble, SegmenterEnsemble, preprocessing
from tf_bimodal.models.classification.factory import build_classifier, model_input_keys
from tf_bimodal.models.segmentation.factory import MODEL_INPUTS, build_segmenter

from helpers import BLOCK_TF_BIMODAL, REPO_ROOT

HEIGHT, WIDTH = 40, 52
TOLERANCE = 1e-6
SEGMENTER_THRESHOLD = 0.62
"""Above the untrained segmenter's typical output, so that the mask covers only part of the test
image and the crop box is not the whole image (one fold: its probability is the mean)."""
SIGNATURES = ["serve_batch", "serve_bmode_only", "serve_bmode_only_batch", "serving_default"]
OUTPUTS = {"mask", "lesion_probability", "box", "p_malignant", "fold_p_malignant", "label", "threshold",
           "availability", "segmented"}
BMODE_RULE = ("bmode must be a uint8 grey B-mode image of shape [H, W] or [H, W, 1], "
              "or grey stored as RGB [H, W, 3] or RGBA [H, W, 4]")
SEMODE_RULE = "semode must be a uint8 colour SE-mode image of shape [H, W, 3] (RGB) or [H, W, 4] (RGBA)"


# --------------------------------------------------------------------------- helpers


def tiny_pipeline(segmenter_model: str = "w_mm_unet", classifier_model: str = "mff") -> CADPipeline:
    """An untrained ``quick`` segmenter and classifier (one fold each) behind a CADPipeline."""
    keras.utils.set_random_seed(3)
    seg_config, cls_config = SEGMENTATION_PRESETS["quick"], CLASSIFICATION_PRESETS["quick"]
    segmenter = SegmenterEnsemble([build_segmenter(segmenter_model, seg_config)], MODEL_INPUTS[segmenter_model],
                                  seg_config.image_size, SEGMENTER_THRESHOLD)
    classifier = ClassifierEnsemble([build_classifier(classifier_model, cls_config, "standardize")],
                                    model_input_keys(classifier_model), cls_config.input_size, (0.5,))
    return CADPipeline(segmenter, classifier)


def _grey_image(seed: int = 0, shape=(HEIGHT, WIDTH)) -> np.ndarray:
    """A grey B-mode-like image: a bright disc on noise, so the crop and probabilities vary."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    disc = ((rows - shape[0] * 0.4) ** 2 + (cols - shape[1] * 0.6) ** 2) < (min(shape) / 4) ** 2
    return np.clip(rng.normal(70, 25, shape) + 120 * disc, 0, 255).astype(np.uint8)


def _colour_image(seed: int = 1, shape=(HEIGHT, WIDTH)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def _with_alpha(image: np.ndarray, seed: int = 2) -> np.ndarray:
    """``image`` with an alpha channel of random values (it must be ignored, not blended)."""
    alpha = np.random.default_rng(seed).integers(0, 256, (*image.shape[:-1], 1), dtype=np.uint8)
    return np.concatenate([image, alpha], axis=-1)


def _as_rgb(grey: np.ndarray) -> np.ndarray:
    """A grey image stored as RGB, as BUSI's PNGs are."""
    return np.repeat(grey[..., None], 3, axis=-1)


def _numpy(outputs: dict) -> dict:
    return {key: value.numpy() for key, value in outputs.items()}


def _assert_same_outputs(actual: dict, expected: dict):
    """Equal outputs up to float error: the CPU kernels may differ in the last bit from call to
    call, so a mask pixel or the label may differ only where a probability is within
    ``TOLERANCE`` of its threshold (the segmenter's, or the classifier's)."""
    assert set(actual) == set(expected)
    for key in ("lesion_probability", "p_malignant", "fold_p_malignant"):
        np.testing.assert_allclose(actual[key], expected[key], rtol=0, atol=TOLERANCE, err_msg=key)
    for key in ("threshold", "availability", "segmented"):
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)
    borderline = np.abs(expected["lesion_probability"] - SEGMENTER_THRESHOLD) < TOLERANCE
    differ = actual["mask"] != expected["mask"]
    assert not np.any(differ & ~borderline), f"{int(differ.sum())} mask pixels differ"
    if not np.any(differ):
        np.testing.assert_array_equal(actual["box"], expected["box"], err_msg="box")
    sure = np.abs(expected["p_malignant"] - expected["threshold"]) >= TOLERANCE
    np.testing.assert_array_equal(np.where(sure, actual["label"], 0), np.where(sure, expected["label"], 0))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pipeline() -> CADPipeline:
    return tiny_pipeline()


@pytest.fixture(scope="module")
def pair() -> dict:
    bmode, semode = _grey_image(), _colour_image()
    return {"bmode": bmode, "semode": semode}


@pytest.fixture(scope="module")
def reference(pipeline, pair) -> dict:
    """The pipeline on the grey [H, W] B-mode image and the RGB SE-mode image."""
    return _numpy(pipeline.serve(pair["bmode"], pair["semode"]))


# --------------------------------------------------------------------------- the grey rule


def test_to_grey_is_the_readers_rule_on_every_colour():
    """All 2**24 RGB triples (and RGBA) give exactly what the data readers wrote (OpenCV)."""
    values = np.arange(256, dtype=np.uint8)
    red, green, blue = np.meshgrid(values, values, values, indexing="ij")
    rgb = np.stack([red, green, blue], axis=-1).reshape(4096, 4096, 3)
    np.testing.assert_array_equal(preprocessing.to_grey(rgb).numpy(), to_grey(rgb))
    rgba = _with_alpha(rgb[:64])
    np.testing.assert_array_equal(preprocessing.to_grey(rgba).numpy(), to_grey(rgba))
    grey = values.reshape(16, 16, 1)
    np.testing.assert_array_equal(preprocessing.to_grey(grey).numpy(), grey)
    np.testing.assert_array_equal(preprocessing.to_grey(_as_rgb(grey[..., 0])).numpy(), grey)


# --------------------------------------------------------------------------- accepted formats


def test_reference_outputs_are_complete(reference):
    assert set(reference) == OUTPUTS
    assert reference["mask"].shape == reference["lesion_probability"].shape == (HEIGHT, WIDTH)
    assert reference["availability"].tolist() == [1.0, 1.0] and bool(reference["segmented"]) is True


@pytest.mark.parametrize("form", ["grey_hw1", "rgb", "rgba"])
def test_bmode_stored_as_grey_rgb_or_rgba_gives_the_grey_outputs(pipeline, pair, reference, form):
    grey = pair["bmode"]
    bmode = {"grey_hw1": grey[..., None], "rgb": _as_rgb(grey), "rgba": _with_alpha(_as_rgb(grey))}[form]
    _assert_same_outputs(_numpy(pipeline.serve(bmode, pair["semode"])), reference)


def test_semode_rgba_gives_the_rgb_outputs(pipeline, pair, reference):
    _assert_same_outputs(_numpy(pipeline.serve(_with_alpha(_as_rgb(pair["bmode"])), _with_alpha(pair["semode"]))),
                         reference)


def test_colour_bmode_is_made_grey_by_the_readers_rule(pipeline, pair):
    colour = _colour_image(seed=5)
    served = _numpy(pipeline.serve(colour, pair["semode"]))
    _assert_same_outputs(served, _numpy(pipeline.serve(to_grey(colour), pair["semode"])))


def test_batch_accepts_the_same_formats(pipeline, pair, reference):
    bmode = np.stack([_as_rgb(pair["bmode"]), _as_rgb(_grey_image(seed=7))])
    semode = np.stack([_with_alpha(pair["semode"]), _with_alpha(_colour_image(seed=8))])
    batch = _numpy(pipeline.serve_batch(_with_alpha(bmode), semode))
    grey = _numpy(pipeline.serve_batch(bmode[..., 0], semode[..., :3]))
    _assert_same_outputs(batch, grey)
    first = {key: value if key == "threshold" else value[0] for key, value in batch.items()}
    _assert_same_outputs(first, reference)


# --------------------------------------------------------------------------- B-mode only


def test_bmode_only_uses_bmode_features_and_the_whole_image(pipeline, pair, reference):
    served = _numpy(pipeline.serve_bmode_only(_with_alpha(_as_rgb(pair["bmode"]))))
    assert set(served) == OUTPUTS
    assert served["availability"].tolist() == [1.0, 0.0] and bool(served["segmented"]) is False
    assert not served["mask"].any() and not served["lesion_probability"].any()
    assert served["mask"].shape == (HEIGHT, WIDTH) and served["box"].tolist() == [0, 0, HEIGHT, WIDTH]
    # What the classifier gets: the whole B-mode image, a zero SE-mode image, availability [1, 0].
    classifier = pipeline.classifier
    size = classifier.input_size
    bmode = preprocessing.crop_and_resize(preprocessing.normalize_image(pair["bmode"][..., None]),
                                          [0, 0, HEIGHT, WIDTH], size)[tf.newaxis]
    expected = _numpy(classifier.classify({"bmode": bmode, "semode": tf.zeros([1, size, size, 3]),
                                           "availability": tf.constant([[1.0, 0.0]])}))
    np.testing.assert_allclose(served["fold_p_malignant"], expected["fold_p_malignant"][0], atol=1e-6)
    np.testing.assert_allclose(served["p_malignant"], expected["p_malignant"][0], atol=1e-6)
    assert served["threshold"] == reference["threshold"]
    assert served["label"] == int(served["p_malignant"] >= served["threshold"])


def test_bmode_only_batch_agrees_with_single_images(pipeline, pair):
    images = np.stack([pair["bmode"], _grey_image(seed=9)])
    batch = _numpy(pipeline.serve_bmode_only_batch(images))
    assert batch["availability"].tolist() == [[1.0, 0.0]] * 2 and batch["segmented"].tolist() == [False] * 2
    for number, image in enumerate(images):
        single = _numpy(pipeline.serve_bmode_only(image))
        first = {key: value if key == "threshold" else value[number] for key, value in batch.items()}
        _assert_same_outputs(first, single)


def test_bmode_segmenter_still_segments_a_bmode_only_case():
    pipeline = tiny_pipeline(segmenter_model="unet_bmode")
    bmode, semode = _grey_image(seed=4), _colour_image(seed=4)
    alone, paired = _numpy(pipeline.serve_bmode_only(bmode)), _numpy(pipeline.serve(bmode, semode))
    assert bool(alone["segmented"]) is True and alone["availability"].tolist() == [1.0, 0.0]
    np.testing.assert_allclose(alone["lesion_probability"], paired["lesion_probability"], rtol=0, atol=TOLERANCE)
    borderline = np.abs(paired["lesion_probability"] - SEGMENTER_THRESHOLD) < TOLERANCE
    assert not np.any((alone["mask"] != paired["mask"]) & ~borderline)


def test_a_classifier_that_needs_semode_gets_no_bmode_only_function():
    pipeline = tiny_pipeline(classifier_model="mff_stack")
    assert pipeline.serves_bmode_only is False
    assert not hasattr(pipeline, "serve_bmode_only")
    assert sorted(pipeline.serving_signatures()) == ["serve_batch", "serving_default"]


# --------------------------------------------------------------------------- malformed inputs

SINGLE_ERRORS = [
    ((1, HEIGHT, WIDTH, 1), (HEIGHT, WIDTH, 3), f"cad_pipeline.serve: {BMODE_RULE}; got rank"),
    ((HEIGHT, WIDTH, 2), (HEIGHT, WIDTH, 3), BMODE_RULE + r"; got] [2] [channels:]"),
    ((HEIGHT, WIDTH, 5), (HEIGHT, WIDTH, 3), BMODE_RULE + r"; got] [5] [channels:]"),
    ((HEIGHT, WIDTH), (HEIGHT, WIDTH, 1), SEMODE_RULE + r"; got] [1] [channels:]"),
    ((HEIGHT, WIDTH), (HEIGHT, WIDTH, 2), SEMODE_RULE + r"; got] [2] [channels:]"),
    ((HEIGHT, WIDTH), (HEIGHT, WIDTH, 5), SEMODE_RULE + r"; got] [5] [channels:]"),
    ((HEIGHT, WIDTH), (HEIGHT, WIDTH), f"{SEMODE_RULE}; got rank"),
    ((0, 0), (0, 0, 3), "bmode is empty (zero height or width)"),
    ((HEIGHT, WIDTH, 3), (HEIGHT - 5, WIDTH, 4), "bmode and semode must have the same height and width"),
]


def _error_message(function, *arguments) -> str:
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        function(*arguments)
    return caught.value.message


@pytest.mark.parametrize("bmode_shape, semode_shape, text", SINGLE_ERRORS)
def test_malformed_pairs_are_refused_naming_the_rule(pipeline, bmode_shape, semode_shape, text):
    message = _error_message(pipeline.serve, np.zeros(bmode_shape, np.uint8), np.zeros(semode_shape, np.uint8))
    assert text in message, message


def test_malformed_batches_and_bmode_only_images_are_refused(pipeline):
    image, colour = np.zeros((HEIGHT, WIDTH), np.uint8), np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    cases = [
        (pipeline.serve_batch, (image[None], colour), "cad_pipeline.serve_batch: semode must be a uint8 batch of "
         "colour SE-mode images of shape [N, H, W, 3] (RGB) or [N, H, W, 4] (RGBA); got rank"),
        (pipeline.serve_batch, (np.zeros((1, HEIGHT, WIDTH, 2), np.uint8), colour[None]),
         "bmode must be a uint8 batch of grey B-mode images"),
        (pipeline.serve_batch, (image[None][:0], colour[None][:0]), "the batch is empty (N = 0); send at least one pair"),
        (pipeline.serve_bmode_only, (image[None, ..., None],), f"cad_pipeline.serve_bmode_only: {BMODE_RULE}; got rank"),
        (pipeline.serve_bmode_only, (np.zeros((HEIGHT, WIDTH, 2), np.uint8),), BMODE_RULE + "; got] [2] [channels:]"),
        (pipeline.serve_bmode_only, (image[:0],), "cad_pipeline.serve_bmode_only: bmode is empty"),
        (pipeline.serve_bmode_only_batch, (image,), "cad_pipeline.serve_bmode_only_batch: bmode must be a uint8 batch"),
        (pipeline.serve_bmode_only_batch, (image[None][:0],), "the batch is empty (N = 0); send at least one image"),
    ]
    for function, arguments, text in cases:
        message = _error_message(function, *arguments)
        assert text in message, message


def test_other_dtypes_than_uint8_are_refused(pipeline, pair):
    with pytest.raises(TypeError, match=r"float32, name='bmode'\) to TensorSpec\(.*uint8"):
        pipeline.serve(tf.constant(pair["bmode"], tf.float32), tf.constant(pair["semode"]))
    with pytest.raises(TypeError, match=r"int32, name='bmode'\) to TensorSpec\(.*uint8"):
        pipeline.serve_bmode_only(tf.constant(pair["bmode"], tf.int32))


# --------------------------------------------------------------------------- the plain SavedModel

SERVING_SCRIPT = textwrap.dedent('''
    """Serve the saved pipeline with TensorFlow alone: the repository is not importable here."""
    import json
    import os
    import sys

    repo_root = os.path.realpath(sys.argv[1])
    sys.path[:] = [entry for entry in sys.path if os.path.realpath(entry or ".") != repo_root]
    # An editable install finds the package through its own finder, not sys.path: drop it too.
    sys.meta_path[:] = [finder for finder in sys.meta_path if "__editable__" not in getattr(finder, "__module__", "")]
''') + BLOCK_TF_BIMODAL + textwrap.dedent('''
    model_dir, inputs_path, arrays_path, report_path = sys.argv[2:6]
    inputs = dict(np.load(inputs_path))
    cad = tf.saved_model.load(model_dir)
    report = {"signatures": sorted(cad.signatures), "errors": {},
              "repo_on_path": any(os.path.realpath(entry or ".") == repo_root for entry in sys.path)}
    arrays = {}
    calls = {
        "grey": ("serving_default", dict(bmode=inputs["grey"], semode=inputs["semode"])),
        "rgb": ("serving_default", dict(bmode=inputs["rgb"], semode=inputs["semode"])),
        "rgba": ("serving_default", dict(bmode=inputs["rgba"], semode=inputs["semode_rgba"])),
        "bmode_only": ("serve_bmode_only", dict(bmode=inputs["rgba"])),
        "batch": ("serve_batch", dict(bmode=inputs["rgb"][None], semode=inputs["semode_rgba"][None])),
    }
    for name, (signature, arguments) in calls.items():
        outputs = cad.signatures[signature](**{key: tf.constant(value) for key, value in arguments.items()})
        for key, value in outputs.items():
            arrays[name + "/" + key] = value.numpy()
    malformed = {
        "bmode_2_channels": ("serving_default", dict(bmode=inputs["rgb"][..., :2], semode=inputs["semode"])),
        "semode_grey": ("serving_default", dict(bmode=inputs["grey"], semode=inputs["grey"][..., None])),
        "mismatched_sizes": ("serving_default", dict(bmode=inputs["grey"], semode=inputs["semode"][:-3])),
        "bmode_only_rank_4": ("serve_bmode_only", dict(bmode=inputs["rgb"][None])),
        "float_bmode": ("serving_default", dict(bmode=inputs["grey"].astype(np.float32), semode=inputs["semode"])),
    }
    for name, (signature, arguments) in malformed.items():
        try:
            cad.signatures[signature](**{key: tf.constant(value) for key, value in arguments.items()})
            report["errors"][name] = None
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as error:
            report["errors"][name] = str(error)
    try:
        import tf_bimodal  # noqa: F401
        report["tf_bimodal_importable"] = True
    except ImportError:
        report["tf_bimodal_importable"] = False
    report["tf_bimodal_imported"] = any(name.split(".")[0] == "tf_bimodal" for name in sys.modules)
    np.savez(arrays_path, **{key.replace("/", "__"): value for key, value in arrays.items()})
    with open(report_path, "w") as handle:
        json.dump(report, handle)
''')


def test_saved_pipeline_serves_scanner_files_with_tensorflow_alone(pipeline, pair, reference, tmp_path):
    model_dir = tmp_path / "cad_pipeline"
    tf.saved_model.save(pipeline, str(model_dir), signatures=pipeline.serving_signatures())
    grey = pair["bmode"]
    inputs_path, arrays_path, report_path = tmp_path / "inputs.npz", tmp_path / "outputs.npz", tmp_path / "report.json"
    np.savez(inputs_path, grey=grey, rgb=_as_rgb(grey), rgba=_with_alpha(_as_rgb(grey)), semode=pair["semode"],
             semode_rgba=_with_alpha(pair["semode"]))
    script = tmp_path / "serve.py"
    script.write_text(SERVING_SCRIPT)
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(script), str(REPO_ROOT), str(model_dir), str(inputs_path), str(arrays_path),
         str(report_path)],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path), env=environment,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    report = json.loads(report_path.read_text())
    assert report["signatures"] == SIGNATURES
    assert report["repo_on_path"] is False and report["tf_bimodal_importable"] is False
    assert report["tf_bimodal_imported"] is False
    with np.load(arrays_path) as stored:
        served = {}
        for key, value in stored.items():
            call, output = key.split("__")
            served.setdefault(call, {})[output] = value

    for call in ("grey", "rgb", "rgba"):
        _assert_same_outputs(served[call], reference)
    _assert_same_outputs(served["grey"], served["rgba"])
    batch_first = {key: value if key == "threshold" else value[0] for key, value in served["batch"].items()}
    _assert_same_outputs(batch_first, reference)
    _assert_same_outputs(served["bmode_only"], _numpy(pipeline.serve_bmode_only(grey)))
    assert served["bmode_only"]["availability"].tolist() == [1.0, 0.0]
    assert bool(served["bmode_only"]["segmented"]) is False

    errors = report["errors"]
    expected = {
        "bmode_2_channels": BMODE_RULE + "; got] [2] [channels:]",
        "semode_grey": SEMODE_RULE + "; got] [1] [channels:]",
        "mismatched_sizes": "bmode and semode must have the same height and width",
        "bmode_only_rank_4": f"cad_pipeline.serve_bmode_only: {BMODE_RULE}; got rank",
        "float_bmode": "uint8",
    }
    for name, text in expected.items():
        assert errors[name] is not None, f"{name}: no error raised"
        assert text in errors[name], f"{name}: {errors[name]}"
