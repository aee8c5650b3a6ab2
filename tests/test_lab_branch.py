"""Tests of visual_attention.labs.branch: the chapter's SK network, rendered digits, the explorer."""

from __future__ import annotations

import pytest
import torch

from _helpers import randomise
from visual_attention.branch import SelectiveKernel
from visual_attention.labs.branch import (
    BranchNet,
    branch_weights_by_size,
    explorer,
    render_digit,
    render_digits,
)
from visual_attention.views.widgets import count_views, explorer_view

# ---------------------------------------------------------------------------------------------
# the chapter's model, data and widget
# ---------------------------------------------------------------------------------------------


def test_branch_net_records_every_block():
    net = BranchNet((8, 16, 16), groups=4, min_rd_channels=4)
    x = torch.rand(3, 1, 40, 40)
    assert net(x).shape == (3, 10)
    weights = branch_weights_by_size(net, x)
    assert list(weights) == ["blocks.0", "blocks.1"]
    assert all(w.shape == (3, 2) for w in weights.values())
    torch.testing.assert_close(weights["blocks.0"].sum(-1), torch.ones(3))
    plain = BranchNet((8, 16, 16), selective=False)
    assert not any(isinstance(m, SelectiveKernel) for m in plain.modules())
    assert plain(x).shape == (3, 10)


def test_render_digit_changes_only_the_scale():
    a, label = render_digit(3, 10)
    b, label_b = render_digit(3, 26)
    assert a.shape == b.shape == (1, 40, 40) and label == label_b
    assert 0 <= a.min() and a.max() <= 1
    assert (a[:, :5, :5] == b[:, :5, :5]).all()  # same noise outside the digit
    assert not torch.equal(a, b)
    with pytest.raises(ValueError, match="size must be between 2 and canvas=40"):
        render_digit(0, 41)


def test_render_digits_is_a_batch_of_render_digit():
    images, labels = render_digits([7, 0, 7], 14)
    assert images.shape == (3, 1, 40, 40) and labels.dtype == torch.int64
    for k, index in enumerate([7, 0, 7]):
        image, label = render_digit(index, 14)
        assert torch.equal(images[k], image) and int(labels[k]) == label
    assert render_digits([], 14)[0].shape == (0, 1, 40, 40)
    with pytest.raises(ValueError, match="indices must be in"):
        render_digits([0, 10_000], 14)


def test_explorer_every_control_changes_the_view():
    net = randomise(
        BranchNet((8, 16, 16), groups=4, min_rd_channels=4), seed=1
    )  # non-trivial weights
    ex = explorer(net, digits=[0, 1], sizes=[10, 18, 26])
    assert count_views(ex) == 2 * 3 * 2
    base = dict(digit=0, size=18, block="blocks.0")
    html = explorer_view(ex, **base).value
    assert html.count("data-value") == 3 + 10
    for name, other in (("digit", 1), ("size", 10), ("block", "blocks.1")):
        changed = explorer_view(ex, **{**base, name: other}).value
        bars = lambda h: [p.split('"')[0] for p in h.split('data-value="')[1:]]  # noqa: E731
        assert changed != html and bars(changed) != bars(html), name


def test_branch_net_plain_blocks_are_strided_grouped_conv_bn_relu():
    plain = BranchNet((8, 16, 32), selective=False, groups=4)
    conv, bn, act = plain.blocks[1]
    assert conv.stride == (2, 2) and conv.groups == 4 and conv.bias is None
    assert isinstance(bn, torch.nn.BatchNorm2d) and isinstance(act, torch.nn.ReLU)
    assert plain.stem[0].stride == (1, 1) and plain.stem[0].bias is None
    with pytest.raises(ValueError, match=r"x must be \(B, C, H, W\) with C = 1"):
        plain(torch.rand(2, 3, 40, 40))
    with pytest.raises(ValueError, match="at least one block"):
        BranchNet((8,))
