"""Tests of visual_attention.views.diagrams: the attention flowchart, as DOT source and as rendered SVG."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import graphviz
import pytest

from visual_attention.views.diagrams import ATTENTION_STEPS, attention_flowchart

SVG = "{http://www.w3.org/2000/svg}"

EDGES = {
    ("image", "features"),
    ("features", "scores"),
    ("query", "scores"),
    ("scores", "softmax"),
    ("softmax", "weighted"),
    ("features", "weighted"),
    ("weighted", "context"),
    ("context", "head"),
}


def render(rankdir: str) -> ET.Element:
    svg = attention_flowchart(rankdir).pipe(format="svg")
    assert isinstance(svg, bytes)
    text = svg.decode("utf-8")
    assert "<svg" in text
    return ET.fromstring(svg)


def groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == cls]


def texts(g: ET.Element) -> list[str]:
    return [t.text or "" for t in g.iter(f"{SVG}text")]


def label_lines(label: str, shape: str) -> list[str]:
    return (f"{label}\n{shape}" if shape else label).split("\n")


def test_steps_are_eight_distinct_nodes():
    ids = [node for node, _, _ in ATTENTION_STEPS]
    assert len(ids) == len(set(ids)) == 8
    assert {n for edge in EDGES for n in edge} == set(ids)


@pytest.mark.parametrize("rankdir", ["LR", "TB"])
def test_flowchart_source(rankdir):
    g = attention_flowchart(rankdir)
    assert isinstance(g, graphviz.Digraph)
    assert re.search(rf"rankdir={rankdir}\b", g.source)
    found = set(re.findall(r"^\s*(\w+)\s*->\s*(\w+)", g.source, flags=re.M))
    assert found == EDGES


@pytest.mark.parametrize("rankdir", ["LR", "TB"])
def test_flowchart_renders_eight_labelled_nodes(rankdir):
    root = render(rankdir)
    nodes = groups(root, "node")
    assert len(nodes) == 8
    by_id = {n.find(f"{SVG}title").text: n for n in nodes}
    assert set(by_id) == {node for node, _, _ in ATTENTION_STEPS}
    for node, label, shape in ATTENTION_STEPS:
        shown = [t.strip() for t in texts(by_id[node])]
        assert shown == [line.strip() for line in label_lines(label, shape)], node


@pytest.mark.parametrize("rankdir", ["LR", "TB"])
def test_flowchart_renders_eight_edges_with_labels(rankdir):
    root = render(rankdir)
    edges = groups(root, "edge")
    assert len(edges) == 8
    pairs = {tuple(e.find(f"{SVG}title").text.split("->")) for e in edges}
    assert pairs == EDGES
    labels = {t.strip() for e in edges for t in texts(e)}
    assert {"keys", "values", "weights α"} <= labels


def test_layout_direction_changes_the_drawing():
    def size(root):
        return float(root.get("width").removesuffix("pt")), float(root.get("height").removesuffix("pt"))

    lr_w, lr_h = size(render("LR"))
    tb_w, tb_h = size(render("TB"))
    assert lr_w / lr_h > tb_w / tb_h  # left-to-right is the wider drawing


def test_default_layout_is_valid():
    assert re.search(r"rankdir=(LR|TB)\b", attention_flowchart().source)


@pytest.mark.parametrize("rankdir", ["lr", "RL", "BT", ""])
def test_bad_rankdir(rankdir):
    with pytest.raises(ValueError, match=re.escape(f"rankdir must be 'LR' or 'TB', got {rankdir!r}")):
        attention_flowchart(rankdir)
