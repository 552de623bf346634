"""Two-worker ``MultiWorkerMirroredStrategy`` on 127.0.0.1 equals one worker with the same global batch.

Each worker is a subprocess running ``tests/experiments/multi_worker_job.py`` with its own ``TF_CONFIG``;
the reference is the same script under the default strategy. The global batch is split
over the two workers (4 + 4 images of every batch of 8), each replica's loss is divided by
the number of replicas and the gradients are summed, so a step of the pair is the step of
one worker on the whole batch. This also checks the workaround in
``runtime.KerasMultiWorkerMirroredStrategy``: with the plain strategy, Keras 3's ``fit``
fails on more than one worker.

The last test runs the command line, ``run_experiments.py --strategy multi_worker``, on two
workers that share one ``--output``, as on a shared file system.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from helpers import REPO_ROOT

JOB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multi_worker_job.py")
CLI = os.path.join(str(REPO_ROOT), "run_experiments.py")
# The cheapest run the command line offers (about 20 s on one 2-core worker): one
# single-modal segmenter, the quick preset, the smallest images, two folds, no TensorBoard.
CLI_RUN = ("--model", "unet_bmode", "--preset", "quick", "--image-size", "32", "--num-folds", "2",
           "--no-tensorboard")
TIMEOUT_S = 240

# Both runs compute the same function of the same batches; only the order of float32 sums
# differs (two half-batch gradients all-reduced, against one full-batch gradient), a few ulps
# per step: after the 6 SGD steps the weights differ by about 2e-7 and the logged losses not
# at all. 1e-5 leaves room for other machines' summation orders and is far below what a
# wrong split changes: gradients summed instead of averaged over the replicas (twice the
# step) moves the losses by 7e-2 and the weights by 1; each worker taking a whole global
# batch (16 per step) moves them by 2e-1 and 4e-1.
RTOL, ATOL = 1e-5, 1e-5


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _env(tf_config=None):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _finish(processes):
    """Wait for all processes (killing every one at the timeout); their outputs and codes."""
    results = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=TIMEOUT_S)
            results.append((process.returncode, stdout, stderr))
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
        details = "\n".join(f"--- process {i} stderr:\n{p.communicate()[1][-4000:]}" for i, p in enumerate(processes))
        pytest.fail(f"a worker did not finish within {TIMEOUT_S} s\n{details}")
    failed = [(i, r) for i, r in enumerate(results) if r[0] != 0]
    assert not failed, "\n".join(f"--- process {i} exited {code}:\n{stderr[-4000:]}" for i, (code, _, stderr) in failed)
    return results


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["unet", "classifier"])
def test_two_workers_match_one_worker_with_the_same_global_batch(tmp_path, kind):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    outputs = [tmp_path / f"worker_{i}.json" for i in range(2)]
    workers = [
        subprocess.Popen(
            [sys.executable, JOB, str(outputs[i]), "multi_worker", kind],
            env=_env({"cluster": cluster, "task": {"type": "worker", "index": i}}),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]
    _finish(workers)
    single_output = tmp_path / "single.json"
    single = subprocess.Popen([sys.executable, JOB, str(single_output), "auto", kind], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _finish([single])

    first, second = (json.loads(path.read_text()) for path in outputs)
    reference = json.loads(single_output.read_text())
    assert first["replicas"] == second["replicas"] == 2 and reference["replicas"] == 1
    assert (first["is_chief"], second["is_chief"]) == (True, False)
    assert first["worker_output"] == "runs"
    assert second["worker_output"] == os.path.join("runs", "_workers", "worker_1")
    # The workers hold one model: the same weights to the bit, the same reported losses.
    assert first["checksum"] == second["checksum"]
    assert len(first["weights"]) == len(second["weights"]) == len(reference["weights"]) > 0
    for a, b in zip(first["weights"], second["weights"]):
        np.testing.assert_array_equal(a, b)
    assert first["loss"] == second["loss"] and first["dice"] == second["dice"]
    # ... and it is the model one worker trains with the same global batch.
    np.testing.assert_allclose(first["loss"], reference["loss"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(first["dice"], reference["dice"], rtol=RTOL, atol=ATOL)
    for a, b in zip(first["weights"], reference["weights"]):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    assert reference["loss"][-1] < reference["loss"][0]  # it trained


def _files(folder, leave_out=None):
    """The files under ``folder`` (relative paths), less those under ``leave_out``."""
    return {str(path.relative_to(folder)) for path in folder.rglob("*")
            if path.is_file() and (leave_out is None or leave_out not in path.parents)}


def _written(stdout, output):
    """The paths under ``output`` that a run's "Wrote ..." and "Report: ..." lines name."""
    lines = [line for line in stdout.splitlines() if line.startswith(("Wrote ", "Report: "))]
    return [word for line in lines for word in line.split() if word.startswith(str(output))]


@pytest.mark.slow
def test_two_workers_through_the_command_line_write_one_experiment(tmp_path):
    data_dir = str(tmp_path / "tfds")

    def command(output, *extra):
        return [sys.executable, CLI, *CLI_RUN, "--data-dir", data_dir, "--output", str(output), *extra]

    # One worker first: the reference, and it prepares the data the workers then share
    # (tf_bimodal.training.runtime: prepare the TFDS data once before starting them).
    single_output = tmp_path / "single"
    single = subprocess.Popen(command(single_output), env=_env(), cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _finish([single])

    output = tmp_path / "shared"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    workers = [
        subprocess.Popen(
            command(output, "--strategy", "multi_worker"),
            env=_env({"cluster": cluster, "task": {"type": "worker", "index": i}}), cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]
    (_, chief_stdout, _), (_, other_stdout, _) = _finish(workers)

    name = "phantom_32px-quick"
    reference, experiment = single_output / name, output / name
    copy = experiment / "_workers" / "worker_1"
    expected = _files(reference)
    assert {"report.md", "protocol.json", "unet_bmode/summary.json", "unet_bmode/fold_1/metrics.json"} <= expected
    # The chief wrote what one worker writes; the other worker wrote only in its own copy,
    # a complete one, and named no other file.
    assert _files(experiment, leave_out=experiment / "_workers") == expected
    assert _files(output) == {os.path.join(name, path) for path in expected} | {
        os.path.join(name, "_workers", "worker_1", path) for path in expected
    }
    assert _written(chief_stdout, output) and not any(
        path.startswith(str(experiment / "_workers")) for path in _written(chief_stdout, output)
    )
    assert _written(other_stdout, output) and all(
        path.startswith(str(copy) + os.sep) for path in _written(other_stdout, output)
    )
    for root in (experiment, copy):
        steps = json.loads((root / "protocol.json").read_text())["steps"]
        assert steps["unet_bmode"]["summary"] == str(root / "unet_bmode" / "summary.json")

    summary = json.loads((experiment / "unet_bmode" / "summary.json").read_text())
    runtime = summary["runtime"]
    assert (runtime["strategy"], runtime["workers"], runtime["replicas"]) == ("multi_worker", 2, 2)
    assert runtime["strategy_class"] == "KerasMultiWorkerMirroredStrategy"
    assert json.loads((reference / "unet_bmode" / "summary.json").read_text())["runtime"]["replicas"] == 1
    assert "--strategy multi_worker" in (experiment / "report.md").read_text()
    # The folds end in a batch of one image (89 % 8), which would leave a replica empty:
    # the runners leave it out (runtime.replica_batches), so the workers train, and finitely.
    batch = summary["config"]["batch_size"]
    assert any(0 < fold["num_images"][part] % batch < 2 for fold in summary["folds"] for part in ("train", "val"))
    for k in range(2):
        history = np.genfromtxt(experiment / "unet_bmode" / f"fold_{k}" / "history.csv", delimiter=",", names=True)
        assert len(history) == 3 and np.isfinite(history["loss"]).all() and np.isfinite(history["val_loss"]).all()
        # The logs are reduced over the workers: the copy's are the same.
        copy_history = np.genfromtxt(copy / "unet_bmode" / f"fold_{k}" / "history.csv", delimiter=",", names=True)
        np.testing.assert_array_equal(history["loss"], copy_history["loss"])


@pytest.mark.slow
def test_two_workers_train_a_classifier_through_the_command_line(tmp_path):
    """The classifier's batches also leave no replica empty (runtime.replica_batches)."""
    output = tmp_path / "shared"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    command = [
        sys.executable, CLI, "--model", "vgg16_bmode", "--crop", "manual", "--preset", "quick",
        "--image-size", "32", "--num-folds", "2", "--no-tensorboard", "--strategy", "multi_worker",
        "--data-dir", str(tmp_path / "tfds"), "--output", str(output),
    ]
    # The data is prepared once, before the workers share it (see tf_bimodal.training.runtime):
    # without --model the command line only prepares and describes it.
    subprocess.run(
        [sys.executable, CLI, "--image-size", "32", "--data-dir", str(tmp_path / "tfds")],
        env=_env(), cwd=tmp_path, check=True, capture_output=True,
    )
    workers = [
        subprocess.Popen(
            command, env=_env({"cluster": cluster, "task": {"type": "worker", "index": i}}),
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]
    _finish(workers)
    run = output / "phantom_32px-quick" / "vgg16_bmode_crop_manual"
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["runtime"]["workers"], summary["runtime"]["replicas"]) == (2, 2)
    for k in range(2):
        history = np.genfromtxt(run / f"fold_{k}" / "history.csv", delimiter=",", names=True)
        assert np.isfinite(history["loss"]).all() and np.isfinite(history["val_loss"]).all()
