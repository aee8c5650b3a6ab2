"""The built site, opened in a real browser (headless Chromium driven by Playwright).

The site in ``_build/html`` is served from a local HTTP server on 127.0.0.1 that compresses text
like any static host. For every page: no request leaves the site, no console error, no page error,
every widget rendered, and the page weighs at most 2 MB transferred. For every widget made with
``visual_attention.views.widgets``: moving each control changes the view on screen (pixels before and
after) and the context vector it shows.

``make test`` builds the site first; run alone, this module builds it if it is missing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from _browser import CHROMIUM_FLAGS, chromium

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import serve  # noqa: E402  (scripts/serve.py: the gzip-compressing static server)

pytestmark = pytest.mark.browser

SITE = serve.SITE
MAX_PAGE_BYTES = 2_000_000
# Messages that are not errors of ours: Chromium's own sandbox/dbus notices never reach the page
# console, so nothing is ignored here; the html-manager's ajv "strict mode" notice is a *warning*.
IGNORED_CONSOLE_ERRORS: tuple[str, ...] = ()


@pytest.fixture(scope="session")
def site() -> Path:
    if not (SITE / "index.html").exists():
        subprocess.run(
            [str(Path(sys.executable).with_name("jupyter-book")), "build", str(ROOT), "--warningiserror"],
            check=True,
        )
    return SITE


@pytest.fixture(scope="session")
def server(site):
    httpd, base = serve.start(site)
    yield base
    httpd.shutdown()


@pytest.fixture(scope="session")
def browser(playwright_driver):
    b = playwright_driver.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
    yield b
    b.close()


def _pages() -> list[str]:
    pages = sorted(
        str(p.relative_to(SITE))
        for p in SITE.rglob("*.html")
        if "_static" not in p.parts and "_sources" not in p.parts and "@jupyter-widgets" not in p.parts
    )
    return pages or ["index.html"]


def _widget_pages() -> list[str]:
    marker = 'type="application/vnd.jupyter.widget-view+json"'
    return [p for p in _pages() if marker in (SITE / p).read_text(encoding="utf-8")]


class PageVisit:
    """A page opened in a fresh browser context, with everything it asked for and said recorded."""

    def __init__(self, browser, base: str, page: str):
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.bytes_transferred = 0
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.failed: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("requestfinished", self._count_bytes)
        self.page.on("requestfailed", lambda r: self.failed.append(f"{r.url} ({r.failure})"))
        self.page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.url} (HTTP {r.status})"))
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.goto(base + page, wait_until="networkidle")
        n_views = self.page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
        if n_views:
            self.page.wait_for_function(
                """n => [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')]
                       .filter(s => s.previousElementSibling && s.previousElementSibling.querySelector('.jupyter-widgets, .va-aw, .va-mx')).length === n""",
                arg=n_views,
                timeout=20_000,
            )
        self.page.wait_for_load_state("networkidle")

    def _count_bytes(self, request) -> None:
        sizes = request.sizes()
        self.bytes_transferred += sizes["responseBodySize"] + sizes["responseHeadersSize"]

    def external(self) -> list[str]:
        return [u for u in self.requests if not (u.startswith(self.base) or u.startswith(("data:", "blob:")))]

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def visits(browser, server):
    opened: dict[str, PageVisit] = {}

    def visit(page: str) -> PageVisit:
        if page not in opened:
            opened[page] = PageVisit(browser, server, page)
        return opened[page]

    yield visit
    for v in opened.values():
        v.close()


def test_site_was_built(site):
    pages = _pages()
    assert "book/foundations.html" in pages and "book/intro.html" in pages, pages
    html = (site / "book" / "foundations.html").read_text(encoding="utf-8")
    assert "widget-state+json" in html, "the Foundations page carries no widget state"
    assert "cdn.jsdelivr" not in html and "cdnjs" not in html and "unpkg.com/@jupyter" not in html


def test_chapters_keep_launch_and_download_buttons(site):
    """Readers who are online can open a chapter in Binder or Colab at its real path, or download it;
    a service that is not configured (an empty address) has no button."""
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]["url"].removeprefix("https://github.com/").rstrip("/")
    branch = config["repository"]["branch"]
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [c for part in toc.get("parts", []) for c in part["chapters"]] + toc.get("chapters", [])
    listed = [ROOT / f"{entry['file']}.ipynb" for entry in entries]
    notebooks = [p for p in listed if p.exists()]
    assert notebooks, "no chapter notebook is listed in _toc.yml"
    for nb in notebooks:
        html = (site / "book" / f"{nb.stem}.html").read_text(encoding="utf-8")
        binder = f"https://mybinder.org/v2/gh/{repo}/{branch}?urlpath=lab/tree/book/{nb.name}"
        colab = f"https://colab.research.google.com/github/{repo}/blob/{branch}/book/{nb.name}"
        for target in (binder, colab):
            assert f'href="{target}"' in html, f"{nb.name}: no launch link {target}"
        assert "/./book/" not in html, f"{nb.name}: a launch link with /./ in its path"
        if not config["launch_buttons"].get("jupyterhub_url"):
            assert "hub/user-redirect" not in html, f"{nb.name}: a JupyterHub button with no hub"
        assert f'href="../_sources/book/{nb.name}"' in html, f"{nb.name}: no .ipynb download link"
        assert (site / "_sources" / "book" / nb.name).is_file()


def test_every_excerpt_is_highlighted_code_after_a_link_to_its_file_and_lines(site):
    """The excerpts ``scripts/sync_chapters.py`` writes: on the page, a link to the file and lines
    on the repository, then the code as highlighted Python; the marker comments show nothing."""
    import re

    import nbformat
    import yaml

    sys.path.insert(0, str(ROOT / "scripts"))
    import sync_chapters

    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")
    shown = 0
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        html = (site / "book" / f"{path.stem}.html").read_text(encoding="utf-8")
        text = "\n".join(c.source for c in nbformat.read(path, 4).cells if c.cell_type == "markdown")
        for m in sync_chapters.EXCERPT.finditer(text):
            first, last, _ = sync_chapters.excerpt_lines(m["path"], m["what"])
            link = f'href="{url}/blob/main/{m["path"]}#L{first}-L{last}"'
            assert link in html, f"{path.stem}: no link to {m['path']} lines {first}-{last}"
            after = html[html.index(link) :]
            assert re.match(r"(?s).{0,600}?<div class=\"highlight-python", after), f"{path.stem}: {link}"
            shown += 1
        visible = re.sub(r"<!--.*?-->", "", html, flags=re.S)
        assert "excerpt:" not in visible and "{literalinclude}" not in visible
    assert shown >= 50


@pytest.mark.parametrize("page", _pages() if SITE.exists() else ["index.html"])
def test_page_is_self_contained_and_clean(visits, page):
    v = visits(page)
    assert v.external() == [], f"{page} made requests outside the site: {v.external()}"
    assert v.failed == [], f"{page}: failed requests {v.failed}"
    errors = [e for e in v.console_errors if not any(s in e for s in IGNORED_CONSOLE_ERRORS)]
    assert errors == [], f"{page}: console errors {errors}"
    assert v.page_errors == [], f"{page}: page errors {v.page_errors}"
    assert v.bytes_transferred <= MAX_PAGE_BYTES, (
        f"{page} transferred {v.bytes_transferred / 1e6:.2f} MB, more than {MAX_PAGE_BYTES / 1e6} MB"
    )


@pytest.mark.parametrize("page", _pages() if SITE.exists() else ["index.html"])
def test_every_widget_is_rendered(visits, page):
    v = visits(page)
    scripts = v.page.locator('script[type="application/vnd.jupyter.widget-view+json"]')
    for i in range(scripts.count()):
        rendered = scripts.nth(i).evaluate(
            """s => { const area = s.previousElementSibling;
                      const w = area && area.querySelector('.jupyter-widgets, .va-aw, .va-mx');
                      if (!w) return null; const r = w.getBoundingClientRect(); return [r.width, r.height]; }"""
        )
        assert rendered is not None, f"{page}: widget {i} was not rendered"
        assert rendered[0] > 50 and rendered[1] > 10, f"{page}: widget {i} rendered empty ({rendered})"


def _math_pages() -> list[str]:
    return [p for p in _pages() if 'class="math' in (SITE / p).read_text(encoding="utf-8")] if SITE.exists() else []


@pytest.mark.parametrize("page", _math_pages())
def test_math_is_typeset_after_the_widgets(visits, page):
    """MathJax comes after the widgets (book/_ext/mathjax-after-widgets.js): every formula is
    typeset, widget labels written in LaTeX too, and the widgets were on the page first."""
    v = visits(page)
    v.page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20_000)
    v.page.evaluate("MathJax.startup.promise")
    left = v.page.evaluate(
        """() => [...document.querySelectorAll('.math')].filter(m => !m.querySelector('mjx-container')
                                                                && !m.matches('mjx-container')).length"""
    )
    assert left == 0, f"{page}: {left} formulas not typeset"
    assert v.page.locator("mjx-container").count() > 0, f"{page}: nothing typeset"
    if v.page.locator('script[type="application/vnd.jupyter.widget-state+json"]').count():
        assert v.page.evaluate("document.documentElement.dataset.widgetsRendered") == "true"
        assert v.page.evaluate("typeof MathJax.Hub.Queue") == "function"  # the widgets' MathJax 2 call


def _visible_context(root) -> list[str]:
    return root.evaluate(
        """r => [...r.querySelectorAll('.va-views .va-bar')].filter(b => b.offsetParent !== null)
                  .map(b => b.dataset.name + '=' + b.dataset.value)"""
    )


def _pages_with_explorers() -> list[str]:
    """Pages with precomputed explorers (``widgets.precomputed_explorer``: controls in ``.va-controls``)."""
    return [p for p in _widget_pages() if "va-controls" in (SITE / p).read_text(encoding="utf-8")] if SITE.exists() else []


def test_every_widget_page_has_an_explorer(site):
    """Each page with widgets shows at least one explorer: precomputed, or computed in the browser."""
    for page in _widget_pages():
        html = (site / page).read_text(encoding="utf-8")
        assert "va-controls" in html or "AnyModel" in html, f"{page} has widgets but no explorer"


@pytest.mark.parametrize("page", _pages_with_explorers())
def test_each_control_changes_view_and_context(visits, page):
    v = visits(page)
    roots = v.page.locator(".widget-subarea:has(.va-controls)")
    assert roots.count() >= 1, f"{page} has an explorer in its widget state but none was drawn"
    for w in range(roots.count()):
        root = roots.nth(w)
        views = root.locator(".va-views").first
        handles = root.locator(".va-controls .noUi-handle")
        assert handles.count() >= 1, f"{page}: widget {w} has no slider"
        for c in range(handles.count()):
            views.scroll_into_view_if_needed()
            before_pixels = views.screenshot()
            before_context = _visible_context(root)
            handle = handles.nth(c)
            handle.focus()
            now = float(handle.get_attribute("aria-valuenow"))
            top = float(handle.get_attribute("aria-valuemax"))
            v.page.keyboard.press("Home" if now >= top else "End")
            v.page.wait_for_timeout(150)
            assert float(handle.get_attribute("aria-valuenow")) != now, f"{page}: control {c} did not move"
            after_pixels = views.screenshot()
            assert after_pixels != before_pixels, f"{page}: widget {w}, control {c}: the view did not change"
            if before_context:
                after_context = _visible_context(root)
                assert after_context and after_context != before_context, (
                    f"{page}: widget {w}, control {c}: the context vector did not change ({before_context})"
                )
        assert v.page_errors == [] and v.console_errors == [], (v.page_errors, v.console_errors)



# --- widgets that compute attention in the browser (widgets.AttentionExplorer) ---------------------

#: The browser computes in float64 from the float32 buffers; PyTorch in float32: both must agree to this.
BROWSER_TOLERANCE = 1e-5


def _browser_pages() -> list[str]:
    return [p for p in _widget_pages() if '"query_buffer"' in (SITE / p).read_text(encoding="utf-8")] if SITE.exists() else []


def _explorer_states(page: str) -> dict[str, dict]:
    """``{label: model state}`` of every AttentionExplorer saved in a built page, buffers decoded."""
    import base64
    import json
    import re

    html = (SITE / page).read_text(encoding="utf-8")
    found = {}
    for blob in re.findall(r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>', html, re.S):
        for model in json.loads(blob)["state"].values():
            if model["model_name"] != "AnyModel":
                continue
            state = dict(model["state"])
            for buf in model.get("buffers", []):
                state[buf["path"][0]] = base64.b64decode(buf["data"])
            if "query_buffer" in state:
                found[state["label"]] = state
    return found


def _reference(state: dict, shown: dict):
    """What visual_attention computes for the inputs the page was given and the controls it shows."""
    from visual_attention.views.widgets import AttentionExplorer

    w = AttentionExplorer(**{k: state[k] for k in (
        "shape", "grid", "prefix", "query_buffer", "key_buffer", "value_buffer", "scale", "window_sizes")})
    weights, context = w.compute(query=shown["query"], layer=shown["layer"], head=shown["head"],
                                 temperature=shown["temperature"], window=shown["window"], shift=shown["shift"])
    return weights.double().numpy(), context.double().numpy()


def _shown(root) -> dict:
    return root.evaluate("e => e.vaState")


def _assert_matches_pytorch(state: dict, shown: dict, where: str) -> None:
    import numpy as np

    weights, context = _reference(state, shown)
    got_w, got_c = np.asarray(shown["weights"]), np.asarray(shown["context"])
    assert got_w.shape == weights.shape and got_c.shape == context.shape, where
    err = max(float(np.abs(got_w - weights).max()), float(np.abs(got_c - context).max()))
    assert err <= BROWSER_TOLERANCE, f"{where}: browser and PyTorch differ by {err:.2e} ({shown['label']})"
    assert abs(got_w.sum() - 1) < 1e-9 and (got_w >= 0).all(), f"{where}: weights are not a distribution"


def _set_range(root, css: str, value: float) -> None:
    root.locator(css).evaluate(
        "(s, v) => { s.value = String(v); s.dispatchEvent(new Event('input', {bubbles: true})); }", value
    )


@pytest.mark.parametrize("page", _browser_pages())
def test_browser_attention_equals_pytorch(visits, page):
    """Many query points (clicks, arrow keys), temperatures, layers, heads, windows and shifts: the
    weights and context the page computed equal visual_attention's, to 1e-5."""
    import math

    v = visits(page)
    states = _explorer_states(page)
    roots = v.page.locator(".va-aw")
    assert roots.count() == len(states) >= 1, f"{page}: {roots.count()} explorers drawn, {len(states)} saved"
    for i in range(roots.count()):
        root = roots.nth(i)
        label = root.get_attribute("data-label")
        state = states[label]
        gh, gw = state["grid"]
        _assert_matches_pytorch(state, _shown(root), f"{page} {label}: first view")
        stage = root.locator(".va-aw-stage")
        stage.scroll_into_view_if_needed()
        box = stage.bounding_box()
        checked = 0
        for fy, fx in ((0.1, 0.1), (0.5, 0.5), (0.9, 0.3), (0.3, 0.95)):
            r, c = min(int(fy * gh), gh - 1), min(int(fx * gw), gw - 1)       # click the middle of a cell
            stage.click(position={"x": (c + 0.5) / gw * box["width"], "y": (r + 0.5) / gh * box["height"]})
            shown = _shown(root)
            expected = state["prefix"] + r * gw + c
            assert shown["query"] == expected, f"{page} {label}: click on cell {(r, c)} chose {shown['query']}"
            for key in ("ArrowDown", "ArrowRight"):
                v.page.keyboard.press(key)
                _assert_matches_pytorch(state, _shown(root), f"{page} {label}: {key}")
                checked += 1
            controls = set(state["controls"])
            lo, hi = state["temperature_range"]
            for t in ((0.05, 0.3, 1.7) if "temperature" in controls else ()):
                t = min(max(t, lo), hi)
                _set_range(root, ".va-aw-temperature", math.log10(t))      # the slider (log scale, steps)
                shown = _shown(root)
                assert abs(math.log10(shown["temperature"] / t)) <= 0.006, (t, shown["temperature"])
                _assert_matches_pytorch(state, shown, f"{page} {label}: T≈{t} from the slider")
                t = round(lo + (hi - lo) * (0.137 + 0.2 * checked % 0.8), 5)           # any value: typed
                root.locator(".va-aw-temperature-value").fill(str(t))
                shown = _shown(root)
                assert shown["temperature"] == t, (t, shown["temperature"])
                _assert_matches_pytorch(state, shown, f"{page} {label}: T={t} typed")
                checked += 2
            for name in ("layer", "head"):
                if name in controls:
                    n = state["shape"][0 if name == "layer" else 1]
                    for option in range(n):
                        root.locator(f"select.va-aw-{name}").select_option(str(option))
                        _assert_matches_pytorch(state, _shown(root), f"{page} {label}: {name} {option}")
                        checked += 1
            if "window" in controls:
                for m in [0, *state["window_sizes"]]:
                    root.locator("select.va-aw-window").select_option(str(m))
                    shifts = range(m) if "shift" in controls else (0,)
                    for s in shifts:
                        if m:
                            _set_range(root, ".va-aw-shift", s)
                        shown = _shown(root)
                        assert (shown["window"], shown["shift"]) == (m, s if m else 0)
                        _assert_matches_pytorch(state, shown, f"{page} {label}: window {m} shift {s}")
                        checked += 1
        assert checked >= 8, f"{page} {label}: only {checked} views compared"
    assert v.page_errors == [] and v.console_errors == [], (v.page_errors, v.console_errors)


@pytest.mark.parametrize("page", _browser_pages())
def test_browser_explorer_controls_change_the_view(visits, page):
    """Each control (the query too) changes the drawn pixels and the context bars."""
    v = visits(page)
    for i in range(v.page.locator(".va-aw").count()):
        root = v.page.locator(".va-aw").nth(i)
        label = root.get_attribute("data-label")
        main = root.locator(".va-aw-main")
        root.scroll_into_view_if_needed()

        def bars():
            return root.evaluate("e => [...e.querySelectorAll('.va-aw-ctx .va-aw-bar')].map(b => b.dataset.value)")

        def changed(what, act):
            before_pixels, before_bars = main.screenshot(), bars()
            act()
            v.page.wait_for_timeout(50)
            assert main.screenshot() != before_pixels, f"{page} {label}: {what} did not change the view"
            assert bars() != before_bars, f"{page} {label}: {what} did not change the context"

        stage = root.locator(".va-aw-stage")
        box = stage.bounding_box()
        changed("a click", lambda: stage.click(position={"x": box["width"] * 0.7, "y": box["height"] * 0.6}))
        changed("an arrow key", lambda: v.page.keyboard.press("ArrowLeft"))
        if root.locator(".va-aw-temperature").count():
            changed("the temperature", lambda: _set_range(root, ".va-aw-temperature", 0.0))
        for name in ("layer", "head"):
            if root.locator(f"select.va-aw-{name}").count():
                sel = root.locator(f"select.va-aw-{name}")
                now = sel.input_value()
                other = [o for o in sel.evaluate("s => [...s.options].map(o => o.value)") if o != now][0]
                changed(name, lambda: sel.select_option(other))
        if root.locator("select.va-aw-window").count():
            sel = root.locator("select.va-aw-window")
            options = sel.evaluate("s => [...s.options].map(o => o.value)")
            changed("the window", lambda: sel.select_option(options[-1] if sel.input_value() != options[-1] else options[0]))
            if root.locator(".va-aw-shift").count() and int(sel.input_value()) > 1:
                changed("the shift", lambda: _set_range(root, ".va-aw-shift", 1))
    assert v.page_errors == [] and v.console_errors == [], (v.page_errors, v.console_errors)



# --- trained models run in the browser (views.model_explorer.ModelExplorer) ------------------------


def _model_pages() -> list[str]:
    marker = "visual_attention.views.model_explorer.ModelExplorer"  # the widget's anywidget id
    return [p for p in _widget_pages() if marker in (SITE / p).read_text(encoding="utf-8")] if SITE.exists() else []


def _model_states(page: str) -> list[dict]:
    """Every ModelExplorer saved in a built page, buffers decoded."""
    import base64
    import json
    import re

    html = (SITE / page).read_text(encoding="utf-8")
    found = []
    for blob in re.findall(r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>', html, re.S):
        for model in json.loads(blob)["state"].values():
            state = dict(model["state"])
            if model["model_name"] != "AnyModel" or "views" not in state or "graph" not in state:
                continue
            for buf in model.get("buffers", []):
                state[buf["path"][0]] = base64.b64decode(buf["data"])
            found.append(state)
    return found


@pytest.mark.parametrize("page", _model_pages())
def test_browser_models_equal_pytorch_on_what_the_reader_draws(visits, page):
    """Draw strokes, move the drawing, pick an example: the page ran the chapter's model on the
    rasterised input it shows, as PyTorch runs the same graph (1e-4), and every view changed."""
    import numpy as np
    import torch

    from visual_attention.views.browser_model import BrowserModel, run_graph

    v = visits(page)
    states = _model_states(page)
    roots = v.page.locator(".va-mx")
    assert roots.count() == len(states) >= 1, f"{page}: {roots.count()} model explorers drawn, {len(states)} saved"
    for i in range(roots.count()):
        root = roots.nth(i)
        root.scroll_into_view_if_needed()
        shown = root.evaluate("e => [e.vaState.views.map(v => v.name), e.vaState.shape]")
        mine = [s for s in states if [v["name"] for v in s["views"]] == shown[0] and s["canvas"] == shown[1][-2:]]
        assert len(mine) == 1, f"{page}: explorer {i} matches {len(mine)} saved states"
        state = mine[0]
        model = BrowserModel(state["graph"], state["weights"])
        h, w = state["canvas"]

        def check(where):
            shown = root.evaluate("e => e.vaState")
            x = torch.tensor(shown["input"], dtype=torch.float32).reshape(shown["shape"])
            expected = run_graph(model, x)
            for name, got in shown["outputs"].items():
                err = float(np.abs(np.reshape(got["data"], got["shape"]) - expected[name]).max())
                assert err <= 1e-4, f"{page} explorer {i}, {where}: {name} differs from PyTorch by {err:.2e}"
            return shown, expected

        def act(where, action):
            before, expected_before = check("before " + where)
            pixels = root.locator(".va-mx-stage").screenshot()
            action()
            v.page.wait_for_timeout(80)
            after, expected_after = check(where)
            assert after["input"] != before["input"], f"{page}: {where} did not change the input"
            for k, (old, new) in enumerate(zip(before["views"], after["views"])):  # view by view
                if old["kind"] == "maps" and not where.startswith("an example") and after["canvas"] != 0:
                    continue  # maps are about canvas 0
                output = state["views"][k].get("output")
                if output in expected_before and np.array_equal(expected_before[output], expected_after[output]):
                    continue  # PyTorch's output is bit for bit the same (an item of weight exactly 0 moved)
                assert new["data"] != old["data"], f"{page}: {where} did not change the view {old['name']}"
            assert root.locator(".va-mx-stage").screenshot() != pixels, f"{page}: {where} did not change the picture"

        stage = root.locator(".va-mx-stage")

        def stroke():
            b = stage.bounding_box()
            v.page.mouse.move(b["x"] + 0.3 * b["width"], b["y"] + 0.3 * b["height"])
            v.page.mouse.down()
            v.page.mouse.move(b["x"] + 0.7 * b["width"], b["y"] + 0.35 * b["height"], steps=5)
            v.page.mouse.move(b["x"] + 0.45 * b["width"], b["y"] + 0.8 * b["height"], steps=5)
            v.page.mouse.up()

        root.locator("button", has_text="clear").click()
        act("a stroke", stroke)
        act("a move", lambda: root.locator("[aria-label='move →']").click())
        act("a resize", lambda: root.locator("[aria-label='grow']").click())
        act("an example", lambda: root.locator("select[aria-label='test example']").select_option("1"))
        if root.locator(".va-mx-thumb").count() > 1:  # several canvases: draw on another one
            root.locator(".va-mx-thumb").nth(1).click()
            act("a stroke on the second canvas", stroke)
        if root.locator("select[aria-label='map of']").count():
            before = root.evaluate("e => e.vaState")
            root.locator("select[aria-label='map of']").select_option("1")
            v.page.wait_for_timeout(80)
            after = check("the head")[0]
            assert after["outputs"] == before["outputs"] and after["mass"] != before["mass"]
    assert v.page_errors == [] and v.console_errors == [], (v.page_errors, v.console_errors)
