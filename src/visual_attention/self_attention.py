"""Self-attention over the positions of a feature map, and the non-local block.

* :func:`position_self_attention` — every position of a ``(B, C, H, W)`` map is a query, a key and
  a value: scaled dot-product attention (Vaswani et al., "Attention Is All You Need", NeurIPS 2017,
  Eq. 1) with ``H·W`` queries and ``H·W`` keys, weights ``(B, HW, HW)``.
* :class:`NonLocalBlock` — Wang, Girshick, Gupta, He, "Non-local Neural Networks", CVPR 2018,
  Eq. (1)-(2) and (6), in its *embedded Gaussian* form: ``θ``, ``φ``, ``g`` are 1×1 convolutions to
  ``C/2`` channels, ``y_i = Σ_j softmax_j(θ(x_i)ᵀ φ(x_j)) g(x_j)``, and the residual
  ``z_i = W_z y_i + x_i`` with ``W_z``'s BatchNorm initialised to zero, so a new block is the identity
  and can be inserted into a trained network without changing it.
* :func:`mean_attention_distance` — how far, in grid cells, a query's attention reaches on average
  (the "attention distance" of Dosovitskiy et al., ICLR 2021, Fig. 7).
* :func:`marks_task` — a synthetic task that needs long-range context: two marks at opposite sides
  of an image, *do they have the same pattern?*
* :func:`explorer` — the chapter's widget: pick a query patch of a photo and what the embedding
  compares; see its attention over the photo and its output vector.

Self-attention GAN (Zhang et al., ICML 2019) uses the same block in a generator (with a learned
scale ``γ`` initialised to zero instead of a zero BatchNorm).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch import nn

from ._checks import check_floating, check_rank, shape_str
from .core import AttentionModule, scaled_dot_product_attention

__all__ = [
    "position_self_attention",
    "NonLocalBlock",
    "mean_attention_distance",
    "MARK_PATTERNS",
    "marks_task",
    "LocalCNN",
    "NonLocalNet",
    "explorer",
]


def position_self_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Self-attention among the positions of feature maps: every position attends to every position.

    The ``H·W`` positions are flattened into a sequence (row by row) and
    ``y = softmax(Q Kᵀ · scale) V`` (Vaswani et al. 2017, Eq. 1) is computed with one query, key and
    value per position; ``y`` is folded back into a map. For ``q = k = v = x`` this is the
    "Gaussian" non-local operation of Wang et al. (2018, Eq. 2, first form).

    Args:
        q: queries ``(B, Cq, H, W)``.
        k: keys ``(B, Cq, H', W')`` (usually ``H' = H``, ``W' = W``; smaller if subsampled).
        v: values ``(B, Cv, H', W')``.
        scale: multiplier of the dot products; ``None`` means ``Cq ** -0.5``.
        mask: optional boolean ``(B, HW, H'W')`` (or broadcastable), ``True`` = may attend.

    Returns:
        ``(y, weights)``: ``y`` of shape ``(B, Cv, H, W)`` and weights ``(B, HW, H'W')`` whose rows
        sum to 1; row ``i·W + j`` is the attention map of the query at ``(i, j)``.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_floating(name, t)
        check_rank(name, t, exactly=4, expected="(B, C, H, W)")
    if q.shape[:2] != k.shape[:2]:
        raise ValueError(f"q {shape_str(q)} and k {shape_str(k)} must share (B, C)")
    if k.shape[0] != v.shape[0] or k.shape[2:] != v.shape[2:]:
        raise ValueError(f"k {shape_str(k)} and v {shape_str(v)} must share B, H and W")
    h, w = q.shape[2:]
    seq = lambda t: rearrange(t, "b c h w -> b (h w) c")  # noqa: E731  one row per position
    y, weights = scaled_dot_product_attention(seq(q), seq(k), seq(v), mask=mask, scale=scale)
    return rearrange(y, "b (h w) c -> b c h w", h=h, w=w), weights


class NonLocalBlock(AttentionModule):
    """The non-local block of Wang et al. (CVPR 2018), embedded Gaussian version, for images.

    Eq. (1)-(2): ``y_i = (1 / C(x)) Σ_j exp(θ(x_i)ᵀ φ(x_j)) g(x_j)`` — a softmax over all positions
    ``j`` — with ``θ``, ``φ``, ``g`` 1×1 convolutions from ``C`` to ``C' = rd_channels`` channels
    (``C/2`` in the paper). Eq. (6): ``z_i = W_z y_i + x_i`` where ``W_z`` is a 1×1 convolution back
    to ``C`` channels followed by BatchNorm whose scale ``γ`` starts at zero (Sec. 3.3 and the
    authors' code), so the block starts as the identity.

    As in the authors' released code (``USE_SCALE``), the dot products are multiplied by
    ``C' ** -0.5`` (``scale=True``); ``scale=False`` gives Eq. (2) exactly. ``subsample=True`` adds
    the 2×2 max-pooling after ``φ`` and ``g`` of Sec. 3.3 (4× fewer keys).

    Args:
        channels: ``C``, the input and output channels.
        rd_ratio: ``C' / C`` (default 1/2, the paper's bottleneck).
        rd_channels: ``C'`` directly (overrides ``rd_ratio``).
        scale: multiply the dot products by ``C' ** -0.5``.
        subsample: max-pool keys and values by 2 (``H`` and ``W`` must then be even).
        use_bn: BatchNorm after ``W_z`` (zero-initialised); without it ``W_z`` itself starts at zero.

    Shapes: input and output ``(B, C, H, W)``. Records the weights ``(B, HW, HW)`` (``(B, HW, HW/4)``
    with ``subsample``): row ``i·W + j`` is where position ``(i, j)`` looks.
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1 / 2,
        rd_channels: int | None = None,
        scale: bool = True,
        subsample: bool = False,
        use_bn: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        if rd_channels is None:
            if not 0 < rd_ratio <= 1:
                raise ValueError(f"rd_ratio must be in (0, 1], got {rd_ratio!r}")
            rd_channels = max(1, round(channels * rd_ratio))
        if not isinstance(rd_channels, int) or rd_channels < 1:
            raise ValueError(f"rd_channels must be a positive integer, got {rd_channels!r}")
        self.channels, self.rd_channels, self.subsample = channels, rd_channels, subsample
        self.scale = rd_channels**-0.5 if scale else 1.0
        self.theta = nn.Conv2d(channels, rd_channels, 1)
        self.phi = nn.Conv2d(channels, rd_channels, 1)
        self.g = nn.Conv2d(channels, rd_channels, 1)
        self.w_z = nn.Conv2d(rd_channels, channels, 1)
        self.norm = nn.BatchNorm2d(channels) if use_bn else nn.Identity()
        self.pool = nn.MaxPool2d(2) if subsample else nn.Identity()
        # the block starts as the identity: z = 0 + x
        if use_bn:
            nn.init.zeros_(self.norm.weight)
        else:
            nn.init.zeros_(self.w_z.weight)
            nn.init.zeros_(self.w_z.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_floating("x", x)
        check_rank("x", x, exactly=4, expected="(B, C, H, W)")
        if x.shape[1] != self.channels:
            raise ValueError(f"x must have {self.channels} channels (B, C, H, W), got shape {shape_str(x)}")
        if self.subsample and (x.shape[2] % 2 or x.shape[3] % 2):
            raise ValueError(f"subsample needs an even H and W, got shape {shape_str(x)}")
        keys, values = self.pool(self.phi(x)), self.pool(self.g(x))
        y, weights = position_self_attention(self.theta(x), keys, values, scale=self.scale)  # Eq. (2)
        self.remember(weights)
        return self.norm(self.w_z(y)) + x  # Eq. (6)


def mean_attention_distance(weights: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Mean distance, in grid cells, between each query and the positions it attends to.

    ``d_i = Σ_j a_ij ‖p_i − p_j‖`` where ``p_i`` is the ``(row, column)`` of position ``i`` on the
    ``H × W`` grid (flattened row by row). Dosovitskiy et al. (ICLR 2021, Fig. 7) plot it per head
    to show that some heads of a ViT look locally and others globally from the first layer on.

    Args:
        weights: ``(*B, HW, HW)`` attention weights over the positions of a grid.
        grid: ``(H, W)``.

    Returns:
        ``(*B, HW)`` distances.
    """
    check_floating("weights", weights)
    check_rank("weights", weights, at_least=2, expected="(*B, HW, HW)")
    h, w = grid
    if weights.shape[-1] != h * w or weights.shape[-2] != h * w:
        raise ValueError(f"weights must end in (HW, HW) = ({h * w}, {h * w}) for a {h}×{w} grid, got {shape_str(weights)}")
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pos = torch.stack([rows.flatten(), cols.flatten()], -1).to(weights.dtype)  # (HW, 2)
    dist = torch.cdist(pos, pos)  # (HW, HW)
    return (weights * dist).sum(-1)


# ---------------------------------------------------------------------------------------------
# A task that needs long-range context
# ---------------------------------------------------------------------------------------------

#: The two 3×3 marks: a bright plus and a dark plus (the same shape, opposite intensity).
MARK_PATTERNS = torch.tensor([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], dtype=torch.float32) * torch.tensor([1.0, -1.0])[:, None, None]


def marks_task(
    n: int, height: int = 8, width: int = 16, noise: float = 0.2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images with one 3×3 mark near the left edge and one near the right edge: same intensity or not?

    Each image is ``(1, height, width)``: a mark from :data:`MARK_PATTERNS` (bright or dark) in
    columns 0-4 at a random row, another in the last five columns at an independent random row, and
    Gaussian noise. Half of the images (label 1) show the same mark twice, the other half one bright
    and one dark mark: an XOR of the two marks, which no sum of separate evidence about each can give.
    The marks are at least ``width − 10`` columns apart, so a network whose per-position decisions
    only see a small window cannot compare them.

    Args:
        n: number of images.
        height, width: image size in pixels (``height ≥ 3``, ``width ≥ 12``).
        noise: standard deviation of the pixel noise.
        seed: random seed; the same arguments give the same images.

    Returns:
        images ``(n, 1, height, width)`` float32 and labels ``(n,)`` int64 (1 = same mark).
    """
    if n < 1 or height < 3 or width < 12:
        raise ValueError(f"need n >= 1, height >= 3 and width >= 12, got n={n}, height={height}, width={width}")
    g = torch.Generator().manual_seed(seed)
    k = len(MARK_PATTERNS)
    labels = torch.arange(n) % 2
    labels = labels[torch.randperm(n, generator=g)]
    left = torch.randint(k, (n,), generator=g)
    shift = torch.randint(1, k, (n,), generator=g)  # a different pattern: shift by 1..k-1
    right = torch.where(labels == 1, left, (left + shift) % k)
    images = torch.zeros(n, 1, height, width)
    rows = torch.randint(0, height - 2, (n, 2), generator=g)
    cols = torch.stack([torch.randint(0, 3, (n,), generator=g), torch.randint(width - 5, width - 2, (n,), generator=g)], 1)
    for i in range(n):
        for side, pat in enumerate((left[i], right[i])):
            r, c = rows[i, side].item(), cols[i, side].item()
            images[i, 0, r : r + 3, c : c + 3] = MARK_PATTERNS[pat]
    images += noise * torch.randn(images.shape, generator=g)
    return images, labels.long()


def _stem(channels: int) -> nn.Sequential:
    """Two 3×3 convolutions: a receptive field of 5×5 pixels, enough to recognise a 3×3 mark."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()
    )


class LocalCNN(nn.Module):
    """A fully convolutional baseline: each position decides from a 7×7 window; the decisions are averaged.

    Three 3×3 convolutions (receptive field 7×7), then 1×1 convolutions give two logits per position,
    averaged over the positions. Input ``(B, 1, H, W)``, output ``(B, 2)``.
    """

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(_stem(channels), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).mean(dim=(2, 3))


class NonLocalNet(nn.Module):
    """The same network with a :class:`NonLocalBlock` after the stem: each position sees every position.

    Stem (two 3×3 convolutions), a non-local block, then the per-position head of :class:`LocalCNN`
    and the average of the logits. Input ``(B, 1, H, W)``, output ``(B, 2)``; the block records
    ``(B, HW, HW)`` weights.
    """

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(_stem(channels), NonLocalBlock(channels))
        self.head = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).mean(dim=(2, 3))


# ---------------------------------------------------------------------------------------------
# The chapter's widget
# ---------------------------------------------------------------------------------------------


def explorer(
    image: torch.Tensor,
    features: torch.Tensor,
    embeddings: Mapping[str, torch.Tensor],
    feature_names: Sequence[str],
    temperature: float = 0.1,
    display_size: tuple[int, int] | None = None,
    initial: Mapping[str, Any] | None = None,
):
    """Pick a query patch of a photo, an embedding and a temperature; see where it looks and its output.

    For each embedding ``E`` (a ``(C', C)`` matrix playing ``θ = φ``), every patch ``x_i`` is mapped
    to ``E x_i``, scaled to unit length, and attends to all patches with weights
    ``softmax_j(⟨E x_i, E x_j⟩ / T)``; the output ``y_i = Σ_j a_ij x_j`` (``g`` = identity) is drawn as
    bars named by ``feature_names``. The weights and the output are computed in the reader's browser
    (:class:`visual_attention.widgets.AttentionExplorer`): any patch, any temperature.

    Args:
        image: ``(3, H, W)`` photo in ``[0, 1]``.
        features: ``(C, h, w)`` features, one vector per patch.
        embeddings: ordered ``{name: (C', C) matrix}`` (the explorer's "embedding" control).
        feature_names: ``C`` labels for the output bars.
        temperature: first softmax temperature ``T``.
        display_size: drawn ``(height, width)`` in CSS pixels (default twice the photo's size).
        initial: optional first ``{"compare": name, "row": r, "column": c}``.

    Returns:
        an :class:`~visual_attention.widgets.AttentionExplorer` with one "layer" per embedding
        (``θx`` as queries and keys, zero-padded to the widest embedding, ``x`` as values).
    """
    from .widgets import attention_explorer

    check_floating("features", features)
    check_rank("features", features, exactly=3, expected="(C, h, w)")
    c, h, w = features.shape
    if len(feature_names) != c:
        raise ValueError(f"feature_names has {len(feature_names)} entries for {c} channels")
    if not embeddings:
        raise ValueError("embeddings must name at least one (C', C) matrix")
    widest = max(e.shape[0] for e in embeddings.values() if e.ndim == 2)
    zs = []
    for name, e in embeddings.items():
        if e.ndim != 2 or e.shape[1] != c:
            raise ValueError(f"embedding {name!r} must have shape (C', {c}), got {shape_str(e)}")
        z = torch.einsum("dc,chw->dhw", e.to(features.dtype), features)
        z = z / z.norm(dim=0, keepdim=True).clamp_min(1e-6)
        z = torch.cat([z, z.new_zeros(widest - z.shape[0], h, w)])        # zeros change no dot product
        zs.append(z.reshape(widest, h * w).T)                                # (hw, C'max)
    names = list(embeddings)
    first = dict(initial or {})
    values = features.reshape(c, h * w).T
    return attention_explorer(
        torch.stack(zs)[:, None], values=values[None, None].expand(len(zs), 1, -1, -1),
        grid=(h, w), image=image, temperature=temperature, temperature_range=(0.01, 2.0),
        query=(first.get("row", 0), first.get("column", 0)), layer=names.index(first.get("compare", names[0])),
        controls=("temperature", "layer"), layer_label="compare", layer_names=names,
        value_names=list(feature_names), context_title="output y = Σⱼ aᵢⱼ xⱼ",
        display_size=display_size, label="self-attention",
    )
