"""The data resolved once per request (tf_bimodal.experiments.experiment_data)."""

from __future__ import annotations

import dataclasses

import pytest

from tf_bimodal import workflow
from tf_bimodal.config import CLASSIFICATION_PRESETS, DataConfig, RuntimeConfig, SplitConfig
from tf_bimodal.data import dataset as dataset_lib
from tf_bimodal.data.builder import BimodalBreastUs
from tf_bimodal.experiments import experiment_data as experiment_data_lib
from tf_bimodal.experiments.experiment_data import ExperimentData, experiment_data, resolve_data
from tf_bimodal.records import RunRecord

from helpers import quick_experiment, tiny_phantom, tiny_segmentation

TINY_PHANTOM = tiny_phantom(seed=5, patients=3, max_pairs=2)


@pytest.fixture
def tiny_data(tmp_path):
    return DataConfig(source="phantom", image_size=64, data_dir=str(tmp_path / "tfds"), phantom=TINY_PHANTOM)


class Counts:
    """How often the data set is prepared and read (one pass over its records each)."""

    def __init__(self, monkeypatch):
        self.prepared, self.reads = 0, []
        prepare, as_dataset = dataset_lib.prepare, BimodalBreastUs.as_dataset

        def counted_prepare(config):
            self.prepared += 1
            return prepare(config)

        def counted_as_dataset(builder, *args, **kwargs):
            self.reads.append("identifiers" if kwargs.get("decoders") else "images")
            return as_dataset(builder, *args, **kwargs)

        monkeypatch.setattr(dataset_lib, "prepare", counted_prepare)
        monkeypatch.setattr(BimodalBreastUs, "as_dataset", counted_as_dataset)


def test_a_request_prepares_and_reads_the_data_once(tiny_data, tmp_path, monkeypatch, no_network):
    experiment = quick_experiment(
        runtime=RuntimeConfig(tensorboard=False),
        segmentation=tiny_segmentation(epochs=1, batch_size=4),
        classification=dataclasses.replace(CLASSIFICATION_PRESETS["quick"], epochs=1, input_size=32),
    )
    counts = Counts(monkeypatch)
    result = workflow.run("mff", tiny_data, SplitConfig(num_folds=2), experiment, output=str(tmp_path / "runs"))
    assert [step["name"] for step in result["steps"]] == ["w_mm_unet", "mff"]
    assert counts.prepared == 1 and counts.reads == ["images"]  # two steps and the report: one pass


def test_describing_reads_only_the_identifiers_and_one_example_per_class_twice(tiny_data, tmp_path, monkeypatch):
    counts = Counts(monkeypatch)
    workflow.run(data=tiny_data, split=SplitConfig(num_folds=2), output=str(tmp_path / "runs"))
    assert counts.prepared == 1
    assert counts.reads == ["identifiers", "images"]  # the index, then the examples figure's few images


def test_resolved_data_keeps_what_it_read(tiny_data, tmp_path, monkeypatch):
    data = resolve_data(tiny_data, SplitConfig(num_folds=2), str(tmp_path))
    assert data.name == dataset_lib.builder_config_name(tiny_data) and data.data_size == 64
    assert data.splits_path == str(tmp_path / "data" / data.name / "splits.json")
    assert len(data.splits) == 2 and len(data.index) == len(data.arrays["image_id"]) > 0
    monkeypatch.setattr(experiment_data_lib, "_read_arrays", lambda builder: pytest.fail("read again"))
    assert data.arrays["bmode"].shape[1:3] == (64, 64)  # kept, not read again
    assert experiment_data(data, None, "elsewhere") is data
    assert data.model_size(None) == 64 and data.model_size(32) == 32
    with pytest.raises(ValueError, match="model input size must be >= 32"):
        data.model_size(16)
    with pytest.raises(ValueError, match="differs from the one the data was resolved with"):
        experiment_data(data, SplitConfig(num_folds=3), str(tmp_path))
    record = data.record(model_size=32)
    assert record["dataset"] == f"bimodal_breast_us/{data.name}" and record["synthetic"] is True
    assert record["source_fingerprint"] == data.fingerprint and record["data_config"]["image_size"] == 64
    assert record["image_size"] == {"data": 64, "model": 32}
    assert RunRecord.from_summary({**record, "model": "m"}, "summary.json").image_size.model == 32
    with pytest.raises(ValueError, match="summary.json: the run's summary lacks image_size"):
        RunRecord.from_summary({key: value for key, value in record.items() if key != "image_size"}, "summary.json")


def test_only_identifiers_are_read_until_the_images_are_asked_for(tiny_data, tmp_path, monkeypatch):
    counts = Counts(monkeypatch)
    data = resolve_data(tiny_data, SplitConfig(num_folds=2), None, in_memory=False)
    assert isinstance(data, ExperimentData) and data.splits == [] and counts.reads == ["identifiers"]
    assert len(data.arrays["image_id"]) == len(data.index)
    assert counts.reads == ["identifiers", "images"]
