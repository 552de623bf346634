"""Prepared data always match the folder they came from (tf_bimodal.data.fingerprint)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tf_bimodal.config import DataConfig
from tf_bimodal.data import dataset as dataset_lib
from tf_bimodal.data import readers
from tf_bimodal.data.errors import DataError
from tf_bimodal.experiments.cross_validation import data_identity
from tfds_builder.bimodal_breast_us.make_dummy_data import synthetic_bmode, write_image

from helpers import REPO_ROOT, write_busbra_folder


def write_busi(folder: pathlib.Path, counts: dict, seed: int = 0) -> pathlib.Path:
    """A tiny BUSI layout: ``counts`` images per class with a mask each."""
    rng = np.random.default_rng(seed)
    for label, count in counts.items():
        class_dir = folder / "Dataset_BUSI_with_GT" / label
        class_dir.mkdir(parents=True, exist_ok=True)
        for number in range(1, count + 1):
            add_busi_image(class_dir, label, number, rng)
    return folder


def add_busi_image(class_dir: pathlib.Path, label: str, number: int, rng) -> None:
    bmode, lesion = synthetic_bmode(rng)
    write_image(class_dir / f"{label} ({number}).png", bmode)
    mask = lesion if label != "normal" else np.zeros_like(lesion)
    write_image(class_dir / f"{label} ({number})_mask.png", mask * 255)


def busi(folder, tmp_path) -> DataConfig:
    return DataConfig(source="busi", manual_dir=str(folder), image_size=32, data_dir=str(tmp_path / "tfds"))


def image_ids(config: DataConfig) -> list[str]:
    return sorted(dataset_lib.index_dataset(dataset_lib.prepare(config)).image_ids.tolist())


def test_two_folders_prepare_apart_and_keep_their_own_images(tmp_path, no_network):
    first = write_busi(tmp_path / "A", {"benign": 2, "malignant": 1})
    second = write_busi(tmp_path / "B", {"benign": 1, "malignant": 3}, seed=1)
    assert image_ids(busi(first, tmp_path)) == ["busi_benign_1", "busi_benign_2", "busi_malignant_1"]
    assert image_ids(busi(second, tmp_path)) == [
        "busi_benign_1", "busi_malignant_1", "busi_malignant_2", "busi_malignant_3"]
    names = {dataset_lib.builder_config_name(busi(folder, tmp_path)) for folder in (first, second)}
    assert len(names) == 2 and all(name.startswith("busi_32px_") for name in names)
    # the first folder's prepared data are still there and still its own
    assert image_ids(busi(first, tmp_path)) == ["busi_benign_1", "busi_benign_2", "busi_malignant_1"]
    prepared = sorted(p.parent.parent.name for p in (tmp_path / "tfds").rglob("dataset_info.json"))
    assert prepared == sorted(names)
    identities = [data_identity(busi(folder, tmp_path), dataset_lib.source_fingerprint(busi(folder, tmp_path)))
                  for folder in (first, second)]
    assert identities[0] != identities[1]


def test_same_folder_after_adding_a_patient_prepares_afresh(tmp_path, no_network):
    folder = write_busi(tmp_path / "A", {"benign": 1, "malignant": 1})
    config = busi(folder, tmp_path)
    before = dataset_lib.builder_config_name(config)
    assert len(image_ids(config)) == 2
    add_busi_image(folder / "Dataset_BUSI_with_GT" / "malignant", "malignant", 2, np.random.default_rng(5))
    assert dataset_lib.builder_config_name(config) != before
    assert "busi_malignant_2" in image_ids(config)
    fingerprint = dataset_lib.stored_fingerprint(dataset_lib.prepare(config))
    assert fingerprint["files"] == 6 and fingerprint["path"] == os.path.realpath(folder)


def test_touching_a_file_changes_the_fingerprint(tmp_path):
    folder = write_busi(tmp_path / "A", {"benign": 1})
    config = busi(folder, tmp_path)
    before = dataset_lib.source_fingerprint(config)
    image = folder / "Dataset_BUSI_with_GT" / "benign" / "benign (1).png"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert dataset_lib.source_fingerprint(config)["digest"] != before["digest"]
    unrelated = folder / "Dataset_BUSI_with_GT" / "benign" / "notes.txt"
    unrelated.write_text("not part of BUSI")
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert dataset_lib.source_fingerprint(config) == before


def test_clinical_folder_after_adding_a_patient(tmp_path, no_network):
    from test_bad_input import write_manifest, write_pair

    rng = np.random.default_rng(0)
    folder = tmp_path / "study"
    folder.mkdir()
    rows = ["P1,benign," + write_pair(folder, "a", rng), "P2,malignant," + write_pair(folder, "b", rng)]
    write_manifest(folder, *rows)
    config = DataConfig(source="clinical", manual_dir=str(folder), image_size=32, data_dir=str(tmp_path / "tfds"))
    assert sorted(set(dataset_lib.index_dataset(dataset_lib.prepare(config)).patient_ids)) == ["P1", "P2"]
    write_manifest(folder, *rows, "P3,malignant," + write_pair(folder, "c", rng))
    index = dataset_lib.index_dataset(dataset_lib.prepare(config))
    assert sorted(set(index.patient_ids)) == ["P1", "P2", "P3"]
    assert "manifest_sha256" in dataset_lib.stored_fingerprint(dataset_lib.prepare(config))


def test_busbra_fingerprint_covers_its_tables_images_and_masks(tmp_path):
    folder = write_busbra_folder(tmp_path / "busbra", patients=4)
    config = DataConfig(source="busbra", manual_dir=str(folder), image_size=32, data_dir=str(tmp_path / "tfds"))
    before = dataset_lib.source_fingerprint(config)
    # 7 images, 7 masks, bus_data.csv and both fold files
    assert before["source"] == "busbra" and before["files"] == 17 and "manifest_sha256" in before
    assert dataset_lib.builder_config_name(config).startswith("busbra_32px_")
    folds = folder / "5-fold-cv.csv"
    stat = folds.stat()
    folds.write_text(folds.read_text().replace(",1,1\n", ",2,1\n"))  # case 1 moves to fold 2: same size
    os.utime(folds, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert dataset_lib.source_fingerprint(config)["digest"] != before["digest"]
    (folder / "Masks" / "mask_0002-l.png").unlink()
    with pytest.raises(DataError, match="mask not found for Images/bus_0002-l.png"):
        dataset_lib.source_fingerprint(config)


@pytest.mark.parametrize("kind", ["missing", "empty", "file"])
def test_missing_empty_or_non_folder_manual_dir(tmp_path, kind):
    path = tmp_path / "data"
    if kind == "empty":
        path.mkdir()
    elif kind == "file":
        path.write_text("x")
    phrase = {"missing": "folder not found", "empty": "empty folder", "file": "not a folder"}[kind]
    with pytest.raises(DataError, match=phrase) as excinfo:
        dataset_lib.prepare(busi(path, tmp_path))
    assert str(path) in str(excinfo.value)
    assert not (tmp_path / "tfds").exists()


def test_cli_fails_on_a_nonexistent_folder_after_another_was_prepared(tmp_path):
    folder = write_busi(tmp_path / "A", {"benign": 3, "malignant": 3})
    common = [sys.executable, str(REPO_ROOT / "run_experiments.py"), "--data", "busi", "--image-size", "32",
              "--data-dir", str(tmp_path / "tfds"), "--output", str(tmp_path / "runs"), "--num-folds", "3",
              "--split", "kfold"]
    first = subprocess.run([*common, "--manual-dir", str(folder)], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "source busi " in first.stdout and str(os.path.realpath(folder)) in first.stdout
    summary_path = next((tmp_path / "runs" / "data").glob("busi_32px_*/summary.json"))
    summary = json.loads(summary_path.read_text())
    assert summary["source_fingerprint"]["files"] == 12 and summary["num_images"] == 6
    missing = subprocess.run([*common, "--manual-dir", "/nonexistent/folder"], capture_output=True, text=True,
                             timeout=300)
    assert missing.returncode == 2
    assert "error: /nonexistent/folder: folder not found" in missing.stderr
    assert "images 6" not in missing.stdout


def test_interrupted_preparation_is_not_reused(tmp_path, monkeypatch, no_network):
    folder = write_busi(tmp_path / "A", {"benign": 2, "malignant": 2})
    config = busi(folder, tmp_path)
    real = readers.iter_busi

    def interrupted(manual_dir, image_size, **kwargs):
        for number, example in enumerate(real(manual_dir, image_size, **kwargs)):
            if number == 2:
                raise KeyboardInterrupt
            yield example

    monkeypatch.setattr(readers, "iter_busi", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dataset_lib.prepare(config)
    assert not dataset_lib.make_builder(config).is_prepared()
    assert not list((tmp_path / "tfds").rglob("dataset_info.json"))
    monkeypatch.setattr(readers, "iter_busi", real)
    assert len(image_ids(config)) == 4


def test_prepared_data_of_another_source_are_refused(tmp_path, no_network):
    folder = write_busi(tmp_path / "A", {"benign": 1, "malignant": 1})
    config = busi(folder, tmp_path)
    builder = dataset_lib.prepare(config)
    metadata_path = pathlib.Path(builder.data_dir) / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["source_fingerprint"]["path"] = "/somewhere/else"
    metadata_path.write_text(json.dumps(metadata))
    with pytest.raises(DataError, match="prepared data of another source") as excinfo:
        dataset_lib.prepare(config)
    assert "/somewhere/else" in str(excinfo.value) and builder.data_dir in str(excinfo.value)


def test_phantom_fingerprint_follows_its_settings(tmp_path):
    from tf_bimodal.config import PhantomConfig

    default = dataset_lib.source_fingerprint(DataConfig())
    assert default["source"] == "phantom" and default["settings"]["seed"] == 0
    other = dataset_lib.source_fingerprint(DataConfig(phantom=PhantomConfig(seed=1)))
    assert other["digest"] != default["digest"]
    assert dataset_lib.builder_config_name(DataConfig()) == "phantom"
