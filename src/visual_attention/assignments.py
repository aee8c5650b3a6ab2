"""Student versions of the chapters, for instructors (``make assignments``).

    python -m visual_attention.assignments book/*.ipynb --out _build/assignments

Each chapter is written in nbgrader's format: solution cells carry ``nbgrader`` metadata with
``"solution": true`` and mark the answer with ``### BEGIN SOLUTION`` / ``### END SOLUTION``; graded
check cells carry ``"grade": true``, a ``grade_id`` and ``points``, and may hold hidden tests
between ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``. The student version, as nbgrader's
``generate_assignment`` makes it:

* every solution region becomes ``raise NotImplementedError()`` (code) or ``YOUR ANSWER HERE``
  (markdown), at the region's indentation;
* hidden tests are removed;
* outputs are cleared (students run the notebook themselves);
* what nbgrader keeps goes too, with :func:`~visual_attention.student_release.strip_for_students`
  (the same file gives nbgrader's ``generate_assignment`` the same step, through the repository's
  ``nbgrader_config.py``): the saved widget state and the Think questions' answers;
* the chapter's name is stored in the notebook's metadata, so the grader finds the instructor
  version.

A student version that still :func:`~visual_attention.student_release.leaks` (an answer, a
solution region, a hidden test, an output, widget state) is an error, never written.
"""

from __future__ import annotations

import argparse
import copy
import re
from pathlib import Path

from ._checks import import_extra
from .student_release import (
    ANSWER_NOTE,
    StripForStudents,
    leaks,
    strip_answers,
    strip_for_students,
)

nbformat = import_extra("nbformat", "grading")


__all__ = [
    "ANSWER_NOTE",
    "StripForStudents",
    "strip_answers",
    "student_version",
    "write_assignments",
]

_SOLUTION = re.compile(
    r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(\n|$)", re.M | re.S
)
_HIDDEN = re.compile(
    r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n.*?^[ \t]*### END HIDDEN TESTS[^\n]*(\n|$)", re.M | re.S
)


def _strip_solution(source: str, markdown: bool) -> str:
    def stub(m: re.Match) -> str:
        indent = m.group(1)
        body = (
            "YOUR ANSWER HERE"
            if markdown
            else "# YOUR CODE HERE\n" + indent + "raise NotImplementedError()"
        )
        return indent + body + m.group(2)

    return _SOLUTION.sub(stub, source)


def student_version(nb: nbformat.NotebookNode, chapter: str) -> nbformat.NotebookNode:
    """A copy of instructor notebook ``nb`` with solutions stubbed, hidden tests removed, outputs
    cleared."""
    out = copy.deepcopy(nb)
    n_solutions = 0
    for cell in out.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            if "### BEGIN SOLUTION" not in cell.source:
                raise ValueError(
                    f"{chapter}: solution cell {meta.get('grade_id')!r} has no ### BEGIN SOLUTION"
                )
            cell.source = _strip_solution(cell.source, cell.cell_type == "markdown")
            tags = [
                t for t in cell.metadata.get("tags", []) if t not in ("hide-input", "hide-cell")
            ]
            cell.metadata["tags"] = tags
            n_solutions += 1
        if meta.get("grade"):
            cell.source = _HIDDEN.sub("", cell.source)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    strip_for_students(out)
    if n_solutions == 0:
        raise ValueError(f"{chapter}: no nbgrader solution cells found")
    found = leaks(out)
    if found:
        raise ValueError(f"{chapter}: its student version still holds " + "; ".join(found))
    out.metadata["visual_attention"] = {"chapter": chapter, "student_version": True}
    return out


def write_assignments(notebooks: list[Path], out_dir: Path) -> list[Path]:
    """Write the student version of every notebook that has exercises into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        if not any(c.get("metadata", {}).get("nbgrader", {}).get("solution") for c in nb.cells):
            continue
        target = out_dir / path.name
        nbformat.write(student_version(nb, path.stem), target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("_build/assignments"))
    args = parser.parse_args(argv)
    for path in write_assignments(args.notebooks, args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
