"""Hierarchical attention: attention at several levels of abstraction.

Two ways of building a hierarchy of attention over an image:

* **A Swin Transformer** — Liu et al., "Swin Transformer: Hierarchical Vision Transformer using
  Shifted Windows", ICCV 2021 (Sec. 3.1-3.2, Fig. 3). Window attention
  (:mod:`visual_attention.local_attention`) runs on a fine grid of ``4 × 4``-pixel patches; between
  stages, :class:`PatchMerging` concatenates each ``2 × 2`` group of tokens and projects ``4C → 2C``,
  so the grid halves and a fixed ``M × M`` window covers four times more of the image at every stage.
  Each :class:`SwinBlock` is ``x + (S)W-MSA(LN(x))`` then ``x + MLP(LN(x))`` (Eq. 3), consecutive blocks
  alternating regular (W-MSA) and shifted (SW-MSA) windows. :class:`SwinTransformer` stacks the
  stages; its Swin-T configuration has 28.29 M parameters (Table 1 of the paper: 28 M).
* **Hierarchical attention pooling** — Yang et al., "Hierarchical Attention Networks for Document
  Classification", NAACL 2016 (Eq. 5-10), with patches for words and regions for sentences. Inside
  each region an attention pooling (:class:`AttentionPooling`, Eq. 5-7) weighs its patches and gives a
  region vector; a second attention pooling (Eq. 8-10) weighs the regions and gives the image vector.
  :class:`HierarchicalAttentionPooling` records both levels' weights.

:class:`PoolingClassifier` puts either pooling (hierarchical or flat) on a small CNN, for the chapter's
experiment, and :func:`explorer` builds the chapter's widget.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from ._checks import check_floating, check_positive_int, check_rank, shape_str
from .core import AttentionModule, masked_softmax
from .local_attention import ShiftedWindowAttention

__all__ = [
    "PatchEmbed",
    "PatchMerging",
    "SwinBlock",
    "SwinStage",
    "SwinTransformer",
    "swin_tiny",
    "AttentionPooling",
    "image_regions",
    "HierarchicalAttentionPooling",
]


class PatchEmbed(nn.Module):
    """Split an image into ``p × p`` patches and embed each linearly (Swin Sec. 3.1; a strided convolution).

    Shapes: ``(B, C_in, H, W)`` → ``(B, H/p, W/p, C)``, followed by a LayerNorm as in Swin.
    """

    def __init__(self, patch_size: int = 4, in_channels: int = 3, embed_dim: int = 96) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(rearrange(self.proj(x), "b c h w -> b h w c"))


class PatchMerging(nn.Module):
    """Swin's patch merging (Sec. 3.1): each ``2 × 2`` group of tokens → one token with ``2C`` channels.

    The four tokens ``x[0::2, 0::2]``, ``x[1::2, 0::2]``, ``x[0::2, 1::2]``, ``x[1::2, 1::2]`` are
    concatenated (in that order, as in the reference code) to ``4C`` channels, layer-normalised and
    projected to ``2C`` by a linear map without bias.

    Shapes: ``(B, H, W, C)`` → ``(B, H/2, W/2, 2C)``; ``H`` and ``W`` must be even.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_floating("x", x)
        check_rank("x", x, exactly=4, expected="(B, H, W, C)")
        if x.shape[-1] != self.dim or x.shape[1] % 2 or x.shape[2] % 2:
            raise ValueError(f"x must be (B, H, W, {self.dim}) with even H and W, got {shape_str(x)}")
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class SwinBlock(nn.Module):
    """One Swin Transformer block (Swin Eq. 3): ``x + (S)W-MSA(LN(x))``, then ``x + MLP(LN(x))``.

    ``shift_size=0`` gives a W-MSA block, ``shift_size=window_size // 2`` an SW-MSA block; a
    :class:`SwinStage` alternates them. As in the reference code, when the grid is no larger than the
    window, the window shrinks to the grid and the shift is dropped (one window sees everything).

    Args:
        dim, num_heads: channels and heads.
        input_resolution: ``(H, W)`` of the token grid.
        window_size: ``M``; shift_size: ``s``; mlp_ratio: hidden width of the MLP as a multiple of ``dim``.

    Shapes: ``(B, H, W, C)`` → ``(B, H, W, C)``; the weights ``(B·nW, h, M², M²)`` are recorded by
    ``attn.attn`` (a :class:`~visual_attention.local_attention.WindowAttention`).
    """

    def __init__(self, dim: int, num_heads: int, input_resolution: tuple[int, int], window_size: int = 7,
                 shift_size: int = 0, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if min(input_resolution) <= window_size:
            window_size, shift_size = min(input_resolution), 0
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ShiftedWindowAttention(dim, window_size, num_heads, shift_size=shift_size)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SwinStage(nn.Module):
    """A stage of Swin: ``depth`` blocks alternating W-MSA and SW-MSA, then an optional :class:`PatchMerging`.

    Shapes: ``(B, H, W, C)`` → ``(B, H/2, W/2, 2C)`` with ``downsample``, else ``(B, H, W, C)``.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, input_resolution: tuple[int, int],
                 window_size: int = 7, mlp_ratio: float = 4.0, downsample: bool = True) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[
            SwinBlock(dim, num_heads, input_resolution, window_size,
                      shift_size=0 if i % 2 == 0 else window_size // 2, mlp_ratio=mlp_ratio)
            for i in range(depth)
        ])
        self.downsample = PatchMerging(dim) if downsample else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.blocks(x))


class SwinTransformer(nn.Module):
    """The Swin Transformer classifier (Liu et al. 2021, Fig. 3), without dropout or stochastic depth.

    :class:`PatchEmbed` (``patch_size``) → stages of ``depths[i]`` blocks with ``num_heads[i]`` heads on
    ``embed_dim · 2^i`` channels, a :class:`PatchMerging` between stages → LayerNorm → mean over tokens
    → linear head. Swin-T is the default: ``embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
    window_size=7`` (28.29 M parameters at 224 × 224 with 1,000 classes).

    Shapes: ``(B, in_channels, img_size, img_size)`` → logits ``(B, num_classes)``. ``img_size`` must be
    a multiple of ``patch_size · 2^(stages-1)`` and each stage's grid a multiple of its window (or
    smaller than it).
    """

    def __init__(self, img_size: int = 224, patch_size: int = 4, in_channels: int = 3, num_classes: int = 1000,
                 embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (3, 6, 12, 24),
                 window_size: int = 7, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        for name, value in (("img_size", img_size), ("patch_size", patch_size), ("embed_dim", embed_dim),
                            ("window_size", window_size), ("num_classes", num_classes)):
            check_positive_int(name, value)
        if len(depths) != len(num_heads) or not depths:
            raise ValueError(f"depths {tuple(depths)} and num_heads {tuple(num_heads)} must be non-empty and equally long")
        stages = len(depths)
        if img_size % (patch_size * 2 ** (stages - 1)):
            raise ValueError(f"img_size={img_size} must be a multiple of patch_size·2^(stages-1) = {patch_size * 2 ** (stages - 1)}")
        self.img_size, self.in_channels = img_size, in_channels
        self.patch_embed = PatchEmbed(patch_size, in_channels, embed_dim)
        grid = img_size // patch_size
        layers = []
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            res = grid // 2**i
            if res > window_size and res % window_size:
                raise ValueError(f"stage {i} has a {res}×{res} grid, not a multiple of window_size={window_size}")
            layers.append(SwinStage(embed_dim * 2**i, depth, heads, (res, res), window_size, mlp_ratio,
                                    downsample=i < stages - 1))
        self.stages = nn.Sequential(*layers)
        self.num_features = embed_dim * 2 ** (stages - 1)
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:  # as the reference code: truncated normal linear weights
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` → the last stage's token grid ``(B, H', W', C')``, normalised."""
        check_floating("images", images)
        check_rank("images", images, exactly=4, expected="(B, C, H, W)")
        if images.shape[1:] != (self.in_channels, self.img_size, self.img_size):
            raise ValueError(f"images must be (B, {self.in_channels}, {self.img_size}, {self.img_size}), got {shape_str(images)}")
        return self.norm(self.stages(self.patch_embed(images)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(images).mean(dim=(1, 2)))


def swin_tiny(num_classes: int = 1000) -> SwinTransformer:
    """Swin-T (Liu et al. 2021, Table 1): ``C = 96``, depths ``(2, 2, 6, 2)``, heads ``(3, 6, 12, 24)``, ``M = 7``."""
    return SwinTransformer(num_classes=num_classes)


class AttentionPooling(AttentionModule):
    """Attention pooling with a learned context vector (HAN, Yang et al. 2016, Eq. 5-7 and 8-10).

    ``u_t = tanh(W h_t + b)``, ``α_t = exp(u_tᵀ u_w) / Σ_t' exp(u_t'ᵀ u_w)``, ``s = Σ_t α_t h_t``: the
    context vector ``u_w`` is a learned query ("which parts are informative?").

    Args:
        dim: channels ``C`` of the vectors ``h_t``.
        attn_dim: size of the hidden representation ``u_t`` (default ``dim``).

    Shapes: ``(*B, T, C)`` → pooled ``(*B, C)``; records the weights ``(*B, T)`` (sum to 1 over ``T``).
    """

    def __init__(self, dim: int, attn_dim: int | None = None) -> None:
        super().__init__()
        attn_dim = check_positive_int("attn_dim", attn_dim if attn_dim is not None else dim)
        self.dim = check_positive_int("dim", dim)
        self.proj = nn.Linear(dim, attn_dim)
        self.context = nn.Parameter(torch.randn(attn_dim) * attn_dim**-0.5)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        check_floating("h", h)
        check_rank("h", h, at_least=2, expected="(*B, T, C)")
        if h.shape[-1] != self.dim:
            raise ValueError(f"h must have C = {self.dim} channels (last dimension), got shape {shape_str(h)}")
        scores = torch.tanh(self.proj(h)) @ self.context          # (*B, T)   Eq. 5-6
        weights = self.remember(masked_softmax(scores, dim=-1))   # Eq. 6
        return (weights.unsqueeze(-1) * h).sum(-2)                # Eq. 7


def image_regions(x: torch.Tensor, region_size: int) -> torch.Tensor:
    """Group a feature map's positions into square regions: ``(B, C, H, W)`` → ``(B, R, P, C)``.

    ``R = (H/r)·(W/r)`` regions in row-major order, each with ``P = r²`` positions in row-major order
    (``r = region_size``, which must divide ``H`` and ``W``).
    """
    check_floating("x", x)
    check_rank("x", x, exactly=4, expected="(B, C, H, W)")
    r = check_positive_int("region_size", region_size)
    if x.shape[-2] % r or x.shape[-1] % r:
        raise ValueError(f"H and W of x {shape_str(x)} must be multiples of region_size={r}")
    return rearrange(x, "b c (nh r1) (nw r2) -> b (nh nw) (r1 r2) c", r1=r, r2=r)


class HierarchicalAttentionPooling(nn.Module):
    """Two-level attention pooling of a feature map: positions within regions, then regions (HAN Eq. 5-10).

    The ``H × W`` positions are grouped into ``r × r`` regions (:func:`image_regions`). Level 1,
    ``patch_pool``: an :class:`AttentionPooling` over the ``P = r²`` positions of each region gives a
    region vector (HAN's sentence vector, Eq. 7). Level 2, ``region_pool``: an :class:`AttentionPooling`
    over the ``R`` region vectors gives the image vector (HAN's document vector, Eq. 10). HAN encodes
    words and sentences with bidirectional GRUs before each pooling; here the CNN that produces the
    feature map plays the first encoder, and an optional linear + GELU ``region_encoder`` the second.

    Args:
        dim: channels ``C``; region_size: ``r``; attn_dim: as :class:`AttentionPooling`.
        encode_regions: put a linear + GELU layer between the levels.

    Shapes: ``(B, C, H, W)`` → ``(B, C)``. Records ``patch_pool``: ``(B, R, P)`` (each region's weights
    sum to 1) and ``region_pool``: ``(B, R)``.
    """

    def __init__(self, dim: int, region_size: int, attn_dim: int | None = None, encode_regions: bool = False) -> None:
        super().__init__()
        self.region_size = check_positive_int("region_size", region_size)
        self.patch_pool = AttentionPooling(dim, attn_dim)
        self.region_encoder = nn.Sequential(nn.Linear(dim, dim), nn.GELU()) if encode_regions else nn.Identity()
        self.region_pool = AttentionPooling(dim, attn_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        regions = self.patch_pool(image_regions(x, self.region_size))   # (B, R, C): level 1
        return self.region_pool(self.region_encoder(regions))           # (B, C):    level 2
