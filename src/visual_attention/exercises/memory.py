"""Exercises of the Memory-based attention chapter: a memory read, hops, external attention."""

from __future__ import annotations

import torch

from ..memory import memory_read
from . import Case, Exercise


def _read_cases() -> list[Case]:
    g = torch.Generator().manual_seed(21)
    return [
        Case(
            "B=2, S=5, D=3, Dv=4",
            (
                torch.randn(2, 3, generator=g),
                torch.randn(5, 3, generator=g),
                torch.randn(5, 4, generator=g),
            ),
        ),
        Case(
            "one slot",
            (
                torch.randn(3, 2, generator=g),
                torch.randn(1, 2, generator=g),
                torch.randn(1, 2, generator=g),
            ),
        ),
        Case(
            "large scores",
            (
                100 * torch.randn(2, 3, generator=g),
                100 * torch.randn(6, 3, generator=g),
                torch.randn(6, 2, generator=g),
            ),
        ),
    ]


def _hops(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, hops: int
) -> torch.Tensor:
    u = query
    for _ in range(hops):
        u = u + memory_read(u, keys, values)[0]
    return u


def _hop_cases() -> list[Case]:
    g = torch.Generator().manual_seed(22)
    q, k, v = (
        torch.randn(2, 4, generator=g),
        torch.randn(7, 4, generator=g),
        torch.randn(7, 4, generator=g),
    )
    return [Case(f"{h} hop(s)", (q, k, v, h)) for h in (1, 2, 3)] + [
        Case(
            "batch of one, 2 hops",
            (
                torch.randn(1, 3, generator=g),
                torch.randn(2, 3, generator=g),
                torch.randn(2, 3, generator=g),
                2,
            ),
        )
    ]


def _external(
    x: torch.Tensor, mk: torch.Tensor, mv: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    attn = torch.softmax(x @ mk.T, dim=1)  # (B, N, S): softmax over the tokens
    attn = attn / (1e-9 + attn.sum(dim=2, keepdim=True))  # ℓ1 over the memory units
    return attn @ mv, attn


def _external_cases() -> list[Case]:
    g = torch.Generator().manual_seed(23)
    return [
        Case(
            "B=2, N=6, D=4, S=3",
            (
                torch.randn(2, 6, 4, generator=g),
                torch.randn(3, 4, generator=g),
                torch.randn(3, 4, generator=g),
            ),
        ),
        Case(
            "one token",
            (
                torch.randn(2, 1, 3, generator=g),
                torch.randn(5, 3, generator=g),
                torch.randn(5, 3, generator=g),
            ),
        ),
        Case(
            "one memory unit",
            (
                torch.randn(1, 4, 2, generator=g),
                torch.randn(1, 2, generator=g),
                torch.randn(1, 2, generator=g),
            ),
        ),
    ]


EXERCISES = {
    "memory_read": Exercise(
        "memory_read",
        "Slot weights p = softmax(u·m_i) (B, S) and read o = Σ p_i c_i (B, Dv); returns (o, p).",
        reference=lambda q, k, v: memory_read(q, k, v),
        make_cases=_read_cases,
        weights={1: -1},
    ),
    "hops": Exercise(
        "hops",
        "K hops of End-To-End Memory Networks: u_{k+1} = u_k + o_k; return u_K (B, D).",
        reference=_hops,
        make_cases=_hop_cases,
    ),
    "external_attention": Exercise(
        "external_attention",
        "External attention with memories M_k, M_v (S, D): output (B, N, D) and "
        "double-normalised weights (B, N, S).",
        reference=_external,
        make_cases=_external_cases,
        weights={1: -1},
    ),
}
