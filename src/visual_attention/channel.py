"""Channel attention: gates that decide *what* a feature map should emphasise.

A convolutional feature map ``(B, C, H, W)`` holds ``C`` channels, each the response of one learned
feature detector. Channel attention computes one number in ``(0, 1)`` per channel *from the input
itself* and rescales the channel by it: detectors useful for this image are turned up, the others
down.

* :class:`SqueezeExcitation` — J. Hu, L. Shen, G. Sun, "Squeeze-and-Excitation Networks", CVPR
  2018; journal version J. Hu, L. Shen, S. Albanie, G. Sun, E. Wu, TPAMI 2020 (whose section
  numbers the book cites), Eq. (2)-(4): global average pooling, a bottleneck of two fully
  connected layers, a sigmoid.
* :class:`EfficientChannelAttention` — Q. Wang et al., "ECA-Net: Efficient Channel Attention for
  Deep Convolutional Neural Networks", CVPR 2020, Sec. 3.2: global average pooling, a 1-D
  convolution across neighbouring channels (``ω = σ(C1D_k(y))``) with the adaptive kernel size of
  Eq. (12), a sigmoid.
* :class:`ChannelGate` and :class:`CBAM` — S. Woo, J. Park, J.-Y. Lee, I. S. Kweon, "CBAM:
  Convolutional Block Attention Module", ECCV 2018, Eq. (1)-(3): a shared MLP over the average-
  *and* max-pooled descriptors, then CBAM's spatial gate
  (:class:`visual_attention.spatial.SpatialGate`).

Every gate records its weights, the gate values ``(B, C)``, with
:meth:`visual_attention.core.AttentionModule.remember`. The layer order, pooling, biases and
default reductions follow the authors' reference code (``hujie-frank/SENet``, ``BangguWu/ECANet``,
``Jongchan/attention-module``) and timm's ``squeeze_excite.py``, ``eca.py`` and ``cbam.py``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._checks import (
    check_choice,
    check_int_or_none,
    check_number,
    check_odd_int,
    check_positive_int,
    check_positive_number,
    check_tensor,
)
from .blocks import Mlp
from .core import AttentionModule
from .spatial import SpatialGate

__all__ = [
    "make_rd_channels",
    "eca_kernel_size",
    "SqueezeExcitation",
    "EfficientChannelAttention",
    "ChannelGate",
    "CBAM",
    "make_channel_attention",
]


def make_rd_channels(
    channels: int,
    rd_ratio: float = 1 / 16,
    rd_channels: int | None = None,
    min_rd_channels: int = 1,
) -> int:
    """Hidden width of a reduction bottleneck, the book's one rounding rule for reduced widths.

    ``rd_channels`` if given, else ``max(⌊C · rd_ratio⌋, min_rd_channels)``: rounded down, as in
    the reference code of SENet (``planes / r``), CBAM and SKNet (``int(features / r)``). SENet
    writes the reduction as ``r`` and the hidden width as ``C / r`` (Hu et al. 2018, Sec. 3.2,
    ``r = 16``); CBAM uses the same ``r = 16``; SKNet's ``d = max(C / r, L)`` (Li et al. 2019,
    Eq. 4) sets ``min_rd_channels = L`` (see :func:`visual_attention.branch.sk_rd_channels`).
    ``rd_ratio = 1 / r``.

    >>> make_rd_channels(256), make_rd_channels(48), make_rd_channels(64, min_rd_channels=32)
    (16, 3, 32)
    """
    check_positive_int("channels", channels)
    check_positive_number("rd_ratio", rd_ratio)
    check_positive_int("min_rd_channels", min_rd_channels)
    if check_int_or_none("rd_channels", rd_channels) is not None:
        return rd_channels
    # + 1e-9: 48 · (1/16) must give 3, not ⌊2.999…⌋ = 2
    return max(math.floor(channels * rd_ratio + 1e-9), min_rd_channels)


def eca_kernel_size(channels: int, gamma: float = 2, beta: float = 1) -> int:
    """ECA's adaptive kernel size ``k = |log2(C) / γ + b / γ|_odd`` (Wang et al. 2020, Eq. 12).

    As in the reference code: ``t = int(|(log2 C + b) / γ|)``, then ``k = t`` if ``t`` is odd
    else ``t + 1`` (so C = 64 → 3, 256 → 5, 2048 → 7 with the defaults γ = 2, b = 1).
    """
    check_positive_int("channels", channels)
    check_positive_number("gamma", gamma)
    check_number("beta", beta)
    # [start-eca-kernel-size]
    t = int(abs((math.log2(channels) + beta) / gamma))  # |log2(C) / γ + b / γ|, Eq. 12
    return t if t % 2 else t + 1  # the nearest odd number (upwards)
    # [end-eca-kernel-size]


class SqueezeExcitation(AttentionModule):
    """Squeeze-and-Excitation block (Hu et al., CVPR 2018, Eq. 2-4).

    * squeeze: ``z = GAP(x)``, the mean of each channel over ``H × W`` (Eq. 2), ``(B, C)``;
    * excitation: ``s = σ(W₂ δ(W₁ z))`` with ``W₁ ∈ R^{C/r × C}``, ``W₂ ∈ R^{C × C/r}``, ``δ`` =
      ReLU, ``σ`` = sigmoid (Eq. 3); both fully connected layers carry a bias, as in the reference
      code;
    * scale: ``x̃_c = s_c · x_c`` (Eq. 4).

    The fully connected layers are 1 × 1 convolutions on the pooled ``(B, C, 1, 1)`` tensor (as in
    timm), which have exactly the parameters of ``nn.Linear``: ``2 · C · C/r + C/r + C``.

    Args:
        channels: ``C``.
        rd_ratio: ``1 / r``; the hidden width is ``⌊C / r⌋`` (paper: ``r = 16``).
        rd_channels: hidden width, overriding ``rd_ratio``.

    Shapes: ``(B, C, H, W) → (B, C, H, W)``. Records the gate ``s`` as ``(B, C)``.
    """

    def __init__(
        self, channels: int, rd_ratio: float = 1 / 16, rd_channels: int | None = None
    ) -> None:
        super().__init__()
        rd = make_rd_channels(channels, rd_ratio, rd_channels)
        self.channels = channels
        self.fc1 = nn.Conv2d(channels, rd, kernel_size=1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd, channels, kernel_size=1, bias=True)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The excitation ``s = σ(W₂ δ(W₁ GAP(x)))``, shape ``(B, C)``."""
        z = x.mean(dim=(2, 3), keepdim=True)  # squeeze: (B, C, 1, 1)
        return torch.sigmoid(self.fc2(self.act(self.fc1(z)))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, "(B, C, H, W)", C=self.channels)
        s = self.remember(self.gate(x))  # squeeze and excitation, Eq. 2-3: (B, C)
        return x * s[:, :, None, None]  # scale, Eq. 4


class EfficientChannelAttention(AttentionModule):
    """Efficient Channel Attention (Wang et al., CVPR 2020, Sec. 3.2).

    ``y = GAP(x)`` ``(B, C)``; ``ω = σ(C1D_k(y))`` where ``C1D_k`` is one 1-D convolution of kernel
    size ``k`` *across the channel axis*, without bias, zero-padded so that it keeps ``C`` values
    (Sec. 3.2.2): each channel's gate looks only at its ``k`` neighbours, with ``k`` weights shared
    by all channels, instead of SE's dimensionality-reducing bottleneck. ``k`` adapts to ``C`` (Eq.
    12, see :func:`eca_kernel_size`) unless ``kernel_size`` is given. Output ``x̃_c = ω_c · x_c``.

    Args:
        channels: ``C``.
        gamma, beta: ``γ`` and ``b`` of Eq. (12) (paper: 2 and 1).
        kernel_size: odd ``k``, overriding the adaptive rule.

    Shapes: ``(B, C, H, W) → (B, C, H, W)``. Records the gate ``ω`` as ``(B, C)``.
    """

    def __init__(
        self, channels: int, gamma: float = 2, beta: float = 1, kernel_size: int | None = None
    ) -> None:
        super().__init__()
        k = eca_kernel_size(channels, gamma, beta) if kernel_size is None else kernel_size
        self.channels = channels
        self.kernel_size = check_odd_int("kernel_size", k)
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The gate ``ω = σ(C1D_k(GAP(x)))``, shape ``(B, C)``."""
        y = x.mean(dim=(2, 3))  # (B, C)
        return torch.sigmoid(self.conv(y[:, None, :])[:, 0])  # channels as a 1-D signal: (B, 1, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, "(B, C, H, W)", C=self.channels)
        w = self.remember(self.gate(x))  # ω = σ(C1D_k(y)), Sec. 3.2.2: (B, C)
        return x * w[:, :, None, None]  # x̃_c = ω_c · x_c


class ChannelGate(AttentionModule):
    """CBAM's channel attention (Woo et al., ECCV 2018, Eq. 2).

    ``M_c(F) = σ(MLP(AvgPool(F)) + MLP(MaxPool(F)))``: the *same* MLP (``Linear(C, C/r) → ReLU →
    Linear(C/r, C)``, with biases, as in the reference code) is applied to the average-pooled and
    to the max-pooled descriptors, the two outputs are summed, then squashed by a sigmoid. Max
    pooling adds a cue SE lacks: the most distinctive response of each detector, not only its mean.
    Output ``F' = M_c(F) ⊗ F`` (Eq. 1).

    Args:
        channels: ``C``.
        rd_ratio: ``1 / r`` (paper: ``r = 16``).
        rd_channels: hidden width, overriding ``rd_ratio``.

    Shapes: ``(B, C, H, W) → (B, C, H, W)``. Records the gate ``M_c`` as ``(B, C)``.
    """

    def __init__(
        self, channels: int, rd_ratio: float = 1 / 16, rd_channels: int | None = None
    ) -> None:
        super().__init__()
        rd = make_rd_channels(channels, rd_ratio, rd_channels)
        self.channels = channels
        self.mlp = Mlp(channels, rd, act_layer=nn.ReLU)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The gate ``M_c = σ(MLP(avg) + MLP(max))``, shape ``(B, C)``."""
        avg = x.mean(dim=(2, 3))  # (B, C)
        peak = x.amax(dim=(2, 3))  # (B, C)
        return torch.sigmoid(self.mlp(avg) + self.mlp(peak))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, "(B, C, H, W)", C=self.channels)
        m = self.remember(self.gate(x))  # M_c(F), Eq. 2: (B, C)
        return x * m[:, :, None, None]  # F' = M_c(F) ⊗ F, Eq. 1


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al., ECCV 2018, Eq. 1).

    ``F' = M_c(F) ⊗ F`` then ``F'' = M_s(F') ⊗ F'``: channel attention first (*what*), then spatial
    attention (*where*) on the refined map — the sequential, channel-first order the paper found
    best (its Table 3, against spatial-first and parallel). ``M_c`` is :class:`ChannelGate`;
    ``M_s`` is :class:`visual_attention.spatial.SpatialGate` (channel-wise average and max maps →
    ``k × k`` convolution → BatchNorm → sigmoid).

    Args:
        channels: ``C``.
        rd_ratio: ``1 / r`` of the channel gate's MLP (paper: ``r = 16``).
        kernel_size: ``k`` of the spatial gate (paper: 7).

    Shapes: ``(B, C, H, W) → (B, C, H, W)``. The block itself records nothing; its two gates do:
    ``<name>.channel_gate`` records ``(B, C)`` and ``<name>.spatial_gate`` ``(B, 1, H, W)``.
    """

    def __init__(self, channels: int, rd_ratio: float = 1 / 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel_gate = ChannelGate(channels, rd_ratio)
        self.spatial_gate = SpatialGate(kernel_size=kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial_gate(self.channel_gate(x))  # F'' = M_s(F') ⊗ F', F' = M_c(F) ⊗ F


def make_channel_attention(
    attention: str | None, channels: int, rd_ratio: float = 1 / 16
) -> nn.Module:
    """``None`` → ``nn.Identity``; ``"se"``, ``"eca"``, ``"cbam"`` → that module for
    ``channels``."""
    check_choice("attention", attention, (None, "se", "eca", "cbam"))
    if attention == "se":
        return SqueezeExcitation(channels, rd_ratio)
    if attention == "eca":
        return EfficientChannelAttention(channels)
    if attention == "cbam":
        return CBAM(channels, rd_ratio)
    return nn.Identity()
