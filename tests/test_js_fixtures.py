"""The runtime's unit-test fixtures (``tests/js/fixtures``) are what PyTorch computes today.

``tests/js/make_fixtures.py`` writes them; ``node --test tests/js/*.test.mjs`` (``make unit``)
runs model_runtime.js on them. Here, with Python alone: regenerating them gives the committed files
(the expected values to 1e-7, far inside the node tests' 1e-5: float64 arithmetic may round
differently on another machine), and every operation the exporter may emit has fixtures.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

from visual_attention.views.browser_model import OPS

HERE = Path(__file__).parent / "js"
COMMITTED = HERE / "fixtures"


def _generator():
    spec = importlib.util.spec_from_file_location("make_fixtures", HERE / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _same(fresh: object, stored: object, where: str) -> None:
    """``stored`` equals ``fresh``, floats of expected values to 1e-7 relative."""
    if isinstance(fresh, dict):
        assert isinstance(stored, dict) and set(fresh) == set(stored), where
        for key in fresh:
            _same(fresh[key], stored[key], f"{where}.{key}")
    elif isinstance(fresh, list):
        assert isinstance(stored, list) and len(fresh) == len(stored), where
        for i, (a, b) in enumerate(zip(fresh, stored)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(fresh, float) and isinstance(stored, (int, float)) and ".expected" in where:
        assert math.isclose(fresh, stored, rel_tol=1e-7, abs_tol=1e-12), (where, fresh, stored)
    else:
        assert fresh == stored, (where, fresh, stored)


def test_regenerating_the_fixtures_gives_the_committed_files(tmp_path):
    written = _generator().write(tmp_path)
    names = sorted(p.name for p in written)
    assert names == sorted(p.name for p in COMMITTED.glob("*.json")), (
        "python tests/js/make_fixtures.py writes other files than tests/js/fixtures holds"
    )
    for path in written:
        fresh, stored = (
            json.loads(path.read_text()),
            json.loads((COMMITTED / path.name).read_text()),
        )
        _same(fresh, stored, path.name)


def test_every_operation_the_exporter_emits_has_fixtures():
    ops = {p.stem for p in COMMITTED.glob("*.json")}
    assert OPS <= ops, sorted(OPS - ops)
    total = 0
    for path in COMMITTED.glob("*.json"):
        body = json.loads(path.read_text())
        assert body["op"] == path.stem and body["cases"], path.name
        ran = {
            node["op"].removesuffix("_")
            for case in body["cases"]
            for node in case["graph"]["nodes"]
        }
        assert path.stem.removesuffix("_") in ran, path.name
        total += len(body["cases"])
    assert total >= 250, total


def _make_list(makefile: str, name: str) -> list[str]:
    """The words of a ``NAME := …`` assignment of the Makefile (continuation lines joined)."""
    text = makefile.replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.startswith(f"{name} :=")]
    return line.split(":=", 1)[1].split()


def test_every_javascript_file_is_linted_or_waits_in_js_pending():
    root = HERE.parent.parent
    makefile = (root / "Makefile").read_text()
    listed = {
        str(p.relative_to(root))
        for word in _make_list(makefile, "JS") + _make_list(makefile, "JS_PENDING")
        for p in root.glob(word)
    }
    skip = {"node_modules", "_build", ".venv", ".git"}
    found = {
        str(p.relative_to(root))
        for ext in ("*.js", "*.mjs")
        for p in root.rglob(ext)
        if not skip & set(p.relative_to(root).parts)
    }
    assert found <= listed, sorted(found - listed)
    assert "src/visual_attention/views/static/model_runtime.js" in listed
