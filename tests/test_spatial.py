"""Tests of visual_attention.spatial: CBAM's spatial gate, query attention pooling, the box metric.

Property tests (hypothesis) check what defines each kind of spatial attention (a gate in (0, 1),
weights that sum to 1, equivariance to shifts and permutations of positions); reference tests
compare with explicit formulas and with CBAM's authors' layer order; gradcheck checks the backward
pass in float64; the last section checks that bad inputs raise a ValueError naming the shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from _helpers import gen
from visual_attention.core import record_attention, scaled_dot_product_attention
from visual_attention.spatial import (
    QuerySpatialAttention,
    SpatialGate,
    attention_mass_in_box,
    channel_pool,
)
from visual_attention.train import count_parameters

SETTINGS = settings(max_examples=30, deadline=None)


@st.composite
def feature_maps(draw, max_side=6, max_channels=5, scale=3.0):
    b = draw(st.integers(1, 3))
    c = draw(st.integers(1, max_channels))
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    seed = draw(st.integers(0, 2**31 - 1))
    return torch.randn(b, c, h, w, generator=gen(seed), dtype=torch.float64) * scale


def randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every parameter and BatchNorm statistic random values (so zero inits hide nothing)."""
    g = gen(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return module


# ---------------------------------------------------------------------------------------------
# channel_pool
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(feature_maps())
def test_channel_pool_is_mean_then_max_over_channels(x):
    p = channel_pool(x)
    assert p.shape == (x.shape[0], 2, *x.shape[2:])
    b, c, h, w = x.shape
    for i in range(h):  # a plain loop over positions as the reference
        for j in range(w):
            col = x[:, :, i, j]
            torch.testing.assert_close(p[:, 0, i, j], col.sum(1) / c)
            torch.testing.assert_close(
                p[:, 1, i, j], torch.tensor([max(r.tolist()) for r in col], dtype=x.dtype)
            )


@SETTINGS
@given(feature_maps(), st.integers(0, 2**31 - 1))
def test_channel_pool_ignores_channel_order(x, seed):
    perm = torch.randperm(x.shape[1], generator=gen(seed))
    torch.testing.assert_close(channel_pool(x[:, perm]), channel_pool(x))


# ---------------------------------------------------------------------------------------------
# SpatialGate
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(feature_maps(), st.sampled_from([1, 3, 5, 7]), st.integers(0, 2**31 - 1))
def test_gate_is_in_unit_interval_and_scales_every_channel_alike(x, k, seed):
    gate = randomised(SpatialGate(k).double(), seed).eval()
    with record_attention(gate) as maps:
        y = gate(x)
    m = maps[""]
    assert y.shape == x.shape
    assert m.shape == (x.shape[0], 1, *x.shape[2:])
    assert ((m >= 0) & (m <= 1)).all()  # a sigmoid: (0, 1) up to rounding at extreme scores
    torch.testing.assert_close(y, x * m)  # the same map multiplies every channel


def test_gate_matches_cbam_formula_in_eval_mode():
    """σ(BN(conv([mean; max]))) written out with torch.nn.functional, as in Woo et al., Eq. 3."""
    g = gen(0)
    gate = randomised(SpatialGate(7), 1).eval()
    x = torch.randn(2, 5, 9, 11, generator=g)
    pooled = torch.stack([x.mean(1), x.max(1).values], dim=1)
    z = F.conv2d(pooled, gate.conv.weight, padding=3)
    bn = gate.bn
    z = (z - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(
        bn.running_var.view(1, -1, 1, 1) + bn.eps
    )
    z = z * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(gate(x), x * torch.sigmoid(z))


def test_gate_parameter_count_and_layers():
    gate = SpatialGate(7)
    assert count_parameters(gate) == 2 * 7 * 7 + 2  # conv 2→1 without bias + BN's γ and β
    assert gate.conv.bias is None and gate.conv.padding == (3, 3)
    assert count_parameters(SpatialGate(3)) == 2 * 3 * 3 + 2


@SETTINGS
@given(feature_maps(max_side=5), st.integers(0, 2**31 - 1), st.integers(-2, 2), st.integers(-2, 2))
def test_gate_is_equivariant_to_translations_away_from_the_border(x, seed, dy, dx):
    """Shift the input (zero padding on a large canvas): the gate's output shifts with it."""
    gate = randomised(SpatialGate(3).double(), seed).eval()
    b, c, h, w = x.shape
    canvas = torch.zeros(b, c, h + 8, w + 8, dtype=x.dtype)
    canvas[:, :, 4 : 4 + h, 4 : 4 + w] = x
    moved = torch.roll(canvas, shifts=(dy, dx), dims=(2, 3))
    torch.testing.assert_close(gate(moved), torch.roll(gate(canvas), shifts=(dy, dx), dims=(2, 3)))


def test_gate_is_finite_for_extreme_inputs():
    gate = randomised(SpatialGate(), 0).eval()
    x = torch.tensor([1e30, -1e30, 0.0]).repeat(1, 2, 4, 4)[:, :, :4, :4].contiguous()
    with record_attention(gate) as maps:
        y = gate(torch.cat([x, -x]))
    assert torch.isfinite(maps[""]).all() and ((maps[""] >= 0) & (maps[""] <= 1)).all()
    assert not torch.isnan(y).any()


def test_gate_gradcheck():
    gate = randomised(SpatialGate(3).double(), 3).eval()
    x = torch.randn(2, 3, 4, 5, generator=gen(4), dtype=torch.float64, requires_grad=True)
    x = x + torch.arange(3, dtype=torch.float64).view(
        1, 3, 1, 1
    )  # distinct channels: max is smooth
    x = x.detach().requires_grad_(True)
    assert torch.autograd.gradcheck(gate, (x,))


def test_gate_trains_batchnorm_and_records_nothing_when_not_asked():
    gate = SpatialGate()
    x = torch.randn(4, 3, 6, 6, generator=gen(5))
    gate.train()
    gate(x)
    assert gate.bn.num_batches_tracked.item() == 1
    assert gate.attention is None


# ---------------------------------------------------------------------------------------------
# QuerySpatialAttention
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(
    feature_maps(),
    st.sampled_from(["learned", "global"]),
    st.sampled_from([None, 3]),
    st.integers(0, 2**31 - 1),
)
def test_query_weights_are_a_distribution_and_context_is_their_mean(x, mode, qdim, seed):
    attn = randomised(QuerySpatialAttention(x.shape[1], query_dim=qdim, query=mode).double(), seed)
    with record_attention(attn) as maps:
        ctx = attn(x)
    w = maps[""]
    assert w.shape == (x.shape[0], *x.shape[2:]) and ctx.shape == x.shape[:2]
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(dim=(1, 2)), torch.ones(x.shape[0], dtype=x.dtype))
    torch.testing.assert_close(ctx, torch.einsum("bhw,bchw->bc", w, x))
    assert torch.isfinite(ctx).all()


@SETTINGS
@given(feature_maps(), st.sampled_from(["learned", "global"]), st.integers(0, 2**31 - 1))
def test_query_attention_is_invariant_to_permuting_positions(x, mode, seed):
    """Attention pooling is a set function of the positions: shuffling them changes nothing."""
    attn = randomised(QuerySpatialAttention(x.shape[1], query_dim=2, query=mode).double(), seed)
    b, c, h, w = x.shape
    perm = torch.randperm(h * w, generator=gen(seed))
    shuffled = x.flatten(2)[:, :, perm].reshape(b, c, h, w)
    torch.testing.assert_close(attn(shuffled), attn(x))


def test_query_attention_starts_as_global_average_pooling():
    x = torch.randn(3, 4, 5, 6, generator=gen(6))
    for mode in ("learned", "global"):
        for qdim in (None, 8):
            attn = QuerySpatialAttention(4, query_dim=qdim, query=mode)
            torch.testing.assert_close(attn(x), x.mean(dim=(2, 3)))


def test_query_attention_matches_scaled_dot_product_attention():
    """Learned query, projected keys: the same as SDPA with one query, H·W keys and values x."""
    attn = randomised(QuerySpatialAttention(4, query_dim=3), 7).double()
    x = torch.randn(2, 4, 3, 5, generator=gen(8), dtype=torch.float64)
    keys = attn.key(x).flatten(2).transpose(1, 2)  # (B, H·W, D)
    values = x.flatten(2).transpose(1, 2)  # (B, H·W, C)
    q = attn.query.expand(2, 1, 3)  # (B, 1, D)
    ctx, w = scaled_dot_product_attention(q, keys, values)  # default scale 1/√D
    with record_attention(attn) as maps:
        out = attn(x)
    torch.testing.assert_close(out, ctx[:, 0])
    torch.testing.assert_close(maps[""], w[:, 0].reshape(2, 3, 5))


def test_query_attention_explicit_formula_without_projection():
    attn = QuerySpatialAttention(3)
    with torch.no_grad():
        attn.query.copy_(torch.tensor([2.0, -1.0, 0.5]))
    x = torch.randn(1, 3, 2, 2, generator=gen(9))
    scores = [
        (attn.query * x[0, :, i, j]).sum().item() / np.sqrt(3) for i in range(2) for j in range(2)
    ]
    e = np.exp(np.array(scores) - max(scores))
    w = torch.tensor(e / e.sum(), dtype=torch.float32).reshape(2, 2)
    with record_attention(attn) as maps:
        attn(x)
    torch.testing.assert_close(maps[""][0], w)


def test_query_attention_parameter_counts():
    assert count_parameters(QuerySpatialAttention(64)) == 64
    assert count_parameters(QuerySpatialAttention(64, query_dim=16)) == 64 * 16 + 16 + 16
    assert count_parameters(QuerySpatialAttention(64, query="global")) == 64 * 64 + 64


def test_query_attention_is_finite_for_extreme_inputs():
    attn = randomised(QuerySpatialAttention(3, query="global"), 10)
    x = torch.randn(2, 3, 4, 4, generator=gen(11)) * 1e15
    with record_attention(attn) as maps:
        out = attn(x)
    assert torch.isfinite(maps[""]).all() and torch.isfinite(out).all()
    torch.testing.assert_close(maps[""].sum(dim=(1, 2)), torch.ones(2))


@pytest.mark.parametrize("mode", ["learned", "global"])
def test_query_attention_gradcheck(mode):
    attn = randomised(QuerySpatialAttention(3, query_dim=2, query=mode).double(), 12)
    x = torch.randn(2, 3, 3, 2, generator=gen(13), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(attn, (x,))


# ---------------------------------------------------------------------------------------------
# attention_mass_in_box
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(st.integers(1, 4), st.sampled_from([1, 2, 5, 10]), st.integers(0, 2**31 - 1))
def test_mass_in_box_matches_a_pixel_loop(b, h, seed):
    g = gen(seed)
    maps = torch.rand(b, h, h, generator=g, dtype=torch.float64)
    tl = torch.randint(0, 30, (b, 2), generator=g)
    size = torch.randint(1, 11, (b, 2), generator=g)
    boxes = torch.cat([tl, tl + size], dim=1)
    got = attention_mass_in_box(maps, boxes, 40)
    cell = 40 // h
    for n in range(b):
        t, l, bo, r = boxes[n].tolist()
        inside = sum(
            maps[n, i // cell, j // cell].item() for i in range(t, bo) for j in range(l, r)
        )
        total = maps[n].sum().item() * cell * cell
        assert abs(got[n].item() - inside / total) < 1e-9
    assert ((got >= 0) & (got <= 1)).all()


def test_mass_in_box_edge_cases():
    boxes = torch.tensor([[0, 0, 20, 40], [10, 10, 30, 30], [0, 0, 40, 40]])
    uniform = torch.ones(3, 1, 4, 4)  # (B, 1, h, w) is accepted too
    torch.testing.assert_close(
        attention_mass_in_box(uniform, boxes, 40), torch.tensor([0.5, 0.25, 1.0])
    )
    zero = torch.zeros(1, 5, 5)
    assert attention_mass_in_box(zero, boxes[:1], 40).item() == 0.0
    peak = torch.zeros(1, 10, 10)
    peak[0, 2, 3] = 1.0  # pixels 8..11 × 12..15
    assert attention_mass_in_box(peak, torch.tensor([[8, 12, 12, 16]]), 40).item() == 1.0
    assert attention_mass_in_box(peak, torch.tensor([[8, 12, 10, 16]]), 40).item() == 0.5
    assert attention_mass_in_box(peak, torch.tensor([[0, 0, 8, 40]]), (40, 40)).item() == 0.0


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


def test_validation_messages():
    with pytest.raises(ValueError, match=r"x must be 4-d \(B, C, H, W\), got shape \(3, 4, 5\)"):
        SpatialGate()(torch.zeros(3, 4, 5))
    with pytest.raises(ValueError, match="floating-point"):
        SpatialGate()(torch.zeros(1, 2, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="kernel_size must be a positive odd integer, got 4"):
        SpatialGate(4)
    with pytest.raises(ValueError, match="kernel_size must be a positive integer, got True"):
        SpatialGate(True)
    with pytest.raises(ValueError, match="channels must be a positive integer, got True"):
        QuerySpatialAttention(True)
    with pytest.raises(
        ValueError, match=r"x must be \(B, C, H, W\) with C = 8, got shape \(2, 4, 3, 3\)"
    ):
        QuerySpatialAttention(8)(torch.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"x must be 4-d"):
        QuerySpatialAttention(4)(torch.zeros(2, 4, 9))
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        QuerySpatialAttention(0)
    with pytest.raises(ValueError, match="query_dim must be a positive integer, got 0"):
        QuerySpatialAttention(4, query_dim=0)
    with pytest.raises(ValueError, match="query must be one of 'learned', 'global', got 'cls'"):
        QuerySpatialAttention(4, query="cls")
    with pytest.raises(ValueError, match=r"boxes must be an integer tensor \(B, 4\)"):
        attention_mass_in_box(torch.rand(2, 4, 4), torch.zeros(2, 4), 40)
    with pytest.raises(ValueError, match=r"boxes \(3, 4\) must have the same batch size B = 2"):
        attention_mass_in_box(torch.rand(2, 4, 4), torch.zeros(3, 4, dtype=torch.long), 40)
    with pytest.raises(
        ValueError, match=r"canvas \(40, 40\) must be a multiple of the map's \(h, w\) = \(3, 3\)"
    ):
        attention_mass_in_box(torch.rand(1, 3, 3), torch.zeros(1, 4, dtype=torch.long), 40)
    with pytest.raises(ValueError, match=r"maps must be 3-d \(B, h, w\)"):
        attention_mass_in_box(torch.rand(4, 4), torch.zeros(1, 4, dtype=torch.long), 40)


# ---------------------------------------------------------------------------------------------
# pointing_game
# ---------------------------------------------------------------------------------------------


def test_pointing_game_hits_where_the_maximum_lies():
    from visual_attention.spatial import pointing_game

    maps = torch.zeros(3, 4, 4)
    maps[0, 1, 2] = 1.0  # cell (1, 2) of a 16-pixel canvas: centre pixel (6, 10)
    maps[1, 3, 3] = 1.0  # centre (14, 14)
    maps[2] = 0.5  # uniform: the first cell, centre (2, 2)
    boxes = torch.tensor([[4, 8, 8, 12], [0, 0, 8, 8], [0, 0, 3, 3]])
    assert pointing_game(maps, boxes, 16).tolist() == [True, False, True]
    assert pointing_game(maps[:, None], boxes, 16).tolist() == [True, False, True]  # (B, 1, h, w)
    # one pixel to the right of the box is a miss
    assert not pointing_game(maps[:1], torch.tensor([[4, 8, 8, 10]]), 16).item()
    with pytest.raises(ValueError, match="must be a multiple"):
        pointing_game(maps, boxes, 15)
    with pytest.raises(ValueError, match="boxes must be an integer tensor"):
        pointing_game(maps, boxes.float(), 16)
