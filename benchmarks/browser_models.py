"""How fast the reader's browser runs the chapters' models (model_runtime.js in headless Chromium).

For each model: the median time of one forward pass in the page (``performance.now`` around
``model.run``, after warm-up), next to PyTorch's on the same machine, and the size of the graph and
weights a page carries. The issue's floor for an interactive view is one animation frame, 16 ms.

    python benchmarks/browser_models.py [--reps 31] [--out benchmarks/browser_models.md]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _browser import CHROMIUM_FLAGS, chromium  # noqa: E402
from test_model_runtime import CASES, PAGE, RUNTIME, _randomise  # noqa: E402
from visual_attention.views.browser_model import export_model  # noqa: E402


def _spatial_chapter():
    """The spatial chapter's page model: the trained encoder, both pooling heads."""
    from visual_attention.labs import spatial as lab

    x, _, _ = lab.cluttered_task(32, split="test", seed=1)
    heads = {"attention pooling": lab.PooledHead("attention"), "gate": lab.PooledHead("gate")}
    return lab.CanvasModel(heads, lab.encode(x))


class _HierarchicalCanvas(nn.Module):
    """The trained encoder on a 64 × 64 canvas, attention pooling over its 16 × 16 positions."""

    def __init__(self) -> None:
        super().__init__()
        from visual_attention.blocks import AttentionPooling
        from visual_attention.labs.digits import load_digit_cnn

        self.enc, self.pool = load_digit_cnn(), AttentionPooling(64, 32)

    def forward(self, x):
        return self.pool(self.enc.feature_map(x).flatten(2).transpose(1, 2))


def _hierarchical_canvas():
    from visual_attention.views.browser_model import with_attention

    return with_attention(_HierarchicalCanvas().eval(), ["pool"])


MODELS = dict(CASES)
MODELS["spatial chapter's page: encoder + attention head + gate"] = (
    _spatial_chapter,
    ("logits a", "map a", "logits g", "map g"),
    (1, 1, 48, 48),
)
MODELS["hierarchical-size canvas: encoder + attention pooling"] = (
    _hierarchical_canvas,
    ("pooled", "weights"),
    (1, 1, 64, 64),
)

TIMER = """([g, w, x, s, reps]) => {
  const bytes = Uint8Array.from(atob(w), (c) => c.charCodeAt(0));
  const model = window.loadModel(g, bytes.buffer), input = Float32Array.from(x), times = [];
  for (let i = 0; i < 3; i++) model.run(input, s);
  for (let i = 0; i < reps; i++) { const t = performance.now(); model.run(input, s); times.push(performance.now() - t); }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=31)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page()
        files = {
            "index.html": PAGE.replace("window.ready = true;", "window.loadModel = loadModel; window.ready = true;"),
            "model_runtime.js": RUNTIME.read_text(),
        }
        page.route(
            "http://va.test/**",
            lambda r: r.fulfill(
                status=200,
                body=files[r.request.url.rsplit("/", 1)[1]],
                content_type="text/html" if r.request.url.endswith("html") else "text/javascript",
            ),
        )
        page.goto("http://va.test/index.html")
        page.wait_for_function("window.ready === true")
        for name, (build, outputs, shape) in MODELS.items():
            torch.manual_seed(0)
            model = build() if name not in CASES else _randomise(build(), seed=1)
            x = torch.rand(shape)
            exported = export_model(model, x, outputs)
            ms = page.evaluate(
                TIMER,
                [exported.graph, base64.b64encode(exported.weights).decode(), x.flatten().tolist(), list(shape), args.reps],
            )
            times = []
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(3):
                    model(x)
                for _ in range(args.reps):
                    t = time.perf_counter()
                    model(x)
                    times.append(time.perf_counter() - t)
            size = len(json.dumps(exported.graph)) + len(exported.weights)
            rows.append((name, tuple(shape), ms, 1e3 * statistics.median(times), size / 1024))
        browser.close()
    lines = [
        "| model | input | browser (ms, median) | PyTorch (ms, median) | graph + weights (KiB) | ≤ 16 ms |",
        "|---|---|---:|---:|---:|:-:|",
    ]
    for name, shape, ms, torch_ms, kib in rows:
        lines.append(f"| {name} | {shape} | {ms:.2f} | {torch_ms:.2f} | {kib:.0f} | {'✓' if ms <= 16 else '✗'} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text("# Models in the browser\n\n" + text + "\n")


if __name__ == "__main__":
    main()
