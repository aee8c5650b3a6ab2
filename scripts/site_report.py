"""Measure every page of the built site in headless Chromium: weight and time to interactive.

    python scripts/site_report.py            # prints a Markdown table

Weight: bytes the browser received (gzip, as served by scripts/serve.py), split into the page's
own HTML (which carries the widget state) and everything else. Time to interactive: from navigation
start until every widget on the page is rendered (or, without widgets, until the load event).
Timings depend on the machine: this is a report, never a test.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve  # noqa: E402

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
                  s.previousElementSibling.querySelector('.jupyter-widgets')).length === n""",
            arg=n,
        )
    interactive = time.perf_counter() - start
    tab.wait_for_load_state("networkidle")
    own = sizes.get(base + page, 0)
    ctx.close()
    return {"page": page, "widgets": n, "html": own, "total": sum(sizes.values()), "tti": interactive,
            "requests": len(sizes)}


def main() -> None:
    from playwright.sync_api import sync_playwright

    httpd, base = serve.start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=FLAGS)
        print("| page | widgets | requests | page HTML (gzip) | total transferred | time to interactive (median of 3) |")
        print("|---|---:|---:|---:|---:|---:|")
        for page in pages():
            runs = [measure(browser, base, page) for _ in range(3)]
            r = runs[0]
            tti = statistics.median(m["tti"] for m in runs)
            print(f"| {page} | {r['widgets']} | {r['requests']} | {r['html'] / 1e3:.0f} kB | "
                  f"{r['total'] / 1e6:.2f} MB | {tti:.2f} s |")
        browser.close()
    httpd.shutdown()


if __name__ == "__main__":
    main()
