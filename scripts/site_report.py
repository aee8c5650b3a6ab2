"""Measure every page of the built site in headless Chromium: weight and time to interactive.

    python scripts/site_report.py            # prints a Markdown table

Weight: bytes the browser received (gzip, as served by scripts/serve.py), split into the page's
own HTML (which carries the widget state) and everything else. Time to interactive: from navigation
start until every widget on the page is rendered (or, without widgets, until the load event).
Interaction: for every widget that computes attention in the browser
(:class:`visual_attention.views.widgets.AttentionExplorer`), the time from a pointer event on the image (a new
query point) to the recomputed, redrawn view, and to the next animation frame, over many queries; for every
model explorer (:mod:`visual_attention.views.model_explorer`), the model's forward pass, the whole update and
the time from a button press to the frame after it.
Timings depend on the machine: this is a report, never a test.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
VIEW = 'script[type="application/vnd.jupyter.widget-view+json"]'


def pages() -> list[str]:
    return sorted(
        str(p.relative_to(serve.SITE)) for p in serve.SITE.glob("book/*.html")
    )


def measure(browser, base: str, page: str) -> dict:
    ctx = browser.new_context()
    tab = ctx.new_page()
    sizes: dict[str, int] = {}
    tab.on("requestfinished", lambda r: sizes.__setitem__(r.url, r.sizes()["responseBodySize"]))
    start = time.perf_counter()
    tab.goto(base + page, wait_until="load")
    n = tab.locator(VIEW).count()
    if n:
        tab.wait_for_function(
            f"""n => [...document.querySelectorAll('{VIEW}')].filter(s => s.previousElementSibling &&
                  s.previousElementSibling.querySelector('.jupyter-widgets, .va-aw, .va-mx')).length === n""",
            arg=n,
        )
    interactive = time.perf_counter() - start
    tab.wait_for_load_state("networkidle")
    own = sizes.get(base + page, 0)
    updates = interaction_times(tab)
    ctx.close()
    return {"page": page, "widgets": n, "html": own, "total": sum(sizes.values()), "tti": interactive,
            "requests": len(sizes), "updates": updates}


#: In the page: 60 pointer events at cells spread over each explorer's image; for each, the time until
#: the view was recomputed and redrawn (synchronously, in the event handler) and until the next frame.
INTERACT = """async (roots) => {
  const out = [];
  for (const root of roots) {
    const stage = root.querySelector('.va-aw-stage');
    stage.scrollIntoView();
    const r = stage.getBoundingClientRect();
    for (let i = 0; i < 60; i++) {
      const x = r.left + r.width * ((i * 0.381966) % 1), y = r.top + r.height * ((i * 0.618034) % 1);
      const t0 = performance.now();
      stage.dispatchEvent(new PointerEvent('pointerdown', {clientX: x, clientY: y, bubbles: true, buttons: 1}));
      const drawn = root.vaState.updatedAt - t0;
      await new Promise((done) => requestAnimationFrame(() => done()));
      out.push({label: root.dataset.label, drawn, frame: performance.now() - t0});
    }
  }
  return out;
}"""


#: In the page: 30 moves of the drawing in each model explorer (a button press, as a reader's); for
#: each, the model's forward pass, the whole update (model and every view drawn) and the time from
#: the press to the redrawn view (the update runs in the next animation frame).
INTERACT_MODELS = """async (roots) => {
  const out = [];
  for (const [k, root] of roots.entries()) {
    root.scrollIntoView();
    const buttons = ['move →', 'move ←'].map((l) => root.querySelector(`[aria-label='${l}']`));
    for (let i = 0; i < 30; i++) {
      const before = root.vaState.updatedAt, t0 = performance.now();
      buttons[i % 2].click();
      while (root.vaState.updatedAt === before) await new Promise((done) => requestAnimationFrame(() => done()));
      out.push({label: `model explorer ${k}`, model: root.vaState.ms, drawn: root.vaState.total, frame: root.vaState.updatedAt - t0});
    }
  }
  return out;
}"""


def interaction_times(tab) -> list[dict]:
    out = []
    if tab.locator(".va-aw").count():
        out += tab.evaluate_handle("() => [...document.querySelectorAll('.va-aw')]").evaluate(INTERACT)
    if tab.locator(".va-mx").count():
        out += tab.evaluate_handle("() => [...document.querySelectorAll('.va-mx')]").evaluate(INTERACT_MODELS)
    return out


def main() -> None:
    from playwright.sync_api import sync_playwright

    httpd, base = serve.start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=FLAGS)
        print("| page | widgets | requests | page HTML (gzip) | total transferred | time to interactive (median of 3) |")
        print("|---|---:|---:|---:|---:|---:|")
        updates: list[tuple[str, dict]] = []
        for page in pages():
            runs = [measure(browser, base, page) for _ in range(3)]
            r = runs[0]
            tti = statistics.median(m["tti"] for m in runs)
            print(f"| {page} | {r['widgets']} | {r['requests']} | {r['html'] / 1e3:.0f} kB | "
                  f"{r['total'] / 1e6:.2f} MB | {tti:.2f} s |")
            updates.extend((page, u) for m in runs for u in m["updates"])
        print()
        print("Widgets that compute attention in the browser: from a pointer event on the image to the "
              "recomputed, redrawn view, and to the next animation frame (60 queries × 3 visits each).")
        print()
        print("The chapters' trained models (model explorers): the model's forward pass alone, the whole update "
              "(model and every view redrawn), and from the button press to the redrawn view, which waits for "
              "the next animation frame (30 moves × 3 visits each). The floor for an update is one animation "
              "frame, 16 ms.")
        print()
        print("| page | widget | updates | model: median | view redrawn: median / max | to the frame: median / max |")
        print("|---|---|---:|---:|---:|---:|")
        for key in sorted({(page, u["label"]) for page, u in updates}):
            got = [u for page, u in updates if (page, u["label"]) == key]
            drawn = [u["drawn"] for u in got]
            frame = [u["frame"] for u in got]
            model = f"{statistics.median(u['model'] for u in got):.2f} ms" if "model" in got[0] else "–"
            print(f"| {key[0]} | {key[1]} | {len(got)} | {model} | {statistics.median(drawn):.2f} / {max(drawn):.2f} ms | "
                  f"{statistics.median(frame):.1f} / {max(frame):.1f} ms |")
        browser.close()
    httpd.shutdown()


if __name__ == "__main__":
    main()
