"""The browser-computing widgets in JupyterLab with a live kernel (headless Chromium via Playwright).

A notebook makes an :class:`visual_attention.views.widgets.AttentionExplorer` and prints its weights; the
test runs it in a real JupyterLab, checks that the page draws the widget and computes the same numbers,
then clicks a cell of the image and types a temperature, and checks that the kernel sees both
(the traits sync back to Python); a spatial model explorer is drawn, computes the kernel's logits and
follows a stroke. The static site is tested in ``test_site.py``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from _browser import CHROMIUM_FLAGS, chromium

pytestmark = [pytest.mark.browser, pytest.mark.jupyterlab]

CELLS = [
    "import json, torch\n"
    "from visual_attention.views import widgets as W\n"
    "x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))\n"
    'e = W.attention_explorer(x, grid=(4, 4), label="lab", temperature=0.5)\n'
    "e",
    'w, c = e.compute()\nprint("STATE", json.dumps({"query": e.query, "temperature": e.temperature, '
    '"weights": w.tolist(), "context": c.tolist()}))',
    "from visual_attention.labs import spatial as S\n"
    'x, y, _ = S.cluttered_task(3, "test", seed=1)\n'
    'm = S.CanvasModel({"a": S.PooledHead("attention").eval()}, S.encode(x))\n'
    "mx = S.model_explorer(m, x, y)\n"
    "mx",
    'print("MODEL", json.dumps(m(x[:1])[0].tolist()))',
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "check.ipynb")
    port = _free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(root / "runtime"), "JUPYTERLAB_WORKSPACES_DIR": str(root / "ws")}
    log = open(root / "server.log", "w")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser", f"--port={port}", "--allow-root",
         "--IdentityProvider.token=t", f"--ServerApp.root_dir={root}", "--LabApp.news_url="],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status?token=t", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"JupyterLab exited: {(root / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start in 60 s")
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _state(page) -> dict:
    text = page.locator(".jp-RenderedText:has-text('STATE')").last.inner_text()
    return json.loads(text.split("STATE", 1)[1])


def test_explorer_computes_and_syncs_with_the_kernel_in_jupyterlab(lab, playwright_driver):
    import numpy as np

    browser = playwright_driver.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(f"{lab}/lab/tree/check.ipynb?token=t")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    # the kernel has started and is idle (the status bar says so) before any cell runs
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-StatusBar-TextItem')].some(t => /\\| Idle$/.test(t.textContent.trim()))",
        timeout=90_000,
    )

    def run(i: int) -> None:
        page.locator(".jp-Cell").nth(i).click()
        page.keyboard.press("Shift+Enter")

    run(0)
    root = page.locator(".va-aw").first
    try:
        root.wait_for(timeout=60_000)
    except Exception:
        outputs = page.locator(".jp-OutputArea").all_inner_texts()
        pytest.fail(f"the widget was not drawn; outputs: {outputs}")
    run(1)
    page.wait_for_selector(".jp-RenderedText:has-text('STATE')", timeout=60_000)
    python = _state(page)
    shown = root.evaluate("e => e.vaState")
    assert (shown["query"], shown["temperature"]) == (python["query"], python["temperature"]) == (0, 0.5)
    assert np.abs(np.array(shown["weights"]) - python["weights"]).max() <= 1e-5
    assert np.abs(np.array(shown["context"]) - python["context"]).max() <= 1e-5

    stage = root.locator(".va-aw-stage")
    box = stage.bounding_box()
    stage.click(position={"x": box["width"] * 3.5 / 4, "y": box["height"] * 2.5 / 4})   # cell (2, 3)
    root.locator(".va-aw-temperature-value").fill("0.25")
    shown = root.evaluate("e => e.vaState")
    assert (shown["query"], shown["temperature"]) == (11, 0.25)
    run(1)
    page.wait_for_function("() => [...document.querySelectorAll('.jp-RenderedText')].some(t => t.innerText.includes('\"query\": 11'))",
                           timeout=30_000)
    python = _state(page)
    assert (python["query"], python["temperature"]) == (11, 0.25), "the kernel did not see the reader's choice"
    assert np.abs(np.array(shown["weights"]) - python["weights"]).max() <= 1e-5
    assert errors == [], errors
    browser.close()


def test_model_explorer_runs_the_model_in_jupyterlab(lab, playwright_driver):
    """The model explorer, as an anywidget in JupyterLab with a kernel: it draws, computes the
    model's logits for the first example as the kernel's PyTorch does, and follows a stroke."""
    import numpy as np

    browser = playwright_driver.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(f"{lab}/lab/tree/check.ipynb?token=t")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-StatusBar-TextItem')].some(t => /\\| Idle$/.test(t.textContent.trim()))",
        timeout=90_000,
    )
    for i in (2, 3):
        page.locator(".jp-Cell").nth(i).click()
        page.keyboard.press("Shift+Enter")
    root = page.locator(".va-mx").first
    try:
        root.wait_for(timeout=90_000)
    except Exception:
        pytest.fail(f"the model explorer was not drawn; outputs: {page.locator('.jp-OutputArea').all_inner_texts()}")
    page.wait_for_selector(".jp-RenderedText:has-text('MODEL')", timeout=60_000)
    text = page.locator(".jp-RenderedText:has-text('MODEL')").last.inner_text()
    python = np.array(json.loads(text.split("MODEL", 1)[1]))
    first = root.evaluate("e => e.vaState")
    assert np.abs(np.reshape(first["outputs"]["logits a"]["data"], python.shape) - python).max() <= 1e-4
    stage = root.locator(".va-mx-stage")
    stage.scroll_into_view_if_needed()
    box = stage.bounding_box()
    page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.3 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.7 * box["width"], box["y"] + 0.7 * box["height"], steps=6)
    page.mouse.up()
    page.wait_for_timeout(200)
    drawn = root.evaluate("e => e.vaState")
    assert drawn["input"] != first["input"] and drawn["probs"] != first["probs"]
    assert errors == [], errors
    browser.close()
