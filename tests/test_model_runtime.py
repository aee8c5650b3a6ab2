"""The browser runs the chapters' PyTorch models: model_runtime.js against PyTorch, to 1e-4.

``views.browser_model.export_model`` traces a model into a graph of ATen operations and one float32
buffer; ``views/static/model_runtime.js`` runs that graph in JavaScript. These tests export models
built from the package's own modules (the frozen digit encoder's layers, query attention pooling,
SK's branch weights, a ViT's multi-head attention …), run them in headless Chromium on random
inputs, and compare every output with PyTorch's.
"""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from _browser import CHROMIUM_FLAGS, chromium
from _helpers import gen
from visual_attention.blocks import AttentionPooling
from visual_attention.branch import SelectiveKernel
from visual_attention.channel import CBAM, SqueezeExcitation
from visual_attention.labs.digits import DigitCNN
from visual_attention.multi_head import VisionTransformer
from visual_attention.spatial import QuerySpatialAttention, SpatialGate
from visual_attention.views.browser_model import export_model, run_graph, with_attention

RUNTIME = Path(__import__("visual_attention").__file__).parent / "views" / "static" / "model_runtime.js"
PAGE = """<!doctype html><meta charset="utf-8"><script type="module">
import {loadModel} from "./model_runtime.js";
window.runModel = (graph, weights64, input, shape) => {
  const bytes = Uint8Array.from(atob(weights64), (c) => c.charCodeAt(0));
  const model = loadModel(graph, bytes.buffer);
  const out = model.run(Float32Array.from(input), shape);
  const result = {};
  for (const [k, v] of Object.entries(out)) result[k] = {shape: v.shape, data: Array.from(v.data)};
  return result;
};
window.ready = true;
</script>"""


@pytest.fixture(scope="module")
def page(playwright_driver):
    browser = playwright_driver.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
    pg = browser.new_page()
    files = {"index.html": (PAGE, "text/html"), "model_runtime.js": (RUNTIME.read_text(), "text/javascript")}

    def serve(route):
        body, kind = files[route.request.url.rsplit("/", 1)[1]]
        route.fulfill(status=200, body=body, content_type=kind)

    pg.route("http://va.test/**", serve)
    pg.goto("http://va.test/index.html")
    pg.wait_for_function("window.ready === true")
    yield pg
    browser.close()


def run_in_browser(page, model, x):
    out = page.evaluate(
        "([g, w, x, s]) => window.runModel(g, w, x, s)",
        [model.graph, base64.b64encode(model.weights).decode(), x.flatten().tolist(), list(x.shape)],
    )
    return {k: np.asarray(v["data"], dtype=np.float32).reshape(v["shape"]) for k, v in out.items()}


def _randomise(module: nn.Module, seed: int) -> nn.Module:
    g = gen(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return module.eval()


class Spatial(nn.Module):
    """The spatial chapter's pipeline: the digit encoder, query attention pooling, a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.enc, self.pool, self.fc = DigitCNN(), QuerySpatialAttention(64), nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.pool(self.enc.feature_map(x)))


class Gated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc, self.cbam, self.se = DigitCNN(), CBAM(64, rd_ratio=0.25), SqueezeExcitation(64)
        self.gate = SpatialGate()

    def forward(self, x):
        return self.se(self.gate(self.cbam(self.enc.feature_map(x)))).mean(dim=(2, 3))


class Tokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.sk, self.pool = SelectiveKernel(8, 8, rd_channels=4, groups=2), AttentionPooling(8, 4)

    def forward(self, x):
        return self.pool(self.sk(x).flatten(2).transpose(1, 2))


CASES = {
    "spatial: digit encoder + query attention": (
        lambda: with_attention(Spatial(), ["pool"]), ("logits", "weights"), (1, 1, 48, 48)
    ),
    "channel: CBAM, spatial gate, SE": (lambda: with_attention(Gated(), ["se"]), ("out", "gate"), (1, 1, 32, 32)),
    "branch: selective kernel + attention pooling": (
        lambda: with_attention(Tokens(), ["sk", "pool"]), ("out", "sk", "pool"), (2, 8, 6, 6)
    ),
    "multi-head: a small ViT": (
        lambda: with_attention(VisionTransformer(16, 4, 1, 10, 16, 2, 4), ["blocks.0.attn", "blocks.1.attn"]),
        ("logits", "layer0", "layer1"),
        (1, 1, 16, 16),
    ),
    "memory: unit-length embeddings, two hops of a key-value memory": (
        lambda: _memory(),
        ("logits 1", "weights 1", "logits 2", "weights 2"),
        (1, 1, 8, 8),
    ),
    "multi-head: two readers, every head's map (chunk, layer norm)": (
        lambda: _pairs(),
        ("left 4", "right 4", "maps 4", "left 1", "right 1", "maps 1"),
        (1, 1, 32, 64),
    ),
    "multi-head: a ViT's attention, rollout (eye) and logit lens": (
        lambda: _vit(),
        ("logits", "attention", "rollout", "lens"),
        (1, 1, 8, 8),
    ),
    "global: a decoder reading greedily (cross-attention, causal mask, argmax fed back)": (
        lambda: _reader(),
        ("logits", "attention"),
        (1, 1, 32, 80),
    ),
    "local: shifted windows (roll, repeat, unflatten) scattered to token pairs (einsum)": (
        lambda: _windows(),
        ("logits s", "attention s", "logits w", "attention w"),
        (1, 1, 16, 32),
    ),
}


def _windows():
    from visual_attention.labs.local_attention import ShiftHead, WindowPairModel

    heads = {"s": ShiftHead(1), "w": ShiftHead(0)}
    return WindowPairModel(heads, torch.randn(5, 64, 2, 4, generator=gen(12)), encoder=DigitCNN())


def _reader():
    from visual_attention.labs.global_attention import PageReader, Reader

    return PageReader(Reader(), torch.randn(5, 64, 4, 10, generator=gen(11)), encoder=DigitCNN())


def _vit():
    from visual_attention.labs.multi_head import DigitViTModel, digit_vit

    return DigitViTModel(digit_vit(dim=16, depth=2, num_heads=2))


def _pairs():
    from visual_attention.labs.multi_head import PairModel, PairReader

    readers = {"4": PairReader(4), "1": PairReader(1)}
    return PairModel(readers, torch.randn(6, 64, 4, 8, generator=gen(8)), encoder=DigitCNN())


def _memory():
    from visual_attention.labs.memory import DigitEncoder, MemoryModel

    gallery = torch.rand(12, 8, 8, generator=gen(7))
    return MemoryModel(DigitEncoder(), gallery, torch.arange(12) % 5, hops=(1, 2), temperature=0.5)


@pytest.mark.browser
@pytest.mark.parametrize("name", list(CASES))
def test_the_browser_computes_what_pytorch_computes(page, name):
    build, outputs, shape = CASES[name]
    torch.manual_seed(0)
    model = _randomise(build(), seed=1)
    x = torch.rand(shape, generator=gen(2))
    exported = export_model(model, x, outputs)
    for trial, inp in enumerate([x, torch.rand(shape, generator=gen(3)) * 2 - 0.5]):
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = model(inp)
        browser = run_in_browser(page, exported, inp)
        replay = run_graph(exported, inp)
        for key, want in zip(outputs, expected):
            want = want.numpy()
            assert browser[key].shape == want.shape, (name, key)
            np.testing.assert_allclose(replay[key], want, atol=1e-5, rtol=0, err_msg=f"{key} (replay)")
            np.testing.assert_allclose(browser[key], want, atol=1e-4, rtol=0, err_msg=f"{name}: {key}, input {trial}")


def test_the_graph_is_json_and_refuses_unknown_operations():
    model = with_attention(Spatial(), ["pool"])
    exported = export_model(model, torch.rand(1, 1, 48, 48), ("logits", "weights"))
    assert json.loads(json.dumps(exported.graph)) == exported.graph
    assert {n["op"] for n in exported.graph["nodes"]} >= {"_convolution", "softmax", "einsum"}

    class Odd(nn.Module):
        def forward(self, x):
            return torch.fft.fft(x).real

    with pytest.raises(ValueError, match="model_runtime.js does not implement"):
        export_model(Odd(), torch.rand(1, 4))


def test_every_exported_operation_is_implemented_in_javascript():
    import re

    from visual_attention.views.browser_model import OPS

    source = RUNTIME.read_text()
    table = source[source.index("const OPS = {") : source.index("export function loadModel")]
    keys = set(re.findall(r"(?:^|[\s,{])(\w+)(?=\s*[:,](?!:))", table, flags=re.M))
    assert OPS <= keys, sorted(OPS - keys)
