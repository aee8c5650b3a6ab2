"""A ResNet builder with a slot for channel or branch attention in every residual block.

K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(Table 1), in torchvision's layout ("ResNet v1.5": the stride of a bottleneck sits on its 3 × 3
convolution; the layers keep torchvision's names), written out here so that the attention modules
of the book can be placed where their papers put them:

* ``"se"`` — Squeeze-and-Excitation (Hu et al., CVPR 2018, Fig. 3), ``"eca"`` — ECA (Wang et al.,
  CVPR 2020, Fig. 2) and ``"cbam"`` — CBAM (Woo et al., ECCV 2018, Fig. 3) rescale the output of
  the residual branch, after its last BatchNorm and *before* it is added to the identity shortcut;
* ``"sk"`` — Selective Kernel (Li et al., "Selective Kernel Networks", CVPR 2019, Table 1) replaces
  the 3 × 3 convolution of each block by an SK convolution
  (:class:`visual_attention.branch.SelectiveKernel`).

``resnet(50)`` has the 25.56 M parameters of torchvision's ``resnet50``;
``resnet(50, attention="se")`` the 28.09 M of SE-ResNet-50 (Hu et al., Table 2) and
``attention="cbam"`` the 28.09 M of ResNet-50 + CBAM (Woo et al., Table 5); ECA adds 86 parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_bool, check_choice, check_int_sequence, check_positive_int, check_tensor
from .blocks import BatchNorm2d, conv_bn_act
from .branch import SelectiveKernel
from .channel import make_channel_attention

__all__ = [
    "ATTENTIONS",
    "DEPTHS",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "resnet",
    "make_attention",
]

#: Values accepted by ``attention=``.
ATTENTIONS = (None, "se", "eca", "cbam", "sk")

#: Supported depths: (block type, blocks per stage), He et al. 2016, Table 1.
DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}


def make_attention(attention: str | None, channels: int) -> nn.Module:
    """The module that rescales a residual branch of ``channels`` channels.

    SE, ECA or CBAM (:func:`visual_attention.channel.make_channel_attention`); ``nn.Identity`` for
    ``None`` and for ``"sk"``, whose attention sits inside the 3 × 3 convolution instead.
    """
    check_choice("attention", attention, ATTENTIONS)
    return make_channel_attention(None if attention == "sk" else attention, channels)


def _conv3x3(
    attention: str | None, in_channels: int, out_channels: int, stride: int
) -> tuple[nn.Module, nn.Module]:
    """The block's 3 × 3 convolution and the norm after it: an SK convolution (which normalises its
    own branches) and an identity, or a plain convolution and a BatchNorm."""
    if attention == "sk":
        return SelectiveKernel(in_channels, out_channels, stride=stride), nn.Identity()
    conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
    return conv, BatchNorm2d(out_channels)


class BasicBlock(nn.Module):
    """Two 3 × 3 convolutions with a shortcut (He et al. 2016, Fig. 5 left), for ResNet-18/34.

    ``out = ReLU(A(BN(conv(ReLU(BN(conv(x)))))) + shortcut(x))`` where ``A`` is the attention
    module (identity if none). With ``"sk"`` the first 3 × 3 convolution is an SK convolution.
    """

    expansion = 1

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, attention: str | None = None
    ) -> None:
        super().__init__()
        _check_block(in_channels, planes, stride, attention)
        self.in_channels, out_channels = in_channels, planes * self.expansion
        self.conv1, self.bn1 = _conv3x3(attention, in_channels, planes, stride)
        self.conv2 = nn.Conv2d(planes, out_channels, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(out_channels)
        self.attn = make_attention(attention, out_channels)
        self.act = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, "(B, C, H, W)", C=self.in_channels)
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self.attn(out)  # SE / ECA / CBAM: on the residual branch, before the addition
        return self.act(out + self.downsample(x))


class Bottleneck(nn.Module):
    """1 × 1 reduce, 3 × 3 (carrying the stride), 1 × 1 expand ×4, with a shortcut (He et al. 2016,
    Fig. 5 right), for ResNet-50/101.

    ``out = ReLU(A(BN(conv1x1(ReLU(BN(conv3x3(ReLU(BN(conv1x1(x))))))))) + shortcut(x))`` where
    ``A`` is the attention module (identity if none). With ``"sk"`` the 3 × 3 convolution is an SK
    convolution.
    """

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, attention: str | None = None
    ) -> None:
        super().__init__()
        _check_block(in_channels, planes, stride, attention)
        self.in_channels, out_channels = in_channels, planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv3x3(attention, planes, planes, stride)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = BatchNorm2d(out_channels)
        self.attn = make_attention(attention, out_channels)
        self.act = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, "(B, C, H, W)", C=self.in_channels)
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = self.attn(out)  # SE / ECA / CBAM: on the residual branch, before the addition
        return self.act(out + self.downsample(x))


def _check_block(in_channels: object, planes: object, stride: object, attention: object) -> None:
    """Validate the arguments of a residual block."""
    check_positive_int("in_channels", in_channels)
    check_positive_int("planes", planes)
    check_positive_int("stride", stride)
    check_choice("attention", attention, ATTENTIONS)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity, or a strided 1 × 1 projection + BN where the shape changes (He et al.'s option
    B)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return conv_bn_act(in_channels, out_channels, 1, stride=stride, bias=False, act_layer=None)


class ResNet(nn.Module):
    """Stem → four stages of residual blocks → global average pooling → linear classifier.

    Stage ``i`` has ``width · 2^i`` planes (×4 channels out for bottlenecks); stages 2-4 halve the
    resolution. The ImageNet stem is a 7 × 7 stride-2 convolution and a 3 × 3 stride-2 max pooling
    (``/4``); ``small_input`` uses a 3 × 3 stride-1 convolution without pooling, for images of a
    few dozen pixels. Shapes: ``(B, in_channels, H, W) → (B, num_classes)`` logits.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, ...],
        num_classes: int = 1000,
        attention: str | None = None,
        width: int = 64,
        in_channels: int = 3,
        small_input: bool = False,
    ) -> None:
        super().__init__()
        if not (isinstance(block, type) and issubclass(block, (BasicBlock, Bottleneck))):
            raise ValueError(f"block must be BasicBlock or Bottleneck, got {block!r}")
        check_int_sequence("layers", layers, length=4)
        check_positive_int("width", width)
        check_positive_int("num_classes", num_classes)
        check_bool("small_input", small_input)
        check_positive_int("in_channels", in_channels)
        check_choice("attention", attention, ATTENTIONS)
        self.in_channels = in_channels
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.bn1 = BatchNorm2d(width)
        self.act = nn.ReLU(inplace=True)
        channels = width
        stages: list[nn.Module] = []
        for i, n in enumerate(layers):
            planes = width * 2**i
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(channels, planes, stride, attention))
                channels = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.num_features = channels
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` → the last stage's feature map ``(B, num_features, h,
        w)``."""
        check_tensor("x", x, "(B, C, H, W)", C=self.in_channels)
        x = self.maxpool(self.act(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.forward_features(x)).flatten(1))


def resnet(
    depth: int = 50,
    num_classes: int = 1000,
    attention: str | None = None,
    width: int = 64,
    in_channels: int = 3,
    small_input: bool = False,
) -> ResNet:
    """Build ResNet-``depth`` (18, 34, 50 or 101) with optional attention in every block.

    Args:
        depth: 18 or 34 (basic blocks) or 50 or 101 (bottlenecks), He et al. 2016, Table 1.
        num_classes: outputs of the classifier.
        attention: ``None``, ``"se"``, ``"eca"``, ``"cbam"`` or ``"sk"`` (see the module
            docstring).
        width: planes of the first stage (64 in the paper); the stages have ``width · (1, 2, 4,
            8)``.
        in_channels: channels of the input images.
        small_input: 3 × 3 stride-1 stem without max pooling, for small images.

    Returns:
        a :class:`ResNet`; ``(B, in_channels, H, W) → (B, num_classes)``.
    """
    check_choice("depth", depth, sorted(DEPTHS))
    check_choice("attention", attention, ATTENTIONS)
    check_positive_int("num_classes", num_classes)
    check_positive_int("width", width)
    check_positive_int("in_channels", in_channels)
    kind, layers = DEPTHS[depth]
    block = BasicBlock if kind == "basic" else Bottleneck
    return ResNet(block, layers, num_classes, attention, width, in_channels, small_input)
