"""Multi-head attention and the Vision Transformer, written out; attention rollout.

* :class:`MultiHeadAttention` — Vaswani et al., "Attention Is All You Need", NeurIPS 2017, Sec. 3.2.2:
  ``MultiHead(Q, K, V) = Concat(head_1, …, head_h) W^O`` with
  ``head_i = softmax(Q W_i^Q (K W_i^K)ᵀ / √d_k) V W_i^V`` and ``d_k = dim / h``. Numerically equal to
  :class:`torch.nn.MultiheadAttention` (``batch_first=True``) with the same weights.
* :class:`PatchEmbedding`, :class:`TransformerBlock`, :class:`VisionTransformer` — Dosovitskiy et al.,
  "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale", ICLR 2021, Eq. (1)-(4):
  patches → linear embedding + learned position embeddings (+ a class token), ``L`` pre-norm blocks
  ``z' = MSA(LN(z)) + z``, ``z = MLP(LN(z')) + z'``, and a linear head on ``LN(z_L^0)``.
* :func:`attention_rollout`, :func:`class_token_rollout` — Abnar & Zuidema, "Quantifying Attention Flow
  in Transformers", ACL 2020: add the identity for the residual path, renormalise, multiply the
  layers' attention matrices.
* ``stem_channels`` of :class:`PatchEmbedding` — Xiao et al., "Early Convolutions Help Transformers See
  Better", NeurIPS 2021: a small convolution before the patch projection (cf. ViT's "hybrid", Sec. 3.1).
* :func:`fit_vit` — the data-efficient training recipe of Touvron et al., "Training data-efficient image
  transformers & distillation through attention" (DeiT), ICML 2021, scaled down: AdamW (Loshchilov &
  Hutter, ICLR 2019), linear warm-up then cosine decay of the learning rate (Loshchilov & Hutter, ICLR
  2017), label smoothing (Szegedy et al., CVPR 2016) and random translations (:func:`random_shift`).
* :func:`split_heads`, :func:`merge_heads`, :func:`digit_vit`, :func:`explorer` — the chapter's helpers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from ._checks import check_floating, check_rank, shape_str
from .core import AttentionModule, scaled_dot_product_attention

__all__ = [
    "split_heads",
    "merge_heads",
    "MultiHeadAttention",
    "PatchEmbedding",
    "MLP",
    "TransformerBlock",
    "VisionTransformer",
    "attention_rollout",
    "class_token_rollout",
]


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(B, N, h·d) → (B, h, N, d)``: head ``i`` gets features ``i·d … (i+1)·d − 1``."""
    check_rank("x", x, exactly=3, expected="(B, N, dim)")
    if x.shape[-1] % num_heads:
        raise ValueError(f"dim = {x.shape[-1]} of x {shape_str(x)} is not divisible by num_heads = {num_heads}")
    return rearrange(x, "b n (h d) -> b h n d", h=num_heads)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, h, N, d) → (B, N, h·d)``, the inverse of :func:`split_heads` (the "Concat" of Eq. 5)."""
    check_rank("x", x, exactly=4, expected="(B, h, N, d)")
    return rearrange(x, "b h n d -> b n (h d)")


class MultiHeadAttention(AttentionModule):
    """Multi-head scaled dot-product attention (Vaswani et al. 2017, Sec. 3.2.2, Eq. 4-5).

    ``q = x W^Q``, ``k = x W^K``, ``v = x W^V`` (each ``dim → dim``), split into ``h`` heads of
    ``d = dim / h`` features, ``head_i = softmax(q_i k_iᵀ / √d) v_i`` for each head, heads
    concatenated and projected by ``W^O``. Each head has its own attention pattern at the cost of
    one: the ``h`` heads of size ``dim / h`` cost the same as one head of size ``dim``.

    Args:
        dim: token size ``D`` (input and output).
        num_heads: ``h``; must divide ``dim``.
        bias: biases in the four projections (as ``torch.nn.MultiheadAttention(bias=True)``).

    Forward:
        ``x`` ``(B, N, D)`` (self-attention) or ``query`` ``(B, N, D)`` with ``key``/``value``
        ``(B, M, D)``; optional ``mask`` (bool, broadcastable to ``(B, h, N, M)``, ``True`` = may
        attend) and ``key_mask`` (bool ``(B, M)``, ``True`` = a real key, ``False`` = padding).
        Returns ``(B, N, D)``, or ``(out, weights)`` with ``return_weights=True``. Records the
        per-head weights ``(B, h, N, M)``.
    """

    def __init__(self, dim: int, num_heads: int, bias: bool = True) -> None:
        super().__init__()
        if not isinstance(dim, int) or not isinstance(num_heads, int) or dim < 1 or num_heads < 1 or dim % num_heads:
            raise ValueError(f"dim must be a positive multiple of num_heads, got dim={dim!r}, num_heads={num_heads!r}")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.q = nn.Linear(dim, dim, bias=bias)
        self.k = nn.Linear(dim, dim, bias=bias)
        self.v = nn.Linear(dim, dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        key = x if key is None else key
        value = key if value is None else value
        for name, t in (("x", x), ("key", key), ("value", value)):
            check_floating(name, t)
            check_rank(name, t, exactly=3, expected="(B, N, dim)")
            if t.shape[-1] != self.dim:
                raise ValueError(f"{name} must have dim = {self.dim} features (B, N, dim), got shape {shape_str(t)}")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != x.shape[0]:
            raise ValueError(f"x {shape_str(x)}, key {shape_str(key)} and value {shape_str(value)} must share B (and key/value M)")
        allowed = self._combine_masks(mask, key_mask, x.shape[0], x.shape[1], key.shape[1])
        q = split_heads(self.q(x), self.num_heads)      # (B, h, N, d)
        k = split_heads(self.k(key), self.num_heads)    # (B, h, M, d)
        v = split_heads(self.v(value), self.num_heads)  # (B, h, M, d)
        context, weights = scaled_dot_product_attention(q, k, v, mask=allowed)  # scale 1/√d
        out = self.proj(merge_heads(context))           # Concat(head_1..h) W^O
        self.remember(weights)
        return (out, weights) if return_weights else out

    def _combine_masks(self, mask, key_mask, b, n, m):
        if key_mask is not None:
            if not isinstance(key_mask, torch.Tensor) or key_mask.dtype != torch.bool or key_mask.shape != (b, m):
                got = shape_str(key_mask) if isinstance(key_mask, torch.Tensor) else type(key_mask).__name__
                raise ValueError(f"key_mask must be a boolean tensor of shape (B, M) = ({b}, {m}), got {got}")
            key_mask = key_mask[:, None, None, :]  # (B, 1, 1, M)
        if mask is not None:
            if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
                raise ValueError("mask must be a boolean tensor (True = may attend)")
            try:
                torch.broadcast_to(mask, (b, self.num_heads, n, m))
            except RuntimeError:
                raise ValueError(
                    f"mask of shape {shape_str(mask)} does not broadcast to (B, h, N, M) = ({b}, {self.num_heads}, {n}, {m})"
                ) from None
        if mask is None:
            return key_mask
        return mask if key_mask is None else mask & key_mask

    @torch.no_grad()
    def load_torch_weights(self, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of a :class:`torch.nn.MultiheadAttention` of the same size (returns ``self``)."""
        if mha.embed_dim != self.dim or mha.num_heads != self.num_heads or not mha._qkv_same_embed_dim:
            raise ValueError(f"need an nn.MultiheadAttention({self.dim}, {self.num_heads}) with equal q/k/v sizes")
        for i, layer in enumerate((self.q, self.k, self.v)):
            layer.weight.copy_(mha.in_proj_weight[i * self.dim : (i + 1) * self.dim])
            if layer.bias is not None:
                layer.bias.copy_(mha.in_proj_bias[i * self.dim : (i + 1) * self.dim])
        self.proj.weight.copy_(mha.out_proj.weight)
        if self.proj.bias is not None:
            self.proj.bias.copy_(mha.out_proj.bias)
        return self


class PatchEmbedding(nn.Module):
    """Cut an image into ``P × P`` patches and embed each linearly (ViT Eq. 1, ``x_p E``).

    A convolution with kernel and stride ``P`` is that linear map applied to every patch.
    Input ``(B, C, H, W)`` with ``H = W = img_size``; output ``(B, N, dim)``, ``N = (img_size / P)²``,
    patches in row-major order.

    With ``stem_channels`` a convolutional stem comes first (Xiao et al., NeurIPS 2021): one ``3 × 3``
    convolution (no bias), batch norm and ReLU at full resolution per entry — ``16`` is one layer of 16
    maps, ``(16, 16)`` two layers — so each token also sees the pixels just outside its patch. The
    default ``0`` (or ``()``) is the paper's plain ViT.
    """

    def __init__(
        self, img_size: int, patch_size: int, in_channels: int, dim: int, stem_channels: int | Sequence[int] = 0
    ) -> None:
        super().__init__()
        if patch_size < 1 or img_size % patch_size:
            raise ValueError(f"patch_size must divide img_size, got img_size={img_size}, patch_size={patch_size}")
        widths = (stem_channels,) if isinstance(stem_channels, int) and stem_channels else stem_channels or ()
        if isinstance(widths, int) or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in widths):
            raise ValueError(f"stem_channels must be a non-negative int or a sequence of positive ints, got {stem_channels!r}")
        self.img_size, self.patch_size, self.in_channels = img_size, patch_size, in_channels
        self.grid = img_size // patch_size
        self.num_patches = self.grid**2
        layers, c = [], in_channels
        for width in widths:
            layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            c = width
        self.stem = nn.Sequential(*layers) if layers else nn.Identity()
        self.proj = nn.Conv2d(c, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_floating("x", x)
        check_rank("x", x, exactly=4, expected="(B, C, H, W)")
        want = (self.in_channels, self.img_size, self.img_size)
        if tuple(x.shape[1:]) != want:
            raise ValueError(f"x must have shape (B, {want[0]}, {want[1]}, {want[2]}), got {shape_str(x)}")
        return rearrange(self.proj(self.stem(x)), "b d h w -> b (h w) d")


class MLP(nn.Sequential):
    """The Transformer's position-wise MLP: Linear(dim → hidden), GELU, Linear(hidden → dim)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class TransformerBlock(nn.Module):
    """A pre-norm Transformer encoder block (ViT Eq. 2-3).

    ``z' = MSA(LN(z)) + z`` then ``z = MLP(LN(z')) + z'`` with an MLP of ``mlp_ratio · dim`` hidden
    units and GELU. Input and output ``(B, N, dim)``; its :class:`MultiHeadAttention` (``.attn``)
    records ``(B, h, N, N)``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, bias: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiHeadAttention(dim, num_heads, bias=bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask=mask)
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """The Vision Transformer of Dosovitskiy et al. (ICLR 2021), Eq. (1)-(4).

    ``z_0 = [x_class; x_p^1 E; …; x_p^N E] + E_pos`` (learned position embeddings), ``depth``
    :class:`TransformerBlock` s, ``y = LN(z_L^0)`` and a linear head. Without a class token
    (``class_token=False``) the head reads the mean of the patch tokens. ``stem_channels > 0`` puts a
    convolutional stem before the patch projection (see :class:`PatchEmbedding`).

    Configured as ViT-B/16 (``224, 16, 3, 1000, 768, 12, 12``) it has 86.57 M parameters and as
    ViT-S/16 (``dim=384, num_heads=6``) 22.05 M, as in the paper and timm.

    Input ``(B, in_channels, img_size, img_size)``, output ``(B, num_classes)``. Each block's
    ``attn`` records ``(B, h, N', N')`` with ``N' = N + 1`` tokens (class token first) or ``N``.
    """

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        in_channels: int,
        num_classes: int,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        class_token: bool = True,
        stem_channels: int | Sequence[int] = 0,
    ) -> None:
        super().__init__()
        if depth < 1 or num_classes < 1:
            raise ValueError(f"depth and num_classes must be positive, got depth={depth}, num_classes={num_classes}")
        self.patch_embed = PatchEmbedding(img_size, patch_size, in_channels, dim, stem_channels)
        self.grid = self.patch_embed.grid
        self.num_prefix = 1 if class_token else 0
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if class_token else None
        self.pos_embed = nn.Parameter(torch.randn(1, self.patch_embed.num_patches + self.num_prefix, dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        if class_token:
            nn.init.normal_(self.cls_token, std=1e-6)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The final tokens ``LN(z_L)`` ``(B, N', dim)``."""
        z = self.patch_embed(x)
        if self.cls_token is not None:
            z = torch.cat([self.cls_token.expand(len(z), -1, -1), z], dim=1)
        z = z + self.pos_embed
        for block in self.blocks:
            z = block(z)
        return self.norm(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.tokens(x)
        return self.head(z[:, 0] if self.cls_token is not None else z.mean(1))


def attention_rollout(
    attentions: Sequence[torch.Tensor], head_fusion: str = "mean", discard_ratio: float = 0.0
) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, ACL 2020, Sec. 3): how much each input token flows into each output.

    For each layer ``l``, the heads are fused (``mean``, ``max`` or ``min`` over ``h``); optionally the
    smallest ``discard_ratio`` of each fused matrix's entries are set to zero (a trick of Gildenblat's
    widely used implementation, not in the paper); then the residual connection is modelled as
    ``Â_l = 0.5·A_l + 0.5·I`` with rows renormalised to sum to 1, and
    ``rollout = Â_L · … · Â_2 · Â_1``.

    Args:
        attentions: the layers' weights in order, each ``(B, h, N, N)`` (e.g. recorded with
            :func:`visual_attention.record_attention`).
        head_fusion: ``"mean"``, ``"max"`` or ``"min"``.
        discard_ratio: fraction in ``[0, 1)`` of the smallest fused weights to drop.

    Returns:
        ``(B, N, N)``: row ``i`` says how much token ``i`` of the last layer draws from each input
        token; rows sum to 1.
    """
    if head_fusion not in ("mean", "max", "min"):
        raise ValueError(f"head_fusion must be 'mean', 'max' or 'min', got {head_fusion!r}")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio!r}")
    if len(attentions) == 0:
        raise ValueError("attentions must hold at least one layer's (B, h, N, N) weights")
    first = attentions[0]
    for i, a in enumerate(attentions):
        check_floating(f"attentions[{i}]", a)
        check_rank(f"attentions[{i}]", a, exactly=4, expected="(B, h, N, N)")
        if a.shape[-1] != a.shape[-2] or a.shape[0] != first.shape[0] or a.shape[-1] != first.shape[-1]:
            raise ValueError(f"attentions[{i}] has shape {shape_str(a)}; every layer must be (B, h, N, N) "
                             f"with B = {first.shape[0]} and N = {first.shape[-1]}")
    b, n = first.shape[0], first.shape[-1]
    eye = torch.eye(n, dtype=first.dtype, device=first.device)
    result = eye.expand(b, n, n)
    for a in attentions:
        fused = {"mean": a.mean(1), "max": a.amax(1), "min": a.amin(1)}[head_fusion]  # (B, N, N)
        drop = int(n * n * discard_ratio)
        if drop:
            flat = fused.reshape(b, -1)
            lowest = flat.topk(drop, dim=-1, largest=False).indices
            fused = flat.scatter(-1, lowest, 0.0).reshape(b, n, n)
        fused = 0.5 * fused + 0.5 * eye  # the residual path carries the token itself
        fused = fused / fused.sum(-1, keepdim=True)
        result = fused @ result
    return result


def class_token_rollout(
    attentions: Sequence[torch.Tensor], grid: tuple[int, int], head_fusion: str = "mean", discard_ratio: float = 0.0
) -> torch.Tensor:
    """The class token's row of :func:`attention_rollout` over the patches, as a map ``(B, H, W)``.

    The class token (token 0) is dropped and the remaining weights renormalised to sum to 1, so the
    map says which patches the classification draws on.
    """
    rollout = attention_rollout(attentions, head_fusion, discard_ratio)
    h, w = grid
    if rollout.shape[-1] != h * w + 1:
        raise ValueError(f"a {h}×{w} grid needs N = {h * w + 1} tokens (class token first), got N = {rollout.shape[-1]}")
    row = rollout[:, 0, 1:]
    return (row / row.sum(-1, keepdim=True)).reshape(-1, h, w)


