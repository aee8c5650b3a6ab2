"""Memory-based attention: a query reads an external memory of key-value slots.

* :func:`memory_read` and :class:`KeyValueMemory` — the read of Memory Networks (Weston et al.,
  "Memory Networks", ICLR 2015) in its soft, end-to-end form (Sukhbaatar et al., "End-To-End Memory
  Networks", NeurIPS 2015, Eq. 1-2): slot weights ``p_i = softmax(uᵀ m_i)``, read vector
  ``o = Σ p_i c_i``, and several hops ``u_{k+1} = u_k + o_k`` (Sec. 2.2).
* :class:`ExternalAttention` — Guo et al., "Beyond Self-attention: External Attention using Two Linear
  Layers for Visual Tasks" (TPAMI 2022, arXiv 2105.02358), Eq. 5-6: the keys and values are two small
  learnable memories ``M_k, M_v`` (``S × D``) shared by the whole dataset, so the cost is linear in the
  number of tokens ``N`` (``N·S`` scores instead of ``N²``), with the paper's double normalisation.
* :class:`DigitEncoder`, :class:`TokenClassifier` and :func:`explorer` — the chapter's experiment
  (a gallery of digits as memory; external versus self-attention) and widget.

Mask convention of the package: a boolean mask is ``True`` where attention is allowed.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_floating, check_rank, shape_str
from .core import AttentionModule, masked_softmax, scaled_dot_product_attention

__all__ = [
    "memory_read",
    "KeyValueMemory",
    "ExternalAttention",
    "SelfAttention",
]


def _check_memory(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``query (B, D)``, ``keys (S, D) | (B, S, D)``, ``values (S, Dv) | (B, S, Dv)``; batch them."""
    for name, t in (("query", query), ("keys", keys), ("values", values)):
        check_floating(name, t)
    check_rank("query", query, exactly=2, expected="(B, D)")
    b, d = query.shape
    for name, t, want in (("keys", keys, "D"), ("values", values, "Dv")):
        if t.ndim not in (2, 3):
            raise ValueError(f"{name} must be 2-d (S, {want}) or 3-d (B, S, {want}), got shape {shape_str(t)}")
        if t.ndim == 3 and t.shape[0] != b:
            raise ValueError(f"{name} {shape_str(t)} must have B = {b} memories, one per query {shape_str(query)}")
    keys = keys.expand(b, *keys.shape) if keys.ndim == 2 else keys
    values = values.expand(b, *values.shape) if values.ndim == 2 else values
    if keys.shape[-1] != d:
        raise ValueError(f"keys {shape_str(keys)} must have the query's feature size D = {d} (query {shape_str(query)})")
    if keys.shape[1] != values.shape[1]:
        raise ValueError(f"keys {shape_str(keys)} and values {shape_str(values)} must have the same number of slots S")
    if not (query.dtype == keys.dtype == values.dtype):
        raise ValueError(f"query, keys and values must share a dtype, got {query.dtype}, {keys.dtype}, {values.dtype}")
    return keys, values


def memory_read(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor | None = None,
    scale: float = 1.0,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One soft read of a key-value memory (Sukhbaatar et al. 2015, Eq. 1-2).

    ``p_i = softmax_i(scale · ⟨u, m_i⟩ / T)`` over the ``S`` slots, read vector ``o = Σ_i p_i c_i``.

    Args:
        query: ``u``, ``(B, D)``.
        keys: ``m_i``, ``(S, D)`` (one memory shared by the batch) or ``(B, S, D)``.
        values: ``c_i``, ``(S, Dv)`` or ``(B, S, Dv)``.
        mask: optional boolean ``(S,)`` or ``(B, S)``, ``True`` = slot may be read (e.g. filled slots).
        scale: multiplier of the dot products (1 in the paper).
        temperature: softmax temperature ``T > 0``.

    Returns:
        ``(read, weights)``: ``(B, Dv)`` and slot weights ``(B, S)`` (zeros if no slot may be read).
    """
    keys, values = _check_memory(query, keys, values)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    b, s = keys.shape[:2]
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise ValueError("mask must be a boolean tensor (S,) or (B, S) of readable slots")
        if mask.shape not in ((s,), (b, s)):
            raise ValueError(f"mask must have shape (S,) = ({s},) or (B, S) = ({b}, {s}), got {shape_str(mask)}")
        mask = mask.expand(b, s)[:, None, :]                                    # (B, 1, S)
    read, weights = scaled_dot_product_attention(query[:, None, :] / temperature, keys, values, mask=mask,
                                                 scale=scale)
    return read[:, 0], weights[:, 0]


class KeyValueMemory(AttentionModule):
    """Multi-hop reading of a key-value memory: the controller of End-To-End Memory Networks.

    Hop ``k`` reads the memory with the current query ``u_k`` (:func:`memory_read`) and adds what it
    read: ``u_{k+1} = u_k + o_k`` (Sukhbaatar et al. 2015, Sec. 2.2, with the same memory at every hop,
    their layer-wise tying without the extra map ``H``). One hop returns ``u + o``; the answer of the
    paper is then ``softmax(W u_K)`` for a learned ``W``.

    Args:
        dim: feature size ``D`` of the query, keys and values (values must live in the query's space
            for the update ``u + o`` to make sense).
        hops: number of reads ``K ≥ 1``.
        scale, temperature: as in :func:`memory_read`.

    Shapes:
        ``forward(query, keys, values, mask=None)``: query ``(B, D)``, keys and values ``(S, D)`` or
        ``(B, S, D)``, mask ``(S,)`` or ``(B, S)`` → final query ``u_K`` ``(B, D)``.

    Records:
        slot weights ``(B, hops, S)``: row ``k`` are the weights of hop ``k``, each summing to 1 over ``S``.
    """

    def __init__(self, dim: int, hops: int = 1, scale: float = 1.0, temperature: float = 1.0) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if not isinstance(hops, int) or hops < 1:
            raise ValueError(f"hops must be a positive integer, got {hops!r}")
        self.dim, self.hops, self.scale, self.temperature = dim, hops, scale, temperature

    def forward(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        check_floating("query", query)
        if query.ndim != 2 or query.shape[-1] != self.dim:
            raise ValueError(f"query must have shape (B, D) with D = {self.dim}, got {shape_str(query)}")
        if values.shape[-1] != self.dim:
            raise ValueError(f"values must have Dv = D = {self.dim} features (u + o), got {shape_str(values)}")
        u, hop_weights = query, []
        for _ in range(self.hops):
            o, p = memory_read(u, keys, values, mask=mask, scale=self.scale, temperature=self.temperature)
            u = u + o                                                            # u_{k+1} = u_k + o_k
            hop_weights.append(p)
        self.remember(torch.stack(hop_weights, dim=1))                           # (B, hops, S)
        return u


class ExternalAttention(AttentionModule):
    """External attention: tokens attend to a small learned memory shared by the whole dataset.

    Guo et al. (2022), Eq. 5-6, as in their reference code: with ``M_k, M_v ∈ R^{S×D}`` two linear
    layers without bias and ``F`` the tokens ``(N, D)`` of one image,

    * scores ``A = F M_kᵀ`` ``(N, S)``;
    * double normalisation: ``softmax`` over the **tokens** (each memory unit's scores are normalised
      over the ``N`` tokens), then each token's row is divided by its sum over the ``S`` memory units
      (ℓ1 normalisation), so a token's weights sum to 1;
    * output ``F_out = A M_v`` ``(N, D)``.

    Cost: ``N·S`` scores against ``N²`` for self-attention.

    Args:
        dim: token size ``D``.
        memory_size: number of memory units ``S`` (64 in the paper).

    Shapes:
        ``forward(x, mask=None)``: tokens ``(B, N, D)``, optional boolean ``mask`` ``(B, N)`` of valid
        tokens (padding gets zero weight) → ``(B, N, D)``.

    Records:
        weights ``(B, N, S)``, non-negative, each valid token's row summing to 1 over the ``S`` units.
    """

    def __init__(self, dim: int, memory_size: int = 64) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 1 or not isinstance(memory_size, int) or memory_size < 1:
            raise ValueError(f"dim and memory_size must be positive integers, got {dim!r} and {memory_size!r}")
        self.dim, self.memory_size = dim, memory_size
        self.mk = nn.Linear(dim, memory_size, bias=False)   # M_k
        self.mv = nn.Linear(memory_size, dim, bias=False)   # M_v

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_floating("x", x)
        check_rank("x", x, exactly=3, expected="(B, N, D)")
        if x.shape[-1] != self.dim:
            raise ValueError(f"x must have D = {self.dim} features (B, N, {self.dim}), got {shape_str(x)}")
        if mask is not None:
            if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != x.shape[:2]:
                got = shape_str(mask) if isinstance(mask, torch.Tensor) else type(mask).__name__
                raise ValueError(f"mask must be a boolean tensor (B, N) = {tuple(x.shape[:2])}, got {got}")
            mask = mask[..., None]                                               # (B, N, 1)
        attn = masked_softmax(self.mk(x), dim=1, mask=mask)                      # softmax over the N tokens
        attn = attn / (1e-9 + attn.sum(dim=2, keepdim=True))                     # ℓ1 over the S units
        return self.mv(self.remember(attn))


class SelfAttention(AttentionModule):
    """Single-head self-attention over tokens, the baseline of the External Attention comparison.

    ``softmax(Q Kᵀ / √D) V`` with ``Q, K, V`` linear maps of the tokens and an output map (Vaswani et
    al. 2017, Eq. 1). ``forward(x)``: ``(B, N, D)`` → ``(B, N, D)``. Records weights ``(B, N, N)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_floating("x", x)
        check_rank("x", x, exactly=3, expected="(B, N, D)")
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        context, weights = scaled_dot_product_attention(q, k, v)
        self.remember(weights)
        return self.proj(context)
