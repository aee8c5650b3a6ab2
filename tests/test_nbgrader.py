"""The chapters under the real nbgrader, in a temporary course (slow: ``make test`` only).

The Foundations chapter goes into ``source/ps1`` with the repository's ``nbgrader_config.py``;
``nbgrader generate_assignment`` must release what ``make assignments`` writes, and ``nbgrader
autograde`` must give full marks to a correct submission and nothing to an empty one, to one that
forges ``check``, and no point for an exercise answered by calling the package's own reference.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from visual_attention.assignments import student_version

pytestmark = pytest.mark.nbgrader

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "foundations.ipynb"
NBGRADER = str(Path(sys.executable).with_name("nbgrader"))


def _nbgrader(course: Path, *args: str) -> None:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # its alembic
    run = subprocess.run(
        [NBGRADER, *args, "--force"], cwd=course, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PATH": path},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "Exception while loading config" not in run.stderr, run.stderr[-2000:]


def _solution(nb, grade_id: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    course = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    (course / "source" / "ps1").mkdir(parents=True)
    shutil.copy(CHAPTER, course / "source" / "ps1" / CHAPTER.name)
    _nbgrader(course, "generate_assignment", "ps1")
    release = nbformat.read(course / "release" / "ps1" / CHAPTER.name, as_version=4)

    correct = nbformat.read(CHAPTER, as_version=4)  # the solutions, as a student would type them
    empty = release
    forger = nbformat.read(course / "release" / "ps1" / CHAPTER.name, as_version=4)
    forger.cells.insert(2, nbformat.v4.new_code_cell("check = lambda *args, **kwargs: print('ok')"))
    lazy = nbformat.read(CHAPTER, as_version=4)  # right answers, one of them the package's own
    _solution(lazy, "entropy-solution").source = (
        "from visual_attention.core import masked_softmax\n\n"
        "def my_attention_entropy(scores):\n"
        "    z = scores - scores.amax(dim=-1, keepdim=True)\n"
        "    return torch.logsumexp(z, -1) - (masked_softmax(z, dim=-1) * z).sum(-1)\n"
    )
    for student, nb in (("correct", correct), ("empty", empty), ("forger", forger), ("lazy", lazy)):
        folder = course / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / CHAPTER.name)
    _nbgrader(course, "autograde", "ps1")
    return course


def test_release_equals_make_assignments(course):
    release = nbformat.read(course / "release" / "ps1" / CHAPTER.name, as_version=4)
    ours = student_version(nbformat.read(CHAPTER, as_version=4), CHAPTER.stem)
    assert [c.cell_type for c in release.cells] == [c.cell_type for c in ours.cells]
    for theirs, mine in zip(release.cells, ours.cells):
        assert theirs.source.strip() == mine.source.strip()
    assert "widgets" not in release.metadata
    assert not any("{admonition} Answer" in c.source for c in release.cells)
    assert not any("HIDDEN TESTS" in c.source for c in release.cells)


def test_autograde_scores(course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {s: gb.find_submission("ps1", s).score for s in ("correct", "empty", "forger", "lazy")}
        points = gb.find_assignment("ps1").max_score
    assert points == 3
    assert scores == {"correct": 3, "empty": 0, "forger": 0, "lazy": 2}, scores
