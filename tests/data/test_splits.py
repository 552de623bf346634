"""Patient-level splits (paper §3.1, §3.4): grouping, stratification, files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tf_bimodal.config import SplitConfig, check_split_source
from tf_bimodal.data.errors import DataError
from tf_bimodal.data.splits import (
    PARTS,
    check_no_patient_leak,
    fingerprint,
    load_or_make_splits,
    load_splits,
    make_kfold_splits,
    make_official_splits,
    make_paper_split,
    make_paper_splits,
    make_splits,
    save_splits,
)


def make_cohort(num_images=212, num_benign_patients=37, seed=0):
    """A cohort like the paper's: 2-4 pairs per patient, benign patients first."""
    rng = np.random.default_rng(seed)
    image_ids, patient_ids, labels = [], [], []
    patient = 0
    while len(image_ids) < num_images:
        label = "benign" if patient < num_benign_patients else "malignant"
        for pair in range(int(rng.integers(2, 5))):
            image_ids.append(f"p{patient:03d}_img{pair}")
            patient_ids.append(f"p{patient:03d}")
            labels.append(label)
        patient += 1
    return image_ids[:num_images], patient_ids[:num_images], labels[:num_images]


@pytest.fixture(scope="module")
def cohort():
    return make_cohort()


@pytest.fixture(scope="module")
def folds(cohort):
    return make_kfold_splits(*cohort, SplitConfig(num_folds=5, seed=0))


def malignant_fraction(image_ids, label_of):
    return np.mean([label_of[i] == "malignant" for i in image_ids])


def test_kfold_parts_are_patient_disjoint(cohort, folds):
    image_ids, patient_ids, _ = cohort
    patient_of = dict(zip(image_ids, patient_ids))
    assert len(folds) == 5
    for split in folds:
        check_no_patient_leak(split, patient_of)
        patients = [{patient_of[i] for i in split[part]} for part in PARTS]
        for first, second in ((0, 1), (0, 2), (1, 2)):
            assert not patients[first] & patients[second]
        for part, part_patients in zip(PARTS, patients):
            assert sorted(part_patients) == split[f"{part}_patients"]
        assert sorted(split["train"] + split["val"] + split["test"]) == sorted(image_ids)


def test_kfold_val_is_next_test_part(folds):
    assert len(folds) == 5
    for fold, split in enumerate(folds):
        assert split["fold"] == fold
        assert split["val"] == folds[(fold + 1) % len(folds)]["test"]


def test_kfold_tests_each_image_exactly_once(cohort, folds):
    tested = [i for split in folds for i in split["test"]]
    assert sorted(tested) == sorted(cohort[0])


def test_kfold_is_about_60_20_20(cohort, folds):
    assert len(folds) == 5
    for split in folds:
        fractions = np.array([len(split[part]) for part in PARTS]) / len(cohort[0])
        np.testing.assert_allclose(fractions, [0.6, 0.2, 0.2], atol=0.05)


def test_kfold_is_stratified(cohort, folds):
    image_ids, _, labels = cohort
    label_of = dict(zip(image_ids, labels))
    overall = malignant_fraction(image_ids, label_of)
    assert len(folds) == 5
    for split in folds:
        assert abs(malignant_fraction(split["test"], label_of) - overall) < 0.08


def test_kfold_depends_on_seed_only(cohort, folds):
    again = make_kfold_splits(*cohort, SplitConfig(seed=0))
    assert again == folds
    shuffled_order = np.random.default_rng(1).permutation(len(cohort[0]))
    reordered = [[column[i] for i in shuffled_order] for column in cohort]
    assert make_kfold_splits(*reordered, SplitConfig(seed=0)) == folds
    other_seed = make_kfold_splits(*cohort, SplitConfig(seed=1))
    assert [s["test"] for s in other_seed] != [s["test"] for s in folds]


def test_kfold_needs_enough_patients():
    with pytest.raises(DataError, match="at least 5 patients"):
        make_kfold_splits(["a", "b", "c"], ["p1", "p2", "p3"], [0, 1, 0], SplitConfig())


@pytest.mark.parametrize(
    "args, match",
    [
        ((["a", "b"], ["p1"], [0, 1]), "same length"),
        (([], [], []), "empty"),
        ((["a", "a", "b"], ["p1", "p1", "p2"], [0, 0, 1]), "unique"),
    ],
)
def test_bad_inputs_raise(args, match):
    with pytest.raises(ValueError, match=match):
        make_kfold_splits(*args, SplitConfig())


def test_paper_split_sizes_and_grouping(cohort):
    image_ids, patient_ids, labels = cohort
    split = make_paper_split(image_ids, patient_ids, labels, SplitConfig(scheme="paper"))
    sizes = np.array([len(split[part]) for part in PARTS])
    np.testing.assert_allclose(sizes, [137, 34, 41], atol=3)
    assert sizes.sum() == 212
    check_no_patient_leak(split, dict(zip(image_ids, patient_ids)))
    label_of = dict(zip(image_ids, labels))
    overall = malignant_fraction(image_ids, label_of)
    for part in PARTS:
        assert abs(malignant_fraction(split[part], label_of) - overall) < 0.1


def test_paper_split_scales_and_is_seeded():
    cohort = make_cohort(num_images=106, num_benign_patients=18)
    split = make_paper_split(*cohort, SplitConfig(scheme="paper", seed=3))
    sizes = np.array([len(split[part]) for part in PARTS])
    np.testing.assert_allclose(sizes, np.array([137, 34, 41]) / 2, atol=3)
    assert make_paper_split(*cohort, SplitConfig(scheme="paper", seed=3)) == split
    assert make_paper_split(*cohort, SplitConfig(scheme="paper", seed=4))["test"] != split["test"]


def test_paper_split_never_leaves_a_part_empty():
    image_ids = ["a", "b", "c"]
    split = make_paper_split(image_ids, ["p1", "p2", "p3"], [0, 0, 1], SplitConfig(scheme="paper"))
    assert all(len(split[part]) == 1 for part in PARTS)


def test_make_splits_follows_scheme(cohort):
    assert len(make_splits(*cohort, SplitConfig(scheme="kfold", num_folds=4))) == 4
    assert len(make_splits(*cohort, SplitConfig(scheme="paper", num_folds=3))) == 3
    assert SplitConfig().scheme == "paper"


def test_paper_protocol_shares_one_test_set_and_rotates_validation(cohort):
    image_ids, patient_ids, labels = cohort
    splits = make_paper_splits(image_ids, patient_ids, labels, SplitConfig(num_folds=5))
    patient_of = dict(zip(image_ids, patient_ids))
    assert len(splits) == 5
    held_out = make_paper_split(image_ids, patient_ids, labels, SplitConfig())["test"]
    for split in splits:
        check_no_patient_leak(split, patient_of)
        assert split["test"] == held_out
        np.testing.assert_allclose([len(split[p]) for p in PARTS], [137, 34, 41], atol=4)
    validated = [image for split in splits for image in split["val"]]
    assert sorted(validated) == sorted(set(image_ids) - set(held_out))


# --------------------------------------------------------------------------- the guard

PATIENT_OF = {"a1": "alice", "a2": "alice", "b1": "bob", "c1": "carol", "d1": "dave"}


def test_guard_names_the_leaking_patient_and_parts():
    leaky = {"fold": 2, "train": ["a1", "b1"], "val": ["c1"], "test": ["a2", "d1"]}
    with pytest.raises(DataError, match=r"patient 'alice' is in both 'train'.*and 'test'") as info:
        check_no_patient_leak(leaky, PATIENT_OF)
    assert "fold 2" in str(info.value)


@pytest.mark.parametrize(
    "split, match",
    [
        ({"train": ["a1", "a2"], "val": ["b1"], "test": ["b1"]}, "image 'b1' is in both"),
        ({"train": ["a1", "a2"], "val": [], "test": ["b1"]}, "'val' part is empty"),
        ({"train": ["a1", "a2"], "val": ["c1"]}, "no 'test' part"),
        ({"train": ["a1", "zz"], "val": ["c1"], "test": ["b1"]}, "no known patient"),
        (
            {"train": ["a1"], "val": ["c1"], "test": ["b1"], "train_patients": ["alice"],
             "test_patients": ["alice"]},
            "listed in both",
        ),
    ],
)
def test_guard_refuses_bad_splits(split, match):
    with pytest.raises(DataError, match=match):
        check_no_patient_leak(split, PATIENT_OF)


# --------------------------------------------------------------------------- files


def test_save_load_round_trip(tmp_path, folds):
    path = os.path.join(tmp_path, "sub", "splits.json")
    save_splits(path, folds, {"note": "x"})
    splits, meta = load_splits(path)
    assert splits == folds
    assert meta == {"note": "x"}
    assert not [name for name in os.listdir(os.path.dirname(path)) if ".tmp-" in name]
    with pytest.raises(FileExistsError):
        save_splits(path, folds, {})
    save_splits(path, folds[:1], {}, overwrite=True)
    assert len(load_splits(path)[0]) == 1


def test_load_refuses_other_files(tmp_path):
    path = os.path.join(tmp_path, "other.json")
    with open(path, "w") as handle:
        json.dump({"hello": 1}, handle)
    with pytest.raises(DataError, match="is not a"):
        load_splits(path)


def test_load_or_make_reuses_matching_file(tmp_path, cohort):
    path = os.path.join(tmp_path, "splits.json")
    config = SplitConfig(seed=7)
    made = load_or_make_splits(path, *cohort, config)
    _, meta = load_splits(path)
    assert meta["fingerprint"] == fingerprint(*cohort)
    assert meta["config"]["seed"] == 7
    assert load_or_make_splits(path, *cohort, config) == made
    # Reuse returns the file's content, never a re-draw: swap two parts of fold 0 on disk.
    with open(path) as handle:
        document = json.load(handle)
    first = document["splits"][0]
    first["val"], first["test"] = first["test"], first["val"]
    first["val_patients"], first["test_patients"] = first["test_patients"], first["val_patients"]
    with open(path, "w") as handle:
        json.dump(document, handle)
    reused = load_or_make_splits(path, *cohort, config)
    assert reused[0]["val"] == made[0]["test"]
    assert reused[1:] == made[1:]


def test_load_or_make_refuses_other_data_or_config(tmp_path, cohort):
    path = os.path.join(tmp_path, "splits.json")
    load_or_make_splits(path, *cohort, SplitConfig(seed=0))
    before = open(path).read()
    other = make_cohort(num_images=150)
    with pytest.raises(DataError, match="made for other data"):
        load_or_make_splits(path, *other, SplitConfig(seed=0))
    with pytest.raises(DataError, match="another split configuration"):
        load_or_make_splits(path, *cohort, SplitConfig(seed=1))
    assert open(path).read() == before


def test_kfold_with_a_validation_fraction_trains_on_more_patients_and_never_leaks():
    patients = [f"p{i // 2}" for i in range(200)]
    labels = ["benign" if int(p[1:]) % 3 else "malignant" for p in patients]
    ids = [f"img{i}" for i in range(200)]
    folds = make_kfold_splits(ids, patients, labels, SplitConfig(scheme="kfold", val_fraction=0.125))
    tested = []
    for split in folds:
        sizes = {part: len(split[part]) for part in ("train", "val", "test")}
        assert 0.6 < sizes["train"] / 200 < 0.8 and 0.05 < sizes["val"] / 200 < 0.15, sizes
        sets = [set(split[f"{part}_patients"]) for part in ("train", "val", "test")]
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
        tested += split["test"]
    assert sorted(tested) == sorted(ids)
    again = make_kfold_splits(ids, patients, labels, SplitConfig(scheme="kfold", val_fraction=0.125))
    assert again == folds


@pytest.mark.parametrize("fields", [dict(scheme="paper", val_fraction=0.1), dict(scheme="kfold", val_fraction=0.7)])
def test_val_fraction_rules(fields):
    with pytest.raises(ValueError, match="val_fraction"):
        SplitConfig(**fields)


# --------------------------------------------------------------------------- official folds (BUS-BRA)


def official_cohort(num_patients=60, num_folds=5):
    """Two views per patient (every seventh a single view), classes 2:1, patient ``i`` in
    official test fold ``i % num_folds + 1``, as BUS-BRA's fold files give them."""
    image_ids, patient_ids, labels, folds = [], [], [], []
    for patient in range(num_patients):
        for view in ("s",) if patient % 7 == 0 else ("l", "r"):
            image_ids.append(f"bus_{patient:04d}-{view}")
            patient_ids.append(f"busbra_{patient}")
            labels.append("malignant" if patient % 3 == 0 else "benign")
            folds.append(patient % num_folds + 1)
    return image_ids, patient_ids, labels, folds


OFFICIAL = SplitConfig(scheme="official")


def test_official_tests_on_the_data_sets_folds():
    image_ids, patient_ids, labels, folds = official_cohort()
    fold_of = dict(zip(image_ids, folds))
    splits = make_official_splits(image_ids, patient_ids, labels, folds, OFFICIAL)
    assert len(splits) == 5
    tested = []
    for split in splits:
        assert {fold_of[image] for image in split["test"]} == {split["fold"] + 1}
        assert len(split["test"]) == folds.count(split["fold"] + 1)
        sets = [set(split[f"{part}_patients"]) for part in PARTS]
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
        # Validation is one fold's worth of the training part's patients (1 / (K - 1)).
        assert 0.15 < len(sets[1]) / (len(sets[0]) + len(sets[1])) < 0.35
        tested += split["test"]
    assert sorted(tested) == sorted(image_ids)


def test_official_validation_keeps_both_views_of_a_patient_together():
    """The release's valid_k columns split the two views of one patient; these never do."""
    image_ids, patient_ids, labels, folds = official_cohort()
    patient_of = dict(zip(image_ids, patient_ids))
    for split in make_official_splits(image_ids, patient_ids, labels, folds, OFFICIAL):
        train = {patient_of[image] for image in split["train"]}
        assert not train & {patient_of[image] for image in split["val"]}
        check_no_patient_leak(split, patient_of)


def test_official_validation_is_stratified_seeded_and_follows_val_fraction():
    image_ids, patient_ids, labels, folds = official_cohort(num_patients=120)
    label_of = dict(zip(image_ids, labels))
    first = make_official_splits(image_ids, patient_ids, labels, folds, OFFICIAL)
    assert make_official_splits(image_ids, patient_ids, labels, folds, OFFICIAL) == first
    reseeded = make_official_splits(image_ids, patient_ids, labels, folds, SplitConfig(scheme="official", seed=3))
    assert [s["test"] for s in reseeded] == [s["test"] for s in first]
    assert [s["val"] for s in reseeded] != [s["val"] for s in first]
    overall = malignant_fraction(image_ids, label_of)
    for split in first:
        assert abs(malignant_fraction(split["val"], label_of) - overall) < 0.12
    smaller = make_official_splits(image_ids, patient_ids, labels, folds,
                                   SplitConfig(scheme="official", val_fraction=0.125))
    for split in smaller:
        patients = len(split["train_patients"]) + len(split["val_patients"])
        assert 0.08 < len(split["val_patients"]) / patients < 0.17


def test_official_splits_do_not_depend_on_the_order_of_the_examples():
    image_ids, patient_ids, labels, folds = official_cohort()
    order = np.random.default_rng(1).permutation(len(image_ids))
    shuffled = [[column[i] for i in order] for column in (image_ids, patient_ids, labels, folds)]
    assert make_official_splits(*shuffled, OFFICIAL) == make_official_splits(image_ids, patient_ids, labels, folds,
                                                                               OFFICIAL)


def test_official_ten_folds():
    image_ids, patient_ids, labels, folds = official_cohort(num_patients=100, num_folds=10)
    splits = make_splits(image_ids, patient_ids, labels, SplitConfig(scheme="official", num_folds=10), folds)
    assert len(splits) == 10 and sorted(i for s in splits for i in s["test"]) == sorted(image_ids)


@pytest.mark.parametrize("num_folds", [3, 4, 7])
def test_official_takes_five_or_ten_folds(num_folds):
    with pytest.raises(ValueError, match=r"scheme 'official' reads the data set's own 5 or 10-fold partition"):
        SplitConfig(scheme="official", num_folds=num_folds)


@pytest.mark.parametrize("source", ["phantom", "busi", "clinical"])
def test_official_refused_for_sources_without_folds(source):
    with pytest.raises(ValueError, match=rf"only busbra ships; source '{source}' has none"):
        check_split_source(OFFICIAL, source)
    check_split_source(OFFICIAL, "busbra")
    check_split_source(SplitConfig(scheme="kfold"), source)


@pytest.mark.parametrize("folds", [None, "zeros"])
def test_official_refused_for_data_without_folds(folds):
    image_ids, patient_ids, labels, _ = official_cohort()
    test_folds = [0] * len(image_ids) if folds == "zeros" else None
    with pytest.raises(DataError, match="which this data does not have .only BUS-BRA ships one"):
        make_splits(image_ids, patient_ids, labels, OFFICIAL, test_folds)


def test_official_refuses_an_image_without_a_fold():
    image_ids, patient_ids, labels, folds = official_cohort()
    folds[3] = 0
    with pytest.raises(DataError, match=rf"{image_ids[3]}: has no test fold from 1 to 5"):
        make_official_splits(image_ids, patient_ids, labels, folds, OFFICIAL)


def test_official_refuses_a_patient_in_two_test_folds():
    image_ids, patient_ids, labels, folds = official_cohort()
    folds[2] = folds[1] % 5 + 1  # bus_0001-r moved away from bus_0001-l
    with pytest.raises(DataError, match=r"patient 'busbra_1' has 'bus_0001-l' in official test fold 2 and "
                                        r"'bus_0001-r' in 3"):
        make_official_splits(image_ids, patient_ids, labels, folds, OFFICIAL)


def test_official_refuses_an_empty_fold():
    image_ids, patient_ids, labels, folds = official_cohort()
    folds = [1 if fold == 4 else fold for fold in folds]
    with pytest.raises(DataError, match=r"official test fold \[4\] holds no image"):
        make_official_splits(image_ids, patient_ids, labels, folds, OFFICIAL)


def test_official_load_or_make_reuses_and_refuses_other_folds(tmp_path):
    image_ids, patient_ids, labels, folds = official_cohort()
    path = str(tmp_path / "splits.json")
    made = load_or_make_splits(path, image_ids, patient_ids, labels, OFFICIAL, test_folds=folds)
    assert load_or_make_splits(path, image_ids, patient_ids, labels, OFFICIAL, test_folds=folds) == made
    moved = [fold % 5 + 1 for fold in folds]
    with pytest.raises(DataError, match="test part differs from the data set's official fold"):
        load_or_make_splits(path, image_ids, patient_ids, labels, OFFICIAL, test_folds=moved)
