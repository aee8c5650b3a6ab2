"""Tests of visual_attention.views.widgets.AttentionExplorer (attention computed in the browser), Python side.

The browser's own numbers are compared with these in tests/test_site.py; here: the PyTorch reference
``reference_attention`` against explicit formulas and against the package's window attention, the
widget's traits and buffers, and input validation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _browser import CHROMIUM_FLAGS, ROOT, chromium
from visual_attention.core import record_attention
from visual_attention.local_attention import ShiftedWindowAttention, to_dense, window_token_index
from visual_attention.views import widgets as W


def tokens(n=12, d=4, seed=0, layers=1, heads=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(layers, heads, n, d, generator=g)


def explicit(q, k, v, i, scale, t, mask=None):
    logits = scale * (k @ q[i]).double() / t
    if mask is not None:
        logits = logits.masked_fill(~mask, -math.inf)
    w = torch.exp(logits - logits.max())
    w = w / w.sum()
    return w, w @ v.double()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), t=st.floats(0.01, 20), scale=st.floats(0.1, 4), i=st.integers(0, 11))
def test_reference_attention_is_softmax_of_scaled_dot_products(seed, t, scale, i):
    q, k, v = tokens(seed=seed)[0, 0], tokens(seed=seed + 1)[0, 0], tokens(d=3, seed=seed + 2)[0, 0]
    w, c = W.reference_attention(q, k, v, i, scale=scale, temperature=t)
    w_ref, c_ref = explicit(q, k, v, i, scale, t)
    assert w.shape == (12,) and c.shape == (3,)
    assert (w >= 0).all() and abs(float(w.sum()) - 1) < 1e-5
    torch.testing.assert_close(w.double(), w_ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c.double(), c_ref, atol=1e-5, rtol=1e-5)


def test_layers_and_heads_select_their_projections():
    q, k, v = tokens(layers=2, heads=3), tokens(seed=1, layers=2, heads=3), tokens(seed=2, layers=2, heads=3)
    for layer in range(2):
        for head in range(3):
            w, c = W.reference_attention(q, k, v, 5, layer=layer, head=head, scale=0.5)
            w_ref, c_ref = explicit(q[layer, head], k[layer, head], v[layer, head], 5, 0.5, 1.0)
            torch.testing.assert_close(w.double(), w_ref, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(c.double(), c_ref, atol=1e-5, rtol=1e-5)


def test_extreme_logits_stay_finite():
    q = torch.full((1, 1, 6, 2), 1e4)
    w, c = W.reference_attention(q, q, q, 0, scale=1.0, temperature=0.01)
    assert torch.isfinite(w).all() and torch.isfinite(c).all() and abs(float(w.sum()) - 1) < 1e-6


@pytest.mark.parametrize("m,s", [(2, 0), (2, 1), (3, 1), (6, 0), (6, 3)])
def test_window_mask_is_the_package_window_attention(m, s):
    """With identity projections, the weights equal those ShiftedWindowAttention records, query by query."""
    h, w, c = 6, 6, 4
    x = torch.randn(1, h, w, c, generator=torch.Generator().manual_seed(m * 10 + s))
    layer = ShiftedWindowAttention(c, m, 1, shift_size=s, qkv_bias=False, relative_position_bias=False)
    with torch.no_grad(), record_attention(layer) as maps:
        layer.attn.qkv.weight.copy_(torch.eye(c).repeat(3, 1))
        layer(x)
    dense = to_dense(maps["attn"], window_token_index(h, w, m, s))[0, 0]      # (N, N)
    feats = x[0].reshape(h * w, c)
    for i in range(h * w):
        got, _ = W.reference_attention(feats, feats, feats, i, scale=layer.attn.scale, grid=(h, w), window=m, shift=s)
        torch.testing.assert_close(got, dense[i], atol=1e-6, rtol=1e-5)
        assert bool(((got > 0) == W.window_keys_mask((h, w), i, m, s)).all())


@settings(max_examples=30, deadline=None)
@given(i=st.integers(0, 35), m=st.sampled_from([2, 3, 6]), data=st.data())
def test_window_mask_properties(i, m, data):
    s = data.draw(st.integers(0, m - 1))
    mask = W.window_keys_mask((6, 6), i, m, s)
    assert mask[i], "a query may always attend to itself"
    assert 1 <= int(mask.sum()) <= m * m
    for j in torch.nonzero(mask).flatten().tolist():    # symmetric: j may attend to i as well
        assert W.window_keys_mask((6, 6), j, m, s)[i]


def test_window_zero_is_global_and_prefix_tokens_are_outside_windows():
    assert W.window_keys_mask((4, 4), 3, 0).all()
    mask = W.window_keys_mask((4, 4), 1, 2, 0, prefix=1)
    assert not mask[0] and mask[1] and int(mask.sum()) == 4


def test_widget_carries_float32_buffers_and_computes_like_the_reference():
    q, k, v = tokens(n=17, layers=2, heads=2), tokens(n=17, seed=3, layers=2, heads=2), tokens(n=17, d=5, seed=4, layers=2, heads=2)
    wdg = W.attention_explorer(q, k, v, grid=(4, 4), prefix=1, scale=0.5, temperature=0.7,
                               controls=("temperature", "layer", "head"), query=(2, 1), label="x")
    assert wdg.shape == [2, 2, 17, 4, 5] and wdg.query == 1 + 2 * 4 + 1
    assert len(wdg.query_buffer) == q.numel() * 4 and len(wdg.value_buffer) == v.numel() * 4
    q2, k2, v2 = wdg.arrays()
    assert torch.equal(q2, q) and torch.equal(k2, k) and torch.equal(v2, v)
    assert len(wdg.colormap) == 256 * 3
    wdg.layer, wdg.head, wdg.temperature = 1, 1, 0.3
    w, c = wdg.compute()
    w_ref, c_ref = explicit(q[1, 1], k[1, 1], v[1, 1], wdg.query, 0.5, 0.3)
    torch.testing.assert_close(w.double(), w_ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c.double(), c_ref, atol=1e-5, rtol=1e-5)
    assert wdg.value_max == pytest.approx(float(v.abs().max()))


def test_defaults_keys_are_queries_values_are_keys_and_image_is_a_grey_jpeg():
    x = torch.randn(12, 3)
    wdg = W.attention_explorer(x, grid=(3, 4), image=torch.rand(3, 6, 8))
    q, k, v = wdg.arrays()
    assert torch.equal(q[0, 0], x) and torch.equal(k, q) and torch.equal(v, q)
    assert wdg.image.startswith("data:image/jpeg;base64,") and wdg.display_size == [12, 16]
    assert wdg._esm.strip().startswith("//") and "export default" in wdg._esm


def test_traits_are_validated():
    wdg = W.attention_explorer(torch.randn(16, 3), grid=(4, 4), window_sizes=(2, 4), controls=("window", "shift"))
    with pytest.raises(Exception, match="query must be a token index"):
        wdg.query = 16
    with pytest.raises(Exception, match="temperature must be positive"):
        wdg.temperature = 0.0
    with pytest.raises(Exception, match="window must be 0"):
        wdg.window = 3
    wdg.window = 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(queries=torch.randn(12, 3), grid=(3, 3)), r"has 12 tokens, expected 9"),
        (dict(queries=torch.randn(5), grid=(1, 5)), r"must be \(N, d\), \(H, N, d\) or \(L, H, N, d\), got shape \(5,\)"),
        (dict(queries=torch.ones(9, 3, dtype=torch.long), grid=(3, 3)), r"floating-point"),
        (dict(queries=torch.randn(9, 3), keys=torch.randn(9, 4), grid=(3, 3)), r"queries and keys must have the same shape"),
        (dict(queries=torch.randn(2, 9, 3), values=torch.randn(3, 9, 3), grid=(3, 3)), r"values must be \(L, H, N, dv\)"),
        (dict(queries=torch.randn(9, 3), grid=(3, 3), window_sizes=(2,)), r"window size 2 must divide the grid 3×3"),
        (dict(queries=torch.randn(10, 3), grid=(3, 3), prefix=1, window_sizes=(3,)), r"prefix must be 0"),
        (dict(queries=torch.randn(9, 3), grid=(3, 3), query=(3, 0)), r"cell of the 3×3 grid"),
        (dict(queries=torch.randn(9, 3), grid=(3, 3), controls=("colour",)), r"controls must be among"),
        (dict(queries=torch.randn(9, 3), grid=(3, 3), value_names=("a",)), r"1 names for 3 value dimensions"),
        (dict(queries=torch.tensor([[math.nan, 0.0]] * 4), grid=(2, 2)), r"must be finite"),
    ],
)
def test_attention_explorer_validates_its_inputs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        W.attention_explorer(**kwargs)


def test_reference_attention_validates_its_inputs():
    q = torch.randn(1, 1, 4, 2)
    with pytest.raises(ValueError, match=r"must agree"):
        W.reference_attention(q, torch.randn(1, 1, 5, 2), q, 0)
    with pytest.raises(ValueError, match=r"query must be a token index in \[0, 4\)"):
        W.reference_attention(q, q, q, 4)
    with pytest.raises(ValueError, match=r"needs the token grid"):
        W.reference_attention(q, q, q, 0, window=2)
    with pytest.raises(ValueError, match=r"query must be a grid token"):
        W.window_keys_mask((2, 2), 0, 2, prefix=1)


def test_gradients_flow_through_the_reference_in_float64():
    q = torch.randn(1, 1, 5, 3, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 1, 5, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: W.reference_attention(a, a, b, 2, temperature=0.5)[1], (q, v))


def test_static_module_ships_with_the_package():
    from importlib.resources import files

    js = files("visual_attention").joinpath("views", "static", "attention_explorer.js").read_text()
    assert "export default" in js and "function attend" in js
    assert np.frombuffer(W.attention_explorer(torch.randn(4, 2), grid=(2, 2)).colormap, np.uint8).shape == (768,)


# --- precomputed explorers as the static site draws them (its own widget manager, no kernel) ----


@pytest.fixture(scope="module")
def widget_manager(tmp_path_factory):
    """The site's ``embed.js`` and ``embed.css``, built as the book build does (book/_ext/embed)."""
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules").is_dir():
        pytest.fail("node and node_modules/ (npm ci, as `make book` runs it) build the site's widget manager")
    out = tmp_path_factory.mktemp("embed")
    script = ROOT / "book" / "_ext" / "embed" / "build.mjs"
    done = subprocess.run([node, str(script), str(out)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and (out / "embed.js").is_file(), done.stdout + done.stderr
    return {name: (out / name).read_text(encoding="utf-8") for name in ("embed.js", "embed.css")}


def _render_explorer(driver, widget_manager, box, width=720):
    """Draw an explorer's saved widget state with the site's widget manager; yields the page."""
    import json

    from ipywidgets.embed import embed_data
    data = embed_data(views=[box], drop_defaults=False)
    page_html = (
        '<!doctype html><html><head><script src="http://va.test/embed.js"></script></head><body>'
        f'<div style="width: {width}px">'
        '<script type="application/vnd.jupyter.widget-state+json">'
        f"{json.dumps(data['manager_state'])}</script>"
        '<script type="application/vnd.jupyter.widget-view+json">'
        f"{json.dumps(data['view_specs'][0])}</script></div></body></html>"
    )
    files = {"index.html": (page_html, "text/html"),
             "embed.js": (widget_manager["embed.js"], "text/javascript"),
             "embed.css": (widget_manager["embed.css"], "text/css")}

    def serve(route):
        body, kind = files[route.request.url.rsplit("/", 1)[1].split("?")[0]]
        route.fulfill(status=200, body=body, content_type=kind)

    browser = driver.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.route("http://va.test/**", serve)
    page.goto("http://va.test/index.html")
    page.wait_for_selector(".va-controls .widget-readout")
    page.wait_for_timeout(200)
    yield page
    assert not errors, errors
    browser.close()


_CONTROL_BOXES = """() => Array.from(document.querySelectorAll('.va-controls > *')).map((c) => {
  const box = (e) => { const r = e.getBoundingClientRect();
                       return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  const label = c.querySelector('.widget-label'), readout = c.querySelector('.widget-readout');
  return {control: box(c), label: box(label), readout: box(readout), text: readout.textContent,
          clipped: readout.scrollWidth > readout.clientWidth + 1};
})"""


def _overlap(a, b):
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


def _check_controls_apart(page, fits):
    parts = page.evaluate(_CONTROL_BOXES)
    assert len(parts) >= 2
    for i, part in enumerate(parts):
        for key in ("label", "readout"):    # each control draws its text inside its own box
            assert part["control"]["left"] - 0.5 <= part[key]["left"], (i, key, part)
            assert part[key]["right"] <= part["control"]["right"] + 0.5, (i, key, part)
        if fits(part["text"]):
            assert not part["clipped"], f"control {i}: readout {part['text']!r} is clipped"
        for j, other in enumerate(parts):
            if j == i:
                continue
            for key in ("label", "readout"):
                for other_key in ("control", "label", "readout"):
                    assert not _overlap(part[key], other[other_key]), (i, key, j, other_key, parts)
            if abs(part["control"]["top"] - other["control"]["top"]) < 1 and j == i + 1:
                gap = other["label"]["left"] - part["readout"]["right"]
                assert gap >= 8, f"control {i}'s readout {part['text']!r} meets control {j}: {gap} px"
    return parts


@pytest.mark.browser  # node builds the site's widget manager, Chromium draws it
@pytest.mark.parametrize("width", [720, 340])
def test_explorer_control_labels_and_readouts_never_overlap(playwright_driver, widget_manager, width):
    controls = {
        "example": [("#0 (digit 0)", 0), ("#1 (digit 7)", 1), ("#2 (a very long example label)", 2)],
        "block": [1, 2, 3],
        "a rather long control name": ["short", "medium label"],
    }
    box = W.precomputed_explorer(controls, lambda **kw: W.html_view(repr(kw)))
    for page in _render_explorer(playwright_driver, widget_manager, box, width):
        parts = _check_controls_apart(page, fits=lambda text: len(text) <= 16)
        assert [p["text"] for p in parts] == ["#0 (digit 0)", "1", "short"]
        if width >= 720:    # the first two share a row, as on the book's pages
            assert abs(parts[0]["control"]["top"] - parts[1]["control"]["top"]) < 1
        handles = page.locator(".va-controls .noUi-handle")
        for c in range(handles.count()):    # the longest labels, then back to the first ones
            for key in ("End", "Home", "ArrowRight"):
                handles.nth(c).focus()
                page.keyboard.press(key)
                page.wait_for_timeout(50)
                _check_controls_apart(page, fits=lambda text: len(text) <= 16)
