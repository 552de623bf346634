"""One run per experiment folder at a time: lock files holding the run's host, pid and start.

Two runs writing into one experiment folder (a job submitted twice, two terminals) would
write the same fold's checkpoints and logs at once. A run takes the lock of the folds it
trains before it touches the folder, and a second run of the same folds stops at once with a
line naming the holder, or waits for it (``wait``)::

    <experiment>/.lock              a run of every fold (no --fold; grid search)
    <experiment>/.lock.fold_<k>     a run of fold k only (--fold k: one job per fold)

so the jobs of one job array (one fold each) run side by side, while a run of every fold
and a run of one of its folds exclude each other. A lock left by a run that died without
releasing it (killed, machine restarted) is *stale* when its host is this machine and its
process is gone: it is reported and taken over. A lock held on another host cannot be
checked from here; the message says which file to remove once that run is known to be gone.

At the bottom of the package: it imports nothing of it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"
"""The lock of a run of every fold, in the experiment folder."""

FOLD_LOCK_PREFIX = ".lock.fold_"
"""``.lock.fold_<k>``: the lock of a run of fold k alone."""


class ExperimentLocked(RuntimeError):
    """Another live run holds the experiment folder's lock (one line: who, where, since when)."""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (another user's process counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_holder(path: str) -> dict | None:
    """The record of the lock file ``path`` (host, pid, started, command), or None when there
    is none; an unreadable file reads as an unknown holder."""
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"host": "?", "pid": 0, "started": "?", "command": "?"}
    return record if isinstance(record, dict) else {"host": "?", "pid": 0, "started": "?", "command": "?"}


def is_stale(holder: dict) -> bool:
    """A lock held by a process of this host that no longer runs."""
    return holder.get("host") == socket.gethostname() and not pid_alive(int(holder.get("pid") or 0))


def describe_holder(holder: dict) -> str:
    """``pid 123 on host h since 2026-12-03 10:15:00 (tf-bimodal train mff)``."""
    return (f"pid {holder.get('pid')} on host {holder.get('host')} since {holder.get('started')}"
            + (f" ({holder['command']})" if holder.get("command") else ""))


def _create(path: str, record: dict) -> bool:
    """Create ``path`` holding ``record``, atomically and only if it does not exist yet: the
    record is written to a private file first and linked to ``path``, so that a reader never
    sees a half-written lock."""
    private = f"{path}.{record['host']}.{record['pid']}.tmp"
    with open(private, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    try:
        os.link(private, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(private)


def _take(path: str, record: dict) -> dict | None:
    """Take the lock ``path``; None on success, else the live holder's record (a stale lock
    is reported and taken over)."""
    for _ in range(3):
        if _create(path, record):
            return None
        holder = read_holder(path)
        if holder is None:
            continue  # released in between
        if not is_stale(holder):
            return holder
        logger.warning(f"Taking over the stale lock {path}: {describe_holder(holder)}, that process is gone")
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    return read_holder(path)


def _live_holder(path: str) -> dict | None:
    """The live holder of an existing lock ``path`` (a stale one is removed), or None."""
    holder = read_holder(path)
    if holder is None:
        return None
    if is_stale(holder):
        logger.warning(f"Removing the stale lock {path}: {describe_holder(holder)}, that process is gone")
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        return None
    return holder


def lock_paths(folder: str, folds: Sequence[int] | None) -> list[str]:
    """The lock files a run of ``folds`` (None: every fold) takes in ``folder``."""
    if folds is None:
        return [os.path.join(folder, LOCK_FILE)]
    return [os.path.join(folder, f"{FOLD_LOCK_PREFIX}{k}") for k in sorted(set(folds))]


def _conflicting(folder: str, folds: Sequence[int] | None) -> list[str]:
    """The locks that exclude a run of ``folds`` besides its own: every fold's lock for a run
    of every fold, the whole-run lock for a run of some folds."""
    if folds is not None:
        return [os.path.join(folder, LOCK_FILE)]
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder)) if name.startswith(FOLD_LOCK_PREFIX)
            and not name.endswith(".tmp")]


def acquire(folder: str, folds: Sequence[int] | None = None) -> list[str]:
    """Take the locks of a run of ``folds`` (None: every fold) in ``folder``; returns their paths.

    Raises:
        ExperimentLocked: a live run holds one of them, or a lock that excludes them, naming it.
    """
    os.makedirs(folder, exist_ok=True)
    record = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": " ".join(os.path.basename(arg) if i == 0 else arg for i, arg in enumerate(sys.argv)),
              "folds": None if folds is None else sorted(set(folds))}
    taken = []
    try:
        for path in lock_paths(folder, folds):
            holder = _take(path, record)
            if holder is not None:
                raise _locked(folder, path, holder)
            taken.append(path)
        for path in _conflicting(folder, folds):
            holder = _live_holder(path)
            if holder is not None:
                raise _locked(folder, path, holder)
    except BaseException:
        release(taken)
        raise
    return taken


def _locked(folder: str, path: str, holder: dict) -> ExperimentLocked:
    what = "every fold" if os.path.basename(path) == LOCK_FILE else f"fold {path.rsplit('_', 1)[-1]}"
    remote = holder.get("host") != socket.gethostname()
    return ExperimentLocked(
        f"experiment {folder} is in use: a run of {what} by {describe_holder(holder)}; wait for it to finish "
        f"(--wait-for-lock waits)" + (f", or remove {path} once that run is known to be gone" if remote else "")
    )


def release(paths: Sequence[str]) -> None:
    """Remove the lock files ``paths`` this process holds (those another process holds now are left)."""
    for path in paths:
        holder = read_holder(path)
        if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)


@contextlib.contextmanager
def experiment_lock(folder: str, folds: Sequence[int] | None = None, wait: bool = False,
                    poll_seconds: float = 10.0) -> Iterator[list[str]]:
    """Hold the lock of a run of ``folds`` (None: every fold) in the experiment ``folder`` while
    the ``with`` block runs; released on leaving it, by an error or an interruption too.

    Args:
        folder: the experiment folder.
        folds: the folds the run trains, or None for all of them.
        wait: wait for a live holder to finish (checked every ``poll_seconds``) instead of
            raising.

    Raises:
        ExperimentLocked: another live run holds the lock (and ``wait`` is False).
    """
    announced = False
    while True:
        try:
            paths = acquire(folder, folds)
            break
        except ExperimentLocked as error:
            if not wait:
                raise
            if not announced:
                logger.info(f"Waiting: {error}")
                announced = True
            time.sleep(poll_seconds)
    try:
        yield paths
    finally:
        release(paths)
