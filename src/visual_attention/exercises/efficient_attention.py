"""Exercises of the Efficient Attention chapter: the online softmax step, merging states, and
linear attention."""

from __future__ import annotations

import math

import torch

from ..efficient import linear_attention, online_softmax_update
from . import Case, Exercise


def _merge_reference(m1, l1, o1, m2, l2, o2):
    m = torch.maximum(m1, m2)
    safe = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    a, b = torch.exp(m1 - safe), torch.exp(m2 - safe)
    return m, a * l1 + b * l2, a * o1 + b * o2


def _state(g, batch, dv, empty=False):
    if empty:
        return torch.full((batch, 1), -math.inf), torch.zeros(batch, 1), torch.zeros(batch, dv)
    m = torch.randn(batch, 1, generator=g) * 3
    return m, torch.rand(batch, 1, generator=g) + 0.5, torch.randn(batch, dv, generator=g)


def _update_cases() -> list[Case]:
    g = torch.Generator().manual_seed(11)
    return [
        Case(
            "first block (empty state)",
            (
                *_state(g, 2, 3, empty=True),
                torch.randn(2, 4, generator=g),
                torch.randn(2, 4, 3, generator=g),
            ),
        ),
        Case(
            "a later block",
            (*_state(g, 3, 2), torch.randn(3, 5, generator=g), torch.randn(3, 5, 2, generator=g)),
        ),
        Case(
            "a block with a much larger score",
            (*_state(g, 1, 2), torch.tensor([[50.0, 0.0]]), torch.randn(1, 2, 2, generator=g)),
        ),
        Case(
            "a block of one key",
            (*_state(g, 2, 4), torch.randn(2, 1, generator=g), torch.randn(2, 1, 4, generator=g)),
        ),
    ]


def _merge_cases() -> list[Case]:
    g = torch.Generator().manual_seed(12)
    return [
        Case("two partial states", (*_state(g, 3, 2), *_state(g, 3, 2))),
        Case("merging with an empty state", (*_state(g, 2, 3), *_state(g, 2, 3, empty=True))),
        Case(
            "very different maxima",
            (
                torch.tensor([[80.0]]),
                torch.ones(1, 1),
                torch.ones(1, 2),
                torch.tensor([[-80.0]]),
                torch.ones(1, 1),
                torch.ones(1, 2),
            ),
        ),
    ]


def _linear_cases() -> list[Case]:
    g = torch.Generator().manual_seed(13)
    return [
        Case(
            "(2, 6, 4) queries, (2, 9, 4) keys",
            (
                torch.randn(2, 6, 4, generator=g),
                torch.randn(2, 9, 4, generator=g),
                torch.randn(2, 9, 3, generator=g),
            ),
        ),
        Case(
            "one query, one key",
            (
                torch.randn(1, 1, 2, generator=g),
                torch.randn(1, 1, 2, generator=g),
                torch.randn(1, 1, 5, generator=g),
            ),
        ),
        Case(
            "large inputs",
            (
                torch.randn(1, 4, 3, generator=g) * 50,
                torch.randn(1, 4, 3, generator=g) * 50,
                torch.randn(1, 4, 2, generator=g),
            ),
        ),
    ]


EXERCISES = {
    "online_update": Exercise(
        "online_update",
        "Fold a block of scores (B, n) and values (B, n, Dv) into the running (max, sum, out) "
        "state.",
        reference=online_softmax_update,
        make_cases=_update_cases,
    ),
    "merge_states": Exercise(
        "merge_states",
        "Merge two online-softmax states (m1, l1, o1) and (m2, l2, o2) computed on disjoint "
        "blocks of keys (split-KV).",
        reference=_merge_reference,
        make_cases=_merge_cases,
    ),
    "linear_attention": Exercise(
        "linear_attention",
        "Linear attention with φ(x) = elu(x) + 1, in time linear in the number of tokens.",
        reference=linear_attention,
        make_cases=_linear_cases,
        atol=1e-4,
    ),
}
