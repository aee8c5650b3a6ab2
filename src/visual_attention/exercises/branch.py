"""Exercises of the Branch attention chapter: the branches merged into one dynamic kernel (the
CondConv view), the weights read back from an output, the size of an SK unit, a select step's
bug."""

from __future__ import annotations

import torch

from ..branch import SelectiveKernel, select_branches
from ..core import masked_softmax
from . import Case, Exercise


def _merged_reference(kernels: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """One ``(2M + 1) × (2M + 1)`` kernel ``(C, C_in/G, 2M+1, 2M+1)`` for ``M`` 3 × 3 kernels
    ``(M, C, C_in/G, 3, 3)``, branch ``m`` dilated ``m + 1``, weighted per channel by ``a``
    ``(M, C)``: ``conv(x, K, padding=M) = Σ_m a_m ⊙ conv(x, k_m, padding=m+1, dilation=m+1)``."""
    m, c, cg = kernels.shape[:3]
    merged = kernels.new_zeros(c, cg, 2 * m + 1, 2 * m + 1)
    for i in range(m):
        d, lo = i + 1, m - (i + 1)  # dilation, offset of the dilated taps in the big kernel
        taps = slice(lo, lo + 2 * d + 1, d)
        merged[:, :, taps, taps] += a[i][:, None, None, None] * kernels[i]
    return merged


def _merged_cases() -> list[Case]:
    g = torch.Generator().manual_seed(11)

    def case(label, m, c, cg, a=None):
        a = torch.rand(m, c, generator=g).softmax(0) if a is None else a
        return Case(label, (torch.randn(m, c, cg, 3, 3, generator=g), a))

    return [
        case("SK's two branches: M=2, C=4, C_in/G=2", 2, 4, 2),
        case("depthwise: M=2, C=3, C_in/G=1", 2, 3, 1),
        case("three branches (3×3, 5×5, 7×7): M=3, C=2, C_in/G=2", 3, 2, 2),
        case(
            "a one-hot choice: all of the dilated branch",
            2,
            2,
            1,
            torch.tensor([[0.0, 0.0], [1.0, 1.0]]),
        ),
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


def _fixed_select_reference(u: torch.Tensor, select_logits: torch.Tensor) -> torch.Tensor:
    """SK's select step from ``fc_select``'s output ``(B, M·C)``, ordered branch by branch:
    ``V = Σ_m softmax_m(logits) ⊙ U_m`` ``(B, C, H, W)`` for ``u`` ``(B, M, C, H, W)``."""
    b, m, c = u.shape[:3]
    return select_branches(u, masked_softmax(select_logits.reshape(b, m, c), dim=1))


def _fixed_select_cases() -> list[Case]:
    g = torch.Generator().manual_seed(13)

    def case(label, b, m, c, h, w, scale=1.0):
        u = torch.randn(b, m, c, h, w, generator=g)
        return Case(label, (u, scale * torch.randn(b, m * c, generator=g)))

    return [
        case("B=2, M=2, C=4, 3×3", 2, 2, 4, 3, 3),
        case("three branches: B=1, M=3, C=5, 2×2", 1, 3, 5, 2, 2),
        case("one channel: B=3, M=2, C=1, 4×4", 3, 2, 1, 4, 4),
        case("large logits (×50): nearly one-hot", 2, 2, 3, 2, 2, 50.0),
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


EXERCISES = {
    "merged_kernel": Exercise(
        "merged_kernel",
        "SK's branches before BN and ReLU as one convolution: M 3×3 kernels (M, C, C_in/G, 3, 3), "
        "branch m dilated m + 1, weighted per output channel by a (M, C), merged into one "
        "(C, C_in/G, 2M+1, 2M+1) kernel for padding M.",
        reference=_merged_reference,
        make_cases=_merged_cases,
        atol=1e-5,
    ),
    "recover_weights": Exercise(
        "recover_weights",
        "Read SK's choice back from its output: with two branches, V = (1 - a_2) U_1 + a_2 U_2 "
        "per channel; from U_1, U_2 and V (B, C, H, W) return a_2 (B, C).",
        reference=_recover_reference,
        make_cases=_recover_cases,
        atol=1e-4,
    ),
    "fixed_select": Exercise(
        "fixed_select",
        "Find the bug: SK's select step from fc_select's output (B, M·C), ordered branch by "
        "branch, and the branches U (B, M, C, H, W): V = Σ_m a_m ⊙ U_m (B, C, H, W) with a "
        "softmax across the branches per channel.",
        reference=_fixed_select_reference,
        make_cases=_fixed_select_cases,
        atol=1e-5,
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
}
