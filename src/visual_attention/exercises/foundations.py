"""Exercises of the Foundations chapter: softmax, query attention, masking."""

from __future__ import annotations

import torch

from ..core import masked_softmax, query_attention
from . import Case, Exercise


def _softmax_cases() -> list[Case]:
    g = torch.Generator().manual_seed(1)
    return [
        Case("random scores (2, 16)", (torch.randn(2, 16, generator=g),)),
        Case("a batch of maps (3, 4, 5)", (torch.randn(3, 4, 5, generator=g),)),
        Case("large logits ±1e4", (torch.tensor([[1e4, 1e4 - 1.0, 0.0], [-1e4, 0.0, 1e4]]),)),
        Case("one column (4, 1)", (torch.randn(4, 1, generator=g),)),
    ]


def _query_cases() -> list[Case]:
    g = torch.Generator().manual_seed(2)
    return [
        Case(
            "B=2, C=3, 4×4", (torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, generator=g))
        ),
        Case(
            "B=1, C=5, 2×7", (torch.randn(1, 5, 2, 7, generator=g), torch.randn(1, 5, generator=g))
        ),
        Case(
            "a single position 1×1",
            (torch.randn(3, 2, 1, 1, generator=g), torch.randn(3, 2, generator=g)),
        ),
    ]


def _masked_cases() -> list[Case]:
    g = torch.Generator().manual_seed(3)
    s = torch.randn(3, 6, generator=g)
    keep = torch.rand(3, 6, generator=g) > 0.4
    keep[:, 0] = True
    none = keep.clone()
    none[1] = False
    return [
        Case("random mask", (s, keep)),
        Case("nothing masked", (s, torch.ones(3, 6, dtype=torch.bool))),
        Case("row 1 fully masked (must give zeros)", (s, none)),
    ]


# [start-exercise-registry]
EXERCISES = {
    "softmax": Exercise(
        "softmax",
        "Softmax over the last dimension, stable for large scores (no torch.softmax).",
        reference=lambda s: masked_softmax(s, dim=-1),
        make_cases=_softmax_cases,
        weights={0: -1},
    ),
    # [end-exercise-registry]
    "query_attention": Exercise(
        "query_attention",
        "Weights (B, H, W) and context (B, C) of one query per image over its feature map.",
        reference=lambda f, q: query_attention(f, q),
        make_cases=_query_cases,
        weights={0: (-2, -1)},
    ),
    "masked_softmax": Exercise(
        "masked_softmax",
        "Softmax over the last dimension where mask is True; a fully masked row gives zeros.",
        reference=lambda s, m: masked_softmax(s, dim=-1, mask=m),
        make_cases=_masked_cases,
        weights={0: -1},
    ),
}
