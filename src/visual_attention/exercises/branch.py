"""Exercises of the Branch attention chapter: softmax across branches, fuse, select, the d rule."""

from __future__ import annotations

import torch

from ..branch import fuse_branches, select_branches, sk_rd_channels
from ..core import masked_softmax
from . import Case, Exercise


def _softmax_cases() -> list[Case]:
    g = torch.Generator().manual_seed(11)
    return [
        Case("two branches (B=2, M=2, C=8)", (torch.randn(2, 2, 8, generator=g),)),
        Case("three branches (B=3, M=3, C=4)", (torch.randn(3, 3, 4, generator=g),)),
        Case("large logits ±1e4", (torch.tensor([[[1e4, -1e4], [1e4 - 2.0, 0.0]]]),)),
        Case("one channel (B=1, M=2, C=1)", (torch.randn(1, 2, 1, generator=g),)),
    ]


def _fuse_cases() -> list[Case]:
    g = torch.Generator().manual_seed(12)
    return [
        Case("B=2, M=2, C=4, 5×5", (torch.randn(2, 2, 4, 5, 5, generator=g),)),
        Case("B=1, M=3, C=2, 3×7", (torch.randn(1, 3, 2, 3, 7, generator=g),)),
        Case("a single position 1×1", (torch.randn(3, 2, 6, 1, 1, generator=g),)),
    ]


def _select_cases() -> list[Case]:
    g = torch.Generator().manual_seed(13)

    def case(label, b, m, c, h, w):
        u = torch.randn(b, m, c, h, w, generator=g)
        a = masked_softmax(torch.randn(b, m, c, generator=g), dim=1)
        return Case(label, (u, a))

    one_hot = torch.zeros(2, 2, 3)
    one_hot[:, 1] = 1.0
    return [
        case("B=2, M=2, C=4, 5×5", 2, 2, 4, 5, 5),
        case("B=1, M=3, C=2, 4×3", 1, 3, 2, 4, 3),
        Case(
            "all weight on branch 1 (must return U_1)",
            (torch.randn(2, 2, 3, 4, 4, generator=g), one_hot),
        ),
    ]


def _rd_cases() -> list[Case]:
    return [
        Case("C=64 (the floor L=32 wins)", (64,)),
        Case("C=1024 (C/16 = 64 wins)", (1024,)),
        Case("C=2048", (2048,)),
        Case("C=512 exactly at the floor", (512,)),
        Case("C=100, r=8, L=8 (round C/r down)", (100, 1 / 8, 8)),
        Case("C=48, r=16, L=1", (48, 1 / 16, 1)),
    ]


EXERCISES = {
    "branch_softmax": Exercise(
        "branch_softmax",
        "Branch weights (B, M, C): a softmax across the M branches (dim 1) for every channel, "
        "stable for large logits.",
        reference=lambda logits: masked_softmax(logits, dim=1),
        make_cases=_softmax_cases,
        weights={0: 1},
    ),
    "fuse": Exercise(
        "fuse",
        "SKNet's fuse step: s = GAP(Σ_m U_m), from branches (B, M, C, H, W) to (B, C).",
        reference=fuse_branches,
        make_cases=_fuse_cases,
    ),
    "select": Exercise(
        "select",
        "SKNet's select step: V = Σ_m a_m ⊙ U_m, from branches (B, M, C, H, W) and weights "
        "(B, M, C) to (B, C, H, W).",
        reference=select_branches,
        make_cases=_select_cases,
    ),
    "rd_channels": Exercise(
        "rd_channels",
        "The width of z: d = max(⌊C / r⌋, L), with rd_ratio = 1/r (default 1/16), L (default 32).",
        reference=sk_rd_channels,
        make_cases=_rd_cases,
        atol=0,
        rtol=0,
    ),
}
