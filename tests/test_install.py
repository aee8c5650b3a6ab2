"""Where a reader opens the book: the install cell, Binder's files, the package's dependencies.

* Every chapter starts with the install cell of ``scripts/sync_chapters.py``, made from the
  ``repository:`` entry of ``_config.yml`` that the launch buttons use; it installs the package
  only where it is missing. Every graded check cell carries the same script's hidden test.
* Binder (repo2docker) reads ``binder/``: graphviz, torch's CPU build and the pinned packages, then
  the package itself from the checkout.
* ``pip install .`` is complete: every third-party module the package imports is a dependency
  (those of the grader and of ``make assignments`` come with the ``grading`` extra).
"""

from __future__ import annotations

import ast
import re
import sys
import types
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import sync_chapters  # noqa: E402

CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_starts_with_the_install_cell_and_hides_a_test_in_each_check(path):
    nb = nbformat.read(path, as_version=4)
    first = sync_chapters.first_code_cell(nb)
    assert first.source == sync_chapters.install_cell(), f"run: python scripts/sync_chapters.py {path}"
    assert {"install-package", "remove-cell"} <= set(first.metadata.get("tags", []))
    assert not first.outputs
    for cell in sync_chapters.graded_check_cells(nb):
        assert sync_chapters.HIDDEN in cell.source and "### END HIDDEN TESTS" in cell.source
    assert sync_chapters.sync(path, check=True) == []


def test_the_hidden_test_uses_the_real_checker_whatever_the_notebook_redefined():
    """A forged ``check``, a patched checker module and a patched reference: the hidden test still
    fails a wrong answer and passes a right one (in a fresh interpreter: it re-imports the package)."""
    import subprocess

    forged = (
        "import visual_attention.exercises as E, visual_attention.core as C\n"
        "check = lambda *a, **k: print('ok')\n"
        "E.check = E.judge = E.compare = lambda *a, **k: None\n"
        "C.masked_softmax = lambda s, **k: s\n"
    )
    cell = sync_chapters.check_cell("foundations.attention_entropy", "my_entropy")
    for answer, ok in (("lambda s: s", False), ("lambda s: -(s.softmax(-1) * s.log_softmax(-1)).sum(-1)", True)):
        code = forged + f"my_entropy = {answer}\n" + cell
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert (run.returncode == 0) == ok, run.stderr[-500:]
        if not ok:
            assert "ExerciseError" in run.stderr


def _run_cell(found: bool) -> list[list[str]]:
    """Execute the install cell with ``find_spec`` and ``subprocess.run`` replaced; return the
    commands it would have run."""
    calls: list[list[str]] = []
    fake_util = types.SimpleNamespace(find_spec=lambda name: object() if found else None)
    fake_subprocess = types.SimpleNamespace(run=lambda cmd, check: calls.append(cmd))
    source = sync_chapters.install_cell()
    source = source.replace("import importlib.util\n", "").replace("import subprocess\n", "")
    namespace = {
        "importlib": types.SimpleNamespace(util=fake_util),
        "subprocess": fake_subprocess,
    }
    exec(compile(source, "<install cell>", "exec"), namespace)
    return calls


def test_install_cell_installs_from_the_configured_repository_only_when_missing():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    assert _run_cell(found=True) == []
    (command,) = _run_cell(found=False)
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    assert command[-1] == f"visual-attention @ git+{config['url']}@{config['branch']}"


def test_install_cell_follows_the_config(tmp_path):
    config = tmp_path / "_config.yml"
    config.write_text("repository:\n  url: https://github.com/someone/fork/\n  branch: dev\n")
    assert "git+https://github.com/someone/fork@dev" in sync_chapters.install_cell(config)


def test_binder_installs_graphviz_torch_cpu_the_pins_and_the_package():
    assert "graphviz" in (ROOT / "binder/apt.txt").read_text().split()
    requirements = (ROOT / "binder/requirements.txt").read_text().splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements
    assert "-r ../requirements.txt" in requirements
    assert (ROOT / "binder/../requirements.txt").exists()
    post_build = ROOT / "binder/postBuild"
    assert post_build.stat().st_mode & 0o111, "postBuild must be executable"
    assert "pip install --no-deps -e ." in post_build.read_text()


def test_launch_buttons_are_configured_or_hidden():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["path_to_book"] == ""  # no "/./book/" in launch URLs
    buttons = config["launch_buttons"]
    assert buttons["jupyterhub_url"] == ""  # no placeholder hub
    assert buttons["binderhub_url"] and buttons["colab_url"]


def _third_party_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (  # import_extra("nbformat", "grading")
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "import_extra"
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(node.args[0].value.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"visual_attention"}


DISTRIBUTIONS = {"skimage": "scikit-image", "sklearn": "scikit-learn", "PIL": "pillow"}


def _names(requirements: list[str]) -> set[str]:
    return {r.split(">")[0].split("<")[0].split("=")[0].strip().lower() for r in requirements}


def test_pip_install_brings_every_module_the_package_imports():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+ (CI runs 3.11)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = _names(project["dependencies"])
    grading = base | _names(project["optional-dependencies"]["grading"])
    for path in sorted((ROOT / "src/visual_attention").rglob("*.py")):
        wanted = grading if path.stem in ("grade", "assignments", "student_release") else base
        for module in _third_party_imports(path):
            distribution = DISTRIBUTIONS.get(module, module).lower().replace("_", "-")
            assert distribution in {w.replace("_", "-") for w in wanted}, (
                f"{path.relative_to(ROOT)} imports {module}: add {distribution} to pyproject.toml"
            )


# Where the repository prints install commands for readers, instructors and users of the package.
PRINTED = ["README.md", "nbgrader_config.py", "pyproject.toml", "binder/postBuild", "book/*.md",
           "book/*.ipynb", "src/visual_attention/**/*.py", "scripts/*.py"]  # fmt: skip
PACKAGE = re.compile(r"(?<![\w.])visual-attention(\[[^\]\s]*\])?(?![\w.-])")


def test_every_install_command_names_the_package_where_it_can_be_had():
    """No registry serves the book's package: where the repository prints its name in an install
    command it comes with the repository's address (``_config.yml``), as the chapters' install cell
    writes it; from a clone, ``pip install ".[lab]"`` needs no name."""
    url, _ = sync_chapters.repository()
    wanted = (f" @ git+{url}", " @ git+{url}")  # the install cell's template writes {url}
    for pattern in PRINTED:
        for path in sorted(ROOT.glob(pattern)):
            for line_no, line in enumerate(path.read_text().splitlines(), 1):
                if path.name == "pyproject.toml" and line.startswith("name = "):
                    continue
                for m in PACKAGE.finditer(line):
                    assert line[m.end():].startswith(wanted), (
                        f"{path.relative_to(ROOT)}:{line_no}: {line.strip()!r} names a package no "
                        f"registry serves: write \"visual-attention[extra] @ git+{url}\" or, from a "
                        'clone, pip install ".[extra]"'
                    )


def _commands(page: str) -> list[str]:
    """The shell commands of a page's ```bash blocks (comments dropped)."""
    text = (ROOT / "book" / page).read_text()
    blocks = [b.split("```")[0] for b in text.split("```bash\n")[1:]]
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("page", ["intro.md", "instructors.md"])
def test_the_student_and_instructor_commands_of_the_pages_work(page):
    """Every ``make`` target the pages name exists and would run; every ``pip install`` resolves
    (against this environment, offline); ``jupyter lab book/`` has a folder to open."""
    import subprocess

    commands = _commands(page)
    assert commands, f"{page} shows no command"
    for command in commands:
        words = command.split()
        if words[0] == "make":
            run = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True)
            assert run.returncode == 0, f"{page}: {command}: {run.stderr}"
        elif words[:2] == ["pip", "install"]:
            target = words[2].strip("\"'")
            run = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index",
                 "--no-build-isolation", "--quiet", target],
                cwd=ROOT, capture_output=True, text=True,
            )  # fmt: skip
            assert run.returncode == 0, f"{page}: {command}: {run.stderr}"
        elif words[:2] == ["jupyter", "lab"]:
            assert (ROOT / words[2]).is_dir()
        elif words[0].endswith("python") or words[0] == "for":
            continue  # the grader's commands: tested in tests/test_grade.py
        else:
            raise AssertionError(f"{page}: a command this test does not know: {command}")
