"""Exercises of the Memory-based attention chapter: the Neural Turing Machine's content-addressed
read and its write, and external attention over padded images (a mask)."""

from __future__ import annotations

import torch

from ..core import record_attention
from ..memory import ExternalAttention
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


def _ntm_write(
    memory: torch.Tensor, weights: torch.Tensor, erase: torch.Tensor, add: torch.Tensor
) -> torch.Tensor:
    """NTM write (Graves et al. 2014, Sec. 3.2): M_i ← M_i ⊙ (1 − w_i e) + w_i a."""
    w = weights[..., None]  # (B, S, 1)
    return memory * (1 - w * erase[:, None, :]) + w * add[:, None, :]  # (B, S, D)


def _write_cases() -> list[Case]:
    g = torch.Generator().manual_seed(22)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    def weights(b: int, s: int) -> torch.Tensor:
        return torch.softmax(rand(b, s), dim=-1)

    onehot = torch.zeros(2, 4)
    onehot[0, 1] = onehot[1, 3] = 1.0
    return [
        Case(
            "B=2, S=5, D=3, soft weights, erase in [0, 1]",
            (rand(2, 5, 3), weights(2, 5), torch.rand(2, 3, generator=g), rand(2, 3)),
        ),
        Case(
            "one-hot weights, erase = 1: the slot is overwritten by a",
            (rand(2, 4, 3), onehot, torch.ones(2, 3), rand(2, 3)),
        ),
        Case(
            "zero weights: nothing changes",
            (rand(1, 3, 2), torch.zeros(1, 3), torch.ones(1, 2), rand(1, 2)),
        ),
        Case(
            "erase = 0: a pure add", (rand(2, 3, 4), weights(2, 3), torch.zeros(2, 4), rand(2, 4))
        ),
        Case(
            "batch of one, one slot",
            (rand(1, 1, 2), torch.ones(1, 1), torch.rand(1, 2, generator=g), rand(1, 2)),
        ),
    ]


def _masked_external(
    x: torch.Tensor, mk: torch.Tensor, mv: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """External attention over the valid tokens only (padding: zero weights, zero output)."""
    layer = ExternalAttention(x.shape[-1], mk.shape[0])
    with torch.no_grad():
        layer.mk.weight.copy_(mk), layer.mv.weight.copy_(mv.T)
        with record_attention(layer) as maps:
            out = layer(x, mask)
    return out, maps[""]


def _masked_external_cases() -> list[Case]:
    g = torch.Generator().manual_seed(23)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    tail = torch.tensor([[True] * 6, [True, True, True, True, False, False]])
    one = torch.tensor([[False, True, False]])
    empty = torch.tensor([[True, True, False, True], [False, False, False, False]])
    return [
        Case(
            "no padding (B=2, N=6, D=4, S=3)",
            (rand(2, 6, 4), rand(3, 4), rand(3, 4), torch.ones(2, 6, dtype=torch.bool)),
        ),
        Case(
            "the second image padded to N = 6 from 4 tokens",
            (rand(2, 6, 4), rand(3, 4), rand(3, 4), tail),
        ),
        Case("one valid token", (rand(1, 3, 2), rand(5, 2), rand(5, 2), one)),
        Case("an image with no valid token", (rand(2, 4, 3), rand(2, 3), rand(2, 3), empty)),
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
    "ntm_write": Exercise(
        "ntm_write",
        "The Neural Turing Machine's write: M_i ← M_i ⊙ (1 − w_i e) + w_i a for memories "
        "(B, S, D), weights (B, S), erase and add vectors (B, D); returns the new memory.",
        reference=_ntm_write,
        make_cases=_write_cases,
    ),
    "masked_external_attention": Exercise(
        "masked_external_attention",
        "External attention with a padding mask (B, N) (True = a real token): padding takes no "
        "part in either normalisation and gets zero weights; output (B, N, D), weights (B, N, S).",
        reference=_masked_external,
        make_cases=_masked_external_cases,
        weights={1: -1},
    ),
}
