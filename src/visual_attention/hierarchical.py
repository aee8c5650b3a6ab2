"""Hierarchical attention: attention at several levels of abstraction.

Two ways of building a hierarchy of attention over an image:

* **A Swin Transformer** — Liu et al., "Swin Transformer: Hierarchical Vision Transformer using
  Shifted Windows", ICCV 2021 (Sec. 3.1-3.2, Fig. 3). Window attention
  (:mod:`visual_attention.local_attention`) runs on a fine grid of ``4 × 4``-pixel patches
  (:class:`~visual_attention.blocks.PatchEmbed` with Swin's LayerNorm); between stages,
  :class:`PatchMerging` concatenates each ``2 × 2`` group of tokens and projects ``4C → 2C``, so
  the grid halves and a fixed ``M × M`` window covers four times more of the image at every stage.
  Each :class:`SwinBlock` is the pre-norm block :class:`~visual_attention.blocks.PreNormBlock`
  around (shifted) window attention, ``x + (S)W-MSA(LN(x))`` then ``x + MLP(LN(x))`` (Eq. 3),
  consecutive blocks alternating regular (W-MSA) and shifted (SW-MSA) windows.
  :class:`SwinTransformer` stacks the stages; its Swin-T configuration (:func:`swin_tiny`) has
  28.29 M parameters (Table 1 of the paper: 28 M).
* **Hierarchical attention pooling** — Yang et al., "Hierarchical Attention Networks for Document
  Classification", NAACL 2016 (Eq. 5-10), with patches for words and regions for sentences.
  :func:`image_regions` groups a feature map into regions; inside each region an additive
  attention pooling (:class:`~visual_attention.blocks.AttentionPooling`, Eq. 5-7) weighs its
  patches and gives a region vector; a second one (Eq. 8-10) weighs the regions and gives the
  image vector. :class:`HierarchicalAttentionPooling` records both levels' weights.

The chapter's experiment (hierarchical against flat attention pooling), its receptive-field
measurement and its widget are in :mod:`visual_attention.labs.hierarchical`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from ._checks import (
    check_bool,
    check_int_sequence,
    check_positive_int,
    check_size2,
    check_tensor,
    shape_str,
)
from .blocks import AttentionPooling, PatchEmbed, PreNormBlock
from .local_attention import ShiftedWindowAttention

__all__ = [
    "PatchMerging",
    "SwinBlock",
    "SwinStage",
    "SwinTransformer",
    "swin_tiny",
    "image_regions",
    "HierarchicalAttentionPooling",
]


def _check_even_grid(name: str, x: torch.Tensor, dim: int) -> None:
    """Check a token grid ``(B, H, W, dim)`` with even ``H`` and ``W``."""
    _, h, w, _ = check_tensor(name, x, "(B, H, W, C)")
    if x.shape[-1] != dim or h % 2 or w % 2:
        raise ValueError(f"{name} must be (B, H, W, {dim}) with even H and W, got {shape_str(x)}")


class PatchMerging(nn.Module):
    """Swin's patch merging (Sec. 3.1): each ``2 × 2`` group of tokens → one token with ``2C``.

    The four tokens ``x[0::2, 0::2]``, ``x[1::2, 0::2]``, ``x[0::2, 1::2]``, ``x[1::2, 1::2]`` are
    concatenated (in that order, as in the reference code) to ``4C`` channels, layer-normalised and
    projected to ``2C`` by a linear map without bias.

    Shapes: ``(B, H, W, C)`` → ``(B, H/2, W/2, 2C)``; ``H`` and ``W`` must be even.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)  # W_r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_even_grid("x", x, self.dim)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))  # W_r LN([x_2i,2j; …]): (B, H/2, W/2, 2C)


class SwinBlock(PreNormBlock):
    """One Swin Transformer block (Swin Eq. 3): ``x + (S)W-MSA(LN(x))``, then ``x + MLP(LN(x))``.

    A :class:`~visual_attention.blocks.PreNormBlock` around a
    :class:`~visual_attention.local_attention.ShiftedWindowAttention`. ``shift_size=0`` gives a
    W-MSA block, ``shift_size=window_size // 2`` an SW-MSA block; a :class:`SwinStage` alternates
    them. As in the reference code, when the grid is no larger than the window, the window shrinks
    to the grid and the shift is dropped (one window sees everything).

    Args:
        dim: channels ``C``.
        num_heads: heads of the window attention.
        input_resolution: ``(H, W)`` of the token grid.
        window_size: ``M``.
        shift_size: ``s``.
        mlp_ratio: hidden width of the MLP as a multiple of ``dim``.

    Shapes: ``(B, H, W, C)`` → ``(B, H, W, C)``; the weights ``(B·nW, h, M², M²)`` are recorded by
    ``attn.attn`` (a :class:`~visual_attention.local_attention.WindowAttention`).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        input_resolution: tuple[int, int],
        window_size: int = 7,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
    ) -> None:
        input_resolution = check_size2("input_resolution", input_resolution)
        if min(input_resolution) <= check_positive_int("window_size", window_size):
            window_size, shift_size = min(input_resolution), 0
        attn = ShiftedWindowAttention(dim, window_size, num_heads, shift_size=shift_size)
        super().__init__(dim, attn, mlp_ratio=mlp_ratio)


class SwinStage(nn.Module):
    """A stage of Swin: ``depth`` blocks alternating W-MSA and SW-MSA, then :class:`PatchMerging`.

    Shapes: ``(B, H, W, C)`` → ``(B, H/2, W/2, 2C)`` with ``downsample``, else ``(B, H, W, C)``.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        input_resolution: tuple[int, int],
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        downsample: bool = True,
    ) -> None:
        super().__init__()
        check_positive_int("depth", depth)
        check_positive_int("window_size", window_size)
        check_size2("input_resolution", input_resolution)
        check_bool("downsample", downsample)
        shifts = [0 if i % 2 == 0 else window_size // 2 for i in range(depth)]  # W-MSA, SW-MSA, …
        self.blocks = nn.Sequential(
            *[
                SwinBlock(dim, num_heads, input_resolution, window_size, s, mlp_ratio)
                for s in shifts
            ]
        )
        self.downsample = PatchMerging(dim) if downsample else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.blocks(x))


class SwinTransformer(nn.Module):
    """The Swin Transformer classifier (Liu et al. 2021, Fig. 3), without dropout or drop-path.

    :class:`~visual_attention.blocks.PatchEmbed` (``patch_size``, with a LayerNorm) → stages of
    ``depths[i]`` blocks with ``num_heads[i]`` heads on ``dim · 2^i`` channels, a
    :class:`PatchMerging` between stages → LayerNorm → mean over tokens → linear head. Swin-T is
    the default: ``dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7`` (28.29 M
    parameters at 224 × 224 with 1,000 classes).

    Shapes: ``(B, in_channels, img_size, img_size)`` → logits ``(B, num_classes)``. ``img_size``
    must be a multiple of ``patch_size · 2^(stages-1)`` and each stage's grid a multiple of its
    window (or smaller than it).
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 4,
        in_channels: int = 3,
        num_classes: int = 1000,
        dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        grids = _check_swin(img_size, patch_size, num_classes, dim, depths, num_heads, window_size)
        self.img_size, self.in_channels = img_size, in_channels
        self.patch_embed = PatchEmbed(patch_size, in_channels, dim, stem_channels=(), norm=True)
        last = len(depths) - 1
        self.stages = nn.Sequential(
            *[
                SwinStage(dim * 2**i, depth, heads, (grid, grid), window_size, mlp_ratio, i < last)
                for i, (depth, heads, grid) in enumerate(zip(depths, num_heads, grids))
            ]
        )
        self.num_features = dim * 2**last
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:  # as the reference code: truncated normal weights
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` → the last stage's token grid ``(B, H', W', C')``, normalised."""
        size = self.img_size
        check_tensor("images", images, "(B, C, H, W)", C=self.in_channels, H=size, W=size)
        return self.norm(self.stages(self.patch_embed(images)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(images).mean(dim=(1, 2)))


def _check_swin(img_size, patch_size, num_classes, dim, depths, num_heads, window_size) -> list:
    """Validate the arguments of :class:`SwinTransformer`; return each stage's grid side."""
    for name, value in (
        ("img_size", img_size),
        ("patch_size", patch_size),
        ("dim", dim),
        ("window_size", window_size),
        ("num_classes", num_classes),
    ):
        check_positive_int(name, value)
    check_int_sequence("depths", depths)
    check_int_sequence("num_heads", num_heads)
    if len(depths) != len(num_heads) or not depths:
        raise ValueError(
            f"depths {tuple(depths)} and num_heads {tuple(num_heads)} must be non-empty "
            "and equally long"
        )
    for name, values in (("depths", depths), ("num_heads", num_heads)):
        for value in values:
            check_positive_int(f"each of {name}", value)
    reduction = patch_size * 2 ** (len(depths) - 1)
    if img_size % reduction:
        raise ValueError(
            f"img_size={img_size} must be a multiple of patch_size·2^(stages-1) = {reduction}"
        )
    grids = [img_size // patch_size // 2**i for i in range(len(depths))]
    for i, grid in enumerate(grids):
        if grid > window_size and grid % window_size:
            raise ValueError(
                f"stage {i} has a {grid}×{grid} grid, not a multiple of window_size={window_size}"
            )
    return grids


def swin_tiny(num_classes: int = 1000) -> SwinTransformer:
    """Swin-T (Liu et al. 2021, Table 1): ``C = 96``, depths ``(2, 2, 6, 2)``, heads
    ``(3, 6, 12, 24)``, ``M = 7``."""
    return SwinTransformer(num_classes=num_classes)


def image_regions(x: torch.Tensor, region_size: int) -> torch.Tensor:
    """Group a feature map's positions into square regions: ``(B, C, H, W)`` → ``(B, R, P, C)``.

    ``R = (H/r)·(W/r)`` regions in row-major order, each with ``P = r²`` positions in row-major
    order (``r = region_size``, which must divide ``H`` and ``W``).
    """
    _, _, h, w = check_tensor("x", x, "(B, C, H, W)")
    r = check_positive_int("region_size", region_size)
    if h % r or w % r:
        raise ValueError(f"H and W of x {shape_str(x)} must be multiples of region_size={r}")
    return rearrange(x, "b c (nh r1) (nw r2) -> b (nh nw) (r1 r2) c", r1=r, r2=r)


class HierarchicalAttentionPooling(nn.Module):
    """Two-level attention pooling of a feature map: positions within regions, then regions (HAN).

    The ``H × W`` positions are grouped into ``r × r`` regions (:func:`image_regions`). Level 1,
    ``patch_pool``: an :class:`~visual_attention.blocks.AttentionPooling` over the ``P = r²``
    positions of each region gives a region vector (HAN's sentence vector, Eq. 5-7). Level 2,
    ``region_pool``: another over the ``R`` region vectors gives the image vector (HAN's document
    vector, Eq. 8-10). HAN encodes words and sentences with bidirectional GRUs before each pooling;
    here the CNN that produces the feature map plays the first encoder, and an optional
    linear + GELU ``region_encoder`` the second.

    Args:
        dim: channels ``C``.
        region_size: ``r``.
        hidden_dim: size of each pooling's ``tanh`` layer (default ``dim``).
        encode_regions: put a linear + GELU layer between the levels.

    Shapes: ``(B, C, H, W)`` → ``(B, C)``. Records ``patch_pool``: ``(B, R, P)`` (each region's
    weights sum to 1) and ``region_pool``: ``(B, R)``.
    """

    def __init__(
        self,
        dim: int,
        region_size: int,
        hidden_dim: int | None = None,
        encode_regions: bool = False,
    ) -> None:
        super().__init__()
        self.region_size = check_positive_int("region_size", region_size)
        check_bool("encode_regions", encode_regions)
        self.patch_pool = AttentionPooling(dim, hidden_dim)
        encoder = nn.Sequential(nn.Linear(dim, dim), nn.GELU())
        self.region_encoder = encoder if encode_regions else nn.Identity()
        self.region_pool = AttentionPooling(dim, hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        regions = self.patch_pool(image_regions(x, self.region_size))  # (B, R, C): level 1
        return self.region_pool(self.region_encoder(regions))  # (B, C): level 2
