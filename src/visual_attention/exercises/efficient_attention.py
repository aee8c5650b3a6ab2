"""Exercises of the Efficient Attention chapter: FlashAttention's backward pass by recomputation,
merging online-softmax states (split-KV), and causal linear attention as a recurrence."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import Case, Exercise


def _backward_reference(q, k, v, grad_out, lse):
    """Gradients of ``softmax(q kᵀ/√D) v`` by autograd (the student recomputes them)."""
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1)
    (weights @ v).backward(grad_out)
    return q.grad, k.grad, v.grad


def _lse(q, k):
    return torch.logsumexp(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1, keepdim=True)


def _backward_cases() -> list[Case]:
    g = torch.Generator().manual_seed(14)
    cases = []
    for label, (b, lq, lk, d, dv, spread) in {
        "(2, 5) queries, 7 keys": (2, 5, 7, 4, 3, 1.0),
        "one key": (1, 3, 1, 2, 2, 1.0),
        "large scores": (1, 4, 6, 3, 2, 8.0),
    }.items():
        q = torch.randn(b, lq, d, generator=g, dtype=torch.float64) * spread
        k = torch.randn(b, lk, d, generator=g, dtype=torch.float64) * spread
        v = torch.randn(b, lk, dv, generator=g, dtype=torch.float64)
        grad_out = torch.randn(b, lq, dv, generator=g, dtype=torch.float64)
        cases.append(Case(label, (q, k, v, grad_out, _lse(q, k))))
    return cases


def _causal_linear_reference(q, k, v):
    """``φ(q_i)ᵀ Σ_{j≤i} φ(k_j) v_jᵀ / (φ(q_i)ᵀ Σ_{j≤i} φ(k_j) + 1e-6)`` by prefix sums."""
    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1
    state = torch.cumsum(phi_k[..., :, None] * v[..., None, :], dim=-3)  # S_i (B, L, D, Dv)
    norm = torch.cumsum(phi_k, dim=-2)  # z_i (B, L, D)
    num = torch.einsum("bld,blde->ble", phi_q, state)
    return num / ((phi_q * norm).sum(-1, keepdim=True) + 1e-6)


def _causal_cases() -> list[Case]:
    g = torch.Generator().manual_seed(15)
    return [
        Case(
            "(2, 6) tokens, D = 4, Dv = 3",
            tuple(torch.randn(2, 6, d, generator=g) for d in (4, 4, 3)),
        ),
        Case("one token", tuple(torch.randn(1, 1, d, generator=g) for d in (2, 2, 5))),
        Case("large inputs", tuple(torch.randn(1, 5, d, generator=g) * 30 for d in (3, 3, 2))),
    ]


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


EXERCISES = {
    "attention_backward": Exercise(
        "attention_backward",
        "The gradients (dq, dk, dv) of softmax(q kᵀ/√D) v for an upstream gradient dO, "
        "recomputing the weights from each query's log-sum-exp (FlashAttention's backward pass).",
        reference=_backward_reference,
        make_cases=_backward_cases,
        atol=1e-8,
    ),
    "merge_states": Exercise(
        "merge_states",
        "Merge two online-softmax states (m1, l1, o1) and (m2, l2, o2) computed on disjoint "
        "blocks of keys (split-KV).",
        reference=_merge_reference,
        make_cases=_merge_cases,
    ),
    "causal_linear_attention": Exercise(
        "causal_linear_attention",
        "Causal linear attention (token i sees tokens j ≤ i) as a recurrence over running sums "
        "S_i = Σ φ(k_j) v_jᵀ and z_i = Σ φ(k_j), φ(x) = elu(x) + 1.",
        reference=_causal_linear_reference,
        make_cases=_causal_cases,
        atol=1e-4,
    ),
}
