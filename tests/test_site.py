"""The built site, opened in a real browser (headless Chromium driven by Playwright).

The site in ``_build/html`` is served from a local HTTP server on 127.0.0.1 that compresses text
like any static host. For every page: no request leaves the site, no console error, no page error,
every widget rendered, and the page weighs at most 2.5 MB transferred. For every widget made with
``visual_attention.widgets``: moving each control changes the view on screen (pixels before and
after) and the context vector it shows.

``make test`` builds the site first; run alone, this module builds it if it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import serve  # noqa: E402  (scripts/serve.py: the gzip-compressing static server)

SITE = serve.SITE
MAX_PAGE_BYTES = 2_500_000
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# Messages that are not errors of ours: Chromium's own sandbox/dbus notices never reach the page
# console, so nothing is ignored here; the html-manager's ajv "strict mode" notice is a *warning*.
IGNORED_CONSOLE_ERRORS: tuple[str, ...] = ()


def _chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(f"Chromium not found at {path}: install it (make test does) or set CHROMIUM")
    return path


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
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS)
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
                       .filter(s => s.previousElementSibling && s.previousElementSibling.querySelector('.jupyter-widgets')).length === n""",
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
    """Readers who are online can still open a chapter in Binder, Colab or a JupyterHub, or download it."""
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    hub = config["launch_buttons"]["jupyterhub_url"]
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [c for part in toc.get("parts", []) for c in part["chapters"]] + toc.get("chapters", [])
    listed = [ROOT / f"{entry['file']}.ipynb" for entry in entries]
    notebooks = [p for p in listed if p.exists()]
    assert notebooks, "no chapter notebook is listed in _toc.yml"
    for nb in notebooks:
        html = (site / "book" / f"{nb.stem}.html").read_text(encoding="utf-8")
        for target in ("https://mybinder.org/v2/gh/", "https://colab.research.google.com/github/", hub):
            assert f'href="{target}' in html, f"{nb.name}: no launch link to {target}"
        assert f'href="../_sources/book/{nb.name}"' in html, f"{nb.name}: no .ipynb download link"
        assert (site / "_sources" / "book" / nb.name).is_file()


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
                      const w = area && area.querySelector('.jupyter-widgets');
                      if (!w) return null; const r = w.getBoundingClientRect(); return [r.width, r.height]; }"""
        )
        assert rendered is not None, f"{page}: widget {i} was not rendered"
        assert rendered[0] > 50 and rendered[1] > 10, f"{page}: widget {i} rendered empty ({rendered})"


def _visible_context(root) -> list[str]:
    return root.evaluate(
        """r => [...r.querySelectorAll('.va-views .va-bar')].filter(b => b.offsetParent !== null)
                  .map(b => b.dataset.name + '=' + b.dataset.value)"""
    )


def _pages_with_explorers() -> list[str]:
    return _widget_pages() if SITE.exists() else []


@pytest.mark.parametrize("page", _pages_with_explorers())
def test_each_control_changes_view_and_context(visits, page):
    v = visits(page)
    roots = v.page.locator(".widget-subarea:has(.va-controls)")
    assert roots.count() >= 1, f"{page} has widget state but no explorer with controls"
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
