"""Attention without the n × n matrix: exact attention in chunks, and linear attention.

* :func:`online_softmax_update` is one step of the **online softmax** (Milakov & Gimelshein,
  "Online normalizer calculation for softmax", 2018): for each query it keeps a running maximum
  ``m``, a running sum ``l`` of ``exp(s - m)`` and a running weighted sum ``o`` of values; a new
  block of scores ``s_j`` with values ``V_j`` updates them as

      m' = max(m, max s_j),   l' = e^{m - m'} l + Σ e^{s_j - m'},
      o' = e^{m - m'} o + e^{s_j - m'} V_j

  and the answer is ``o / l``. :func:`online_softmax_trace` records the state block by block.
* :func:`chunked_attention` computes *exact* scaled dot-product attention one block of keys at a
  time with that update — the loop of FlashAttention (Dao et al., NeurIPS 2022, Algorithm 1),
  here in plain PyTorch. The extra memory is ``O(Lq · chunk)`` instead of ``O(Lq · Lk)``. Two
  states computed on disjoint blocks of keys merge by the same rescaling, so the keys of one query
  can also be split across workers and the partial results merged: split-KV, as in Flash-Decoding
  (Dao et al., 2023). FlashAttention-2 (Dao, ICLR 2024) parallelises over blocks of *queries*
  instead, each running the loop over all keys.
* :func:`linear_attention` replaces ``softmax(q kᵀ)`` by a kernel ``φ(q) φ(k)ᵀ`` with
  ``φ(x) = elu(x) + 1`` (Katharopoulos et al., "Transformers are RNNs", ICML 2020, Eq. 4-6), so
  that ``φ(K)ᵀ V`` is computed once: time and memory linear in the number of tokens — but it is a
  different model, not the same numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._checks import (
    check_bool_mask,
    check_number,
    check_positive_int,
    check_positive_number,
    check_qkv,
    check_scale,
    check_tensor,
    shape_str,
)

__all__ = [
    "chunked_attention",
    "linear_attention",
    "online_softmax_update",
    "online_softmax_trace",
]


def online_softmax_update(
    running_max: torch.Tensor,
    running_sum: torch.Tensor,
    out: torch.Tensor,
    scores: torch.Tensor,
    values: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the online softmax: fold a block of scores and values into the running state.

    ``m' = max(m, max s)``, ``l' = e^{m - m'} l + Σ e^{s - m'}``,
    ``o' = e^{m - m'} o + e^{s - m'} V`` (the un-normalised weighted sum); the attention output is
    ``o / l`` at any time.

    Args:
        running_max: ``(*B, 1)``, ``-inf`` before the first block.
        running_sum: ``(*B, 1)``.
        out: ``(*B, Dv)``.
        scores: ``(*B, n)`` scores of the block's ``n`` keys.
        values: ``(*B, n, Dv)`` values of the block, or any shape that broadcasts to it
            (``(n, Dv)``: the same values for every query).

    Returns:
        the new ``(running_max, running_sum, out)``.
    """
    _check_update(running_max, running_sum, out, scores, values)
    # [start-online-softmax-update]
    new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))  # m'
    safe_max = torch.where(torch.isfinite(new_max), new_max, 0.0)  # m' = -inf: nothing seen yet
    rescale = torch.exp(running_max - safe_max)  # e^{m - m'}; 0 while nothing was seen
    p = torch.exp(scores - safe_max)  # e^{s - m'}  (*B, n)
    new_sum = rescale * running_sum + p.sum(dim=-1, keepdim=True)  # l'
    new_out = rescale * out + torch.einsum("...n,...nd->...d", p, values)  # o'
    # [end-online-softmax-update]
    return new_max, new_sum, new_out


def _check_update(running_max, running_sum, out, scores, values) -> None:
    """Validate the arguments of :func:`online_softmax_update`."""
    for name, t in (("running_max", running_max), ("running_sum", running_sum)):
        check_tensor(name, t, "(*B, 1)")
    check_tensor("out", out, "(*B, Dv)")
    check_tensor("scores", scores, "(*B, n)")
    check_tensor("values", values, "(*B, n, Dv)", n=scores.shape[-1])
    batch, dv = scores.shape[:-1], values.shape[-1]
    for name, t, last in (
        ("running_max", running_max, 1),
        ("running_sum", running_sum, 1),
        ("out", out, dv),
    ):
        if t.shape != (*batch, last):
            raise ValueError(
                f"{name} must be {(*batch, last)} for scores {shape_str(scores)} and values "
                f"{shape_str(values)}, got {shape_str(t)}"
            )


def chunked_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    chunk_size: int = 128,
    scale: float | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Exact ``softmax(q kᵀ · scale) v``, over blocks of ``chunk_size`` keys (online softmax).

    Equal to :func:`visual_attention.core.scaled_dot_product_attention`'s context (up to rounding)
    without ever holding the ``(Lq, Lk)`` weight matrix: the largest temporary is
    ``(Lq, chunk_size)``.

    Args:
        q: queries ``(*B, Lq, D)``.
        k: keys ``(*B, Lk, D)``.
        v: values ``(*B, Lk, Dv)``.
        chunk_size: keys per block.
        scale: score multiplier; ``None`` means ``D ** -0.5``.
        mask: optional boolean ``(*B, Lq, Lk)`` (or broadcastable), ``True`` = may attend; a query
            with no allowed key gets a zero context.

    Returns:
        the context ``(*B, Lq, Dv)``.
    """
    mask = _check_chunked(q, k, v, chunk_size, mask, scale)
    # [start-chunked-attention]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    m = q.new_full((*q.shape[:-1], 1), -math.inf)  # each query's largest score so far
    ell = q.new_zeros((*q.shape[:-1], 1))  # ℓ = Σ e^{s - m}
    o = q.new_zeros((*q.shape[:-1], v.shape[-1]))  # o = Σ e^{s - m} v
    for start in range(0, k.shape[-2], chunk_size):
        block = slice(start, start + chunk_size)
        scores = q @ k[..., block, :].transpose(-2, -1) * scale  # (*B, Lq, chunk)
        if mask is not None:
            scores = scores.masked_fill(~mask[..., block], -math.inf)
        values = v[..., None, block, :]  # (*B, 1, chunk, Dv): the same for every query
        m, ell, o = online_softmax_update(m, ell, o, scores, values)  # m', ℓ', o'
    return o / torch.where(ell > 0, ell, 1.0)  # o / ℓ; a query with no allowed key gets 0
    # [end-chunked-attention]


def _check_chunked(q, k, v, chunk_size, mask, scale) -> torch.Tensor | None:
    """Validate the arguments of :func:`chunked_attention`; return the mask expanded to
    ``(*B, Lq, Lk)`` (a view), or ``None``."""
    check_qkv(q, k, v, broadcast=False)
    check_positive_int("chunk_size", chunk_size)
    check_scale("scale", scale)
    if mask is None:
        return None
    scores_shape = (*q.shape[:-1], k.shape[-2])
    check_bool_mask("mask", mask, broadcast_to=scores_shape, layout="(*B, Lq, Lk)")
    return mask.expand(scores_shape)


def linear_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Linear attention with the feature map ``φ(x) = elu(x) + 1`` (Katharopoulos et al., Eq. 6).

    ``out_i = φ(q_i)ᵀ (Σ_j φ(k_j) v_jᵀ) / (φ(q_i)ᵀ Σ_j φ(k_j))``: the implied weights
    ``φ(q_i)ᵀ φ(k_j) / Σ_j' φ(q_i)ᵀ φ(k_j')`` are positive and sum to one, like softmax weights,
    but come from a different kernel, so the result differs from softmax attention.

    Args:
        q: ``(*B, Lq, D)``; k: ``(*B, Lk, D)``; v: ``(*B, Lk, Dv)``.
        eps: guards the division.

    Returns:
        ``(*B, Lq, Dv)``, in time and memory linear in ``Lq + Lk``.
    """
    check_qkv(q, k, v, broadcast=False)
    check_number("eps", eps, 0.0)
    # [start-linear-attention]
    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1  # φ(x) = elu(x) + 1 > 0
    kv = phi_k.transpose(-2, -1) @ v  # Σ_j φ(k_j) v_jᵀ  (*B, D, Dv): all keys and values, once
    normaliser = phi_q @ phi_k.sum(dim=-2).unsqueeze(-1)  # φ(q_i)ᵀ Σ_j φ(k_j)  (*B, Lq, 1)
    return (phi_q @ kv) / (normaliser + eps)  # Eq. 6
    # [end-linear-attention]


def online_softmax_trace(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    chunk_size: int,
    scale: float = 1.0,
) -> list[dict[str, torch.Tensor]]:
    """The state of the online softmax for one query after each block of keys, for teaching.

    Args:
        query: ``(D,)``; keys: ``(N, D)``; values: ``(N, Dv)``; chunk_size: keys per block;
        scale: score multiplier.

    Returns:
        one dict per block with ``max`` and ``sum`` (scalars), ``output`` ``(Dv,)`` = ``o / l`` so
        far, and ``weights`` ``(N,)``: the softmax over the keys seen so far (zero for the others).
        After the last block ``weights`` and ``output`` equal full attention.
    """
    _check_trace(query, keys, values, chunk_size, scale)
    scores = keys @ query * scale  # (N,)
    m, l_, o = (
        query.new_full((1,), -math.inf),
        query.new_zeros(1),
        query.new_zeros(values.shape[1]),
    )
    states = []
    for start in range(0, keys.shape[0], chunk_size):
        stop = min(start + chunk_size, keys.shape[0])
        m, l_, o = online_softmax_update(m, l_, o, scores[start:stop], values[start:stop])
        seen = torch.zeros_like(scores)
        seen[:stop] = torch.exp(scores[:stop] - m) / l_
        states.append(
            {"max": m[0].clone(), "sum": l_[0].clone(), "output": o / l_, "weights": seen}
        )
    return states


def _check_trace(query, keys, values, chunk_size, scale) -> None:
    """Validate the arguments of :func:`online_softmax_trace`."""
    (d,) = check_tensor("query", query, "(D,)")
    (n, _) = check_tensor("keys", keys, "(N, D)", D=d)
    check_tensor("values", values, "(N, Dv)", N=n)
    check_positive_int("chunk_size", chunk_size)
    check_positive_number("scale", scale)
