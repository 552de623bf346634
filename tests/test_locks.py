"""One run per experiment folder (and fold) at a time (tf_bimodal.locks): a live holder stops
or delays a second run, a dead one's lock is taken over, and the lock goes with the run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from tf_bimodal import locks


def fake_lock(path, pid: int, host: str | None = None) -> None:
    path.write_text(json.dumps({"host": host or socket.gethostname(), "pid": pid, "started": "2026-12-03 10:00:00",
                                "command": "tf-bimodal train mff"}))


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_live_holder_stops_a_second_run_naming_it(tmp_path):
    holder = os.getppid()  # alive while this test runs
    fake_lock(tmp_path / locks.LOCK_FILE, holder)
    with pytest.raises(locks.ExperimentLocked) as excinfo:
        locks.acquire(str(tmp_path))
    message = str(excinfo.value)
    assert f"pid {holder}" in message and socket.gethostname() in message and "2026-12-03 10:00:00" in message
    assert "\n" not in message and "--wait-for-lock" in message
    assert json.loads((tmp_path / locks.LOCK_FILE).read_text())["pid"] == holder


def test_a_second_run_in_another_process_is_stopped(tmp_path):
    with locks.experiment_lock(str(tmp_path)):
        code = ("import sys; from tf_bimodal import locks\n"
                "try:\n    locks.acquire(sys.argv[1])\nexcept locks.ExperimentLocked as e:\n    print(e); sys.exit(3)")
        result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                                timeout=120)
    assert result.returncode == 3 and f"pid {os.getpid()}" in result.stdout, result.stderr


def test_a_stale_lock_is_reported_and_taken_over(tmp_path, progress):
    pid = dead_pid()
    fake_lock(tmp_path / locks.LOCK_FILE, pid)
    with locks.experiment_lock(str(tmp_path)) as paths:
        assert json.loads((tmp_path / locks.LOCK_FILE).read_text())["pid"] == os.getpid()
        assert paths == [str(tmp_path / locks.LOCK_FILE)]
    assert not (tmp_path / locks.LOCK_FILE).exists()
    assert any("stale" in line and f"pid {pid}" in line for line in progress), progress


def test_a_lock_of_another_host_is_never_taken_over(tmp_path):
    fake_lock(tmp_path / locks.LOCK_FILE, dead_pid(), host="elsewhere.example")
    with pytest.raises(locks.ExperimentLocked, match="remove .*once that run is known to be gone"):
        locks.acquire(str(tmp_path))


def test_fold_jobs_run_side_by_side_but_not_beside_a_run_of_every_fold(tmp_path):
    folder = str(tmp_path)
    with locks.experiment_lock(folder, [0]):
        with locks.experiment_lock(folder, [1, 2]):
            fake = tmp_path / f"{locks.FOLD_LOCK_PREFIX}3"
            with pytest.raises(locks.ExperimentLocked, match="fold 1"):
                locks.acquire(folder, [1])
            with pytest.raises(locks.ExperimentLocked):
                locks.acquire(folder)  # every fold: folds 0, 1, 2 are being trained
            assert not (tmp_path / locks.LOCK_FILE).exists() and not fake.exists()
    with locks.experiment_lock(folder):
        with pytest.raises(locks.ExperimentLocked, match="every fold"):
            locks.acquire(folder, [4])
        assert not (tmp_path / f"{locks.FOLD_LOCK_PREFIX}4").exists()
    assert os.listdir(folder) == []


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_the_lock_is_released_on_an_error_or_an_interruption(tmp_path, failure):
    with pytest.raises(failure):
        with locks.experiment_lock(str(tmp_path), [0, 1]):
            assert len(os.listdir(tmp_path)) == 2
            raise failure("stopped")
    assert os.listdir(tmp_path) == []


def test_waiting_for_the_lock_goes_on_when_the_holder_releases_it(tmp_path, progress):
    fake_lock(tmp_path / locks.LOCK_FILE, os.getppid())
    releaser = threading.Timer(0.5, lambda: (tmp_path / locks.LOCK_FILE).unlink())
    releaser.start()
    with locks.experiment_lock(str(tmp_path), wait=True, poll_seconds=0.1):
        assert json.loads((tmp_path / locks.LOCK_FILE).read_text())["pid"] == os.getpid()
    releaser.join()
    assert any(line.startswith("Waiting: ") for line in progress)


def test_each_process_logs_tensorboard_into_its_own_folder(tmp_path):
    from tf_bimodal.training import tensorboard

    ours = tensorboard.fold_log_dir(str(tmp_path))
    assert os.path.dirname(ours) == str(tmp_path / "tensorboard") and f"pid{os.getpid()}" in ours
