"""Tests of visual_attention.widgets: the precomputed explorer and the query-attention explorer."""

from __future__ import annotations

import base64
import io
import itertools
import re
from html.parser import HTMLParser

import ipywidgets as widgets
import numpy as np
import pytest
import torch
from ipywidgets.widgets.widget_link import Link
from PIL import Image

from visual_attention import query_attention
from visual_attention.widgets import (
    count_views,
    explorer_view,
    html_view,
    precomputed_explorer,
    query_attention_explorer,
)

CONTROLS = {"a": [1, 2, 3], "b": ["x", "y"]}


def render_recorder():
    calls: list[dict] = []

    def render(**kwargs):
        calls.append(kwargs)
        return html_view(f"{kwargs['a']}-{kwargs['b']}")

    return render, calls


def stacks_by_depth(root) -> dict[int, list[widgets.Stack]]:
    out: dict[int, list[widgets.Stack]] = {}

    def walk(w, depth):
        if isinstance(w, widgets.Stack):
            out.setdefault(depth, []).append(w)
            for c in w.children:
                walk(c, depth + 1)

    walk(root, 0)
    return out


@pytest.fixture
def explorer():
    render, calls = render_recorder()
    box = precomputed_explorer(CONTROLS, render)
    box.calls = calls
    return box


def test_render_is_called_once_per_combination(explorer):
    calls = explorer.calls
    assert len(calls) == 6
    expected = [{"a": a, "b": b} for a, b in itertools.product(CONTROLS["a"], CONTROLS["b"])]
    assert sorted(calls, key=repr) == sorted(expected, key=repr)
    assert count_views(explorer) == 6


def test_explorer_view_returns_the_view_for_the_values(explorer):
    for a, b in itertools.product(CONTROLS["a"], CONTROLS["b"]):
        view = explorer_view(explorer, a=a, b=b)
        assert isinstance(view, widgets.HTML)
        assert view.value == f"{a}-{b}"
    views = {id(explorer_view(explorer, a=a, b=b)) for a, b in itertools.product(CONTROLS["a"], CONTROLS["b"])}
    assert len(views) == 6


def test_explorer_view_needs_every_control(explorer):
    with pytest.raises(ValueError, match="missing a value for control 'b'"):
        explorer_view(explorer, a=1)


def test_explorer_view_names_the_control_of_an_unknown_value(explorer):
    with pytest.raises(ValueError, match=r"5 is not a value of control 'a'; choose from \[1, 2, 3\]"):
        explorer_view(explorer, a=5, b="x")


def test_controls_are_selection_sliders_in_order(explorer):
    assert [c.description for c in explorer.controls] == ["a", "b"]
    assert all(isinstance(c, widgets.SelectionSlider) for c in explorer.controls)
    assert [list(dict(c.options).values()) for c in explorer.controls] == [[1, 2, 3], ["x", "y"]]
    assert [list(dict(c.options)) for c in explorer.controls] == [["1", "2", "3"], ["x", "y"]]
    assert [c.index for c in explorer.controls] == [0, 0]
    assert explorer.stack in explorer.children
    assert any(isinstance(ch, widgets.HBox) and list(ch.children) == explorer.controls for ch in explorer.children)


def test_stacks_start_at_zero_and_nest_by_control(explorer):
    depth = stacks_by_depth(explorer.stack)
    assert sorted(depth) == [0, 1]
    assert depth[0] == [explorer.stack]
    assert len(depth[1]) == 3  # one per value of a
    for s in depth[0] + depth[1]:
        assert s.selected_index == 0
    assert [len(s.children) for s in depth[0]] == [3]
    assert [len(s.children) for s in depth[1]] == [2, 2, 2]


def test_each_control_is_linked_to_every_stack_at_its_depth(explorer):
    depth = stacks_by_depth(explorer.stack)
    links = explorer.links
    assert all(isinstance(link, Link) for link in links)
    got = {(id(link.source[0]), link.source[1], id(link.target[0]), link.target[1]) for link in links}
    expected = {
        (id(explorer.controls[d]), "index", id(s), "selected_index") for d, stacks in depth.items() for s in stacks
    }
    assert len(links) == len(got) == 4
    assert got == expected


def test_three_controls_and_labelled_values():
    calls = []

    def render(**kw):
        calls.append(kw)
        return html_view(repr(sorted(kw.items())))

    box = precomputed_explorer({"size": [("small", 1), ("big", 2)], "t": [0.5], "k": ["p", "q", "r"]}, render)
    assert count_views(box) == 6 and len(calls) == 6
    assert list(dict(box.controls[0].options)) == ["small", "big"]
    assert {kw["size"] for kw in calls} == {1, 2}
    assert explorer_view(box, size=2, t=0.5, k="q").value == repr(sorted({"size": 2, "t": 0.5, "k": "q"}.items()))
    depth = stacks_by_depth(box.stack)
    assert [len(depth[d]) for d in range(3)] == [1, 2, 2]
    assert len(box.links) == 5
    for link in box.links:
        (src, _), (dst, _) = link.source, link.target
        d = next(d for d, stacks in depth.items() if any(dst is s for s in stacks))
        assert src is box.controls[d]


def test_initial_values_set_the_first_view():
    render, _ = render_recorder()
    box = precomputed_explorer(CONTROLS, render, initial={"a": 3, "b": "y"})
    assert [c.index for c in box.controls] == [2, 1]
    assert [c.value for c in box.controls] == [3, "y"]
    depth = stacks_by_depth(box.stack)
    assert [s.selected_index for s in depth[0]] == [2]
    assert [s.selected_index for s in depth[1]] == [1, 1, 1]
    # what the page shows first: follow the selected indices down the stacks
    node = box.stack
    while isinstance(node, widgets.Stack):
        node = node.children[node.selected_index]
    assert node.value == "3-y"
    # a partial initial leaves the other controls at their first value
    box = precomputed_explorer(CONTROLS, render, initial={"b": "y"})
    assert [c.index for c in box.controls] == [0, 1]


def test_initial_must_name_known_controls_and_values():
    render, _ = render_recorder()
    with pytest.raises(ValueError, match=re.escape("initial names unknown controls ['c']")):
        precomputed_explorer(CONTROLS, render, initial={"c": 1})
    with pytest.raises(ValueError, match=re.escape("initial value 4 of 'a' is not one of [1, 2, 3]")):
        precomputed_explorer(CONTROLS, render, initial={"a": 4})


def test_header_comes_first():
    header = widgets.HTML("<style>.x{}</style>")
    render, _ = render_recorder()
    box = precomputed_explorer(CONTROLS, render, header=header)
    assert box.children[0] is header
    assert box.children[-1] is box.stack


def test_explorer_needs_controls_with_values():
    render, _ = render_recorder()
    with pytest.raises(ValueError, match="at least one control"):
        precomputed_explorer({}, render)
    with pytest.raises(ValueError, match="at least one value"):
        precomputed_explorer({"a": [1], "b": []}, render)


def test_html_views_share_their_layout():
    v1, v2 = html_view("<b>1</b>"), html_view("<b>2</b>")
    assert isinstance(v1, widgets.HTML) and v1.value == "<b>1</b>"
    assert v1.layout is v2.layout


# --- query_attention_explorer -------------------------------------------------------------------

TEMPS = (0.5, 1.0, 2.0)
NAMES = ["f0", "f1", "f2", "f3", "f4", "f5"]


class _Parse(HTMLParser):
    def __init__(self):
        super().__init__()
        self.bars: list[dict] = []
        self.imgs: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-value" in a:
            self.bars.append(a)
        if tag == "img":
            self.imgs.append(a)


def parse(html_text: str) -> _Parse:
    p = _Parse()
    p.feed(html_text)
    return p


@pytest.fixture(scope="module")
def qa():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 8, 12, generator=g)
    fmap = torch.randn(6, 2, 3, generator=g)
    box = query_attention_explorer(image, fmap, temperatures=TEMPS, feature_names=NAMES)
    return image, fmap, box


def test_query_explorer_has_a_view_per_temperature_and_cell(qa):
    _, fmap, box = qa
    _, h, w = fmap.shape
    assert count_views(box) == len(TEMPS) * h * w == 18
    assert [c.description for c in box.controls] == ["temperature", "row", "column"]


@pytest.mark.parametrize("t", TEMPS)
def test_query_explorer_bars_are_the_context_of_the_cell(qa, t):
    _, fmap, box = qa
    _, h, w = fmap.shape
    for row, col in itertools.product(range(h), range(w)):
        view = explorer_view(box, temperature=t, row=row, column=col)
        bars = parse(view.value).bars
        assert [b["data-name"] for b in bars] == NAMES
        got = np.array([float(b["data-value"]) for b in bars])
        # computed independently: the query is the cell's feature vector, in float64; the view holds
        # values rounded to 4 decimals (computed in float32), so allow half a unit in the 4th decimal
        fm = fmap.double()[None]
        weights, ctx = query_attention(fm, fm[:, :, row, col], temperature=t)
        expected = ctx[0].numpy()
        # the view rounds a float32 value to 4 decimals: at most half a unit in the 4th decimal away
        # from the float64 context, plus float32 rounding
        np.testing.assert_allclose(got, expected, rtol=0, atol=0.5e-4 + 1e-5)


def test_query_explorer_heatmap_is_the_weights_of_the_cell(qa):
    _, fmap, box = qa
    _, h, w = fmap.shape
    for t, row, col in [(0.5, 0, 0), (1.0, 1, 2), (2.0, 0, 1)]:
        view = explorer_view(box, temperature=t, row=row, column=col)
        (img,) = [i for i in parse(view.value).imgs if i["src"].startswith("data:image/png")]
        png = Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1])))
        assert png.size == (w, h)
        lum = np.asarray(png.convert("RGB")).astype(float) @ [0.299, 0.587, 0.114]
        fm = fmap.double()[None]
        weights, _ = query_attention(fm, fm[:, :, row, col], temperature=t)
        # the colour map is monotone: the brightest cell is the most attended one
        assert np.unravel_index(lum.argmax(), lum.shape) == np.unravel_index(int(weights[0].argmax()), (h, w))
        # the query cell is outlined
        m = re.search(r"left:([\d.]+)%;top:([\d.]+)%", view.value)
        assert float(m.group(1)) == pytest.approx(100 * col / w, abs=1e-3)
        assert float(m.group(2)) == pytest.approx(100 * row / h, abs=1e-3)


def test_query_explorer_views_differ_between_cells_and_temperatures(qa):
    _, fmap, box = qa
    _, h, w = fmap.shape
    values = [
        explorer_view(box, temperature=t, row=r, column=c).value
        for t, r, c in itertools.product(TEMPS, range(h), range(w))
    ]
    assert len(set(values)) == len(values)
    bars = {tuple(b["data-value"] for b in parse(v).bars) for v in values}
    assert len(bars) == len(values)


def test_query_explorer_header_carries_the_photo(qa):
    _, _, box = qa
    header = box.children[0]
    assert isinstance(header, widgets.HTML)
    css = re.search(r"\.(va-photo-[0-9a-f]+)\{", header.value).group(1)
    view = explorer_view(box, temperature=1.0, row=0, column=0)
    assert f'class="{css}"' in view.value


def test_query_explorer_validation():
    image = torch.rand(3, 8, 12)
    with pytest.raises(ValueError, match=re.escape("feature_map must be 3-d (C, h, w), got shape (1, 6, 2, 3)")):
        query_attention_explorer(image, torch.randn(1, 6, 2, 3))
    with pytest.raises(ValueError, match="feature_names has 2 entries for 6 channels"):
        query_attention_explorer(image, torch.randn(6, 2, 3), feature_names=["a", "b"])
