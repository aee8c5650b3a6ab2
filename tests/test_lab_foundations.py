"""Tests of visual_attention.labs.foundations: the odd-one-out task and its two networks."""

from __future__ import annotations

import pytest
import torch

from visual_attention import record_attention
from visual_attention.labs.digits import DIGIT_SIZE, digits_at
from visual_attention.labs.foundations import OddOneOutNet, odd_one_out


def test_grids_hold_eight_of_one_class_and_one_odd_digit():
    task = odd_one_out(20, "test", seed=3)
    assert task.images.shape == (20, 1, 48, 48) and task.tokens.shape == (20, 9, 64)
    x, y = digits_at(DIGIT_SIZE, "test")
    for b in range(20):
        cells = task.images[b, 0].reshape(3, 16, 3, 16).permute(0, 2, 1, 3).reshape(9, 16, 16)
        classes = []
        for cell in cells:  # every cell is one of the split's digits; find which
            match = (x[:, 0] - cell).abs().flatten(1).amax(1) == 0
            classes.append(int(y[match][0]))
        odd = int(task.positions[b])
        assert classes[odd] == int(task.labels[b])
        others = {c for i, c in enumerate(classes) if i != odd}
        assert len(others) == 1 and others != {classes[odd]}
    again = odd_one_out(20, "test", seed=3)
    assert torch.equal(again.tokens, task.tokens) and torch.equal(again.labels, task.labels)


def test_attention_weights_sum_to_one_and_mean_pooling_has_none():
    tokens = torch.randn(4, 9, 64)
    net = OddOneOutNet("attention")
    with record_attention(net) as maps:
        assert net(tokens).shape == (4, 10)
    torch.testing.assert_close(maps["pool"].sum(-1), torch.ones(4))
    control = OddOneOutNet("mean")
    assert control(tokens).shape == (4, 10) and control.pool is None
    # the control is the same classifier on the plain mean
    torch.testing.assert_close(control(tokens), control.head(tokens.mean(1)))


def test_validation():
    with pytest.raises(ValueError, match="pool must be one of 'attention', 'mean', got 'max'"):
        OddOneOutNet("max")
    with pytest.raises(ValueError, match=r"tokens must be \(B, N, C\) with C = 64"):
        OddOneOutNet()(torch.randn(2, 9, 32))
    with pytest.raises(ValueError, match="split must be one of 'train', 'test'"):
        odd_one_out(4, "val")
