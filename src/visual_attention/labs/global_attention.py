"""The lab of the global attention chapter: a token classifier with a pluggable attention layer
(also used by the local attention chapter) and the head explorer."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from einops import rearrange
from einops.layers.torch import Rearrange
from torch import nn

from .._checks import check_choice, check_positive_int, check_tensor
from ..blocks import PatchEmbed, PreNormBlock, conv_bn_act
from ..global_attention import GlobalAttention
from ..views.widgets import attention_explorer


class TokenClassifier(nn.Module):
    """A tiny ViT-like image classifier whose attention layer is pluggable.

    Token embedding plus a learned position embedding → ``depth`` pre-norm Transformer blocks
    (:class:`~visual_attention.blocks.PreNormBlock`) over the ``(H/p) × (W/p)`` token grid → mean
    of the tokens → a linear head. ``attn_layer(dim, i)`` builds the attention of block ``i``; it
    receives and returns a grid ``(B, H, W, C)``, and the block index lets a window attention
    alternate plain and shifted windows (e.g. ``lambda d, i: GlobalAttention(d, 4)``).

    Args:
        img_size, in_channels, num_classes: input side, channels and number of classes.
        patch_size: side of a patch (the image side must be a multiple of it).
        dim: token channels.
        depth: number of blocks.
        attn_layer: ``(dim, block index) → module`` building the attention of each block (default:
            global, 4 heads).
        mlp_ratio: hidden width of the MLP as a multiple of ``dim``.
        stem: ``"patch"`` embeds each ``patch_size × patch_size`` patch linearly (ViT Eq. 1,
            :class:`~visual_attention.blocks.PatchEmbed`); ``"conv"`` (default) uses ``3 × 3``
            :func:`~visual_attention.blocks.conv_bn_act` layers down to the same grid (one stride-2
            convolution per halving, ``dim / 2`` channels before the last, then one stride-1
            convolution; the convolutional stem of Xiao et al., NeurIPS 2021, a light form of ViT's
            "hybrid" input, Sec. 3.1), which trains far faster on small data.

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
        for name, value in (
            ("img_size", img_size),
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("patch_size", patch_size),
            ("dim", dim),
            ("depth", depth),
        ):
            check_positive_int(name, value)
        check_choice("stem", stem, ("patch", "conv"))
        if img_size % patch_size:
            raise ValueError(
                f"img_size ({img_size}) must be a multiple of patch_size ({patch_size})"
            )
        attn_layer = attn_layer or (lambda d, i: GlobalAttention(d, num_heads=4))
        self.img_size, self.in_channels, self.grid = img_size, in_channels, img_size // patch_size
        if stem == "conv" and patch_size > 1:
            self.embed = _conv_stem(in_channels, dim, patch_size)
        else:  # a patch embedding; with patch_size 1 the conv stem is this 1 × 1 projection too
            self.embed = PatchEmbed(patch_size, in_channels, dim, stem_channels=())
        self.pos = nn.Parameter(torch.zeros(1, self.grid, self.grid, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(
            *[PreNormBlock(dim, attn_layer(dim, i), mlp_ratio) for i in range(depth)]
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = self.img_size
        check_tensor("images", images, "(B, C, H, W)", C=self.in_channels, H=size, W=size)
        x = self.embed(images) + self.pos  # tokens + position embedding, (B, H', W', dim)
        x = self.norm(self.blocks(x))  # depth pre-norm blocks on the grid
        return self.head(x.mean(dim=(1, 2)))  # mean of the tokens → logits


def _conv_stem(in_channels: int, dim: int, patch_size: int) -> nn.Sequential:
    """``log₂ p`` stride-2 ``3 × 3`` conv-BN-ReLU layers, then a stride-1 one: ``(B, C, H, W)`` →
    a token grid ``(B, H/p, W/p, dim)``."""
    if patch_size & (patch_size - 1):
        raise ValueError(f"a conv stem needs a power-of-two patch_size, got {patch_size}")
    layers, c, halvings = [], in_channels, patch_size.bit_length() - 1
    for i in range(halvings):  # per factor of 2 a stride-2 conv, the last one to dim channels
        out = dim if i == halvings - 1 else max(dim // 2, 1)
        layers.append(conv_bn_act(c, out, stride=2))
        c = out
    layers.append(conv_bn_act(dim, dim))  # then one stride-1 conv at the token grid's resolution
    return nn.Sequential(*layers, Rearrange("b c h w -> b h w c"))


def explorer(
    image: torch.Tensor,
    features: torch.Tensor,
    feature_names: Sequence[str],
    scale: float = 5.0,
    display_size: tuple[int, int] | None = None,
    initial: dict | None = None,
):
    """The chapter's widget: a query patch of a photo attends to *all* patches, head by head.

    ``features`` ``(6, h, w)`` (from :func:`visual_attention.data.patch_features` with
    ``unit=True``) are the tokens; a :class:`GlobalAttention` with identity projections and
    ``num_heads=2`` splits them into a *colour* head (red, green, blue) and a *texture* head
    (contrast, edges), and one with ``num_heads=1`` uses all six. The reader picks the head, the
    query patch (anywhere) and a temperature; the browser computes the query's weights over the
    whole photo and the head's output (its context vector, drawn in the slots of the features it is
    made of) — :class:`visual_attention.views.widgets.AttentionExplorer`, with each head's queries,
    keys and values zero-padded to the six features (zeros change no dot product).

    Args:
        image: ``(3, H, W)`` photo in ``[0, 1]``.
        features: ``(6, h, w)`` unit patch features.
        feature_names: their 6 names.
        scale: logits are ``scale · ⟨q, k⟩ / T``.
        display_size: drawn ``(height, width)`` in CSS pixels.
        initial: optional first ``{"head": name, "row": r, "column": c}``.
    """

    c, h, w = check_tensor("features", features, "(C, h, w)", C=6)
    if len(feature_names) != 6:
        raise ValueError(f"feature_names must hold 6 names, got {len(feature_names)}")
    tokens = rearrange(features, "c h w -> (h w) c")
    heads = {
        "colour head": slice(0, 3),
        "texture head": slice(3, 6),
        "one head, all 6": slice(0, 6),
    }
    per_head = torch.zeros(len(heads), h * w, c)
    for i, part in enumerate(heads.values()):
        per_head[i, :, part] = tokens[:, part]  # q = k = v = the head's features, in their slots
    first = dict(initial or {})
    return attention_explorer(
        per_head,
        grid=(h, w),
        image=image,
        scale=scale,
        temperature=1.0,
        temperature_range=(0.1, 10.0),
        query=(first.get("row", 0), first.get("column", 0)),
        head=list(heads).index(first.get("head", "colour head")),
        controls=("head", "temperature"),
        head_names=list(heads),
        value_names=list(feature_names),
        context_title="head output (context), in its features' slots",
        display_size=display_size,
        label="global-attention",
    )
