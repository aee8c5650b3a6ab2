"""Tests of visual_attention.branch: the Selective Kernel unit (Li et al., CVPR 2019).

Property tests check that the branch weights are a softmax across the branches for every channel;
a hand-written formulation (plain ``F.conv2d`` / ``F.batch_norm`` / ``torch.softmax``) with the
module's parameters checks the maths of Eq. 1-6; gradcheck checks the backward pass in float64; the
last section checks shapes, strides, defaults and that bad inputs raise a ValueError naming shapes.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from _helpers import randomise
from visual_attention import record_attention
from visual_attention.branch import (
    SelectiveKernel,
    default_groups,
    fuse_branches,
    select_branches,
    sk_rd_channels,
)
from visual_attention.channel import make_rd_channels

SETTINGS = settings(max_examples=30, deadline=None)




def by_hand(sk: SelectiveKernel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SKNet Eq. 1-6 written out with functional ops and a loop over branches (eval-mode BN)."""

    def bn(t, m):
        return F.batch_norm(t, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    us = []
    for branch, k in zip(sk.branches, sk.kernel_sizes):
        conv, norm = branch[0], branch[1]
        d = (k - 1) // 2  # a k×k kernel as a 3×3 conv with dilation (k-1)/2
        assert conv.kernel_size == (3, 3) and conv.dilation == (d, d)
        us.append(F.relu(bn(F.conv2d(x, conv.weight, None, sk.stride, d, d, sk.groups), norm)))
    u = sum(us)  # Eq. 1
    s = u.mean(dim=(2, 3))  # Eq. 2
    w = sk.fc_reduce.weight[:, :, 0, 0]  # (d, C)
    z = F.relu(bn((s @ w.T)[..., None, None], sk.bn))[:, :, 0, 0]  # Eq. 4
    a_all = sk.fc_select.weight[:, :, 0, 0]  # (M·C, d): A_1 stacked on A_2 …
    c = sk.out_channels
    logits = torch.stack([z @ a_all[m * c : (m + 1) * c].T for m in range(len(us))], dim=1)
    a = torch.softmax(logits, dim=1)  # Eq. 5, across branches
    v = sum(a[:, m, :, None, None] * us[m] for m in range(len(us)))  # Eq. 6
    return v, a


# ---------------------------------------------------------------------------------------------
# properties of the branch weights
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(
    batch=st.integers(1, 3),
    channels=st.sampled_from([4, 8, 12]),
    side=st.integers(3, 9),
    kernels=st.sampled_from([(3, 5), (3, 5, 7), (5, 3)]),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    seed=st.integers(0, 2**16),
    training=st.booleans(),
)
def test_branch_weights_are_a_softmax_across_branches(
    batch, channels, side, kernels, scale, seed, training
):
    torch.manual_seed(seed)
    sk = SelectiveKernel(channels, kernel_sizes=kernels, min_rd_channels=4)
    randomise(sk, seed).train(training and batch > 1)
    x = torch.randn(batch, channels, side, side) * scale
    with record_attention(sk) as maps:
        y = sk(x)
    a = maps[""]
    assert a.shape == (batch, len(kernels), channels)
    assert (a >= 0).all()
    torch.testing.assert_close(a.sum(dim=1), torch.ones(batch, channels), rtol=0, atol=1e-5)
    assert torch.isfinite(y).all()


@SETTINGS
@given(seed=st.integers(0, 2**16), stride=st.integers(1, 3))
def test_matches_the_hand_written_formulation(seed, stride):
    sk = randomise(
        SelectiveKernel(8, 16, stride=stride, kernel_sizes=(3, 5, 7), min_rd_channels=8), seed
    )
    x = torch.randn(2, 8, 7, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    sk = sk.double()
    with record_attention(sk) as maps:
        got = sk(x)
    want, a = by_hand(sk, x)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(maps[""], a)


def test_equal_logits_give_equal_weights_and_the_mean_of_the_branches():
    sk = randomise(SelectiveKernel(8, min_rd_channels=4))
    torch.nn.init.zeros_(sk.fc_select.weight)
    x = torch.randn(3, 8, 5, 5)
    with record_attention(sk) as maps:
        y = sk(x)
    torch.testing.assert_close(maps[""], torch.full((3, 2, 8), 0.5))
    u = torch.stack([b(x) for b in sk.branches], dim=1)
    torch.testing.assert_close(y, u.mean(dim=1))


def test_a_dominant_branch_passes_through():
    sk = randomise(SelectiveKernel(4, min_rd_channels=4))
    with torch.no_grad():  # logits of branch 1 driven far above branch 0: V = U_1
        sk.fc_select.weight.zero_()
        sk.bn.bias.fill_(1.0)
        sk.fc_select.weight[4:] = 50.0
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(sk(x), sk.branches[1](x))


def test_samples_are_independent_in_eval_mode():
    sk = randomise(SelectiveKernel(8, min_rd_channels=4))
    x = torch.randn(4, 8, 6, 6)
    torch.testing.assert_close(sk(x)[1:2], sk(x[1:2]))


def test_gradcheck_float64():
    sk = randomise(SelectiveKernel(4, 4, kernel_sizes=(3, 5), min_rd_channels=3)).double()
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sk, (x,), eps=1e-6, atol=1e-5)
    sk.train()  # batch statistics: the batch-norm of z couples the samples, still differentiable
    assert torch.autograd.gradcheck(sk, (x,), eps=1e-6, atol=1e-5)


def test_functional_steps():
    u = torch.randn(2, 3, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(fuse_branches(u), u.sum(1).mean((2, 3)))
    a = torch.softmax(torch.randn(2, 3, 4, dtype=torch.float64), dim=1).requires_grad_()
    torch.testing.assert_close(select_branches(u, a), torch.einsum("bmchw,bmc->bchw", u, a))
    assert torch.autograd.gradcheck(select_branches, (u, a))


# ---------------------------------------------------------------------------------------------
# shapes, defaults, parameter counts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "side,stride,out", [(8, 1, 8), (8, 2, 4), (9, 2, 5), (7, 3, 3), (1, 2, 1)]
)
def test_output_shape_and_stride(side, stride, out):
    sk = SelectiveKernel(16, 32, stride=stride)
    y = sk(torch.randn(2, 16, side, side))
    assert y.shape == (2, 32, out, out)


def test_paper_defaults_for_64_channels():
    sk = SelectiveKernel(64)
    assert sk.groups == 32 and sk.rd_channels == 32 and sk.num_branches == 2
    convs = [b[0] for b in sk.branches]
    assert [(c.kernel_size, c.dilation, c.padding) for c in convs] == [
        ((3, 3), (1, 1), (1, 1)),
        ((3, 3), (2, 2), (2, 2)),
    ]
    # two grouped 3×3 convs + BN, W: C→d, BN(d), A: d→M·C
    expected = 2 * (64 * 2 * 9 + 2 * 64) + 64 * 32 + 2 * 32 + 32 * 128
    assert sum(p.numel() for p in sk.parameters()) == expected


def test_undilated_kernels():
    sk = SelectiveKernel(8, kernel_sizes=(1, 3, 5), dilate=False, min_rd_channels=4)
    assert [b[0].kernel_size for b in sk.branches] == [(1, 1), (3, 3), (5, 5)]
    assert sk(torch.randn(2, 8, 6, 6)).shape == (2, 8, 6, 6)


@pytest.mark.parametrize(
    "c,r,l,d",
    [
        (64, 1 / 16, 32, 32),
        (1024, 1 / 16, 32, 64),
        (2048, 1 / 16, 32, 128),
        (48, 1 / 16, 1, 3),
        (100, 1 / 8, 8, 12),
        (8, 1 / 2, 1, 4),
    ],
)
def test_rd_channels_rule(c, r, l, d):
    assert sk_rd_channels(c, r, l) == d
    assert make_rd_channels(c, r, min_rd_channels=l) == d  # the one rounding rule of the book
    assert SelectiveKernel(c, rd_ratio=r, min_rd_channels=l, groups=1).rd_channels == d


@pytest.mark.parametrize(
    "cin,cout,g", [(64, 64, 32), (16, 32, 16), (3, 16, 1), (48, 96, 16), (256, 128, 32)]
)
def test_default_groups_divide_the_channels(cin, cout, g):
    assert default_groups(cin, cout) == g
    assert SelectiveKernel(cin, cout).groups == g


def test_resnet_bottleneck_call_signature():
    sk = SelectiveKernel(32, 32, stride=2)
    assert sk(torch.randn(2, 32, 8, 8)).shape == (2, 32, 4, 4)


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(in_channels=0), "in_channels must be a positive integer"),
        (dict(in_channels=8, out_channels=-1), "out_channels must be a positive integer"),
        (dict(in_channels=8, stride=0), "stride must be a positive integer"),
        (dict(in_channels=8, kernel_sizes=(3,)), "at least two branches"),
        (dict(in_channels=8, kernel_sizes=(3, 4)), "odd integers >= 3"),
        (dict(in_channels=8, kernel_sizes=(1, 3)), "odd integers >= 3"),
        (
            dict(in_channels=8, groups=3),
            "groups must be a positive integer dividing in_channels=8",
        ),
        (
            dict(in_channels=8, out_channels=12, groups=8),
            "dividing in_channels=8 and out_channels=12",
        ),
        (dict(in_channels=8, rd_ratio=0.0), "rd_ratio must be a positive"),
        (dict(in_channels=8, min_rd_channels=0), "min_rd_channels must be a positive"),
        (dict(in_channels=8, rd_channels=0), "rd_channels must be a positive"),
        (dict(in_channels=True), "in_channels must be a positive integer, got True"),
        (dict(in_channels=8, groups=True), "groups must be a positive integer, got True"),
    ],
)
def test_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SelectiveKernel(**kwargs)


def test_forward_validation():
    sk = SelectiveKernel(8, min_rd_channels=4)
    with pytest.raises(ValueError, match=r"x must be 4-d \(B, C, H, W\), got shape \(8, 5, 5\)"):
        sk(torch.randn(8, 5, 5))
    with pytest.raises(
        ValueError, match=r"x must be \(B, C, H, W\) with C = 8, got shape \(1, 4, 5, 5\)"
    ):
        sk(torch.randn(1, 4, 5, 5))
    with pytest.raises(ValueError, match="floating-point tensor, got dtype torch.int64"):
        sk(torch.ones(1, 8, 5, 5, dtype=torch.long))
    with pytest.raises(
        ValueError, match=r"weights must be \(B, M, C\) with .*M = 3.*, got shape \(2, 2, 4\)"
    ):
        select_branches(torch.randn(2, 3, 4, 5, 5), torch.randn(2, 2, 4))
    with pytest.raises(ValueError, match=r"branches must be 5-d \(B, M, C, H, W\)"):
        fuse_branches(torch.randn(2, 3, 4, 5))
