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

Also the one Playwright driver every browser test shares (``playwright_driver``).
"""

from __future__ import annotations

import copy

import pytest

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
EXTRA_SKIPPED = ("image/svg+xml", "application/vnd.visual-attention.evidence+json")


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
