"""Exercises of the Temporal attention chapter: divided space-time attention (time, then space),
a causal window over the past, and a learned relative temporal bias."""

from __future__ import annotations

import torch

from ..core import masked_softmax
from . import Case, Exercise


def _attend(x: torch.Tensor) -> torch.Tensor:
    """``softmax(x xᵀ / √D) x`` over the second-to-last dimension (identity projections)."""
    weights = torch.softmax(x @ x.transpose(-2, -1) * x.shape[-1] ** -0.5, dim=-1)
    return weights @ x


def _divided(x: torch.Tensor) -> torch.Tensor:
    """Time, then space: ``x`` ``(B, T, N, D)`` → ``(B, T, N, D)``."""
    y = _attend(x.transpose(1, 2)).transpose(1, 2)  # each patch n attends over the T frames
    return _attend(y)  # each frame t: its N patches attend to each other


def _divided_cases() -> list[Case]:
    g = torch.Generator().manual_seed(21)
    return [
        Case("(2, 3) clips of 4 patches, D = 5", (torch.randn(2, 3, 4, 5, generator=g),)),
        Case("one frame: time does nothing", (torch.randn(2, 1, 4, 3, generator=g),)),
        Case("one patch per frame: space does nothing", (torch.randn(1, 5, 1, 4, generator=g),)),
        Case("large features (x 30)", (30 * torch.randn(1, 4, 3, 2, generator=g),)),
    ]


def _window(scores: torch.Tensor, window: int) -> torch.Tensor:
    t = scores.shape[-1]
    offset = torch.arange(t)[:, None] - torch.arange(t)[None, :]  # t - s
    return masked_softmax(scores, dim=-1, mask=(offset >= 0) & (offset < window))


def _window_cases() -> list[Case]:
    g = torch.Generator().manual_seed(22)
    return [
        Case("window 3 over 6 frames", (torch.randn(2, 6, 6, generator=g), 3)),
        Case("window 1: each frame sees itself", (torch.randn(1, 4, 4, generator=g), 1)),
        Case("window >= T: plain causal", (torch.randn(2, 5, 5, generator=g), 9)),
        Case("one frame", (torch.randn(3, 1, 1, generator=g), 2)),
        Case("large scores ±1e4", (1e4 * torch.randn(1, 5, 5, generator=g).sign(), 2)),
    ]


def _relative(scores: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    t = scores.shape[-1]
    offset = torch.arange(t)[None, :] - torch.arange(t)[:, None]  # s - t, in [-(T-1), T-1]
    return torch.softmax(scores + bias[offset + t - 1], dim=-1)


def _relative_cases() -> list[Case]:
    g = torch.Generator().manual_seed(23)
    ramp = torch.tensor([0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0])  # +5 on s - t = 0 (T = 4)
    return [
        Case(
            "(2, 5) frames, random bias",
            (torch.randn(2, 5, 5, generator=g), torch.randn(9, generator=g)),
        ),
        Case("zero bias: plain softmax", (torch.randn(1, 4, 4, generator=g), torch.zeros(7))),
        Case("a bias on the frame itself", (torch.zeros(2, 4, 4), ramp)),
        Case("one frame", (torch.randn(3, 1, 1, generator=g), torch.randn(1, generator=g))),
        Case(
            "large bias ±1e4",
            (torch.randn(1, 3, 3, generator=g), torch.tensor([1e4, 0, -1e4, 0, 1e4])),
        ),
    ]


EXERCISES = {
    "divided_attention": Exercise(
        "divided_attention",
        "Divided space-time attention with identity projections: tokens (B, T, N, D) attend over "
        "time at each patch position, then over the patches of each frame.",
        reference=_divided,
        make_cases=_divided_cases,
    ),
    "causal_weights": Exercise(
        "causal_weights",
        "Softmax of (B, T, T) frame-to-frame scores where frame t may attend only to the frames "
        "t - window < s <= t.",
        reference=_window,
        make_cases=_window_cases,
        weights={0: -1},
        allowed=("visual_attention.core.masked_softmax",),  # the mask is the exercise
    ),
    "relative_bias": Exercise(
        "relative_bias",
        "Softmax over key frames of (B, T, T) scores plus a learned bias b[s - t] (a table of "
        "2T - 1 values, b[0] at index T - 1).",
        reference=_relative,
        make_cases=_relative_cases,
        weights={0: -1},
    ),
}
