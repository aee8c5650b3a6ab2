"""Tests of visual_attention.labs.hierarchical: the chapter's pooling classifier and its widget."""

from __future__ import annotations

import pytest
import torch

from visual_attention import record_attention
from visual_attention.blocks import AttentionPooling
from visual_attention.hierarchical import HierarchicalAttentionPooling
from visual_attention.labs.hierarchical import PoolingClassifier, explorer
from visual_attention.train import count_parameters
from visual_attention.views.widgets import count_views, explorer_view


def test_classifiers_record_both_levels():
    x = torch.randn(2, 1, 40, 40)
    for pooling, names in (("hierarchical", {"pool.patch_pool": (2, 4, 25), "pool.region_pool": (2, 4)}),
                           ("flat", {"pool": (2, 100)})):
        model = PoolingClassifier(pooling)
        with record_attention(model) as maps:
            assert model(x).shape == (2, 10)
        assert {k: tuple(v.shape) for k, v in maps.items()} == names


def test_classifier_is_conv_bn_relu_then_pooling():
    model = PoolingClassifier("flat", in_channels=3, num_classes=4, channels=8)
    assert isinstance(model.pool, AttentionPooling)
    assert isinstance(PoolingClassifier("hierarchical").pool, HierarchicalAttentionPooling)
    assert [type(m).__name__ for m in model.features[0]] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert [m[0].stride for m in model.features] == [(2, 2), (1, 1), (2, 2)]
    assert model.features(torch.randn(1, 3, 40, 40)).shape == (1, 8, 10, 10)
    convs = (3 * 8 * 9 + 8) + 2 * (8 * 8 * 9 + 8) + 3 * 2 * 8        # conv weights, biases, BN
    assert count_parameters(model) == convs + (8 * 8 + 8 + 8) + (8 * 4 + 4)


def test_classifier_validation():
    with pytest.raises(ValueError, match="pooling must be one of 'flat', 'hierarchical', got 'max'"):
        PoolingClassifier("max")
    with pytest.raises(ValueError, match="channels must be a positive integer, got 0"):
        PoolingClassifier(channels=0)
    with pytest.raises(ValueError, match=r"images must be \(B, C, H, W\) with C = 1"):
        PoolingClassifier()(torch.zeros(1, 3, 40, 40))


def test_explorer_views_change_with_every_control():
    torch.manual_seed(4)
    model = PoolingClassifier("hierarchical", channels=8)
    ex = explorer(model, torch.rand(2, 1, 40, 40), torch.tensor([3, 5]), size=80)
    assert count_views(ex) == 2 * 2 * 4
    for level in ("patches", "regions"):
        base = dict(image=0, level=level, region=0)
        for name, other in (("image", 1), ("region", 3), ("level", "regions" if level == "patches" else "patches")):
            assert explorer_view(ex, **base).value != explorer_view(ex, **{**base, name: other}).value
    with pytest.raises(ValueError, match="pooling='hierarchical'"):
        explorer(PoolingClassifier("flat"), torch.rand(1, 1, 40, 40), torch.tensor([0]))
