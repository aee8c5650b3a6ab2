"""The alternative engine, measured: the spatial chapter's model in onnxruntime-web (WebAssembly).

Not part of the book's dependencies; to rerun it:

    pip install --target /tmp/onnxpkg onnx
    (mkdir -p /tmp/ortweb && cd /tmp/ortweb && npm install onnxruntime-web@1.30.0)
    PYTHONPATH=/tmp/onnxpkg python benchmarks/onnxruntime_web.py

It exports the same model as ``benchmarks/browser_models.py`` (digit encoder + query attention,
one 48 × 48 canvas) to ONNX and times ``InferenceSession.run`` in headless Chromium (one thread:
a static site is not cross-origin isolated, so no SharedArrayBuffer), and the session's creation.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _browser import CHROMIUM_FLAGS, chromium  # noqa: E402
from test_model_runtime import CASES, _randomise  # noqa: E402

DIST = Path("/tmp/ortweb/node_modules/onnxruntime-web/dist")
MODEL = Path("/tmp/ortweb/spatial.onnx")
PAGE = """<!doctype html><script type="module">
import * as ort from './ort.min.mjs';
ort.env.wasm.numThreads = 1; ort.env.wasm.wasmPaths = './';
window.bench = async (reps) => {
  const t0 = performance.now();
  const s = await ort.InferenceSession.create('./spatial.onnx', {executionProviders: ['wasm']});
  const load = performance.now() - t0;
  const x = new ort.Tensor('float32', new Float32Array(48 * 48).map(() => Math.random()), [1, 1, 48, 48]);
  for (let i = 0; i < 3; i++) await s.run({x});
  const times = [];
  for (let i = 0; i < reps; i++) { const t = performance.now(); await s.run({x}); times.push(performance.now() - t); }
  times.sort((a, b) => a - b);
  return [times[Math.floor(reps / 2)], load];
};
window.ready = true;
</script>"""


def main() -> None:
    from playwright.sync_api import sync_playwright

    build, outputs, shape = CASES["spatial: digit encoder + query attention"]
    torch.manual_seed(0)
    model = _randomise(build(), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.rand(shape),), str(MODEL), dynamo=False, input_names=["x"],
            output_names=list(outputs), opset_version=17,
        )
    files = {"index.html": (PAGE.encode(), "text/html"), MODEL.name: (MODEL.read_bytes(), "application/octet-stream")}
    for f in DIST.iterdir():
        if f.name.startswith(("ort.min.mjs", "ort-wasm-simd-threaded")):
            files[f.name] = (f.read_bytes(), "application/wasm" if f.suffix == ".wasm" else "text/javascript")

    def serve(route):
        name = route.request.url.rsplit("/", 1)[1].split("?")[0]
        body, kind = files.get(name, (b"", "text/plain"))
        route.fulfill(status=200 if name in files else 404, body=body, content_type=kind)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.route("http://va.test/**", serve)
        page.goto("http://va.test/index.html")
        page.wait_for_function("window.ready === true")
        run_ms, load_ms = page.evaluate("(r) => window.bench(r)", 21)
        browser.close()
    print(f"onnxruntime-web, wasm, 1 thread: {run_ms:.1f} ms per forward (median of 21), "
          f"{load_ms:.0f} ms to create the session")


if __name__ == "__main__":
    main()
