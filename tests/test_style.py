"""The code base's own rules: ruff's checks (pyproject.toml) and imports that run one way."""

from __future__ import annotations

import ast
import pathlib
import shutil
import subprocess
import sys

import pytest

from helpers import REPO_ROOT

PACKAGE = REPO_ROOT / "tf_bimodal"

LAYERS = (
    ("tf_bimodal.schema", "tf_bimodal.config", "tf_bimodal.layout", "tf_bimodal.io", "tf_bimodal.logs",
     "tf_bimodal.pages", "tf_bimodal.records", "tf_bimodal.layers.options"),
    ("tf_bimodal.data",),
    ("tf_bimodal.layers",),
    ("tf_bimodal.models",),
    ("tf_bimodal.evaluation",),
    ("tf_bimodal.training",),
    ("tf_bimodal.experiments",),
    ("tf_bimodal.export",),
    ("tf_bimodal.workflow", "tf_bimodal.cli", "tf_bimodal.__main__"),
)
"""The package's layers, bottom first: a module imports only from its own layer and those below
(docs/architecture.md)."""


def _layer(module: str) -> int | None:
    for level, prefixes in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return level
    return None


def _imports(path: pathlib.Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                yield node.module, alias.name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno


def test_ruff_passes():
    ruff = shutil.which("ruff") or str(pathlib.Path(sys.executable).parent / "ruff")
    if not pathlib.Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    result = subprocess.run([ruff, "check", "--no-cache", str(REPO_ROOT)], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_imports_run_one_way_and_no_private_name_crosses_modules():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
        level = _layer(module)
        for imported, name, line in _imports(path):
            if not imported.startswith("tf_bimodal") and not imported.startswith("tfds_builder"):
                continue
            if imported.startswith("tfds_builder"):
                problems.append(f"{path.name}:{line} imports {imported} (tfds_builder sits above the package)")
                continue
            target = _layer(f"{imported}.{name}" if name and _layer(f"{imported}.{name}") is not None else imported)
            if level is not None and target is not None and target > level:
                problems.append(f"{module}:{line} imports {imported} from a layer above it")
            if name and name.startswith("_") and not name.startswith("__"):
                problems.append(f"{module}:{line} imports the private name {imported}.{name}")
    assert not problems, "\n".join(problems)
