"""``make unit`` needs Python alone: the guard of the root ``conftest.py`` and the markers.

Where a run deselects the ``browser`` tests (``make unit``), the root conftest hides node, npm and
Chromium from ``PATH`` and fails any test that starts one of them, so that every test of that
selection runs as on a machine with Python alone, here too. This file checks the guard itself, on a
small course of tests run by pytest in a subprocess with the repository's conftest, and that the
run it is part of is guarded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = "not browser and not jupyterlab and not nbgrader"  # the Makefile's unit selection

TESTS = '''
import os, shutil, subprocess, sys
import pytest

def test_node_on_path_is_hidden():
    assert shutil.which("node") is None and shutil.which("npm") is None
    assert shutil.which("sh") is not None  # everything else stays

def test_calls_node_unmarked():
    subprocess.run(["node", "--version"], check=True)

def test_calls_node_by_its_path_unmarked():
    subprocess.run([os.environ["FAKE_NODE"], "--version"], check=True)

def test_calls_chromium_through_a_shell_unmarked():
    subprocess.run("chromium --version", shell=True, check=True)

def test_drives_chromium_unmarked(playwright_driver):
    pass

def test_python_and_its_children_run():  # with the same PATH
    code = "import shutil; print(shutil.which('node'))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == str(shutil.which("node"))

@pytest.mark.browser
def test_marked_browser():
    subprocess.run(["node", "--version"], check=True)
'''


def _course(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder with the repository's conftest, these tests, and node, npm and chromium that
    succeed (a shell script each, first on PATH)."""
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_course.py").write_text(TESTS)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    browser: b\n    jupyterlab: j\n    nbgrader: n\n"
    )
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name in ("node", "npm", "chromium"):
        (bin_ / name).write_text("#!/bin/sh\necho 1.0\n")
        (bin_ / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["FAKE_NODE"] = str(bin_ / "node")
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # a quicker start: the course needs none
    return tmp_path, env


def _outcomes(folder: Path, env: dict[str, str], *args: str) -> dict[str, str]:
    report = folder / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
         "--junitxml", str(report), "-q", *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        failed = case.find("failure") if case.find("failure") is not None else case.find("error")
        outcomes[case.get("name")] = "passed" if failed is None else failed.get("message", "")
    return outcomes


def test_the_unit_selection_runs_without_node_npm_or_chromium(tmp_path):
    folder, env = _course(tmp_path)
    got = _outcomes(folder, env, "-m", UNIT)
    assert "test_marked_browser" not in got  # deselected
    for name in ("test_node_on_path_is_hidden", "test_python_and_its_children_run"):
        assert got.pop(name) == "passed", name
    assert "playwright_driver" in got.pop("test_drives_chromium_unmarked")
    assert set(got) == {
        "test_calls_node_unmarked",
        "test_calls_node_by_its_path_unmarked",
        "test_calls_chromium_through_a_shell_unmarked",
    }
    for name, message in got.items():
        assert "NeedsBrowserMarkerError" in message and "mark the test" in message, (name, message)


def test_the_whole_suite_keeps_them(tmp_path):
    """Without ``-m`` (``make test``) nothing is hidden; only the marker check stays."""
    folder, env = _course(tmp_path)
    got = _outcomes(folder, env, "-k", "not hidden")
    assert "mark it browser" in got.pop("test_drives_chromium_unmarked")
    assert got == dict.fromkeys(
        ["test_calls_node_unmarked", "test_calls_node_by_its_path_unmarked",
         "test_calls_chromium_through_a_shell_unmarked", "test_python_and_its_children_run",
         "test_marked_browser"], "passed",
    )  # fmt: skip


def test_this_run_is_guarded_if_it_is_make_units(request):
    """In ``make unit``'s own run, node, npm and Chromium are out of reach of every test."""
    from conftest import HIDDEN, python_alone

    if not python_alone(request.config):
        return  # make test: the browser tests need them
    assert not [name for name in HIDDEN if shutil.which(name)]
    with pytest.raises(RuntimeError, match="Python alone"):
        subprocess.run(["node", "--version"])
