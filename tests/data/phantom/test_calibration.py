"""The calibration of the lesion model: SE carries more than B-mode, neither is perfect."""

from __future__ import annotations

from tf_bimodal.data import phantom


def test_difficulty_table_calibration():
    table = phantom.difficulty_table(num_patients=600, seed=0)
    assert table["semode"] > table["bmode"] + 0.03
    assert table["both"] > max(table["bmode"], table["semode"])
    assert 0.6 < table["bmode"] < 0.82 and table["semode"] < 0.95 and table["both"] < 1.0
    assert table["num_patients"] == 600
