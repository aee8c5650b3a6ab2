"""The lab of the local attention chapter: does the shift of Swin's windows carry information
across a window border? Two digits in adjacent windows, a question about the pair, and two
identical pairs of window-attention blocks that differ only by the shift of the second one.

* :func:`pair_task` — ``16 × 32`` canvases, one ``16``-pixel digit in each ``16 × 16`` half,
  labelled "same digit?". The frozen digit encoder
  (:func:`~visual_attention.labs.common.token_features`) runs on each half separately:
  a ``2 × 4`` grid of tokens whose left ``2 × 2`` window sees only the left digit and whose right
  window sees only the right one.
* :class:`ShiftHead` — what is trained: a token embedding, a W-MSA block, a second block that is
  SW-MSA (``shift=1``) or, the control, W-MSA again (``shift=0``), and a per-token classifier whose
  logits are averaged over the tokens.
* :func:`run_seeds` — one head trained per seed; :func:`reach` — how many tokens each token can
  draw information from after the blocks; :func:`border_mass` — the share of the shifted block's
  attention that crosses the old window border; :class:`WindowPairModel` and
  :func:`model_explorer` — the trained heads in the reader's browser; :func:`window_explorer` —
  which tokens a query may see (in the browser).

The chapter's evidence is a second experiment, on a larger grid of tokens with windows of
``M = 4``:

* :func:`neighbour_task` — an ``8 × 8`` grid of digit tokens (the frozen encoder's pooled vector
  of one drawing each, a few classes per grid); every token is asked "does one of my four
  neighbours (up, down, left, right) show my digit?". Only adjacency decides: the same digit
  elsewhere in the grid is everywhere.
* :class:`TokenNet` — the same network around five token mixers (:data:`MIXERS`): Swin's W-MSA
  then SW-MSA, the same without the relative position bias, neighbourhood attention (``k = 3``),
  a depthwise ``3 × 3`` convolution with an MLP of the same width (:class:`DepthwiseMixer`, no
  attention, the same reach as the neighbourhood) and global attention with learned absolute
  positions.
* :func:`run_token_seeds` — one :class:`TokenNet` per seed, each seed drawing its own training
  grids; :func:`token_correct` — per-token correctness on the test grids.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import torch
from einops import rearrange
from torch import nn

from .._checks import (
    check_choice,
    check_instance,
    check_int,
    check_int_sequence,
    check_labels,
    check_number,
    check_positive_int,
    check_seeds,
    check_tensor,
)
from ..blocks import PreNormBlock
from ..core import record_attention
from ..global_attention import GlobalAttention
from ..local_attention import (
    NeighborhoodAttention,
    ShiftedWindowAttention,
    shifted_window_mask,
    to_dense,
    window_token_index,
)
from ..train import History, SeedRuns, fit_seeds, seed_everything, warmup_cosine
from ..views.browser_model import export_model
from ..views.model_explorer import ModelExplorer, probs, tokens
from ..views.model_explorer import model_explorer as make_model_explorer
from ..views.viz import data_uri
from ..views.widgets import attention_explorer
from ._checks import check_data, check_encoder, check_initial
from .common import EncodedHeads, code_fingerprint, load_runs, standardize, token_features
from .digits import DIGIT_SIZE, digits_at, like_module, load_digit_cnn

__all__ = [
    "CANVAS",
    "GRID",
    "WINDOW",
    "SHIFT",
    "pair_task",
    "ShiftHead",
    "run_seeds",
    "reach",
    "border_mass",
    "WindowPairModel",
    "model_explorer",
    "window_explorer",
    "standardize",
    "TOKEN_GRID",
    "MIXERS",
    "neighbour_task",
    "DepthwiseMixer",
    "TokenNet",
    "run_token_seeds",
    "TOKEN_RECIPE",
    "TOKEN_WEIGHTS",
    "train_token_mixers",
    "token_fingerprint",
    "load_token_mixers",
    "token_correct",
]

#: ``(height, width)`` of the canvases in pixels: two ``16 × 16`` halves side by side.
CANVAS = (16, 32)
#: ``(height, width)`` of the token grid (one token per ``8 × 8`` pixels).
GRID = (2, 4)
#: Side ``M`` of a window: the grid is two windows side by side.
WINDOW = 2
#: Swin's shift ``⌊M / 2⌋``.
SHIFT = WINDOW // 2


def _halves(
    n: int, split: str, g: torch.Generator, classes: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` digits of ``split`` (random, or one random drawing of each of ``classes`` ``(n,)``),
    each filling a ``16 × 16`` half: images ``(n, 1, 16, 16)`` and classes ``(n,)``."""
    images, labels = digits_at(DIGIT_SIZE, split)
    if classes is None:
        pick = torch.randint(len(images), (n,), generator=g)
    else:
        by_class = [torch.nonzero(labels == c)[:, 0] for c in range(10)]
        u = torch.rand(n, generator=g)
        pick = torch.stack([by_class[c][int(v * len(by_class[c]))] for c, v in zip(classes, u)])
    return images[pick].clone(), labels[pick]


def pair_task(
    n: int,
    split: str = "train",
    seed: int = 0,
    noise: float = 0.1,
    encoder: nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` canvases with two digits in adjacent windows, half of them the same digit.

    ``n // 2`` left halves and ``n // 2`` right halves (one digit each) are drawn and encoded
    once each with the frozen encoder
    (:func:`~visual_attention.labs.common.token_features`, ``(16, 16)`` → ``2 × 2``
    tokens); right half ``i`` is a random drawing (usually another one) of left half ``i``'s
    class, and every left half is paired twice: with its right half (same digit) and with a
    random right half of another class. Because each half is encoded on its own, no token's
    features see across the border between the halves: the only way the two digits can meet is
    attention. Gaussian pixel noise ``noise``, clipped to ``[0, 1]``.

    Returns:
        images ``(n, 1, 16, 32)``, token features ``(n, 64, 2, 4)``, labels ``(n,)`` (1 = same
        digit) and the digits' classes ``(n, 2)`` (left, right), the last two int64.
    """
    check_positive_int("n", n)
    check_int("seed", seed, 0)
    check_number("noise", noise, 0.0)
    check_encoder("encoder", encoder)
    if n % 2:
        raise ValueError(f"n must be even (each left half is used twice), got {n}")
    g = torch.Generator().manual_seed(seed)
    left = _halves(n // 2, split, g)
    halves = {"left": left, "right": _halves(n // 2, split, g, classes=left[1])}
    encoder = load_digit_cnn() if encoder is None else encoder
    images, features = {}, {}
    for side, (canvas, _) in halves.items():
        images[side] = (canvas + noise * torch.randn(canvas.shape, generator=g)).clamp(0, 1)
        features[side] = token_features(images[side], encoder)  # (n/2, 64, 2, 2)
    left_cls, right_cls = halves["left"][1], halves["right"][1]  # equal, other drawings
    li = torch.arange(n) // 2  # every left half twice
    same = torch.arange(n) % 2 == 0  # once with a right half of its class, once with another
    other = left_cls[li][:, None] != right_cls[None]  # (n, n/2)
    if not bool(other.any(-1).all()):
        raise ValueError(f"n={n} is too small: every digit drawn is of one class")
    ri = torch.where(same, li, torch.multinomial(other.float(), 1, generator=g)[:, 0])
    order = torch.randperm(n, generator=g)
    li, ri = li[order], ri[order]
    images = torch.cat([images["left"][li], images["right"][ri]], dim=-1)
    features = torch.cat([features["left"][li], features["right"][ri]], dim=-1)
    classes = torch.stack([left_cls[li], right_cls[ri]], dim=1)
    return images, features, (classes[:, 0] == classes[:, 1]).long(), classes


class ShiftHead(nn.Module):
    """Two Swin blocks over the ``2 × 4`` token grid and a per-token classifier.

    ``z = x W_e`` (a linear embedding of each token), ``z ← PreNormBlock(W-MSA)(z)``,
    ``z ← PreNormBlock((S)W-MSA)(z)`` (:class:`~visual_attention.local_attention.
    ShiftedWindowAttention` with ``M = 2`` and shift ``shift``, relative position bias), then
    ``LayerNorm`` and the same two-layer classifier on every token; the logits ``(B, H, W, 2)``
    are averaged over the tokens. With ``shift=0`` no token ever attends across the border
    between the two windows; with ``shift=1`` the second block's middle window straddles it. The
    two models have the same parameters: only the shift differs.

    Shapes: ``forward``: features ``(B, C, 2, 4)`` → logits ``(B, 2)``; block ``i`` records its
    weights under ``"blocks.{i}.attn.attn"`` as ``(B·2, heads, 4, 4)``.
    """

    def __init__(
        self, shift: int = SHIFT, channels: int = 64, dim: int = 32, num_heads: int = 2
    ) -> None:
        super().__init__()
        self.shift = check_choice("shift", shift, (0, SHIFT))
        self.channels = check_positive_int("channels", channels)
        check_positive_int("dim", dim)
        check_positive_int("num_heads", num_heads)
        self.embed = nn.Linear(channels, dim)
        self.blocks = nn.Sequential(
            *[
                PreNormBlock(dim, ShiftedWindowAttention(dim, WINDOW, num_heads, s), mlp_ratio=2.0)
                for s in (0, shift)  # W-MSA, then SW-MSA (or W-MSA again: the control)
            ]
        )
        self.norm = nn.LayerNorm(dim)
        self.classify = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 2))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        h, w = GRID
        check_tensor("features", features, "(B, C, H, W)", C=self.channels, H=h, W=w)
        z = self.blocks(self.embed(rearrange(features, "b c h w -> b h w c")))  # (B, H, W, dim)
        return self.classify(self.norm(z)).mean(dim=(1, 2))  # every token decides; average


def run_seeds(
    shift: int,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 16,
    lr: float = 1e-2,
    batch_size: int = 256,
) -> SeedRuns:
    """Train one :class:`ShiftHead` per seed on token features ``(N, 64, 2, 4)``; evaluate on
    ``test``.

    Each seed seeds the head's initialisation and the data order; AdamW (weight decay 0.05),
    one warm-up epoch, then a cosine decay of ``lr`` to 0.

    Returns:
        :class:`~visual_attention.train.SeedRuns`: the final test accuracies (one per seed), the
        heads (eval mode) and their histories.
    """
    check_choice("shift", shift, (0, SHIFT))
    c = check_data("train", train, "(N, C, H, W)", H=GRID[0], W=GRID[1])[1]
    check_data("test", test, "(N, C, H, W)", C=c, H=GRID[0], W=GRID[1])
    check_seeds("seeds", seeds)
    return fit_seeds(
        lambda: ShiftHead(shift, channels=c),
        train,
        test,
        seeds,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        optimizer="adamw",
        weight_decay=0.05,
        warmup_epochs=1,
    )


def reach(height: int, width: int, window_size: int, shifts: Sequence[int]) -> torch.Tensor:
    """How many tokens each token can draw information from after each block.

    Block ``i`` is window attention with shift ``shifts[i]`` (Swin's masks for a shifted grid):
    the set reachable by token ``n`` after block ``i`` is the union of the sets of the keys it may
    attend to. Returns int64 ``(len(shifts), height, width)``.
    """
    n = check_positive_int("height", height) * check_positive_int("width", width)
    m = check_positive_int("window_size", window_size)
    if isinstance(shifts, (str, bytes)) or not isinstance(shifts, Sequence) or not shifts:
        raise ValueError(
            f"shifts must be a non-empty sequence of shifts in [0, {m}), one per block, got "
            f"{shifts!r:.60}"
        )
    for i, s in enumerate(shifts):
        if not 0 <= check_int(f"shifts[{i}]", s) < m:
            raise ValueError(f"shifts[{i}] must be in [0, window_size = {m}), got {s}")
    seen = torch.eye(n)  # before any block a token knows itself
    counts = []
    for s in shifts:
        nw = n // (m * m)
        ones = torch.ones(nw, 1, m * m, m * m)
        if s:
            ones = ones * shifted_window_mask(height, width, m, s)[:, None]
        allowed = to_dense(ones, window_token_index(height, width, m, s))[0, 0]  # (N, N)
        seen = ((allowed @ seen) > 0).float()
        counts.append(seen.sum(-1).long().reshape(height, width))
    return torch.stack(counts)


@torch.no_grad()
def block_weights(head: ShiftHead, features: torch.Tensor, block: int = 1) -> torch.Tensor:
    """The attention weights of block ``block`` on ``features`` ``(B, C, 2, 4)``, averaged over
    heads and scattered to token pairs: ``(B, N, N)`` (row = query, column = key, ``N = 8``)."""
    check_instance("head", head, ShiftHead)
    check_choice("block", block, (0, 1))
    h, w = GRID
    check_tensor("features", features, "(B, C, H, W)", C=head.channels, H=h, W=w)
    with record_attention(head) as maps:
        head(like_module(features, head))  # half-precision features for a float32 head
    shift = head.blocks[block].attn.shift_size
    index = window_token_index(*GRID, WINDOW, shift)
    return to_dense(maps[f"blocks.{block}.attn.attn"], index).mean(dim=1)


def border_mass(head: ShiftHead, features: torch.Tensor) -> tuple[float, float]:
    """The share of the second block's attention that crosses the border between the two original
    windows, for the queries of the middle shifted window (grid columns 1-2), averaged over queries
    and canvases; and the same share for uniform attention over the keys the mask allows.

    Returns:
        ``(measured, uniform)``; both are 0 without the shift.
    """
    check_instance("head", head, ShiftHead)
    w = block_weights(head, features)  # (B, N, N)
    cols = torch.arange(GRID[0] * GRID[1]) % GRID[1]
    half = cols >= WINDOW  # which original window each token belongs to
    across = half[:, None] != half[None, :]  # (N, N) pairs across the border
    middle = (cols >= SHIFT) & (cols < SHIFT + WINDOW)  # queries of the middle shifted window
    measured = float((w * across).sum(-1)[:, middle].mean())
    allowed = (w > 0).float()  # the keys the mask allows (weights of a softmax are positive)
    uniform = float(((allowed * across).sum(-1) / allowed.sum(-1))[:, middle].mean())
    return measured, uniform


def _overlay(image: torch.Tensor, weights: torch.Tensor, query: int) -> str:
    """The canvas ``(1, 16, 32)`` in grey with the query's weights ``(8,)`` in red (upsampled to
    the pixels), the query token outlined in blue and the border between the windows dotted."""
    h, w = GRID
    scale = image.shape[-1] // w
    heat = weights.reshape(h, w).repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    heat = heat / heat.max().clamp_min(1e-12)
    grey = image[0].clamp(0, 1)
    rgb = torch.stack([torch.maximum(grey, heat), grey * (1 - heat), grey * (1 - heat)], -1)
    rgb[::2, WINDOW * scale] = rgb.new_tensor([1.0, 0.85, 0.2])  # the original window border
    r, c = divmod(query, w)
    box = rgb[r * scale : (r + 1) * scale, c * scale : (c + 1) * scale]
    box[[0, -1], :] = box.new_tensor([0.2, 0.8, 1.0])
    box[:, [0, -1]] = box.new_tensor([0.2, 0.8, 1.0])
    return data_uri((rgb.numpy() * 255 + 0.5).astype("uint8"))


class WindowPairModel(EncodedHeads):
    """The chapter's trained heads from the canvas up, as the reader's browser runs them.

    Each ``16 × 16`` half of the canvas through the frozen encoder on its own
    (:func:`pair_task`'s features: no token sees across the border), the standardisation with the
    training statistics (``labs.common.standardize``) and each :class:`ShiftHead`.
    ``forward``: canvases ``(B, 1, 16, 32)`` → per head, in order, its logits ``(B, 2)``
    (different, same) and its second block's attention scattered to token pairs
    ``(B, 1, h, N, N)`` (as :func:`block_weights`, per head; ``N = 8``).

    Args:
        heads: ``{name: trained ShiftHead}``.
        train_features: the raw token features of the training canvases ``(N, C, 2, 4)``.
        encoder: the frozen digit encoder (default:
            :func:`~visual_attention.labs.digits.load_digit_cnn`).
    """

    def __init__(
        self,
        heads: dict[str, ShiftHead],
        train_features: torch.Tensor,
        encoder: nn.Module | None = None,
    ) -> None:
        super().__init__(heads, ShiftHead, train_features, encoder)
        n = GRID[0] * GRID[1]
        for k, head in enumerate(self.heads):  # window token i of window w is grid token P[w, i]
            for block in head.blocks:
                block.attn.mask(*GRID)  # computed (and cached) now: a constant of the export
            index = window_token_index(*GRID, WINDOW, head.blocks[1].attn.shift_size)
            self.register_buffer(f"scatter{k}", nn.functional.one_hot(index, n).float())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        check_tensor("x", x, "(B, C, H, W)", C=1, H=CANVAS[0], W=CANVAS[1])
        half = CANVAS[1] // 2
        tokens = [  # each half on its own, as token_features
            nn.functional.avg_pool2d(self.encoder.feature_map(part), 2)
            for part in (x[..., :half], x[..., half:])
        ]
        f = self.standardized(torch.cat(tokens, dim=-1))  # (B, C, 2, 4)
        out = []
        for k, head in enumerate(self.heads):
            with record_attention(head) as maps:
                out.append(head(f))
            p = getattr(self, f"scatter{k}")  # (nW, M², N)
            windows = maps["blocks.1.attn.attn"]  # (B·nW, h, M², M²)
            windows = windows.reshape(-1, p.shape[0], *windows.shape[1:])  # (B, nW, h, M², M²)
            out.append(torch.einsum("bwhij,win,wjm->bhnm", windows, p, p)[:, None])
        return tuple(out)


def model_explorer(
    model: WindowPairModel, examples: torch.Tensor, labels: torch.Tensor, display: int = 384
) -> ModelExplorer:
    """The reader draws a digit in each half of the canvas (or picks a test canvas, moves,
    resizes, adds noise) and picks a query token; the page runs ``model``: where that token looks
    in the second block of each head, over the canvas, and each head's probability of "same digit".

    Args:
        model: the :class:`WindowPairModel` to export.
        examples: test canvases ``(N, 1, 16, 32)`` to start from; labels: ``(N,)``, 1 = same.
        display: the drawing area's width in CSS pixels.
    """
    check_instance("model", model, WindowPairModel)
    n = check_tensor("examples", examples, "(N, C, H, W)", C=1, H=CANVAS[0], W=CANVAS[1])[0]
    check_labels("labels", labels, n)
    outputs = [f"{kind} {name}" for name in model.names for kind in ("logits", "attention")]
    exported = export_model(model, examples[:1], outputs)
    views = [probs(name, f"logits {name}", ("different", "same")) for name in model.names]
    views += [
        tokens(
            f"{name}: where the query token looks in block 2",
            f"attention {name}",
            GRID,
            prefix=0,
            query=WINDOW - 1,  # beside the border: the shifted block's window straddles it
        )
        for name in model.names
    ]
    names = [
        f"#{i} ({'same digit' if int(y) else 'different digits'})" for i, y in enumerate(labels)
    ]
    return make_model_explorer(
        exported,
        examples,
        names,
        views,
        display=display,
        brush=1.2,
        caption="Draw a digit in each 16 × 16 half (or pick a test canvas), then click a token of "
        "a small copy below to make it the query. Both trained heads run in this page.",
    )


def window_explorer(
    image: torch.Tensor,
    features: torch.Tensor,
    feature_names: Sequence[str],
    window_sizes: Sequence[int] = (2, 3, 4, 6),
    scale: float = 5.0,
    display_size: tuple[int, int] | None = None,
    initial: dict | None = None,
):
    """The chapter's first widget: which tokens a query may see under (shifted) windows, and the
    cost.

    ``features`` ``(C, h, w)`` (unit patch features of a photo) serve as queries, keys and values
    (identity projections, no bias) of a one-head window attention with window size ``M`` (or
    global attention) and any cyclic shift ``0 ≤ s < M``, as
    :class:`~visual_attention.local_attention.ShiftedWindowAttention` computes it. The reader's
    browser computes the query's weights over the photo (zero outside its window, or outside its
    region of a shifted window), the context vector, and the number of attention weights against
    global attention (:class:`visual_attention.views.widgets.AttentionExplorer`).

    Args:
        image: ``(3, H, W)`` photo in ``[0, 1]``.
        features: ``(C, h, w)``; every window size must divide ``h`` and ``w``.
        feature_names: ``C`` labels for the context bars.
        window_sizes: the sizes ``M`` offered besides global attention.
        scale: logits are ``scale · ⟨q, k⟩`` (the module's ``attn.scale``).
        display_size: drawn ``(height, width)`` in CSS pixels.
        initial: optional first ``{"window": M, "shift": s or True (= M // 2),
            "query": (row, col)}``.
    """

    check_tensor("image", image, "(C, H, W)")
    c, h, w = check_tensor("features", features, "(C, h, w)")
    if isinstance(feature_names, (str, bytes)) or not isinstance(feature_names, Sequence):
        raise ValueError(
            f"feature_names must be a sequence of {c} names, got {feature_names!r:.60}"
        )
    if len(feature_names) != c:
        raise ValueError(f"feature_names has {len(feature_names)} entries for {c} channels")
    check_int_sequence("window_sizes", window_sizes)
    check_initial("initial", initial)
    unknown = set(initial or {}) - {"window", "shift", "query"}
    if unknown:
        raise ValueError(
            f"initial names unknown controls {sorted(unknown)}; use window, shift, query"
        )
    first = dict(initial or {})
    m = int(first.get("window", 0))
    shift = first.get("shift", 0)
    shift = m // 2 if shift is True else int(shift or 0)
    return attention_explorer(
        rearrange(features, "c h w -> (h w) c"),
        grid=(h, w),
        image=image,
        scale=scale,
        query=tuple(first.get("query", (0, 0))),
        window=m,
        shift=shift,
        window_sizes=window_sizes,
        controls=("window", "shift"),
        value_names=list(feature_names),
        context_title="context vector",
        display_size=display_size,
        label="local-attention",
    )


#: ``(height, width)`` of the token grid of :func:`neighbour_task`: four ``4 × 4`` windows.
TOKEN_GRID = (8, 8)
#: The token mixers :class:`TokenNet` compares.
MIXERS = ("window", "window, no bias", "neighbourhood", "convolution", "global")
_TOKEN_WINDOW = 4


@functools.lru_cache(maxsize=2)
@torch.no_grad()
def _digit_vectors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen encoder's pooled vector of every digit of ``split``, standardised with the
    statistics of the training digits: ``(N, 64)`` and the classes ``(N,)``."""
    encoder = load_digit_cnn()
    vectors = {}
    for part in ("train", split):
        images, labels = digits_at(DIGIT_SIZE, part)
        vectors[part] = (encoder.feature_map(images).mean(dim=(2, 3)), labels)
    mean, std = vectors["train"][0].mean(0), vectors["train"][0].std(0) + 1e-6
    return (vectors[split][0] - mean) / std, vectors[split][1]


def neighbour_task(
    n: int, split: str = "train", seed: int = 0, classes: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` grids of ``8 × 8`` digit tokens; each token: "is my digit one of my neighbours'?".

    Each grid draws ``classes`` of the ten digit classes, then a class for each cell among them
    and a random drawing of that class from ``split`` (the frozen encoder's pooled, standardised
    vector of it). The label of a token is 1 when one of its four neighbours (up, down, left,
    right; fewer at the border) has its class. The same class elsewhere in the grid says nothing.

    Returns:
        token features ``(n, 64, 8, 8)`` and int64 labels ``(n, 8, 8)``.
    """
    check_positive_int("n", n)
    check_int("seed", seed, 0)
    check_choice("split", split, ("train", "test"))
    check_int("classes", classes, 1)
    if classes > 10:
        raise ValueError(f"classes must be at most 10 (there are ten digits), got {classes}")
    vectors, labels = _digit_vectors(split)
    h, w = TOKEN_GRID
    g = torch.Generator().manual_seed(seed)
    chosen = torch.rand(n, 10, generator=g).argsort(-1)[:, :classes]  # the classes of each grid
    cls = chosen.gather(1, torch.randint(classes, (n, h * w), generator=g)).reshape(n, h, w)
    same = torch.zeros(n, h, w, dtype=torch.bool)
    same[:, 1:] |= cls[:, 1:] == cls[:, :-1]  # the neighbour above
    same[:, :-1] |= cls[:, :-1] == cls[:, 1:]  # below
    same[:, :, 1:] |= cls[:, :, 1:] == cls[:, :, :-1]  # left
    same[:, :, :-1] |= cls[:, :, :-1] == cls[:, :, 1:]  # right
    u = torch.rand(n, h, w, generator=g)
    pick = torch.empty(n, h, w, dtype=torch.long)
    for c in range(10):  # a random drawing of each cell's class
        of_class = torch.nonzero(labels == c)[:, 0]
        where = cls == c
        pick[where] = of_class[(u[where] * len(of_class)).long()]
    return rearrange(vectors[pick], "n h w c -> n c h w").contiguous(), same.long()


class DepthwiseMixer(nn.Module):
    """The control's token mixer: a depthwise ``k × k`` convolution (one static ``k × k`` filter
    per channel, the reach of a ``k × k`` neighbourhood) and a two-layer MLP of width ``2·dim``
    across channels (ConvNeXt's and ConvMixer's mixing, without attention).

    Shapes: ``(B, H, W, dim)`` → ``(B, H, W, dim)``.
    """

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        k = check_positive_int("kernel_size", kernel_size)
        if k % 2 == 0:
            raise ValueError(f"kernel_size must be odd (a centred reach), got {k}")
        self.depthwise = nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim)
        self.mix = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, "(B, H, W, dim)", dim=self.dim)
        return self.mix(self.depthwise(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


class TokenNet(nn.Module):
    """A linear embedding of each token, two pre-norm blocks around one token mixer, ``LayerNorm``
    and a two-layer classifier on every token.

    ``mixer`` (one of :data:`MIXERS`): ``"window"`` — W-MSA then SW-MSA (``M = 4``, shift 2,
    Swin's relative position bias); ``"window, no bias"`` — the same without the bias (nothing
    tells it where a key lies in its window); ``"neighbourhood"`` — neighbourhood attention,
    ``k = 3``, with its relative position bias; ``"convolution"`` — :class:`DepthwiseMixer`
    (``3 × 3``, no attention); ``"global"`` — global attention with learned absolute position
    embeddings (ViT's).

    Shapes: ``forward``: token features ``(B, C, 8, 8)`` → logits ``(B, 8, 8, 2)``.
    """

    def __init__(self, mixer: str, channels: int = 64, dim: int = 32, num_heads: int = 2) -> None:
        super().__init__()
        self.mixer = check_choice("mixer", mixer, MIXERS)
        self.channels = check_positive_int("channels", channels)
        check_positive_int("dim", dim)
        check_positive_int("num_heads", num_heads)
        m = _TOKEN_WINDOW

        def make(i: int) -> nn.Module:
            if mixer in ("window", "window, no bias"):
                bias = mixer == "window"
                return ShiftedWindowAttention(dim, m, num_heads, (m // 2) * i, True, bias)
            if mixer == "neighbourhood":
                return NeighborhoodAttention(dim, 3, num_heads)
            if mixer == "convolution":
                return DepthwiseMixer(dim, 3)
            return GlobalAttention(dim, num_heads)

        self.embed = nn.Linear(channels, dim)
        self.position = (
            nn.Parameter(torch.randn(*TOKEN_GRID, dim) * 0.02) if mixer == "global" else None
        )
        self.blocks = nn.Sequential(*[PreNormBlock(dim, make(i), mlp_ratio=2.0) for i in (0, 1)])
        self.norm = nn.LayerNorm(dim)
        self.classify = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 2))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        h, w = TOKEN_GRID
        check_tensor("features", features, "(B, C, H, W)", C=self.channels, H=h, W=w)
        z = self.embed(rearrange(features, "b c h w -> b h w c"))  # (B, H, W, dim)
        if self.position is not None:
            z = z + self.position
        return self.classify(self.norm(self.blocks(z)))  # (B, H, W, 2): every token answers


def _check_token_labels(name: str, labels: object, n: int) -> None:
    """Labels of :func:`neighbour_task`: an int64 tensor ``(n, 8, 8)`` of 0 and 1."""
    shape = (n, *TOKEN_GRID)
    ok = isinstance(labels, torch.Tensor) and labels.dtype == torch.int64
    if not ok or tuple(labels.shape) != shape or not bool(((labels == 0) | (labels == 1)).all()):
        got = (
            f"{labels.dtype} of shape {tuple(labels.shape)}"
            if isinstance(labels, torch.Tensor)
            else type(labels).__name__
        )
        raise ValueError(f"{name} must be an int64 tensor {shape} of 0 and 1, got {got}")


@torch.no_grad()
def token_correct(model: TokenNet, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token correctness ``(N·8·8,)`` (float, 1 = right) of ``model`` on ``features``
    ``(N, C, 8, 8)`` with labels ``(N, 8, 8)``, grids and tokens in row-major order."""
    check_instance("model", model, TokenNet)
    n = check_tensor("features", features, "(N, C, H, W)", C=model.channels, H=8, W=8)[0]
    _check_token_labels("labels", labels, n)
    was = model.training
    model.eval()
    out = torch.cat([model(like_module(f, model)).argmax(-1) for f in features.split(512)])
    model.train(was)
    return (out == labels).float().flatten()


def run_token_seeds(
    mixer: str,
    n_train: int,
    test: tuple[torch.Tensor, torch.Tensor],
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 10,
    lr: float = 1e-2,
    batch_size: int = 64,
) -> SeedRuns:
    """Train one :class:`TokenNet` with ``mixer`` per seed; each seed draws its own ``n_train``
    training grids (:func:`neighbour_task` with that seed), its initialisation and its order.

    AdamW (weight decay 0.05), cross-entropy over every token, one warm-up epoch, then a cosine
    decay of ``lr`` to 0 (:func:`~visual_attention.train.warmup_cosine`).

    Returns:
        :class:`~visual_attention.train.SeedRuns`: the final per-token test accuracies, the
        networks (eval mode) and their histories (training loss and test accuracy per epoch).
    """
    check_choice("mixer", mixer, MIXERS)
    check_positive_int("n_train", n_train)
    check_seeds("seeds", seeds)
    check_positive_int("epochs", epochs)
    check_number("lr", lr, 0.0)
    check_positive_int("batch_size", batch_size)
    if not isinstance(test, (tuple, list)) or len(test) != 2:
        raise ValueError(f"test must be a pair (features, labels), got {type(test).__name__}")
    x_test, y_test = test
    n = check_tensor("test[0]", x_test, "(N, C, H, W)", H=8, W=8)[0]
    _check_token_labels("test[1]", y_test, n)
    steps_per_epoch = -(-n_train // batch_size)
    total = epochs * steps_per_epoch
    runs = SeedRuns([], [], [])
    for seed in seeds:
        x, y = neighbour_task(n_train, "train", seed)
        g = seed_everything(seed)
        model = TokenNet(mixer, channels=x.shape[1])
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: warmup_cosine(min(s, total - 1), total, steps_per_epoch)
        )
        history = History()
        for _ in range(epochs):
            model.train()
            losses = []
            for idx in torch.randperm(n_train, generator=g).split(batch_size):
                loss = nn.functional.cross_entropy(model(x[idx]).flatten(0, 2), y[idx].flatten())
                opt.zero_grad()
                loss.backward()
                opt.step()
                schedule.step()
                losses.append(loss.item())
            history.loss.append(sum(losses) / len(losses))
            history.test_accuracy.append(float(token_correct(model, x_test, y_test).mean()))
        runs.accuracies.append(history.final_test_accuracy)
        runs.models.append(model.eval())
        runs.histories.append(history)
    return runs


#: How ``make weights`` trains experiment 2 (``scripts/train_token_mixers.py``): every
#: :data:`MIXERS` entry once per seed, :func:`run_token_seeds` with these settings, tested on
#: ``neighbour_task(test_grids, "test", test_seed)``.
TOKEN_RECIPE = {
    "n_train": 600,
    "test_grids": 400,
    "test_seed": 100,
    "seeds": (0, 1, 2),
    "epochs": 8,
    "lr": 1e-2,
    "batch_size": 64,
}
#: The weights ``make weights`` writes (``scripts/train_token_mixers.py``).
TOKEN_WEIGHTS = Path(__file__).parent / "weights" / "token_mixers.pt"


def train_token_mixers(
    test: tuple[torch.Tensor, torch.Tensor],
    mixers: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
) -> dict[str, SeedRuns]:
    """:func:`run_token_seeds` for each of ``mixers`` (default :data:`MIXERS`) with
    :data:`TOKEN_RECIPE`; ``seeds`` and ``epochs`` replace the recipe's (a quick run).

    Args:
        test: test grids ``(N, C, 8, 8)`` and their labels ``(N, 8, 8)`` (:func:`neighbour_task`).

    Returns:
        ``{mixer: SeedRuns}``.
    """
    if mixers is not None and (isinstance(mixers, str) or not isinstance(mixers, Sequence)):
        raise ValueError(f"mixers must be a list of MIXERS names, got {mixers!r}")
    mixers = list(MIXERS) if mixers is None else list(mixers)
    for mixer in mixers:
        check_choice("mixers", mixer, MIXERS)
    r = {k: TOKEN_RECIPE[k] for k in ("n_train", "seeds", "epochs", "lr", "batch_size")}
    if seeds is not None:
        r["seeds"] = tuple(check_seeds("seeds", seeds))
    if epochs is not None:
        r["epochs"] = check_positive_int("epochs", epochs)
    return {mixer: run_token_seeds(mixer, test=test, **r) for mixer in mixers}


def token_fingerprint() -> str:
    """A hash of the code (docstrings aside) and the recipe that make :data:`TOKEN_WEIGHTS`."""
    parts = [TokenNet, DepthwiseMixer, run_token_seeds, train_token_mixers, token_correct]
    parts += [neighbour_task, ShiftedWindowAttention, NeighborhoodAttention]
    return code_fingerprint(parts, TOKEN_RECIPE, MIXERS, TOKEN_GRID, _TOKEN_WINDOW)


def load_token_mixers(path: Path | str = TOKEN_WEIGHTS) -> dict[str, SeedRuns]:
    """The networks ``make weights`` trained (:func:`train_token_mixers`), as
    :class:`~visual_attention.train.SeedRuns` per :data:`MIXERS` name: the stored per-token test
    accuracies, the networks (eval mode) and their stored histories (test accuracy per epoch).

    Args:
        path: the weights file (default: the package's, :data:`TOKEN_WEIGHTS`).
    """
    runs, _ = load_runs(path, TokenNet, "token mixers")
    return runs
