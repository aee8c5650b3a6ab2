"""The Vision Transformer, built from the Transformer kit, and attention rollout.

* :class:`VisionTransformer` — Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for
  Image Recognition at Scale", ICLR 2021, Eq. (1)-(4): patches → linear embedding + learned
  position embeddings (+ a class token), ``L`` pre-norm blocks ``z' = MSA(LN(z)) + z``,
  ``z = MLP(LN(z')) + z'``, and a linear head on ``LN(z_L^0)``. Its parts are the kit's
  (:mod:`visual_attention.blocks`): :class:`~visual_attention.blocks.PatchEmbed` (with the optional
  convolutional stem of Xiao et al., "Early Convolutions Help Transformers See Better",
  NeurIPS 2021), :class:`~visual_attention.blocks.PreNormBlock` and
  :class:`~visual_attention.blocks.MultiHeadAttention` (Vaswani et al., "Attention Is All You
  Need", NeurIPS 2017, Sec. 3.2.2).
* :func:`sinusoidal_position_embedding` — the fixed position code of Vaswani et al. (2017),
  Sec. 3.5, the alternative to ViT's learned ``E_pos``.
* :func:`attention_rollout`, :func:`class_token_rollout` — Abnar & Zuidema, "Quantifying Attention
  Flow in Transformers", ACL 2020: add the identity for the residual path, renormalise, multiply
  the layers' attention matrices.

The chapter's experiment (one head against several at equal width, reading two digits) and its
widget are in :mod:`visual_attention.labs.multi_head`; the DeiT training recipe is
:data:`visual_attention.train.DEIT_RECIPE`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._checks import (
    check_bool,
    check_choice,
    check_number,
    check_positive_int,
    check_size2,
    check_tensor,
)
from .blocks import MultiHeadAttention, PatchEmbed, PreNormBlock

__all__ = [
    "VisionTransformer",
    "attention_rollout",
    "class_token_rollout",
    "sinusoidal_position_embedding",
]


class VisionTransformer(nn.Module):
    """The Vision Transformer of Dosovitskiy et al. (ICLR 2021), Eq. (1)-(4).

    ``z_0 = [x_class; x_p^1 E; …; x_p^N E] + E_pos`` (learned position embeddings), ``depth``
    :class:`~visual_attention.blocks.PreNormBlock` s around a
    :class:`~visual_attention.blocks.MultiHeadAttention` (LayerNorm epsilon ``1e-6`` as in the
    paper's code and timm), ``y = LN(z_L^0)`` and a linear head. Without a class token
    (``class_token=False``) the head reads the mean of the patch tokens. ``stem_channels`` puts a
    convolutional stem before the patch projection (see
    :class:`~visual_attention.blocks.PatchEmbed`).

    Configured as ViT-B/16 (``224, 16, 3, 1000, 768, 12, 12``) it has 86.57 M parameters, as in the
    paper and timm; as ViT-S/16 (``dim=384, num_heads=6``), the small model introduced by DeiT
    (Touvron et al., ICML 2021, "DeiT-S"), 22.05 M.

    Shapes:
        input ``(B, in_channels, img_size, img_size)``, output ``(B, num_classes)``. Each block's
        ``attn`` records ``(B, h, N', N')`` with ``N' = N + 1`` tokens (class token first) or
        ``N``.
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
        for name, value in (
            ("img_size", img_size),
            ("num_classes", num_classes),
            ("depth", depth),
        ):
            check_positive_int(name, value)
        check_positive_int("patch_size", patch_size)
        check_bool("class_token", class_token)
        if img_size % patch_size:
            raise ValueError(
                f"img_size ({img_size}) must be a multiple of patch_size ({patch_size})"
            )
        self.img_size, self.in_channels = img_size, in_channels
        self.grid = img_size // patch_size
        self.num_patches = self.grid**2
        self.num_prefix = 1 if class_token else 0
        self.patch_embed = PatchEmbed(patch_size, in_channels, dim, stem_channels)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if class_token else None
        self.pos_embed = nn.Parameter(
            torch.randn(1, self.num_patches + self.num_prefix, dim) * 0.02
        )
        self.blocks = nn.ModuleList(
            PreNormBlock(dim, MultiHeadAttention(dim, num_heads), mlp_ratio, norm_eps=1e-6)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        if class_token:
            nn.init.normal_(self.cls_token, std=1e-6)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The final tokens ``LN(z_L)`` ``(B, N', dim)``."""
        size = self.img_size
        check_tensor("x", x, "(B, C, H, W)", C=self.in_channels, H=size, W=size)
        z = self.patch_embed(x).flatten(1, 2)  # x_p^i E, (B, N, dim)
        if self.cls_token is not None:
            z = torch.cat([self.cls_token.expand(len(z), -1, -1), z], dim=1)  # [x_class; …]
        z = z + self.pos_embed  # Eq. (1): z_0
        for block in self.blocks:
            z = block(z)  # Eq. (2)-(3): z_l
        return self.norm(z)  # Eq. (4): LN(z_L)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.tokens(x)
        return self.head(z[:, 0] if self.cls_token is not None else z.mean(1))


def attention_rollout(
    attentions: Sequence[torch.Tensor], head_fusion: str = "mean", discard_ratio: float = 0.0
) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, ACL 2020, Sec. 3): how much each input token flows into
    each output token.

    For each layer ``l``, the heads are fused (``mean``, ``max`` or ``min`` over ``h``); optionally
    the smallest ``discard_ratio`` of each fused matrix's entries are set to zero (a trick of
    Gildenblat's widely used implementation, not in the paper); then the residual connection is
    modelled as ``Â_l = 0.5·A_l + 0.5·I`` with rows renormalised to sum to 1, and
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
    b, n = _check_rollout(attentions, head_fusion, discard_ratio)
    # [start-attention-rollout]
    eye = torch.eye(n, dtype=attentions[0].dtype, device=attentions[0].device)
    rollout = eye.expand(b, n, n)
    for a in attentions:  # layers 1 … L, each (B, h, N, N)
        fused = _fuse_heads(a, head_fusion, discard_ratio)  # A_l, (B, N, N)
        fused = 0.5 * fused + 0.5 * eye  # the residual path carries the token itself
        fused = fused / fused.sum(-1, keepdim=True)  # Â_l: rows sum to 1
        rollout = fused @ rollout  # Â_l · … · Â_1: later layers on the left
    return rollout
    # [end-attention-rollout]


def _check_rollout(attentions, head_fusion: str, discard_ratio: float) -> tuple[int, int]:
    """Validate :func:`attention_rollout`'s arguments; return ``(B, N)``."""
    check_choice("head_fusion", head_fusion, ("mean", "max", "min"))
    check_number("discard_ratio", discard_ratio, 0.0, 1.0, high_open=True)
    if not isinstance(attentions, (list, tuple)) or len(attentions) == 0:
        got = "0 layers" if isinstance(attentions, (list, tuple)) else repr(attentions)
        raise ValueError(f"attentions must be a non-empty list of (B, h, N, N) weights, got {got}")
    b, _, n, _ = check_tensor("attentions[0]", attentions[0], "(B, h, N, N)")
    for i, a in enumerate(attentions):
        check_tensor(f"attentions[{i}]", a, "(B, h, N, N)")
        if a.shape[0] != b or a.shape[-2:] != (n, n):
            raise ValueError(
                f"attentions[{i}] has shape {tuple(a.shape)}; every layer must be (B, h, N, N) "
                f"with B = {b} and N = {n}"
            )
    return b, n


def _fuse_heads(a: torch.Tensor, head_fusion: str, discard_ratio: float) -> torch.Tensor:
    """Fuse the heads of ``(B, h, N, N)`` weights into ``(B, N, N)``, dropping the smallest
    ``discard_ratio`` of the entries of each fused matrix."""
    fused = {"mean": a.mean(1), "max": a.amax(1), "min": a.amin(1)}[head_fusion]
    b, n, _ = fused.shape
    drop = int(n * n * discard_ratio)
    if not drop:
        return fused
    flat = fused.reshape(b, -1)
    lowest = flat.topk(drop, dim=-1, largest=False).indices
    return flat.scatter(-1, lowest, 0.0).reshape(b, n, n)


def class_token_rollout(
    attentions: Sequence[torch.Tensor],
    grid: tuple[int, int],
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> torch.Tensor:
    """The class token's row of :func:`attention_rollout` over the patches, as a map ``(B, H, W)``.

    The class token (token 0) is dropped and the remaining weights renormalised to sum to 1, so the
    map says which patches the classification draws on; where the class token attends only to
    itself (identity maps), it draws on no patch and the map is all zeros.
    """
    h, w = check_size2("grid", grid)
    rollout = attention_rollout(attentions, head_fusion, discard_ratio)
    if rollout.shape[-1] != h * w + 1:
        raise ValueError(
            f"a {h}×{w} grid needs N = {h * w + 1} tokens (class token first), "
            f"got N = {rollout.shape[-1]}"
        )
    row = rollout[:, 0, 1:]
    total = row.sum(-1, keepdim=True)
    return torch.where(total > 0, row / total.clamp_min(torch.finfo(row.dtype).tiny), 0.0).reshape(
        -1, h, w
    )


def sinusoidal_position_embedding(num_positions: int, dim: int) -> torch.Tensor:
    """The fixed sinusoidal position code of Vaswani et al. (2017), Sec. 3.5.

    ``PE[p, 2i] = sin(p / 10000^{2i/D})`` and ``PE[p, 2i+1] = cos(p / 10000^{2i/D})``: every
    position gets a distinct vector, and ``PE[p + k]`` is a linear function of ``PE[p]`` for every
    offset ``k``. ViT learns ``E_pos`` instead; both are added to the tokens.

    Returns:
        ``(num_positions, dim)`` (``dim`` even), float32.
    """
    check_positive_int("num_positions", num_positions)
    check_positive_int("dim", dim)
    if dim % 2:
        raise ValueError(f"dim must be even (sine and cosine pairs), got {dim}")
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (P, 1)
    frequency = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (D/2,)
    angle = position * frequency  # (P, D/2)
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1).float()  # sin, cos, …
