"""Every Table 3 method through the one harness (§4.2.2), and the method registry."""

from __future__ import annotations

import dataclasses
import json

import pytest
from table3_harness import QUICK, run_method_test

from tf_bimodal.config.presets import TABLE3_PRESETS
from tf_bimodal.config.table3 import TABLE3_METHODS
from tf_bimodal.training.table3 import method_input_size, method_modalities


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.slow) if name == "fujioka" else name  # DenseNet-169: ~600 layers to trace
    for name in TABLE3_METHODS if name != "wang"
])
def test_method_fits_predicts_and_reloads(name, tmp_path):
    record = run_method_test(name, QUICK, tmp_path)
    json.dumps(record)
    if name == "kumar":
        assert set(record["details"]["networks"]) == {"alexnet", "googlenet"}
    if name == "misra2021":
        assert set(record["details"]["stages"]) == {"resnet18", "alexnet", "ensemble"}
        assert record["details"]["frozen"] == {}  # from scratch nothing is frozen


def test_misra2021_stackwise_is_table2_mff_stack(tmp_path):
    config = dataclasses.replace(QUICK, misra2021_reading="stackwise")
    record = run_method_test("misra2021", config, tmp_path)
    assert record["details"]["reading"] == "stackwise" and record["details"]["model"] == "mff_stack"


def test_inputs_and_sizes_follow_the_table():
    assert method_modalities("yap") == method_modalities("zhang") == method_modalities("kumar") == ("bmode",)
    assert method_modalities("fujioka") == ("semode",)
    assert method_modalities("wang") == method_modalities("misra2021") == ("bmode", "semode")
    paper = TABLE3_PRESETS["paper"]
    assert [method_input_size(name, paper) for name in TABLE3_METHODS] == [224, 224, 299, 224, 224, 224]
    assert method_input_size("zhang", QUICK) == 75 and method_input_size("yap", QUICK) == 32
    with pytest.raises(ValueError, match="method must be one of"):
        method_modalities("mff")
