"""A site that works offline: every script, style and font a page needs is served by the site itself.

By default a jupyter-book page loads require.js, the ipywidgets HTML manager and MathJax from CDNs.
This extension copies them from ``node_modules`` (installed from ``package.json`` at set-up time,
nothing third-party is committed) into the built site, and mends two console errors a stock
jupyter-book 1 page logs:

* sphinx-thebe's inline ``const THEBE_JS_URL`` script is registered twice (Sphinx 7.4 keeps it once
  with filename ``None`` and once with ``''``): the duplicate is dropped;
* the widget bundle typesets labels with MathJax 2's ``MathJax.Hub.Queue`` while the site runs
  MathJax 3: ``mathjax-after-widgets.js`` maps the call onto MathJax 3 (otherwise a page error per
  label); it is the page's ``mathjax_path`` and loads MathJax itself once the widgets are rendered,
  so that typesetting does not delay the widgets (time to interactive);
* pydata-sphinx-theme loads ``scripts/fontawesome.js`` (540 kB compressed) on every page to swap its
  icons for SVGs, although its stylesheet already draws the same icons with the Font Awesome web fonts
  it also loads: the script tag is removed from the built pages (the icons stay);
* a browser asks every page without an icon link (the redirecting ``index.html``) for
  ``/favicon.ico``: one is written, so there is no 404;
* pydata-sphinx-theme reads an empty theme mode in a fresh browser profile (sphinx-book-theme does
  not accept ``default_mode``): ``html_context.default_mode`` is set in ``_config.yml``.

Files are copied when the build finishes, into ``_static/offline/`` (outside the source static folders,
so jupyter-book does not add them to every page); ``nb_ipywidgets_js`` and ``mathjax_path`` name them.
The widget manager ``embed.js`` is built here with esbuild (``embed/build.mjs``, from the npm
registry's packages): the html-manager's built-in widgets plus anywidget's front end, so the book's own
widgets (:class:`visual_attention.widgets.AttentionExplorer`) run with no kernel and no require.js.
Its stylesheet ``embed.css`` lies beside it and is linked by the script itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

#: destination under _static/offline/ → source under node_modules/
VENDOR_DIRS = {"mathjax": "mathjax/es5"}
OWN_FILES = ("mathjax-after-widgets.js",)  # beside this file
BUILD_SCRIPT = Path(__file__).with_name("embed") / "build.mjs"
FONTAWESOME_JS = re.compile(r'<script[^>]*src="[^"]*_static/scripts/fontawesome\.js[^"]*"[^>]*></script>\s*')


def _node_modules(app: Sphinx) -> Path:
    root = Path(app.confdir)
    for candidate in (root / "node_modules", root.parent / "node_modules"):
        if candidate.is_dir():
            return candidate
    raise ExtensionError(
        "node_modules/ not found: the site serves its own JavaScript. Run `npm ci` (make book does)."
    )


def _dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    seen, kept = set(), []
    for js in context.get("script_files", []):
        filename = getattr(js, "filename", js) or None
        attrs = tuple(sorted(getattr(js, "attributes", {}).items()))
        key = (filename, attrs)
        if key in seen:
            continue
        seen.add(key)
        kept.append(js)
    if "script_files" in context:
        context["script_files"][:] = kept


def _copy_assets(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    modules = _node_modules(app)
    out = Path(app.outdir)
    vendor = out / "_static" / "offline"
    vendor.mkdir(parents=True, exist_ok=True)
    _build_widget_manager(modules.parent, vendor)
    for name in OWN_FILES:
        shutil.copyfile(Path(__file__).with_name(name), vendor / name)
    for dest, src in VENDOR_DIRS.items():
        shutil.copytree(modules / src, vendor / dest, dirs_exist_ok=True)
    _write_favicon(out / "favicon.ico")
    for page in out.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        lean = FONTAWESOME_JS.sub("", text)
        if lean != text:
            page.write_text(lean, encoding="utf-8")


def _build_widget_manager(root: Path, dest: Path) -> None:
    node = shutil.which("node")
    if node is None:
        raise ExtensionError("node not found: it builds the site's widget manager (make book installs it)")
    done = subprocess.run([node, str(BUILD_SCRIPT), str(dest)], cwd=root, capture_output=True, text=True)
    if done.returncode or not (dest / "embed.js").is_file():
        raise ExtensionError(f"building the widget manager failed:\n{done.stdout}{done.stderr}")


def _write_favicon(path: Path) -> None:
    """A favicon.ico at the root, for pages without an icon link (jupyter-book's redirecting index)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((0, 0, 31, 31), radius=6, fill="#10243a")
    draw.ellipse((7, 7, 25, 25), fill="#fde2c8")
    draw.ellipse((12, 12, 20, 20), fill="#a35a12")
    img.save(path, format="ICO", sizes=[(32, 32)])


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("build-finished", _copy_assets)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
