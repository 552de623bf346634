"""Patient-level train/validation/test splits (paper §3.1, §3.4).

The paper divides its 212 B/SE pairs *at the patient level* into 137/34/41 pairs for training,
validation and testing (§3.1) and reports five-fold cross-validation (§3.4). Both schemes are
here, selected by ``SplitConfig.scheme``:

* ``"kfold"`` (:func:`make_kfold_splits`): the patients are dealt into K parts, stratified by
  label and grouped by patient. Fold k tests on part k, validates on part (k + 1) mod K and
  trains on the other K - 2 parts. With K = 5 that is 60/20/20 % of the pairs per fold. The
  validation part is held out from training because it serves early stopping and the choice
  of the decision threshold (Youden's J); tuning those on the test part would bias the
  reported scores. Over the K folds every pair is tested exactly once.
* ``"paper"`` (:func:`make_paper_splits`, the default): the paper's protocol. A patient-level
  test set sized like the paper's 41 of 212 pairs is held out once; the other pairs are dealt
  into K patient-level parts and fold k validates on part k and trains on the rest. With
  K = 5 on 212 pairs that is the paper's 137/34/41 in every fold. All K fold models are
  tested on the same held-out pairs, which is what makes the paper's fold union (a pixel is
  lesion where more than half of the fold models agree, §4.1) and its mean ± SD over folds
  on one set of 13 test patients (§4.2) well defined.
* ``"official"`` (:func:`make_official_splits`, BUS-BRA only): the data set's own
  patient-grouped, class-stratified test folds (Gómez-Flores et al., Medical Physics 2024:
  ``5-fold-cv.csv``, ``10-fold-cv.csv``; ``kFold`` is the fold that tests an image), so that
  results compare with others' on the same partition. Validation is drawn patient-grouped and
  stratified inside each fold's training part, as ``kfold`` with ``val_fraction`` does. The
  release's own validation columns (``valid_k``) are not used: they are drawn per image and
  put two views of one patient on both sides of training and validation.

  Where the folds come from: each image's test fold is stored as a feature of the prepared
  data (``test_fold_5``, ``test_fold_10``, read from the CSV files when the folder is
  prepared, :mod:`tf_bimodal.data.readers.busbra`) and passed here as ``test_folds``. The
  splits thereby stay a function of the prepared data alone, as for the other schemes: the
  folder is not read again, a changed CSV file changes the source's fingerprint and so
  prepares the data afresh, and the folds can be checked against the saved splits.

A split is a plain dict::

    {"fold": 0,
     "train": [image ids], "val": [...], "test": [...],
     "train_patients": [patient ids], "val_patients": [...], "test_patients": [...]}

Splits are made once per seed, saved as JSON beside the results and reused
(:func:`load_or_make_splits`); a saved file made for other data or another configuration is
refused, never silently overwritten.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf
from sklearn.model_selection import StratifiedGroupKFold

from tf_bimodal.config import SplitConfig, to_dict
from tf_bimodal.data.errors import DataError

PARTS = ("train", "val", "test")
"""The three parts of every split, in this order."""

SPLITS_FILE_FORMAT = "tf_bimodal.splits"
SPLITS_FILE_VERSION = 1


# --------------------------------------------------------------------------- helpers


def _as_str(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, bytes):
            return value.decode("utf-8")
    return str(value)


def _as_str_list(values, name: str) -> list[str]:
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{name} must be a sequence of ids, got a single string {values!r}")
    return [_as_str(v) for v in np.asarray(values, dtype=object).reshape(-1)]


def _validated_table(image_ids, patient_ids, labels):
    """Validate the three parallel lists and return them sorted by image id.

    Sorting makes every split depend only on the *set* of (image, patient, label) triples,
    not on the order in which a data source happens to list them.
    """
    image_ids = _as_str_list(image_ids, "image_ids")
    patient_ids = _as_str_list(patient_ids, "patient_ids")
    labels = _as_str_list(labels, "labels")
    if not (len(image_ids) == len(patient_ids) == len(labels)):
        raise ValueError(
            "image_ids, patient_ids and labels must have the same length, got "
            f"{len(image_ids)}, {len(patient_ids)} and {len(labels)}"
        )
    if not image_ids:
        raise ValueError("cannot split an empty data set (no image ids given)")
    duplicates = [i for i, count in collections.Counter(image_ids).items() if count > 1]
    if duplicates:
        raise DataError(
            "image_ids", f"image ids must be unique, these occur more than once: {duplicates[:5]}"
        )
    order = np.argsort(np.asarray(image_ids, dtype=object), kind="stable")
    return (
        [image_ids[i] for i in order],
        [patient_ids[i] for i in order],
        [labels[i] for i in order],
    )


def _split_dict(fold: int, assignment: Mapping[str, Sequence[int]], image_ids, patient_ids):
    split = {"fold": int(fold)}
    for part in PARTS:
        indices = sorted(assignment[part], key=lambda i: image_ids[i])
        split[part] = [image_ids[i] for i in indices]
    for part in PARTS:
        split[f"{part}_patients"] = sorted({patient_ids[i] for i in assignment[part]})
    return split


def fingerprint(image_ids, patient_ids, labels) -> str:
    """SHA-256 of the sorted (image id, patient id, label) triples.

    Two data sets share a fingerprint exactly when they hold the same images of the same
    patients with the same labels, whatever their order; used to tell whether a saved split
    belongs to the data at hand.
    """
    image_ids, patient_ids, labels = _validated_table(image_ids, patient_ids, labels)
    digest = hashlib.sha256()
    for triple in zip(image_ids, patient_ids, labels):
        digest.update(json.dumps(triple).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


# --------------------------------------------------------------------------- making splits


def make_kfold_splits(image_ids, patient_ids, labels, config: SplitConfig | None = None) -> list:
    """Stratified, patient-grouped K-fold splits (paper §3.4, five-fold cross-validation).

    The patients are dealt into ``config.num_folds`` parts with scikit-learn's
    ``StratifiedGroupKFold`` (shuffled with ``config.seed``), so that no patient is in two
    parts and each part keeps the overall class ratio as far as whole patients allow. Fold k
    tests on part k, validates on part (k + 1) mod K and trains on the remaining K - 2 parts:
    with the default K = 5 that is 60/20/20 % of the pairs. With ``config.val_fraction`` set,
    fold k instead validates on about that share of the other parts' patients (drawn whole and
    stratified, seeded with ``config.seed + k``) and trains on the rest: 70/10/20 % with
    ``val_fraction=0.125``, more training images for small data sets. The validation part
    drives early stopping and the Youden threshold, so it must be disjoint from both training
    and test.

    Args:
        image_ids: one id per B/SE pair, unique.
        patient_ids: the patient of each pair (the grouping unit, paper §3.1).
        labels: the class of each pair (str or int; used for stratification only).
        config: a ``SplitConfig``; default ``SplitConfig()`` (K = 5, seed 0).

    Returns:
        A list of K split dicts ``{"fold", "train", "val", "test", "<part>_patients"}``;
        every image is in exactly one test part over the K folds.

    Raises:
        ValueError: lists of different lengths or empty.
        DataError: duplicate image ids, or fewer patients than folds.
    """
    config = config or SplitConfig()
    image_ids, patient_ids, labels = _validated_table(image_ids, patient_ids, labels)
    num_folds = config.num_folds
    num_patients = len(set(patient_ids))
    if num_patients < num_folds:
        raise DataError(
            "patient_ids",
            f"{num_folds}-fold splits need at least {num_folds} patients, got {num_patients}",
        )
    _, label_codes = np.unique(np.asarray(labels, dtype=object), return_inverse=True)
    _, group_codes = np.unique(np.asarray(patient_ids, dtype=object), return_inverse=True)
    splitter = StratifiedGroupKFold(n_splits=num_folds, shuffle=True, random_state=config.seed)
    parts = [
        test_indices
        for _, test_indices in splitter.split(
            np.zeros((len(image_ids), 1)), label_codes, groups=group_codes
        )
    ]
    splits = []
    for fold in range(num_folds):
        if config.val_fraction is None:
            val_part = (fold + 1) % num_folds
            train_indices = [
                i for p, indices in enumerate(parts) if p not in (fold, val_part) for i in indices
            ]
            val_indices = parts[val_part]
        else:
            rest = [i for p, indices in enumerate(parts) if p != fold for i in indices]
            train_indices, val_indices = _grouped_validation(rest, label_codes, group_codes,
                                                             config.val_fraction, config.seed + fold)
        assignment = {"train": train_indices, "val": val_indices, "test": parts[fold]}
        split = _split_dict(fold, assignment, image_ids, patient_ids)
        check_no_patient_leak(split, dict(zip(image_ids, patient_ids)))
        splits.append(split)
    return splits


def _grouped_validation(rest, label_codes, group_codes, val_fraction: float, seed: int):
    """Split the indices ``rest`` into training and validation: about ``val_fraction`` of its
    patients, drawn whole and stratified by label (``StratifiedGroupKFold`` seeded with
    ``seed``: its first part). Returns ``(train, val)`` index lists."""
    rest = np.asarray(rest)
    inner = StratifiedGroupKFold(n_splits=max(2, round(1.0 / val_fraction)), shuffle=True, random_state=seed)
    keep, held = next(inner.split(np.zeros((len(rest), 1)), label_codes[rest], groups=group_codes[rest]))
    return rest[keep].tolist(), rest[held].tolist()


def _official_fold_table(image_ids, patient_ids, test_folds, num_folds: int) -> list[int]:
    """Each image's test fold (1 to ``num_folds``), checked: every image has one, every patient
    one only, every fold an image.

    Raises:
        DataError: no folds at all, an image without a fold or out of range, a patient in two
            test folds, an empty fold.
    """
    if test_folds is None:
        raise DataError("split", f"scheme 'official' uses the data set's own {num_folds}-fold test partition, "
                                 "which this data does not have (only BUS-BRA ships one: 5-fold-cv.csv, "
                                 "10-fold-cv.csv); use scheme 'kfold' or 'paper'")
    folds = [int(fold) for fold in test_folds]
    first_of_patient = {}
    for image, patient, fold in zip(image_ids, patient_ids, folds):
        if not 1 <= fold <= num_folds:
            raise DataError(image, f"has no test fold from 1 to {num_folds} in the data set's own {num_folds}-fold "
                                   f"partition (got {fold}; 0: not listed)")
        first = first_of_patient.setdefault(patient, (fold, image))
        if first[0] != fold:
            raise DataError(image, f"patient {patient!r} has {first[1]!r} in official test fold {first[0]} and "
                                   f"{image!r} in {fold}: all images of a patient must sit in one test fold")
    empty = sorted(set(range(1, num_folds + 1)) - set(folds))
    if empty:
        raise DataError("split", f"official test fold{'s' * (len(empty) > 1)} {empty} hold{'s' * (len(empty) == 1)} "
                                 f"no image of this data")
    return folds


def make_official_splits(image_ids, patient_ids, labels, test_folds, config: SplitConfig | None = None) -> list:
    """The data set's own patient-grouped test folds, validation drawn patient-grouped inside
    each fold's training part (``SplitConfig(scheme="official")``; see the module docstring).

    Fold k (0-based) tests on the images whose official fold is k + 1 (BUS-BRA's ``kFold``,
    1-based). Its other images are divided into training and validation: about
    ``config.val_fraction`` of their patients, by default one fold's worth (1 / (K - 1) of
    them: 60/20/20 % with K = 5), drawn whole and stratified by label, seeded with
    ``config.seed + k`` (the draw of :func:`make_kfold_splits` with ``val_fraction``). The
    release's ``valid_k`` columns are not used: they split the two views of one patient.

    Args:
        image_ids, patient_ids, labels: as for :func:`make_kfold_splits`.
        test_folds: each image's official test fold (1 to ``config.num_folds``), in the order
            of ``image_ids`` (``DatasetIndex.official_folds``); None when the data has none.
        config: a ``SplitConfig`` with ``scheme="official"``; default K = 5, seed 0.

    Returns:
        A list of K split dicts; every image is in exactly one test part.

    Raises:
        DataError: no official folds, an image without one, a patient in two test folds, an
            empty fold, or a fold's training part with too few patients to hold out validation.
    """
    config = config or SplitConfig(scheme="official")
    fold_of = None
    if test_folds is not None and np.any(test_folds):
        folds = np.asarray(test_folds).reshape(-1)
        if len(folds) != len(image_ids):
            raise ValueError(f"test_folds must have one fold per image, got {len(folds)} for {len(image_ids)} images")
        fold_of = dict(zip(_as_str_list(image_ids, "image_ids"), folds.tolist()))
    image_ids, patient_ids, labels = _validated_table(image_ids, patient_ids, labels)
    ordered = None if fold_of is None else [fold_of[image] for image in image_ids]
    folds = _official_fold_table(image_ids, patient_ids, ordered, config.num_folds)
    _, label_codes = np.unique(np.asarray(labels, dtype=object), return_inverse=True)
    _, group_codes = np.unique(np.asarray(patient_ids, dtype=object), return_inverse=True)
    val_fraction = config.val_fraction or 1.0 / (config.num_folds - 1)
    patient_of = dict(zip(image_ids, patient_ids))
    splits = []
    for fold in range(config.num_folds):
        test = [i for i, official in enumerate(folds) if official == fold + 1]
        rest = [i for i, official in enumerate(folds) if official != fold + 1]
        needed = max(2, round(1.0 / val_fraction))
        if len(set(group_codes[rest].tolist())) < needed:
            raise DataError("patient_ids", f"official fold {fold + 1}: its training part has fewer than {needed} "
                                           f"patients, too few to hold out {val_fraction:.0%} of them for validation")
        train, val = _grouped_validation(rest, label_codes, group_codes, val_fraction, config.seed + fold)
        split = _split_dict(fold, {"train": train, "val": val, "test": test}, image_ids, patient_ids)
        check_no_patient_leak(split, patient_of)
        splits.append(split)
    return splits


def _scaled_targets(paper_sizes: Sequence[int], num_images: int) -> np.ndarray:
    sizes = np.asarray(paper_sizes, dtype=np.float64)
    if sizes.shape != (3,) or np.any(sizes <= 0):
        raise ValueError(
            f"SplitConfig.paper_sizes must be three positive sizes (train, val, test), got "
            f"{tuple(paper_sizes)}"
        )
    return sizes * num_images / sizes.sum()


def make_paper_split(image_ids, patient_ids, labels, config: SplitConfig | None = None) -> dict:
    """One train/validation/test split sized like the paper's 137/34/41 pairs (paper §3.1).

    The target sizes are ``config.paper_sizes`` scaled to the number of pairs at hand (on the
    paper's 212 pairs they are exactly 137/34/41). Whole patients are assigned, label stratum
    by label stratum (a patient's label is the most common label of its pairs): within a
    stratum the patients are taken largest first, ties broken by a ``config.seed``-seeded
    shuffle, and each goes to the part furthest below its target. Targets carry over from one
    stratum to the next, so rounding errors do not add up. Sizes therefore match the targets
    up to about one patient's worth of pairs.

    Args:
        image_ids: one id per B/SE pair, unique.
        patient_ids: the patient of each pair.
        labels: the class of each pair.
        config: a ``SplitConfig``; only ``paper_sizes`` and ``seed`` are read.

    Returns:
        One split dict ``{"fold": 0, "train", "val", "test", "<part>_patients"}``.

    Raises:
        DataError: fewer than three patients (each part needs one).
    """
    config = config or SplitConfig()
    image_ids, patient_ids, labels = _validated_table(image_ids, patient_ids, labels)
    targets = _scaled_targets(config.paper_sizes, len(image_ids))

    images_of = collections.defaultdict(list)
    labels_of = collections.defaultdict(collections.Counter)
    for index, (patient, label) in enumerate(zip(patient_ids, labels)):
        images_of[patient].append(index)
        labels_of[patient][label] += 1
    patients = sorted(images_of)
    if len(patients) < len(PARTS):
        raise DataError(
            "patient_ids", f"a train/val/test split needs at least 3 patients, got {len(patients)}"
        )
    # Most common label per patient, ties broken by label name for determinism.
    patient_label = {
        p: min(labels_of[p].items(), key=lambda kv: (-kv[1], kv[0]))[0] for p in patients
    }

    rng = np.random.default_rng(config.seed)
    tie_break = dict(zip(patients, rng.permutation(len(patients))))
    strata = sorted(set(patient_label.values()))

    assigned = {part: [] for part in PARTS}
    counts = np.zeros(3)
    images_seen = 0
    for label in strata:
        members = [p for p in patients if patient_label[p] == label]
        members.sort(key=lambda p: (-len(images_of[p]), tie_break[p]))
        images_seen += sum(len(images_of[p]) for p in members)
        # Cumulative target after this stratum, so earlier rounding is compensated here.
        stratum_targets = targets * images_seen / len(image_ids)
        for patient in members:
            deficits = stratum_targets - counts
            part = int(np.argmax(deficits))
            assigned[PARTS[part]].append(patient)
            counts[part] += len(images_of[patient])

    # Tiny data sets: give an empty part the smallest patient of the most over-full part.
    for part_index, part in enumerate(PARTS):
        if assigned[part]:
            continue
        surplus = counts - targets
        donors = [i for i in np.argsort(-surplus) if len(assigned[PARTS[i]]) > 1]
        donor = PARTS[donors[0]]
        moved = min(assigned[donor], key=lambda p: (len(images_of[p]), tie_break[p]))
        assigned[donor].remove(moved)
        assigned[part].append(moved)
        counts[donors[0]] -= len(images_of[moved])
        counts[part_index] += len(images_of[moved])

    assignment = {
        part: [i for patient in assigned[part] for i in images_of[patient]] for part in PARTS
    }
    split = _split_dict(0, assignment, image_ids, patient_ids)
    check_no_patient_leak(split, dict(zip(image_ids, patient_ids)))
    return split


def make_paper_splits(image_ids, patient_ids, labels, config: SplitConfig | None = None) -> list:
    """The paper's protocol: one held-out test set, K-fold cross-validation on the rest (§3.1, §3.4).

    The test part is the one :func:`make_paper_split` draws (``paper_sizes[2]`` of
    ``sum(paper_sizes)`` of the pairs, whole patients, stratified). The remaining patients are
    dealt into ``config.num_folds`` parts by ``StratifiedGroupKFold`` (seeded); fold k
    validates on part k and trains on the others. Every fold shares the same test part.

    Returns:
        A list of K split dicts ``{"fold", "train", "val", "test", "<part>_patients"}``.

    Raises:
        DataError: fewer patients outside the test set than folds.
    """
    config = config or SplitConfig()
    image_ids, patient_ids, labels = _validated_table(image_ids, patient_ids, labels)
    held_out = set(make_paper_split(image_ids, patient_ids, labels, config)["test"])
    test = [i for i, image in enumerate(image_ids) if image in held_out]
    rest = [i for i, image in enumerate(image_ids) if image not in held_out]
    rest_patients = [patient_ids[i] for i in rest]
    num_folds = config.num_folds
    if len(set(rest_patients)) < num_folds:
        raise DataError(
            "patient_ids",
            f"{num_folds}-fold cross-validation outside the test set needs at least {num_folds} "
            f"patients there, got {len(set(rest_patients))}",
        )
    _, label_codes = np.unique(np.asarray([labels[i] for i in rest], dtype=object), return_inverse=True)
    _, group_codes = np.unique(np.asarray(rest_patients, dtype=object), return_inverse=True)
    splitter = StratifiedGroupKFold(n_splits=num_folds, shuffle=True, random_state=config.seed)
    parts = [
        [rest[j] for j in val_indices]
        for _, val_indices in splitter.split(np.zeros((len(rest), 1)), label_codes, groups=group_codes)
    ]
    patient_of = dict(zip(image_ids, patient_ids))
    splits = []
    for fold in range(num_folds):
        train = [i for p, indices in enumerate(parts) if p != fold for i in indices]
        split = _split_dict(fold, {"train": train, "val": parts[fold], "test": test}, image_ids, patient_ids)
        check_no_patient_leak(split, patient_of)
        splits.append(split)
    return splits


def make_splits(image_ids, patient_ids, labels, config: SplitConfig | None = None, test_folds=None) -> list:
    """The splits ``config.scheme`` asks for: ``paper`` (default), ``kfold`` or ``official``
    (which reads ``test_folds``, see :func:`make_official_splits`), as a list of folds."""
    config = config or SplitConfig()
    if config.scheme == "official":
        return make_official_splits(image_ids, patient_ids, labels, test_folds, config)
    if config.scheme == "kfold":
        return make_kfold_splits(image_ids, patient_ids, labels, config)
    return make_paper_splits(image_ids, patient_ids, labels, config)


def _check_official_tests(path: str, saved: Sequence[Mapping], made: Sequence[Mapping]) -> None:
    """Refuse saved official splits whose test parts are not the data's official folds."""
    for old, new in zip(saved, made):
        if sorted(old["test"]) != sorted(new["test"]):
            raise DataError(path, f"fold {old['fold']}'s test part differs from the data set's official fold "
                                  f"{new['fold'] + 1}; choose another path or remove the file deliberately")


# --------------------------------------------------------------------------- the guard


def check_no_patient_leak(split: Mapping, patient_of: Mapping) -> None:
    """Refuse a split in which a patient (or an image) is in two parts (paper §3.1).

    Pairs of one patient are strongly correlated; one in training and another in testing
    inflates every test score, which is why the paper splits at the patient level.

    Args:
        split: a split dict with ``"train"``, ``"val"`` and ``"test"`` image-id lists (and
            optionally ``"<part>_patients"`` lists, which are checked too).
        patient_of: mapping from image id to patient id.

    Raises:
        DataError: naming the patient (or image) and the two parts it is in; also for an
            empty part and for an image id unknown to ``patient_of``.
    """
    where = f"split (fold {split.get('fold', '?')})"
    first_part_of_image = {}
    first_part_of_patient = {}
    for part in PARTS:
        if part not in split:
            raise DataError(where, f"has no {part!r} part; a split needs {PARTS}")
        images = [_as_str(i) for i in split[part]]
        if not images:
            raise DataError(where, f"the {part!r} part is empty")
        for image in images:
            if image in first_part_of_image:
                if first_part_of_image[image] == part:
                    raise DataError(where, f"image {image!r} is listed twice in {part!r}")
                raise DataError(
                    where,
                    f"image {image!r} is in both {first_part_of_image[image]!r} and {part!r}",
                )
            first_part_of_image[image] = part
            if image not in patient_of:
                raise DataError(where, f"image {image!r} in {part!r} has no known patient")
            patient = _as_str(patient_of[image])
            other = first_part_of_patient.setdefault(patient, (part, image))
            if other[0] != part:
                raise DataError(
                    where,
                    f"patient {patient!r} is in both {other[0]!r} (image {other[1]!r}) and "
                    f"{part!r} (image {image!r}); all pairs of a patient must stay in one part",
                )
    listed = {}
    for part in PARTS:
        for patient in split.get(f"{part}_patients", ()):
            patient = _as_str(patient)
            if listed.setdefault(patient, part) != part:
                raise DataError(
                    where, f"patient {patient!r} is listed in both {listed[patient]!r} and {part!r}"
                )


# --------------------------------------------------------------------------- files


def _json_normalized(value):
    return json.loads(json.dumps(value))


def save_splits(
    path: str, splits: Sequence[Mapping], meta: Mapping | None = None, *, overwrite: bool = False
):
    """Write splits as JSON, atomically (a temporary file renamed into place).

    Args:
        path: target file (any ``tf.io.gfile`` path); parent folders are created.
        splits: list of split dicts.
        meta: JSON-ready facts about how they were made (config, fingerprint, ...).
        overwrite: replace an existing file; by default an existing file is an error.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    if tf.io.gfile.exists(path) and not overwrite:
        raise FileExistsError(f"{path}: splits file exists; pass overwrite=True to replace it")
    parent = os.path.dirname(path)
    if parent:
        tf.io.gfile.makedirs(parent)
    document = {
        "format": SPLITS_FILE_FORMAT,
        "version": SPLITS_FILE_VERSION,
        "meta": dict(meta or {}),
        "splits": [dict(s) for s in splits],
    }
    text = json.dumps(document, indent=1, sort_keys=False)
    tmp_path = f"{path}.tmp-{uuid.uuid4().hex}"
    with tf.io.gfile.GFile(tmp_path, "w") as handle:
        handle.write(text)
    try:
        tf.io.gfile.rename(tmp_path, path, overwrite=True)
    except Exception:
        if tf.io.gfile.exists(tmp_path):
            tf.io.gfile.remove(tmp_path)
        raise


def load_splits(path: str) -> tuple[list, dict]:
    """Read a file written by :func:`save_splits`.

    Returns:
        ``(splits, meta)``.

    Raises:
        DataError: the file is not a splits file of a known version.
    """
    with tf.io.gfile.GFile(path, "r") as handle:
        try:
            document = json.loads(handle.read())
        except json.JSONDecodeError as error:
            raise DataError(path, f"is not valid JSON ({error})") from error
    if not isinstance(document, dict) or document.get("format") != SPLITS_FILE_FORMAT:
        raise DataError(path, f"is not a {SPLITS_FILE_FORMAT} file")
    if document.get("version") != SPLITS_FILE_VERSION:
        raise DataError(
            path, f"has version {document.get('version')}, this code reads {SPLITS_FILE_VERSION}"
        )
    return list(document["splits"]), dict(document.get("meta", {}))


def load_or_make_splits(
    path: str, image_ids, patient_ids, labels, config: SplitConfig | None = None, test_folds=None
) -> list:
    """Reuse the splits saved at ``path``, or make and save them (STYLE §5, nnU-Net practice).

    An existing file is reused only if it was made with the same ``SplitConfig`` and for the
    same data (same :func:`fingerprint`; for ``scheme="official"`` also the same test parts as
    ``test_folds`` give); otherwise this refuses rather than overwrite it, because results
    already computed on the old splits would silently stop matching.

    ``test_folds``: each image's official test fold, for ``scheme="official"``
    (:func:`make_official_splits`); not read by the other schemes.

    Returns:
        The list of split dicts (K folds, or one for ``scheme="paper"``).

    Raises:
        DataError: the file exists but was made for other data or another configuration, or
            a reused split leaks a patient.
    """
    config = config or SplitConfig()
    data_fingerprint = fingerprint(image_ids, patient_ids, labels)
    config_dict = _json_normalized(to_dict(config))
    patient_of = dict(
        zip(_as_str_list(image_ids, "image_ids"), _as_str_list(patient_ids, "patient_ids"))
    )
    if tf.io.gfile.exists(path):
        splits, meta = load_splits(path)
        if meta.get("fingerprint") != data_fingerprint:
            raise DataError(
                path,
                "was made for other data (its image/patient/label fingerprint "
                f"{str(meta.get('fingerprint'))[:12]}... differs from this data's "
                f"{data_fingerprint[:12]}...); choose another path or remove the file "
                "deliberately",
            )
        if meta.get("config") != config_dict:
            raise DataError(
                path,
                f"was made with another split configuration ({meta.get('config')}, this run "
                f"asks for {config_dict}); choose another path or remove the file deliberately",
            )
        for split in splits:
            check_no_patient_leak(split, patient_of)
        if config.scheme == "official":
            expected = make_official_splits(image_ids, patient_ids, labels, test_folds, config)
            _check_official_tests(path, splits, expected)
        return splits
    splits = make_splits(image_ids, patient_ids, labels, config, test_folds)
    meta = {
        "config": config_dict,
        "fingerprint": data_fingerprint,
        "num_images": len(patient_of),
        "num_patients": len(set(patient_of.values())),
    }
    save_splits(path, splits, meta)
    return splits
