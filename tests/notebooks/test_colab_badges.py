"""notebooks/colab_badges.py on copies of the real notebooks: badges, install URL, --check, idempotence."""

from __future__ import annotations

import difflib
import json
import shutil

import pytest

from helpers import REPO_ROOT, load_script

SCRIPT = REPO_ROOT / "notebooks" / "colab_badges.py"
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
REPO = "my-lab/tf_bimodal.fork"
COLAB = "https://colab.research.google.com/github"
BADGE_IMAGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
PLACEHOLDERS = ("<your account>", "<repository URL>")


colab_badges = load_script(SCRIPT)


@pytest.fixture
def folder(tmp_path):
    assert len(NOTEBOOKS) == 5
    for path in NOTEBOOKS:
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def _texts(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def _source(cell):
    return "".join(cell["source"])


def _is_install(line):
    return "pip install" in line


def _first_line(nb):
    return _source(nb["cells"][0]).splitlines()[0]


def test_writes_badges_and_install_urls(folder, capsys):
    before = _texts(folder)
    assert colab_badges.main([REPO], notebooks_dir=folder) == 0
    out = capsys.readouterr().out
    after = _texts(folder)
    assert sorted(after) == sorted(path.name for path in NOTEBOOKS)  # no temp file left behind
    for path in NOTEBOOKS:
        name = path.name
        assert name in out
        old, new = json.loads(before[name]), json.loads(after[name])  # still valid JSON
        assert _first_line(new) == f"{BADGE_IMAGE}({COLAB}/{REPO}/blob/main/notebooks/{name})"
        # The same cells otherwise: the badge and a blank line on top of the first cell, and the
        # install line in the code cells.
        assert [(c["cell_type"], c.get("id")) for c in new["cells"]] == [(c["cell_type"], c.get("id")) for c in old["cells"]]
        assert new["cells"][0]["source"][2:] == old["cells"][0]["source"]
        assert new["cells"][0]["source"][1] == "\n"
        assert {k: v for k, v in new.items() if k != "cells"} == {k: v for k, v in old.items() if k != "cells"}
        assert len(new["cells"]) == len(old["cells"]) > 1
        for old_cell, new_cell in zip(old["cells"][1:], new["cells"][1:]):
            if old_cell["cell_type"] != "code":
                assert new_cell == old_cell
                continue
            assert {k: v for k, v in new_cell.items() if k != "source"} == {k: v for k, v in old_cell.items() if k != "source"}
            old_lines, new_lines = _source(old_cell).splitlines(), _source(new_cell).splitlines()
            assert len(new_lines) == len(old_lines)
            for old_line, new_line in zip(old_lines, new_lines):
                if not _is_install(old_line):
                    assert new_line == old_line
        installs = [line for cell in new["cells"] if cell["cell_type"] == "code"
                    for line in _source(cell).splitlines() if _is_install(line)]
        assert installs, name
        assert all(f'"git+https://github.com/{REPO}"' in line for line in installs), installs
        text = after[name].decode()
        assert not any(placeholder in text for placeholder in PLACEHOLDERS)
        # Formatting as before (indent=1, \u escapes, same trailing newline): only the badge
        # lines and the install line differ.
        diff = [line for line in difflib.unified_diff(before[name].decode().splitlines(), text.splitlines(),
                                                      lineterm="", n=0)
                if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        assert sorted(line[0] for line in diff) == ["+", "+", "+", "-"], diff
        assert text.endswith("\n") == before[name].decode().endswith("\n")


def test_second_run_changes_nothing(folder, capsys):
    assert colab_badges.main([REPO], notebooks_dir=folder) == 0
    once = _texts(folder)
    capsys.readouterr()
    assert colab_badges.main([REPO], notebooks_dir=folder) == 0
    assert _texts(folder) == once
    assert "0 of 5 notebooks changed" in capsys.readouterr().out


def test_other_branch_and_repo_replace_the_badge(folder):
    assert colab_badges.main([REPO], notebooks_dir=folder) == 0
    assert colab_badges.main(["other/repo", "--branch", "dev/colab"], notebooks_dir=folder) == 0
    for path in NOTEBOOKS:
        text = (folder / path.name).read_text()
        nb = json.loads(text)
        assert _first_line(nb) == f"{BADGE_IMAGE}({COLAB}/other/repo/blob/dev/colab/notebooks/{path.name})"
        assert text.count("colab-badge.svg") == 1
        assert REPO not in text and "git+https://github.com/other/repo" in text
        assert len(nb["cells"]) == len(json.loads(path.read_text())["cells"])


def test_check(folder, capsys):
    before = _texts(folder)
    assert colab_badges.main([REPO, "--check"], notebooks_dir=folder) == 1
    out = capsys.readouterr().out
    assert _texts(folder) == before  # --check writes nothing
    assert all(f"{path.name}: badge missing" in out for path in NOTEBOOKS)

    assert colab_badges.main([REPO], notebooks_dir=folder) == 0
    capsys.readouterr()
    assert colab_badges.main([REPO, "--check"], notebooks_dir=folder) == 0
    assert colab_badges.main([REPO, "--check", "--branch", "dev"], notebooks_dir=folder) == 1
    assert "badge points elsewhere" in capsys.readouterr().out
    assert colab_badges.main(["someone/else", "--check"], notebooks_dir=folder) == 1
    assert "install URL points elsewhere" in capsys.readouterr().out


def test_inserts_a_markdown_cell_when_the_first_cell_is_code(folder):
    path = folder / "02_quick_start.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"] = nb["cells"][1:]
    assert nb["cells"][0]["cell_type"] == "code"
    path.write_text(json.dumps(nb, indent=1))
    assert colab_badges.main([REPO], notebooks_dir=folder) == 0
    new = json.loads(path.read_text())
    assert len(new["cells"]) == len(nb["cells"]) + 1
    assert new["cells"][0]["cell_type"] == "markdown" and new["cells"][0]["id"] == "colab-badge"
    assert _first_line(new) == f"{BADGE_IMAGE}({COLAB}/{REPO}/blob/main/notebooks/02_quick_start.ipynb)"
    once = path.read_bytes()
    assert colab_badges.main([REPO], notebooks_dir=folder) == 0
    assert path.read_bytes() == once


@pytest.mark.parametrize("value", ["tf_bimodal", "a/b/c", "my lab/repo", "my_lab/repo", "lab/re po", "lab/", "/repo", "lab/.."])
def test_bad_owner_repo_is_refused(folder, capsys, value):
    before = _texts(folder)
    with pytest.raises(SystemExit) as excinfo:
        colab_badges.main([value], notebooks_dir=folder)
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "OWNER/REPO" in err and "^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$" in err
    assert _texts(folder) == before


@pytest.mark.parametrize("value", ["", "-main", "a..b", "feature branch", "a//b", "main/", "x.lock"])
def test_bad_branch_is_refused(folder, capsys, value):
    with pytest.raises(SystemExit) as excinfo:
        colab_badges.main([REPO, f"--branch={value}"], notebooks_dir=folder)
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "--branch" in err and "must match" in err
