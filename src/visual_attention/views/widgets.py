"""One widget toolkit for every chapter: controls that select among views.

:func:`precomputed_explorer` renders a view for every combination of control values when the
notebook runs, and stacks the views in nested :class:`ipywidgets.Stack` widgets. Each control is
``jslink``-ed to the ``selected_index`` of the stacks at its depth, so moving a control switches
views in the browser itself: the widget is live in JupyterLab with a kernel *and* on the static
site with no kernel at all (the views travel in the notebook's saved widget state).

Views can be any widget; :func:`html_view` makes a light one from HTML (see
:mod:`visual_attention.views.viz`).

:class:`AttentionExplorer` goes further where a view is plain maths: the notebook sends the
queries, keys and values as float32 buffers, and the widget's JavaScript
(``static/attention_explorer.js``, an anywidget module) computes the weights and the context vector
in the reader's browser on every interaction, so any query point, temperature, head, layer or
window can be chosen. :func:`reference_attention` is the same computation in PyTorch (the browser
tests compare the two).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as widgets
import numpy as np
import torch
import traitlets as tl
from ipywidgets.widgets.widget_string import HTMLStyle
from matplotlib import colormaps

from .._checks import (
    check_cell,
    check_floating,
    check_int,
    check_positive_number,
    check_size2,
    check_str,
)
from ..core import masked_softmax
from ..local_attention import shifted_window_mask, window_token_index
from .viz import CMAP, data_uri, to_numpy_image

__all__ = [
    "precomputed_explorer",
    "html_view",
    "explorer_view",
    "count_views",
    "AttentionExplorer",
    "attention_explorer",
    "reference_attention",
    "window_keys_mask",
]

_SHARED: dict[str, widgets.Widget] = {}


def html_view(value: str) -> widgets.HTML:
    """An HTML view; all views share one layout and one style model to keep the saved state
    small."""
    check_str("value", value)
    if not _SHARED:
        _SHARED.update(layout=widgets.Layout(), style=HTMLStyle())
    return widgets.HTML(value=value, layout=_SHARED["layout"], style=_SHARED["style"])


def _options(values: Sequence[Any]) -> list[tuple[str, Any]]:
    opts = []
    for v in values:
        opts.append(
            v if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) else (str(v), v)
        )
    if not opts:
        raise ValueError("every control needs at least one value")
    return opts


# Widths in CSS pixels of the parts of an ipywidgets 8 horizontal slider (its stylesheet): the
# description is followed by an 8 px margin; the track's flex basis is
# ``--jp-widgets-inline-width-short`` (148 px) with 7 px margins on either side; the readout, 4 px
# after it, is as wide as its text but at least ``--jp-widgets-inline-width-tiny`` (72 px) and at
# most 148 px (longer labels are clipped inside it, never drawn over the next control).
_CHAR_PX = 8  # generous for the 13 px widget font (about 6.5-7 px a character)
_READOUT_PX = (72, 148)
_TRACK_PX = 7 + 148 + 7
_CONTROL_MIN_PX = 260
_CONTROL_GAP = "2px 16px 2px 2px"  # margin: a gap after each control, so no text meets the next


def _control_layout(description: str, labels: Sequence[str]) -> widgets.Layout:
    """A slider's layout wide enough for its description, its track and its longest readout.

    When every part has its natural width the flex layout inside the slider shrinks nothing, so
    the readout is never squeezed below its text (an overestimate only lengthens the track). The
    width is fixed (``flex: 0 0 auto``: the wrapping row of controls never squeezes a control) and
    a right margin keeps the readout away from the next control's description.
    """
    low, high = _READOUT_PX
    readout = 4 + min(max(low, _CHAR_PX * max(map(len, labels)) + 8), high)
    width = _CHAR_PX * len(description) + 8 + _TRACK_PX + readout
    return widgets.Layout(
        width=f"{max(_CONTROL_MIN_PX, width)}px", flex="0 0 auto", margin=_CONTROL_GAP
    )


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
        a ``VBox`` with attributes ``controls`` (the sliders, in order), ``stack`` (the outer
        Stack) and ``links`` (the ``jslink`` objects). The number of views is the product of the
        numbers of values, so keep the grids coarse. In the page, the controls carry the CSS class
        ``va-controls`` and the views ``va-views`` (the browser tests look for them).
    """
    if not isinstance(controls, Mapping) or not controls:
        raise ValueError(
            f"controls must be a non-empty mapping {{name: values}}, got {controls!r}"
        )
    for name, values in controls.items():
        if not isinstance(values, Sequence) or isinstance(values, str) or not values:
            raise ValueError(f"controls[{name!r}] must be a non-empty sequence, got {values!r}")
    if not callable(render):
        raise ValueError(f"render must be callable, got {type(render).__name__}")
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
            options=opts,
            index=first,
            description=name,
            continuous_update=True,
            style={"description_width": "initial"},
            layout=_control_layout(name, [label for label, _ in opts]),
        )
        for name, opts, first in zip(names, options, start)
    ]
    links: list[widgets.Link] = []

    def build(depth: int, chosen: dict[str, Any]) -> widgets.Widget:
        if depth == len(names):
            return render(**chosen)
        children = [
            build(depth + 1, {**chosen, names[depth]: value}) for _, value in options[depth]
        ]
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
    _check_explorer("explorer", explorer)
    node: widgets.Widget = explorer.stack
    for slider in explorer.controls:
        name = slider.description
        if name not in values:
            raise ValueError(f"missing a value for control {name!r}")
        choices = [value for _, value in slider.options]
        if values[name] not in choices:
            raise ValueError(
                f"{name} = {values[name]!r} is not a value of control {name!r}; choose from "
                f"{choices}"
            )
        index = choices.index(values[name])
        node = node.children[index]
    return node


def _check_explorer(name: str, explorer: object) -> None:
    """An explorer made by :func:`precomputed_explorer` (a box with ``controls`` and ``stack``)."""
    if not (isinstance(explorer, widgets.VBox) and hasattr(explorer, "stack")):
        raise ValueError(
            f"{name} must be an explorer made by precomputed_explorer, got "
            f"{type(explorer).__name__}"
        )


def count_views(explorer: widgets.VBox) -> int:
    """Number of leaf views held by an explorer."""
    _check_explorer("explorer", explorer)

    def leaves(w: widgets.Widget) -> int:
        return sum(leaves(c) for c in w.children) if isinstance(w, widgets.Stack) else 1

    return leaves(explorer.stack)


# --- attention computed in the browser
# ------------------------------------------------------------


_STATIC = Path(__file__).parent / "static"


def _as_lhnd(name: str, t, expected_n: int | None = None):
    """``(N, d)``, ``(H, N, d)`` or ``(L, H, N, d)`` floating tensor → float32 ``(L, H, N, d)``."""

    check_floating(name, t)
    if t.ndim not in (2, 3, 4):
        raise ValueError(
            f"{name} must be (N, d), (H, N, d) or (L, H, N, d), got shape {tuple(t.shape)}"
        )
    t = t.detach().to(torch.float32).cpu()
    while t.ndim < 4:
        t = t[None]
    if expected_n is not None and t.shape[2] != expected_n:
        raise ValueError(
            f"{name} has {t.shape[2]} tokens, expected {expected_n} (shape {tuple(t.shape)})"
        )
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite")
    return t.contiguous()


def window_keys_mask(
    grid: tuple[int, int], query: int, window: int, shift: int = 0, prefix: int = 0
):
    """Which tokens grid token ``query`` may attend to under (shifted) window attention: bool
    ``(N,)``.

    The same rule as :class:`visual_attention.local_attention.ShiftedWindowAttention` (built from
    its :func:`~visual_attention.local_attention.window_token_index` and
    :func:`~visual_attention.local_attention.shifted_window_mask`); ``prefix`` extra tokens (a
    class token) come first and are never inside a window. ``window = 0`` means global attention.
    """

    gh, gw = check_size2("grid", grid)
    n = check_int("prefix", prefix, minimum=0) + gh * gw
    check_int("window", window, minimum=0)
    check_int("shift", shift, minimum=0)
    if not prefix <= check_int("query", query) < n:
        raise ValueError(f"query must be a grid token in [{prefix}, {n}), got {query}")
    if window == 0:
        return torch.ones(n, dtype=torch.bool)
    index = window_token_index(gh, gw, window, shift)  # (nW, M²): grid index of each window slot
    allowed = shifted_window_mask(gh, gw, window, shift)  # (nW, M², M²)
    win, slot = (index == query - prefix).nonzero()[0].tolist()
    mask = torch.zeros(n, dtype=torch.bool)
    mask[prefix + index[win][allowed[win, slot]]] = True
    return mask


def reference_attention(
    queries,
    keys,
    values,
    query: int,
    *,
    scale: float = 1.0,
    temperature: float = 1.0,
    layer: int = 0,
    head: int = 0,
    grid: tuple[int, int] | None = None,
    prefix: int = 0,
    window: int = 0,
    shift: int = 0,
):
    """What :class:`AttentionExplorer` draws, computed with
    :func:`visual_attention.core.masked_softmax`.

    ``a = softmax(scale · q kᵀ / T)`` over the keys the query may attend to (all of them, or those
    of its shifted window, see :func:`window_keys_mask`), and ``c = a V``, for query token
    ``query`` of ``(layer, head)``.

    Args:
        queries, keys: ``(L, H, N, d)`` (or ``(H, N, d)``, ``(N, d)``).
        values: ``(L, H, N, dv)`` (or fewer leading dimensions).
        query: index of the query token in ``[0, N)``.
        scale, temperature: logits are ``scale · ⟨q, k⟩ / temperature``.
        layer, head: which projections to use.
        grid: ``(h, w)`` of the image tokens (needed for windows); ``prefix`` tokens come before
            them.
        window, shift: window size ``M`` (``0`` = global) and cyclic shift ``s``.

    Returns:
        ``(weights (N,), context (dv,))`` in the dtype of the inputs.
    """

    for name, t in (("queries", queries), ("keys", keys), ("values", values)):
        check_floating(name, t)
    check_positive_number("scale", scale)
    check_positive_number("temperature", temperature)
    for name, value in (("layer", layer), ("head", head), ("prefix", prefix), ("query", query)):
        check_int(name, value, minimum=0)
    if grid is not None:
        check_size2("grid", grid)
    q = _as_lhnd("queries", queries) if queries.ndim < 4 else queries
    k = _as_lhnd("keys", keys) if keys.ndim < 4 else keys
    v = _as_lhnd("values", values) if values.ndim < 4 else values
    if q.shape[:3] != k.shape[:3] or q.shape[-1] != k.shape[-1] or v.shape[:3] != k.shape[:3]:
        raise ValueError(
            f"queries (L, H, N, d), keys (L, H, N, d) and values (L, H, N, dv) must agree, got "
            f"{tuple(q.shape)}, {tuple(k.shape)} and {tuple(v.shape)}"
        )
    n = q.shape[2]
    if not 0 <= query < n:
        raise ValueError(f"query must be a token index in [0, {n}), got {query}")
    if layer >= q.shape[0] or head >= q.shape[1]:
        raise ValueError(
            f"layer {layer} and head {head} must index the (L, H) = {tuple(q.shape[:2])} maps"
        )
    logits = scale * (k[layer, head] @ q[layer, head, query])  # (N,)
    mask = None
    if window:
        if grid is None:
            raise ValueError("window attention needs the token grid (h, w)")
        mask = window_keys_mask(grid, query, window, shift, prefix)
    weights = masked_softmax(logits, dim=-1, mask=mask, temperature=temperature)
    return weights, weights @ v[layer, head]


def _check_explorer_numbers(scale, temperature, temperature_range, layer, head, window, shift):
    """Validate the numeric arguments of :func:`attention_explorer`."""
    check_positive_number("scale", scale)
    check_positive_number("temperature", temperature)
    if not isinstance(temperature_range, Sequence) or len(temperature_range) != 2:
        raise ValueError(f"temperature_range must be (low, high), got {temperature_range!r}")
    low = check_positive_number("temperature_range[0]", temperature_range[0])
    if check_positive_number("temperature_range[1]", temperature_range[1]) <= low:
        raise ValueError(f"temperature_range must have low < high, got {temperature_range!r}")
    for name, value in (("layer", layer), ("head", head), ("window", window), ("shift", shift)):
        check_int(name, value, minimum=0)


def _check_explorer_names(
    controls,
    window_sizes,
    layer_label,
    layer_names,
    head_names,
    value_names,
    context_title,
    display_size,
    label,
):
    """Validate the controls, sizes and labels of :func:`attention_explorer`."""
    for name, value in (
        ("controls", controls),
        ("layer_names", layer_names),
        ("head_names", head_names),
        ("value_names", value_names),
    ):
        if (
            isinstance(value, str)
            or not isinstance(value, Sequence)
            or not all(isinstance(v, str) for v in value)
        ):
            raise ValueError(f"{name} must be a sequence of strings, got {value!r}")
    if isinstance(window_sizes, str) or not isinstance(window_sizes, Sequence):
        raise ValueError(f"window_sizes must be a sequence of positive ints, got {window_sizes!r}")
    for m in window_sizes:
        check_int("window_sizes", m, minimum=1)
    for name, value in (
        ("layer_label", layer_label),
        ("context_title", context_title),
        ("label", label),
    ):
        check_str(name, value)
    if display_size is not None:
        check_size2("display_size", display_size)


class AttentionExplorer(anywidget.AnyWidget):
    """A live view of attention whose weights and context are computed in the reader's browser.

    Build it with :func:`attention_explorer`. Traits the reader changes (``query``,
    ``temperature``, ``layer``, ``head``, ``window``, ``shift``) sync back to Python when a kernel
    runs, so a notebook can read them or call :meth:`compute` for the same numbers in PyTorch.
    """

    _esm = _STATIC / "attention_explorer.js"

    label = tl.Unicode("").tag(sync=True)
    shape = tl.List(tl.Int()).tag(sync=True)  # [L, H, N, d, dv]
    grid = tl.List(tl.Int()).tag(sync=True)  # [h, w]
    prefix = tl.Int(0).tag(sync=True)
    query_buffer = tl.Bytes(b"").tag(sync=True)  # float32 (L, H, N, d), little-endian
    key_buffer = tl.Bytes(b"").tag(sync=True)
    value_buffer = tl.Bytes(b"").tag(sync=True)  # float32 (L, H, N, dv)
    scale = tl.Float(1.0).tag(sync=True)
    query = tl.Int(0).tag(sync=True)
    layer = tl.Int(0).tag(sync=True)
    head = tl.Int(0).tag(sync=True)
    temperature = tl.Float(1.0).tag(sync=True)
    temperature_range = tl.List(tl.Float(), [0.01, 10.0]).tag(sync=True)
    window = tl.Int(0).tag(sync=True)
    shift = tl.Int(0).tag(sync=True)
    window_sizes = tl.List(tl.Int()).tag(sync=True)
    controls = tl.List(tl.Unicode()).tag(sync=True)
    layer_label = tl.Unicode("layer").tag(sync=True)
    layer_names = tl.List(tl.Unicode()).tag(sync=True)
    head_names = tl.List(tl.Unicode()).tag(sync=True)
    value_names = tl.List(tl.Unicode()).tag(sync=True)
    value_max = tl.Float(1.0).tag(sync=True)
    context_title = tl.Unicode("context vector c").tag(sync=True)
    image = tl.Unicode("").tag(sync=True)  # data: URI of the (grey) photo
    display_size = tl.List(tl.Int(), [256, 256]).tag(sync=True)
    alpha = tl.Float(0.75).tag(sync=True)
    colormap = tl.Bytes(b"").tag(sync=True)  # 256 × RGB uint8

    @tl.validate("query")
    def _valid_query(self, proposal):
        n = self.shape[2] if self.shape else 0
        if not 0 <= proposal["value"] < max(n, 1):
            raise tl.TraitError(
                f"query must be a token index in [0, {n}), got {proposal['value']}"
            )
        return proposal["value"]

    @tl.validate("temperature")
    def _valid_temperature(self, proposal):
        t = proposal["value"]
        if not 0 < t < math.inf:
            raise tl.TraitError(f"temperature must be positive and finite, got {t}")
        return t

    @tl.validate("window")
    def _valid_window(self, proposal):
        m = proposal["value"]
        if m and m not in self.window_sizes:
            raise tl.TraitError(
                f"window must be 0 (global) or one of {list(self.window_sizes)}, got {m}"
            )
        return m

    def arrays(self):
        """``(queries, keys, values)`` as float32 tensors ``(L, H, N, d)``, ``(L, H, N, d)``, ``(L,
        H, N, dv)``."""

        nl, nh, n, d, dv = self.shape

        def decode(raw, width):
            return torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy()).reshape(
                nl, nh, n, width
            )

        return (
            decode(self.query_buffer, d),
            decode(self.key_buffer, d),
            decode(self.value_buffer, dv),
        )

    def compute(self, **state):
        """``(weights (N,), context (dv,))`` for the current controls (or those given), in
        PyTorch."""
        cur = {
            name: getattr(self, name)
            for name in ("query", "layer", "head", "temperature", "window", "shift")
        }
        cur.update(state)
        q, k, v = self.arrays()
        return reference_attention(
            q,
            k,
            v,
            cur.pop("query"),
            scale=self.scale,
            grid=tuple(self.grid),
            prefix=self.prefix,
            **cur,
        )


def attention_explorer(
    queries,
    keys=None,
    values=None,
    *,
    grid: tuple[int, int],
    image=None,
    prefix: int = 0,
    scale: float = 1.0,
    temperature: float = 1.0,
    temperature_range: tuple[float, float] = (0.01, 10.0),
    query: tuple[int, int] | int = 0,
    layer: int = 0,
    head: int = 0,
    window: int = 0,
    shift: int = 0,
    window_sizes: Sequence[int] = (),
    controls: Sequence[str] = ("temperature",),
    layer_label: str = "layer",
    layer_names: Sequence[str] = (),
    head_names: Sequence[str] = (),
    value_names: Sequence[str] = (),
    context_title: str = "context vector c",
    display_size: tuple[int, int] | None = None,
    label: str = "",
) -> AttentionExplorer:
    """An :class:`AttentionExplorer` over the tokens of an image grid.

    Args:
        queries: ``(N, d)``, ``(H, N, d)`` or ``(L, H, N, d)``: the query of every token for every
            layer and head; ``N = prefix + h·w`` (extra tokens such as a class token first, then
            the grid in row-major order).
        keys: same shape (default: ``queries``).
        values: ``(…, N, dv)`` with the same leading dimensions (default: ``keys``).
        grid: ``(h, w)`` of the image tokens.
        image: optional ``(3, H, W)`` photo in ``[0, 1]`` drawn (grey) under the heatmap.
        scale: logits are ``scale · ⟨q, k⟩ / T`` (e.g. ``1/√d``).
        temperature, temperature_range: first ``T`` and the slider's range (log scale).
        query: first query, a token index or a ``(row, col)`` grid cell.
        layer, head, window, shift: first values of those controls.
        window_sizes: window sizes offered (each must divide ``h`` and ``w``); ``0`` = global.
        controls: which controls to show, among ``temperature``, ``layer``, ``head``, ``window``,
            ``shift`` (the query is always set by clicking, dragging or the arrow keys).
        layer_label, layer_names, head_names, value_names: labels (``value_names``: one per value
            dimension, for the context bars).
        display_size: drawn ``(height, width)`` in CSS pixels.
        label: a name for the widget on its page (tests find it by ``data-label``).
    """

    gh, gw = check_size2("grid", grid)
    n = check_int("prefix", prefix, minimum=0) + gh * gw
    _check_explorer_numbers(scale, temperature, temperature_range, layer, head, window, shift)
    _check_explorer_names(
        controls,
        window_sizes,
        layer_label,
        layer_names,
        head_names,
        value_names,
        context_title,
        display_size,
        label,
    )
    q = _as_lhnd("queries", queries, n)
    k = _as_lhnd("keys", keys, n) if keys is not None else q
    v = _as_lhnd("values", values, n) if values is not None else k
    if q.shape != k.shape:
        raise ValueError(
            f"queries and keys must have the same shape (L, H, N, d), got {tuple(q.shape)} and "
            f"{tuple(k.shape)}"
        )
    if v.shape[:3] != q.shape[:3]:
        raise ValueError(
            f"values must be (L, H, N, dv) with (L, H, N) = {tuple(q.shape[:3])}, got "
            f"{tuple(v.shape)}"
        )
    unknown = set(controls) - {"temperature", "layer", "head", "window", "shift"}
    if unknown:
        raise ValueError(
            f"controls must be among temperature, layer, head, window, shift; unknown: "
            f"{sorted(unknown)}"
        )
    for m in window_sizes:
        if m <= 0 or gh % m or gw % m:
            raise ValueError(f"window size {m} must divide the grid {gh}×{gw}")
    if window_sizes and prefix:
        raise ValueError("window attention is defined on grid tokens only (prefix must be 0)")
    if isinstance(query, tuple):
        r, c = check_cell("query", query, (gh, gw))
        query = prefix + r * gw + c
    if not 0 <= check_int("query", query) < n:
        raise ValueError(
            f"query must be a token index in [0, {n}) or a (row, col) cell, got {query}"
        )
    if layer >= q.shape[0] or head >= q.shape[1]:
        raise ValueError(
            f"layer {layer} and head {head} must index the (L, H) = {tuple(q.shape[:2])} maps"
        )
    dv = v.shape[-1]
    if value_names and len(value_names) != dv:
        raise ValueError(f"value_names has {len(value_names)} names for {dv} value dimensions")
    lut = (colormaps[CMAP](np.linspace(0, 1, 256))[:, :3] * 255 + 0.5).astype(np.uint8)
    photo = ""
    if image is not None:
        arr = to_numpy_image(image)
        lum = np.clip(arr @ np.array([0.299, 0.587, 0.114]) + 0.5, 0, 255).astype(np.uint8)
        photo = data_uri(np.repeat(lum[..., None], 3, axis=-1), fmt="jpeg", quality=85)
        size = display_size or (2 * arr.shape[0], 2 * arr.shape[1])
    else:
        size = display_size or (16 * gh, 16 * gw)
    widget = AttentionExplorer(
        label=label,
        shape=[*q.shape, dv],
        grid=[gh, gw],
        prefix=prefix,
        query_buffer=q.numpy().astype("<f4").tobytes(),
        key_buffer=k.numpy().astype("<f4").tobytes(),
        value_buffer=v.numpy().astype("<f4").tobytes(),
        scale=float(scale),
        temperature_range=[float(x) for x in temperature_range],
        window_sizes=list(window_sizes),
        controls=list(controls),
        layer_label=layer_label,
        layer_names=list(layer_names),
        head_names=list(head_names),
        value_names=list(value_names),
        value_max=float(v.abs().max()) or 1.0,
        context_title=context_title,
        image=photo,
        display_size=[int(size[0]), int(size[1])],
        colormap=lut.tobytes(),
    )
    widget.set_trait("temperature", float(temperature))
    widget.set_trait("window", int(window))
    widget.shift, widget.layer, widget.head, widget.query = (
        int(shift),
        int(layer),
        int(head),
        int(query),
    )
    return widget
