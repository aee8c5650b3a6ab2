"""Exercises of the Self-attention chapter: the receptive field of a local stack, the non-local
block, attention distance."""

from __future__ import annotations

import torch

from ..labs.self_attention import receptive_field
from ..self_attention import mean_attention_distance, position_self_attention
from . import Case, Exercise


def _rf_cases() -> list[Case]:
    return [
        Case("one 3×3 convolution", ([(3, 1)],)),
        Case("three 3×3 convolutions", ([(3, 1)] * 3,)),
        Case(
            "the digit encoder: conv, pool, conv, pool, conv", ([(3, 1), (2, 2)] * 2 + [(3, 1)],)
        ),
        Case(
            "the encoder, then a 1×9 convolution",
            ([(3, 1), (2, 2)] * 2 + [(3, 1), (9, 1)],),
        ),
        Case("a 7×7 stride-2 stem, a pool, two 3×3", ([(7, 2), (3, 2), (3, 1), (3, 1)],)),
        Case("1×1 convolutions see one pixel", ([(1, 1), (1, 2)],)),
    ]


def non_local_reference(x, w_theta, w_phi, w_g, w_z):
    """Embedded-Gaussian non-local block with 1×1 convolutions as matrices, no biases and no BN."""
    conv = lambda w, t: torch.einsum("oc,bchw->bohw", w, t)  # noqa: E731
    y, _ = position_self_attention(conv(w_theta, x), conv(w_phi, x), conv(w_g, x))
    return conv(w_z, y) + x


def _nl_cases() -> list[Case]:
    g = torch.Generator().manual_seed(22)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return [
        Case("C=4 → C'=2, 3×3", (r(2, 4, 3, 3), r(2, 4), r(2, 4), r(2, 4), r(4, 2))),
        Case("C=6 → C'=3, 2×5", (r(1, 6, 2, 5), r(3, 6), r(3, 6), r(3, 6), r(6, 3))),
        Case(
            "W_z = 0: the identity", (r(2, 4, 2, 2), r(2, 4), r(2, 4), r(2, 4), torch.zeros(4, 2))
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
        "The receptive field in input pixels of one output of (kernel, stride) layers, first to "
        "last: each adds (kernel − 1) × the product of the strides before it.",
        reference=receptive_field,
        make_cases=_rf_cases,
    ),
    "non_local": Exercise(
        "non_local",
        "The embedded-Gaussian non-local block z = W_z y + x with θ, φ, g, W_z given as matrices.",
        reference=non_local_reference,
        make_cases=_nl_cases,
    ),
    "attention_distance": Exercise(
        "attention_distance",
        "Mean distance in grid cells between each query and the positions it attends to.",
        reference=mean_attention_distance,
        make_cases=_dist_cases,
    ),
}
