"""Tests of visual_attention.self_attention: position self-attention, the non-local block, the mean
attention distance."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _helpers import gen
from visual_attention import record_attention
from visual_attention.self_attention import (
    NonLocalBlock,
    mean_attention_distance,
    position_self_attention,
    relative_position_bias,
)

SETTINGS = settings(max_examples=30, deadline=None)
sizes = st.integers(1, 4)


def loop_self_attention(q, k, v, scale):
    """Position self-attention by explicit loops over images and positions."""
    b, _, h, w = q.shape
    y = torch.zeros(b, v.shape[1], h, w, dtype=q.dtype)
    weights = torch.zeros(b, h * w, k.shape[2] * k.shape[3], dtype=q.dtype)
    for n in range(b):
        keys = k[n].flatten(1)  # (C, H'W')
        vals = v[n].flatten(1)
        for i in range(h):
            for j in range(w):
                s = (q[n, :, i, j] @ keys) * scale
                a = torch.exp(s - s.max())
                a = a / a.sum()
                weights[n, i * w + j] = a
                y[n, :, i, j] = vals @ a
    return y, weights


# --------------------------------------------------------------------------------------------
# position_self_attention
# --------------------------------------------------------------------------------------------


@SETTINGS
@given(sizes, sizes, sizes, sizes, st.integers(0, 10**6))
def test_position_self_attention_matches_a_loop(b, c, h, w, seed):
    g = gen(seed)
    q, k, v = (torch.randn(b, c, h, w, generator=g, dtype=torch.float64) for _ in range(3))
    y, weights = position_self_attention(q, k, v)
    y_ref, w_ref = loop_self_attention(q, k, v, c**-0.5)
    assert weights.shape == (b, h * w, h * w)
    assert torch.allclose(weights, w_ref, atol=1e-10)
    assert torch.allclose(y, y_ref, atol=1e-10)


@SETTINGS
@given(sizes, sizes, sizes, st.integers(0, 10**6))
def test_weights_are_distributions_over_all_positions(b, h, w, seed):
    x = torch.randn(b, 3, h, w, generator=gen(seed)) * 10
    _, weights = position_self_attention(x, x, x)
    assert (weights >= 0).all()
    assert torch.allclose(weights.sum(-1), torch.ones(b, h * w), atol=1e-5)


@SETTINGS
@given(st.integers(2, 4), st.integers(2, 4), st.integers(0, 10**6))
def test_permuting_positions_permutes_the_output(h, w, seed):
    g = gen(seed)
    x = torch.randn(2, 3, h, w, generator=g, dtype=torch.float64)
    perm = torch.randperm(h * w, generator=g)
    xp = x.flatten(2)[:, :, perm].reshape(2, 3, h, w)
    y, a = position_self_attention(x, x, x)
    yp, ap = position_self_attention(xp, xp, xp)
    assert torch.allclose(yp.flatten(2), y.flatten(2)[:, :, perm], atol=1e-10)
    assert torch.allclose(ap, a[:, perm][:, :, perm], atol=1e-10)


def test_extreme_inputs_stay_finite():
    x = torch.randn(1, 4, 3, 3, generator=gen(0)) * 1e4
    y, a = position_self_attention(x, x, x)
    assert torch.isfinite(y).all() and torch.isfinite(a).all()


def test_gradcheck_position_self_attention():
    g = gen(1)
    args = tuple(
        torch.randn(1, 2, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
        for _ in range(3)
    )
    assert torch.autograd.gradcheck(lambda q, k, v: position_self_attention(q, k, v), args)


@pytest.mark.parametrize(
    "args, match",
    [
        (
            (torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)),
            r"q must be 4-d \(B, C, H, W\), got shape \(2, 3, 4\)",
        ),
        (
            (torch.zeros(1, 3, 2, 2), torch.zeros(1, 4, 2, 2), torch.zeros(1, 3, 2, 2)),
            r"q \(1, 3, 2, 2\) and k \(1, 4, 2, 2\) must share",
        ),
        (
            (torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 1)),
            r"k \(1, 3, 2, 2\) and v \(1, 3, 2, 1\)",
        ),
        ((torch.zeros(1, 3, 2, 2, dtype=torch.long),) * 3, "q must be a floating-point tensor"),
    ],
)
def test_position_self_attention_validation(args, match):
    with pytest.raises(ValueError, match=match):
        position_self_attention(*args)


# --------------------------------------------------------------------------------------------
# NonLocalBlock
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_bn", [True, False])
def test_new_block_is_the_identity(use_bn):
    block = NonLocalBlock(8, use_bn=use_bn)
    x = torch.randn(3, 8, 5, 6, generator=gen(2))
    block.train()
    assert torch.equal(block(x), x)
    block.eval()
    assert torch.equal(block(x), x)


def test_block_matches_the_paper_equations():
    torch.manual_seed(3)
    block = NonLocalBlock(6, scale=False).double().eval()
    for p in block.parameters():  # leave the identity start: make every weight count
        torch.nn.init.normal_(p)
    block.norm.running_mean.normal_()
    block.norm.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 6, 3, 4, dtype=torch.float64)
    conv = lambda layer, t: (
        torch.einsum("oc,bchw->bohw", layer.weight[:, :, 0, 0], t) + layer.bias[:, None, None]
    )
    theta, phi, g = (
        conv(block.theta, x).flatten(2),
        conv(block.phi, x).flatten(2),
        conv(block.g, x).flatten(2),
    )
    f = torch.exp(torch.einsum("bci,bcj->bij", theta, phi))  # Eq. (3): exp(θᵀφ)
    y = torch.einsum("bij,bcj->bci", f / f.sum(-1, keepdim=True), g).reshape(2, 3, 3, 4)  # Eq. (1)
    wz = conv(block.w_z, y)
    bn = block.norm
    z = (wz - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    z = z * bn.weight[:, None, None] + bn.bias[:, None, None] + x  # Eq. (6)
    assert torch.allclose(block(x), z, atol=1e-8)


def test_block_default_channels_scale_and_recorded_weights():
    block = NonLocalBlock(16)
    assert block.rd_channels == 8 and math.isclose(block.scale, 8**-0.5)
    assert NonLocalBlock(16, rd_channels=3).rd_channels == 3
    x = torch.randn(2, 16, 4, 5, generator=gen(4))
    with record_attention(block) as maps:
        block(x)
    a = maps[""]
    assert a.shape == (2, 20, 20)
    assert torch.allclose(a.sum(-1), torch.ones(2, 20), atol=1e-5)


def test_subsampled_block_has_a_quarter_of_the_keys():
    block = NonLocalBlock(4, subsample=True)
    with record_attention(block) as maps:
        out = block(torch.randn(1, 4, 4, 6, generator=gen(5)))
    assert out.shape == (1, 4, 4, 6)
    assert maps[""].shape == (1, 24, 6)
    with pytest.raises(ValueError, match="subsample needs an even H and W"):
        block(torch.randn(1, 4, 3, 6))


def test_gradcheck_non_local_block():
    torch.manual_seed(6)
    block = NonLocalBlock(4, use_bn=False).double()
    torch.nn.init.normal_(block.w_z.weight)
    x = torch.randn(1, 4, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(channels=0), "channels must be a positive integer"),
        (dict(channels=True), "channels must be a positive integer, got True"),
        (dict(channels=8, rd_ratio=0), "rd_ratio must be a positive finite number, got 0"),
        (dict(channels=8, rd_ratio=2), r"rd_ratio must be in \(0, 1\], got 2"),
        (dict(channels=8, rd_channels=0), "rd_channels must be a positive integer"),
    ],
)
def test_block_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NonLocalBlock(**kwargs)


def test_block_forward_validation():
    block = NonLocalBlock(4)
    with pytest.raises(
        ValueError, match=r"x must be \(B, C, H, W\) with C = 4, got shape \(1, 3, 2, 2\)"
    ):
        block(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match=r"x must be 4-d \(B, C, H, W\)"):
        block(torch.zeros(4, 2, 2))


# --------------------------------------------------------------------------------------------
# mean_attention_distance
# --------------------------------------------------------------------------------------------


def test_mean_attention_distance():
    eye = torch.eye(6)
    assert torch.allclose(mean_attention_distance(eye, (2, 3)), torch.zeros(6), atol=1e-6)
    to_first = torch.zeros(6, 6)
    to_first[:, 0] = 1
    expected = torch.tensor([0.0, 1, 2, 1, math.sqrt(2), math.sqrt(5)])
    assert torch.allclose(mean_attention_distance(to_first, (2, 3)), expected)
    with pytest.raises(ValueError, match=r"weights must end in \(HW, HW\) = \(6, 6\)"):
        mean_attention_distance(torch.ones(4, 4) / 4, (2, 3))
    with pytest.raises(ValueError, match=r"weights must be at least 2-d"):
        mean_attention_distance(torch.ones(4), (2, 2))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 9), st.integers(0, 3), st.integers(0, 2**16))
def test_relative_position_bias_depends_on_the_offset_only(length, heads, seed):
    shape = (heads, 2 * length - 1) if heads else (2 * length - 1,)
    table = torch.randn(shape, generator=gen(seed))
    b = relative_position_bias(table, length)
    assert b.shape == (*shape[:-1], length, length)
    for i in range(length):
        for j in range(length):
            assert torch.equal(b[..., i, j], table[..., j - i + length - 1])
    if length > 1:  # Toeplitz: the same bias along every diagonal
        assert torch.equal(b[..., 1:, 1:], b[..., :-1, :-1])


def test_relative_position_bias_validation():
    with pytest.raises(ValueError, match=r"table must be \(\*H, K\) with K = 5"):
        relative_position_bias(torch.zeros(6), 3)
    with pytest.raises(ValueError, match="length must be a positive integer"):
        relative_position_bias(torch.zeros(1), 0)
