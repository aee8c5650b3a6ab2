"""Exercises of the Spatial attention chapter: where a map looks (its centre of mass), the spatial
gate, mass in a box."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..spatial import attention_mass_in_box, channel_pool
from . import Case, Exercise


def _gate_reference(x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CBAM's spatial gate without BatchNorm: ``M = σ(conv(channel_pool(x)))``, out ``x ⊙ M``."""
    gate = torch.sigmoid(F.conv2d(channel_pool(x), weight, padding=weight.shape[-1] // 2))
    return x * gate, gate


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


def _gate_cases() -> list[Case]:
    g = torch.Generator().manual_seed(12)
    return [
        Case(
            "B=2, C=3, 6×6, 7×7 conv",
            (torch.randn(2, 3, 6, 6, generator=g), torch.randn(1, 2, 7, 7, generator=g)),
        ),
        Case(
            "3×3 conv on 5×4",
            (torch.randn(1, 4, 5, 4, generator=g), torch.randn(1, 2, 3, 3, generator=g)),
        ),
        Case(
            "1×1 conv (a per-pixel gate)",
            (torch.randn(2, 2, 3, 3, generator=g), torch.randn(1, 2, 1, 1, generator=g)),
        ),
        Case(
            "large scores (the gate saturates)",
            (10 * torch.randn(1, 3, 4, 4, generator=g), 10 * torch.randn(1, 2, 3, 3, generator=g)),
        ),
    ]


def _box_cases() -> list[Case]:
    g = torch.Generator().manual_seed(13)
    peak = torch.zeros(2, 10, 10)
    peak[0, 2, 3] = 1.0
    peak[1, 9, 9] = 1.0
    return [
        Case(
            "softmax maps 10×10 on a 40×40 canvas",
            (
                torch.softmax(torch.randn(3, 100, generator=g), -1).reshape(3, 10, 10),
                torch.tensor([[5, 6, 25, 26], [0, 0, 14, 14], [18, 20, 40, 40]]),
                40,
            ),
        ),
        Case(
            "gate maps 20×20 (not normalised)",
            (
                torch.rand(2, 20, 20, generator=g),
                torch.tensor([[3, 1, 21, 19], [10, 10, 32, 32]]),
                40,
            ),
        ),
        Case(
            "uniform map: the box's share of the area",
            (torch.ones(1, 5, 5), torch.tensor([[0, 0, 20, 40]]), 40),
        ),
        Case(
            "a box that cuts a cell in half",
            (peak, torch.tensor([[8, 12, 10, 16], [36, 36, 40, 40]]), 40),
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
    "spatial_gate": Exercise(
        "spatial_gate",
        "The spatial gate given a conv weight (1, 2, k, k): returns (x ⊙ M, M) with "
        "M = σ(conv(pool(x))).",
        reference=_gate_reference,
        make_cases=_gate_cases,
    ),
    "mass_in_box": Exercise(
        "mass_in_box",
        "Fraction of an (h, w) map's mass inside a box of the (canvas × canvas) image, per image.",
        reference=attention_mass_in_box,
        make_cases=_box_cases,
    ),
}
