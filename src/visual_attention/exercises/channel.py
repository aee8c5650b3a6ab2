"""Exercises of the Channel attention chapter: SE gate, ECA's kernel size, CBAM's channel gate."""

from __future__ import annotations

import torch

from ..channel import eca_kernel_size
from . import Case, Exercise


def _se_reference(x, w1, b1, w2, b2):
    """SE on ``x`` (B, C, H, W) with FC weights ``w1`` (C/r, C), ``b1`` (C/r,), ``w2`` (C, C/r),
    ``b2`` (C,): returns ``(gate (B, C), output (B, C, H, W))``."""
    z = x.mean(dim=(2, 3))
    s = torch.sigmoid(torch.relu(z @ w1.T + b1) @ w2.T + b2)
    return s, x * s[:, :, None, None]


def _cbam_reference(x, w1, b1, w2, b2):
    """CBAM's channel gate ``σ(MLP(avg) + MLP(max))`` (B, C), weights as in the SE exercise."""

    def mlp(v):
        return torch.relu(v @ w1.T + b1) @ w2.T + b2

    return torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))


def _mlp_cases(seed: int) -> list[Case]:
    g = torch.Generator().manual_seed(seed)

    def case(label, b, c, r, h, w, scale=1.0):
        rd = max(1, c // r)
        return Case(
            label,
            (
                torch.randn(b, c, h, w, generator=g) * scale,
                torch.randn(rd, c, generator=g) / c**0.5,
                torch.randn(rd, generator=g) * 0.1,
                torch.randn(c, rd, generator=g) / rd**0.5,
                torch.randn(c, generator=g) * 0.1,
            ),
        )

    x_neg = -torch.rand(2, 16, 3, 3, generator=g) - 0.5  # all negative: max pool ≠ |values|
    w = (
        torch.randn(4, 16, generator=g) / 4,
        torch.zeros(4),
        torch.randn(16, 4, generator=g) / 2,
        torch.zeros(16),
    )
    return [
        case("B=2, C=32, r=16, 4×4", 2, 32, 16, 4, 4),
        case("B=3, C=16, r=4, 5×3 (not square)", 3, 16, 4, 5, 3),
        case("a 1×1 feature map", 2, 8, 2, 1, 1),
        case("large activations (×50)", 1, 16, 4, 2, 2, scale=50.0),
        Case("all activations negative", (x_neg, *w)),
    ]


def _eca_cases() -> list[Case]:
    cases = [Case(f"C = {c}", (c,)) for c in (1, 2, 16, 64, 96, 256, 512, 1000, 1024, 2048)]
    cases += [
        Case("C = 256, γ = 1, b = 1", (256,), {"gamma": 1, "beta": 1}),
        Case("C = 64, γ = 3, b = 2", (64,), {"gamma": 3, "beta": 2}),
    ]
    return cases


EXERCISES = {
    "squeeze_excite": Exercise(
        "squeeze_excite",
        "SE gate s = σ(W2 ReLU(W1 GAP(x) + b1) + b2) (B, C) and output s·x (B, C, H, W).",
        reference=_se_reference,
        make_cases=lambda: _mlp_cases(11),
    ),
    "eca_kernel_size": Exercise(
        "eca_kernel_size",
        "ECA's adaptive kernel size k = |log2(C)/γ + b/γ|, made odd (an int).",
        reference=eca_kernel_size,
        make_cases=_eca_cases,
        atol=0,
        rtol=0,
    ),
    "cbam_channel_gate": Exercise(
        "cbam_channel_gate",
        "CBAM's channel gate σ(MLP(avg-pool(x)) + MLP(max-pool(x))) (B, C), with a shared MLP.",
        reference=_cbam_reference,
        make_cases=lambda: _mlp_cases(12),
    ),
}
