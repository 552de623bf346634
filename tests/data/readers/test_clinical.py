"""Clinical folders: the manifest's pairs read as schema examples (paper §3.1)."""

from __future__ import annotations

import numpy as np

from tf_bimodal.data import readers
from tf_bimodal.schema import EXAMPLE_KEYS
from tfds_builder.bimodal_breast_us.make_dummy_data import DUMMY_DIR


def test_iter_clinical_reads_the_dummy_folder():
    examples = list(readers.iter_clinical(str(DUMMY_DIR), 48))
    assert [e["patient_id"] for e in examples] == ["P001", "P001", "P002", "P003", "P004"]
    labels = [e["label"] for e in examples]
    assert labels == ["benign", "benign", "malignant", "malignant", "benign"]
    assert [e["has_mask"] for e in examples] == [True, False, True, True, True]
    assert examples[0]["image_id"] == "P001_1_bmode_row2"
    assert len({e["image_id"] for e in examples}) == 5
    for example in examples:
        assert set(example) == set(EXAMPLE_KEYS)
        assert example["bmode"].shape == (48, 48, 1) and example["bmode"].dtype == np.uint8
        assert example["semode"].shape == (48, 48, 3) and readers.is_colour(example["semode"])
        assert example["mask"].shape == (48, 48, 1) and set(np.unique(example["mask"])) <= {0, 1}
        assert example["has_semode"] is True
        assert example["mask"].any() == example["has_mask"]
