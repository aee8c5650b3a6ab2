"""Global attention: every token of an image attends to every other token.

This is the multi-head self-attention (MSA) of the Vision Transformer: Dosovitskiy et al., "An
Image is Worth 16x16 Words: Transformers for Image Recognition at Scale", ICLR 2021, Eq. (1)-(4)
and Appendix A (Eq. 5-8), itself the multi-head attention of Vaswani et al., "Attention Is All You
Need", NeurIPS 2017, Sec. 3.2.2. An image is cut into patches, each patch becomes a token (Eq. 1),
and in every layer each of the ``N`` tokens scores all ``N`` tokens:

    [q, k, v] = z U_qkv,   A = softmax(q kᵀ / √D_h),   SA(z) = A v          (ViT Eq. 5-7)
    MSA(z) = [SA_1(z); …; SA_h(z)] U_msa                                    (ViT Eq. 8)

The ``N × N`` weight matrix ``A`` is what makes attention *global* — a patch in one corner can take
information from the opposite corner in one step — and also what makes it costly: time and memory
grow like ``N²``, so doubling the side of the image multiplies the cost by 16. The local and
hierarchical chapters (:mod:`visual_attention.local_attention`,
:mod:`visual_attention.hierarchical`) trade that reach for a cost linear in ``N``.

* :class:`GlobalAttention` — :class:`visual_attention.blocks.MultiHeadAttention` over a token grid
  ``(B, H, W, C)`` (or a token sequence ``(B, N, C)``); records its weights ``(B, h, N, N)``.
* :func:`patchify` — ViT's Eq. (1) without the projection: an image ``(B, C, H, W)`` → tokens
  ``(B, N, p·p·C)``; :class:`visual_attention.blocks.PatchEmbed` is this followed by ``E``.

The global attention chapter itself is about the other global attention, a decoder's
cross-attention over every position of an encoder's feature map (Luong et al. 2015; Xu et al.
2015): :class:`visual_attention.blocks.CrossAttention` and
:class:`visual_attention.blocks.DecoderBlock`, trained in
:mod:`visual_attention.labs.global_attention`.
"""

from __future__ import annotations

import torch
from einops import rearrange

from ._checks import check_floating, check_positive_int, check_tensor, shape_str
from .blocks import MultiHeadAttention

__all__ = ["GlobalAttention", "patchify"]


class GlobalAttention(MultiHeadAttention):
    """Multi-head self-attention over all tokens of a grid (ViT, Dosovitskiy et al. 2021, Eq. 5-8).

    :class:`~visual_attention.blocks.MultiHeadAttention` (fused ``qkv`` projection, ``num_heads``
    heads of ``dim // num_heads`` channels, ``softmax(q kᵀ · scale) v`` over all ``N`` tokens,
    output projection ``proj``) that also takes the tokens as an image-shaped grid, the layout of
    the local and hierarchical chapters' attentions.

    Args:
        dim: token channels ``C``; must be divisible by ``num_heads``.
        num_heads: number of heads ``h``.
        qkv_bias: learn a bias in the q/k/v projection (ViT and Swin do).
        scale: multiplier of the scores; ``None`` means ``(dim // num_heads) ** -0.5``.

    Shapes:
        input a grid ``(B, H, W, C)`` (``N = H·W`` tokens, row-major) or a sequence ``(B, N, C)``;
        output of the same shape. Records the weights ``(B, h, N, N)``: row ``i`` of head ``j`` is
        how token ``i`` spreads its attention over all ``N`` tokens (sums to 1).
    """

    def __init__(
        self, dim: int, num_heads: int = 8, qkv_bias: bool = True, scale: float | None = None
    ) -> None:
        super().__init__(dim, num_heads, qkv_bias=qkv_bias, scale=scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = self._grid(x)  # (H, W), or None for a sequence
        tokens = x.flatten(1, 2) if grid else x  # (B, N, C), N = H·W
        out = super().forward(tokens)  # MSA: every token attends to all N tokens
        return out.unflatten(1, grid) if grid else out

    def _grid(self, x: torch.Tensor) -> tuple[int, int] | None:
        """Check ``x`` (a grid ``(B, H, W, C)`` or a sequence ``(B, N, C)``); ``(H, W)`` or
        ``None``."""
        check_floating("x", x)
        if x.ndim not in (3, 4):
            raise ValueError(
                f"x must be 3-d (B, N, C) or 4-d (B, H, W, C), got shape {shape_str(x)}"
            )
        layout = "(B, H, W, C)" if x.ndim == 4 else "(B, N, C)"
        shape = check_tensor("x", x, layout, C=self.dim)
        return shape[1:3] if x.ndim == 4 else None


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into non-overlapping patches and flatten each one (ViT Eq. 1, before the
    projection ``E``).

    Args:
        images: ``(B, C, H, W)``; ``H`` and ``W`` must be multiples of ``patch_size``.
        patch_size: side ``p`` of a patch.

    Returns:
        tokens ``(B, N, p·p·C)`` with ``N = (H/p)·(W/p)`` in row-major order; each token lists its
        patch's pixels row by row, the channels of a pixel together (``(p1 p2 c)`` order).
    """
    _check_patches(images, patch_size)
    return rearrange(
        images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_size, p2=patch_size
    )


def _check_patches(images: torch.Tensor, patch_size: int) -> None:
    _, _, h, w = check_tensor("images", images, "(B, C, H, W)")
    check_positive_int("patch_size", patch_size)
    if h % patch_size or w % patch_size:
        raise ValueError(
            f"H and W of images {shape_str(images)} must be multiples of patch_size={patch_size}"
        )
