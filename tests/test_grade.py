"""Tests of the course tooling: student versions (visual_attention.assignments) and the grader.

Grading runs a real Jupyter kernel, so most tests use a small notebook made of the Foundations
chapter's exercise cells only; the whole chapter is graded once as instructor and once as student.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from visual_attention.assignments import ANSWER_NOTE, strip_answers, student_version
from visual_attention.grade import grade, graded_cells

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "foundations.ipynb"
IDS = ["entropy-check", "jacobian-check", "window-check"]


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


@pytest.fixture(scope="module")
def instructor(tmp_path_factory) -> Path:
    """The chapter's exercises alone: an import cell, then each solution and check cell."""
    nb = nbformat.read(CHAPTER, as_version=4)
    cells = [nbformat.v4.new_code_cell("import torch\nfrom visual_attention.exercises import check")]
    cells += [c for c in nb.cells if _nbgrader(c)]
    small = nbformat.v4.new_notebook(cells=cells, metadata=nb.metadata)
    path = tmp_path_factory.mktemp("instructor") / "foundations.ipynb"
    nbformat.write(small, path)
    return path


def _variant(instructor: Path, tmp_path: Path, edit) -> Path:
    nb = nbformat.read(instructor, as_version=4)
    edit(nb.cells)
    path = tmp_path / "submission.ipynb"
    nbformat.write(nb, path)
    return path


def _solution(cells, grade_id):
    return next(c for c in cells if _nbgrader(c).get("grade_id") == grade_id)


def _scores(report) -> dict[str, float]:
    return {r.grade_id: r.score for r in report.results}


def test_graded_cells_of_the_chapter():
    found = graded_cells(nbformat.read(CHAPTER, as_version=4))
    assert [g.grade_id for g in found] == IDS
    assert [g.exercise for g in found] == ["foundations.attention_entropy",
                                           "foundations.softmax_jacobian",
                                           "foundations.window_weights"]
    assert [g.answer for g in found] == ["my_attention_entropy", "my_softmax_jacobian",
                                         "my_window_weights"]


def test_student_version_stubs_solutions_and_clears_outputs():
    nb = nbformat.read(CHAPTER, as_version=4)
    student = student_version(nb, "foundations")
    solutions = [c for c in student.cells if _nbgrader(c).get("solution")]
    assert len(solutions) == 3
    for cell in solutions:
        assert "raise NotImplementedError()" in cell.source and "BEGIN SOLUTION" not in cell.source
        assert "hide-input" not in cell.metadata.get("tags", [])
        assert cell.source.startswith("def my_")  # the signature stays for the student
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    assert "widgets" not in student.metadata
    assert student.metadata["visual_attention"]["chapter"] == "foundations"
    # the instructor notebook itself is untouched
    assert any("BEGIN SOLUTION" in c.source for c in nb.cells)


def test_hidden_tests_are_removed():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION",
                                  metadata={"nbgrader": {"solution": True, "grade": False, "grade_id": "s"}}),
        nbformat.v4.new_code_cell("check('x', f)\n### BEGIN HIDDEN TESTS\nassert f() == 1\n### END HIDDEN TESTS\n",
                                  metadata={"nbgrader": {"grade": True, "grade_id": "c", "points": 2}}),
    ])
    out = student_version(nb, "demo")
    assert out.cells[0].source == "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert out.cells[1].source == "check('x', f)\n"


def test_think_answers_are_replaced_by_a_note_in_student_versions():
    question = "**5. Think.** Why?\n\n"
    answer = ":::{admonition} Answer\n:class: dropdown\nBecause.\n\n```python\nx = 1\n```\n:::"
    after = "\n\nMore text."
    assert strip_answers(question + answer + after) == question + ANSWER_NOTE + "\nMore text."
    assert strip_answers("no answer here") == "no answer here"
    for chapter in sorted((ROOT / "book").glob("*.ipynb")):
        nb = nbformat.read(chapter, as_version=4)
        if not any(_nbgrader(c).get("solution") for c in nb.cells):
            continue
        student = student_version(nb, chapter.stem)
        assert not any("{admonition} Answer" in c.source for c in student.cells), chapter.name
        answers = sum("{admonition} Answer" in c.source for c in nb.cells)
        assert sum(ANSWER_NOTE in c.source for c in student.cells) == answers, chapter.name


def test_make_assignments_command(tmp_path):
    subprocess.run([sys.executable, "-m", "visual_attention.assignments", str(CHAPTER), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    written = nbformat.read(tmp_path / "foundations.ipynb", as_version=4)
    assert written.metadata["visual_attention"]["student_version"] is True


def test_whole_chapter_instructor_scores_full_and_student_zero(tmp_path):
    report = grade(CHAPTER, timeout=60)
    assert report.score == report.max_score == 3, report.table()
    student = tmp_path / "foundations.ipynb"
    nbformat.write(student_version(nbformat.read(CHAPTER, as_version=4), "foundations"), student)
    report = grade(student, CHAPTER, timeout=60)
    assert report.score == 0, report.table()
    assert all("not answered yet" in r.feedback for r in report.results)


def _chapters_with_exercises() -> list[Path]:
    return [p for p in sorted((ROOT / "book").glob("*.ipynb"))
            if any(_nbgrader(c).get("solution") for c in nbformat.read(p, as_version=4).cells)]


@pytest.mark.parametrize("chapter", _chapters_with_exercises(), ids=lambda p: p.stem)
def test_every_chapter_grades_full_for_the_instructor_and_zero_for_the_student(chapter, tmp_path):
    """Each chapter's exercises alone (its import cell, the first after the install cell, then every
    nbgrader cell)."""
    nb = nbformat.read(chapter, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code" and "install-package" not in c.metadata.get("tags", []))
    small = nbformat.v4.new_notebook(cells=[first] + [c for c in nb.cells if _nbgrader(c)], metadata=nb.metadata)
    instructor = tmp_path / chapter.name
    nbformat.write(small, instructor)
    expected = graded_cells(nb)
    assert len(expected) >= 3, f"{chapter.name} has fewer than three graded exercises"
    report = grade(instructor, instructor, timeout=60)
    assert report.score == report.max_score == sum(g.points for g in expected), report.table()
    student = tmp_path / "student.ipynb"
    nbformat.write(student_version(small, chapter.stem), student)
    report = grade(student, instructor, timeout=60)
    assert report.score == 0, report.table()


def test_one_wrong_exercise_loses_exactly_its_points(instructor, tmp_path):
    def wrong_entropy(cells):  # -Σ p log p as written: 0 · log 0 gives NaN for large logits
        _solution(cells, "entropy-solution").source = (
            "def my_attention_entropy(scores):\n"
            "    p = scores.softmax(-1)\n"
            "    return -(p * p.log()).sum(-1)\n"
        )

    report = grade(_variant(instructor, tmp_path, wrong_entropy), instructor, timeout=30)
    assert _scores(report) == {"entropy-check": 0, "jacobian-check": 1, "window-check": 1}, report.table()
    assert "large logits" in report.results[0].feedback and "nan" in report.results[0].feedback


def test_an_answer_that_calls_the_packages_reference_scores_zero(instructor, tmp_path):
    def lazy(cells):  # right numbers, but the exercise is to write it
        _solution(cells, "jacobian-solution").source = (
            "import visual_attention as va\n\n"
            "def my_softmax_jacobian(scores):\n"
            "    p = va.core.masked_softmax(scores, dim=-1)\n"
            "    return torch.diag_embed(p) - p[..., :, None] * p[..., None, :]\n"
        )
        _solution(cells, "entropy-solution").source = (
            "from visual_attention.core import masked_softmax as helper\n\n"
            "def my_attention_entropy(scores):\n"
            "    z = scores - scores.amax(-1, keepdim=True)\n"
            "    return torch.logsumexp(z, -1) - (helper(z, dim=-1) * z).sum(-1)\n"
        )

    report = grade(_variant(instructor, tmp_path, lazy), instructor, timeout=30)
    assert _scores(report) == {"entropy-check": 0, "jacobian-check": 0, "window-check": 1}, report.table()
    assert "calls the package's own masked_softmax" in report.results[0].feedback
    assert "calls the package's own masked_softmax" in report.results[1].feedback


def test_infinite_loop_is_cut_at_the_time_limit(instructor, tmp_path):
    def loop(cells):
        _solution(cells, "window-solution").source = "def my_window_weights(scores, radius):\n    while True:\n        pass\n"

    start = time.monotonic()
    report = grade(_variant(instructor, tmp_path, loop), instructor, timeout=4)
    elapsed = time.monotonic() - start
    assert _scores(report) == {"entropy-check": 1, "jacobian-check": 1, "window-check": 0}, report.table()
    assert "timed out after 4 s" in report.results[2].feedback
    assert elapsed < 60, f"grading took {elapsed:.0f} s"


def test_tampering_syntax_errors_and_exceptions_buy_nothing(instructor, tmp_path):
    def chaos(cells):
        tamper = nbformat.v4.new_code_cell(
            "import torch, visual_attention.exercises as E\n"
            "E.check = lambda *a, **k: None\nE.judge = lambda *a, **k: None\nE.compare = lambda *a, **k: None\n"
            "torch.allclose = lambda *a, **k: True\n"
        )
        cells.insert(1, tamper)
        cells.insert(2, nbformat.v4.new_code_cell("def broken(:\n    pass"))
        cells.insert(3, nbformat.v4.new_code_cell("raise RuntimeError('boom')"))
        _solution(cells, "window-solution").source = "def my_window_weights(scores, radius):\n    return scores\n"
        check_cell = _solution(cells, "window-check")  # a forged check cell and forged points
        check_cell.source = "print('all good')"
        check_cell.metadata["nbgrader"]["points"] = 100

    report = grade(_variant(instructor, tmp_path, chaos), instructor, timeout=30)
    assert _scores(report) == {"entropy-check": 1, "jacobian-check": 1, "window-check": 0}, report.table()
    assert report.max_score == 3


def test_a_killed_kernel_costs_only_what_depended_on_it(instructor, tmp_path):
    def die(cells):
        index = cells.index(_solution(cells, "window-solution"))
        cells.insert(index, nbformat.v4.new_code_cell("import os\nos._exit(1)"))

    report = grade(_variant(instructor, tmp_path, die), instructor, timeout=30)
    scores = _scores(report)
    assert scores["entropy-check"] == 1 and scores["jacobian-check"] == 1, report.table()
    assert scores["window-check"] == 0  # `torch` was imported in the kernel that died


def test_deleted_check_cell_is_still_graded_and_cli_writes_json(instructor, tmp_path):
    def delete(cells):
        cells.remove(_solution(cells, "jacobian-check"))

    path = _variant(instructor, tmp_path, delete)
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "visual_attention.grade", str(path), "--source", str(instructor),
         "--json", str(out), "--timeout", "30"],
        capture_output=True, text=True, check=True,
    )
    assert "total" in proc.stdout
    data = json.loads(out.read_text())
    assert data["score"] == data["max_score"] == 3
    assert [e["grade_id"] for e in data["exercises"]] == IDS
