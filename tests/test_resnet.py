"""Tests of visual_attention.resnet: the papers' parameter counts, attention placement, recording,
shapes, gradients and validation."""

from __future__ import annotations

import pytest
import torch

from visual_attention import record_attention
from visual_attention.channel import CBAM, EfficientChannelAttention, SqueezeExcitation
from visual_attention.resnet import BasicBlock, Bottleneck, resnet
from visual_attention.train import count_parameters


def params(depth: int = 50, attention=None, **kw) -> int:
    with torch.device("meta"):  # no memory, no initialisation cost
        return count_parameters(resnet(depth, attention=attention, **kw))


# ---------------------------------------------------------------------------------------------
# parameter counts of the papers (to 0.5 %) and of torchvision (exactly)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "depth, attention, millions",
    [
        (50, None, 25.56),  # He et al. 2016; torchvision resnet50
        (50, "se", 28.09),  # Hu et al. 2018, Table 2: SE-ResNet-50
        (50, "cbam", 28.09),  # Woo et al. 2018, Table 5: ResNet50 + CBAM
        (50, "eca", 25.56),  # Wang et al. 2020, Table 2: ECA-Net50
        (101, None, 44.55),
        (101, "se", 49.33),  # Hu et al. 2018, Table 2: SE-ResNet-101
        (18, None, 11.69),
        (34, None, 21.80),
    ],
)
def test_parameter_counts_of_the_papers(depth, attention, millions):
    n = params(depth, attention)
    assert abs(n / 1e6 - millions) / millions < 0.005, n


def test_exact_counts_of_the_reference_implementations():
    assert params(50) == 25_557_032  # torchvision.models.resnet50()
    assert params(18) == 11_689_512  # torchvision.models.resnet18()
    assert params(50, "se") == 28_088_024  # timm seresnet50
    # 16 bottlenecks: 3 at C = 256 (k = 5), 4 at 512 (k = 5), 6 at 1024 (k = 5), 3 at 2048 (k = 7)
    assert params(50, "eca") - params(50) == 3 * 5 + 4 * 5 + 6 * 5 + 3 * 7 == 86 < 100
    # CBAM = SE-sized MLPs + a 7×7×2 convolution and a one-channel BatchNorm per block
    assert params(50, "cbam") - params(50, "se") == 16 * (98 + 2)


def test_shortcut_is_a_strided_projection_with_batch_norm():
    with torch.device("meta"):
        m = resnet(50)
    conv, bn = m.layer2[0].downsample  # torchvision's keys: downsample.0, downsample.1
    assert conv.kernel_size == (1, 1) and conv.stride == (2, 2) and conv.bias is None
    assert isinstance(bn, torch.nn.BatchNorm2d)
    assert isinstance(m.layer2[1].downsample, torch.nn.Identity)


def test_layout_of_resnet50():
    with torch.device("meta"):
        m = resnet(50)
    assert [len(s) for s in (m.layer1, m.layer2, m.layer3, m.layer4)] == [3, 4, 6, 3]
    assert m.conv1.kernel_size == (7, 7) and m.conv1.stride == (2, 2)
    assert isinstance(m.maxpool, torch.nn.MaxPool2d)
    assert isinstance(m.layer1[0], Bottleneck) and m.layer2[0].conv2.stride == (
        2,
        2,
    )  # v1.5: stride on 3×3
    assert m.fc.in_features == 2048


# ---------------------------------------------------------------------------------------------
# where the attention sits
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attention, kind",
    [("se", SqueezeExcitation), ("eca", EfficientChannelAttention), ("cbam", CBAM)],
)
@pytest.mark.parametrize("depth", [18, 50])
def test_every_block_gets_one_attention_module(depth, attention, kind):
    with torch.device("meta"):
        m = resnet(depth, attention=attention)
    blocks = [b for b in m.modules() if isinstance(b, (BasicBlock, Bottleneck))]
    assert len(blocks) == (8 if depth == 18 else 16)
    assert all(isinstance(b.attn, kind) for b in blocks)


@pytest.mark.parametrize("block", [BasicBlock, Bottleneck])
def test_attention_rescales_the_residual_branch_before_the_addition(block):
    """With a gate shut (s ≈ 0) an identity block outputs ReLU(x): only the shortcut survives."""
    torch.manual_seed(0)
    cin = 8 * block.expansion
    b = block(cin, 8, attention="se").eval()
    x = torch.randn(2, cin, 5, 5)
    with torch.no_grad():
        b.attn.fc2.bias.fill_(-1e4)
        assert torch.allclose(b(x), torch.relu(x))
        b.attn.fc2.weight.zero_()
        b.attn.fc2.bias.fill_(1e4)  # gate ≈ 1: the block without attention
        plain = block(cin, 8).eval()
        plain.load_state_dict(
            {k: v for k, v in b.state_dict().items() if not k.startswith("attn.")}
        )
        assert torch.allclose(b(x), plain(x), atol=1e-6)


def test_gates_are_recorded_for_every_block():
    torch.manual_seed(0)
    m = resnet(18, num_classes=10, attention="se", width=4, in_channels=1, small_input=True).eval()
    with record_attention(m) as maps:
        m(torch.rand(3, 1, 16, 16))
    assert list(maps) == [f"layer{i}.{j}.attn" for i in range(1, 5) for j in range(2)]
    assert [maps[f"layer{i}.0.attn"].shape for i in range(1, 5)] == [
        (3, 4),
        (3, 8),
        (3, 16),
        (3, 32),
    ]


def test_cbam_records_channel_and_spatial_gates():
    torch.manual_seed(0)
    m = resnet(
        18, num_classes=10, attention="cbam", width=4, in_channels=1, small_input=True
    ).eval()
    with record_attention(m) as maps:
        m(torch.rand(2, 1, 16, 16))
    assert maps["layer1.0.attn.channel_gate"].shape == (2, 4)
    assert maps["layer2.0.attn.spatial_gate"].shape == (2, 1, 8, 8)


# ---------------------------------------------------------------------------------------------
# forward passes, gradients
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attention", [None, "se", "eca", "cbam", "sk"])
@pytest.mark.parametrize("depth", [18, 50])
def test_small_models_run(depth, attention):
    torch.manual_seed(0)
    m = resnet(depth, num_classes=7, attention=attention, width=4, in_channels=1, small_input=True)
    out = m(torch.rand(2, 1, 16, 16))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_sk_resnet50_builds_and_runs_once():
    from visual_attention.branch import SelectiveKernel

    torch.manual_seed(0)
    m = resnet(50, num_classes=10, attention="sk").eval()
    assert sum(isinstance(x, SelectiveKernel) for x in m.modules()) == 16
    with record_attention(m) as maps, torch.no_grad():
        out = m(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 10) and torch.isfinite(out).all()
    assert maps["layer1.0.conv2"].shape == (1, 2, 64)  # branch weights (B, M, C)


def test_imagenet_resnet50_on_a_tiny_input():
    torch.manual_seed(0)
    m = resnet(50, attention="se").eval()
    with torch.no_grad():
        out = m(torch.rand(1, 3, 32, 32))  # 32 → 1 after the stride-32 network
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_small_input_stem_keeps_the_resolution():
    m = resnet(18, width=4, in_channels=1, small_input=True)
    assert m.forward_features(torch.rand(1, 1, 16, 16)).shape == (1, 32, 2, 2)
    m = resnet(18, width=4, in_channels=1)
    assert m.forward_features(torch.rand(1, 1, 64, 64)).shape == (1, 32, 2, 2)


def test_gradcheck_tiny_se_resnet():
    torch.manual_seed(0)
    m = (
        resnet(18, num_classes=3, attention="se", width=2, in_channels=1, small_input=True)
        .double()
        .eval()
    )
    x = torch.rand(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,))


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"depth": 42}, "depth must be one of 18, 34, 50, 101, got 42"),
        (
            {"attention": "nonlocal"},
            "attention must be one of None, 'se', 'eca', 'cbam', 'sk', got 'nonlocal'",
        ),
        ({"width": 0}, "width must be a positive integer, got 0"),
        ({"num_classes": 2.5}, "num_classes must be a positive integer, got 2.5"),
        ({"in_channels": True}, "in_channels must be a positive integer, got True"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        resnet(**kwargs)


@pytest.mark.parametrize(
    "x, match",
    [
        (
            torch.rand(1, 3, 16, 16),
            r"x must be \(B, C, H, W\) with C = 1, got shape \(1, 3, 16, 16\)",
        ),
        (torch.rand(1, 16, 16), r"must be 4-d \(B, C, H, W\)"),
        (torch.zeros(1, 1, 16, 16, dtype=torch.uint8), "floating-point"),
    ],
)
def test_bad_inputs_are_rejected(x, match):
    m = resnet(18, width=2, in_channels=1, small_input=True)
    with pytest.raises(ValueError, match=match):
        m(x)
