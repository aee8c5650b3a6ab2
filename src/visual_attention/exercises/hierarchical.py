"""Exercises of the Hierarchical attention chapter: patch merging, regions, attention pooling."""

from __future__ import annotations

import torch

from ..blocks import AttentionPooling
from ..hierarchical import image_regions
from . import Case, Exercise


def _merge(x: torch.Tensor) -> torch.Tensor:
    """Swin's patch merging before its norm and projection: (B, H, W, C) → (B, H/2, W/2, 4C)."""
    return torch.cat(
        [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1
    )


@torch.no_grad()
def _pool(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, context: torch.Tensor):
    """HAN Eq. 5-7 by :class:`~visual_attention.blocks.AttentionPooling` with these parameters:
    weights (B, T) and pooled vector (B, C)."""
    pool = AttentionPooling(h.shape[-1], hidden_dim=weight.shape[0]).to(h.dtype)
    pool.proj.weight.copy_(weight)  # W
    pool.proj.bias.copy_(bias)  # b
    pool.score.weight.copy_(context[None])  # the context vector u
    return pool.weights(h), pool(h)


def _merge_cases() -> list[Case]:
    g = torch.Generator().manual_seed(21)
    return [
        Case("B=2, 4×4 grid, C=3", (torch.randn(2, 4, 4, 3, generator=g),)),
        Case("2×2 grid: a single group", (torch.randn(1, 2, 2, 2, generator=g),)),
        Case("4×6 grid, C=1", (torch.randn(1, 4, 6, 1, generator=g),)),
    ]


def _region_cases() -> list[Case]:
    g = torch.Generator().manual_seed(22)
    return [
        Case("B=2, C=3, 4×6 map, r=2", (torch.randn(2, 3, 4, 6, generator=g), 2)),
        Case("one region covering the map", (torch.randn(1, 2, 3, 3, generator=g), 3)),
        Case("r=1: every position its own region", (torch.randn(1, 4, 2, 2, generator=g), 1)),
    ]


def _pool_cases() -> list[Case]:
    g = torch.Generator().manual_seed(23)

    def case(label, b, t, c, a, scale=1.0):
        return Case(
            label,
            (
                torch.randn(b, t, c, generator=g) * scale,
                torch.randn(a, c, generator=g),
                torch.randn(a, generator=g),
                torch.randn(a, generator=g),
            ),
        )

    return [
        case("B=2, T=5, C=3, A=4", 2, 5, 3, 4),
        case("a single patch T=1", 3, 1, 2, 2),
        case("large inputs ×1000", 2, 6, 3, 3, 1000.0),
    ]


EXERCISES = {
    "merge_patches": Exercise(
        "merge_patches",
        "Concatenate each 2×2 group of tokens: (B, H, W, C) → (B, H/2, W/2, 4C) in Swin's order.",
        reference=_merge,
        make_cases=_merge_cases,
    ),
    "image_regions": Exercise(
        "image_regions",
        "Group a feature map (B, C, H, W) into regions (B, R, P, C), both in row-major order.",
        reference=image_regions,
        make_cases=_region_cases,
    ),
    "attention_pool": Exercise(
        "attention_pool",
        "HAN's attention pooling: weights (B, T) and the pooled vector (B, C).",
        reference=_pool,
        make_cases=_pool_cases,
        weights={0: -1},
    ),
}
