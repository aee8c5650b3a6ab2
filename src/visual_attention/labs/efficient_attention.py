"""The lab of the efficient attention chapter: what cheaper attention costs and what it changes.

* :func:`online_softmax_explorer` — a widget that steps through the online softmax on a photo.
* :data:`METHODS`, :func:`measure_cost`, :func:`loglog_slope` — time and peak memory
  (:func:`~visual_attention.labs.common.peak_memory`) of global, chunked, window and linear
  attention against the number of tokens, and the slopes of their log-log curves (2 for
  quadratic, 1 for linear).
* :func:`linear_weights`, :func:`linear_vs_softmax` — the weights linear attention implies, and
  how far its output and weights are from softmax attention's on the same queries, keys, values.
* :func:`weights_explorer` — a widget: softmax and linear attention weights of a query patch side
  by side, at several temperatures.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .._checks import (
    check_cell,
    check_choice,
    check_int,
    check_int_sequence,
    check_number,
    check_positive_int,
    check_positive_number,
    check_qkv,
    check_size2,
    check_tensor,
)
from ..core import scaled_dot_product_attention
from ..efficient import chunked_attention, linear_attention, online_softmax_trace
from ..local_attention import window_partition
from ..views import viz, widgets
from .common import peak_memory

__all__ = [
    "online_softmax_explorer",
    "METHODS",
    "measure_cost",
    "loglog_slope",
    "linear_weights",
    "linear_vs_softmax",
    "weights_explorer",
]


def online_softmax_explorer(
    image: torch.Tensor,
    features: torch.Tensor,
    feature_names,
    queries,
    chunk_sizes=(8, 16, 32, 48),
    scale: float = 5.0,
    display_size=None,
):
    """A widget that steps through the online softmax for a query patch of a photo.

    Keys are the ``h·w`` patches in reading order, processed ``chunk_size`` at a time: the heatmap
    shows the softmax over the patches seen so far, the bars the output ``o / l`` so far; after the
    last block both equal full attention. Controls: chunk size, block (steps past the last block
    show the final state), query patch.

    Args:
        image: ``(3, H, W)`` photo.
        features: ``(C, h, w)`` patch features.
        feature_names: ``C`` labels.
        queries: ``(row, col)`` query patches.
        chunk_sizes: block sizes.
        scale: score multiplier.
        display_size: drawn ``(height, width)``; ``None`` is twice the photo's size.
    """

    check_tensor("image", image, "(C, H, W)")
    c, h, w = check_tensor("features", features, "(C, h, w)")
    if isinstance(feature_names, (str, bytes)) or not isinstance(feature_names, Sequence):
        raise ValueError(
            f"feature_names must be a sequence of {c} names, got {feature_names!r:.60}"
        )
    if len(feature_names) != c:
        raise ValueError(f"feature_names has {len(feature_names)} entries for {c} channels")
    _check_queries(queries, (h, w)), check_int_sequence("chunk_sizes", chunk_sizes)
    check_positive_number("scale", scale)
    if display_size is not None:
        check_size2("display_size", display_size)
    keys = features.reshape(c, h * w).T
    size = display_size or (2 * image.shape[-2], 2 * image.shape[-1])
    css, style = viz.photo_style(image)
    traces = {
        (cs, q): online_softmax_trace(keys[q[0] * w + q[1]], keys, keys, cs, scale)
        for cs in chunk_sizes
        for q in queries
    }
    steps = max(len(t) for t in traces.values())

    def render(chunk, block, query):
        chunk_size = chunk
        trace = traces[(chunk_size, query)]
        state = trace[min(block, len(trace)) - 1]
        done = block >= len(trace)
        cap = (
            f"block {min(block, len(trace))} of {len(trace)} ({chunk_size} keys each)"
            f"{' — done: full attention' if done else ''} · m = {float(state['max']):.3f} · "
            f"l = {float(state['sum']):.3f}"
        )
        left = viz.attention_overlay_html(
            css, state["weights"].reshape(h, w), size, query=query, caption=cap
        )
        right = viz.bars_html(
            state["output"].tolist(), list(feature_names), title="output o / l so far", vmax=1.0
        )
        return widgets.html_view(f'<div class="va-flex">{left}{right}</div>')

    return widgets.precomputed_explorer(
        {
            "chunk": list(chunk_sizes),
            "block": list(range(1, steps + 1)),
            "query": [(f"{r},{cc}", (r, cc)) for r, cc in queries],
        },
        render,
        header=widgets.widgets.HTML(viz.VIEW_CSS + style),
    )


def _window(t: torch.Tensor, side: int, window: int = 8) -> torch.Tensor:
    """Self-attention of ``t`` ``(1, side², D)`` inside ``window × window`` windows of the grid."""
    w = window_partition(t.reshape(1, side, side, t.shape[-1]), min(window, side)).flatten(1, 2)
    return scaled_dot_product_attention(w, w, w)[0]  # (windows, window², D)


#: Self-attention of ``t`` ``(1, n, D)`` on a ``side × side`` grid of tokens (``n = side²``),
#: four ways: ``{name: fn(t, side)}``. Global attention builds the ``(n, n)`` weights; chunked
#: attention the same numbers 128 keys at a time; window attention ``8 × 8`` windows (Swin);
#: linear attention ``φ(q) (φ(K)ᵀ V)``.
METHODS: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "global": lambda t, side: scaled_dot_product_attention(t, t, t)[0],
    "chunked (128)": lambda t, side: chunked_attention(t, t, t, chunk_size=128),
    "window 8×8": _window,
    "linear": lambda t, side: linear_attention(t, t, t),
}


def measure_cost(
    sides: dict[str, Sequence[int]],
    dim: int = 64,
    repeats: int = 7,
    seed: int = 0,
    statistic: str = "median",
) -> dict[str, list[tuple[int, float, int]]]:
    """Time and peak memory of one forward pass of each method of :data:`METHODS` on random tokens.

    Args:
        sides: ``{method: grid sides}``; the tokens are ``(1, side², dim)``.
        dim: token dimension.
        repeats: timed calls per size (after one warm-up call).
        seed: seeds the tokens.
        statistic: ``"median"`` or ``"min"`` of the timed calls; other work on the machine only
            ever adds time, so the minimum is the steadier estimate of a method's own cost.

    Returns:
        ``{method: [(tokens n, seconds, peak bytes), ...]}`` in the order of ``sides``.
    """
    check_positive_int("dim", dim)
    pick = {"median": statistics.median, "min": min}[
        check_choice("statistic", statistic, ("median", "min"))
    ]
    check_positive_int("repeats", repeats), check_int("seed", seed, 0)
    if not isinstance(sides, dict) or not sides:
        raise ValueError(
            f"sides must be a non-empty dict {{method: grid sides}}, got {sides!r:.60}"
        )
    for name, method_sides in sides.items():
        check_int_sequence(f"sides[{name!r}]", method_sides)
    unknown = set(sides) - set(METHODS)
    if unknown:
        raise ValueError(f"sides: unknown methods {sorted(unknown)}; choose from {list(METHODS)}")
    g = torch.Generator().manual_seed(seed)
    results = {}
    for name, method_sides in sides.items():
        fn, rows = METHODS[name], []
        for side in method_sides:
            t = torch.randn(1, check_positive_int("side", side) ** 2, dim, generator=g)
            with torch.no_grad():
                fn(t, side)  # warm-up
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    fn(t, side)
                    times.append(time.perf_counter() - start)
                peak = peak_memory(functools.partial(fn, t, side))
                rows.append((side * side, pick(times), peak))
        results[name] = rows
    return results


def _check_queries(queries: object, grid: tuple[int, int]) -> None:
    """A non-empty sequence of ``(row, col)`` cells of ``grid``."""
    if isinstance(queries, (str, bytes)) or not isinstance(queries, Sequence) or not queries:
        raise ValueError(
            f"queries must be a non-empty sequence of (row, col), got {queries!r:.60}"
        )
    for i, q in enumerate(queries):
        check_cell(f"queries[{i}]", q, grid)


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``log y`` against ``log x``: 2 for ``y ∝ x²``, 1 for ``y ∝ x``."""
    for name, values in (("xs", xs), ("ys", ys)):
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ValueError(f"{name} must be a sequence of positive numbers, got {values!r:.60}")
        for i, v in enumerate(values):
            check_positive_number(f"{name}[{i}]", v)
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(
            f"xs and ys: need two or more (x, y) pairs, got {len(xs)} and {len(ys)} values"
        )
    if min(xs) <= 0 or min(ys) <= 0:
        raise ValueError("xs and ys must be positive")
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    den = sum((a - mx) ** 2 for a in lx)
    if den == 0:
        raise ValueError("xs must not all be equal")
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / den


def linear_weights(q: torch.Tensor, k: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The weights linear attention implies (never built by ``linear_attention`` itself):
    ``φ(q_i)ᵀ φ(k_j) / (Σ_j' φ(q_i)ᵀ φ(k_j') + eps)`` with ``φ(x) = elu(x) + 1``.

    Args:
        q: ``(*B, Lq, D)``; k: ``(*B, Lk, D)``.

    Returns:
        ``(*B, Lq, Lk)``; ``linear_weights(q, k) @ v`` equals ``linear_attention(q, k, v)``.
    """
    check_qkv(q, k, k, broadcast=False), check_number("eps", eps, 0.0)
    kernel = (F.elu(q) + 1) @ (F.elu(k) + 1).transpose(-2, -1)  # (*B, Lq, Lk), all > 0
    return kernel / (kernel.sum(dim=-1, keepdim=True) + eps)


def linear_vs_softmax(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, temperature: float = 1.0
) -> dict[str, float]:
    """How far linear attention is from softmax attention on the same ``q``, ``k``, ``v``.

    Softmax attention is ``softmax(q kᵀ / (temperature · √D)) v``; linear attention
    ``linear_attention(q / √temperature, k / √temperature, v)`` (the same rescaling of the
    scores' inputs).

    Args:
        q: ``(*B, Lq, D)``; k: ``(*B, Lk, D)``; v: ``(*B, Lk, Dv)``.
        temperature: divides the softmax scores (lower: sharper).

    Half-precision inputs are compared in float32 (their products overflow float16).

    Returns:
        ``output_error``: ``‖o_lin − o_soft‖ / ‖o_soft‖`` over all outputs;
        ``weights_tv``: the total-variation distance ``½ Σ_j |w_lin − w_soft|`` averaged over
        queries (0: the same weights, 1: disjoint); ``max_softmax`` and ``max_linear``: the largest
        weight of a query, averaged over queries (1: one key, ``1/Lk``: uniform).
    """
    check_qkv(q, k, v, broadcast=False)
    temperature = check_positive_number("temperature", temperature)
    # measured in float32 at least: in half precision φ(q)ᵀφ(k) and the norms overflow (inputs
    # ±100 at temperature 0.1 give scores of 10⁵ > 65504) and the distances come out NaN
    dtype = torch.promote_types(q.dtype, torch.float32)
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    scale = temperature**-0.5
    o_soft, w_soft = scaled_dot_product_attention(q, k, v, scale=q.shape[-1] ** -0.5 / temperature)
    w_lin = linear_weights(q * scale, k * scale)
    o_lin = linear_attention(q * scale, k * scale, v)
    return {
        "output_error": float((o_lin - o_soft).norm() / o_soft.norm()),
        "weights_tv": float(0.5 * (w_lin - w_soft).abs().sum(-1).mean()),
        "max_softmax": float(w_soft.amax(-1).mean()),
        "max_linear": float(w_lin.amax(-1).mean()),
    }


def weights_explorer(
    image: torch.Tensor,
    features: torch.Tensor,
    queries: Sequence[tuple[int, int]],
    temperatures: Sequence[float] = (0.1, 0.2, 0.5, 1.0),
    display_size: tuple[int, int] | None = None,
):
    """A widget: the softmax and the linear attention weights of one query patch, side by side.

    The keys and queries are the ``h·w`` patch features; softmax weights are
    ``softmax(q·k / T)``, linear ones :func:`linear_weights` of ``q / √T`` and ``k / √T``; the
    captions give each map's largest weight and their total-variation distance. Controls:
    temperature ``T`` and query patch.

    Args:
        image: ``(3, H, W)`` photo.
        features: ``(C, h, w)`` patch features.
        queries: ``(row, col)`` query patches.
        temperatures: the values of ``T``.
        display_size: drawn ``(height, width)``; ``None`` is the photo's size.
    """
    check_tensor("image", image, "(C, H, W)")
    c, h, w = check_tensor("features", features, "(C, h, w)")
    _check_queries(queries, (h, w))
    if isinstance(temperatures, (str, bytes)) or not isinstance(temperatures, Sequence):
        raise ValueError(f"temperatures must be a non-empty sequence, got {temperatures!r:.60}")
    if not temperatures:
        raise ValueError("temperatures must be a non-empty sequence, got []")
    for i, t in enumerate(temperatures):
        check_positive_number(f"temperatures[{i}]", t)
    if display_size is not None:
        check_size2("display_size", display_size)
    for t in temperatures:
        check_positive_number("temperature", t)
    keys = features.reshape(c, h * w).T  # (h·w, C)
    size = display_size or (image.shape[-2], image.shape[-1])
    css, style = viz.photo_style(image)
    views = {}
    for t in temperatures:
        soft = torch.softmax(keys @ keys.T / t, dim=-1)  # (h·w, h·w)
        lin = linear_weights(keys * t**-0.5, keys * t**-0.5)
        for r, cc in queries:
            i = r * w + cc
            tv = float(0.5 * (soft[i] - lin[i]).abs().sum())
            views[t, (r, cc)] = (soft[i].reshape(h, w), lin[i].reshape(h, w), tv)

    def render(temperature, query):
        soft, lin, tv = views[temperature, query]
        panes = [
            viz.attention_overlay_html(
                css, a, size, query=query, caption=f"{name} · largest weight {float(a.max()):.3f}"
            )
            for name, a in (("softmax", soft), ("linear", lin))
        ]
        note = f"<div>total-variation distance {tv:.2f} (uniform: {1 / (h * w):.4f} a patch)</div>"
        return widgets.html_view(f'<div class="va-flex">{"".join(panes)}</div>{note}')

    return widgets.precomputed_explorer(
        {
            "temperature": list(temperatures),
            "query": [(f"{r},{cc}", (r, cc)) for r, cc in queries],
        },
        render,
        header=widgets.widgets.HTML(viz.VIEW_CSS + style),
    )
