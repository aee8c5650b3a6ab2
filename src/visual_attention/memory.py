"""Memory-based attention: a query reads an external memory of key-value slots.

* :func:`memory_read` and :class:`KeyValueMemory` — the read of Memory Networks (Weston et al.,
  "Memory Networks", ICLR 2015) in its soft, end-to-end form (Sukhbaatar et al., "End-To-End
  Memory Networks", NeurIPS 2015, Eq. 1-2): slot weights ``p_i = softmax(uᵀ m_i)``, read vector
  ``o = Σ p_i c_i``, and several hops ``u_{k+1} = u_k + o_k`` (Sec. 2.2).
* :class:`ExternalAttention` — Guo et al., "Beyond Self-attention: External Attention using Two
  Linear Layers for Visual Tasks" (TPAMI 2022, arXiv 2105.02358), Eq. 5-6: the keys and values are
  two small learnable memories ``M_k, M_v`` (``S × D``) shared by the whole dataset, so the cost is
  linear in the number of tokens ``N`` (``N·S`` scores instead of ``N²``), with the paper's double
  normalisation.

The self-attention that External Attention is compared with is the kit's
:class:`~visual_attention.blocks.MultiHeadAttention` with one head.

Mask convention of the package: a boolean mask is ``True`` where attention is allowed.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import (
    check_bool_mask,
    check_positive_int,
    check_positive_number,
    check_tensor,
    shape_str,
)
from .core import AttentionModule, masked_softmax, scaled_dot_product_attention

__all__ = [
    "memory_read",
    "KeyValueMemory",
    "ExternalAttention",
]


def _check_memory(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor | None,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate the inputs of :func:`memory_read`; return keys ``(B, S, D)``, values
    ``(B, S, Dv)`` and the mask as ``(B, 1, S)`` (or ``None``)."""
    b, d = check_tensor("query", query, "(B, D)")
    for name, t, want in (("keys", keys, "D"), ("values", values, "Dv")):
        check_tensor(name, t, f"(*B, S, {want})")
        if t.ndim not in (2, 3):
            raise ValueError(
                f"{name} must be 2-d (S, {want}) or 3-d (B, S, {want}), got shape {shape_str(t)}"
            )
        if t.ndim == 3 and t.shape[0] != b:
            raise ValueError(
                f"{name} {shape_str(t)} must have B = {b} memories, one per query "
                f"{shape_str(query)}"
            )
    keys = keys.expand(b, *keys.shape) if keys.ndim == 2 else keys
    values = values.expand(b, *values.shape) if values.ndim == 2 else values
    s = keys.shape[1]
    if keys.shape[-1] != d:
        raise ValueError(
            f"keys {shape_str(keys)} must have the query's feature size D = {d} "
            f"(query {shape_str(query)})"
        )
    if values.shape[1] != s:
        raise ValueError(
            f"keys {shape_str(keys)} and values {shape_str(values)} must have the same number "
            "of slots S"
        )
    if not (query.dtype == keys.dtype == values.dtype):
        raise ValueError(
            f"query, keys and values must share a dtype, got {query.dtype}, {keys.dtype}, "
            f"{values.dtype}"
        )
    check_positive_number("temperature", temperature)
    if mask is not None:
        check_bool_mask("mask", mask, broadcast_to=(b, s), layout="(S,) or (B, S)")
        mask = mask.expand(b, s)[:, None, :]  # (B, 1, S): one query row per memory
    return keys, values, mask


def memory_read(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor | None = None,
    scale: float = 1.0,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One soft read of a key-value memory (Sukhbaatar et al. 2015, Eq. 1-2).

    ``p_i = softmax_i(scale · ⟨u, m_i⟩ / T)`` over the ``S`` slots, read ``o = Σ_i p_i c_i``.

    Args:
        query: ``u``, ``(B, D)``.
        keys: ``m_i``, ``(S, D)`` (one memory shared by the batch) or ``(B, S, D)``.
        values: ``c_i``, ``(S, Dv)`` or ``(B, S, Dv)``.
        mask: optional boolean ``(S,)`` or ``(B, S)``, ``True`` = slot may be read (e.g. filled
            slots).
        scale: multiplier of the dot products (1 in the paper).
        temperature: softmax temperature ``T > 0``.

    Returns:
        ``(read, weights)``: ``(B, Dv)`` and slot weights ``(B, S)`` (zeros if no slot is
        readable).
    """
    keys, values, mask = _check_memory(query, keys, values, mask, temperature)
    # [start-memory-read]
    u = query[:, None, :] / temperature  # (B, 1, D): each query is a sequence of one
    o, p = scaled_dot_product_attention(u, keys, values, mask=mask, scale=scale)  # Eq. 1-2
    return o[:, 0], p[:, 0]  # o = Σ_i p_i c_i (B, Dv), p = softmax_i(uᵀ m_i) (B, S)
    # [end-memory-read]


class KeyValueMemory(AttentionModule):
    """Multi-hop reading of a key-value memory: the controller of End-To-End Memory Networks.

    Hop ``k`` reads the memory with the current query ``u_k`` (:func:`memory_read`) and adds what
    it read: ``u_{k+1} = u_k + o_k`` (Sukhbaatar et al. 2015, Sec. 2.2, with the same memory at
    every hop, their layer-wise tying without the extra map ``H``). One hop returns ``u + o``; the
    answer of the paper is then ``softmax(W u_K)`` for a learned ``W``.

    Args:
        dim: feature size ``D`` of the query, keys and values (values must live in the query's
            space for the update ``u + o`` to make sense).
        hops: number of reads ``K ≥ 1``.
        scale, temperature: as in :func:`memory_read`.

    Shapes:
        ``forward(query, keys, values, mask=None)``: query ``(B, D)``, keys and values ``(S, D)``
        or ``(B, S, D)``, mask ``(S,)`` or ``(B, S)`` → final query ``u_K`` ``(B, D)``.

    Records:
        slot weights ``(B, hops, S)``: row ``k`` are the weights of hop ``k``, each summing to 1
        over ``S``.
    """

    def __init__(
        self, dim: int, hops: int = 1, scale: float = 1.0, temperature: float = 1.0
    ) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        check_positive_int("hops", hops)
        check_positive_number("temperature", temperature)
        check_positive_number("scale", scale)
        self.dim, self.hops, self.scale, self.temperature = dim, hops, scale, temperature

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self._check(query, values)  # memory_read checks the rest at every hop
        # [start-memory-hops]
        u, hop_weights = query, []
        for _ in range(self.hops):
            o, p = memory_read(u, keys, values, mask, self.scale, self.temperature)  # o_k, p_k
            u = u + o  # u_{k+1} = u_k + o_k
            hop_weights.append(p)
        self.remember(torch.stack(hop_weights, dim=1))  # (B, hops, S)
        return u  # u_K
        # [end-memory-hops]

    def _check(self, query: torch.Tensor, values: torch.Tensor) -> None:
        """``query (B, D)``, ``values (*B, S, D)``, ``D = dim`` (``u + o`` needs ``Dv = D``)."""
        check_tensor("query", query, "(B, D)", D=self.dim)
        check_tensor("values", values, "(*B, S, D)", D=self.dim)


class ExternalAttention(AttentionModule):
    """External attention: tokens attend to a small learned memory shared by the whole dataset.

    Guo et al. (2022), Eq. 5-6, as in their reference code: with ``M_k, M_v ∈ R^{S×D}`` two linear
    layers without bias and ``F`` the tokens ``(N, D)`` of one image,

    * scores ``A = F M_kᵀ`` ``(N, S)``;
    * double normalisation: ``softmax`` over the **tokens** (each memory unit's scores are
      normalised over the ``N`` tokens), then each token's row is divided by its sum over the
      ``S`` memory units (ℓ1 normalisation), so a token's weights sum to 1;
    * output ``F_out = A M_v`` ``(N, D)``.

    Cost: ``N·S`` scores against ``N²`` for self-attention.

    Args:
        dim: token size ``D``.
        memory_size: number of memory units ``S`` (64 in the paper).

    Shapes:
        ``forward(x, mask=None)``: tokens ``(B, N, D)``, optional boolean ``mask`` ``(B, N)`` of
        valid tokens (padding gets zero weight) → ``(B, N, D)``.

    Records:
        weights ``(B, N, S)``, non-negative, each valid token's row summing to 1 over the ``S``
        units.
    """

    def __init__(self, dim: int, memory_size: int = 64) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        check_positive_int("memory_size", memory_size)
        self.dim, self.memory_size = dim, memory_size
        self.mk = nn.Linear(dim, memory_size, bias=False)  # M_k
        self.mv = nn.Linear(memory_size, dim, bias=False)  # M_v

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, _ = check_tensor("x", x, "(B, N, D)", D=self.dim)
        mask = self._token_mask(mask, b, n)  # (B, N, 1) or None
        # [start-external-attention]
        scores = self.mk(x)  # Ã = F M_kᵀ (B, N, S)
        log_attn = _log_softmax_over_tokens(scores, mask)  # log Â: softmax over the N tokens
        attn = masked_softmax(log_attn, dim=2, mask=mask)  # A = Â / Σ_s Â: ℓ1 over S (Eq. 5)
        return self.mv(self.remember(attn))  # F_out = A M_v (Eq. 6)
        # [end-external-attention]

    @staticmethod
    def _token_mask(mask: torch.Tensor | None, b: int, n: int) -> torch.Tensor | None:
        """The ``(B, N)`` mask of valid tokens as ``(B, N, 1)``, the same for every memory unit."""
        if mask is None:
            return None
        check_bool_mask("mask", mask, shape=(b, n), layout="(B, N)")
        return mask[..., None]


def _log_softmax_over_tokens(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``log softmax`` of ``(B, N, S)`` scores over the ``N`` tokens where ``mask`` (``(B, N, 1)``)
    is True.

    The ℓ1 normalisation over the units then runs in log space (a softmax of the logs): the
    reference code's ``Â / (1e-9 + Σ_s Â)`` loses a token whose weights are all tiny (inputs ×100)
    and its ``1e-9`` vanishes in float16. Masked tokens get finite values that the next softmax
    masks; a sample with no valid token gets zeros there, not NaN.
    """
    if mask is None:
        return torch.log_softmax(scores, dim=1)
    valid = scores.masked_fill(~mask, float("-inf"))
    valid = valid.masked_fill(~mask.any(dim=1, keepdim=True), 0.0)  # no valid token: finite
    return scores - torch.logsumexp(valid, dim=1, keepdim=True)
