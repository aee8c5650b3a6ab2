"""Exercises of the Temporal attention chapter: masked pooling, causal weights, weight mass."""

from __future__ import annotations

import torch

from ..core import masked_softmax
from ..temporal import causal_mask
from . import Case, Exercise


def _pool(
    scores: torch.Tensor, features: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    weights = masked_softmax(scores, dim=-1, mask=mask)
    return weights, torch.einsum("bt,btd->bd", weights, features)


def _pool_cases() -> list[Case]:
    g = torch.Generator().manual_seed(11)
    mask = torch.rand(3, 6, generator=g) > 0.3
    mask[:, 0] = True
    empty = mask.clone()
    empty[2] = False
    return [
        Case(
            "all frames valid (2, 5)",
            (
                torch.randn(2, 5, generator=g),
                torch.randn(2, 5, 4, generator=g),
                torch.ones(2, 5, dtype=torch.bool),
            ),
        ),
        Case(
            "some frames padded (3, 6)",
            (torch.randn(3, 6, generator=g), torch.randn(3, 6, 2, generator=g), mask),
        ),
        Case(
            "a clip with no valid frame",
            (torch.randn(3, 6, generator=g), torch.randn(3, 6, 2, generator=g), empty),
        ),
        Case(
            "large scores ±1e4",
            (
                torch.tensor([[1e4, 0.0, -1e4]]),
                torch.randn(1, 3, 2, generator=g),
                torch.ones(1, 3, dtype=torch.bool),
            ),
        ),
    ]


def _causal_cases() -> list[Case]:
    g = torch.Generator().manual_seed(12)
    return [
        Case(f"{b} clips of {t} frames", (torch.randn(b, t, t, generator=g),))
        for b, t in ((2, 4), (1, 1), (3, 7))
    ]


def _mass(weights: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    return (weights * present).sum(-1).mean()


def _mass_cases() -> list[Case]:
    g = torch.Generator().manual_seed(13)
    w = torch.softmax(torch.randn(5, 8, generator=g), -1)
    present = torch.rand(5, 8, generator=g) > 0.6
    one_hot = torch.eye(4)
    return [
        Case("random weights (5, 8)", (w, present)),
        Case("all weight on present frames", (one_hot, torch.eye(4, dtype=torch.bool))),
        Case("no frame present", (w, torch.zeros(5, 8, dtype=torch.bool))),
    ]


EXERCISES = {
    "masked_pool": Exercise(
        "masked_pool",
        "Frame weights (B, T) = masked softmax of scores over time, and the clip vector (B, D).",
        reference=_pool,
        make_cases=_pool_cases,
        weights={0: -1},
        allowed=("visual_attention.core.masked_softmax",),  # Foundations' softmax, reused
    ),
    "causal_weights": Exercise(
        "causal_weights",
        "Softmax of (B, T, T) frame-to-frame scores where frame t may attend only to s <= t.",
        reference=lambda s: masked_softmax(s, dim=-1, mask=causal_mask(s.shape[-1])),
        make_cases=_causal_cases,
        weights={0: -1},
        allowed=("visual_attention.core.masked_softmax",),  # the mask is the exercise
    ),
    "present_mass": Exercise(
        "present_mass",
        "Mean over clips of the attention weight that falls on frames where the digit is present.",
        reference=_mass,
        make_cases=_mass_cases,
    ),
}
