"""One widget toolkit for every chapter: controls that select among views.

:func:`precomputed_explorer` renders a view for every combination of control values when the
notebook runs, and stacks the views in nested :class:`ipywidgets.Stack` widgets. Each control is
``jslink``-ed to the ``selected_index`` of the stacks at its depth, so moving a control switches views
in the browser itself: the widget is live in JupyterLab with a kernel *and* on the static site with no
kernel at all (the views travel in the notebook's saved widget state).

Views can be any widget; :func:`html_view` makes a light one from HTML (see :mod:`visual_attention.viz`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets
from ipywidgets.widgets.widget_string import HTMLStyle

__all__ = ["precomputed_explorer", "html_view", "explorer_view", "count_views"]

_SHARED: dict[str, widgets.Widget] = {}


def html_view(value: str) -> widgets.HTML:
    """An HTML view; all views share one layout and one style model to keep the saved state small."""
    if not _SHARED:
        _SHARED.update(layout=widgets.Layout(), style=HTMLStyle())
    return widgets.HTML(value=value, layout=_SHARED["layout"], style=_SHARED["style"])


def _options(values: Sequence[Any]) -> list[tuple[str, Any]]:
    opts = []
    for v in values:
        opts.append(v if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) else (str(v), v))
    if not opts:
        raise ValueError("every control needs at least one value")
    return opts


def precomputed_explorer(
    controls: Mapping[str, Sequence[Any]],
    render: Callable[..., widgets.Widget],
    header: widgets.Widget | None = None,
    initial: Mapping[str, Any] | None = None,
) -> widgets.VBox:
    """Build a widget whose sliders pick among views rendered in advance.

    Args:
        controls: ordered ``{name: values}``; each value may be a ``(label, value)`` pair. One
            :class:`~ipywidgets.SelectionSlider` is made per entry.
        render: called as ``render(**{name: value})`` for every combination of values; returns the
            widget to show for it (e.g. :func:`html_view`).
        header: optional widget shown above the controls (e.g. a ``<style>`` the views share).
        initial: optional ``{name: value}`` shown first (default: each control's first value).

    Returns:
        a ``VBox`` with attributes ``controls`` (the sliders, in order), ``stack`` (the outer Stack)
        and ``links`` (the ``jslink`` objects). The number of views is the product of the numbers of
        values, so keep the grids coarse. In the page, the controls carry the CSS class
        ``va-controls`` and the views ``va-views`` (the browser tests look for them).
    """
    if not controls:
        raise ValueError("precomputed_explorer needs at least one control")
    names = list(controls)
    options = [_options(controls[n]) for n in names]
    initial = dict(initial or {})
    unknown = set(initial) - set(names)
    if unknown:
        raise ValueError(f"initial names unknown controls {sorted(unknown)}; controls are {names}")
    start = []
    for name, opts in zip(names, options):
        values = [v for _, v in opts]
        if name in initial and initial[name] not in values:
            raise ValueError(f"initial value {initial[name]!r} of {name!r} is not one of {values}")
        start.append(values.index(initial[name]) if name in initial else 0)
    sliders = [
        widgets.SelectionSlider(
            options=opts, index=first, description=name, continuous_update=True,
            style={"description_width": "initial"}, layout=widgets.Layout(width="260px"),
        )
        for name, opts, first in zip(names, options, start)
    ]
    links: list[widgets.Link] = []

    def build(depth: int, chosen: dict[str, Any]) -> widgets.Widget:
        if depth == len(names):
            return render(**chosen)
        children = [build(depth + 1, {**chosen, names[depth]: value}) for _, value in options[depth]]
        stack = widgets.Stack(children=children, selected_index=start[depth])
        links.append(widgets.jslink((sliders[depth], "index"), (stack, "selected_index")))
        return stack

    stack = build(0, {})
    stack.add_class("va-views")
    panel = widgets.HBox(sliders, layout=widgets.Layout(flex_flow="row wrap"))
    panel.add_class("va-controls")
    parts = ([header] if header is not None else []) + [panel, stack]
    box = widgets.VBox(parts)
    box.controls, box.stack, box.links = sliders, stack, links
    return box


def explorer_view(explorer: widgets.VBox, **values: Any) -> widgets.Widget:
    """The view an explorer shows for the given control values (by name); for tests and scripts."""
    node: widgets.Widget = explorer.stack
    for slider in explorer.controls:
        name = slider.description
        if name not in values:
            raise ValueError(f"missing a value for control {name!r}")
        choices = [value for _, value in slider.options]
        if values[name] not in choices:
            raise ValueError(f"{values[name]!r} is not a value of control {name!r}; choose from {choices}")
        index = choices.index(values[name])
        node = node.children[index]
    return node


def count_views(explorer: widgets.VBox) -> int:
    """Number of leaf views held by an explorer."""
    def leaves(w: widgets.Widget) -> int:
        return sum(leaves(c) for c in w.children) if isinstance(w, widgets.Stack) else 1

    return leaves(explorer.stack)


def query_attention_explorer(
    image,
    feature_map,
    temperatures: Sequence[float] = (0.05, 0.1, 0.2, 0.5),
    feature_names: Sequence[str] | None = None,
    scale: float = 1.0,
    display_size: tuple[int, int] | None = None,
    initial: Mapping[str, Any] | None = None,
) -> widgets.VBox:
    """Pick a query cell of a feature map and a temperature; see the weights over the photo and the context.

    The query is the feature vector of the chosen cell, and :func:`visual_attention.core.query_attention`
    gives the weights over all cells and the context vector, drawn as a heatmap over ``image`` and as
    labelled bars.

    Args:
        image: ``(3, H, W)`` photo in ``[0, 1]``.
        feature_map: ``(C, h, w)`` features, one vector per cell (e.g. from ``patch_features``).
        temperatures: the softmax temperatures offered by the slider.
        feature_names: ``C`` labels for the context bars.
        scale: multiplier of the dot products.
        display_size: drawn ``(height, width)`` in CSS pixels (default: twice the photo's size).
        initial: optional first ``{"temperature": t, "row": r, "column": c}``.

    Returns:
        an explorer (see :func:`precomputed_explorer`) with controls ``temperature``, ``row`` and ``column``.
    """
    import torch

    from ._checks import check_rank
    from .core import query_attention
    from .viz import VIEW_CSS, attention_overlay_html, bars_html, photo_style

    check_rank("feature_map", feature_map, exactly=3, expected="(C, h, w)")
    c, h, w = feature_map.shape
    names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(c)]
    if len(names) != c:
        raise ValueError(f"feature_names has {len(names)} entries for {c} channels")
    size = display_size or (2 * image.shape[-2], 2 * image.shape[-1])
    css_class, style_tag = photo_style(image)
    fmap = feature_map[None].expand(h * w, c, h, w)
    queries = feature_map.reshape(c, h * w).T  # (h*w, C): the query of every cell
    results = {}
    for t in temperatures:  # all cells at once: a batch of h*w queries
        with torch.no_grad():
            results[t] = query_attention(fmap, queries, scale=scale, temperature=float(t))
    vmax = max(float(ctx.abs().max()) for _, ctx in results.values())

    def render(row: int, column: int, temperature: float) -> widgets.Widget:
        weights, context = results[temperature]
        k = row * w + column
        caption = f"query cell ({row}, {column}) · T = {temperature} · max weight {float(weights[k].max()):.3f}"
        left = attention_overlay_html(css_class, weights[k], size, query=(row, column), caption=caption)
        right = bars_html(context[k].tolist(), names, title="context vector c", vmax=vmax)
        return html_view(f'<div class="va-flex">{left}{right}</div>')

    header = widgets.HTML(VIEW_CSS + style_tag)
    return precomputed_explorer(
        # fewest values outermost: fewer Stack widgets and links in the saved state
        {"temperature": list(temperatures), "row": list(range(h)), "column": list(range(w))},
        render,
        header=header,
        initial=initial,
    )
