"""Exercises of the Foundations chapter: the entropy of the weights, the softmax's Jacobian, a
local mask built by hand."""

from __future__ import annotations

import torch

from ..core import masked_softmax
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


def _softmax_jacobian(scores: torch.Tensor) -> torch.Tensor:
    """∂p_i/∂s_j = p_i (δ_ij − p_j) of p = softmax(s) over the last dim: (..., N) → (..., N, N)."""
    p = masked_softmax(scores, dim=-1)
    return torch.diag_embed(p) - p[..., :, None] * p[..., None, :]


def _jacobian_cases() -> list[Case]:
    g = torch.Generator().manual_seed(2)
    return [
        Case("random scores (2, 5)", (torch.randn(2, 5, generator=g),)),
        Case("a batch of rows (3, 2, 4)", (torch.randn(3, 2, 4, generator=g),)),
        Case("equal scores over 4 (p = 1/4)", (torch.zeros(1, 4),)),
        Case("one position (2, 1): J = 0", (torch.randn(2, 1, generator=g),)),
        Case("large logits ±1e4 (one-hot: J = 0)", (torch.tensor([[1e4, 0.0, -1e4]]),)),
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
    "softmax_jacobian": Exercise(
        "softmax_jacobian",
        "The Jacobian ∂p_i/∂s_j (..., N, N) of p = softmax(s) over the last dim of s (..., N).",
        reference=_softmax_jacobian,
        make_cases=_jacobian_cases,
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
