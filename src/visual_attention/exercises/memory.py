"""Exercises of the Memory-based attention chapter: a content-addressed read (NTM), hops,
external attention."""

from __future__ import annotations

import torch

from ..memory import memory_read
from . import Case, Exercise


def _content_read(
    key: torch.Tensor, memory: torch.Tensor, beta: torch.Tensor, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """NTM content addressing: w = softmax(β · cos(k, M_i)) over the slots, read r = Σ w_i M_i."""
    k = key / key.norm(dim=-1, keepdim=True).clamp_min(eps)  # a zero key stays zero: cos = 0
    m = memory / memory.norm(dim=-1, keepdim=True).clamp_min(eps)
    weights = torch.softmax(beta[:, None] * (k @ m.T), dim=-1)  # (B, S)
    return weights @ memory, weights  # (B, D), (B, S)


def _content_cases() -> list[Case]:
    g = torch.Generator().manual_seed(21)
    zero = torch.randn(2, 3, generator=g)
    zero[1] = 0.0  # a zero key row: cosine 0 with every slot
    zero_memory = torch.randn(4, 3, generator=g)
    zero_memory[2] = 0.0  # and an empty slot
    big, aligned = torch.randn(2, 4, generator=g), 3 * torch.randn(7, 4, generator=g)
    aligned[3] = 2 * big[0]  # cos = 1: β · cos = 100 overflows a float32 exp()
    big_beta = torch.tensor([100.0, 50.0])
    return [
        Case(
            "B=2, S=5, D=3, β = (1, 5)",
            (
                torch.randn(2, 3, generator=g),
                torch.randn(5, 3, generator=g),
                torch.tensor([1.0, 5.0]),
            ),
        ),
        Case(
            "β = 0 (uniform weights)",
            (torch.randn(3, 4, generator=g), torch.randn(6, 4, generator=g), torch.zeros(3)),
        ),
        Case("large β = (100, 50), slot 3 along key 0 (near one-hot)", (big, aligned, big_beta)),
        Case("a zero key row and a zero slot", (zero, zero_memory, torch.tensor([2.0, 2.0]))),
        Case(
            "batch of one, one slot",
            (torch.randn(1, 2, generator=g), torch.randn(1, 2, generator=g), torch.tensor([3.0])),
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
    "content_read": Exercise(
        "content_read",
        "Content addressing of the Neural Turing Machine: weights w = softmax(β · cos(k, M_i)) "
        "(B, S) and read r = Σ w_i M_i (B, D); returns (r, w).",
        reference=_content_read,
        make_cases=_content_cases,
        weights={1: -1},
        atol=1e-4,
        rtol=1e-3,
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
