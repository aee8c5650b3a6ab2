"""Temporal attention: weighting the frames of a clip.

* :class:`TemporalAttentionPooling` — attention pooling over frame features ``(B, T, D)``: a small
  scoring network gives each frame a score, a softmax over time turns the scores into frame weights,
  and the clip is summarised by the weighted mean of its frames. This is the additive attention of
  Bahdanau et al. (ICLR 2015) used as a pooling layer, the "attention unit" of Attention Clusters
  (Long et al., "Attention Clusters: Purely Attention Based Local Feature Integration for Video
  Classification", CVPR 2018, Eq. 2-3, one cluster): ``a = softmax(w₂ᵀ tanh(W₁ X + b₁))``, ``v = a X``.
* :class:`TemporalSelfAttention` — frames attend to frames, as in the temporal part of the
  "divided space-time attention" of TimeSformer (Bertasius et al., "Is Space-Time Attention All You
  Need for Video Understanding?", ICML 2021, Eq. 7) and the space-time non-local block of Wang et al.
  ("Non-local Neural Networks", CVPR 2018): either at every spatial position (each pixel attends to
  the same pixel in the other frames) or between spatially pooled frame features, optionally causal
  (a frame sees only itself and the past).
* :class:`FrameEncoder` and :class:`ClipClassifier` — the small per-frame CNN and the clip classifier
  of the chapter's experiment (attention pooling versus plain averaging over frames), and
  :func:`explorer`, the chapter's widget.

Mask convention of the package: a boolean mask is ``True`` where attention is allowed.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from ._checks import check_floating, check_rank, shape_str
from .core import AttentionModule, masked_softmax, scaled_dot_product_attention

__all__ = [
    "causal_mask",
    "TemporalAttentionPooling",
    "TemporalSelfAttention",
]


def causal_mask(frames: int, device: torch.device | None = None) -> torch.Tensor:
    """The ``(T, T)`` boolean mask of causal attention: frame ``t`` may attend to frames ``s ≤ t``."""
    if not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames must be a positive integer, got {frames!r}")
    return torch.ones(frames, frames, dtype=torch.bool, device=device).tril()


def _check_frame_mask(mask: torch.Tensor | None, b: int, t: int) -> None:
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a boolean tensor (B, T) of valid frames, got {got}")
    if mask.shape != (b, t):
        raise ValueError(f"mask must have shape (B, T) = ({b}, {t}), got {shape_str(mask)}")


class TemporalAttentionPooling(AttentionModule):
    """Attention pooling over the frames of a clip (additive attention over time).

    For frame features ``x_t ∈ R^D`` (Long et al. 2018, Eq. 2-3; Bahdanau et al. 2015):

    * score ``e_t = w₂ᵀ tanh(W₁ x_t + b₁)``;
    * frame weight ``α_t = exp(e_t) / Σ_s exp(e_s)``, over the valid frames only if a mask is given;
    * clip vector ``c = Σ_t α_t x_t``.

    Args:
        dim: feature size ``D`` of a frame.
        hidden: width of the scoring layer (default ``dim``).

    Shapes:
        ``forward(x, mask=None)`` with ``x`` ``(B, T, D)`` and optional boolean ``mask`` ``(B, T)``,
        ``True`` for valid frames (e.g. clips padded to a common length) → clip vector ``(B, D)``.
        A clip with no valid frame gets a zero vector.

    Records:
        frame weights ``(B, T)``, non-negative, summing to 1 over ``T``.
    """

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        hidden = hidden or dim
        self.dim = dim
        self.proj = nn.Linear(dim, hidden)              # W₁, b₁
        self.score = nn.Linear(hidden, 1, bias=False)   # w₂ (a bias would cancel in the softmax)

    def frame_weights(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The frame weights ``(B, T)`` of features ``x`` ``(B, T, D)``, without pooling."""
        check_floating("x", x)
        check_rank("x", x, exactly=3, expected="(B, T, D)")
        if x.shape[-1] != self.dim:
            raise ValueError(f"x must have D = {self.dim} features (B, T, {self.dim}), got {shape_str(x)}")
        _check_frame_mask(mask, x.shape[0], x.shape[1])
        scores = self.score(torch.tanh(self.proj(x))).squeeze(-1)   # (B, T)
        return masked_softmax(scores, dim=-1, mask=mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        weights = self.remember(self.frame_weights(x, mask))      # (B, T)
        return torch.einsum("bt,btd->bd", weights, x)


class TemporalSelfAttention(AttentionModule):
    """Frames attend to frames: the temporal attention of divided space-time attention.

    With ``W_q, W_k, W_v, W_o`` learned ``D × D`` maps and ``x`` a clip ``(B, T, C, H, W)``, ``C = D``:

    * ``mode="pixel"`` (TimeSformer's temporal attention, Bertasius et al. 2021, Eq. 7): at every
      position ``p = (i, j)`` the ``T`` feature vectors ``x_{t,p}`` attend to each other,
      ``A_p = softmax(Q_p K_pᵀ / √D)`` over the key frames, ``y_{t,p} = x_{t,p} + W_o (A_p V_p)_t``.
      Cost: ``H·W·T²`` scores.
    * ``mode="frame"``: each frame is first pooled to one vector ``x̄_t`` (mean over ``H, W``); the
      ``T`` frame vectors attend to each other, ``A = softmax(Q Kᵀ / √D)``, and the context of frame
      ``t`` is added at every position of that frame: ``y_{t,p} = x_{t,p} + W_o (A V)_t``. Cost: ``T²``.

    The residual connection is that of the non-local block (Wang et al. 2018) and of TimeSformer.

    Args:
        dim: channels ``C`` of the clip (the feature size ``D`` of attention).
        mode: ``"pixel"`` or ``"frame"``.
        causal: if True, frame ``t`` attends only to frames ``s ≤ t`` (see :func:`causal_mask`).

    Shapes:
        ``forward(x, mask=None)``: ``x`` ``(B, T, C, H, W)``; optional boolean ``mask`` ``(B, T)`` of
        valid frames (invalid frames are never attended to) → ``(B, T, C, H, W)``.

    Records:
        ``mode="pixel"``: weights ``(B, H, W, T, T)``; ``mode="frame"``: ``(B, T, T)``. Rows are query
        frames, columns key frames; each row sums to 1 over the key frames it may attend to.
    """

    def __init__(self, dim: int, mode: str = "pixel", causal: bool = False) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if mode not in ("pixel", "frame"):
            raise ValueError(f"mode must be 'pixel' or 'frame', got {mode!r}")
        self.dim, self.mode, self.causal = dim, mode, bool(causal)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_floating("x", x)
        check_rank("x", x, exactly=5, expected="(B, T, C, H, W)")
        b, t, c, h, w = x.shape
        if c != self.dim:
            raise ValueError(f"x must have C = {self.dim} channels (B, T, {self.dim}, H, W), got {shape_str(x)}")
        _check_frame_mask(mask, b, t)
        allowed = None  # (B, 1, T, T) or (1, T, T) after the steps below
        if self.causal:
            allowed = causal_mask(t, x.device)[None]                                  # (1, T, T)
        if mask is not None:
            keys_ok = mask[:, None, :].expand(b, t, t)                                # (B, T, T)
            allowed = keys_ok if allowed is None else keys_ok & allowed
        if self.mode == "pixel":
            tokens = rearrange(x, "b t c h w -> (b h w) t c")                         # (B·H·W, T, C)
            if allowed is not None:  # the same mask for every position of a clip
                allowed = allowed.expand(b, t, t).repeat_interleave(h * w, dim=0)
        else:
            tokens = x.mean(dim=(-2, -1))                                             # (B, T, C)
            if allowed is not None:
                allowed = allowed.expand(b, t, t)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        context, weights = scaled_dot_product_attention(q, k, v, mask=allowed)
        if self.mode == "pixel":
            self.remember(rearrange(weights, "(b h w) t s -> b h w t s", b=b, h=h, w=w))
            out = rearrange(self.proj(context), "(b h w) t c -> b t c h w", b=b, h=h, w=w)
        else:
            self.remember(weights)
            out = self.proj(context)[..., None, None]                                # (B, T, C, 1, 1)
        return x + out
