"""Tests of visual_attention.labs.spatial: the chapter's small CNN and its map explorer."""

from __future__ import annotations

import re

import pytest
import torch

from visual_attention.core import record_attention
from visual_attention.labs.spatial import ClutteredDigitNet, spatial_map_explorer
from visual_attention.spatial import attention_mass_in_box
from visual_attention.train import count_parameters


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# the chapter's network
# ---------------------------------------------------------------------------------------------


def test_cluttered_digit_net_shapes_and_recorded_maps():
    x = torch.rand(3, 1, 40, 40, generator=gen(14))
    model = ClutteredDigitNet(gate=True, pool="query", width=4).eval()
    with record_attention(model) as maps:
        logits = model(x)
    assert logits.shape == (3, 10)
    assert {k: tuple(v.shape) for k, v in maps.items()} == {
        "gate2": (3, 1, 20, 20),
        "gate3": (3, 1, 10, 10),
        "pool": (3, 10, 10),
    }
    plain = ClutteredDigitNet(width=4)
    assert count_parameters(model) - count_parameters(plain) == 2 * (2 * 49 + 2) + 16
    with record_attention(plain) as maps:
        plain(x)
    assert maps == {}


def test_cluttered_digit_net_stages_are_conv_bn_relu_without_bias():
    model = ClutteredDigitNet(width=4, num_classes=7)
    conv, bn, act = model.stage2
    assert isinstance(conv, torch.nn.Conv2d) and conv.bias is None and conv.padding == (1, 1)
    assert isinstance(bn, torch.nn.BatchNorm2d) and isinstance(act, torch.nn.ReLU)
    assert model.fc.out_features == 7
    assert model(torch.rand(2, 1, 40, 40)).shape == (2, 7)


def test_cluttered_digit_net_validation():
    with pytest.raises(ValueError, match="pool must be one of 'avg', 'query', got 'max'"):
        ClutteredDigitNet(pool="max")
    with pytest.raises(
        ValueError, match=r"x must be \(B, C, H, W\) with C = 1, got shape \(2, 3, 40, 40\)"
    ):
        ClutteredDigitNet(width=4)(torch.rand(2, 3, 40, 40))


# ---------------------------------------------------------------------------------------------
# the chapter's explorer
# ---------------------------------------------------------------------------------------------


def _bars(html: str) -> list[float]:
    return [float(v) for v in re.findall(r'data-value="([-\d.]+)"', html)]


def test_spatial_map_explorer_every_control_changes_the_view_and_the_bars():
    from visual_attention.views.widgets import count_views, explorer_view

    g = gen(15)
    images = torch.rand(3, 1, 40, 40, generator=g)
    boxes = torch.tensor([[0, 0, 20, 20], [10, 10, 30, 30], [20, 20, 40, 40]])
    maps = {
        "a": torch.rand(3, 1, 10, 10, generator=g),
        "b": torch.softmax(torch.randn(3, 100, generator=g), -1).reshape(3, 10, 10),
    }
    outputs = {
        "a": torch.softmax(torch.randn(3, 10, generator=g), -1),
        "b": torch.softmax(torch.randn(3, 10, generator=g), -1),
    }
    for kw in ({"boxes": boxes, "labels": torch.tensor([1, 2, 3])}, {}):
        ex = spatial_map_explorer(images, maps, outputs, **kw)
        assert count_views(ex) == 6
        views = {(k, i): explorer_view(ex, map=k, image=i).value for k in maps for i in range(3)}
        assert len(set(views.values())) == 6
        bars = {key: tuple(_bars(v)) for key, v in views.items()}
        assert len(set(bars.values())) == 6
        first = 1 if kw else 2
        for (k, i), b in bars.items():
            assert len(b) == first + 10
            torch.testing.assert_close(torch.tensor(b[first:]), outputs[k][i], atol=1e-4, rtol=0)
        if kw:
            mass = attention_mass_in_box(maps["a"], boxes, 40)
            assert abs(bars[("a", 1)][0] - mass[1].item()) < 1e-4
    with pytest.raises(ValueError, match="same keys"):
        spatial_map_explorer(images, maps, {"a": outputs["a"]})
    with pytest.raises(ValueError, match=r"images must be \(N, 1\|3, H, W\)"):
        spatial_map_explorer(torch.rand(3, 2, 40, 40), maps, outputs)
