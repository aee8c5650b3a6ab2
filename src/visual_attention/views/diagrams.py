"""Diagrams drawn with graphviz, rendered as SVG in the book's pages."""

from __future__ import annotations

import graphviz

__all__ = ["attention_flowchart", "ATTENTION_STEPS"]

#: The steps of attention in computer vision, in order: (node id, label, shape note).
ATTENTION_STEPS = (
    ("image", "Input image", "(B, 3, H₀, W₀)"),
    ("features", "Feature extraction\n(CNN or patch embedding)", "keys = values: (B, C, H, W)"),
    ("query", "Query\n(task state, a location, a class…)", "(B, C)"),
    ("scores", "Scores\neᵢⱼ = ⟨q, xᵢⱼ⟩", "(B, H, W)"),
    ("softmax", "Softmax over positions\n(temperature T)", "weights α: (B, H, W), Σ α = 1"),
    ("weighted", "Weighted sum\nc = Σ αᵢⱼ xᵢⱼ", ""),
    ("context", "Context vector", "(B, C)"),
    ("head", "Task head\n(classify, caption, detect)", "prediction"),
)


def attention_flowchart(rankdir: str = "TB") -> graphviz.Digraph:
    """The attention process as a flowchart, one box per entry of :data:`ATTENTION_STEPS`.

    Feature maps feed both the scores (as keys) and the weighted sum (as values); the query feeds
    the scores. Display the returned object in a notebook to get an SVG; ``.source`` is the DOT
    text.

    Args:
        rankdir: graphviz layout direction, ``"LR"`` (left to right) or ``"TB"`` (top to bottom).

    Returns:
        a :class:`graphviz.Digraph` with 8 nodes and 8 edges.
    """
    if rankdir not in ("LR", "TB"):
        raise ValueError(f"rankdir must be 'LR' or 'TB', got {rankdir!r}")
    g = graphviz.Digraph("attention", format="svg")
    g.attr(
        rankdir=rankdir, bgcolor="transparent", fontname="Helvetica", nodesep="0.35", ranksep="0.4"
    )
    g.attr(
        "node",
        shape="box",
        style="rounded,filled",
        fontname="Helvetica",
        fontsize="11",
        fillcolor="#dbe9f6",
        color="#2b5d8a",
        fontcolor="#10243a",
    )
    g.attr("edge", color="#4a6a8a", fontname="Helvetica", fontsize="9", fontcolor="#4a6a8a")
    for node, label, shape in ATTENTION_STEPS:
        extra = (
            {"fillcolor": "#fde2c8", "color": "#a35a12"} if node in ("query", "context") else {}
        )
        g.node(node, f"{label}\n{shape}" if shape else label, **extra)
    g.edge("image", "features")
    g.edge("features", "scores", label="keys")
    g.edge("query", "scores")
    g.edge("scores", "softmax")
    g.edge("softmax", "weighted", label="weights α")
    g.edge("features", "weighted", label="values")
    g.edge("weighted", "context")
    g.edge("context", "head")
    return g
