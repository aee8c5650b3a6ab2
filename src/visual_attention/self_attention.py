"""Self-attention over the positions of a feature map, and the non-local block.

* :func:`position_self_attention` — every position of a ``(B, C, H, W)`` map is a query, a key and
  a value: scaled dot-product attention (Vaswani et al., "Attention Is All You Need", NeurIPS 2017,
  Eq. 1) with ``H·W`` queries and ``H·W`` keys, weights ``(B, HW, HW)``.
* :class:`NonLocalBlock` — Wang, Girshick, Gupta, He, "Non-local Neural Networks", CVPR 2018,
  Eq. (1), (3) and (6), in its *embedded Gaussian* form: ``θ``, ``φ``, ``g`` are 1×1 convolutions
  to ``C/2`` channels, ``y_i = Σ_j softmax_j(θ(x_i)ᵀ φ(x_j)) g(x_j)``, and the residual
  ``z_i = W_z y_i + x_i`` with ``W_z``'s BatchNorm initialised to zero, so a new block is the
  identity and can be inserted into a trained network without changing it.
* :func:`mean_attention_distance` — how far, in grid cells, a query's attention reaches on average
  (the "attention distance" of Dosovitskiy et al., ICLR 2021, Fig. 7).
* :func:`relative_position_bias` — one learned bias per offset ``j − i`` of a sequence, added to
  the logits (Shaw, Uszkoreit, Vaswani, NAACL 2018; Swin's relative position bias in one
  dimension): position by distance instead of by place.

Self-attention GAN (Zhang et al., ICML 2019) uses the same block in a generator (with a learned
scale ``γ`` initialised to zero instead of a zero BatchNorm). The chapter's task that needs
long-range context, its two networks and its widget are in
:mod:`visual_attention.labs.self_attention`.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from ._checks import (
    check_bool,
    check_positive_int,
    check_positive_number,
    check_size2,
    check_tensor,
    shape_str,
)
from .blocks import BatchNorm2d
from .core import AttentionModule, scaled_dot_product_attention

__all__ = [
    "position_self_attention",
    "NonLocalBlock",
    "mean_attention_distance",
    "relative_position_bias",
]


def position_self_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float | None = None,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Self-attention among the positions of feature maps: every position attends to every
    position.

    The ``H·W`` positions are flattened into a sequence (row by row) and
    ``y = softmax(Q Kᵀ · scale) V`` (Vaswani et al. 2017, Eq. 1) is computed with one query, key
    and value per position; ``y`` is folded back into a map. For ``q = k = v = x`` and ``scale=1``
    this is the non-local operation (Wang et al. 2018, Eq. 1) with the "Gaussian" ``f`` of their
    Eq. 2.

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
    _, _, h, w = _check_maps(q, k, v)
    # [start-position-self-attention]
    seq = lambda t: rearrange(t, "b c h w -> b (h w) c")  # one row per position
    y, weights = scaled_dot_product_attention(seq(q), seq(k), seq(v), mask=mask, scale=scale)
    return rearrange(y, "b (h w) c -> b c h w", h=h, w=w), weights  # (B, Cv, H, W), (B, HW, H'W')
    # [end-position-self-attention]


def _check_maps(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[int, ...]:
    """Check the maps of :func:`position_self_attention`; return the shape of ``q``."""
    shape = check_tensor("q", q, "(B, C, H, W)")
    check_tensor("k", k, "(B, C, H, W)")
    check_tensor("v", v, "(B, C, H, W)")
    if q.shape[:2] != k.shape[:2]:
        raise ValueError(f"q {shape_str(q)} and k {shape_str(k)} must share (B, C)")
    if k.shape[0] != v.shape[0] or k.shape[2:] != v.shape[2:]:
        raise ValueError(f"k {shape_str(k)} and v {shape_str(v)} must share B, H and W")
    return shape


class NonLocalBlock(AttentionModule):
    """The non-local block of Wang et al. (CVPR 2018), embedded Gaussian version, for images.

    Eq. (1) with (3): ``y_i = (1 / C(x)) Σ_j exp(θ(x_i)ᵀ φ(x_j)) g(x_j)`` — a softmax over all
    positions ``j`` — with ``θ``, ``φ``, ``g`` 1×1 convolutions from ``C`` to ``C' = rd_channels``
    channels (``C/2`` in the paper). Eq. (6): ``z_i = W_z y_i + x_i`` where ``W_z`` is a 1×1
    convolution back to ``C`` channels followed by BatchNorm whose scale ``γ`` starts at zero
    (Sec. 3.3 and the authors' code), so the block starts as the identity.

    As in the authors' released code (``USE_SCALE``), the dot products are multiplied by
    ``C' ** -0.5`` (``scale=True``); ``scale=False`` gives Eq. (3) exactly. ``subsample=True`` adds
    the 2×2 max-pooling after ``φ`` and ``g`` of Sec. 3.3 (4× fewer keys).

    Args:
        channels: ``C``, the input and output channels.
        rd_ratio: ``C' / C`` (default 1/2, the paper's bottleneck).
        rd_channels: ``C'`` directly (overrides ``rd_ratio``).
        scale: multiply the dot products by ``C' ** -0.5``.
        subsample: max-pool keys and values by 2 (``H`` and ``W`` must then be even).
        use_bn: BatchNorm after ``W_z`` (zero-initialised); without it ``W_z`` itself starts
            at zero.

    Shapes: input and output ``(B, C, H, W)``. Records the weights ``(B, HW, HW)``
    (``(B, HW, HW/4)`` with ``subsample``): row ``i·W + j`` is where position ``(i, j)`` looks.
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
        check_positive_int("channels", channels)
        (
            check_bool("scale", scale),
            check_bool("subsample", subsample),
            check_bool("use_bn", use_bn),
        )
        if rd_channels is None:
            if check_positive_number("rd_ratio", rd_ratio) > 1:
                raise ValueError(f"rd_ratio must be in (0, 1], got {rd_ratio!r}")
            rd_channels = max(1, round(channels * rd_ratio))
        check_positive_int("rd_channels", rd_channels)
        self.channels, self.rd_channels, self.subsample = channels, rd_channels, subsample
        self.scale = rd_channels**-0.5 if scale else 1.0
        self.theta = nn.Conv2d(channels, rd_channels, 1)
        self.phi = nn.Conv2d(channels, rd_channels, 1)
        self.g = nn.Conv2d(channels, rd_channels, 1)
        self.w_z = nn.Conv2d(rd_channels, channels, 1)
        self.norm = BatchNorm2d(channels) if use_bn else nn.Identity()
        self.pool = nn.MaxPool2d(2) if subsample else nn.Identity()
        # the block starts as the identity: z = 0 + x
        if use_bn:
            nn.init.zeros_(self.norm.weight)
        else:
            nn.init.zeros_(self.w_z.weight)
            nn.init.zeros_(self.w_z.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        queries = self.theta(x)  # θ(x_i), (B, C', H, W)
        keys, values = self.pool(self.phi(x)), self.pool(self.g(x))  # φ(x_j), g(x_j)
        y, weights = position_self_attention(queries, keys, values, self.scale)  # Eq. (1), (3)
        self.remember(weights)  # (B, HW, HW)
        return self.norm(self.w_z(y)) + x  # Eq. (6): z_i = W_z y_i + x_i

    def _check(self, x: torch.Tensor) -> None:
        """``x``: ``(B, C, H, W)`` with ``C = channels``; ``H``, ``W`` even to subsample."""
        _, _, h, w = check_tensor("x", x, "(B, C, H, W)", C=self.channels)
        if self.subsample and (h % 2 or w % 2):
            raise ValueError(f"subsample needs an even H and W, got shape {shape_str(x)}")


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
    h, w = check_size2("grid", grid)
    check_tensor("weights", weights, "(*B, HW, H'W')")
    if weights.shape[-2:] != (h * w, h * w):
        raise ValueError(
            f"weights must end in (HW, HW) = ({h * w}, {h * w}) for a {h}×{w} grid, "
            f"got {shape_str(weights)}"
        )
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pos = torch.stack([rows.flatten(), cols.flatten()], -1).double()  # (HW, 2)
    dist = torch.cdist(pos, pos).to(weights)  # (HW, HW), in the dtype of the weights
    return (weights * dist).sum(-1)


def relative_position_bias(table: torch.Tensor, length: int) -> torch.Tensor:
    """The bias matrix of a relative position code for a sequence of ``length`` positions.

    ``B[..., i, j] = table[..., (j − i) + L − 1]``: one entry of ``table`` per offset ``j − i``
    from ``−(L − 1)`` to ``L − 1``, the same for every pair at that offset, added to the logits
    ``θ(x_i)ᵀ φ(x_j) + B[i, j]`` (Shaw et al. 2018 add a learned vector per offset to the keys;
    Swin, Liu et al. 2021, Eq. 4, adds a scalar bias like this one, on a 2-D window).

    Args:
        table: ``(*H, 2L − 1)`` biases (e.g. one row per head), offset ``−(L − 1)`` first.
        length: ``L``.

    Returns:
        ``(*H, L, L)``: row ``i`` holds the biases of query ``i`` for every key ``j``.
    """
    n = check_positive_int("length", length)
    check_tensor("table", table, "(*H, K)", K=2 * n - 1)
    offset = torch.arange(n)[None, :] - torch.arange(n)[:, None] + n - 1  # (L, L): j − i + L − 1
    return table[..., offset]
