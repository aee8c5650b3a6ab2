"""pytest hooks for the notebooks run under nbval (``make test``).

nbval compares each re-executed cell's outputs with the committed ones. Two kinds of output differ
from run to run or from machine to machine for reasons that say nothing about correctness:

* widget views: every run gives the widgets new model ids. nbval already skips the
  ``application/vnd.jupyter.widget-view+json`` mime type; we also drop the ``text/plain`` fallback
  *of those same outputs* (a repr of the widget tree), not of any other output and not the cell.
* SVG drawn by graphviz: the markup depends on the installed graphviz version. The cells that draw
  SVG assert on its structure and print what is stable (node labels), which nbval still compares.
* the evidence record of an experiment (``visual_attention.views.evidence``): per-seed trained
  numbers, machine-dependent like the table beside it; the cell asserts what it must show.
* the texts a chapter's prose quotes (``visual_attention.views.evidence.quote``): the prose is
  written from the stored ones (``scripts/sync_chapters.py``); ``tests/test_book.py`` checks it.

Also the one Playwright driver every browser test shares (``playwright_driver``), and the guard of
``make unit`` (Python alone): where a run deselects the ``browser`` tests, node, npm and Chromium
are hidden from every test (``PATH``) and a call of one fails the test that made it, so that a test
that needs them and lacks the marker fails on every machine, not only on those without node.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
EXTRA_SKIPPED = (
    "image/svg+xml",
    "application/vnd.visual-attention.evidence+json",
    "application/vnd.visual-attention.quote+json",
)


def _drop_widget_reprs(outputs):
    cleaned = []
    for out in outputs:
        data = out.get("data")
        if data and WIDGET_VIEW in data:
            out = copy.deepcopy(out)  # a NotebookNode: nbval reads its fields as attributes
            for key in list(out["data"]):
                if key != WIDGET_VIEW:
                    del out["data"][key]
        cleaned.append(out)
    return cleaned


def pytest_collection_modifyitems(session, config, items):
    try:
        from nbval.plugin import IPyNbCell, IPyNbFile
    except ImportError:  # nbval not installed: nothing to adjust
        return
    for item in items:
        if isinstance(item, IPyNbCell) and isinstance(item.parent, IPyNbFile):
            parent = item.parent
            if not getattr(parent, "_va_adjusted", False):
                parent.skip_compare = tuple(parent.skip_compare) + EXTRA_SKIPPED
                parent._va_adjusted = True
    if not getattr(IPyNbCell, "_va_patched", False):
        original = IPyNbCell.compare_outputs

        def compare_outputs(self, test, ref, skip_compare=None):
            return original(self, _drop_widget_reprs(test), _drop_widget_reprs(ref), skip_compare)

        IPyNbCell.compare_outputs = compare_outputs
        IPyNbCell._va_patched = True


@pytest.fixture(scope="session")
def playwright_driver():
    """The session's Playwright driver (``playwright.sync_api``), started on first use: its
    synchronous API allows one driver per process at a time, so every browser test launches its
    Chromium from this one, whatever order the tests run in."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


# --- make unit: Python alone --------------------------------------------------------------------

#: What ``make unit`` must not need; a test that does is marked ``browser`` (make test runs it).
HIDDEN = frozenset(
    "node nodejs npm npx corepack chromium chromium-browser chrome google-chrome "
    "google-chrome-stable chrome-headless-shell headless_shell".split()
)
_guard = {"on": False}


def python_alone(config) -> bool:
    """Whether this run deselects the ``browser`` tests (make unit: ``-m "not browser and …"``)."""
    return re.search(r"\bnot\s+browser\b", config.getoption("markexpr", "") or "") is not None


def path_without(hidden: frozenset[str], path: str, shadow: Path) -> str:
    """``path`` with every folder that holds one of ``hidden`` replaced by a folder of ``shadow``
    that links to everything else in it (the other folders stay as they are)."""
    folders = []
    for i, folder in enumerate(path.split(os.pathsep)):
        try:
            names = set(os.listdir(folder))
        except OSError:
            continue
        if not names & hidden:
            folders.append(folder)
            continue
        copy_ = shadow / str(i)
        copy_.mkdir(parents=True)
        for name in names - hidden:
            (copy_ / name).symlink_to(Path(folder) / name)
        folders.append(str(copy_))
    return os.pathsep.join(folders)


class NeedsBrowserMarkerError(RuntimeError):
    """A test of make unit's selection ran node, npm or Chromium."""


def _programs(executable, argv) -> list[str]:
    """The programs a process start runs: its executable, its first word, a shell's command's."""
    words = os.fsdecode(argv).split()[:1] if isinstance(argv, (str, bytes)) else list(argv or [])
    words = [os.fsdecode(w) for w in words]
    found = [os.fsdecode(executable)] if executable is not None else []
    found += words[:1]
    shell = len(words) > 2 and os.path.basename(words[0]) in ("sh", "bash", "dash")
    if shell and words[1] == "-c":
        found += words[2].split()[:1]
    return [os.path.basename(p) for p in found]


def _refuse_hidden(event: str, args: tuple) -> None:
    if _guard["on"] and event in ("subprocess.Popen", "os.posix_spawn", "os.exec"):
        for program in _programs(args[0], args[1]):
            if program in HIDDEN:
                raise NeedsBrowserMarkerError(
                    f"make unit runs with Python alone, without {program}: mark the test "
                    "@pytest.mark.browser (make test runs it)"
                )


def pytest_configure(config):
    if not python_alone(config):
        return
    shadow = Path(tempfile.mkdtemp(prefix="python-alone-"))
    config._va_python_alone = (os.environ.get("PATH", ""), shadow)
    os.environ["PATH"] = path_without(HIDDEN, os.environ.get("PATH", os.defpath), shadow)
    if not _guard.get("hooked"):
        sys.addaudithook(_refuse_hidden)  # for good: audit hooks cannot be removed
        _guard["hooked"] = True
    _guard["on"] = True


def pytest_unconfigure(config):
    saved = getattr(config, "_va_python_alone", None)
    if saved is not None:
        _guard["on"] = False
        os.environ["PATH"] = saved[0]
        shutil.rmtree(saved[1], ignore_errors=True)


def pytest_runtest_setup(item):
    uses = getattr(item, "fixturenames", ())  # a notebook cell under nbval has none
    if "playwright_driver" in uses and item.get_closest_marker("browser") is None:
        pytest.fail(f"{item.nodeid} drives Chromium (playwright_driver): mark it browser")
