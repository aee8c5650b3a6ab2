"""Attention without the n × n matrix: exact attention in chunks, and linear attention.

* :func:`chunked_attention` computes *exact* scaled dot-product attention one block of keys at a time
  with an **online softmax** (Milakov & Gimelshein, "Online normalizer calculation for softmax", 2018;
  the idea behind FlashAttention, Dao et al., NeurIPS 2022, Algorithm 1). For each query it keeps a
  running maximum ``m``, a running sum ``l`` of ``exp(s - m)`` and a running weighted sum ``o`` of
  values; a new block of scores ``s_j`` updates them as

      m' = max(m, max s_j),  l' = e^{m - m'} l + Σ e^{s_j - m'},  o' = e^{m - m'} o + e^{s_j - m'} V_j

  and the answer is ``o / l``. The extra memory is ``O(Lq · chunk)`` instead of ``O(Lq · Lk)``.
* :func:`linear_attention` replaces ``softmax(q kᵀ)`` by a kernel ``φ(q) φ(k)ᵀ`` with
  ``φ(x) = elu(x) + 1`` (Katharopoulos et al., "Transformers are RNNs", ICML 2020, Eq. 4-6), so that
  ``φ(K)ᵀ V`` is computed once: time and memory linear in the number of tokens — but it is a
  different model, not the same numbers.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_floating, check_qkv, check_rank, shape_str

__all__ = [
    "chunked_attention",
    "linear_attention",
    "online_softmax_update",
    "online_softmax_trace",
]


def chunked_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    chunk_size: int = 128,
    scale: float | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Exact ``softmax(q kᵀ · scale) v``, computed over blocks of ``chunk_size`` keys (online softmax).

    Equal to :func:`visual_attention.core.scaled_dot_product_attention`'s context (up to rounding)
    without ever holding the ``(Lq, Lk)`` weight matrix: the largest temporary is ``(Lq, chunk_size)``.

    Args:
        q: queries ``(*B, Lq, D)``.
        k: keys ``(*B, Lk, D)``.
        v: values ``(*B, Lk, Dv)``.
        chunk_size: keys per block.
        scale: score multiplier; ``None`` means ``D ** -0.5``.
        mask: optional boolean ``(*B, Lq, Lk)`` (or broadcastable), ``True`` = may attend; a query with
            no allowed key gets a zero context.

    Returns:
        the context ``(*B, Lq, Dv)``.
    """
    check_qkv(q, k, v, broadcast=False)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise ValueError("mask must be a boolean tensor")
        try:
            mask = mask.expand(*q.shape[:-1], k.shape[-2])
        except RuntimeError:
            raise ValueError(
                f"mask of shape {shape_str(mask)} does not broadcast to (*B, Lq, Lk) = "
                f"{tuple(q.shape[:-1]) + (k.shape[-2],)}"
            ) from None
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    lk = k.shape[-2]
    running_max = q.new_full((*q.shape[:-1], 1), -math.inf)
    running_sum = q.new_zeros((*q.shape[:-1], 1))
    out = q.new_zeros((*q.shape[:-1], v.shape[-1]))
    for start in range(0, lk, chunk_size):
        stop = min(start + chunk_size, lk)
        scores = torch.matmul(q, k[..., start:stop, :].transpose(-2, -1)) * scale  # (*B, Lq, chunk)
        if mask is not None:
            scores = scores.masked_fill(~mask[..., start:stop], -math.inf)
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        safe_max = torch.where(torch.isfinite(new_max), new_max, torch.zeros_like(new_max))
        rescale = torch.exp(running_max - safe_max)  # e^{m - m'}; 0 while nothing was seen
        p = torch.exp(scores - safe_max)  # (*B, Lq, chunk)
        running_sum = rescale * running_sum + p.sum(dim=-1, keepdim=True)
        out = rescale * out + torch.matmul(p, v[..., start:stop, :])
        running_max = new_max
    return out / torch.where(running_sum > 0, running_sum, torch.ones_like(running_sum))


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Linear attention with the feature map ``φ(x) = elu(x) + 1`` (Katharopoulos et al. 2020, Eq. 6).

    ``out_i = φ(q_i)ᵀ (Σ_j φ(k_j) v_jᵀ) / (φ(q_i)ᵀ Σ_j φ(k_j))``: the implied weights
    ``φ(q_i)ᵀ φ(k_j) / Σ_j' φ(q_i)ᵀ φ(k_j')`` are positive and sum to one, like softmax weights, but
    come from a different kernel, so the result differs from softmax attention.

    Args:
        q: ``(*B, Lq, D)``; k: ``(*B, Lk, D)``; v: ``(*B, Lk, Dv)``.
        eps: guards the division.

    Returns:
        ``(*B, Lq, Dv)``, in time and memory linear in ``Lq + Lk``.
    """
    check_qkv(q, k, v, broadcast=False)
    phi_q = torch.nn.functional.elu(q) + 1
    phi_k = torch.nn.functional.elu(k) + 1
    kv = torch.matmul(phi_k.transpose(-2, -1), v)  # (*B, D, Dv): the whole memory of keys and values
    normaliser = torch.matmul(phi_q, phi_k.sum(dim=-2, keepdim=True).transpose(-2, -1))  # (*B, Lq, 1)
    return torch.matmul(phi_q, kv) / (normaliser + eps)


def online_softmax_update(
    running_max: torch.Tensor,
    running_sum: torch.Tensor,
    out: torch.Tensor,
    scores: torch.Tensor,
    values: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the online softmax: fold a block of scores and values into the running state.

    ``m' = max(m, max s)``, ``l' = e^{m - m'} l + Σ e^{s - m'}``, ``o' = e^{m - m'} o + e^{s - m'} V``
    (the un-normalised weighted sum); the attention output is ``o / l`` at any time.

    Args:
        running_max: ``(*B, 1)``, ``-inf`` before the first block.
        running_sum: ``(*B, 1)``.
        out: ``(*B, Dv)``.
        scores: ``(*B, n)`` scores of the block's ``n`` keys.
        values: ``(*B, n, Dv)`` or ``(n, Dv)`` values of the block.

    Returns:
        the new ``(running_max, running_sum, out)``.
    """
    for name, t in (("running_max", running_max), ("running_sum", running_sum), ("out", out),
                    ("scores", scores), ("values", values)):
        check_floating(name, t)
    if scores.shape[-1] != values.shape[-2]:
        raise ValueError(f"scores {shape_str(scores)} and values {shape_str(values)} must hold the same number of keys")
    new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
    safe = torch.where(torch.isfinite(new_max), new_max, torch.zeros_like(new_max))
    rescale = torch.exp(running_max - safe)
    p = torch.exp(scores - safe)
    new_sum = rescale * running_sum + p.sum(dim=-1, keepdim=True)
    new_out = rescale * out + torch.matmul(p.unsqueeze(-2), values).squeeze(-2)
    return new_max, new_sum, new_out


def online_softmax_trace(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, chunk_size: int,
                         scale: float = 1.0) -> list[dict[str, torch.Tensor]]:
    """The state of the online softmax for one query after each block of keys, for teaching.

    Args:
        query: ``(D,)``; keys: ``(N, D)``; values: ``(N, Dv)``; chunk_size: keys per block.

    Returns:
        one dict per block with ``max`` and ``sum`` (scalars), ``output`` ``(Dv,)`` = ``o / l`` so far,
        and ``weights`` ``(N,)``: the softmax over the keys seen so far (zero for the others). After the
        last block ``weights`` and ``output`` equal full attention.
    """
    check_rank("query", query, exactly=1, expected="(D,)")
    check_rank("keys", keys, exactly=2, expected="(N, D)")
    check_rank("values", values, exactly=2, expected="(N, Dv)")
    if keys.shape[0] != values.shape[0] or keys.shape[1] != query.shape[0]:
        raise ValueError(f"need query (D,), keys (N, D), values (N, Dv); got {shape_str(query)}, "
                         f"{shape_str(keys)}, {shape_str(values)}")
    scores = keys @ query * scale
    m = query.new_full((1,), -math.inf)
    l_ = query.new_zeros(1)
    o = query.new_zeros(values.shape[1])
    states = []
    for start in range(0, keys.shape[0], chunk_size):
        stop = min(start + chunk_size, keys.shape[0])
        m, l_, o = online_softmax_update(m, l_, o, scores[start:stop], values[start:stop])
        seen = torch.zeros_like(scores)
        seen[:stop] = torch.exp(scores[:stop] - m) / l_
        states.append({"max": m[0].clone(), "sum": l_[0].clone(), "output": o / l_, "weights": seen})
    return states
