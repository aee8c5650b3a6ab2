"""Tests of visual_attention.views.widgets: the precomputed explorer."""

from __future__ import annotations

import itertools
import re

import ipywidgets as widgets
import pytest
from ipywidgets.widgets.widget_link import Link

from visual_attention.views.widgets import (
    count_views,
    explorer_view,
    html_view,
    precomputed_explorer,
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
    with pytest.raises(ValueError, match="controls must be a non-empty mapping"):
        precomputed_explorer({}, render)
    with pytest.raises(ValueError, match="must be a non-empty sequence"):
        precomputed_explorer({"a": [1], "b": []}, render)


def test_html_views_share_their_layout():
    v1, v2 = html_view("<b>1</b>"), html_view("<b>2</b>")
    assert isinstance(v1, widgets.HTML) and v1.value == "<b>1</b>"
    assert v1.layout is v2.layout


# The widget font (13 px) sets about 7 px a character; ipywidgets 8 draws a horizontal slider as its
# description, an 8 px gap, a track of flex basis 148 px with 7 px margins, then a 4 px gap and a
# readout at least 72 px and at most 148 px wide (see views.widgets._control_layout).
LONG_CONTROLS = {"example": [("#0 (digit 0)", 0), ("#1 (digit 7)", 1)], "block": [1, 2, 3]}


def _px(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)px", value or "")
    assert match, f"expected a width in px, got {value!r}"
    return float(match.group(1))


@pytest.mark.parametrize(
    "controls",
    [
        LONG_CONTROLS,
        CONTROLS,
        {"a rather long control name": ["short", "an extremely long option label here"]},
    ],
)
def test_each_control_reserves_room_for_its_description_track_and_readout(controls):
    box = precomputed_explorer(controls, lambda **kw: html_view(repr(kw)))
    for slider in box.controls:
        longest = max(len(label) for label in slider._options_labels)
        readout = min(max(72, 7 * longest), 148)
        needed = 7 * len(slider.description) + 8 + (7 + 148 + 7) + 4 + readout
        assert _px(slider.layout.width) >= needed, (slider.description, slider.layout.width, needed)
        # a fixed width the wrapping row never shrinks, and a gap before the next control
        assert slider.layout.flex == "0 0 auto"
        margin = (slider.layout.margin or "").split()
        assert len(margin) == 4 and _px(margin[1]) >= 8, slider.layout.margin
