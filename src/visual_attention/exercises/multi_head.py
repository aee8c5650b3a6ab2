"""Exercises of the Multi-head attention chapter: what the page does not show — a key-padding mask
for multi-head attention, pruning heads, and how far each head looks (mean attention distance)."""

from __future__ import annotations

import torch

from ..blocks import merge_heads, split_heads
from ..core import scaled_dot_product_attention
from ..self_attention import mean_attention_distance
from . import Case, Exercise


def masked_mha_reference(x, w_q, w_k, w_v, w_o, num_heads, key_mask):
    """Multi-head self-attention with ``(D, D)`` matrices applied as ``x @ Wᵀ`` (no biases) and a
    key-padding mask ``(B, N)`` (True = a real token): no query attends to a padded key; a
    sequence with no real token gets zero weights and a zero context (then ``0 @ W^Oᵀ``)."""
    q, k, v = (split_heads(x @ w.T, num_heads) for w in (w_q, w_k, w_v))
    allowed = key_mask[:, None, None, :]  # (B, 1, 1, N): the same keys for every head and query
    context, weights = scaled_dot_product_attention(q, k, v, mask=allowed)
    return merge_heads(context) @ w_o.T, weights


def _masked_cases() -> list[Case]:
    g = torch.Generator().manual_seed(34)
    r = lambda *s: torch.randn(*s, generator=g) * 0.5  # noqa: E731
    w = lambda d: tuple(r(d, d) for _ in range(4))  # noqa: E731
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    one = torch.tensor([[False, False, True, False]])
    return [
        Case("dim 8, 2 heads, sequence 1 padded after 2 tokens", (r(2, 5, 8), *w(8), 2, mask)),
        Case("no padding at all", (r(2, 3, 6), *w(6), 3, torch.ones(2, 3, dtype=torch.bool))),
        Case("one real key: every query takes it", (r(1, 4, 4), *w(4), 2, one)),
        Case(
            "large logits (x × 100), padding in the middle",
            (r(1, 5, 4) * 100, *w(4), 1, torch.tensor([[True, False, True, False, True]])),
        ),
        Case(
            "a sequence that is all padding: zero weights, zero output",
            (r(2, 3, 4), *w(4), 2, torch.tensor([[True, True, True], [False, False, False]])),
        ),
    ]


def prune_reference(context, w_o, b_o, keep):
    """The pooled output with some heads pruned: head ``i``'s context ``(B, d)`` is zeroed where
    ``keep[i]`` is False and nothing else changes (no renormalisation):
    ``Concat(keep_1 head_1, …, keep_h head_h) W^Oᵀ + b^O``."""
    kept = context * keep.to(context.dtype)[None, :, None]  # (B, h, d)
    return kept.flatten(1) @ w_o.T + b_o


def _prune_cases() -> list[Case]:
    g = torch.Generator().manual_seed(35)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    t = lambda *v: torch.tensor(v, dtype=torch.bool)  # noqa: E731
    return [
        Case(
            "4 heads of 2, prune head 1", (r(3, 4, 2), r(8, 8), r(8), t(True, False, True, True))
        ),
        Case("keep every head: the unpruned output", (r(2, 2, 3), r(6, 6), r(6), t(True, True))),
        Case(
            "prune every head: the bias alone", (r(2, 3, 2), r(6, 6), r(6), t(False, False, False))
        ),
        Case(
            "one head kept of 4, batch 1",
            (r(1, 4, 1), r(4, 4), r(4), t(False, False, True, False)),
        ),
    ]


def distance_reference(weights, grid, patch_size):
    """Mean attention distance per head in pixels: the self-attention chapter's per-query
    distance in grid cells, averaged over images and queries, times the patches' side."""
    return mean_attention_distance(weights, grid).mean(dim=(0, 2)) * patch_size


def _distance_cases() -> list[Case]:
    g = torch.Generator().manual_seed(36)
    att = lambda *s: torch.softmax(torch.randn(*s, generator=g) * 3, -1)  # noqa: E731
    return [
        Case("random heads on a 3 × 4 grid, patches of 2 px", (att(2, 3, 12, 12), (3, 4), 2.0)),
        Case("each patch attends to itself: 0", (torch.eye(6).expand(1, 2, 6, 6), (2, 3), 4.0)),
        Case(
            "uniform attention on a 4 × 4 grid", (torch.full((1, 1, 16, 16), 1 / 16), (4, 4), 1.0)
        ),
        Case("one row of 5 patches", (att(1, 2, 5, 5), (1, 5), 1.0)),
    ]


EXERCISES = {
    "masked_attention": Exercise(
        "masked_attention",
        "Multi-head self-attention from four (dim, dim) matrices with a key-padding mask "
        "(B, N): output (B, N, dim), weights (B, h, N, N), zero weight on padded keys.",
        reference=masked_mha_reference,
        make_cases=_masked_cases,
        weights={1: -1},
    ),
    "prune_heads": Exercise(
        "prune_heads",
        "The pooling's output with the heads where keep is False zeroed before W^O, nothing "
        "renormalised: (B, h, d) contexts → (B, D).",
        reference=prune_reference,
        make_cases=_prune_cases,
    ),
    "attention_distance": Exercise(
        "attention_distance",
        "Mean attention distance per head in pixels (ViT, Fig. 7): Σ_j w_ij · |c_i − c_j| "
        "averaged over queries and images → (h,).",
        reference=distance_reference,
        make_cases=_distance_cases,
    ),
}
