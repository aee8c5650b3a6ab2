"""Tests of visual_attention.labs.channel: the gated CNN, gate profiles and the gate explorer."""

from __future__ import annotations

import pytest
import torch

from visual_attention import record_attention
from visual_attention.channel import CBAM, EfficientChannelAttention, SqueezeExcitation
from visual_attention.labs.channel import GatedDigitNet, collect_attention, explorer, gate_profile
from visual_attention.train import count_parameters


def _tiny_model():
    from visual_attention.resnet import resnet

    torch.manual_seed(0)
    return resnet(18, num_classes=10, attention="se", width=4, in_channels=1, small_input=True)


def test_gate_profile_collects_every_gate_for_every_image():
    model = _tiny_model()
    x = torch.rand(5, 1, 12, 12)
    profile = gate_profile(model, x, batch_size=2)
    assert list(profile)[0] == "layer1.0.attn" and len(profile) == 8
    assert profile["layer4.1.attn"].shape == (5, 32)
    assert model.training  # restored


def test_collect_attention_matches_one_pass_and_applies_reduce_and_names():
    model = _tiny_model().eval()
    x = torch.rand(5, 1, 12, 12)
    with torch.no_grad(), record_attention(model) as maps:
        model(x)
    model.train()
    every = collect_attention(model, x, batch_size=2)  # 3 batches of 2, 2, 1
    assert list(every) == list(maps) and model.training
    for name, w in maps.items():
        torch.testing.assert_close(every[name], w)
    means = collect_attention(
        model, x, batch_size=3, names=["layer2.0.attn"], reduce=lambda w: w.mean(-1)
    )
    assert list(means) == ["layer2.0.attn"]
    torch.testing.assert_close(means["layer2.0.attn"], maps["layer2.0.attn"].mean(-1))


def test_explorer_views_change_with_every_control():
    from visual_attention.views.widgets import count_views, explorer_view

    model = _tiny_model()
    x, y = torch.rand(3, 1, 12, 12), torch.tensor([1, 2, 3])
    names = {"layer3.1.attn": "stage 3", "layer4.1.attn": "stage 4"}
    ex = explorer(model, x, y, block_names=names)
    assert count_views(ex) == 6
    views = {(i, b): explorer_view(ex, image=i, block=b).value for i in range(3) for b in names}
    assert len(set(views.values())) == 6
    assert all(v.count("data-value=") == 16 for v in views.values())  # at most max_bars bars
    ex = explorer(model, x, y, block_names={"layer1.0.attn": "stage 1"}, max_bars=3)
    assert explorer_view(ex, image=0, block="layer1.0.attn").value.count("data-value=") == 3
    with pytest.raises(ValueError, match="no channel gate named"):
        explorer(model, x, y, block_names={"fc": "head"})


@pytest.mark.parametrize(
    "attention, kind",
    [("se", SqueezeExcitation), ("eca", EfficientChannelAttention), ("cbam", CBAM)],
)
def test_gated_digit_net_puts_one_gate_after_each_stage(attention, kind):
    torch.manual_seed(0)
    model = GatedDigitNet(attention, width=4, num_classes=7).eval()
    assert all(isinstance(getattr(model, f"gate{i}"), kind) for i in (1, 2, 3))
    conv, bn, act = model.stage1
    assert (
        conv.bias is None
        and isinstance(bn, torch.nn.BatchNorm2d)
        and isinstance(act, torch.nn.ReLU)
    )
    x = torch.rand(2, 1, 28, 28)
    with record_attention(model) as maps:
        assert model(x).shape == (2, 7)
    gates = {k: v for k, v in maps.items() if not k.endswith("spatial_gate")}
    assert [tuple(v.shape) for v in gates.values()] == [(2, 4), (2, 8), (2, 16)]


def test_gated_digit_net_plain_has_no_gates_and_rd_ratio_sets_the_bottleneck():
    plain = GatedDigitNet(None, width=16)
    assert count_parameters(GatedDigitNet("se", width=16)) - count_parameters(plain) == sum(
        2 * c * (c // 4) + c // 4 + c for c in (16, 32, 64)
    )
    with pytest.raises(ValueError, match="attention must be one of None, 'se', 'eca', 'cbam'"):
        GatedDigitNet("sk")
    with pytest.raises(ValueError, match=r"x must be \(B, C, H, W\) with C = 1"):
        plain(torch.rand(2, 3, 28, 28))
