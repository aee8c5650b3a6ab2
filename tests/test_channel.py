"""Tests of visual_attention.channel: SqueezeExcitation, EfficientChannelAttention, ChannelGate, CBAM.

Properties (gates in (0, 1), output = gate · input, invariance of the gates to where things are),
comparisons with the papers' equations written out by hand, parameter counts, gradcheck in float64,
recording of the weights, validation messages, and the chapter's exercises.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from visual_attention import record_attention
from visual_attention.channel import (
    CBAM,
    ChannelGate,
    EfficientChannelAttention,
    SqueezeExcitation,
    eca_kernel_size,
    make_rd_channels,
)
from visual_attention.exercises import ExerciseError, check
from visual_attention.train import count_parameters

SETTINGS = settings(max_examples=30, deadline=None)
GATES = (SqueezeExcitation, EfficientChannelAttention, ChannelGate)

dims = st.tuples(st.integers(1, 3), st.integers(1, 40), st.integers(1, 5), st.integers(1, 5))


def make(kind, c: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = kind(c).double().eval()
    # larger weights than the default init, so the gates move away from 0.5
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.7)
    return m


# ---------------------------------------------------------------------------------------------
# properties shared by the three gates
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(st.sampled_from(GATES), dims, st.integers(0, 2**16))
def test_gates_lie_in_0_1_and_rescale_each_channel(kind, shape, seed):
    b, c, h, w = shape
    m = make(kind, c, seed)
    x = torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with record_attention(m) as maps:
        y = m(x)
    s = maps[""]
    assert s.shape == (b, c)
    # σ lies in (0, 1); in float64 it rounds to exactly 1 for logits above about 37 (these
    # weights reach that), while it stays above 0 down to logits of about -745
    assert ((s > 0) & (s <= 1)).all()
    assert torch.allclose(y, x * s[:, :, None, None])


@SETTINGS
@given(st.sampled_from(GATES), dims, st.integers(0, 2**16))
def test_gates_do_not_depend_on_where_things_are(kind, shape, seed):
    """GAP and max pooling forget positions: permuting the H·W positions permutes the output only."""
    b, c, h, w = shape
    m = make(kind, c, seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    perm = torch.randperm(h * w, generator=g)
    xp = x.flatten(2)[:, :, perm].reshape(b, c, h, w)
    assert torch.allclose(m(xp), m(x).flatten(2)[:, :, perm].reshape(b, c, h, w))


@SETTINGS
@given(st.sampled_from(GATES), st.integers(1, 64), st.integers(0, 2**16))
def test_each_image_is_gated_on_its_own(kind, c, seed):
    m = make(kind, c, seed)
    x = torch.randn(4, c, 3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    together = m(x)
    for i in range(4):
        assert torch.allclose(together[i : i + 1], m(x[i : i + 1]))


@pytest.mark.parametrize("kind", GATES)
@pytest.mark.parametrize("scale", [1e4, -1e4, 1e30])
def test_extreme_inputs_give_finite_outputs(kind, scale):
    m = make(kind, 16).float()
    x = torch.randn(2, 16, 3, 3, generator=torch.Generator().manual_seed(0)) * scale
    with record_attention(m) as maps:
        y = m(x)
    assert torch.isfinite(y).all()
    assert ((maps[""] >= 0) & (maps[""] <= 1)).all()


# ---------------------------------------------------------------------------------------------
# the papers' equations, written out
# ---------------------------------------------------------------------------------------------


def test_se_matches_equations_2_to_4():
    m = make(SqueezeExcitation, 32)
    x = torch.randn(3, 32, 5, 4, dtype=torch.float64)
    w1, b1 = m.fc1.weight[:, :, 0, 0], m.fc1.bias
    w2, b2 = m.fc2.weight[:, :, 0, 0], m.fc2.bias
    z = torch.stack([x[:, c].sum(dim=(1, 2)) / (5 * 4) for c in range(32)], dim=1)  # Eq. 2
    s = torch.sigmoid(F.linear(torch.relu(F.linear(z, w1, b1)), w2, b2))  # Eq. 3
    assert w1.shape == (2, 32) and w2.shape == (32, 2)  # C/r with r = 16
    assert torch.allclose(m(x), s[:, :, None, None] * x)  # Eq. 4


def test_eca_matches_a_loop_over_channel_neighbours():
    m = make(EfficientChannelAttention, 64)
    k = m.kernel_size
    assert k == 3 and m.conv.bias is None
    x = torch.randn(2, 64, 3, 3, dtype=torch.float64)
    y = x.mean(dim=(2, 3))
    w = m.conv.weight[0, 0]
    omega = torch.zeros(2, 64, dtype=torch.float64)
    for c in range(64):
        for j in range(k):
            src = c + j - (k - 1) // 2
            if 0 <= src < 64:  # zero padding at both ends of the channel axis
                omega[:, c] += w[j] * y[:, src]
    assert torch.allclose(m(x), torch.sigmoid(omega)[:, :, None, None] * x)


def test_eca_gate_of_a_channel_depends_only_on_its_k_neighbours():
    m = make(EfficientChannelAttention, 256)  # k = 5: neighbours within distance 2
    x = torch.randn(1, 256, 2, 2, dtype=torch.float64, requires_grad=True)
    m.recording = True
    m(x)
    m.attention = None
    gate = m.gate(x)
    (grad,) = torch.autograd.grad(gate[0, 100], x)
    touched = grad[0].abs().sum(dim=(1, 2)).nonzero().flatten().tolist()
    assert touched == [98, 99, 100, 101, 102]


def test_channel_gate_matches_equation_2_and_uses_max_pooling():
    m = make(ChannelGate, 32)
    x = torch.randn(2, 32, 4, 4, dtype=torch.float64)

    def mlp(v):
        return m.mlp(v)

    want = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))
    assert torch.allclose(m.gate(x), want)
    # moving one activation up changes the max-pooled descriptor but not the mean if we compensate
    x2 = x.clone()
    x2[0, 0, 0, 0] += 10.0
    x2[0, 0, 0, 1] -= 10.0
    assert torch.allclose(x2.mean(dim=(2, 3)), x.mean(dim=(2, 3)))
    assert not torch.allclose(m.gate(x2)[0], m.gate(x)[0])


def test_cbam_is_channel_gate_then_spatial_gate():
    torch.manual_seed(0)
    m = CBAM(32).double().eval()
    x = torch.randn(2, 32, 6, 5, dtype=torch.float64)
    with record_attention(m) as maps:
        y = m(x)
    assert maps["channel_gate"].shape == (2, 32)
    assert maps["spatial_gate"].shape == (2, 1, 6, 5)
    refined = maps["channel_gate"][:, :, None, None] * x
    assert torch.allclose(y, maps["spatial_gate"] * refined)
    assert torch.allclose(y, m.spatial_gate(m.channel_gate(x)))


# ---------------------------------------------------------------------------------------------
# sizes and parameter counts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "channels, k",
    [(1, 1), (16, 3), (64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7)],
)
def test_eca_kernel_sizes_of_the_reference_code(channels, k):
    assert eca_kernel_size(channels) == k
    assert EfficientChannelAttention(channels).kernel_size == k


@SETTINGS
@given(st.integers(1, 10**6), st.floats(0.5, 4), st.floats(0, 3))
def test_eca_kernel_size_is_odd_and_near_the_formula(channels, gamma, beta):
    k = eca_kernel_size(channels, gamma, beta)
    assert k % 2 == 1
    assert abs(k - (math.log2(channels) + beta) / gamma) <= 2


@pytest.mark.parametrize("c, rd", [(256, 16), (2048, 128), (48, 3), (8, 1), (1, 1)])
def test_reduction_is_c_over_16(c, rd):
    assert make_rd_channels(c) == rd
    assert make_rd_channels(c, rd_channels=7) == 7
    assert SqueezeExcitation(c).fc1.out_channels == rd


@pytest.mark.parametrize(
    "args, kwargs, rd",
    [
        ((64,), {"min_rd_channels": 32}, 32),
        ((1024,), {"min_rd_channels": 32}, 64),
        ((100, 1 / 8), {}, 12),
        ((16, 1 / 4), {}, 4),
        ((3, 1 / 4), {}, 1),
    ],
)
def test_one_rounding_rule_floor_then_at_least_min_rd_channels(args, kwargs, rd):
    """⌊C · rd_ratio⌋, at least ``min_rd_channels``: SE/CBAM (floor 1) and SKNet (floor L)."""
    assert make_rd_channels(*args, **kwargs) == rd


def test_make_rd_channels_validation():
    with pytest.raises(ValueError, match="rd_ratio must be a positive finite number, got -0.5"):
        make_rd_channels(16, rd_ratio=-0.5)
    with pytest.raises(ValueError, match="min_rd_channels must be a positive integer, got 0"):
        make_rd_channels(16, min_rd_channels=0)
    with pytest.raises(ValueError, match="rd_channels must be a positive integer, got True"):
        make_rd_channels(16, rd_channels=True)


@pytest.mark.parametrize("c", [64, 256, 2048])
def test_parameter_counts(c):
    rd = c // 16
    mlp = 2 * c * rd + rd + c  # two fully connected layers with biases
    assert count_parameters(SqueezeExcitation(c)) == mlp
    assert count_parameters(ChannelGate(c)) == mlp  # one MLP shared by both poolings
    assert count_parameters(EfficientChannelAttention(c)) == eca_kernel_size(
        c
    )  # k weights, no bias
    assert count_parameters(CBAM(c)) == mlp + 7 * 7 * 2 + 2  # + spatial conv and its BatchNorm


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", GATES + (CBAM,))
def test_gradcheck(kind):
    torch.manual_seed(0)
    m = kind(8).double().eval()
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,))


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", GATES)
@pytest.mark.parametrize(
    "x, match",
    [
        (torch.zeros(2, 8, 3), r"must be 4-d \(B, C, H, W\), got shape \(2, 8, 3\)"),
        (
            torch.zeros(2, 5, 3, 3),
            r"x must be \(B, C, H, W\) with C = 8, got shape \(2, 5, 3, 3\)",
        ),
        (torch.zeros(2, 8, 3, 3, dtype=torch.long), "floating-point"),
    ],
)
def test_bad_inputs_are_rejected(kind, x, match):
    with pytest.raises(ValueError, match=match):
        kind(8)(x)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: SqueezeExcitation(0), "channels must be a positive integer"),
        (
            lambda: SqueezeExcitation(16, rd_ratio=0),
            "rd_ratio must be a positive finite number, got 0",
        ),
        (lambda: SqueezeExcitation(True), "channels must be a positive integer, got True"),
        (lambda: ChannelGate(16, rd_channels=0), "rd_channels must be a positive integer"),
        (lambda: EfficientChannelAttention(16, kernel_size=4), "positive odd integer, got 4"),
        (
            lambda: EfficientChannelAttention(16, gamma=0),
            "gamma must be a positive finite number, got 0",
        ),
        (
            lambda: EfficientChannelAttention(16, kernel_size=0),
            "kernel_size must be a positive integer, got 0",
        ),
        (lambda: CBAM(16, kernel_size=6), "kernel_size must be a positive odd integer, got 6"),
    ],
)
def test_bad_constructor_arguments_are_rejected(build, match):
    with pytest.raises(ValueError, match=match):
        build()


# ---------------------------------------------------------------------------------------------
# the chapter's exercises
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["eca_matrix", "fold_static_gate", "danet_channel"])
def test_exercise_references_pass_their_checks(name, capsys):
    from visual_attention.exercises import get_exercise

    check(f"channel.{name}", get_exercise(f"channel.{name}").reference)
    assert "correct on all" in capsys.readouterr().out


def test_exercise_references_are_what_they_claim():
    from visual_attention.exercises import get_exercise

    eca = EfficientChannelAttention(16, kernel_size=5)
    matrix = get_exercise("channel.eca_matrix").reference(eca.conv.weight.detach()[0, 0], 16)
    z = torch.randn(3, 16)
    torch.testing.assert_close(eca.conv(z[:, None])[:, 0].detach(), z @ matrix.T)
    assert int((matrix != 0).sum()) == 16 * 5 - 2 * (2 + 1)  # a band, cut at both edges

    gate, conv = torch.randn(6), torch.nn.Conv2d(6, 4, 1)
    w, b = get_exercise("channel.fold_static_gate").reference(gate, conv.weight, conv.bias)
    x = torch.randn(2, 6, 3, 3)
    folded = torch.nn.functional.conv2d(x, w, b)
    torch.testing.assert_close(folded, conv(x * torch.sigmoid(gate)[None, :, None, None]))

    a = torch.randn(2, 5, 3, 4)
    x_att, e = get_exercise("channel.danet_channel").reference(a, 0.7)
    torch.testing.assert_close(x_att.sum(-1), torch.ones(2, 5))  # each row: a softmax
    j, i = 3, 1  # Eq. 3 written out for one pair
    dots = torch.stack([(a[0, k] * a[0, j]).sum() for k in range(5)])
    torch.testing.assert_close(x_att[0, j, i], torch.exp(dots[i]) / torch.exp(dots).sum())
    torch.testing.assert_close(e[0, j], 0.7 * (x_att[0, j, :, None, None] * a[0]).sum(0) + a[0, j])


def test_exercises_catch_typical_mistakes():
    def convolution_not_correlation(w, channels):  # the kernel flipped
        from visual_attention.exercises import get_exercise

        return get_exercise("channel.eca_matrix").reference(w.flip(0), channels)

    def gate_on_the_outputs(gate_logits, weight, bias):
        return weight * torch.sigmoid(gate_logits).mean(), bias

    def softmax_over_the_wrong_axis(a, beta):
        b, c, h, w = a.shape
        flat = a.reshape(b, c, h * w)
        x = torch.softmax(flat @ flat.transpose(1, 2), dim=1)  # columns sum to 1: Xᵀ
        return x, beta * (x @ flat).reshape(b, c, h, w) + a

    def naive_exp(a, beta):
        b, c, h, w = a.shape
        flat = a.reshape(b, c, h * w)
        e = torch.exp(flat @ flat.transpose(1, 2))
        x = e / e.sum(-1, keepdim=True)
        return x, beta * (x @ flat).reshape(b, c, h, w) + a

    for name, wrong in [
        ("eca_matrix", convolution_not_correlation),
        ("fold_static_gate", gate_on_the_outputs),
        ("danet_channel", softmax_over_the_wrong_axis),
        ("danet_channel", naive_exp),
    ]:
        with pytest.raises(ExerciseError):
            check(f"channel.{name}", wrong)
