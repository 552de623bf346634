"""The presets resolve once into one ExperimentConfig (tf_bimodal.config.presets,
tf_bimodal.config.registry)."""

from __future__ import annotations

import dataclasses

import pytest

from tf_bimodal.config import (
    CLASSIFICATION_PRESETS,
    EXPERIMENT_PRESETS,
    GRID_SEARCH_PRESETS,
    PRESETS,
    SEGMENTATION_PRESETS,
    RuntimeConfig,
    resolve_experiment,
)


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_resolves_to_its_parts(name):
    experiment = resolve_experiment(name)
    assert experiment.name == name
    assert experiment.segmentation == SEGMENTATION_PRESETS[name]
    assert experiment.classification == CLASSIFICATION_PRESETS[name]
    assert experiment.grid_search == GRID_SEARCH_PRESETS[name]
    assert experiment.runtime == RuntimeConfig()
    assert EXPERIMENT_PRESETS[name] == dataclasses.replace(experiment)


def test_auto_is_paper_with_a_gpu_and_cpu_without():
    assert resolve_experiment("auto", gpus=1).name == "paper"
    assert resolve_experiment("auto", gpus=0).name == "cpu"


def test_overrides_and_runtime():
    runtime = RuntimeConfig(tensorboard=False)
    custom = SEGMENTATION_PRESETS["quick"]
    experiment = resolve_experiment("quick", runtime=runtime, name="tiny", segmentation=custom)
    assert (experiment.name, experiment.runtime, experiment.segmentation) == ("tiny", runtime, custom)
    assert experiment.classification == CLASSIFICATION_PRESETS["quick"]


@pytest.mark.parametrize("kwargs, message", [
    ({"preset": "huge"}, "preset must be one of"),
    ({"preset": "quick", "name": "a-b"}, "folder-safe"),
    ({"preset": "quick", "name": ""}, "folder-safe"),
])
def test_bad_presets_and_names_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        resolve_experiment(**kwargs)


def test_resolve_experiment_applies_overrides_after_fields_and_runtime():
    runtime = RuntimeConfig(tensorboard=False, image_every=2)
    experiment = resolve_experiment(
        "quick", runtime=runtime, name="tiny", segmentation=SEGMENTATION_PRESETS["cpu"],
        overrides=("segmentation.epochs=4", "runtime.image_every=3"),
    )
    assert experiment.name == "tiny"
    assert experiment.segmentation == dataclasses.replace(SEGMENTATION_PRESETS["cpu"], epochs=4)
    assert experiment.runtime == RuntimeConfig(tensorboard=False, image_every=3)
    assert experiment.overrides == ("segmentation.epochs=4", "runtime.image_every=3")
    assert resolve_experiment("quick").overrides == ()
