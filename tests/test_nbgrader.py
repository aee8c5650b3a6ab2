"""The chapters under the real nbgrader, installed as an instructor installs it (``make test`` only).

nbgrader runs from an environment of its own, without the book's package: ``pip install
nbgrader==<requirements.txt's pin>`` (constrained by requirements.txt's other pins) into
``_build/nbgrader-env/``, made once and reused while the pins stay. The kernel that runs the
notebooks, ``python3`` as the chapters name it, is the project's ``.venv`` (registered in
nbgrader's environment as the instructors' page says): the students' kernel and the grader's, with
the package. The course holds ``nbgrader_config.py`` and ``student_release.py``
at its root, as the configuration's docstring says, and every chapter in ``source/<chapter>/``:

* ``nbgrader generate_assignment`` releases every chapter without an answer, a hidden test, an
  output or widget state, and the same as ``make assignments``;
* ``nbgrader autograde`` gives Foundations' correct submission full marks, nothing to an empty
  one or one that forges ``check``, and no point for an exercise answered by calling the
  package's own reference;
* with ``nbgrader_config.py`` alone nbgrader stops, and releases nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from visual_attention.assignments import student_version
from visual_attention.student_release import leaks

pytestmark = pytest.mark.nbgrader

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
FOUNDATIONS = ROOT / "book" / "foundations.ipynb"
ENV = ROOT / "_build" / "nbgrader-env"  # ignored by git, like the rest of _build/
STUDENTS = ("correct", "empty", "forger", "lazy")


def _pin() -> str:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return next(line for line in lines if line.startswith("nbgrader=="))


@pytest.fixture(scope="module")
def nbgrader_env() -> Path:
    """An environment with nbgrader and what it needs, and not the book's package."""
    stamp = f"{_pin()} {sys.version_info[:2]} "
    stamp += hashlib.sha256((ROOT / "requirements.txt").read_bytes()).hexdigest()
    ENV.parent.mkdir(exist_ok=True)
    with open(ENV.parent / "nbgrader-env.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time
        if not (ENV / "stamp").is_file() or (ENV / "stamp").read_text() != stamp:
            shutil.rmtree(ENV, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(ENV)], check=True, timeout=300)
            install = [str(ENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
                       "--disable-pip-version-check", _pin(), "-c", str(ROOT / "requirements.txt")]  # fmt: skip
            run = subprocess.run(install, capture_output=True, text=True, timeout=900)
            assert run.returncode == 0, f"{' '.join(install)} (from PyPI):\n{run.stderr[-3000:]}"
            (ENV / "stamp").write_text(stamp)
    for module in ("visual_attention", "torch"):  # nbgrader's environment lacks the book's
        run = subprocess.run([str(ENV / "bin" / "python"), "-c", f"import {module}"], env=_env())
        assert run.returncode != 0, f"{ENV} has {module}"
    return ENV


def _env(jupyter: Path | None = None) -> dict[str, str]:
    """nbgrader's own environment first on PATH, none of the project's; with ``jupyter``, a Jupyter
    configuration and data folder of its own (none of the user's)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "JUPYTER_PATH")}
    env["PATH"] = f"{ENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    if jupyter is not None:
        env.update(JUPYTER_CONFIG_DIR=str(jupyter / "config"), JUPYTER_DATA_DIR=str(jupyter / "data"))
    return env


def _students_kernel() -> None:
    """nbgrader's ``python3`` kernel becomes the project's environment's (the students'), as the
    instructors' page says: ``<package env>/bin/python -m ipykernel install --prefix <nbgrader
    env> --name python3``."""
    install = [sys.executable, "-m", "ipykernel", "install", "--prefix", str(ENV), "--name", "python3"]
    subprocess.run(install, check=True, capture_output=True, timeout=120)
    script = "from jupyter_client.kernelspec import KernelSpecManager as K\n"
    script += "print(K().get_kernel_spec('python3').argv[0])"
    run = subprocess.run([str(ENV / "bin" / "python"), "-c", script], env=_env(), check=True,
                         capture_output=True, text=True)  # fmt: skip
    assert run.stdout.strip() == sys.executable, run.stdout


def _nbgrader(course: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [str(ENV / "bin" / "nbgrader"), *args, "--force"], cwd=course, capture_output=True,
        text=True, timeout=900, env=_env(course.parent / "jupyter"),
    )  # fmt: skip
    if ok:
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
        assert "Exception while loading config" not in run.stderr, run.stderr[-2000:]
    return run


def _solution(nb, grade_id: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


@pytest.fixture(scope="module")
def course(nbgrader_env, tmp_path_factory) -> Path:
    course = tmp_path_factory.mktemp("course") / "course"
    (course / "source").mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    shutil.copy(ROOT / "src" / "visual_attention" / "student_release.py", course)
    for chapter in CHAPTERS:
        (course / "source" / chapter.stem).mkdir()
        shutil.copy(chapter, course / "source" / chapter.stem / chapter.name)
    _nbgrader(course, "generate_assignment", "*")
    _students_kernel()

    release = nbformat.read(course / "release" / "foundations" / FOUNDATIONS.name, as_version=4)
    source = course / "source" / "foundations" / FOUNDATIONS.name  # the book's, as it was copied
    correct = nbformat.read(source, as_version=4)  # the solutions, as a student types them
    forger = nbformat.from_dict(json.loads(json.dumps(release)))
    forger.cells.insert(2, nbformat.v4.new_code_cell("check = lambda *args, **kwargs: print('ok')"))
    lazy = nbformat.read(source, as_version=4)  # right answers, one of them the package's
    _solution(lazy, "entropy-solution").source = (
        "from visual_attention.core import masked_softmax\n\n"
        "def my_attention_entropy(scores):\n"
        "    z = scores - scores.amax(dim=-1, keepdim=True)\n"
        "    return torch.logsumexp(z, -1) - (masked_softmax(z, dim=-1) * z).sum(-1)\n"
    )
    for student, nb in zip(STUDENTS, (correct, release, forger, lazy)):
        folder = course / "submitted" / student / "foundations"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / FOUNDATIONS.name)
    _nbgrader(course, "autograde", "foundations")
    return course


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_the_release_holds_no_answer_hidden_test_or_widget_state(course, chapter):
    release = nbformat.read(course / "release" / chapter.stem / chapter.name, as_version=4)
    assert leaks(release) == []
    assert "widgets" not in release.metadata
    for cell in release.cells:
        assert "{admonition} Answer" not in cell.source and "HIDDEN TESTS" not in cell.source
        assert "BEGIN SOLUTION" not in cell.source
    source = nbformat.read(course / "source" / chapter.stem / chapter.name, as_version=4)
    ours = student_version(source, chapter.stem)  # what make assignments writes
    assert [c.cell_type for c in release.cells] == [c.cell_type for c in ours.cells]
    for theirs, mine in zip(release.cells, ours.cells):
        assert theirs.source.strip() == mine.source.strip()


def test_autograde_scores(course):
    script = (
        "import json, sys\nfrom nbgrader.api import Gradebook\n"
        "with Gradebook(sys.argv[1]) as gb:\n"
        "    scores = {s: gb.find_submission('foundations', s).score for s in sys.argv[2:]}\n"
        "    print(json.dumps([scores, gb.find_assignment('foundations').max_score]))\n"
    )
    run = subprocess.run(
        [str(ENV / "bin" / "python"), "-c", script, f"sqlite:///{course / 'gradebook.db'}", *STUDENTS],
        capture_output=True, text=True, env=_env(), check=True,
    )  # fmt: skip
    scores, points = json.loads(run.stdout)
    assert points == 3
    assert scores == {"correct": 3, "empty": 0, "forger": 0, "lazy": 2}, scores


def test_without_student_release_nbgrader_stops_and_releases_nothing(nbgrader_env, tmp_path):
    course = tmp_path / "course"
    (course / "source" / "foundations").mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    shutil.copy(FOUNDATIONS, course / "source" / "foundations")
    run = _nbgrader(course, "generate_assignment", "foundations", ok=False)
    assert run.returncode != 0
    assert "student_release.py is not beside it" in run.stderr, run.stderr[-2000:]
    assert not (course / "release").exists()
