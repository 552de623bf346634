"""Export of a trained experiment: SavedModels that serve without tf_bimodal (§3.1-§3.3).

A tiny experiment (the protocol's ``mff`` chain, ``quick`` preset, a 64-pixel phantom, two
folds) is trained once per module and exported. The SavedModels are then loaded in a
subprocess that imports only TensorFlow and NumPy (``tf_bimodal`` is blocked there) and
their outputs are compared with the Keras fold models run in this process with the
protocol's own preprocessing (``resize_arrays``, ``normalize``, ``crop_pair``,
``majority_vote``), and with what the experiment itself wrote (``predicted_masks.npz``, the
folds' ``predictions.csv``).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.config import CropConfig, DataConfig, RuntimeConfig, SplitConfig
from tf_bimodal.data import dataset as dataset_lib
from tf_bimodal.data import inputs, pipeline
from tf_bimodal.data.cropping import crop_pair, mask_bounding_box, scaled_margin
from tf_bimodal.data.inputs import load_predicted_masks, resize_arrays
from tf_bimodal.evaluation.segmentation import majority_vote
from tf_bimodal.experiments.protocol import run_protocol
from tf_bimodal.export import (
    EXPORT_FILE,
    CADPipeline,
    ClassifierEnsemble,
    SegmenterEnsemble,
    export_experiment,
    find_classifier,
    find_segmenter,
    load_fold_models,
    preprocessing,
)
from tf_bimodal.training.segmentation import predict_masks

from helpers import BLOCK_TF_BIMODAL, quick_experiment, tiny_phantom

TINY_PHANTOM = tiny_phantom(seed=8)
DATA_SIZE = 64
ODD_SIZE = (72, 90)  # another size, not square: the pipeline resizes and scales the margin per side
NUM_PAIRS = 4
PROBABILITY_TOLERANCE = 1e-5
SEGMENTER_INPUTS = ("bmode", "semode")

# --------------------------------------------------------------------------- the serving process

SERVING_SCRIPT = textwrap.dedent('''
    """Load the exported SavedModels with TensorFlow alone and run them on the saved inputs."""
    import json
    import sys
''') + BLOCK_TF_BIMODAL + textwrap.dedent('''
    export_dir, inputs_path, arrays_path, report_path = sys.argv[1:5]
    inputs = dict(np.load(inputs_path))
    arrays = {}
    report = {"errors": {}}

    segmenter = tf.saved_model.load(export_dir + "/segmenter")
    outputs = segmenter.signatures["serving_default"](
        bmode=tf.constant(inputs["model_bmode"]), semode=tf.constant(inputs["model_semode"]))
    for key, value in outputs.items():
        arrays["segmenter_" + key] = value.numpy()
    report["segmenter_signatures"] = sorted(segmenter.signatures)

    classifier = tf.saved_model.load(export_dir + "/classifier")
    outputs = classifier.signatures["serving_default"](
        bmode=tf.constant(inputs["crop_bmode"]), semode=tf.constant(inputs["crop_semode"]),
        availability=tf.ones([len(inputs["crop_bmode"]), 2]))
    for key, value in outputs.items():
        arrays["classifier_" + key] = value.numpy()

    cad = tf.saved_model.load(export_dir + "/cad_pipeline")
    serve = cad.signatures["serving_default"]
    report["cad_signatures"] = sorted(cad.signatures)
    for prefix, bmode_key, semode_key in (("cad", "bmode", "semode"), ("odd", "odd_bmode", "odd_semode")):
        results = [serve(bmode=tf.constant(b[..., 0]), semode=tf.constant(s))
                   for b, s in zip(inputs[bmode_key], inputs[semode_key])]
        for key in results[0]:
            arrays[prefix + "_" + key] = np.stack([r[key].numpy() for r in results])
    again = serve(bmode=tf.constant(inputs["bmode"][0]), semode=tf.constant(inputs["semode"][0]))
    arrays["again_p_malignant"] = again["p_malignant"].numpy()
    arrays["again_mask"] = again["mask"].numpy()
    method = cad.serve(tf.constant(inputs["bmode"][0]), tf.constant(inputs["semode"][0]))
    arrays["method_p_malignant"] = method["p_malignant"].numpy()
    batch = cad.signatures["serve_batch"](bmode=tf.constant(inputs["bmode"]), semode=tf.constant(inputs["semode"]))
    for key, value in batch.items():
        arrays["batch_" + key] = value.numpy()

    b, s = inputs["bmode"][0], inputs["semode"][0]
    malformed = {
        "bmode_rank_4": (b[np.newaxis], s),
        "bmode_2_channels": (np.repeat(b, 2, axis=-1), s),
        "semode_2_channels": (b, s[..., :2]),
        "semode_rank_2": (b, s[..., 0]),
        "empty": (np.zeros((0, 0), np.uint8), np.zeros((0, 0, 3), np.uint8)),
        "mismatched_sizes": (b, s[:-5]),
    }
    for name, (bmode, semode) in malformed.items():
        try:
            serve(bmode=tf.constant(bmode), semode=tf.constant(semode))
            report["errors"][name] = None
        except tf.errors.InvalidArgumentError as error:
            report["errors"][name] = error.message
    try:
        cad.signatures["serve_batch"](bmode=tf.constant(inputs["bmode"]), semode=tf.constant(s))
        report["errors"]["batch_semode_rank_3"] = None
    except tf.errors.InvalidArgumentError as error:
        report["errors"]["batch_semode_rank_3"] = error.message

    report["tf_bimodal_imported"] = any(name.split(".")[0] == "tf_bimodal" for name in sys.modules)
    np.savez(arrays_path, **arrays)
    with open(report_path, "w") as handle:
        json.dump(report, handle)
''')


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """The ``mff`` chain (W-MM-U-Net folds, then MFF on their crops), trained once."""
    tmp = tmp_path_factory.mktemp("export_experiment")
    data = DataConfig(source="phantom", image_size=DATA_SIZE, data_dir=str(tmp / "tfds"), phantom=TINY_PHANTOM)
    result = run_protocol("mff", data, SplitConfig(num_folds=2),
                          quick_experiment(runtime=RuntimeConfig(tensorboard=False)), str(tmp / "runs"))
    return {"root": result["experiment_dir"], "data": data, "tmp": tmp}


@pytest.fixture(scope="module")
def exported(experiment):
    record = export_experiment(experiment["root"], str(experiment["tmp"] / "export"))
    return {"record": record, "dir": str(experiment["tmp"] / "export")}


def _test_image_ids(root: str, run: str = "mff") -> list:
    """Test images of fold 0 (never seen by any fold model in training), in file order."""
    with open(os.path.join(root, run, "fold_0", "predictions.csv")) as handle:
        return [row["image_id"] for row in csv.DictReader(handle) if row["split"] == "test"]


def _resize_uint8(images: np.ndarray, size) -> np.ndarray:
    resized = tf.image.resize(tf.cast(images, tf.float32), size, method="bilinear", antialias=True).numpy()
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def pairs(experiment):
    """A few test pairs at the data size and the same pairs resized to ``ODD_SIZE``."""
    ds, _ = dataset_lib.load_dataset(experiment["data"])
    arrays = inputs.load_arrays(ds)
    wanted = _test_image_ids(experiment["root"])[:NUM_PAIRS]
    index = [list(arrays["image_id"]).index(image_id) for image_id in wanted]
    picked = {key: arrays[key][index] for key in ("image_id", "bmode", "semode", "mask", "has_semode")}
    picked["odd_bmode"] = _resize_uint8(picked["bmode"], ODD_SIZE)
    picked["odd_semode"] = _resize_uint8(picked["semode"], ODD_SIZE)
    return picked


@pytest.fixture(scope="module")
def keras_reference(experiment, pairs):
    """The Keras fold models on the pairs, with the protocol's preprocessing, in this process."""
    segmenter = find_segmenter(experiment["root"])
    classifier = find_classifier(experiment["root"])
    seg_models = load_fold_models(segmenter.model_paths)
    cls_models = load_fold_models(classifier.model_paths)
    size, threshold = segmenter.model_size, segmenter.threshold
    reference = {}

    # Segmenter at the model size: resize_arrays + normalize, as in training.
    model_arrays = resize_arrays({key: pairs[key] for key in ("bmode", "semode", "mask")}, size)
    reference["model_bmode"], reference["model_semode"] = model_arrays["bmode"], model_arrays["semode"]
    normalized = pipeline.normalize({key: model_arrays[key] for key in SEGMENTER_INPUTS})
    fold = np.stack([m(normalized, training=False).numpy()[..., 0] for m in seg_models], axis=-1)
    reference["segmenter_fold_probabilities"] = fold
    reference["segmenter_mask"] = majority_vote((fold > threshold).sum(-1), len(seg_models))

    # The chain at the data size: the protocol's predict_masks, fold union, crop_pair, classifiers.
    data_probabilities = np.stack([predict_masks(m, model_arrays, SEGMENTER_INPUTS, DATA_SIZE) for m in seg_models],
                                  -1)
    reference["data_fold_probabilities"] = data_probabilities
    reference["cad_mask"] = majority_vote((data_probabilities > threshold).sum(-1), len(seg_models))
    crops = _crops(pairs["bmode"], pairs["semode"], reference["cad_mask"], classifier.input_size,
                   margin=scaled_margin(experiment["data"].image_size))
    reference["crop_bmode"], reference["crop_semode"] = crops
    reference["cad_box"] = np.stack([
        [int(v) for v in mask_bounding_box(mask, scaled_margin(experiment["data"].image_size))]
        for mask in reference["cad_mask"]
    ])
    reference["cad_fold_p_malignant"] = _classify(cls_models, *crops)

    # The same pairs at another size, following the pipeline's documented rules step by step.
    height, width = ODD_SIZE
    odd_model = {key: _resize_uint8(pairs["odd_" + key], (size, size)) for key in SEGMENTER_INPUTS}
    odd_normalized = pipeline.normalize(odd_model)
    odd_fold = np.stack([
        tf.image.resize(m(odd_normalized, training=False), ODD_SIZE, method="bilinear").numpy()[..., 0]
        for m in seg_models
    ], axis=-1)
    reference["odd_fold_probabilities"] = odd_fold
    reference["odd_mask"] = majority_vote((odd_fold > threshold).sum(-1), len(seg_models))
    margins = (round(50 * height / 336), round(50 * width / 336))
    reference["odd_box"] = np.stack([_numpy_box(mask, margins) for mask in reference["odd_mask"]])
    odd_crops = [[], []]
    for number, box in enumerate(reference["odd_box"]):
        for part, key in enumerate(("odd_bmode", "odd_semode")):
            image = pairs[key][number][box[0]:box[2], box[1]:box[3]].astype(np.float32) / 255.0
            odd_crops[part].append(tf.image.resize(image, (classifier.input_size,) * 2, method="bilinear").numpy())
    reference["odd_fold_p_malignant"] = _classify(cls_models, np.stack(odd_crops[0]), np.stack(odd_crops[1]))
    reference["threshold"] = float(np.float32(np.mean(classifier.fold_thresholds)))
    reference["segmenter_threshold"] = threshold
    return reference


def _crops(bmode, semode, masks, input_size, margin):
    normalized = pipeline.normalize({"bmode": bmode, "semode": semode})
    bmode_crops, semode_crops, _ = crop_pair(
        normalized["bmode"], normalized["semode"], masks[..., None], margin=margin, shape=CropConfig().shape,
        output_size=input_size,
    )
    return bmode_crops.numpy(), semode_crops.numpy()


def _classify(models, bmode, semode) -> np.ndarray:
    inputs = {"bmode": bmode, "semode": semode, "availability": np.ones((len(bmode), 2), np.float32)}
    return np.stack([np.asarray(m(inputs, training=False)["decision"])[:, 1] for m in models], axis=-1)


def _numpy_box(mask, margins):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    height, width = mask.shape
    if rows.size == 0:
        return np.array([0, 0, height, width])
    return np.array([max(rows[0] - margins[0], 0), max(cols[0] - margins[1], 0),
                     min(rows[-1] + 1 + margins[0], height), min(cols[-1] + 1 + margins[1], width)])


@pytest.fixture(scope="module")
def served(exported, pairs, keras_reference, tmp_path_factory):
    """Outputs of the SavedModels loaded in a process without tf_bimodal."""
    tmp = tmp_path_factory.mktemp("serving")
    inputs_path, arrays_path, report_path = tmp / "inputs.npz", tmp / "outputs.npz", tmp / "report.json"
    np.savez(inputs_path, bmode=pairs["bmode"], semode=pairs["semode"], odd_bmode=pairs["odd_bmode"],
             odd_semode=pairs["odd_semode"], model_bmode=keras_reference["model_bmode"],
             model_semode=keras_reference["model_semode"], crop_bmode=keras_reference["crop_bmode"],
             crop_semode=keras_reference["crop_semode"])
    script = tmp / "serve.py"
    script.write_text(SERVING_SCRIPT)
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(script), exported["dir"], str(inputs_path), str(arrays_path), str(report_path)],
        capture_output=True, text=True, timeout=300, cwd=str(tmp), env=environment,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    with np.load(arrays_path) as stored:
        arrays = dict(stored)
    return {"arrays": arrays, "report": json.loads(report_path.read_text())}


def _assert_masks_equal(served_mask, reference_mask, fold_probabilities, threshold):
    """Equal, except possibly where a fold's probability is within float error of the threshold."""
    differ = served_mask != reference_mask
    borderline = np.any(np.abs(fold_probabilities - threshold) < PROBABILITY_TOLERANCE, axis=-1)
    assert not np.any(differ & ~borderline), f"{int(differ.sum())} mask pixels differ"


# --------------------------------------------------------------------------- fast checks


def test_export_without_a_trained_experiment_says_what_to_run(tmp_path):
    root = tmp_path / "runs" / "phantom-quick"
    root.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"w_mm_unet does not exist.*run_experiments.py --model w_mm_unet"):
        export_experiment(str(root), str(tmp_path / "export"))
    (root / "w_mm_unet").mkdir()
    with pytest.raises(FileNotFoundError, match=r"summary.json does not exist.*--preset quick"):
        export_experiment(str(root), str(tmp_path / "export"))
    assert not (tmp_path / "export").exists()
    with pytest.raises(ValueError, match="embracement must be one of"):
        export_experiment(str(root), str(tmp_path / "export"), embracement="mean")
    with pytest.raises(ValueError, match="parts must be a non-empty subset"):
        export_experiment(str(root), str(tmp_path / "export"), parts=("onnx",))


def test_scaled_margin_in_the_graph_is_the_paper_margin_scaled():
    expected = {32: 5, 64: 10, 100: 15, 224: 33, 336: 50, 512: 76}  # round(50 * side / 336), §3.1
    for size, margin in expected.items():
        assert int(scaled_margin(tf.constant(size))) == scaled_margin(size) == margin, size


def test_lesion_box_is_the_mask_bounding_box_with_the_margin():
    mask = np.zeros((40, 50), np.uint8)
    mask[10:15, 30:48] = 1
    for margin in (0, 3, 12):
        expected = [int(v) for v in mask_bounding_box(mask, margin)]
        assert preprocessing.lesion_box(tf.constant(mask), margin, margin).numpy().tolist() == expected
    assert preprocessing.lesion_box(tf.constant(mask), 2, 5).numpy().tolist() == [8, 25, 17, 50]
    empty = np.zeros((7, 9), np.uint8)
    assert preprocessing.lesion_box(tf.constant(empty), 4, 4).numpy().tolist() == [0, 0, 7, 9]


def test_to_model_input_matches_resize_arrays_and_normalize():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 50, 70, 3), dtype=np.uint8)
    resized = resize_arrays({"bmode": images[..., :1], "semode": images, "mask": images[..., :1] // 128}, 32)
    expected = pipeline.normalize({"semode": resized["semode"]})["semode"]
    np.testing.assert_array_equal(preprocessing.to_model_input(images, 32).numpy(), expected.numpy())
    # At the model size already: the images pass unchanged (resize_arrays skips them).
    same = preprocessing.to_model_input(images[:, :32, :32], 32).numpy()
    np.testing.assert_array_equal(same, pipeline.normalize({"semode": images[:, :32, :32]})["semode"].numpy())


def _constant_segmenter(size: int, logit: float):
    """A stand-in segmenter whose probability is sigmoid(logit) everywhere."""
    bmode = keras.Input((size, size, 1), name="bmode")
    semode = keras.Input((size, size, 3), name="semode")
    head = keras.layers.Conv2D(1, 1, activation="sigmoid", kernel_initializer="zeros",
                               bias_initializer=keras.initializers.Constant(logit))
    return keras.Model([bmode, semode], head(bmode))


def _mean_classifier(size: int):
    """A stand-in classifier: softmax of (0, mean SE-mode intensity), so p depends on the crop."""
    inputs = {"bmode": keras.Input((size, size, 1), name="bmode"),
              "semode": keras.Input((size, size, 3), name="semode"),
              "availability": keras.Input((2,), name="availability")}
    mean = keras.layers.GlobalAveragePooling2D()(inputs["semode"])
    logits = keras.layers.Dense(2, kernel_initializer=keras.initializers.Constant([[0, 1]] * 3),
                                bias_initializer="zeros")(mean)
    return keras.Model(inputs, {"decision": keras.layers.Softmax()(logits)})


def test_cad_pipeline_falls_back_to_the_whole_image_without_a_lesion():
    segmenter = SegmenterEnsemble([_constant_segmenter(8, -5.0)] * 3, ("bmode", "semode"), 8, 0.5)
    classifier = ClassifierEnsemble([_mean_classifier(4)] * 2, ("bmode", "semode", "availability"), 4, (0.4, 0.6))
    pipeline = CADPipeline(segmenter, classifier)
    rng = np.random.default_rng(1)
    bmode = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    semode = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = pipeline.serve(bmode, semode)
    assert out["mask"].shape == (20, 30) and not np.any(out["mask"].numpy())
    assert out["box"].numpy().tolist() == [0, 0, 20, 30]
    whole = tf.image.resize(tf.image.convert_image_dtype(semode, tf.float32), (4, 4), method="bilinear")
    expected = 1 / (1 + np.exp(-3 * float(tf.reduce_mean(whole))))
    assert float(out["p_malignant"]) == pytest.approx(expected, abs=1e-6)
    assert float(out["threshold"]) == pytest.approx(0.5) and int(out["label"]) == int(expected >= 0.5)
    # A mask everywhere also gives the whole image; the batch agrees with the single pair.
    everywhere = CADPipeline(SegmenterEnsemble([_constant_segmenter(8, 5.0)], ("bmode", "semode"), 8, 0.5),
                             classifier)
    batch = everywhere.serve_batch(np.stack([bmode, bmode]), np.stack([semode, semode]))
    assert np.all(batch["mask"].numpy() == 1) and batch["box"].numpy().tolist() == [[0, 0, 20, 30]] * 2
    np.testing.assert_allclose(batch["p_malignant"].numpy(), [float(out["p_malignant"])] * 2, atol=1e-6)


@pytest.mark.parametrize("bmode_shape, semode_shape, message", [
    ((1, 8, 8, 1), (8, 8, 3), "bmode must be a uint8 grey B-mode image of shape \\[H, W\\] or \\[H, W, 1\\], or grey "
                              "stored as RGB \\[H, W, 3\\] or RGBA \\[H, W, 4\\]; got rank"),
    ((8, 8, 2), (8, 8, 3), "bmode must be .*; got\\] \\[2\\] \\[channels:\\]"),
    ((8, 8), (8, 8, 2), "semode must be a uint8 colour SE-mode image of shape \\[H, W, 3\\] \\(RGB\\) or "
                        "\\[H, W, 4\\] \\(RGBA\\); got.*channels"),
    ((8, 8), (8, 8), "semode must be .*; got rank"),
    ((0, 0), (0, 0, 3), "bmode is empty"),
    ((8, 8), (6, 8, 3), "bmode and semode must have the same height and width"),
])
def test_check_pair_names_the_problem(bmode_shape, semode_shape, message):
    check = tf.function(preprocessing.check_pair, input_signature=[tf.TensorSpec(None, tf.uint8)] * 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        check(np.zeros(bmode_shape, np.uint8), np.zeros(semode_shape, np.uint8))
    bmode, semode = check(np.zeros((8, 6), np.uint8), np.zeros((8, 6, 3), np.uint8))
    assert bmode.shape == (8, 6, 1) and semode.shape == (8, 6, 3)


# --------------------------------------------------------------------------- the trained experiment


@pytest.mark.slow
def test_export_json_records_sources_thresholds_and_signatures(experiment, exported):
    export_dir = exported["dir"]
    for name in ("segmenter", "classifier", "cad_pipeline"):
        assert os.path.isfile(os.path.join(export_dir, name, "saved_model.pb")), name
    with open(os.path.join(export_dir, EXPORT_FILE)) as handle:
        record = json.load(handle)
    classifier = find_classifier(experiment["root"])
    assert record["synthetic"] is True and "SYNTHETIC" in record["notice"]
    assert record["parts"] == ["segmenter", "classifier", "cad_pipeline"]
    assert record["versions"]["tf_bimodal"] and record["versions"]["tensorflow"] == tf.__version__
    assert record["segmenter"]["run"] == "w_mm_unet" and record["segmenter"]["folds"] == [0, 1]
    for part in ("segmenter", "classifier"):
        assert record[part]["source_fingerprint"]["source"] == "phantom"
        assert record[part]["source_fingerprint"] == dataset_lib.source_fingerprint(experiment["data"])
    assert record["segmenter"]["model_size"] == 32 and record["segmenter"]["data_size"] == DATA_SIZE
    assert record["classifier"]["fold_thresholds"] == list(classifier.fold_thresholds)
    assert record["classifier"]["threshold"] == pytest.approx(np.mean(classifier.fold_thresholds))
    assert record["classifier"]["input_size"] == 32 and record["classifier"]["embracement"] == "expected"
    assert record["cad_pipeline"]["margin"] == {"pixels": 50, "at_size": 336, "at_data_size": 10,
                                                "rule": "50 px at 336 px (§3.1), scaled to the image size: round(50 * side / 336), per axis"}
    cad = record["signatures"]["cad_pipeline"]
    assert cad["serving_default"]["inputs"] == {"bmode": {"dtype": "uint8", "shape": None},
                                                "semode": {"dtype": "uint8", "shape": None}}
    outputs = cad["serving_default"]["outputs"]
    assert {name: (o["dtype"], o["shape"]) for name, o in outputs.items()} == {
        "mask": ("uint8", [None, None]), "lesion_probability": ("float32", [None, None]),
        "box": ("int32", [4]), "p_malignant": ("float32", []), "fold_p_malignant": ("float32", [2]),
        "label": ("int32", []), "threshold": ("float32", []), "availability": ("float32", [2]),
        "segmented": ("bool", []),
    }
    assert cad["serve_batch"]["outputs"]["box"]["shape"] == [None, 4]
    assert record["signatures"]["segmenter"]["serving_default"]["inputs"]["semode"] == {
        "dtype": "uint8", "shape": [None, 32, 32, 3]}
    assert set(record["signatures"]["classifier"]["serving_default"]["inputs"]) == {
        "bmode", "semode", "availability"}
    assert exported["record"]["paths"]["export_json"].endswith(EXPORT_FILE)


@pytest.mark.slow
def test_serving_needs_only_tensorflow(served):
    report = served["report"]
    assert report["tf_bimodal_imported"] is False
    assert report["cad_signatures"] == ["serve_batch", "serve_bmode_only", "serve_bmode_only_batch", "serving_default"]
    assert report["segmenter_signatures"] == ["serve_float", "serving_default"]


@pytest.mark.slow
def test_segmenter_savedmodel_matches_the_keras_fold_union(served, keras_reference):
    arrays = served["arrays"]
    fold = keras_reference["segmenter_fold_probabilities"]
    np.testing.assert_allclose(arrays["segmenter_fold_probabilities"], fold, atol=PROBABILITY_TOLERANCE)
    np.testing.assert_allclose(arrays["segmenter_probability"][..., 0], fold.mean(-1), atol=PROBABILITY_TOLERANCE)
    assert arrays["segmenter_mask"].dtype == np.uint8 and arrays["segmenter_mask"].shape[-1] == 1
    _assert_masks_equal(arrays["segmenter_mask"][..., 0], keras_reference["segmenter_mask"], fold,
                        keras_reference["segmenter_threshold"])


@pytest.mark.slow
def test_classifier_savedmodel_matches_the_keras_fold_mean(served, keras_reference):
    arrays = served["arrays"]
    fold = keras_reference["cad_fold_p_malignant"]
    np.testing.assert_allclose(arrays["classifier_fold_p_malignant"], fold, atol=PROBABILITY_TOLERANCE)
    np.testing.assert_allclose(arrays["classifier_p_malignant"], fold.mean(-1), atol=PROBABILITY_TOLERANCE)
    assert arrays["classifier_threshold"] == pytest.approx(keras_reference["threshold"], abs=1e-7)
    expected = (arrays["classifier_p_malignant"] >= arrays["classifier_threshold"]).astype(np.int32)
    np.testing.assert_array_equal(arrays["classifier_label"], expected)


@pytest.mark.slow
def test_cad_pipeline_reproduces_the_protocol_at_the_data_size(experiment, served, pairs, keras_reference):
    arrays = served["arrays"]
    # The masks the experiment cropped with, and the same from the Keras models here.
    stored = load_predicted_masks(os.path.join(experiment["root"], "w_mm_unet", "predicted_masks.npz"))
    protocol_masks = np.stack([stored[image_id] for image_id in pairs["image_id"]])
    fold = keras_reference["data_fold_probabilities"]
    threshold = keras_reference["segmenter_threshold"]
    assert arrays["cad_mask"].dtype == np.uint8 and arrays["cad_mask"].shape == (NUM_PAIRS, DATA_SIZE, DATA_SIZE)
    _assert_masks_equal(arrays["cad_mask"], protocol_masks, fold, threshold)
    _assert_masks_equal(arrays["cad_mask"], keras_reference["cad_mask"], fold, threshold)
    np.testing.assert_allclose(arrays["cad_lesion_probability"], fold.mean(-1), atol=PROBABILITY_TOLERANCE)
    np.testing.assert_array_equal(arrays["cad_box"], keras_reference["cad_box"])
    np.testing.assert_allclose(arrays["cad_fold_p_malignant"], keras_reference["cad_fold_p_malignant"],
                               atol=PROBABILITY_TOLERANCE)
    np.testing.assert_allclose(arrays["cad_p_malignant"], keras_reference["cad_fold_p_malignant"].mean(-1),
                               atol=PROBABILITY_TOLERANCE)
    # ... and each fold model's test probabilities of the experiment (predictions.csv, 6 decimals).
    folds = find_classifier(experiment["root"]).folds
    assert len(folds) == arrays["cad_fold_p_malignant"].shape[1] > 0
    for column, k in enumerate(folds):
        with open(os.path.join(experiment["root"], "mff", f"fold_{k}", "predictions.csv")) as handle:
            written = {row["image_id"]: float(row["probability_malignant"])
                       for row in csv.DictReader(handle) if row["split"] == "test"}
        np.testing.assert_allclose(arrays["cad_fold_p_malignant"][:, column],
                                   [written[image_id] for image_id in pairs["image_id"]], atol=2e-6)
    np.testing.assert_array_equal(arrays["cad_label"],
                                  (arrays["cad_p_malignant"] >= arrays["cad_threshold"]).astype(np.int32))
    assert np.all(arrays["cad_threshold"] == np.float32(keras_reference["threshold"]))


@pytest.mark.slow
def test_cad_pipeline_serves_another_image_size(served, keras_reference):
    arrays = served["arrays"]
    assert arrays["odd_mask"].shape == (NUM_PAIRS, *ODD_SIZE)
    _assert_masks_equal(arrays["odd_mask"], keras_reference["odd_mask"], keras_reference["odd_fold_probabilities"],
                        keras_reference["segmenter_threshold"])
    np.testing.assert_array_equal(arrays["odd_box"], keras_reference["odd_box"])
    np.testing.assert_allclose(arrays["odd_fold_p_malignant"], keras_reference["odd_fold_p_malignant"],
                               atol=PROBABILITY_TOLERANCE)


@pytest.mark.slow
def test_cad_pipeline_is_deterministic_and_batches_like_single_pairs(served):
    arrays = served["arrays"]
    assert arrays["again_p_malignant"] == arrays["cad_p_malignant"][0]
    np.testing.assert_array_equal(arrays["again_mask"], arrays["cad_mask"][0])
    assert arrays["method_p_malignant"] == arrays["cad_p_malignant"][0]
    for key in ("mask", "box", "label"):
        np.testing.assert_array_equal(arrays["batch_" + key], arrays["cad_" + key], err_msg=key)
    for key in ("p_malignant", "fold_p_malignant", "lesion_probability"):
        np.testing.assert_allclose(arrays["batch_" + key], arrays["cad_" + key], atol=PROBABILITY_TOLERANCE)


@pytest.mark.slow
def test_cad_pipeline_rejects_malformed_inputs_with_clear_messages(served):
    errors = served["report"]["errors"]
    expected = {
        "bmode_rank_4": "bmode must be a uint8 grey B-mode image of shape [H, W] or [H, W, 1], or grey stored as "
                        "RGB [H, W, 3] or RGBA [H, W, 4]; got rank",
        "bmode_2_channels": "; got] [2] [channels:]",
        "semode_2_channels": "semode must be a uint8 colour SE-mode image of shape [H, W, 3] (RGB) or [H, W, 4] (RGBA); got",
        "semode_rank_2": "semode must be a uint8 colour SE-mode image of shape [H, W, 3] (RGB) or [H, W, 4] (RGBA); "
                         "got rank",
        "empty": "bmode is empty (zero height or width)",
        "mismatched_sizes": "bmode and semode must have the same height and width",
        "batch_semode_rank_3": "semode must be a uint8 batch of colour SE-mode images of shape [N, H, W, 3]",
    }
    for name, text in expected.items():
        assert errors[name] is not None, f"{name}: no error raised"
        assert text in errors[name], f"{name}: {errors[name]}"


@pytest.mark.slow
def test_export_of_a_missing_classifier_run_names_it(experiment, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"mff_crop_manual does not exist.*--model mff --crop manual"):
        export_experiment(experiment["root"], str(tmp_path / "export"), classifier_run="mff_crop_manual")


@pytest.mark.slow
def test_sampled_embracement_is_stochastic_on_request(experiment, exported, keras_reference, tmp_path):
    record = export_experiment(experiment["root"], str(tmp_path / "sampled"), embracement="sample",
                               parts=("classifier",))
    assert record["classifier"]["embracement"] == "sample" and record["parts"] == ["classifier"]
    assert "segmenter" not in record and sorted(os.listdir(tmp_path / "sampled")) == ["classifier", EXPORT_FILE]
    classifier = tf.saved_model.load(os.path.join(tmp_path / "sampled", "classifier"))
    inputs = dict(bmode=tf.constant(keras_reference["crop_bmode"]), semode=tf.constant(keras_reference["crop_semode"]),
                  availability=tf.ones([NUM_PAIRS, 2]))
    draws = np.stack([classifier.signatures["serving_default"](**inputs)["fold_p_malignant"].numpy()
                      for _ in range(5)])
    assert np.ptp(draws, axis=0).max() > 0, "sampled embracement gave identical outputs on every call"
