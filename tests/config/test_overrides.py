"""``section.key=value`` overrides and override files on top of a preset
(tf_bimodal.config.overrides)."""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest

from tf_bimodal.config import (
    EXPERIMENT_PRESETS,
    PRESETS,
    apply_overrides,
    check_override,
    format_override,
    load_overrides_file,
    override_keys,
    parse_override,
    resolve_experiment,
    to_dict,
)


@pytest.mark.parametrize("text, expected", [
    ("segmentation.epochs=5", ("segmentation", "epochs", 5)),
    ("segmentation.epochs= 7 ", ("segmentation", "epochs", 7)),
    ("classification.learning_rate=1e-2", ("classification", "learning_rate", 0.01)),
    ("classification.learning_rate=1", ("classification", "learning_rate", 1.0)),
    ("runtime.tensorboard=false", ("runtime", "tensorboard", False)),
    ("runtime.tensorboard=Yes", ("runtime", "tensorboard", True)),
    ("segmentation.augment=0", ("segmentation", "augment", False)),
    ("segmentation.use_batch_norm=1", ("segmentation", "use_batch_norm", True)),
    ("runtime.precision=mixed_bfloat16", ("runtime", "precision", "mixed_bfloat16")),
    ("classification.kernel_initializer='glorot_uniform'", ("classification", "kernel_initializer", "glorot_uniform")),
    ("classification.backbone_weights=none", ("classification", "backbone_weights", "none")),
    ("classification.backbone_weights=/data/vgg16.weights.h5", ("classification", "backbone_weights", "/data/vgg16.weights.h5")),
    ("segmentation.image_size=None", ("segmentation", "image_size", None)),
    ("grid_search.epochs=none", ("grid_search", "epochs", None)),
    ("segmentation.stackwise_num_filters=(8,16,32)", ("segmentation", "stackwise_num_filters", (8, 16, 32))),
    ("segmentation.stackwise_num_filters=8, 16, 32", ("segmentation", "stackwise_num_filters", (8, 16, 32))),
    ("segmentation.stackwise_num_filters=[8,16]", ("segmentation", "stackwise_num_filters", (8, 16))),
    ("segmentation.auto_weight_filters=(4,)", ("segmentation", "auto_weight_filters", (4,))),
    ("segmentation.auto_weight_filters=4", ("segmentation", "auto_weight_filters", (4,))),
    ("segmentation.manual_weights=(0.5, 0.25, 0.25)", ("segmentation", "manual_weights", (0.5, 0.25, 0.25))),
    ("segmentation.manual_weights=none", ("segmentation", "manual_weights", None)),
    ("grid_search.learning_rates=1e-2,1e-3", ("grid_search", "learning_rates", (0.01, 0.001))),
    ("grid_search.losses=(bce,dice)", ("grid_search", "losses", ("bce", "dice"))),
    ("classification.decision_units=(64,32)", ("classification", "decision_units", (64, 32))),
    ("classification.pooled_size=none", ("classification", "pooled_size", None)),
])
def test_parse_override_converts_to_the_field_type(text, expected):
    section, key, value = parse_override(text)
    assert (section, key, value) == expected
    assert type(value) is type(expected[2])


@pytest.mark.parametrize("text, message", [
    ("segmentation.epochs", r"expected section\.key=value"),
    ("epochs=5", r"expected section\.key=value"),
    ("segmentation.epochs.more=5", r"expected section\.key=value"),
    ("model.epochs=5", r"unknown section 'model'; the sections are segmentation, classification, grid_search, table3, runtime"),
    ("name.x=1", "unknown section 'name'"),
    ("overrides.x=1", "unknown section 'overrides'"),
    ("segmentation.epoch=5", r"no key 'epoch'; its keys are image_size, .*epochs"),
    ("segmentation.epochs=5.0", r"segmentation\.epochs expects an int, got '5\.0'"),
    ("segmentation.epochs=five", "expects an int, got 'five'"),
    ("segmentation.epochs=none", "expects an int, got 'none'"),
    ("segmentation.epochs=true", "expects an int, got 'true'"),
    ("segmentation.image_size=", "expects an int or none, got ''"),
    ("runtime.tensorboard=maybe", r"expects a bool \(true/false/1/0/yes/no\), got 'maybe'"),
    ("classification.learning_rate=fast", "expects a finite float, got 'fast'"),
    ("classification.learning_rate=inf", "expects a finite float, got 'inf'"),
    ("segmentation.stackwise_num_filters=(8,,16)", "expects a tuple of int"),
    ("segmentation.stackwise_num_filters=(8,16.5)", "expects a tuple of int"),
    ("classification.decision_units=(64,32,16)", "expects a tuple of 2 int"),
])
def test_parse_override_errors_name_the_override_and_the_rule(text, message):
    with pytest.raises(ValueError, match=message) as caught:
        parse_override(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_field_round_trips_through_its_normalised_text(preset):
    experiment = EXPERIMENT_PRESETS[preset]
    sections = override_keys()
    assert len(sections) > 0 and all(len(keys) > 0 for keys in sections.values())
    for section, keys in sections.items():
        for key in keys:
            value = getattr(getattr(experiment, section), key)
            assert parse_override(format_override(section, key, value)) == (section, key, value)


@pytest.mark.parametrize("triple, expected", [
    (("classification", "learning_rate", 1), 1.0),
    (("segmentation", "epochs", 5), 5),
    (("segmentation", "stackwise_num_filters", [8, 16]), (8, 16)),
    (("segmentation", "image_size", None), None),
    (("segmentation", "image_size", "none"), None),
    (("runtime", "tensorboard", False), False),
    (("classification", "backbone_weights", "none"), "none"),
])
def test_check_override_accepts_typed_values(triple, expected):
    assert check_override(*triple) == (*triple[:2], expected)


@pytest.mark.parametrize("triple, message", [
    (("segmentation", "epochs", "5"), r"segmentation\.epochs expects an int, got '5' \(str\)"),
    (("segmentation", "epochs", 5.0), r"expects an int, got 5\.0 \(float\)"),
    (("segmentation", "epochs", True), r"expects an int, got True \(bool\)"),
    (("segmentation", "epochs", None), "expects an int, got None"),
    (("runtime", "tensorboard", 1), "expects a bool"),
    (("classification", "learning_rate", "0.1"), "expects a finite float"),
    (("segmentation", "stackwise_num_filters", "8,16"), "expects a tuple of int"),
    (("classification", "decision_units", [1, 2, 3]), "expects a tuple of 2 int"),
    (("segmentation", "nope", 1), "has no key 'nope'"),
])
def test_check_override_refuses_wrong_types(triple, message):
    with pytest.raises(ValueError, match=message):
        check_override(*triple)


def test_apply_overrides_gives_the_expected_experiment():
    base = EXPERIMENT_PRESETS["quick"]
    experiment = apply_overrides(base, [
        "segmentation.epochs=5",
        "classification.learning_rate=1e-3",
        ("runtime", "tensorboard", False),
        "segmentation.epochs=7",
    ])
    assert experiment == dataclasses.replace(
        base,
        segmentation=dataclasses.replace(base.segmentation, epochs=7),
        classification=dataclasses.replace(base.classification, learning_rate=1e-3),
        runtime=dataclasses.replace(base.runtime, tensorboard=False),
        overrides=("classification.learning_rate=0.001", "runtime.tensorboard=false", "segmentation.epochs=7"),
    )
    assert experiment.grid_search is base.grid_search
    assert apply_overrides(base, []) is base and apply_overrides(base, None) is base
    # Applied again: recorded once per key, the latest value last.
    again = apply_overrides(experiment, {"segmentation": {"epochs": 3}})
    assert again.segmentation.epochs == 3
    assert again.overrides == ("classification.learning_rate=0.001", "runtime.tensorboard=false", "segmentation.epochs=3")
    # The settings changed, so the runs' cache keys (hashes of the section configs) change.
    assert to_dict(experiment.segmentation) != to_dict(base.segmentation)


def test_overrides_of_one_section_apply_together():
    # Alone, six levels need image_size a multiple of 64; together with image_size=64 they fit.
    experiment = apply_overrides(EXPERIMENT_PRESETS["quick"], [
        "segmentation.stackwise_num_filters=(4,8,8,8,8,8)", "segmentation.image_size=64",
    ])
    assert (experiment.segmentation.image_size, len(experiment.segmentation.stackwise_num_filters)) == (64, 6)


def test_a_section_rule_broken_by_an_override_names_it():
    with pytest.raises(ValueError, match=r"^override segmentation\.batch_size=0: SegmentationConfig: batch_size"):
        resolve_experiment("quick", overrides=["segmentation.epochs=2", "segmentation.batch_size=0"])
    with pytest.raises(ValueError, match=r"^override runtime\.precision=float64: RuntimeConfig: precision must be one of"):
        resolve_experiment("quick", overrides=["runtime.precision=float64"])
    with pytest.raises(ValueError, match=r"^override classification\.require_backbone_weights=true: .*'none'"):
        resolve_experiment("quick", overrides=["classification.require_backbone_weights=true"])


@pytest.mark.parametrize("items, message", [
    ([("segmentation", "epochs")], r"a \(section, key, value\) triple"),
    ([5], r"a \(section, key, value\) triple"),
    ({"segmentation": 5}, "must be a section holding keys"),
])
def test_apply_overrides_refuses_other_shapes(items, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(EXPERIMENT_PRESETS["quick"], items)


# --------------------------------------------------------------------------- override files

TOML_OVERRIDES = """
[segmentation]
epochs = 5
stackwise_num_filters = [4, 8]
learning_rate = 1
image_size = "none"

[classification]
backbone_weights = "none"
augment = false

[runtime]
tensorboard = false
"""

EXPECTED_FILE_OVERRIDES = [
    ("segmentation", "epochs", 5),
    ("segmentation", "stackwise_num_filters", (4, 8)),
    ("segmentation", "learning_rate", 1.0),
    ("segmentation", "image_size", None),
    ("classification", "backbone_weights", "none"),
    ("classification", "augment", False),
    ("runtime", "tensorboard", False),
]


def test_a_toml_file_of_sections(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text(TOML_OVERRIDES)
    overrides = load_overrides_file(path)
    assert overrides == EXPECTED_FILE_OVERRIDES
    experiment = resolve_experiment("quick", overrides=[*overrides, "segmentation.epochs=6"])
    assert experiment.segmentation.epochs == 6 and experiment.segmentation.image_size is None
    assert experiment.segmentation.learning_rate == 1.0 and experiment.classification.augment is False
    assert experiment.overrides[-1] == "segmentation.epochs=6"
    assert "segmentation.stackwise_num_filters=(4,8)" in experiment.overrides


def test_a_json_file_of_sections_or_dotted_keys(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({
        "segmentation": {"epochs": 5, "stackwise_num_filters": [4, 8], "learning_rate": 1, "image_size": None},
        "classification": {"backbone_weights": "none", "augment": False},
        "runtime.tensorboard": False,
    }))
    assert load_overrides_file(str(path)) == EXPECTED_FILE_OVERRIDES


@pytest.mark.parametrize("name, text, message", [
    ("bad.toml", "[segmentation]\nepochs = \"5\"\n", r"bad\.toml: override segmentation\.epochs='5': .*expects an int, got '5' \(str\)"),
    ("bad.toml", "[segmentation]\nepoch = 5\n", r"bad\.toml: override segmentation\.epoch=5: section 'segmentation' has no key 'epoch'; its keys are"),
    ("bad.toml", "[model]\nepochs = 5\n", r"bad\.toml: override model\.epochs=5: unknown section 'model'"),
    ("bad.toml", "epochs = 5\n", r"bad\.toml: 'epochs' must be a section holding keys"),
    ("bad.toml", "[segmentation\nepochs = 5\n", r"bad\.toml: not valid TOML"),
    ("bad.json", "{\"segmentation\": {\"epochs\": 5.5}}", r"bad\.json: override segmentation\.epochs=5\.5: .*expects an int"),
    ("bad.json", "{\"segmentation\": ", r"bad\.json: not valid JSON"),
    ("bad.json", "[1, 2]", r"bad\.json: must hold sections"),
    ("bad.yaml", "segmentation: {}", r"must end in \.toml or \.json, got '\.yaml'"),
])
def test_override_file_errors_name_the_file(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_overrides_file(path)


def test_a_missing_override_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_overrides_file(tmp_path / "absent.toml")


def test_toml_without_tomllib_says_to_use_json(tmp_path, monkeypatch):
    path = tmp_path / "settings.toml"
    path.write_text(TOML_OVERRIDES)
    monkeypatch.setitem(sys.modules, "tomllib", None)  # as on Python 3.10 without tomli
    monkeypatch.setitem(sys.modules, "tomli", None)
    with pytest.raises(ValueError, match=r"needs Python >= 3\.11 \(tomllib\) or the tomli package; .*\.json"):
        load_overrides_file(path)
