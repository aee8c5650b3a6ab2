"""Exercises of the Global attention chapter: patches as tokens, multi-head weights, the
quadratic cost."""

from __future__ import annotations

import torch
from einops import rearrange

from ..core import masked_softmax
from ..global_attention import patchify
from ..local_attention import score_entries
from . import Case, Exercise


def _head_weights(
    x: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor, num_heads: int
) -> torch.Tensor:
    """Per-head attention weights (B, h, N, N) of tokens (B, N, C) with projections (C, C),
    scale 1/√(C/h)."""
    q = rearrange(x @ w_q.T, "b n (h d) -> b h n d", h=num_heads)
    k = rearrange(x @ w_k.T, "b n (h d) -> b h n d", h=num_heads)
    return masked_softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1)


def _patch_cases() -> list[Case]:
    g = torch.Generator().manual_seed(31)
    return [
        Case("B=2, RGB 4×6, p=2", (torch.randn(2, 3, 4, 6, generator=g), 2)),
        Case("p=1: every pixel a token", (torch.randn(1, 2, 2, 3, generator=g), 1)),
        Case("one patch covering the image", (torch.randn(1, 1, 4, 4, generator=g), 4)),
    ]


def _head_cases() -> list[Case]:
    g = torch.Generator().manual_seed(32)

    def case(label, b, n, c, h, scale=1.0):
        return Case(
            label,
            (
                torch.randn(b, n, c, generator=g) * scale,
                torch.randn(c, c, generator=g),
                torch.randn(c, c, generator=g),
                h,
            ),
        )

    return [
        case("B=2, N=5, C=4, 2 heads", 2, 5, 4, 2),
        case("one head", 1, 3, 3, 1),
        case("one token", 2, 1, 4, 4),
        case("large inputs ×100", 1, 4, 4, 2, 100.0),
    ]


EXERCISES = {
    "patchify": Exercise(
        "patchify",
        "Images (B, C, H, W) → tokens (B, N, p·p·C), patches row-major, pixels row-major, "
        "channels last.",
        reference=patchify,
        make_cases=_patch_cases,
    ),
    "head_weights": Exercise(
        "head_weights",
        "Per-head global attention weights (B, h, N, N) from tokens and query/key projections.",
        reference=_head_weights,
        make_cases=_head_cases,
        weights={0: -1},
    ),
    "score_entries": Exercise(
        "score_entries",
        "How many attention weights global attention stores for one image of H×W tokens and "
        "h heads.",
        reference=lambda h, w, heads: score_entries(h, w, "global", num_heads=heads),
        make_cases=lambda: [
            Case("14×14, 12 heads", (14, 14, 12)),
            Case("1×1, 1 head", (1, 1, 1)),
            Case("64×64, 1 head", (64, 64, 1)),
            Case("7×3, 2 heads", (7, 3, 2)),
        ],
    ),
}
