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

from collections.abc import Callable, Sequence

import torch
from einops import rearrange
from torch import nn

from ._checks import check_floating, check_rank, shape_str
from .core import AttentionModule, scaled_dot_product_attention

__all__ = ["GlobalAttention", "patchify", "TokenClassifier", "explorer"]


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


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
        _check_positive_int("dim", dim)
        _check_positive_int("num_heads", num_heads)
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
    _check_positive_int("patch_size", patch_size)
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


class TokenClassifier(nn.Module):
    """A tiny ViT-like image classifier whose attention layer is pluggable.

    Token embedding plus a learned position embedding → ``depth`` pre-norm Transformer blocks over the ``(H/p) × (W/p)`` token grid → mean of
    the tokens → a linear head. ``attn_layer(dim)`` builds each block's attention; it receives and
    returns a grid ``(B, H, W, C)``; it is called as ``attn_layer(dim, i)`` for block ``i``, so that a
    window attention can alternate plain and shifted windows (e.g. ``lambda d, i: GlobalAttention(d, 4)``).

    Args:
        img_size, in_channels, num_classes: input side, channels and number of classes.
        patch_size: side of a patch (the image side must be a multiple of it).
        dim: token channels.
        depth: number of blocks.
        attn_layer: ``(dim, block index) → module`` building the attention of each block (default: global, 4 heads).
        mlp_ratio: hidden width of the MLP as a multiple of ``dim``.
        stem: ``"patch"`` embeds each ``patch_size × patch_size`` patch linearly (ViT Eq. 1);
            ``"conv"`` (default) uses ``3 × 3`` convolutions with batch-norm and ReLU down to the same grid
            (one stride-2 convolution per halving, ``dim / 2`` channels before the last, then one
            stride-1 convolution; the convolutional stem of Xiao et al., NeurIPS 2021, a light form of
            ViT's "hybrid" input, Sec. 3.1), which trains far faster on small data.

    Shapes:
        ``(B, in_channels, img_size, img_size)`` → logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        img_size: int = 40,
        in_channels: int = 1,
        num_classes: int = 10,
        patch_size: int = 4,
        dim: int = 32,
        depth: int = 2,
        attn_layer: Callable[[int, int], nn.Module] | None = None,
        mlp_ratio: float = 2.0,
        stem: str = "conv",
    ) -> None:
        super().__init__()
        for name, value in (("img_size", img_size), ("patch_size", patch_size), ("dim", dim), ("depth", depth)):
            _check_positive_int(name, value)
        if img_size % patch_size:
            raise ValueError(f"img_size ({img_size}) must be a multiple of patch_size ({patch_size})")
        attn_layer = attn_layer or (lambda d, i: GlobalAttention(d, num_heads=4))
        self.img_size, self.grid = img_size, img_size // patch_size
        if stem == "patch":
            self.embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        elif stem == "conv":
            if patch_size & (patch_size - 1):
                raise ValueError(f"a conv stem needs a power-of-two patch_size, got {patch_size}")
            layers, c, halvings = [], in_channels, patch_size.bit_length() - 1
            for i in range(halvings):  # per factor of 2 a stride-2 conv, the last one to dim channels
                out = dim if i == halvings - 1 else max(dim // 2, 1)
                layers += [nn.Conv2d(c, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
                c = out
            if layers:  # then one stride-1 conv at the token grid's resolution
                layers += [nn.Conv2d(dim, dim, 3, padding=1), nn.BatchNorm2d(dim), nn.ReLU()]
            self.embed = nn.Sequential(*layers) if layers else nn.Conv2d(in_channels, dim, 1)
        else:
            raise ValueError(f"stem must be 'patch' or 'conv', got {stem!r}")
        self.in_channels = in_channels
        self.pos = nn.Parameter(torch.zeros(1, self.grid, self.grid, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(*[_Block(dim, attn_layer(dim, i), mlp_ratio) for i in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_floating("images", images)
        check_rank("images", images, exactly=4, expected="(B, C, H, W)")
        if images.shape[1] != self.in_channels or images.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(
                f"images must be (B, {self.in_channels}, {self.img_size}, {self.img_size}), "
                f"got {shape_str(images)}"
            )
        x = rearrange(self.embed(images), "b c h w -> b h w c") + self.pos   # (B, H', W', dim)
        x = self.norm(self.blocks(x))
        return self.head(x.mean(dim=(1, 2)))


def explorer(image: torch.Tensor, features: torch.Tensor, feature_names: Sequence[str],
             scale: float = 5.0, display_size: tuple[int, int] | None = None, initial: dict | None = None):
    """The chapter's widget: a query patch of a photo attends to *all* patches, head by head.

    ``features`` ``(6, h, w)`` (from :func:`visual_attention.data.patch_features` with ``unit=True``)
    are the tokens; a :class:`GlobalAttention` with identity projections and ``num_heads=2`` splits
    them into a *colour* head (red, green, blue) and a *texture* head (contrast, edges), and one with
    ``num_heads=1`` uses all six. The reader picks the head, the query patch (anywhere) and a
    temperature; the browser computes the query's weights over the whole photo and the head's output
    (its context vector, drawn in the slots of the features it is made of) —
    :class:`visual_attention.widgets.AttentionExplorer`, with each head's queries, keys and values
    zero-padded to the six features (zeros change no dot product).

    Args:
        image: ``(3, H, W)`` photo in ``[0, 1]``.
        features: ``(6, h, w)`` unit patch features.
        feature_names: their 6 names.
        scale: logits are ``scale · ⟨q, k⟩ / T``.
        display_size: drawn ``(height, width)`` in CSS pixels.
        initial: optional first ``{"head": name, "row": r, "column": c}``.
    """
    from .widgets import attention_explorer

    check_floating("features", features)
    check_rank("features", features, exactly=3, expected="(6, h, w)")
    c, h, w = features.shape
    if c != 6 or len(feature_names) != 6:
        raise ValueError(f"features must have 6 channels with 6 names, got {shape_str(features)}")
    tokens = rearrange(features, "c h w -> (h w) c")
    heads = {"colour head": slice(0, 3), "texture head": slice(3, 6), "one head, all 6": slice(0, 6)}
    per_head = torch.zeros(len(heads), h * w, c)
    for i, part in enumerate(heads.values()):
        per_head[i, :, part] = tokens[:, part]        # q = k = v = the head's features, in their slots
    first = dict(initial or {})
    return attention_explorer(
        per_head, grid=(h, w), image=image, scale=scale, temperature=1.0, temperature_range=(0.1, 10.0),
        query=(first.get("row", 0), first.get("column", 0)), head=list(heads).index(first.get("head", "colour head")),
        controls=("head", "temperature"), head_names=list(heads), value_names=list(feature_names),
        context_title="head output (context), in its features' slots", display_size=display_size,
        label="global-attention",
    )
