"""Exercises of the Branch attention chapter: softmax across branches, the weights read back from
an output, the size of an SK unit, the d rule."""

from __future__ import annotations

import torch

from ..branch import SelectiveKernel, sk_rd_channels
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


def _recover_reference(u1: torch.Tensor, u2: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``a_2`` per image and channel from ``V = (1 - a_2) U_1 + a_2 U_2`` (least squares over the
    positions): ``Σ (V - U_1)(U_2 - U_1) / Σ (U_2 - U_1)²``."""
    d = u2 - u1
    return ((v - u1) * d).sum(dim=(-2, -1)) / (d * d).sum(dim=(-2, -1))


def _recover_cases() -> list[Case]:
    g = torch.Generator().manual_seed(12)

    def case(label, b, c, h, w, a2=None):
        u1, u2 = torch.randn(b, c, h, w, generator=g), torch.randn(b, c, h, w, generator=g)
        a2 = torch.rand(b, c, generator=g) if a2 is None else a2
        v = (1 - a2)[..., None, None] * u1 + a2[..., None, None] * u2
        return Case(label, (u1, u2, v))

    return [
        case("B=2, C=4, 5×5", 2, 4, 5, 5),
        case("B=1, C=3, 2×7", 1, 3, 2, 7),
        case("a single position 1×1", 3, 2, 1, 1),
        case("weights 0 and 1 (V = U_1, V = U_2)", 1, 2, 4, 4, torch.tensor([[0.0, 1.0]])),
    ]


def _sk_parameters(
    in_channels: int, out_channels: int, groups: int, rd_channels: int, branches: int = 2
) -> int:
    sizes = tuple(3 + 2 * m for m in range(branches))  # 3×3, 5×5, 7×7, … (dilated 3×3 kernels)
    unit = SelectiveKernel(
        in_channels, out_channels, kernel_sizes=sizes, groups=groups, rd_channels=rd_channels
    )
    return sum(p.numel() for p in unit.parameters())


def _parameter_cases() -> list[Case]:
    return [
        Case("SKNet's unit: 64 → 64, G=32, d=32", (64, 64, 32, 32)),
        Case("16 → 32, G=4, d=16", (16, 32, 4, 16)),
        Case("3 → 16, G=1, d=32 (a first layer)", (3, 16, 1, 32)),
        Case("three branches: 32 → 32, G=8, d=32, M=3", (32, 32, 8, 32, 3)),
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
    "recover_weights": Exercise(
        "recover_weights",
        "Read SK's choice back from its output: with two branches, V = (1 - a_2) U_1 + a_2 U_2 "
        "per channel; from U_1, U_2 and V (B, C, H, W) return a_2 (B, C).",
        reference=_recover_reference,
        make_cases=_recover_cases,
        atol=1e-4,
    ),
    "sk_parameters": Exercise(
        "sk_parameters",
        "The number of parameters of an SK unit with M dilated 3×3 branches (conv, BN each), "
        "W (C × d, no bias), its BN, and A (d × M·C, no bias).",
        reference=_sk_parameters,
        make_cases=_parameter_cases,
        atol=0,
        rtol=0,
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
