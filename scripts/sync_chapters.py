"""Cells every chapter carries, written from one place: the install cell and the hidden tests.

* **The install cell**, the chapter's first code cell. A chapter opened from a launch button (Colab,
  or any fresh kernel) has no ``visual_attention``; the cell installs it from the book's
  repository, whose address and branch it takes from ``_config.yml`` (the ``repository:`` entry
  the launch buttons use), and does nothing where the package is importable (a clone after
  ``make lab``, Binder, nbval). Tagged ``remove-cell``: the site does not show it.
* **A hidden test in every graded check cell** (nbgrader's ``### BEGIN HIDDEN TESTS``): it imports
  the package afresh and runs the real ``check`` again, so a notebook that redefined ``check``,
  patched the checker's module or the reference gains nothing under nbgrader's autograde. Student
  versions drop it (``make assignments``, nbgrader's ``generate_assignment``).

    python scripts/sync_chapters.py           # write (or refresh) both in every chapter
    python scripts/sync_chapters.py --check   # fail if a chapter differs (tests/test_install.py)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
TAG = "install-package"
HIDDEN = "### BEGIN HIDDEN TESTS"
_CHECK = re.compile(r'^check\("([^"]+)",\s*([A-Za-z_][A-Za-z0-9_]*)\)', re.M)


def repository(config: Path = ROOT / "_config.yml") -> tuple[str, str]:
    """The book's repository address and branch, from ``_config.yml``."""
    repo = yaml.safe_load(config.read_text())["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def install_cell(config: Path = ROOT / "_config.yml") -> str:
    """The install cell's source."""
    url, branch = repository(config)
    return (
        "# On Colab (or any kernel without the book's package) install it; elsewhere do nothing.\n"
        "import importlib.util\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        'if importlib.util.find_spec("visual_attention") is None:\n'
        f'    package = "visual-attention @ git+{url}@{branch}"\n'
        '    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", package], check=True)'
    )


def check_cell(exercise: str, answer: str) -> str:
    """A graded cell: the visible check, then the hidden test."""
    return (
        f'check("{exercise}", {answer})\n'
        f"{HIDDEN}\n"
        "# The real checker, imported afresh: what the notebook redefined does not count.\n"
        "import importlib, sys\n"
        'for _name in [m for m in sys.modules if m.partition(".")[0] == "visual_attention"]:\n'
        "    del sys.modules[_name]\n"
        'importlib.import_module("visual_attention.exercises").check(\n'
        f'    "{exercise}", {answer}, quiet=True\n'
        ")\n"
        "### END HIDDEN TESTS"
    )


def chapters() -> list[Path]:
    """Every notebook of the book."""
    return sorted((ROOT / "book").glob("*.ipynb"))


def first_code_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    return next((c for c in nb.cells if c.cell_type == "code"), None)


def graded_check_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [
        c
        for c in nb.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
    ]


def sync(path: Path, check: bool = False) -> list[str]:
    """Bring the chapter's install cell and hidden tests up to date (unless ``check``); return
    what was (or, with ``check``, would be) changed."""
    nb = nbformat.read(path, as_version=4)
    changes = []
    first = first_code_cell(nb)
    if first is not None and TAG in first.metadata.get("tags", []):
        if first.source != install_cell():
            changes.append("install cell")
            first.source = install_cell()
    else:
        changes.append("install cell added")
        cell = nbformat.v4.new_code_cell(install_cell(), metadata={"tags": [TAG, "remove-cell"]})
        nb.cells.insert(nb.cells.index(first) if first is not None else len(nb.cells), cell)
    for cell in graded_check_cells(nb):
        calls = _CHECK.findall(cell.source.split(HIDDEN)[0])
        if len(calls) != 1:
            raise ValueError(f"{path.name}: a graded cell must start with one check(...) call")
        wanted = check_cell(*calls[0])
        if not cell.source.startswith(wanted):
            changes.append(f"hidden test of {calls[0][0]}")
            rest = cell.source.split("### END HIDDEN TESTS")[-1] if HIDDEN in cell.source else ""
            visible = cell.source.split(HIDDEN)[0].split("\n", 1)
            extra = visible[1].strip("\n") if len(visible) > 1 else ""  # lines after check(...)
            cell.source = wanted + rest + (f"\n{extra}" if extra else "")
    if changes and not check:
        nbformat.write(nb, path)
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check, change nothing")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter")
    args = parser.parse_args(argv)
    wrong = {p: c for p in (args.notebooks or chapters()) if (c := sync(p, check=args.check))}
    for p, changes in wrong.items():
        print(f"{p}: {'differs' if args.check else 'updated'}: {', '.join(changes)}")
    return int(bool(wrong) and args.check)


if __name__ == "__main__":
    sys.exit(main())
