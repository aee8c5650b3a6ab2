"""Exercises of the Self-attention chapter: the receptive field of a dilated stack, a relative
position bias, attention to the left only, attention distance."""

from __future__ import annotations

import torch

from ..core import scaled_dot_product_attention
from ..labs.self_attention import receptive_field
from ..self_attention import mean_attention_distance, relative_position_bias
from . import Case, Exercise


def _rf_cases() -> list[Case]:
    encoder = [(3, 1, 1), (2, 2, 1)] * 2 + [(3, 1, 1)]
    return [
        Case("one 3×3 convolution", ([(3, 1, 1)],)),
        Case("one 3×3 convolution, dilation 2", ([(3, 1, 2)],)),
        Case("the digit encoder: conv, pool, conv, pool, conv", (encoder,)),
        Case(
            "the encoder, then the dilated stack 1, 2, 4, 8",
            (encoder + [(3, 1, 2**i) for i in range(4)],),
        ),
        Case(
            "dilation after a stride: the taps are 2·4 input pixels apart",
            ([(2, 2, 1), (3, 1, 2)],),
        ),
        Case(
            "a 7×7 stride-2 stem, a pool, two 3×3 dilated 2",
            ([(7, 2, 1), (3, 2, 1), (3, 1, 2), (3, 1, 2)],),
        ),
        Case("1×1 convolutions see one pixel, whatever their dilation", ([(1, 1, 4), (1, 2, 3)],)),
    ]


def _bias_cases() -> list[Case]:
    g = torch.Generator().manual_seed(24)
    return [
        Case("L = 3, offsets −2 … 2 as 0 … 4", (torch.arange(5.0), 3)),
        Case("L = 5, random table", (torch.randn(9, generator=g), 5)),
        Case("two heads, L = 4", (torch.randn(2, 7, generator=g), 4)),
        Case("one position: the table has one entry", (torch.tensor([0.7]), 1)),
        Case("a batch of layers and heads, L = 2", (torch.randn(2, 3, 3, generator=g), 2)),
    ]


def left_attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product self-attention in which position ``i`` attends to positions ``j ≤ i``
    only: ``q, k (B, L, D)``, ``v (B, L, Dv)`` → ``(y (B, L, Dv), weights (B, L, L))``."""
    n = q.shape[-2]
    left = torch.ones(n, n, dtype=torch.bool).tril()  # (L, L): key j at or left of query i
    return scaled_dot_product_attention(q, k, v, mask=left)


def _left_cases() -> list[Case]:
    g = torch.Generator().manual_seed(25)
    r = lambda *s: torch.randn(*s, generator=g)
    return [
        Case("B = 2, L = 5, D = 4", (r(2, 5, 4), r(2, 5, 4), r(2, 5, 3))),
        Case(
            "a batch of one, L = 1: the only key is the query itself",
            (r(1, 1, 4), r(1, 1, 4), r(1, 1, 2)),
        ),
        Case("huge logits (×1000) stay finite", (1e3 * r(2, 6, 4), 1e3 * r(2, 6, 4), r(2, 6, 4))),
        Case(
            "equal keys: each query averages the values up to it",
            (r(1, 4, 2), torch.ones(1, 4, 2), r(1, 4, 3)),
        ),
    ]


def _dist_cases() -> list[Case]:
    g = torch.Generator().manual_seed(23)
    eye = torch.eye(6)
    first = torch.zeros(6, 6)
    first[:, 0] = 1
    return [
        Case(
            "random weights on a 3×4 grid",
            (torch.softmax(torch.randn(2, 12, 12, generator=g), -1), (3, 4)),
        ),
        Case("every query looks at itself", (eye, (2, 3))),
        Case("every query looks at the top-left cell", (first, (2, 3))),
        Case("a 1×5 strip", (torch.softmax(torch.randn(5, 5, generator=g), -1), (1, 5))),
    ]


EXERCISES = {
    "receptive_field": Exercise(
        "receptive_field",
        "The receptive field in input pixels of one output of (kernel, stride, dilation) layers, "
        "first to last: a dilation spreads the kernel's taps apart.",
        reference=receptive_field,
        make_cases=_rf_cases,
    ),
    "relative_bias": Exercise(
        "relative_bias",
        "The (…, L, L) bias matrix B[i, j] = table[j − i + L − 1] of a relative position code.",
        reference=relative_position_bias,
        make_cases=_bias_cases,
    ),
    "left_attention": Exercise(
        "left_attention",
        "Self-attention in which every position attends to itself and the positions to its left.",
        reference=left_attention_reference,
        make_cases=_left_cases,
        weights={1: -1},
    ),
    "attention_distance": Exercise(
        "attention_distance",
        "Mean distance in grid cells between each query and the positions it attends to.",
        reference=mean_attention_distance,
        make_cases=_dist_cases,
    ),
}
