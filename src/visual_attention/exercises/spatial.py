"""Exercises of the Spatial attention chapter: where a map looks (its centre of mass), the score
gap a softmax needs to put a given share of its weight on an object (the softmax inverted), and
attention pooling with its bug found."""

from __future__ import annotations

import torch

from . import Case, Exercise


def _score_gap_reference(
    share: torch.Tensor, on: torch.Tensor, positions: torch.Tensor
) -> torch.Tensor:
    """The score gap ``Δ`` that puts a softmax weight ``share`` on ``on`` of ``positions``
    positions (all ``on`` positions scoring ``Δ`` above the others): ``log(p / (1 - p)) +
    log((N - m) / m)``."""
    return torch.log(share / (1 - share)) + torch.log((positions - on) / on)


def _attention_pool_reference(x: torch.Tensor, query: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Attention pooling with one query per image: ``x`` ``(B, C, H, W)``, ``query`` ``(B, C)``
    → context ``(B, C)`` and weights ``(B, H, W)``, softmax over the positions of
    ``⟨q, x_ij⟩ / √C``."""
    b, c, h, w = x.shape
    scores = torch.einsum("bc,bcp->bp", query, x.flatten(2)) / c**0.5  # (B, H·W)
    weights = scores.softmax(dim=-1)  # over the positions
    context = torch.einsum("bp,bcp->bc", weights, x.flatten(2))
    return context, weights.reshape(b, h, w)


def _centre_reference(weights: torch.Tensor) -> torch.Tensor:
    """The expected position of a spatial attention map: ``(B, H, W)`` → ``(B, 2)`` as
    ``(Σ w_ij · i, Σ w_ij · j)``."""
    h, w = weights.shape[-2:]
    rows = torch.arange(h, dtype=weights.dtype)
    cols = torch.arange(w, dtype=weights.dtype)
    return torch.stack([(weights.sum(-1) * rows).sum(-1), (weights.sum(-2) * cols).sum(-1)], -1)


def _centre_cases() -> list[Case]:
    g = torch.Generator().manual_seed(11)

    def softmax_map(b, h, w, scale=1.0):
        return (torch.randn(b, h * w, generator=g) * scale).softmax(-1).reshape(b, h, w)

    one_hot = torch.zeros(2, 4, 5)
    one_hot[0, 1, 3] = one_hot[1, 3, 0] = 1.0
    return [
        Case("B=2, 4×5 softmax maps", (softmax_map(2, 4, 5),)),
        Case("one-hot maps: the position itself", (one_hot,)),
        Case("uniform 3×7: the centre", (torch.full((1, 3, 7), 1 / 21),)),
        Case("a single position 1×1", (torch.ones(3, 1, 1),)),
        Case("sharp maps (scores ×20)", (softmax_map(2, 6, 6, 20.0),)),
    ]


def _score_gap_cases() -> list[Case]:
    t = torch.tensor
    return [
        Case("the digit's 16 of 144 cells, half the weight", (t([0.5]), t([16.0]), t([144.0]))),
        Case(
            "a batch of shares",
            (t([0.1, 0.55, 0.9, 0.99]), t([16.0, 16.0, 4.0, 1.0]), t([144.0, 144.0, 36.0, 9.0])),
        ),
        Case("the uniform share m / N: no gap", (t([0.25, 1 / 9]), t([4.0, 1.0]), t([16.0, 9.0]))),
        Case("a share below m / N: a negative gap", (t([0.01]), t([8.0]), t([64.0]))),
        Case(
            "float64",
            (t([0.3, 0.7], dtype=torch.float64), t([2.0, 5.0]).double(), t([10.0, 50.0]).double()),
        ),
    ]


def _attention_pool_cases() -> list[Case]:
    g = torch.Generator().manual_seed(14)
    return [
        Case(
            "B=2, C=4, 3×5", (torch.randn(2, 4, 3, 5, generator=g), torch.randn(2, 4, generator=g))
        ),
        Case(
            "a zero query: global average pooling",
            (torch.randn(1, 3, 4, 4, generator=g), torch.zeros(1, 3)),
        ),
        Case(
            "large scores (query ×50)",
            (torch.randn(2, 8, 2, 3, generator=g), 50 * torch.randn(2, 8, generator=g)),
        ),
        Case(
            "one channel, one position",
            (torch.randn(3, 1, 1, 1, generator=g), torch.randn(3, 1, generator=g)),
        ),
        Case(
            "B=1, C=16, 6×6",
            (torch.randn(1, 16, 6, 6, generator=g), torch.randn(1, 16, generator=g)),
        ),
    ]


EXERCISES = {
    "attention_centre": Exercise(
        "attention_centre",
        "Where a spatial map looks: the expected (row, col) position of weights (B, H, W) that "
        "sum to 1, as (B, 2).",
        reference=_centre_reference,
        make_cases=_centre_cases,
    ),
    "score_gap": Exercise(
        "score_gap",
        "Invert the softmax: the score gap Δ between the m object positions and the N - m others "
        "that puts a share p of the weight on the object, elementwise for tensors p, m, N.",
        reference=_score_gap_reference,
        make_cases=_score_gap_cases,
    ),
    "attention_pool": Exercise(
        "attention_pool",
        "Find the bug: attention pooling of (B, C, H, W) with a query (B, C), returning the "
        "context (B, C) and weights (B, H, W) that sum to 1 over the positions.",
        reference=_attention_pool_reference,
        make_cases=_attention_pool_cases,
        weights={1: (1, 2)},
    ),
}
