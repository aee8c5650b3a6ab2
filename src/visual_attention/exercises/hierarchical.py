"""Exercises of the Hierarchical attention chapter: undoing patch merging, regions, the weight of
every position under a two-level pooling."""

from __future__ import annotations

import torch
from einops import rearrange

from ..hierarchical import image_regions
from . import Case, Exercise


def _split(y: torch.Tensor) -> torch.Tensor:
    """The inverse of Swin's patch merging before its norm and projection:
    (B, H/2, W/2, 4C) → (B, H, W, C), the four groups of channels in Swin's order (even row, even
    column), (odd, even), (even, odd), (odd, odd)."""
    b, h, w, c4 = y.shape
    x = y.new_empty(b, 2 * h, 2 * w, c4 // 4)
    for k, (i, j) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
        x[:, i::2, j::2] = y[..., k * (c4 // 4) : (k + 1) * (c4 // 4)]
    return x


def _position_weights(
    region_weights: torch.Tensor, patch_weights: torch.Tensor, width: int
) -> torch.Tensor:
    """The weight of every position under two-level pooling: ``α_i α_it`` put back on the map.

    ``region_weights`` (B, R), ``patch_weights`` (B, R, P) of ``r × r`` regions (``P = r²``) in
    row-major order over a map ``width`` positions wide, positions in row-major order inside each
    region → (B, H, W)."""
    r = round(patch_weights.shape[-1] ** 0.5)
    product = region_weights[..., None] * patch_weights  # (B, R, P)
    return rearrange(product, "b (nh nw) (r1 r2) -> b (nh r1) (nw r2)", nw=width // r, r1=r, r2=r)


def _split_cases() -> list[Case]:
    g = torch.Generator().manual_seed(21)
    return [
        Case("B=2, 2×2 merged grid, C=3", (torch.randn(2, 2, 2, 12, generator=g),)),
        Case("a single merged token", (torch.randn(1, 1, 1, 8, generator=g),)),
        Case("2×3 merged grid, C=1", (torch.randn(1, 2, 3, 4, generator=g),)),
    ]


def _region_cases() -> list[Case]:
    g = torch.Generator().manual_seed(22)
    return [
        Case("B=2, C=3, 4×6 map, r=2", (torch.randn(2, 3, 4, 6, generator=g), 2)),
        Case("one region covering the map", (torch.randn(1, 2, 3, 3, generator=g), 3)),
        Case("r=1: every position its own region", (torch.randn(1, 4, 2, 2, generator=g), 1)),
    ]


def _weights_cases() -> list[Case]:
    g = torch.Generator().manual_seed(23)

    def case(label, b, regions, patches, width):
        return Case(
            label,
            (
                torch.randn(b, regions, generator=g).softmax(-1),
                torch.randn(b, regions, patches, generator=g).softmax(-1),
                width,
            ),
        )

    return [
        case("B=2, 4×4 map, 2×2 regions of 2×2", 2, 4, 4, 4),
        case("4×6 map: 2 × 3 regions of 2×2", 1, 6, 4, 6),
        case("one region of 3×3", 2, 1, 9, 3),
        case("every position its own region", 1, 6, 1, 3),
    ]


EXERCISES = {
    "split_patches": Exercise(
        "split_patches",
        "Undo Swin's patch merging: (B, H/2, W/2, 4C) → (B, H, W, C), channels in Swin's order.",
        reference=_split,
        make_cases=_split_cases,
    ),
    "image_regions": Exercise(
        "image_regions",
        "Group a feature map (B, C, H, W) into regions (B, R, P, C), both in row-major order.",
        reference=image_regions,
        make_cases=_region_cases,
    ),
    "position_weights": Exercise(
        "position_weights",
        "The weight α_i α_it of every position of a two-level pooling, on the map: (B, H, W).",
        reference=_position_weights,
        make_cases=_weights_cases,
    ),
}
