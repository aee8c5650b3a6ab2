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
* :func:`retrieval_sets`, :class:`RetrievalModel`, :func:`run_retrieval` — the trained
  experiment: a strip of ``L`` digits and ``L`` query tokens, each naming a position; every query
  must return the class of the digit at its position (a permutation: ``L`` different sharp
  selections at once). Softmax attention, linear attention (its weights have rank ``≤ dim``) and
  an MLP over the whole strip read the frozen digit encoder's features.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import (
    check_cell,
    check_choice,
    check_int,
    check_int_sequence,
    check_number,
    check_positive_int,
    check_positive_number,
    check_qkv,
    check_seeds,
    check_size2,
    check_tensor,
)
from ..core import scaled_dot_product_attention
from ..efficient import chunked_attention, linear_attention, online_softmax_trace
from ..local_attention import window_partition
from ..train import count_parameters, seed_everything
from ..views import viz, widgets
from .common import peak_memory
from .digits import DIGIT_SIZE, digits_at, load_digit_cnn

__all__ = [
    "online_softmax_explorer",
    "METHODS",
    "measure_cost",
    "loglog_slope",
    "linear_weights",
    "linear_vs_softmax",
    "weights_explorer",
    "retrieval_sets",
    "RetrievalModel",
    "run_retrieval",
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
    _check_queries(queries, (h, w))
    check_int_sequence("chunk_sizes", chunk_sizes)
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
    check_positive_int("repeats", repeats)
    check_int("seed", seed, 0)
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
    check_qkv(q, k, k, broadcast=False)
    check_number("eps", eps, 0.0)
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


@functools.lru_cache(maxsize=2)
def _digit_features(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen encoder's pooled features ``(N, 64)`` of a split's digits (standardised with the
    training split's statistics), and their labels ``(N,)``."""
    cnn = load_digit_cnn()
    with torch.no_grad():
        train = cnn.feature_map(digits_at(DIGIT_SIZE, "train")[0]).mean(dim=(2, 3))
        x, y = digits_at(DIGIT_SIZE, split)
        f = cnn.feature_map(x).mean(dim=(2, 3))
    return (f - train.mean(0)) / (train.std(0) + 1e-5), y


def retrieval_sets(
    n_sets: int, length: int = 16, split: str = "train", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Strips of ``length`` random digits and ``length`` queries that each name a position.

    Token ``j < length`` of a strip is ``[one_hot(j), f_j]`` (its position and the frozen digit
    encoder's 64 features of its digit); token ``length + i`` is the query
    ``[one_hot(p_i), 0]``, where ``p`` is a random permutation of the positions. The label of
    query ``i`` is the class of the digit at position ``p_i``: every query needs a different sharp
    selection.

    Args:
        n_sets: strips. length: digits (and queries) per strip.
        split: ``"train"`` or ``"test"`` digits (the encoder learnt the training digits).
        seed: seeds the draw.

    Returns:
        tokens ``(n_sets, 2·length, length + 64)`` and labels ``(n_sets, length)``.
    """
    check_positive_int("n_sets", n_sets)
    check_positive_int("length", length)
    check_choice("split", split, ("train", "test"))
    check_int("seed", seed, 0)
    feats, labels = _digit_features(split)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(feats), (n_sets, length), generator=g)
    pointers = torch.argsort(torch.rand(n_sets, length, generator=g), dim=1)  # permutations
    position = F.one_hot(torch.arange(length), length).float().expand(n_sets, -1, -1)
    strip = torch.cat([position, feats[idx]], dim=-1)
    queries = torch.cat(
        [F.one_hot(pointers, length).float(), feats.new_zeros(n_sets, length, feats.shape[1])], -1
    )
    return torch.cat([strip, queries], dim=1), torch.gather(labels[idx], 1, pointers)


class RetrievalModel(nn.Module):
    """Answers every query of a :func:`retrieval_sets` strip at once.

    ``kind="softmax"``: ``softmax(q kᵀ/√dim) V`` with ``q = W_q one_hot(p_i)``,
    ``k = W_k one_hot(j)`` (``dim`` each) and ``V`` the digits' features, then a linear head;
    ``"linear"``: the same with :func:`~visual_attention.efficient.linear_attention` (its implied
    ``L × L`` weights ``φ(Q) φ(K)ᵀ`` have rank ``≤ dim``); ``"mlp"``: no attention: a hidden
    layer of ``hidden`` units reads the whole strip (every position's features) and the query,
    ``relu(W_s strip + W_q one_hot(p_i))``, then a linear head: the same reach.

    Shapes: ``(B, 2L, L + 64)`` tokens → logits ``(B, L, 10)``.
    """

    def __init__(self, kind: str, length: int = 16, dim: int = 4, hidden: int = 128) -> None:
        super().__init__()
        self.kind = check_choice("kind", kind, ("softmax", "linear", "mlp"))
        self.length = check_positive_int("length", length)
        check_positive_int("dim", dim)
        check_positive_int("hidden", hidden)
        width = 64
        if kind == "mlp":
            self.strip = nn.Linear(length * (length + width), hidden)
            self.query = nn.Linear(length, hidden, bias=False)
            self.head = nn.Sequential(nn.ReLU(), nn.Linear(hidden, 10))
        else:
            self.query = nn.Linear(length, dim, bias=False)
            self.key = nn.Linear(length, dim, bias=False)
            self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.length
        check_tensor("x", x, "(B, T, F)", T=2 * n, F=n + 64)
        strip, pointers = x[:, :n], x[:, n:, :n]  # (B, L, L + 64), (B, L, L)
        if self.kind == "mlp":
            return self.head(self.strip(strip.flatten(1))[:, None] + self.query(pointers))
        q, k, v = self.query(pointers), self.key(strip[..., :n]), strip[..., n:]
        if self.kind == "softmax":
            return self.head(scaled_dot_product_attention(q, k, v)[0])
        return self.head(linear_attention(q, k, v))


def run_retrieval(
    kind: str,
    seeds: Sequence[int] = (0, 1, 2),
    length: int = 16,
    dim: int = 4,
    hidden: int = 128,
    epochs: int = 10,
    n_train: int = 6000,
    n_test: int = 1000,
    lr: float = 3e-3,
) -> tuple[list[float], torch.Tensor, int]:
    """Train a :class:`RetrievalModel` per seed (Adam, batches of 64 strips, cross-entropy over
    all queries) and test it on the same held-out strips (test digits, seed 10⁶).

    Each seed draws its own training strips and initialisation.

    Returns:
        the test accuracy over all queries of each seed, the per-query correctness averaged
        over the seeds ``(n_test · length,)``, and the parameter count.
    """
    check_seeds("seeds", seeds)
    for name, value in (("epochs", epochs), ("n_train", n_train), ("n_test", n_test)):
        check_positive_int(name, value)
    check_positive_number("lr", lr)
    x_test, y_test = retrieval_sets(n_test, length, "test", seed=10**6)
    accuracies, correct = [], torch.zeros(y_test.numel())
    for seed in seeds:
        x, y = retrieval_sets(n_train, length, "train", seed=seed)
        gen = seed_everything(seed)
        model = RetrievalModel(kind, length, dim, hidden)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=gen)
            for start in range(0, len(x), 64):
                batch = order[start : start + 64]
                loss = F.cross_entropy(model(x[batch]).flatten(0, 1), y[batch].flatten())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        with torch.no_grad():
            hits = (model.eval()(x_test).argmax(-1) == y_test).flatten().float()
        accuracies.append(float(hits.mean()))
        correct += hits / len(seeds)
    return accuracies, correct, count_parameters(model)
