"""Strategies, mixed precision and the chief rule of ``tf_bimodal.training.runtime``."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_bimodal.config import DataConfig, RuntimeConfig, SplitConfig
from tf_bimodal.data import pipeline
from tf_bimodal.models.segmentation.factory import build_segmenter
from tf_bimodal.training import runtime as runtime_lib
from tf_bimodal.training.segmentation import compile_segmenter

import helpers
from helpers import REPO_ROOT, quick_experiment, tiny_segmentation

TINY_SEGMENTER = tiny_segmentation(batch_size=4, epochs=1)
GPUS = tf.config.list_physical_devices("GPU")


def _tf_config(workers=2, index=0, task_type="worker", chief=False) -> str:
    cluster = {"worker": [f"127.0.0.1:{20000 + i}" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["127.0.0.1:19999"]
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


@pytest.fixture
def no_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)


# --------------------------------------------------------------------------- strategies


@pytest.mark.parametrize(
    "name, expected_class, expected_replicas",
    [
        ("auto", "MirroredStrategy" if GPUS else "_DefaultDistributionStrategy", max(1, len(GPUS))),
        ("mirrored", "MirroredStrategy", max(1, len(GPUS))),
        ("one_device", "OneDeviceStrategy", 1),
    ],
)
def test_strategy_for_gives_the_named_strategy(name, expected_class, expected_replicas):
    strategy = runtime_lib.strategy_for(RuntimeConfig(strategy=name))
    assert type(strategy).__name__ == expected_class
    assert strategy.num_replicas_in_sync == expected_replicas
    assert runtime_lib.strategy_for(RuntimeConfig(strategy=name)) is strategy  # cached per process


def test_default_runtime_is_auto():
    assert runtime_lib.strategy_for(None) is runtime_lib.strategy_for(RuntimeConfig(strategy="auto"))


@pytest.mark.skipif(bool(GPUS), reason="checks the CPU placement")
def test_one_device_on_a_cpu_machine_uses_the_cpu():
    strategy = runtime_lib.strategy_for(RuntimeConfig(strategy="one_device"))
    assert strategy.extended.worker_devices[0].endswith("CPU:0")


def test_multi_worker_without_tf_config_names_it(no_tf_config):
    # Checked before MultiWorkerMirroredStrategy is created, so this process stays clean.
    with pytest.raises(ValueError, match="TF_CONFIG") as raised:
        runtime_lib.strategy_for(RuntimeConfig(strategy="multi_worker"))
    assert '"cluster": {"worker": [' in str(raised.value)  # the expected JSON shape
    assert "multi_worker" not in runtime_lib._STRATEGIES


@pytest.mark.parametrize(
    "tf_config, problem",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not an object"),
        ('{"task": {"type": "worker", "index": 0}}', "no 'worker'"),
        ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "no 'worker'"),
        ('{"cluster": {"worker": ["nohost"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
        ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}', "'ps' job"),
        ('{"cluster": {"worker": ["a:1"]}}', "'task' must name"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "'task' must name"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "task index 2"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "0"}}', "task index '0'"),
    ],
)
def test_malformed_tf_config_is_a_clear_value_error(monkeypatch, tf_config, problem):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match="TF_CONFIG") as raised:
        runtime_lib.strategy_for(RuntimeConfig(strategy="multi_worker"))
    assert problem in str(raised.value)
    assert "multi_worker" not in runtime_lib._STRATEGIES


@pytest.mark.slow
def test_multi_worker_created_after_other_ops_says_so():
    """In a fresh process: a TensorFlow op first, then the strategy (the documented mistake)."""
    script = (
        "import tensorflow as tf\n"
        "from tf_bimodal.config import RuntimeConfig\n"
        "from tf_bimodal.training import runtime\n"
        "tf.constant(1.0) + 1.0\n"
        "try:\n"
        "    runtime.strategy_for(RuntimeConfig(strategy='multi_worker'))\n"
        "except RuntimeError as error:\n"
        "    print('RAISED', error)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               TF_CONFIG=_tf_config(workers=1))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)
    assert "RAISED" in done.stdout, done.stdout + done.stderr
    assert "before any other TensorFlow op" in done.stdout


# --------------------------------------------------------------------------- the chief


@pytest.mark.parametrize(
    "tf_config, chief",
    [
        (_tf_config(index=0), True),
        (_tf_config(index=1), False),
        (_tf_config(index=0, chief=True), False),
        (_tf_config(index=0, task_type="chief", chief=True), True),
    ],
)
def test_is_chief_and_worker_output(monkeypatch, tf_config, chief):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    multi = RuntimeConfig(strategy="multi_worker")
    assert runtime_lib.is_chief(multi) is chief
    task = json.loads(tf_config)["task"]
    expected = "runs" if chief else os.path.join("runs", "_workers", f"{task['type']}_{task['index']}")
    assert runtime_lib.worker_output("runs", multi) == expected
    # Every single-worker strategy writes the results itself, whatever TF_CONFIG says.
    assert runtime_lib.is_chief(RuntimeConfig(strategy="mirrored")) is True
    assert runtime_lib.worker_output("runs", None) == "runs"


def test_only_the_chief_writes_the_experiment_protocol_and_report(monkeypatch, tmp_path):
    from tf_bimodal.experiments import protocol

    monkeypatch.setenv("TF_CONFIG", _tf_config(index=1))
    monkeypatch.setattr(protocol, "_run_step", lambda *args: {})
    reports = []
    monkeypatch.setattr(protocol, "write_report", lambda root, data: reports.append(root) or "report.md")
    from tf_bimodal.experiments.experiment_data import ExperimentData

    multi = RuntimeConfig(strategy="multi_worker")
    data = ExperimentData(config=DataConfig(image_size=32), split=SplitConfig(), name="phantom_32px", version="1",
                          fingerprint={"digest": "f"}, builder=None, splits=[])  # resolved by the entry
    done = protocol.run_protocol("unet_bmode", data, None, quick_experiment(runtime=multi), str(tmp_path))
    root = protocol.experiment_dir(str(tmp_path), DataConfig(image_size=32), "quick")
    own = runtime_lib.worker_output(root, multi)
    assert reports == [own] and done["experiment_dir"] == own
    assert done["steps"][0]["summary"] == os.path.join(own, "unet_bmode", "summary.json")
    assert os.listdir(own) == ["protocol.json"] and os.listdir(root) == [runtime_lib.WORKERS_DIR]


def test_only_the_chief_exports(monkeypatch, tmp_path, progress):
    from tf_bimodal.workflow import run

    monkeypatch.setenv("TF_CONFIG", _tf_config(index=1))
    done = run(export=str(tmp_path / "exported"), preset="quick", output=str(tmp_path / "runs"),
               runtime=RuntimeConfig(strategy="multi_worker"))
    logged = list(progress)
    assert done == {"skipped": "not the chief worker"} and "only the chief worker exports" in logged[-1]
    assert not (tmp_path / "exported").exists()


@pytest.mark.parametrize(
    "num_images, batch_size, replicas, batches",
    [
        (89, 8, 1, 12),  # one replica: every batch, the last of 1 image too
        (89, 8, 2, 11),  # the last image alone would leave a replica empty
        (90, 8, 2, 12),
        (16, 8, 2, 2),
        (3, 8, 2, 1),
        (11, 8, 4, 1),
        (12, 8, 4, 2),
    ],
)
def test_replica_batches_leave_out_a_last_batch_with_an_empty_replica(num_images, batch_size, replicas, batches):
    assert pipeline.replica_batches(num_images, batch_size, replicas) == batches


@pytest.mark.parametrize("num_images, batch_size", [(1, 8), (8, 1)])
def test_replica_batches_refuse_fewer_images_than_replicas(num_images, batch_size):
    with pytest.raises(ValueError, match="at least one image per replica"):
        pipeline.replica_batches(num_images, batch_size, 2)


def test_with_data_sharding_sets_data_policy_and_keeps_the_batches():
    ds = tf.data.Dataset.range(10).batch(4)
    sharded = pipeline.with_data_sharding(ds)
    policy = sharded.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.DATA
    assert [b.tolist() for b in sharded.as_numpy_iterator()] == [b.tolist() for b in ds.as_numpy_iterator()]


def test_fit_datasets_repeat_with_the_batches_of_one_iterator_per_epoch():
    """Repeated, a pipeline gives every epoch the batches a new iterator would (reshuffled)."""
    def batches():  # a fresh pipeline each time: its shuffle counts its own passes
        ds = tf.data.Dataset.range(10).shuffle(10, seed=0, reshuffle_each_iteration=True).batch(4)
        return ds.apply(tf.data.experimental.assert_cardinality(3))

    validation = batches().take(2)
    arguments = runtime_lib.fit_datasets(batches(), validation)
    assert arguments["steps_per_epoch"] == 3 and "validation_steps" not in arguments
    assert arguments["validation_data"] is validation  # evaluate makes a new iterator each epoch anyway
    repeated = arguments["x"].as_numpy_iterator()
    ds = batches()
    epochs = [[b.tolist() for b in ds.as_numpy_iterator()] for _ in range(3)]
    assert [[next(repeated).tolist() for _ in range(3)] for _ in range(3)] == epochs
    assert epochs[0] != epochs[1]  # reshuffled: the repeat is not one epoch three times
    unknown = ds.filter(lambda x: tf.reduce_all(x >= 0))
    assert runtime_lib.fit_datasets(unknown) == {"x": unknown, "validation_data": None}


# --------------------------------------------------------------------------- precision


FLOAT16_ON_CPU = "ignore:precision 'mixed_float16' without a GPU"


@pytest.mark.skipif(bool(GPUS), reason="the warning is for machines without a GPU")
def test_mixed_float16_without_a_gpu_warns():
    with pytest.warns(UserWarning, match="use 'mixed_bfloat16' on a CPU"):
        with runtime_lib.precision(RuntimeConfig(precision="mixed_float16")):
            pass
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.filterwarnings(FLOAT16_ON_CPU)
def test_precision_sets_and_restores_the_policy():
    before = keras.config.dtype_policy().name
    with runtime_lib.precision(RuntimeConfig(precision="mixed_bfloat16")):
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        with runtime_lib.precision(RuntimeConfig(precision="mixed_float16")):
            assert keras.config.dtype_policy().name == "mixed_float16"
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == before
    with pytest.raises(KeyError):
        with runtime_lib.precision(RuntimeConfig(precision="mixed_float16")):
            raise KeyError("inside")
    assert keras.config.dtype_policy().name == before


@pytest.mark.skipif(bool(GPUS), reason="the CPU measurement")
def test_precision_auto_measures_the_cpu_and_follows_its_rule():
    measured = runtime_lib.measure_precision()
    assert measured["device"] == "CPU"
    rates = measured["matmul_gflops"]
    assert rates["float32"] > 0 and rates["bfloat16"] > 0
    assert measured["bfloat16_speedup"] == pytest.approx(rates["bfloat16"] / rates["float32"], rel=0.02)
    expected = "mixed_bfloat16" if measured["bfloat16_speedup"] >= runtime_lib.AUTO_BFLOAT16_MIN_SPEEDUP else "float32"
    assert measured["precision"] == expected
    assert runtime_lib.resolve_precision(RuntimeConfig(precision="auto")).precision == expected


@pytest.mark.parametrize("measured, expected", [("mixed_bfloat16", "mixed_bfloat16"), ("float32", "float32")])
def test_precision_auto_is_measured_once_and_lower_layers_refuse_it_unresolved(monkeypatch, measured, expected):
    monkeypatch.setattr(runtime_lib, "measure_precision", lambda: {"precision": measured, "device": "CPU"})
    auto = RuntimeConfig(precision="auto", tensorboard=False)
    assert runtime_lib.resolve_precision(auto) == RuntimeConfig(precision=expected, tensorboard=False)
    for fixed in ("float32", "mixed_bfloat16"):  # only auto is measured
        assert runtime_lib.resolve_precision(RuntimeConfig(precision=fixed)).precision == fixed
    resolved = runtime_lib.resolve_precision(auto)
    with runtime_lib.precision(resolved):
        assert keras.config.dtype_policy().name == expected
    assert runtime_lib.describe(resolved)["precision"] == expected
    for needs_resolving in (runtime_lib.precision(auto).__enter__, lambda: runtime_lib.describe(auto)):
        with pytest.raises(ValueError, match="precision is 'auto'"):
            needs_resolving()


def test_precision_auto_is_resolved_before_the_cache_key(monkeypatch):
    from tf_bimodal.experiments.cross_validation import run_cache_key
    from tf_bimodal.workflow import resolve

    monkeypatch.setattr(runtime_lib, "measure_precision", lambda: {"precision": "mixed_bfloat16", "device": "CPU"})
    assert resolve("quick", RuntimeConfig(precision="auto")).runtime.precision == "mixed_bfloat16"

    class Data:
        config, split, fingerprint, version = DataConfig(), SplitConfig(), {"digest": "f"}, "1"

    keys = {precision: run_cache_key({"model": "m"}, Data(), RuntimeConfig(precision=precision))
            for precision in ("mixed_bfloat16", "float32")}
    assert keys["mixed_bfloat16"] != keys["float32"]
    with pytest.raises(ValueError, match="precision is 'auto'"):  # resolved once, at the entry
        run_cache_key({"model": "m"}, Data(), RuntimeConfig(precision="auto"))


def test_clear_session_keeps_the_policy_that_keras_own_drops():
    runtime = RuntimeConfig(precision="mixed_bfloat16")
    with runtime_lib.precision(runtime):
        keras.backend.clear_session()
        assert keras.config.dtype_policy().name == "float32"  # why runtime.clear_session exists
        keras.config.set_dtype_policy("mixed_bfloat16")
        runtime_lib.clear_session(runtime)
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"


def _tiny_bimodal_batch(num_images=8, size=32, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.stack([
        ((yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2)
        for cy, cx, r in rng.uniform([10, 10, 4], [22, 22, 8], size=(num_images, 3))
    ]).astype("float32")[..., None]
    bmode = np.clip(0.3 + 0.4 * masks + 0.1 * rng.standard_normal(masks.shape), 0, 1).astype("float32")
    semode = np.clip(np.concatenate([masks, 1 - masks, 0.5 * np.ones_like(masks)], -1)
                     + 0.1 * rng.standard_normal((*masks.shape[:3], 3)), 0, 1).astype("float32")
    return {"bmode": bmode, "semode": semode}, masks


@pytest.mark.filterwarnings(FLOAT16_ON_CPU)
@pytest.mark.parametrize("precision, compute_dtype, loss_scaled", [
    ("mixed_bfloat16", "bfloat16", False),
    ("mixed_float16", "float16", True),
])
def test_tiny_segmenter_trains_in_mixed_precision(precision, compute_dtype, loss_scaled):
    runtime = RuntimeConfig(strategy="mirrored", precision=precision, tensorboard=False)
    inputs, masks = _tiny_bimodal_batch()
    with runtime_lib.precision(runtime):
        runtime_lib.clear_session(runtime)
        keras.utils.set_random_seed(0)
        with runtime_lib.strategy_for(runtime).scope():
            model = compile_segmenter(build_segmenter("w_mm_unet", TINY_SEGMENTER, 32), TINY_SEGMENTER)
        history = model.fit(inputs, masks, batch_size=4, epochs=2, verbose=0)
    assert keras.config.dtype_policy().name == "float32"
    convolutions = {layer.name: layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Conv2D)}
    assert convolutions.pop("mask").compute_dtype == "float32"  # the head: float32 probabilities
    assert convolutions and all(layer.compute_dtype == compute_dtype for layer in convolutions.values())
    assert all(weight.dtype == "float32" for weight in model.weights)
    assert model(inputs, training=False).dtype == "float32"
    assert model.modality_weights_model(inputs, training=False).dtype == "float32"
    assert all(math.isfinite(loss) for loss in history.history["loss"])
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) is loss_scaled


# --------------------------------------------------------------------------- a run


@pytest.fixture(scope="module")
def tiny_phantom(tmp_path_factory):
    return DataConfig(
        source="phantom", image_size=64, data_dir=str(tmp_path_factory.mktemp("tfds")),
        phantom=helpers.tiny_phantom(seed=6),
    )


@pytest.mark.slow
def test_run_segmentation_records_runtime_and_trains_in_its_precision(
    tiny_phantom, tmp_path, no_network, monkeypatch
):
    from tf_bimodal.experiments import segmentation as segmentation_experiment

    built = []

    def recording_build_segmenter(*args, **kwargs):
        model = build_segmenter(*args, **kwargs)
        built.append({layer.compute_dtype for layer in model._flatten_layers()
                      if isinstance(layer, keras.layers.Conv2D) and layer.name != "mask"})
        return model

    # Saved models do not record their layers' policy (their config is the constructor's
    # arguments), so the precision each fold's model was built in is caught here.
    monkeypatch.setattr(segmentation_experiment, "build_segmenter", recording_build_segmenter)
    runtime = RuntimeConfig(strategy="mirrored", precision="mixed_bfloat16", tensorboard=False)
    summary = segmentation_experiment.run_segmentation(
        "w_mm_unet", tiny_phantom, SplitConfig(num_folds=2),
        quick_experiment(segmentation=TINY_SEGMENTER, runtime=runtime), str(tmp_path / "runs"),
    )
    assert keras.config.dtype_policy().name == "float32"
    recorded = json.loads((tmp_path / "runs" / "w_mm_unet" / "summary.json").read_text())["runtime"]
    assert recorded == summary["runtime"]
    assert recorded["strategy"] == "mirrored" and recorded["strategy_class"] == "MirroredStrategy"
    assert recorded["replicas"] == max(1, len(GPUS)) and recorded["workers"] == 1
    assert recorded["precision"] == "mixed_bfloat16" and recorded["compute_dtype"] == "bfloat16"
    assert recorded["loss_scaling"] is None
    assert all(math.isfinite(fold["best_val_dice"]) for fold in summary["folds"])
    # Both folds' models computed in bfloat16: each fold clears the Keras session first,
    # which on its own would have reset the policy to float32.
    assert built == [{"bfloat16"}, {"bfloat16"}]
