"""The lab of the self-attention chapter: the marks task that needs long-range context, a local CNN
and the same network with a non-local block, and the explorer of self-attention over a photo."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .._checks import check_positive_int, check_tensor, shape_str
from ..self_attention import NonLocalBlock
from ..views.widgets import attention_explorer

#: The two 3×3 marks: a bright plus and a dark plus (the same shape, opposite intensity).
MARK_PATTERNS = (
    torch.tensor([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], dtype=torch.float32)
    * torch.tensor([1.0, -1.0])[:, None, None]
)


def marks_task(
    n: int, height: int = 8, width: int = 16, noise: float = 0.2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images with one 3×3 mark near the left edge and one near the right edge: same intensity or
    not?

    Each image is ``(1, height, width)``: a mark from :data:`MARK_PATTERNS` (bright or dark) in
    columns 0-4 at a random row, another in the last five columns at an independent random row, and
    Gaussian noise. Half of the images (label 1) show the same mark twice, the other half one
    bright and one dark mark: an XOR of the two marks, which no sum of separate evidence about each
    can give. The marks are at least ``width − 10`` columns apart, so a network whose per-position
    decisions only see a small window cannot compare them.

    Args:
        n: number of images.
        height, width: image size in pixels (``height ≥ 3``, ``width ≥ 12``).
        noise: standard deviation of the pixel noise.
        seed: random seed; the same arguments give the same images.

    Returns:
        images ``(n, 1, height, width)`` float32 and labels ``(n,)`` int64 (1 = same mark).
    """
    for name, value in (("n", n), ("height", height), ("width", width)):
        check_positive_int(name, value)
    if height < 3 or width < 12:
        raise ValueError(f"need height >= 3 and width >= 12, got height={height}, width={width}")
    g = torch.Generator().manual_seed(seed)
    k = len(MARK_PATTERNS)
    labels = torch.arange(n) % 2
    labels = labels[torch.randperm(n, generator=g)]
    left = torch.randint(k, (n,), generator=g)
    shift = torch.randint(1, k, (n,), generator=g)  # a different pattern: shift by 1..k-1
    right = torch.where(labels == 1, left, (left + shift) % k)
    images = torch.zeros(n, 1, height, width)
    rows = torch.randint(0, height - 2, (n, 2), generator=g)
    cols = torch.stack(
        [
            torch.randint(0, 3, (n,), generator=g),
            torch.randint(width - 5, width - 2, (n,), generator=g),
        ],
        1,
    )
    for i in range(n):
        for side, pat in enumerate((left[i], right[i])):
            r, c = rows[i, side].item(), cols[i, side].item()
            images[i, 0, r : r + 3, c : c + 3] = MARK_PATTERNS[pat]
    images += noise * torch.randn(images.shape, generator=g)
    return images, labels.long()


def _stem(channels: int) -> nn.Sequential:
    """Two 3×3 convolutions: a receptive field of 5×5 pixels, enough to recognise a 3×3 mark."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(),
    )


class LocalCNN(nn.Module):
    """A fully convolutional baseline: each position decides from a 7×7 window; the decisions are
    averaged.

    Three 3×3 convolutions (receptive field 7×7), then 1×1 convolutions give two logits per
    position, averaged over the positions. Input ``(B, 1, H, W)``, output ``(B, 2)``.
    """

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _stem(channels), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Sequential(
            nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 2, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).mean(dim=(2, 3))


class NonLocalNet(nn.Module):
    """The same network with a :class:`NonLocalBlock` after the stem: each position sees every
    position.

    Stem (two 3×3 convolutions), a non-local block, then the per-position head of :class:`LocalCNN`
    and the average of the logits. Input ``(B, 1, H, W)``, output ``(B, 2)``; the block records
    ``(B, HW, HW)`` weights.
    """

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(_stem(channels), NonLocalBlock(channels))
        self.head = nn.Sequential(
            nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 2, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).mean(dim=(2, 3))


def explorer(
    image: torch.Tensor,
    features: torch.Tensor,
    embeddings: Mapping[str, torch.Tensor],
    feature_names: Sequence[str],
    temperature: float = 0.1,
    display_size: tuple[int, int] | None = None,
    initial: Mapping[str, Any] | None = None,
):
    """Pick a query patch of a photo, an embedding and a temperature; see where it looks and its
    output.

    For each embedding ``E`` (a ``(C', C)`` matrix playing ``θ = φ``), every patch ``x_i`` is
    mapped to ``E x_i``, scaled to unit length, and attends to all patches with weights
    ``softmax_j(⟨E x_i, E x_j⟩ / T)``; the output ``y_i = Σ_j a_ij x_j`` (``g`` = identity) is
    drawn as bars named by ``feature_names``. The weights and the output are computed in the
    reader's browser (:class:`visual_attention.views.widgets.AttentionExplorer`): any patch, any
    temperature.

    Args:
        image: ``(3, H, W)`` photo in ``[0, 1]``.
        features: ``(C, h, w)`` features, one vector per patch.
        embeddings: ordered ``{name: (C', C) matrix}`` (the explorer's "embedding" control).
        feature_names: ``C`` labels for the output bars.
        temperature: first softmax temperature ``T``.
        display_size: drawn ``(height, width)`` in CSS pixels (default twice the photo's size).
        initial: optional first ``{"compare": name, "row": r, "column": c}``.

    Returns:
        an :class:`~visual_attention.views.widgets.AttentionExplorer` with one "layer" per
        embedding (``θx`` as queries and keys, zero-padded to the widest embedding, ``x`` as
        values).
    """

    c, h, w = check_tensor("features", features, "(C, h, w)")
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
        z = torch.cat([z, z.new_zeros(widest - z.shape[0], h, w)])  # zeros change no dot product
        zs.append(z.reshape(widest, h * w).T)  # (hw, C'max)
    names = list(embeddings)
    first = dict(initial or {})
    values = features.reshape(c, h * w).T
    return attention_explorer(
        torch.stack(zs)[:, None],
        values=values[None, None].expand(len(zs), 1, -1, -1),
        grid=(h, w),
        image=image,
        temperature=temperature,
        temperature_range=(0.01, 2.0),
        query=(first.get("row", 0), first.get("column", 0)),
        layer=names.index(first.get("compare", names[0])),
        controls=("temperature", "layer"),
        layer_label="compare",
        layer_names=names,
        value_names=list(feature_names),
        context_title="output y = Σⱼ aᵢⱼ xⱼ",
        display_size=display_size,
        label="self-attention",
    )
