"""visual_attention.student_release and the course configuration that loads it (nbgrader_config.py).

The configuration loads ``student_release.py`` by its path: beside it, in the clone it belongs to or
in the installed package; with none of them it stops nbgrader (``SystemExit``) instead of letting
nbgrader release the chapters with their answers. Here the file is run as nbgrader's loader runs
it, in this process; ``tests/test_nbgrader.py`` runs the real nbgrader from an environment of its
own, without the package.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from visual_attention import assignments, student_release
from visual_attention.student_release import CheckStudentVersion, StripForStudents, leaks

ROOT = Path(__file__).resolve().parents[1]
FILE = ROOT / "src" / "visual_attention" / "student_release.py"
FOUNDATIONS = ROOT / "book" / "foundations.ipynb"


def _load(config: Path):
    """``(preprocessors of generate_assignment, the file StripForStudents came from)``, as
    nbgrader's config loader reads ``config``."""
    pytest.importorskip("nbgrader")
    from traitlets.config.loader import PyFileConfigLoader

    loaded = PyFileConfigLoader(config.name, str(config.parent)).load_config()
    steps = loaded.GenerateAssignment.preprocessors
    strip = next(s for s in steps if s.__name__ == "StripForStudents")
    return steps, Path(sys.modules[strip.__module__].__file__)


def _steps_are_right(steps) -> None:
    from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions

    names = [s.__name__ for s in steps]
    assert names.index("StripForStudents") == names.index("ClearOutput") + 1
    assert names[-1] == "CheckStudentVersion"
    assert {ClearSolutions, ClearOutput, ClearHiddenTests} <= set(steps)  # nbgrader's own stay


def test_the_configuration_in_the_clone_loads_the_clones_file():
    steps, source = _load(ROOT / "nbgrader_config.py")
    _steps_are_right(steps)
    assert source == FILE


def test_a_copy_beside_student_release_loads_that_file(tmp_path):
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path)
    shutil.copy(FILE, tmp_path)
    steps, source = _load(tmp_path / "nbgrader_config.py")
    _steps_are_right(steps)
    assert source == tmp_path / "student_release.py"


def test_a_copy_alone_loads_the_installed_package_file(tmp_path):
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path)
    steps, source = _load(tmp_path / "nbgrader_config.py")
    _steps_are_right(steps)
    assert source == Path(student_release.__file__)


def test_your_own_configuration_can_load_it_in_place(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.course_id = 'va'\n"
        f"load_subconfig({str(ROOT / 'nbgrader_config.py')!r})\n"
    )
    steps, source = _load(tmp_path / "nbgrader_config.py")
    _steps_are_right(steps)
    assert source == FILE


def test_without_the_file_nbgrader_stops(tmp_path, monkeypatch):
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(  # where nbgrader runs without the package
        importlib.util, "find_spec", lambda name, *a: None if name == "visual_attention" else find_spec(name, *a)
    )
    with pytest.raises(SystemExit, match="student_release.py is not beside it"):
        _load(tmp_path / "nbgrader_config.py")


def test_the_package_and_nbgrader_share_one_implementation():
    assert assignments.StripForStudents is StripForStudents
    assert assignments.strip_answers is student_release.strip_answers
    imports = [line for line in FILE.read_text().splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["from __future__ import annotations", "import re", "import traitlets"], imports
    assert "from nbconvert.preprocessors import Preprocessor" in FILE.read_text()  # nbgrader's


def _chapter():
    return nbformat.read(FOUNDATIONS, as_version=4)


def test_leaks_finds_what_no_student_version_holds():
    nb = _chapter()
    found = leaks(nb)
    for what in ("saved widget state", "an answer block", "a solution region", "a hidden test", "outputs"):
        assert any(what in f for f in found), (what, found)
    assert leaks(assignments.student_version(nb, "foundations")) == []
    nb = assignments.student_version(nb, "foundations")
    nb.cells.append(nbformat.v4.new_markdown_cell("=== BEGIN MARK SCHEME ===\nx\n=== END MARK SCHEME ==="))
    assert leaks(nb) == [f"cell {len(nb.cells) - 1}: a mark scheme"]


def test_the_preprocessors_strip_then_refuse_what_is_left():
    nb = _chapter()
    stripped, _ = StripForStudents().preprocess(nb, {})
    assert "widgets" not in stripped.metadata
    assert not any("{admonition} Answer" in c.source for c in stripped.cells)
    with pytest.raises(ValueError, match="foundations: not released.*a hidden test"):
        CheckStudentVersion().preprocess(stripped, {"unique_key": "foundations"})
    clean = assignments.student_version(_chapter(), "foundations")
    assert CheckStudentVersion().preprocess(clean, {}) == (clean, {})


def test_an_answer_block_left_open_is_refused_not_released():
    nb = _chapter()
    nb.cells.append(nbformat.v4.new_markdown_cell(":::{admonition} Answer\nnever closed"))
    with pytest.raises(ValueError, match="still holds cell .*: an answer block"):
        assignments.student_version(nb, "foundations")


def test_the_instructors_page_names_the_nbgrader_the_tests_run():
    pin = next(x for x in (ROOT / "requirements.txt").read_text().splitlines() if x.startswith("nbgrader=="))
    page = (ROOT / "book" / "instructors.md").read_text()
    assert f"pip install {pin}" in page
    assert "src/visual_attention/student_release.py" in page and "source/<assignment>/" in page
