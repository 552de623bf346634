"""Put "Open in Colab" badges on the notebooks and point their install lines at GitHub.

Usage: python notebooks/colab_badges.py OWNER/REPO [--branch main] [--check]
Adds (or replaces) a badge as the first line of each notebook's first markdown cell and sets the
``pip install "git+..."`` URL to https://github.com/OWNER/REPO; a second run changes nothing.
--check writes nothing and exits 1, listing the notebooks whose badge is missing or points elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent

REPO_RULE = r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$"
BRANCH_RULE = (r"^[A-Za-z0-9._/-]+$, not starting with '-', '.' or '/', not ending with '/', '.' "
               r"or '.lock', without '..' or '//'")

BADGE_IMAGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
BADGE_LINE = re.compile(r"^" + re.escape(BADGE_IMAGE) + r"\([^)]*\)[ \t]*$")
# The install URL in a "pip install" line: the placeholders the notebooks ship with, or a
# github.com URL written by an earlier run (so that the notebooks can be pointed elsewhere).
INSTALL_URL = re.compile(
    r"git\+(?:<repository URL>|https://github\.com/(?:<your account>|[A-Za-z0-9-]+)/[A-Za-z0-9._-]+)")


def _owner_repo(value: str) -> str:
    if not re.match(REPO_RULE, value) or value.split("/")[1] in (".", ".."):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a GitHub OWNER/REPO: it must match {REPO_RULE} "
            "(owner: letters, digits, '-'; repository: letters, digits, '.', '_', '-'), "
            "e.g. my-account/tf_bimodal")
    return value


def _branch(value: str) -> str:
    bad = (not re.match(r"^[A-Za-z0-9._/-]+$", value) or value[0] in "-./"
           or value.endswith(("/", ".", ".lock")) or ".." in value or "//" in value)
    if bad:
        raise argparse.ArgumentTypeError(f"{value!r} is not a usable branch name: it must match {BRANCH_RULE}")
    return value


def badge(owner_repo: str, branch: str, name: str) -> str:
    url = f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/notebooks/{name}"
    return f"{BADGE_IMAGE}({url})"


def _lines(source) -> list[str]:
    return list(source) if isinstance(source, list) else source.splitlines(keepends=True)


def _as_source(lines: list[str], like):
    return lines if isinstance(like, list) else "".join(lines)


def _set_badge(nb: dict, line: str) -> str | None:
    """Put ``line`` first in the first cell; return what was done, or None if it was there."""
    cells = nb.setdefault("cells", [])
    if cells and cells[0].get("cell_type") == "markdown":
        source = cells[0].get("source", [])
        lines = _lines(source)
        first = lines[0].rstrip("\r\n") if lines else ""
        if first == line:
            return None
        if BADGE_LINE.match(first):
            lines[0] = line + lines[0][len(lines[0].rstrip("\r\n")):]
            done = "badge replaced"
        else:
            lines[:0] = [line + "\n", "\n"] if lines else [line]
            done = "badge added"
        cells[0]["source"] = _as_source(lines, source)
        return done
    cell = {"cell_type": "markdown", "metadata": {}, "source": [line]}
    if (nb.get("nbformat", 4), nb.get("nbformat_minor", 0)) >= (4, 5):  # cell ids are required from 4.5
        ids = {c.get("id") for c in cells}
        cell["id"], n = "colab-badge", 1
        while cell["id"] in ids:
            n += 1
            cell["id"] = f"colab-badge-{n}"
    cells.insert(0, cell)
    return "badge cell inserted"


def _set_install_url(nb: dict, owner_repo: str) -> str | None:
    target = f"git+https://github.com/{owner_repo}"
    changed = False
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", [])
        lines = _lines(source)
        new = [INSTALL_URL.sub(target, text) if "pip install" in text else text for text in lines]
        if new != lines:
            cell["source"] = _as_source(new, source)
            changed = True
    return "install URL set" if changed else None


def _install_urls(nb: dict) -> list[str]:
    return [match.group(0) for cell in nb.get("cells", []) if cell.get("cell_type") == "code"
            for text in _lines(cell.get("source", [])) if "pip install" in text
            for match in INSTALL_URL.finditer(text)]


def _dumps(nb: dict, original: str) -> str:
    """Serialise as the file was: indent=1 like nbformat, \\u escapes if the file used them,
    and a trailing newline only if the file had one."""
    text = json.dumps(nb, indent=1, ensure_ascii=original.isascii())
    return text + "\n" if original.endswith("\n") else text


def _write_atomic(path: pathlib.Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None, notebooks_dir: str | os.PathLike | None = None) -> int:
    parser = argparse.ArgumentParser(prog="colab_badges.py", description=__doc__.splitlines()[0])
    parser.add_argument("owner_repo", metavar="OWNER/REPO", type=_owner_repo,
                        help="the public GitHub repository, e.g. my-account/tf_bimodal")
    parser.add_argument("--branch", default="main", type=_branch, help="the branch the badges open (default: main)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and list the notebooks whose badge is missing or points elsewhere")
    args = parser.parse_args(argv)

    folder = pathlib.Path(notebooks_dir) if notebooks_dir is not None else HERE
    paths = sorted(folder.glob("*.ipynb"))
    if not paths:
        parser.error(f"no .ipynb files in {folder}")

    target = f"git+https://github.com/{args.owner_repo}"
    stale = []
    changed = 0
    for path in paths:
        original = path.read_text(encoding="utf-8")
        nb = json.loads(original)
        line = badge(args.owner_repo, args.branch, path.name)
        if args.check:
            problems = []
            first = (nb.get("cells") or [{}])[0]
            lines = _lines(first.get("source", [])) if first.get("cell_type") == "markdown" else []
            if not lines or lines[0].rstrip("\r\n") != line:
                problems.append("badge points elsewhere" if lines and BADGE_LINE.match(lines[0].rstrip("\r\n"))
                                else "badge missing")
            if any(url != target for url in _install_urls(nb)):
                problems.append("install URL points elsewhere")
            if problems:
                stale.append(path.name)
                print(f"{path.name}: {', '.join(problems)}")
            continue
        done = [what for what in (_set_badge(nb, line), _set_install_url(nb, args.owner_repo)) if what]
        if not done:
            print(f"{path.name}: up to date")
            continue
        _write_atomic(path, _dumps(nb, original))
        changed += 1
        print(f"{path.name}: {', '.join(done)}")

    if args.check:
        if stale:
            print(f"{len(stale)} of {len(paths)} notebooks not pointing at {args.owner_repo}@{args.branch}; "
                  f"run: python notebooks/colab_badges.py {args.owner_repo} --branch {args.branch}")
            return 1
        print(f"all {len(paths)} notebooks point at {args.owner_repo}@{args.branch}")
        return 0
    print(f"{changed} of {len(paths)} notebooks changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
