"""Exercises of the Foundations chapter: the entropy of the weights, several queries at once, a
local mask built by hand."""

from __future__ import annotations

import torch

from ..core import masked_softmax, query_attention
from . import Case, Exercise


def _entropy(scores: torch.Tensor) -> torch.Tensor:
    """H = logsumexp(s) - Σ p·s over the last dim, computed in float64 on shifted scores."""
    z = scores.double()
    z = z - z.amax(dim=-1, keepdim=True)  # H does not change; exp() cannot overflow
    p = masked_softmax(z, dim=-1)
    return (torch.logsumexp(z, dim=-1) - (p * z).sum(dim=-1)).to(scores.dtype)


def _entropy_cases() -> list[Case]:
    g = torch.Generator().manual_seed(1)
    return [
        Case("random scores (2, 16)", (torch.randn(2, 16, generator=g),)),
        Case("a batch of maps (3, 4, 5)", (torch.randn(3, 4, 5, generator=g),)),
        Case("uniform scores over 7 (H = log 7)", (torch.zeros(2, 7),)),
        Case(
            "large logits ±1e4, row 1 one-hot (H = 0)",
            (torch.tensor([[1e4, 1e4 - 1.0, 0.0], [-1e4, 0.0, 1e4]]),),
        ),
        Case("one column (4, 1)", (torch.randn(4, 1, generator=g),)),
    ]


def _multi_query(
    feature_maps: torch.Tensor, queries: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Q queries per image: each query is an image of its own for ``query_attention``."""
    b, c, h, w = feature_maps.shape
    n = queries.shape[1]
    maps = feature_maps[:, None].expand(b, n, c, h, w).reshape(b * n, c, h, w)
    weights, context = query_attention(maps, queries.reshape(b * n, c))
    return weights.reshape(b, n, h, w), context.reshape(b, n, c)


def _multi_query_cases() -> list[Case]:
    g = torch.Generator().manual_seed(2)
    return [
        Case(
            "B=2, Q=3, C=3, 4×4",
            (torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 3, generator=g)),
        ),
        Case(
            "batch of one, one query, 2×7",
            (torch.randn(1, 5, 2, 7, generator=g), torch.randn(1, 1, 5, generator=g)),
        ),
        Case(
            "a single position 1×1, Q=4",
            (torch.randn(3, 2, 1, 1, generator=g), torch.randn(3, 4, 2, generator=g)),
        ),
        Case(
            "large queries (×100)",
            (torch.randn(2, 4, 3, 3, generator=g), 100 * torch.randn(2, 2, 4, generator=g)),
        ),
    ]


def _window(scores: torch.Tensor, radius: int) -> torch.Tensor:
    n = scores.shape[-1]
    i = torch.arange(n)
    keep = (i[:, None] - i[None, :]).abs() <= radius  # (N, N): the band |i - j| <= r
    return masked_softmax(scores, dim=-1, mask=keep)


def _window_cases() -> list[Case]:
    g = torch.Generator().manual_seed(3)
    s = torch.randn(2, 6, 6, generator=g)
    return [
        Case("radius 1, (2, 6, 6)", (s, 1)),
        Case("radius 0 (identity weights)", (s, 0)),
        Case("radius 10 >= N (plain softmax)", (s, 10)),
        Case("batch of one, radius 2, (1, 5, 5)", (torch.randn(1, 5, 5, generator=g), 2)),
        Case(
            "large logits ±1e4, radius 1",
            (torch.tensor([[[1e4, -1e4, 1e4], [0.0, -1e4, 1e4], [1e4, 1e4, -1e4]]]), 1),
        ),
    ]


# [start-exercise-registry]
EXERCISES = {
    "attention_entropy": Exercise(
        "attention_entropy",
        "Entropy H = -Σ p log p of p = softmax(s) over the last dim, finite for large scores.",
        reference=_entropy,
        make_cases=_entropy_cases,
    ),
    # [end-exercise-registry]
    "multi_query_attention": Exercise(
        "multi_query_attention",
        "Q queries per image (B, Q, C) over feature maps (B, C, H, W): weights (B, Q, H, W) and "
        "contexts (B, Q, C).",
        reference=_multi_query,
        make_cases=_multi_query_cases,
        weights={0: (-2, -1)},
    ),
    "window_weights": Exercise(
        "window_weights",
        "Softmax of scores (B, N, N) over the keys j with |i - j| <= radius only.",
        reference=_window,
        make_cases=_window_cases,
        weights={0: -1},
        allowed=("visual_attention.core.masked_softmax",),
    ),
}
