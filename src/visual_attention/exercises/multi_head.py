"""Exercises of the Multi-head attention chapter: heads, multi-head attention, attention
rollout."""

from __future__ import annotations

import torch

from ..blocks import merge_heads, split_heads
from ..core import scaled_dot_product_attention
from ..multi_head import attention_rollout
from . import Case, Exercise


def _split_cases() -> list[Case]:
    g = torch.Generator().manual_seed(31)
    return [
        Case("B=2, N=5, dim 12, 3 heads", (torch.randn(2, 5, 12, generator=g), 3)),
        Case("one head", (torch.randn(1, 4, 6, generator=g), 1)),
        Case("one feature per head", (torch.randn(2, 3, 4, generator=g), 4)),
    ]


def mha_reference(x, w_q, w_k, w_v, w_o, num_heads):
    """Multi-head self-attention with (dim, dim) matrices applied as x @ Wᵀ (as nn.Linear), no
    biases."""
    q, k, v = (split_heads(x @ w.T, num_heads) for w in (w_q, w_k, w_v))
    context, weights = scaled_dot_product_attention(q, k, v)
    return merge_heads(context) @ w_o.T, weights


def _mha_cases() -> list[Case]:
    g = torch.Generator().manual_seed(32)
    r = lambda *s: torch.randn(*s, generator=g) * 0.5  # noqa: E731
    return [
        Case("dim 8, 2 heads, N=5", (r(2, 5, 8), r(8, 8), r(8, 8), r(8, 8), r(8, 8), 2)),
        Case("dim 6, 3 heads, N=1", (r(3, 1, 6), r(6, 6), r(6, 6), r(6, 6), r(6, 6), 3)),
        Case("dim 4, 1 head", (r(1, 4, 4), r(4, 4), r(4, 4), r(4, 4), r(4, 4), 1)),
    ]


def _rollout_cases() -> list[Case]:
    g = torch.Generator().manual_seed(33)
    att = lambda *s: torch.softmax(torch.randn(*s, generator=g) * 2, -1)  # noqa: E731
    return [
        Case("one layer", ([att(2, 3, 5, 5)],)),
        Case("three layers, 2 heads", ([att(1, 2, 4, 4) for _ in range(3)],)),
        Case("identity attention", ([torch.eye(3).expand(1, 2, 3, 3)] * 2,)),
    ]


EXERCISES = {
    "split_heads": Exercise(
        "split_heads",
        "(B, N, h·d) → (B, h, N, d); head i gets features i·d … (i+1)·d − 1.",
        reference=split_heads,
        make_cases=_split_cases,
    ),
    "multi_head_attention": Exercise(
        "multi_head_attention",
        "Multi-head self-attention from four (dim, dim) matrices: output (B, N, dim), "
        "weights (B, h, N, N).",
        reference=mha_reference,
        make_cases=_mha_cases,
        weights={1: -1},
    ),
    "rollout": Exercise(
        "rollout",
        "Attention rollout with mean head fusion: add I, renormalise, multiply the layers "
        "(later on the left).",
        reference=lambda layers: attention_rollout(layers),
        make_cases=_rollout_cases,
        weights={0: -1},
    ),
}
