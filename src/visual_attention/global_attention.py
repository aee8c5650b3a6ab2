"""Global attention: every token of an image attends to every other token.

This is the multi-head self-attention (MSA) of the Vision Transformer: Dosovitskiy et al., "An Image
is Worth 16x16 Words: Transformers for Image Recognition at Scale", ICLR 2021, Eq. (1)-(4) and
Appendix A (Eq. 5-8), itself the attention of Vaswani et al., "Attention Is All You Need",
NeurIPS 2017. An image is cut into patches, each patch becomes a token (Eq. 1), and in every layer
each of the ``N`` tokens scores all ``N`` tokens:

    [q, k, v] = z U_qkv,   A = softmax(q kᵀ / √D_h),   SA(z) = A v          (ViT Eq. 5-7)
    MSA(z) = [SA_1(z); …; SA_h(z)] U_msa                                    (ViT Eq. 8)

The ``N × N`` weight matrix ``A`` is what makes attention *global* — a patch in one corner can take
information from the opposite corner in one step — and also what makes it costly: time and memory
grow like ``N²``, so doubling the side of the image multiplies the cost by 16. The local and
hierarchical chapters (:mod:`visual_attention.local_attention`, :mod:`visual_attention.hierarchical`)
trade that reach for a cost linear in ``N``.

* :class:`GlobalAttention` — multi-head self-attention over a token grid ``(B, H, W, C)`` or a token
  sequence ``(B, N, C)``; records its weights ``(B, h, N, N)``.
* :func:`patchify` — ViT's Eq. (1) without the projection: an image ``(B, C, H, W)`` → tokens
  ``(B, N, p·p·C)``.
* :class:`TokenClassifier` — a tiny ViT-like classifier (patch embedding, position embedding,
  pre-norm Transformer blocks, mean pooling) whose attention layer is chosen by name, so that global,
  window and neighbourhood attention can be compared on the same task.
* :func:`explorer` — the chapter's widget: pick a query patch of a photo and a head.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from ._checks import check_floating, check_positive_int, check_rank, shape_str
from .core import AttentionModule, scaled_dot_product_attention

__all__ = ["GlobalAttention", "patchify"]



class GlobalAttention(AttentionModule):
    """Multi-head self-attention over all tokens (ViT, Dosovitskiy et al. 2021, Eq. 5-8).

    ``q, k, v = x W_qkv`` split into ``num_heads`` heads of ``dim // num_heads`` channels; each head
    computes ``softmax(q kᵀ · scale) v`` over all ``N`` tokens (Vaswani et al. 2017, Eq. 1); the heads
    are concatenated and projected by ``W_o``.

    Args:
        dim: token channels ``C``; must be divisible by ``num_heads``.
        num_heads: number of heads ``h``.
        qkv_bias: learn a bias in the q/k/v projection (ViT and Swin do).
        scale: multiplier of the scores; ``None`` means ``(dim // num_heads) ** -0.5``.

    Shapes:
        input ``(B, N, C)`` or a grid ``(B, H, W, C)`` (``N = H·W``, row-major); output of the same
        shape. Records the weights ``(B, h, N, N)``: row ``i`` of head ``j`` is how token ``i``
        spreads its attention over all ``N`` tokens (sums to 1).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, scale: float | None = None) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        check_positive_int("num_heads", num_heads)
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.dim, self.num_heads = dim, num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5 if scale is None else float(scale)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_floating("x", x)
        if x.ndim not in (3, 4):
            raise ValueError(f"x must be 3-d (B, N, C) or 4-d (B, H, W, C), got shape {shape_str(x)}")
        if x.shape[-1] != self.dim:
            raise ValueError(f"x must have C = {self.dim} channels (last dimension), got shape {shape_str(x)}")
        grid = x.shape[1:3] if x.ndim == 4 else None
        tokens = x.flatten(1, 2) if grid is not None else x                       # (B, N, C)
        q, k, v = rearrange(self.qkv(tokens), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        context, weights = scaled_dot_product_attention(q, k, v, scale=self.scale)  # (B, h, N, d), (B, h, N, N)
        self.remember(weights)
        out = self.proj(rearrange(context, "b h n d -> b n (h d)"))
        return out.unflatten(1, grid) if grid is not None else out


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into non-overlapping patches and flatten each one (ViT Eq. 1, before the projection E).

    Args:
        images: ``(B, C, H, W)``; ``H`` and ``W`` must be multiples of ``patch_size``.
        patch_size: side ``p`` of a patch.

    Returns:
        tokens ``(B, N, p·p·C)`` with ``N = (H/p)·(W/p)`` in row-major order; each token lists its
        patch's pixels row by row, the channels of a pixel together (``(p1 p2 c)`` order).
    """
    check_floating("images", images)
    check_rank("images", images, exactly=4, expected="(B, C, H, W)")
    check_positive_int("patch_size", patch_size)
    h, w = images.shape[-2:]
    if h % patch_size or w % patch_size:
        raise ValueError(f"H and W of images {shape_str(images)} must be multiples of patch_size={patch_size}")
    return rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_size, p2=patch_size)


class _Mlp(nn.Sequential):
    """The Transformer's two-layer MLP with a GELU (ViT Eq. 3)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class _Block(nn.Module):
    """A pre-norm Transformer block on a token grid: ``x + attn(LN(x))``, then ``x + MLP(LN(x))`` (ViT Eq. 2-3)."""

    def __init__(self, dim: int, attn: nn.Module, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), attn
        self.norm2, self.mlp = nn.LayerNorm(dim), _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C)
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))
