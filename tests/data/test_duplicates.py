"""Near-duplicate grouping (BUSI pseudo-patients): real pairs, robustness, splits, conflicts.

The real pairs below were found with the method and then checked by eye, side by side; the
development set ``busi_dev`` is read in place (read-only) and copied into ``tmp_path`` where
a test needs a folder of its own.
"""

from __future__ import annotations

import collections
import pathlib
import shutil

import cv2
import numpy as np
import pytest

from tf_bimodal.config import DataConfig, SplitConfig
from tf_bimodal.data import dataset as dataset_lib
from tf_bimodal.data import duplicates, readers, splits
from tf_bimodal.data.builder import BimodalBreastUs

from helpers import BUSI_SAMPLE, SHARED_DATA

BUSI_DEV = SHARED_DATA / "busi_dev"

VERIFIED_GROUPS = [
    # one lesion filed as benign twice and as malignant once (busi_dev/README.md)
    {"busi_benign_42", "busi_benign_131", "busi_malignant_51"},
    {"busi_benign_209", "busi_benign_275", "busi_benign_297"},  # calipers drawn differently
    {"busi_benign_333", "busi_malignant_77", "busi_malignant_78"},  # another field of view
    {"busi_benign_138", "busi_benign_60"},  # "RIGHT BREAST" burnt in
    {"busi_benign_233", "busi_benign_299"},
    {"busi_benign_284", "busi_benign_285"},  # calipers
    {"busi_benign_437", "busi_normal_34"},  # filed as benign and as normal
    {"busi_malignant_39", "busi_malignant_42"},  # cropped and resized
    {"busi_normal_21", "busi_normal_63", "busi_normal_64"},
]
"""Groups of busi_dev checked by eye: copies of one frame."""

DIFFERENT_SCANS = [
    ("busi_benign_284", "busi_benign_425"),  # two small oval lesions of two women: the closest call
    ("busi_benign_127", "busi_benign_423"),
    ("busi_benign_37", "busi_malignant_72"),
    ("busi_malignant_144", "busi_malignant_22"),
]
"""Pairs of busi_dev that look alike (the highest-scoring pairs of different scans)."""

CONFLICTS = [
    {"busi_benign_42", "busi_benign_131", "busi_malignant_51"},
    {"busi_benign_333", "busi_malignant_77", "busi_malignant_78"},
    {"busi_benign_399", "busi_malignant_93"},
    {"busi_benign_406", "busi_malignant_94"},
    {"busi_benign_437", "busi_normal_34"},
]


def _needs(folder: pathlib.Path) -> str:
    if not folder.is_dir():
        pytest.skip(f"BUSI data not found at {folder}")
    return str(folder)


@pytest.fixture(scope="module")
def dev():
    """busi_dev: its images (listing), grey pixels, descriptors and similarity matrix."""
    root = _needs(BUSI_DEV)
    images = readers.busi_images(root)
    greys = [readers.to_grey(readers.read_image(image.path)) for image in images]
    descriptors = np.stack([duplicates.image_descriptor(grey) for grey in greys])
    return {
        "root": root,
        "images": images,
        "index": {image.image_id: number for number, image in enumerate(images)},
        "greys": greys,
        "similarity": duplicates.similarity_matrix(descriptors),
    }


@pytest.fixture(scope="module")
def dev_groups(dev):
    return readers.busi_groups(dev["root"], "group", images=dev["images"])


# --- the method on real BUSI images ------------------------------------------------------------


def test_verified_real_near_duplicates_are_grouped(dev_groups):
    group_of = {image_id: set(group) for group in dev_groups.groups for image_id in group}
    for expected in VERIFIED_GROUPS:
        first = next(iter(expected))
        assert first in group_of, f"{first} is in no group"
        assert group_of[first] == expected
        assert len({dev_groups.patient_ids[image_id] for image_id in expected}) == 1


def test_busi_dev_census_and_margin(dev, dev_groups):
    """53 groups (43 pairs, 8 triples, 2 of four): what was checked by eye. Every pair left
    apart scores well below the threshold, every grouped pair well above it."""
    summary = dev_groups.summary()
    assert summary["images"] == 366 and summary["groups"] == 53 and summary["grouped_images"] == 118
    assert summary["group_sizes"] == {"2": 43, "3": 8, "4": 2}
    similarity, index = dev["similarity"], dev["index"]
    same = np.zeros(similarity.shape, bool)
    for group in dev_groups.groups:
        members = [index[image_id] for image_id in group]
        same[np.ix_(members, members)] = True
    apart = np.triu(~same, k=1)
    assert similarity[apart].max() < duplicates.MATCH_THRESHOLD - 0.05
    # nearly all of the 66,795 pairs are far from any match: no creeping false merges
    assert np.percentile(similarity[apart], 99.9) < 0.6
    for group in dev_groups.groups:
        members = [index[image_id] for image_id in group]
        block = similarity[np.ix_(members, members)]
        # each member matches another member comfortably (a chain, not necessarily all pairs)
        assert (block - 2 * np.eye(len(members))).max(axis=1).min() >= duplicates.MATCH_THRESHOLD + 0.05


def test_look_alike_scans_and_random_pairs_are_not_grouped(dev, dev_groups):
    similarity, index = dev["similarity"], dev["index"]
    for first, second in DIFFERENT_SCANS:
        assert similarity[index[first], index[second]] < duplicates.MATCH_THRESHOLD - 0.05
        assert dev_groups.patient_ids[first] != dev_groups.patient_ids[second]
    rng = np.random.default_rng(0)
    pairs = rng.choice(len(similarity), size=(200, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    group_of = {image_id: group for group in dev_groups.groups for image_id in group}
    images = dev["images"]
    unrelated = [(a, b) for a, b in pairs if images[b].image_id not in group_of.get(images[a].image_id, ())]
    assert len(unrelated) > 150
    assert max(similarity[a, b] for a, b in unrelated) < 0.55


def test_label_conflicts_of_busi_dev(dev_groups):
    assert {frozenset(group) for group in dev_groups.conflicts} == {frozenset(group) for group in CONFLICTS}
    files = dev_groups.summary()["conflict_files"]
    assert ["benign/benign (42).png", "benign/benign (131).png", "malignant/malignant (51).png"] in files


def test_sample_and_dev_copies_are_found_across_folders(dev):
    """busi_sample's benign (3) is busi_dev's benign (320), resized from its native 562 px."""
    sample = readers.busi_images(_needs(BUSI_SAMPLE))
    native = next(image for image in sample if image.image_id == "busi_benign_3")
    grey = readers.to_grey(readers.read_image(native.path))
    copy = dev["greys"][dev["index"]["busi_benign_320"]]
    assert grey.shape[1] > 500 and copy.shape[1] == 336
    assert duplicates.find_duplicate_groups([grey, copy]) == [[0, 1]]


# --- robustness to edits (synthetic, on real images) ---------------------------------------------


def _burn_in_calipers_and_text(grey: np.ndarray) -> np.ndarray:
    edited = grey[..., 0].copy()
    height, width = edited.shape
    ends = [(width // 3, height // 3), (2 * width // 3, height // 2)]
    for point in ends:
        cv2.drawMarker(edited, point, 255, cv2.MARKER_CROSS, max(8, width // 30), 2)
    for step in range(0, 20):
        x = ends[0][0] + (ends[1][0] - ends[0][0]) * step // 20
        y = ends[0][1] + (ends[1][1] - ends[0][1]) * step // 20
        cv2.circle(edited, (x, y), 1, 255, -1)  # a dotted caliper line
    scale = width / 600
    cv2.putText(edited, "RT BREAST 10:00", (int(20 * scale), height - int(30 * scale)),
                cv2.FONT_HERSHEY_SIMPLEX, 0.9 * scale, 255, 2)
    cv2.putText(edited, "L 1.23cm", (width - int(200 * scale), int(40 * scale)),
                cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, 255, 2)
    return edited


def _edits(grey: np.ndarray) -> dict:
    image = grey[..., 0]
    height, width = image.shape

    def part(fraction, size):
        return round(fraction * size)

    return {
        "calipers and text": _burn_in_calipers_and_text(grey),
        "5 % crop per side": image[part(0.05, height):height - part(0.05, height),
                                   part(0.05, width):width - part(0.05, width)],
        "5 % crop of top and left": image[part(0.05, height):, part(0.05, width):],
        "8 % crop of top and right": image[part(0.08, height):, :width - part(0.08, width)],
        "resized to 60 %": cv2.resize(image, (int(width * 0.6), int(height * 0.6)), interpolation=cv2.INTER_AREA),
        "another aspect ratio": cv2.resize(image, (int(width * 0.7), int(height * 0.6)), interpolation=cv2.INTER_AREA),
        "gamma and gain": np.clip(255 * (image / 255.0) ** 0.8 * 0.9 + 10, 0, 255).astype(np.uint8),
        "black border": np.pad(image, ((0, 0), (width // 30, 0))),
        "all at once": cv2.resize(_burn_in_calipers_and_text(grey)[part(0.04, height):height - part(0.03, height),
                                                                  part(0.05, width):],
                                  (336, 280), interpolation=cv2.INTER_AREA),
    }


@pytest.mark.parametrize("image_id", ["busi_benign_1", "busi_malignant_10", "busi_normal_2"])
def test_edited_copies_are_grouped_and_other_images_are_not(image_id):
    sample = {image.image_id: image for image in readers.busi_images(_needs(BUSI_SAMPLE))}
    grey = readers.to_grey(readers.read_image(sample[image_id].path))
    edits = _edits(grey)
    others = [readers.to_grey(readers.read_image(sample[other].path))
              for other in ("busi_benign_16", "busi_malignant_17", "busi_normal_9")]
    images = [grey, *edits.values(), *others]
    descriptors = np.stack([duplicates.image_descriptor(image) for image in images])
    similarity = duplicates.similarity_matrix(descriptors)
    for number, name in enumerate(edits, start=1):
        assert similarity[0, number] >= duplicates.MATCH_THRESHOLD + 0.05, name
    groups = duplicates.find_duplicate_groups(images)
    assert groups == [list(range(len(edits) + 1))]


def test_calipers_are_removed_by_the_cleaning(busi_sample_dir):
    sample = {image.image_id: image for image in readers.busi_images(busi_sample_dir)}
    grey = readers.to_grey(readers.read_image(sample["busi_benign_1"].path))
    plain, marked = duplicates.cleaned_image(grey), duplicates.cleaned_image(_burn_in_calipers_and_text(grey))
    raw_difference = np.abs(cv2.resize(_burn_in_calipers_and_text(grey), plain.shape[::-1]).astype(float)
                            - cv2.resize(grey[..., 0], plain.shape[::-1]).astype(float))
    assert np.abs(marked - plain).mean() < 0.25 * raw_difference.mean()


def test_flat_and_noise_images_match_nothing():
    rng = np.random.default_rng(0)
    flat = np.full((100, 120), 90, np.uint8)
    noise = [rng.integers(0, 255, (100, 120), dtype=np.uint8) for _ in range(3)]
    assert not duplicates.image_descriptor(flat).any()
    assert duplicates.find_duplicate_groups([flat, flat.copy(), *noise]) == []


def test_bad_input_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"scan\.png: expected a grey"):
        duplicates.image_descriptor(np.zeros((4, 4, 2)), where="scan.png")
    with pytest.raises(ValueError, match="at least 2 x 2"):
        duplicates.image_descriptor(np.zeros((1, 30)))
    with pytest.raises(ValueError, match="descriptors: expected shape"):
        duplicates.similarity_matrix(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="threshold must be in"):
        duplicates.matching_pairs(np.eye(2), threshold=0)
    with pytest.raises(ValueError, match="busi_duplicates must be one of"):
        DataConfig(source="busi", manual_dir="x", busi_duplicates="merge")
    with pytest.raises(ValueError, match="busi_duplicates must be one of"):
        readers.busi_groups("unused", "merge")


# --- groups, ids and determinism ----------------------------------------------------------------


def test_connected_groups_join_chains_and_are_sorted():
    assert duplicates.connected_groups(6, [(4, 5), (1, 3), (3, 0)]) == [[0, 1, 3], [4, 5]]
    assert duplicates.connected_groups(3, []) == []
    with pytest.raises(ValueError, match="out of range"):
        duplicates.connected_groups(2, [(0, 2)])


def test_groups_and_ids_do_not_depend_on_file_order(dev, dev_groups):
    rng = np.random.default_rng(1)
    order = rng.permutation(len(dev["images"]))
    shuffled = readers.busi_groups(dev["root"], "group", images=[dev["images"][i] for i in order])
    assert shuffled.patient_ids == dev_groups.patient_ids and shuffled.summary() == dev_groups.summary()
    assert {frozenset(group) for group in shuffled.groups} == {frozenset(group) for group in dev_groups.groups}
    # named after the first image in class order (benign, malignant, normal), then by number
    assert dev_groups.patient_ids["busi_malignant_51"] == "busi_group_benign_42"
    assert dev_groups.patient_ids["busi_normal_34"] == "busi_group_benign_437"
    assert dev_groups.patient_ids["busi_benign_19"] == "busi_benign_19"  # no copy: its own patient


# --- patient-level splits on busi_dev -------------------------------------------------------------


def _table(dev, groups):
    kept = [image for image in dev["images"] if image.image_id in groups.patient_ids]
    return ([image.image_id for image in kept], [groups.patient_ids[image.image_id] for image in kept],
            [image.label for image in kept])


def _straddling_groups(split_list, groups) -> list:
    straddling = []
    for split in split_list:
        part_of = {image_id: part for part in splits.PARTS for image_id in split[part]}
        for group in groups.groups:
            if len({part_of[image_id] for image_id in group if image_id in part_of}) > 1:
                straddling.append((split["fold"], group))
    return straddling


@pytest.mark.parametrize("scheme", ["kfold", "paper"])
def test_splits_never_put_a_group_on_two_sides(dev, dev_groups, scheme):
    image_ids, patient_ids, labels = _table(dev, dev_groups)
    config = SplitConfig(scheme=scheme, num_folds=5, seed=0)
    made = splits.make_splits(image_ids, patient_ids, labels, config)
    assert _straddling_groups(made, dev_groups) == []
    for split in made:
        splits.check_no_patient_leak(split, dict(zip(image_ids, patient_ids)))
    assert made == splits.make_splits(image_ids[::-1], patient_ids[::-1], labels[::-1], config)  # deterministic
    # Without the grouping, the same splits cut copies of one scan apart.
    ungrouped = readers.busi_groups(dev["root"], "none", images=dev["images"])
    ids, patients, classes = _table(dev, ungrouped)
    assert _straddling_groups(splits.make_splits(ids, patients, classes, config), dev_groups)


# --- conflict rule and the prepared data ---------------------------------------------------------


def _copy_busi(destination: pathlib.Path, stems: list[str]) -> pathlib.Path:
    """A small BUSI folder in ``destination`` with the images and masks of ``stems`` from busi_dev."""
    source = pathlib.Path(_needs(BUSI_DEV)) / readers.BUSI_FOLDER
    for stem in stems:
        label = stem.split(" ")[0]
        (destination / readers.BUSI_FOLDER / label).mkdir(parents=True, exist_ok=True)
        for path in (source / label).glob(f"{stem}*.png"):
            if path.name == f"{stem}.png" or path.name.startswith(f"{stem}_mask"):
                shutil.copy(path, destination / readers.BUSI_FOLDER / label / path.name)
    return destination


CONFLICT_FOLDER = ["benign (42)", "benign (131)", "malignant (51)", "benign (233)", "benign (299)",
                   "benign (19)", "malignant (20)", "normal (11)"]


@pytest.fixture(scope="module")
def conflict_folder(tmp_path_factory):
    return str(_copy_busi(tmp_path_factory.mktemp("busi"), CONFLICT_FOLDER))


def test_drop_conflicts_leaves_the_group_out_with_a_warning(conflict_folder, progress):
    examples = list(readers.iter_busi(conflict_folder, 32))
    patients = {example["image_id"]: example["patient_id"] for example in examples}
    assert set(patients) == {"busi_benign_19", "busi_benign_233", "busi_benign_299", "busi_malignant_20",
                             "busi_normal_11"}
    assert patients["busi_benign_299"] == patients["busi_benign_233"] == "busi_group_benign_233"
    warning = next(line for line in progress if "different labels" in line)
    assert "left out" in warning
    for name in ("benign/benign (42).png", "benign/benign (131).png", "malignant/malignant (51).png"):
        assert name in warning
    assert any("8 images, 2 near-duplicate groups (5 images, sizes 2-3), 1 label conflict: 3 images left out"
               in line for line in progress)


def test_group_keeps_the_conflict_as_one_patient_and_none_keeps_every_image_apart(conflict_folder, progress):
    grouped = {e["image_id"]: e for e in readers.iter_busi(conflict_folder, 32, busi_duplicates="group")}
    assert len(grouped) == 8
    conflict = ["busi_benign_42", "busi_benign_131", "busi_malignant_51"]
    assert {grouped[image_id]["patient_id"] for image_id in conflict} == {"busi_group_benign_42"}
    assert [grouped[image_id]["label"] for image_id in conflict] == ["benign", "benign", "malignant"]
    assert any("kept as one pseudo-patient busi_group_benign_42" in line for line in progress)
    apart = list(readers.iter_busi(conflict_folder, 32, busi_duplicates="none"))
    assert len(apart) == 8 and all(e["patient_id"] == e["image_id"] for e in apart)


def test_the_rule_names_the_prepared_data_and_is_summarised(conflict_folder, tmp_path, no_network):
    def config(rule):
        return DataConfig(source="busi", manual_dir=conflict_folder, image_size=32,
                          data_dir=str(tmp_path / "tfds"), busi_duplicates=rule)

    names = {rule: dataset_lib.builder_config_name(config(rule)) for rule in ("drop_conflicts", "group", "none")}
    assert len(set(names.values())) == 3
    assert dataset_lib.source_fingerprint(config("group"))["busi_duplicates"] == "group"
    builder = dataset_lib.prepare(config("drop_conflicts"))
    assert builder.info.version == BimodalBreastUs.VERSION
    summary = builder.info.metadata["busi_duplicates"]
    assert summary["conflicts"] == 1 and summary["dropped_images"] == 3 and summary["groups"] == 2
    index = dataset_lib.index_dataset(builder)
    assert len(index) == 5 and len(set(index.patient_ids.tolist())) == 4
    reloaded = dataset_lib.prepare(config("drop_conflicts"))  # read back from disk
    assert dict(reloaded.info.metadata["busi_duplicates"]) == summary
    assert collections.Counter(index.patient_ids.tolist())["busi_group_benign_233"] == 2
