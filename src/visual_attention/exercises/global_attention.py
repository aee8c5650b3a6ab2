"""Exercises of the Global attention chapter: tokens back to an image (the inverse of the
patchify the chapter shows), multi-head weights, the quadratic cost."""

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


def _unpatchify(tokens: torch.Tensor, patch_size: int, height: int, width: int) -> torch.Tensor:
    """Tokens ``(B, N, p·p·C)`` (the order of ``patchify``) back to images ``(B, C, H, W)``."""
    p = patch_size
    return rearrange(
        tokens, "b (h w) (p1 p2 c) -> b c (h p1) (w p2)", h=height // p, w=width // p, p1=p, p2=p
    )


def _unpatch_cases() -> list[Case]:
    g = torch.Generator().manual_seed(3)

    def case(label, images, p):  # the tokens of known images
        return Case(label, (patchify(images, p), p, images.shape[2], images.shape[3]))

    return [
        case("B=2, RGB 4×6, p=2", torch.randn(2, 3, 4, 6, generator=g), 2),
        case("p=1: every pixel a token", torch.randn(1, 2, 2, 3, generator=g), 1),
        case("one patch covering the image", torch.randn(1, 1, 4, 4, generator=g), 4),
        case("a wide image, 2 × 8 patches of 3", torch.randn(1, 2, 6, 24, generator=g), 3),
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
    "unpatchify": Exercise(
        "unpatchify",
        "Tokens (B, N, p·p·C) in patchify's order back to images (B, C, H, W): the inverse of "
        "patchify.",
        reference=_unpatchify,
        make_cases=_unpatch_cases,
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
