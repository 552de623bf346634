"""Source fingerprints: what ties a prepared data set to the folder (or settings) it came from.

A prepared TFDS data set is found by its builder config name. If that name said only
``busi`` or ``clinical``, a second folder would silently get the first folder's prepared
images. So every source has a fingerprint:

* ``clinical``: the resolved ``manual_dir``, the SHA-256 of ``manifest.csv`` and the size and
  modification time of every file the manifest lists;
* ``busi``: the resolved ``manual_dir``, the size and modification time of every BUSI image
  and mask file (``<class> (N).png``, ``<class> (N)_mask*.png``) and the rule for its
  near-duplicates (``DataConfig.busi_duplicates``: they decide the patient ids and which
  images are kept);
* ``busbra``: the resolved ``manual_dir``, the SHA-256 of its CSV files (``bus_data.csv`` and
  the fold files present) and the size and modification time of those files and of every
  image and mask ``bus_data.csv`` lists;
* ``phantom``: the generator settings and seed (:class:`~tf_bimodal.config.PhantomConfig`).

Its ``digest`` goes into the builder config name (``busi_<digest>``), so another folder, or
the same folder after a file was added, replaced or touched, prepares afresh into its own
place and never overwrites another source's prepared data. The whole fingerprint is stored in
the prepared data set's ``metadata.json`` and checked on every load
(:func:`tf_bimodal.data.dataset.prepare`); it is also written into the data summary, every
run's cache key and summary, the report and the exported models' provenance.

Computing it reads only the manifest and the file listing (``stat``), never an image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time

import tensorflow as tf

from tf_bimodal.config import BUSI_DUPLICATE_RULES, DataConfig
from tf_bimodal.data import readers
from tf_bimodal.data.errors import DataError

FINGERPRINT_SCHEME = 2
"""Bumped when what the fingerprint covers changes (then every source prepares afresh)."""

DIGEST_LENGTH = 12
"""Hex characters of the digest used in builder config names."""


def _resolved(path: str) -> str:
    path = str(path)
    if "://" in path:
        return path.rstrip("/")
    return os.path.realpath(os.path.expanduser(path))


def check_manual_dir(manual_dir, source: str) -> str:
    """The resolved ``manual_dir``; raises :class:`DataError` naming it if it is missing,
    not a folder, or empty."""
    if not manual_dir:
        raise DataError(
            "manual_dir", f"the {source!r} source reads your files: give the folder that holds them"
        )
    resolved = _resolved(manual_dir)
    if not tf.io.gfile.exists(resolved):
        raise DataError(manual_dir, f"folder not found (the {source!r} source reads its files from it)")
    if not tf.io.gfile.isdir(resolved):
        raise DataError(manual_dir, f"not a folder: the {source!r} source needs the folder holding the data")
    if not tf.io.gfile.listdir(resolved):
        raise DataError(manual_dir, f"empty folder: the {source!r} source found no files in it")
    return resolved


def _file_entry(path: str, root: str) -> list:
    """``[path relative to root, size in bytes, modification time in ns]`` of one file."""
    try:
        stat = tf.io.gfile.stat(path)
    except tf.errors.OpError as error:
        raise DataError(path, f"cannot read file: {error.message}") from None
    relative = path[len(root):].lstrip("/") if path.startswith(root) else path
    return [relative, int(stat.length), int(stat.mtime_nsec)]


def _busi_files(root: str) -> list[str]:
    folder = readers.find_busi_root(root)
    files = []
    for label in readers.BUSI_CLASSES:
        class_dir = tf.io.gfile.join(folder, label)
        if not tf.io.gfile.isdir(class_dir):
            continue
        for number, image_name, mask_names in readers.busi_listing(class_dir):
            del number
            files.extend(tf.io.gfile.join(class_dir, name) for name in (image_name, *mask_names))
    return files


def _tables_sha256(paths) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with tf.io.gfile.GFile(path, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()


def _busbra_files(root: str) -> tuple[list[str], str]:
    files = readers.busbra_files(root)
    tables = [path for path in files if path.endswith(".csv")]
    return files, _tables_sha256(tables)


def _clinical_files(root: str) -> tuple[list[str], str]:
    records = readers.read_manifest(root)
    files = []
    for record in records:
        for path in (record.bmode, record.semode, record.dual_view, record.mask):
            if path:
                files.append(path)
    manifest = tf.io.gfile.join(root, readers.MANIFEST_NAME)
    with tf.io.gfile.GFile(manifest, "rb") as handle:
        manifest_sha = hashlib.sha256(handle.read()).hexdigest()
    return files, manifest_sha


def source_fingerprint(source: str, manual_dir=None, phantom=None, busi_duplicates: str | None = None) -> dict:
    """The fingerprint of one data source (see the module docstring).

    Args:
        source: ``clinical``, ``busi``, ``busbra`` or ``phantom``.
        manual_dir: the user's folder (``clinical``, ``busi``, ``busbra``).
        phantom: the :class:`~tf_bimodal.config.PhantomConfig` (``phantom``).
        busi_duplicates: the near-duplicate rule (``busi``; default
            ``DataConfig.busi_duplicates``).

    Returns:
        A JSON-ready dict: ``digest`` (hex, the part that names the prepared data),
        ``source``, and for folders ``path`` (resolved), ``files``, ``bytes`` and ``newest``
        (the latest modification time, ISO 8601, UTC), ``manifest_sha256`` for ``clinical``
        (of ``manifest.csv``) and ``busbra`` (of its CSV files),
        ``busi_duplicates`` for ``busi``; for the phantom its ``settings``.

    Raises:
        DataError: a missing or empty ``manual_dir`` (naming it), or a manifest or layout error
            (see :func:`tf_bimodal.data.readers.read_manifest`, ``find_busi_root``, ``read_busbra``).
    """
    if source == "phantom":
        settings = dataclasses.asdict(phantom) if phantom is not None else {}
        payload = {"scheme": FINGERPRINT_SCHEME, "source": source, "settings": settings}
        return {"digest": _digest(payload), "source": source, "settings": settings}
    root = check_manual_dir(manual_dir, source)
    manifest_sha = None
    duplicate_rule = None
    if source == "busi":
        duplicate_rule = busi_duplicates or DataConfig.busi_duplicates
        if duplicate_rule not in BUSI_DUPLICATE_RULES:
            raise ValueError(f"busi_duplicates must be one of {BUSI_DUPLICATE_RULES}, got {duplicate_rule!r}")
        files = _busi_files(root)
        if not files:
            raise DataError(root, "no BUSI images found ('<class> (N).png' in the class folders)")
    elif source == "clinical":
        files, manifest_sha = _clinical_files(root)
    elif source == "busbra":
        files, manifest_sha = _busbra_files(root)
    else:
        raise ValueError(f"source must be 'clinical', 'busi', 'busbra' or 'phantom', got {source!r}")
    entries = sorted(_file_entry(path, root) for path in files)
    payload = {"scheme": FINGERPRINT_SCHEME, "source": source, "path": root, "files": entries,
               "manifest_sha256": manifest_sha, "busi_duplicates": duplicate_rule}
    newest = max(entry[2] for entry in entries)
    fingerprint = {
        "digest": _digest(payload),
        "source": source,
        "path": root,
        "files": len(entries),
        "bytes": sum(entry[1] for entry in entries),
        "newest": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(newest / 1e9)),
    }
    if manifest_sha is not None:
        fingerprint["manifest_sha256"] = manifest_sha
    if duplicate_rule is not None:
        fingerprint["busi_duplicates"] = duplicate_rule
    return fingerprint


def _digest(payload: dict) -> str:
    text = json.dumps(payload, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_LENGTH]


def describe(fingerprint: dict | None) -> str:
    """One line for summaries and reports, e.g. ``busi 3fa2c1d9e0ab: /data/BUSI, 780 files,
    152.3 MB, newest 2026-11-29T10:00:00Z, near-duplicates drop_conflicts``."""
    if not fingerprint:
        return "unknown source fingerprint"
    if fingerprint.get("source") == "phantom":
        settings = fingerprint.get("settings") or {}
        return (
            f"phantom {fingerprint['digest']}: {settings.get('num_benign_patients')} benign + "
            f"{settings.get('num_malignant_patients')} malignant patients, "
            f"{settings.get('min_pairs_per_patient')}-{settings.get('max_pairs_per_patient')} pairs "
            f"each, seed {settings.get('seed')}, {settings.get('image_size')} px"
        )
    line = (
        f"{fingerprint['source']} {fingerprint['digest']}: {fingerprint['path']}, "
        f"{fingerprint['files']} files, {fingerprint['bytes'] / 1e6:.1f} MB, "
        f"newest {fingerprint['newest']}"
    )
    if fingerprint.get("busi_duplicates"):
        line += f", near-duplicates {fingerprint['busi_duplicates']}"
    return line
