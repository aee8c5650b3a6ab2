"""Exercises of the Channel attention chapter, each asking for what the page has not shown: ECA's
1-D convolution written as the banded matrix it is, folding an input-independent gate into the
next 1 × 1 convolution, and DANet's channel attention module (a softmax over channels)."""

from __future__ import annotations

import torch

from . import Case, Exercise


def _eca_matrix_reference(w: torch.Tensor, channels: int) -> torch.Tensor:
    """The ``(C, C)`` matrix ``W`` with ``C1D_k(y) = W y`` for ECA's zero-padded, bias-free 1-D
    convolution of kernel ``w`` ``(k,)`` (odd ``k``, a cross-correlation as PyTorch computes it):
    ``W[c, c + j − (k − 1)/2] = w[j]`` where that column exists."""
    k = w.shape[0]
    pad = (k - 1) // 2
    matrix = torch.zeros(channels, channels, dtype=w.dtype)
    for c in range(channels):
        for j in range(k):
            col = c + j - pad
            if 0 <= col < channels:
                matrix[c, col] = w[j]
    return matrix


def _fold_reference(
    gate_logits: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """A static gate ``σ(w)`` ``(C,)`` followed by a ``1 × 1`` convolution (``weight``
    ``(O, C, 1, 1)``, ``bias`` ``(O,)``) is one
    ``1 × 1`` convolution: ``W'_{oc} = W_{oc} σ(w_c)``, the same bias."""
    return weight * torch.sigmoid(gate_logits)[None, :, None, None], bias.clone()


def _danet_reference(a: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DANet's channel attention module (Fu et al. 2019, Eq. 3-4) on ``a`` ``(B, C, H, W)``:
    ``X = softmax_i(A_i · A_j)`` ``(B, C, C)`` (row ``j`` sums to 1) and
    ``E_j = β Σ_i x_ji A_i + A_j`` ``(B, C, H, W)``."""
    b, c, h, w = a.shape
    flat = a.reshape(b, c, h * w)  # (B, C, N)
    x = torch.softmax(flat @ flat.transpose(1, 2), dim=-1)  # (B, C, C): x[j, i]
    return x, beta * (x @ flat).reshape(b, c, h, w) + a


def _eca_cases() -> list[Case]:
    g = torch.Generator().manual_seed(21)
    return [
        Case("k = 3, C = 8", (torch.randn(3, generator=g), 8)),
        Case("k = 5, C = 16", (torch.randn(5, generator=g), 16)),
        Case("k = 1 (a scalar times the identity)", (torch.randn(1, generator=g), 6)),
        Case("k = 7 > C = 4 (the band is cut by both edges)", (torch.randn(7, generator=g), 4)),
        Case("C = 1", (torch.randn(3, generator=g), 1)),
    ]


def _fold_cases() -> list[Case]:
    g = torch.Generator().manual_seed(22)

    def case(label, o, c, scale=1.0):
        return Case(
            label,
            (
                torch.randn(c, generator=g) * scale,
                torch.randn(o, c, 1, 1, generator=g),
                torch.randn(o, generator=g),
            ),
        )

    return [
        case("O = 4, C = 8", 4, 8),
        case("O = 1, C = 3", 1, 3),
        case("a gate nearly shut or fully open (logits ×30)", 5, 6, scale=30.0),
        Case(
            "gate logits all zero (σ = ½)",
            (torch.zeros(4), torch.ones(2, 4, 1, 1), torch.zeros(2)),
        ),
    ]


def _danet_cases() -> list[Case]:
    g = torch.Generator().manual_seed(23)
    return [
        Case("B = 2, C = 4, 3 × 3, β = 0.5", (torch.randn(2, 4, 3, 3, generator=g), 0.5)),
        Case("β = 0: E = A", (torch.randn(1, 3, 2, 2, generator=g), 0.0)),
        Case("C = 1: X = 1", (torch.randn(2, 1, 4, 4, generator=g), 1.0)),
        Case("a 1 × 1 map, C = 5", (torch.randn(3, 5, 1, 1, generator=g), 2.0)),
        Case(
            "large activations (dot products of ~10⁴: mind the overflow)",
            (torch.randn(1, 4, 4, 4, generator=g) * 30, 0.1),
        ),
    ]


EXERCISES = {
    "eca_matrix": Exercise(
        "eca_matrix",
        "ECA's zero-padded 1-D convolution over channels as a (C, C) banded matrix W, "
        "C1D_k(y) = W y.",
        reference=_eca_matrix_reference,
        make_cases=_eca_cases,
    ),
    "fold_static_gate": Exercise(
        "fold_static_gate",
        "Fold a static gate σ(w) (C,) into the next 1 × 1 convolution: (weight', bias').",
        reference=_fold_reference,
        make_cases=_fold_cases,
    ),
    "danet_channel": Exercise(
        "danet_channel",
        "DANet's channel attention: X = softmax over channels of A Aᵀ (B, C, C) and "
        "E = β X A + A (B, C, H, W).",
        reference=_danet_reference,
        make_cases=_danet_cases,
    ),
}
