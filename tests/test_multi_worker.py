"""Two-worker ``MultiWorkerMirroredStrategy`` on 127.0.0.1 equals one worker with the same global batch.

Each worker is a subprocess running ``tests/multi_worker_job.py`` with its own ``TF_CONFIG``;
the reference is the same script under the default strategy. The global batch is split
over the two workers (4 + 4 images of every batch of 8), each replica's loss is divided by
the number of replicas and the gradients are summed, so a step of the pair is the step of
one worker on the whole batch. This also checks the workaround in
``runtime.KerasMultiWorkerMirroredStrategy``: with the plain strategy, Keras 3's ``fit``
fails on more than one worker.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT

JOB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multi_worker_job.py")
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
    for a, b in zip(first["weights"], second["weights"]):
        np.testing.assert_array_equal(a, b)
    assert first["loss"] == second["loss"] and first["dice"] == second["dice"]
    # ... and it is the model one worker trains with the same global batch.
    np.testing.assert_allclose(first["loss"], reference["loss"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(first["dice"], reference["dice"], rtol=RTOL, atol=ATOL)
    for a, b in zip(first["weights"], reference["weights"]):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    assert reference["loss"][-1] < reference["loss"][0]  # it trained
