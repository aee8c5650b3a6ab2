"""Temporal attention: frames attending to frames.

* :class:`TemporalSelfAttention` — frames attend to frames, as in the temporal part of the
  "divided space-time attention" of TimeSformer (Bertasius et al., "Is Space-Time Attention All
  You Need for Video Understanding?", ICML 2021, Eq. 7) and the space-time non-local block of
  Wang et al. ("Non-local Neural Networks", CVPR 2018): either at every spatial position (each
  pixel attends to the same pixel in the other frames) or between spatially pooled frame features,
  optionally causal (a frame sees only itself and the past). The attention itself is the kit's
  one-head :class:`~visual_attention.blocks.MultiHeadAttention`.
* :func:`causal_mask` — the ``(T, T)`` mask of causal attention.

Attention pooling over the frames of a clip (the "attention unit" of Attention Clusters, Long et
al., CVPR 2018, Eq. 2-3) is :class:`visual_attention.blocks.AttentionPooling`, the same additive
pooling the hierarchical chapter uses over words and sentences.

Mask convention of the package: a boolean mask is ``True`` where attention is allowed.
"""

from __future__ import annotations

import torch
from einops import rearrange

from ._checks import check_bool, check_bool_mask, check_choice, check_positive_int, check_tensor
from .blocks import MultiHeadAttention
from .core import AttentionModule

__all__ = [
    "causal_mask",
    "TemporalSelfAttention",
]


def causal_mask(frames: int, device: torch.device | None = None) -> torch.Tensor:
    """The ``(T, T)`` boolean mask of causal attention: frame ``t`` may attend to ``s ≤ t``."""
    check_positive_int("frames", frames)
    if device is not None and not isinstance(device, (str, torch.device)):
        raise ValueError(f"device must be a torch.device, a string or None, got {device!r}")
    return torch.ones(frames, frames, dtype=torch.bool, device=device).tril()


class TemporalSelfAttention(AttentionModule):
    """Frames attend to frames: the temporal attention of divided space-time attention.

    With ``W_q, W_k, W_v, W_o`` learned ``D × D`` maps and ``x`` a clip ``(B, T, C, H, W)``,
    ``C = D``:

    * ``mode="pixel"`` (TimeSformer's temporal attention, Bertasius et al. 2021, Eq. 7): at every
      position ``p = (i, j)`` the ``T`` feature vectors ``x_{t,p}`` attend to each other,
      ``A_p = softmax(Q_p K_pᵀ / √D)`` over the key frames,
      ``y_{t,p} = x_{t,p} + W_o (A_p V_p)_t``. Cost: ``H·W·T²`` scores (a divided space-time
      block adds spatial attention within each frame, ``T·(H·W)²``, for ``T·(H·W)² + H·W·T²``
      in all, against ``(H·W·T)²`` for joint space-time attention).
    * ``mode="frame"``: each frame is first pooled to one vector ``x̄_t`` (mean over ``H, W``); the
      ``T`` frame vectors attend to each other, ``A = softmax(Q Kᵀ / √D)``, and the context of
      frame ``t`` is added at every position of that frame: ``y_{t,p} = x_{t,p} + W_o (A V)_t``.
      Cost: ``T²``.

    ``Q, K, V`` and ``W_o`` are those of
    :class:`~visual_attention.blocks.MultiHeadAttention` (one head by default; ``attn``: fused
    ``qkv``, then ``proj``).
    The residual connection is that of the non-local block (Wang et al. 2018) and of TimeSformer.

    Args:
        dim: channels ``C`` of the clip (the feature size ``D`` of attention).
        mode: ``"pixel"`` or ``"frame"``.
        causal: if True, frame ``t`` attends only to frames ``s ≤ t`` (see :func:`causal_mask`).
        num_heads: heads of ``D / num_heads`` features each (1: the equations above).

    Shapes:
        ``forward(x, mask=None)``: ``x`` ``(B, T, C, H, W)``; optional boolean ``mask`` ``(B, T)``
        of valid frames (invalid frames are never attended to) → ``(B, T, C, H, W)``.

    Records:
        ``mode="pixel"``: weights ``(B, H, W, T, T)``; ``mode="frame"``: ``(B, T, T)``. Rows are
        query frames, columns key frames; each row sums to 1 over the key frames it may attend to.
        With several heads, the mean of the heads' weights. (The inner ``attn`` records each
        head's weights as ``(B·H·W or B, heads, T, T)``.)
    """

    def __init__(
        self, dim: int, mode: str = "pixel", causal: bool = False, num_heads: int = 1
    ) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        check_choice("mode", mode, ("pixel", "frame"))
        check_positive_int("num_heads", num_heads)
        self.dim, self.mode, self.causal = dim, mode, check_bool("causal", causal)
        # W_q, W_k, W_v (qkv) and W_o (proj), split into num_heads heads of dim / num_heads
        self.attn = MultiHeadAttention(dim, num_heads=num_heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, c, h, w = check_tensor("x", x, "(B, T, C, H, W)", C=self.dim)
        allowed = self._allowed(mask, x)  # causal and valid key frames, or None
        # [start-temporal-self-attention]
        if self.mode == "pixel":  # one sequence of T frames per position p
            tokens = rearrange(x, "b t c h w -> (b h w) t c")  # (B·H·W, T, C)
        else:  # one vector x̄_t per frame
            tokens = x.mean(dim=(-2, -1))  # (B, T, C)
        context, weights = self.attn(tokens, mask=allowed, return_weights=True)  # W_o (A V), Eq. 7
        if self.mode == "pixel":
            weights = weights.mean(dim=1)  # (B·H·W, T, T): the heads' mean
            self.remember(rearrange(weights, "(b h w) t s -> b h w t s", b=b, h=h, w=w))
            context = rearrange(context, "(b h w) t c -> b t c h w", b=b, h=h, w=w)
        else:
            self.remember(weights.mean(dim=1))  # (B, T, T): the heads' mean
            context = context[..., None, None]  # (B, T, C, 1, 1): the same at every position
        return x + context  # y_{t,p} = x_{t,p} + W_o (A V)_t
        # [end-temporal-self-attention]

    def _allowed(self, mask: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
        """The causal and padding masks as one boolean mask for ``attn``, or ``None``.

        ``(1, 1, T, T)`` when only causal (the same for every sequence); with a padding ``mask``
        ``(B, T)``, ``(B, 1, 1 or T, T)`` in ``"frame"`` mode, repeated for each of the ``H·W``
        positions of a clip in ``"pixel"`` mode.
        """
        b, t, _, h, w = x.shape
        allowed = causal_mask(t, x.device)[None, None] if self.causal else None  # (1, 1, T, T)
        if mask is None:
            return allowed
        check_bool_mask("mask", mask, shape=(b, t), layout="(B, T)")
        keys_ok = mask[:, None, None, :]  # (B, 1, 1, T): nobody attends to an invalid frame
        allowed = keys_ok if allowed is None else keys_ok & allowed
        return allowed.repeat_interleave(h * w, dim=0) if self.mode == "pixel" else allowed
