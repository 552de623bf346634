"""The package as a user installs it: a wheel in a fresh virtual environment, away from the
repository. ``tf_bimodal`` (with its TFDS builder's description and citation) and the TFDS entry
``tfds_builder.bimodal_breast_us`` come from the wheel; the dependencies are this environment's.
Offline: the wheel is built without build isolation and installed without an index."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import pytest

from helpers import REPO_ROOT

SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE", "tf_bimodal", "tfds_builder")
"""What the wheel is built from (a copy, so that building writes nothing into the repository)."""

CHECK = textwrap.dedent("""
    import json, pathlib, sys

    import tf_bimodal
    import tfds_builder.bimodal_breast_us as entry
    from tf_bimodal.config import DataConfig, PhantomConfig
    from tf_bimodal.data import builder, dataset

    phantom = PhantomConfig(num_benign_patients=1, num_malignant_patients=1, min_pairs_per_patient=1,
                            max_pairs_per_patient=1)
    prepared = dataset.prepare(DataConfig(source="phantom", image_size=32, data_dir=sys.argv[1], phantom=phantom))
    print(json.dumps({
        "prefix": sys.prefix,
        "tf_bimodal": tf_bimodal.__file__,
        "entry": entry.__file__,
        "same_builder": entry.BimodalBreastUs is builder.BimodalBreastUs,
        "dataset_folder": str(builder.DATASET_FOLDER),
        "description": prepared.info.description,
        "citation": prepared.info.citation,
        "examples": prepared.info.splits["train"].num_examples,
    }))
""")


def _run(*command, cwd, env=None, timeout=120):
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_the_wheel_works_outside_the_repository(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (REPO_ROOT / name).is_dir() else shutil.copy2
        copy(REPO_ROOT / name, source / name)
    for cache in source.rglob("__pycache__"):
        shutil.rmtree(cache)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
         "--wheel-dir", tmp_path / "dist", source, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("tf_bimodal-*.whl")

    # A fresh environment that sees this one's packages (a path line in a .pth file adds the
    # folder, but not the .pth files inside it: not the editable install of tf_bimodal).
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path)
    site_packages = purelib.stdout.strip()
    with open(os.path.join(site_packages, "dependencies.pth"), "w") as pth:
        pth.write(sysconfig.get_paths()["purelib"] + "\n")
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    away = tmp_path / "elsewhere"
    away.mkdir()
    missing = subprocess.run([python, "-c", "import tf_bimodal"], cwd=away, env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "No module named 'tf_bimodal'" in missing.stderr, missing.stderr

    _run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "--quiet", wheel,
         cwd=away, env=env)
    result = _run(python, "-c", CHECK, tmp_path / "tfds", cwd=away, env=env, timeout=180)
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["prefix"] == str(venv)
    for key in ("tf_bimodal", "entry", "dataset_folder"):
        assert seen[key].startswith(site_packages + os.sep), (key, seen[key])
    assert seen["same_builder"]
    assert "synthetic" in seen["description"] and "Misra" in seen["citation"]
    assert seen["examples"] == 2
