"""Branch attention: Selective Kernel convolution.

X. Li, W. Wang, X. Hu, J. Yang, "Selective Kernel Networks", CVPR 2019 (SKNet).

A Selective Kernel (SK) unit runs the same input through ``M`` parallel convolutions with different
receptive fields (3×3 and 5×5 by default) and lets the input decide, channel by channel, how much
of each branch to keep. Three steps, in the paper's words:

* **Split** (Eq. 1): ``U_m = ReLU(BN(conv_m(X)))`` for each branch ``m``; the 5×5 branch is a 3×3
  convolution with dilation 2 (same receptive field, fewer parameters), as in the paper and its
  reference code; the convolutions are grouped (``G = 32`` in the paper).
* **Fuse** (Eq. 1-4): ``U = Σ_m U_m``; ``s = GAP(U)`` ``(B, C)``;
  ``z = ReLU(BN(W s))`` ``(B, d)`` with ``d = max(C / r, L)``, ``r = 16``, ``L = 32``.
* **Select** (Eq. 5-6): logits ``A_m z`` per branch, a softmax *across the branches* for every
  channel ``c``: ``a_mc = exp(A_mc z) / Σ_m' exp(A_m'c z)``, and ``V = Σ_m a_m ⊙ U_m``.

The branch weights ``a`` ``(B, M, C)`` are this chapter's attention weights;
:class:`SelectiveKernel` records them (``with record_attention(model) as maps: model(x)``).

Related: Inception (Szegedy et al., CVPR 2015) runs branches of several kernel sizes but
    concatenates them with fixed weights; ResNeSt's split attention (Zhang et al., CVPRW 2022)
    applies the same softmax across the splits of a grouped convolution; CondConv (Yang et al.,
    NeurIPS 2019) and dynamic convolution (Chen et al., CVPR 2020) mix kernels instead of outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ._checks import check_bool, check_positive_int, check_tensor
from .blocks import BatchNorm2d, conv_bn_act
from .channel import make_rd_channels
from .core import AttentionModule, masked_softmax

__all__ = [
    "sk_rd_channels",
    "default_groups",
    "fuse_branches",
    "select_branches",
    "SelectiveKernel",
]


def sk_rd_channels(channels: int, rd_ratio: float = 1 / 16, min_rd_channels: int = 32) -> int:
    """The width ``d`` of SKNet's compact feature ``z`` (Li et al. 2019, Eq. 4): ``d = max(C / r,
    L)``.

    ``rd_ratio`` is ``1 / r`` and ``min_rd_channels`` is ``L``: a floor that keeps ``z`` from
    becoming too narrow to describe the image when ``C`` is small. ``C / r`` is rounded down, as in
    the reference code (``int(features / r)``): the book's one rounding rule,
    :func:`visual_attention.channel.make_rd_channels`, with SKNet's floor ``L = 32``.

    >>> sk_rd_channels(64), sk_rd_channels(1024), sk_rd_channels(100, 1 / 8, min_rd_channels=8)
    (32, 64, 12)
    """
    return make_rd_channels(channels, rd_ratio, min_rd_channels=min_rd_channels)


def default_groups(in_channels: int, out_channels: int, max_groups: int = 32) -> int:
    """The largest divisor of ``max_groups`` that divides both channel counts (SKNet uses ``G =
    32``).

    ``default_groups(64, 64) == 32``, ``default_groups(16, 32) == 16``, ``default_groups(3, 16) ==
    1``.
    """
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        check_positive_int(name, value)
    return math.gcd(check_positive_int("max_groups", max_groups), in_channels, out_channels)


def fuse_branches(branches: torch.Tensor) -> torch.Tensor:
    """SKNet's fuse step before the fully connected layer (Eq. 1-2): ``s = GAP(Σ_m U_m)``.

    Args:
        branches: ``(B, M, C, H, W)``, the outputs ``U_m`` of the ``M`` branches.

    Returns:
        ``s`` ``(B, C)``: the sum of the branches, averaged over the ``H × W`` positions.
    """
    check_tensor("branches", branches, "(B, M, C, H, W)")
    u = branches.sum(dim=1)  # U = Σ_m U_m, Eq. 1: (B, C, H, W)
    return u.mean(dim=(-2, -1))  # s = GAP(U), Eq. 2: (B, C)


def select_branches(branches: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """SKNet's select step (Eq. 6): ``V = Σ_m a_m ⊙ U_m``, one weight per branch and channel.

    Args:
        branches: ``(B, M, C, H, W)``, the branch outputs ``U_m``.
        weights: ``(B, M, C)``, the branch weights ``a`` (a softmax across ``M``).

    Returns:
        ``V`` ``(B, C, H, W)``.
    """
    _check_branches_and_weights(branches, weights)
    return (branches * weights[..., None, None]).sum(dim=1)  # V = Σ_m a_m ⊙ U_m, Eq. 6


def _check_branches_and_weights(branches: torch.Tensor, weights: torch.Tensor) -> None:
    """``branches`` ``(B, M, C, H, W)`` and ``weights`` ``(B, M, C)`` of the same ``B, M, C``."""
    b, m, c, _, _ = check_tensor("branches", branches, "(B, M, C, H, W)")
    check_tensor("weights", weights, "(B, M, C)", B=b, M=m, C=c)


class SelectiveKernel(AttentionModule):
    """Selective Kernel convolution (Li et al., "Selective Kernel Networks", CVPR 2019, Eq. 1-6).

    A drop-in replacement for a ``conv 3×3 → BN → ReLU`` (e.g. the middle convolution of a ResNet
    bottleneck): ``SelectiveKernel(in_channels, out_channels, stride=stride)``.

    * split: branch ``m`` is ``conv → BN → ReLU`` with kernel ``kernel_sizes[m]``; with ``dilate``
      a ``k × k`` kernel is a 3×3 convolution with dilation ``(k - 1) / 2`` (5×5: dilation 2);
    * fuse: ``s = GAP(Σ_m U_m)`` ``(B, C)``, ``z = ReLU(BN(W s))`` ``(B, d)``,
      ``d = max(C·rd_ratio, L)``;
    * select: logits ``A_m z`` ``(B, M, C)``, softmax across the ``M`` branches,
      ``V = Σ_m a_m ⊙ U_m``.

    ``W`` and the ``A_m`` are bias-free 1×1 convolutions (fully connected layers on ``s``), as in
    the reference code.

    Args:
        in_channels: channels of the input ``C_in``.
        out_channels: channels ``C`` of every branch and of the output (default ``in_channels``).
        stride: stride of every branch's convolution.
        kernel_sizes: the receptive field of each branch, odd integers, at least two.
        dilate: realise a ``k × k`` kernel as a dilated 3×3 convolution (the paper's choice).
        groups: groups of the branch convolutions; ``None`` gives the largest divisor of 32 that
            divides both channel counts (32 for ``C = 64``, the paper's ``G``).
        rd_ratio: ``1 / r`` of Eq. 4.
        min_rd_channels: ``L`` of Eq. 4.
        rd_channels: set ``d`` directly instead of by ``max(C·rd_ratio, L)``.
        act_layer: activation of the branches and of ``z``.

    Shapes:
        input ``(B, C_in, H, W)`` → output ``(B, C, H', W')``, ``H' = ⌊(H - 1) / stride⌋ + 1``.

    Records:
        the branch weights ``a`` ``(B, M, C)``: non-negative, summing to 1 over the branches (dim
        1), in the order of ``kernel_sizes``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        stride: int = 1,
        kernel_sizes: Sequence[int] = (3, 5),
        dilate: bool = True,
        groups: int | None = None,
        rd_ratio: float = 1 / 16,
        min_rd_channels: int = 32,
        rd_channels: int | None = None,
        act_layer: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        check_positive_int("stride", stride)
        kernel_sizes = _check_kernel_sizes(kernel_sizes, dilate)
        groups = default_groups(in_channels, out_channels) if groups is None else groups
        check_positive_int("groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups must be a positive integer dividing in_channels={in_channels} and "
                f"out_channels={out_channels}, got {groups!r}"
            )
        if rd_channels is None:
            rd_channels = sk_rd_channels(out_channels, rd_ratio, min_rd_channels)
        check_positive_int("rd_channels", rd_channels)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.kernel_sizes, self.groups, self.rd_channels = kernel_sizes, groups, rd_channels
        self.num_branches = len(kernel_sizes)

        # [start-sk-layers]
        def branch(k: int) -> nn.Sequential:  # "same" padding: every branch has the same H', W'
            size, dilation = (3, (k - 1) // 2) if dilate else (k, 1)
            return conv_bn_act(
                in_channels,
                out_channels,
                size,
                stride,
                groups,
                bias=False,
                dilation=dilation,
                act_layer=act_layer,
            )

        self.branches = nn.ModuleList(branch(k) for k in kernel_sizes)
        # fuse: z = δ(B(W s)), W: C -> d (Eq. 4); select: A_m: d -> C for every branch (Eq. 5)
        self.fc_reduce = nn.Conv2d(out_channels, rd_channels, 1, bias=False)
        self.bn = BatchNorm2d(rd_channels)
        self.act = act_layer()
        self.fc_select = nn.Conv2d(rd_channels, out_channels * self.num_branches, 1, bias=False)
        # [end-sk-layers]

    def branch_logits(self, s: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` global descriptor ``s`` → ``(B, M, C)`` logits ``A_m z`` (Eq. 4-5)."""
        z = self.act(self.bn(self.fc_reduce(s[..., None, None])))  # z = δ(B(W s)), Eq. 4: (B, d)
        return self.fc_select(z).reshape(s.shape[0], self.num_branches, self.out_channels)  # Eq. 5

    # fmt: off
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` → ``(B, C, H', W')``; records the branch weights ``(B, M, C)``."""
        check_tensor("x", x, "(B, C, H, W)", C=self.in_channels)
        u = torch.stack([branch(x) for branch in self.branches], dim=1)  # split: (B, M, C, H', W')
        s = fuse_branches(u)                                              # fuse: (B, C)
        weights = masked_softmax(self.branch_logits(s), dim=1)            # across M: (B, M, C)
        return select_branches(u, self.remember(weights))                 # select: (B, C, H', W')
    # fmt: on

    def extra_repr(self) -> str:
        sizes, groups, rd = self.kernel_sizes, self.groups, self.rd_channels
        return f"kernel_sizes={sizes}, groups={groups}, rd_channels={rd}"


def _check_kernel_sizes(kernel_sizes: Sequence[int], dilate: bool) -> tuple[int, ...]:
    """At least two odd kernel sizes, each ≥ 3 with ``dilate`` (a dilated 3×3) and ≥ 1 without."""
    check_bool("dilate", dilate)
    if not isinstance(kernel_sizes, Sequence) or isinstance(kernel_sizes, str):
        raise ValueError(f"kernel_sizes must be a sequence of odd integers, got {kernel_sizes!r}")
    kernel_sizes, smallest = tuple(kernel_sizes), 3 if dilate else 1
    if len(kernel_sizes) < 2:
        raise ValueError(f"kernel_sizes must name at least two branches, got {kernel_sizes!r}")
    for k in kernel_sizes:
        if isinstance(k, bool) or not isinstance(k, int) or k < smallest or k % 2 == 0:
            raise ValueError(
                f"kernel_sizes must be odd integers >= {smallest}"
                f"{' (dilate=True)' if dilate else ''}, got {kernel_sizes!r}"
            )
    return kernel_sizes
