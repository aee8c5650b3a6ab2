"""Tests of visual_attention.local_attention: windows, Swin's relative bias and shifted-window masks,
neighbourhood attention, and the linear cost of local attention.

Reference comparisons: window attention covering the whole grid equals global attention; windows
computed one by one with a plain loop; neighbourhood attention equals global attention with a
neighbourhood mask; Swin's reference mask construction (additive -100 masks). The chapter's
widget is tested in test_lab_local_attention.py.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _helpers import gen
from visual_attention import masked_softmax, record_attention
from visual_attention.blocks import MultiHeadAttention
from visual_attention.global_attention import GlobalAttention
from visual_attention.local_attention import (
    NeighborhoodAttention,
    ShiftedWindowAttention,
    WindowAttention,
    neighborhood_index,
    relative_position_index,
    score_entries,
    shifted_window_mask,
    to_dense,
    window_partition,
    window_reverse,
    window_token_index,
)

SETTINGS = settings(max_examples=30, deadline=None)




grids = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3))  # B, nh, nw, M


# ------------------------------------------------------------------ partition / reverse
@SETTINGS
@given(grids, st.integers(1, 4))
def test_partition_reverse_round_trip(g, c):
    b, nh, nw, m = g
    x = torch.randn(b, nh * m, nw * m, c, generator=gen(b + nh + nw))
    windows = window_partition(x, m)
    assert windows.shape == (b * nh * nw, m, m, c)
    assert torch.equal(window_reverse(windows, m, nh * m, nw * m), x)


def test_partition_matches_a_loop():
    x = torch.randn(2, 6, 9, 3, generator=gen(0))
    w = window_partition(x, 3)
    k = 0
    for b in range(2):
        for i in range(2):
            for j in range(3):
                assert torch.equal(w[k], x[b, 3 * i:3 * i + 3, 3 * j:3 * j + 3])
                k += 1


# ------------------------------------------------------------------ relative position bias
def test_relative_position_index_matches_swin_reference():
    m = 3
    coords = torch.stack(torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += m - 1
    rel[:, :, 1] += m - 1
    rel[:, :, 0] *= 2 * m - 1
    assert torch.equal(relative_position_index(m), rel.sum(-1))


@SETTINGS
@given(st.integers(1, 5))
def test_relative_index_depends_only_on_the_offset(m):
    idx = relative_position_index(m)
    assert idx.shape == (m * m, m * m) and idx.min() == 0 and idx.max() == (2 * m - 1) ** 2 - 1
    assert (idx.diagonal() == idx[0, 0]).all()  # zero offset: the same table row everywhere
    assert len(idx.unique()) == (2 * m - 1) ** 2


def test_relative_bias_is_added_to_the_scores():
    torch.manual_seed(0)
    attn = WindowAttention(8, 2, 2)
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
    x = torch.randn(3, 4, 8)
    with record_attention(attn) as maps:
        attn(x)
    q, k, _ = attn.qkv(x).reshape(3, 4, 3, 2, 4).permute(2, 0, 3, 1, 4)
    want = torch.softmax(q @ k.transpose(-2, -1) * 4**-0.5 + attn.relative_bias(), dim=-1)
    assert torch.allclose(maps[""], want, atol=1e-6)
    assert maps[""].shape == (3, 2, 4, 4)


# ------------------------------------------------------------------ local == global
def _copy(global_attn, local_attn):
    local_attn.qkv.load_state_dict(global_attn.qkv.state_dict())
    local_attn.proj.load_state_dict(global_attn.proj.state_dict())


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 4), st.sampled_from([1, 2, 4]), st.booleans())
def test_a_window_covering_the_image_is_global_attention(b, side, heads, zero_table):
    torch.manual_seed(side)
    x = torch.randn(b, side, side, 8)
    g = GlobalAttention(8, heads)
    local = ShiftedWindowAttention(8, side, heads, relative_position_bias=zero_table)
    if zero_table:
        torch.nn.init.zeros_(local.attn.relative_position_bias_table)
    _copy(g, local.attn)
    with record_attention(g) as gm, record_attention(local) as lm:
        out_g, out_l = g(x), local(x)
    assert torch.allclose(out_g, out_l, atol=1e-5)
    assert torch.allclose(gm[""], lm["attn"], atol=1e-6)


def test_windows_match_a_loop_of_global_attention():
    torch.manual_seed(1)
    x = torch.randn(2, 4, 6, 8)
    g = GlobalAttention(8, 2)
    local = ShiftedWindowAttention(8, 2, 2, relative_position_bias=False)
    _copy(g, local.attn)
    out = local(x)
    for i in range(0, 4, 2):
        for j in range(0, 6, 2):
            assert torch.allclose(out[:, i:i + 2, j:j + 2], g(x[:, i:i + 2, j:j + 2]), atol=1e-5)


# ------------------------------------------------------------------ shifted windows
def _swin_reference_mask(h, w, m, s):
    img = torch.zeros(1, h, w, 1)
    cnt = 0
    for hs in (slice(0, -m), slice(-m, -s), slice(-s, None)):
        for ws in (slice(0, -m), slice(-m, -s), slice(-s, None)):
            img[:, hs, ws, :] = cnt
            cnt += 1
    mw = window_partition(img, m).reshape(-1, m * m)
    additive = mw[:, None, :] - mw[:, :, None]
    return additive.masked_fill(additive != 0, -100.0).masked_fill(additive == 0, 0.0)


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 3), st.integers(2, 5), st.data())
def test_shifted_mask_matches_swin_reference(nh, nw, m, data):
    s = data.draw(st.integers(1, m - 1))
    mask = shifted_window_mask(nh * m, nw * m, m, s)
    assert mask.dtype == torch.bool and mask.shape == (nh * nw, m * m, m * m)
    assert torch.equal(mask, _swin_reference_mask(nh * m, nw * m, m, s) == 0)


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 3), st.integers(2, 4), st.data())
def test_shifted_windows_only_connect_tokens_that_were_neighbours(nh, nw, m, data):
    """After undoing the roll, two tokens may attend iff they lie in one window of the shifted grid
    without wrapping around the border: their grid distance is less than M along each axis."""
    s = data.draw(st.integers(1, m - 1))
    h, w = nh * m, nw * m
    ones = torch.ones(len(window_token_index(h, w, m, s)), 1, m * m, m * m)
    allowed = to_dense(ones * shifted_window_mask(h, w, m, s)[:, None], window_token_index(h, w, m, s))[0, 0] > 0
    rows, cols = torch.arange(h * w) // w, torch.arange(h * w) % w
    # the shifted partition cuts the grid at rows (and columns) s, s + M, s + 2M, …; no region wraps
    wr, wc = (rows - s + m) // m, (cols - s + m) // m
    same = (wr[:, None] == wr[None]) & (wc[:, None] == wc[None])
    assert torch.equal(allowed, same)


def test_shifted_weights_are_zero_across_regions_and_sum_to_one():
    torch.manual_seed(2)
    layer = ShiftedWindowAttention(8, 4, 2, shift_size=2)
    with record_attention(layer) as maps:
        layer(torch.randn(2, 8, 8, 8))
    w = maps["attn"]                                            # (B·nW, h, 16, 16)
    mask = shifted_window_mask(8, 8, 4, 2).repeat(2, 1, 1)[:, None]
    assert (w[~mask.expand_as(w)] == 0).all()
    assert torch.allclose(w.sum(-1), torch.ones(()), atol=1e-6)


def test_shift_is_equivariant_to_rolling_the_input():
    """SW-MSA on x equals W-MSA on the rolled x (same weights), where no window wraps around."""
    torch.manual_seed(3)
    x = torch.randn(1, 8, 8, 8)
    plain = ShiftedWindowAttention(8, 4, 1, shift_size=0)
    shifted = ShiftedWindowAttention(8, 4, 1, shift_size=2)
    shifted.load_state_dict(plain.state_dict())
    out = shifted(x)
    ref = torch.roll(plain(torch.roll(x, (-2, -2), (1, 2))), (2, 2), (1, 2))
    assert torch.allclose(out[:, 2:6, 2:6], ref[:, 2:6, 2:6], atol=1e-5)   # the one window off the seam
    assert not torch.allclose(out[:, :2, :2], ref[:, :2, :2], atol=1e-3)  # the mask changes the seam


# ------------------------------------------------------------------ neighbourhood attention
@SETTINGS
@given(st.integers(3, 6), st.integers(3, 6), st.sampled_from([1, 3]))
def test_neighborhood_index_is_clamped_and_complete(h, w, k):
    index, offset = neighborhood_index(h, w, k)
    assert index.shape == (h * w, k * k) and offset.shape == (h * w, k * k, 2)
    assert all(len(set(row.tolist())) == k * k for row in index)            # k² distinct keys
    assert (offset.abs() <= k - 1).all()
    n = torch.arange(h * w)
    r, c = n // w, n % w
    assert torch.equal(index // w, r[:, None] + offset[..., 0])
    assert torch.equal(index % w, c[:, None] + offset[..., 1])
    inner = (r >= k // 2) & (r < h - k // 2) & (c >= k // 2) & (c < w - k // 2)
    assert (index[inner, (k * k) // 2] == n[inner]).all()                   # centred away from the border


def test_neighborhood_attention_equals_masked_global_attention():
    torch.manual_seed(4)
    x = torch.randn(2, 5, 6, 8)
    na = NeighborhoodAttention(8, 3, 2, relative_position_bias=False)
    with record_attention(na) as maps:
        out = na(x)
    index, _ = neighborhood_index(5, 6, 3)
    allowed = torch.zeros(30, 30, dtype=torch.bool).scatter_(1, index, True)
    q, k, v = na.qkv(x.flatten(1, 2)).reshape(2, 30, 3, 2, 4).permute(2, 0, 3, 1, 4)
    weights = masked_softmax(q @ k.transpose(-2, -1) * 4**-0.5, mask=allowed.expand(2, 2, 30, 30))
    want = na.proj((weights @ v).transpose(1, 2).reshape(2, 30, 8)).reshape(2, 5, 6, 8)
    assert torch.allclose(out, want, atol=1e-5)
    assert torch.allclose(to_dense(maps[""], index, "neighborhood"), weights, atol=1e-6)


def test_neighborhood_covering_the_image_is_global_attention():
    torch.manual_seed(5)
    x = torch.randn(1, 3, 3, 4)
    g, na = GlobalAttention(4, 1), NeighborhoodAttention(4, 3, 1, relative_position_bias=False)
    _copy(g, na)
    assert torch.allclose(g(x), na(x), atol=1e-5)


@SETTINGS
@given(st.floats(-1e4, 1e4, allow_nan=False))
def test_outputs_stay_finite_and_weights_are_distributions(big):
    torch.manual_seed(6)
    x = torch.full((1, 4, 4, 4), big) + torch.randn(1, 4, 4, 4)
    for layer, key in ((NeighborhoodAttention(4, 3, 2), ""), (ShiftedWindowAttention(4, 2, 2, shift_size=1), "attn")):
        with record_attention(layer) as maps:
            out = layer(x)
        assert torch.isfinite(out).all()
        assert (maps[key] >= 0).all() and torch.allclose(maps[key].sum(-1), torch.ones(()), atol=1e-5)


def test_gradcheck():
    torch.manual_seed(7)
    sw = ShiftedWindowAttention(4, 2, 2, shift_size=1).double()
    na = NeighborhoodAttention(4, 3, 2).double()
    x = torch.randn(1, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sw, (x,))
    assert torch.autograd.gradcheck(na, (x,))


# ------------------------------------------------------------------ cost
@pytest.mark.parametrize("side", [8, 16, 32, 64])
def test_recorded_weights_grow_linearly_for_a_fixed_window(side):
    x = torch.randn(1, side, side, 4)
    layers = {"window": ShiftedWindowAttention(4, 8, 1), "neighborhood": NeighborhoodAttention(4, 7, 1)}
    for kind, layer in layers.items():
        with torch.no_grad(), record_attention(layer) as maps:
            layer(x)
        (weights,) = maps.values()
        size = 8 if kind == "window" else 7
        assert weights.numel() == score_entries(side, side, kind, size) == side * side * size * size
    assert score_entries(side, side, "global") == side**4


def test_window_weights_are_16_times_fewer_than_global_at_64x64():
    assert score_entries(64, 64, "global") / score_entries(64, 64, "window", 16) == 16
    assert score_entries(64, 64, "global") / score_entries(64, 64, "window", 8) == 64


# ------------------------------------------------------------------ validation
def test_validation_errors():
    with pytest.raises(ValueError, match=r"multiples of window_size=3"):
        window_partition(torch.zeros(1, 4, 6, 2), 3)
    with pytest.raises(ValueError, match=r"must be 4-d \(B, H, W, C\), got shape \(4, 6, 2\)"):
        window_partition(torch.zeros(4, 6, 2), 2)
    with pytest.raises(ValueError, match="floating-point"):
        window_partition(torch.zeros(1, 4, 4, 2, dtype=torch.long), 2)
    with pytest.raises(ValueError, match=r"windows must be \(B·nW, 2, 2, C\)"):
        window_reverse(torch.zeros(4, 3, 3, 1), 2, 4, 4)
    with pytest.raises(ValueError, match=r"shift_size must be an integer in \[0, window_size=4\)"):
        shifted_window_mask(8, 8, 4, 4)
    with pytest.raises(ValueError, match=r"shift_size must be an integer"):
        ShiftedWindowAttention(8, 4, 2, shift_size=-1)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        WindowAttention(10, 2, 3)
    with pytest.raises(ValueError, match=r"x must be \(B·nW, M², C\) with M² = 4"):
        WindowAttention(8, 2, 2)(torch.zeros(3, 5, 8))
    with pytest.raises(ValueError, match=r"mask must be a boolean tensor \(nW, 4, 4\)"):
        WindowAttention(8, 2, 2)(torch.zeros(4, 4, 8), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="not a multiple of the mask's nW=3"):
        WindowAttention(8, 2, 2)(torch.zeros(4, 4, 8), torch.ones(3, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"at least kernel_size=5"):
        NeighborhoodAttention(4, 5)(torch.zeros(1, 4, 8, 4))
    with pytest.raises(ValueError, match=r"x must be \(B, H, W, C\) with C = 4"):
        NeighborhoodAttention(4, 3)(torch.zeros(1, 4, 4, 3))
    with pytest.raises(ValueError, match="kind must be"):
        score_entries(4, 4, "dilated")
    with pytest.raises(ValueError, match="kind must be"):
        to_dense(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, dtype=torch.long), "strided")


# ------------------------------------------------------------------ the kit
def test_window_attention_is_multi_head_attention_plus_a_bias():
    """Without a bias table, one window of window attention is torch's nn.MultiheadAttention."""
    torch.manual_seed(8)
    attn = WindowAttention(8, 2, 2, relative_position_bias=False)
    assert isinstance(attn, MultiHeadAttention) and attn.relative_position_bias_table is None
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    attn.load_torch_weights(mha)
    x = torch.randn(3, 4, 8)
    with record_attention(attn) as maps:
        out = attn(x)
    want, weights = mha(x, x, x, average_attn_weights=False)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(maps[""], weights, atol=1e-6, rtol=1e-5)


def test_neighborhood_attention_reuses_the_projections_of_the_kit():
    na = NeighborhoodAttention(8, 3, 2, qkv_bias=False)
    assert isinstance(na, MultiHeadAttention) and na.qkv.bias is None and na.head_dim == 4
    assert na.rpb.shape == (2, 5, 5)


def test_shifted_window_attention_runs_in_float64():
    layer = ShiftedWindowAttention(4, 2, 1, shift_size=1).double()
    x = torch.randn(1, 4, 4, 4, dtype=torch.float64)
    assert layer(x).dtype == torch.float64 and layer.mask(4, 4).shape == (4, 4, 4)


# ------------------------------------------------------------------ more validation
@pytest.mark.parametrize("shift", [True, 2.0, None])
def test_shift_size_must_be_an_int(shift):
    with pytest.raises(ValueError, match=rf"shift_size must be an integer in \[0, window_size=4\), got {shift!r}"):
        ShiftedWindowAttention(8, 4, 2, shift_size=shift)
    with pytest.raises(ValueError, match="shift_size must be an integer"):
        shifted_window_mask(8, 8, 4, shift)


def test_more_validation_errors():
    with pytest.raises(ValueError, match="window_size must be a positive integer, got True"):
        window_partition(torch.zeros(1, 4, 4, 2), True)
    with pytest.raises(ValueError, match=r"holds 3 windows, not a multiple of nW=4"):
        window_reverse(torch.zeros(3, 2, 2, 1), 2, 4, 4)
    with pytest.raises(ValueError, match="height=6 must be a multiple of window_size=4"):
        shifted_window_mask(6, 8, 4, 2)
    with pytest.raises(ValueError, match=r"x must be \(B, H, W, C\) with C = 8"):
        ShiftedWindowAttention(8, 2, 2)(torch.zeros(1, 4, 4, 6))
    with pytest.raises(ValueError, match="mask must be a boolean tensor"):
        WindowAttention(8, 2, 2)(torch.zeros(4, 4, 8), torch.ones(2, 3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="kernel_size must be a positive integer, got 0"):
        NeighborhoodAttention(4, 0)
    with pytest.raises(ValueError, match="index must be a 2-d int64 tensor"):
        to_dense(torch.zeros(4, 1, 4, 4), torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"window weights \(3, 1, 4, 4\) must be \(B·2, h, 4, 4\)"):
        to_dense(torch.zeros(3, 1, 4, 4), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"must have N = 5 queries"):
        to_dense(torch.zeros(1, 1, 4, 9), torch.zeros(5, 9, dtype=torch.long), "neighborhood")


@pytest.mark.parametrize(
    "h, w, k, heads, bias", [(8, 8, 3, 2, True), (5, 7, 5, 1, False), (12, 12, 7, 4, True)]
)
def test_neighborhood_dense_path_equals_the_gathered_form(h, w, k, heads, bias):
    torch.manual_seed(0)
    na = NeighborhoodAttention(8, k, heads, relative_position_bias=bias).double()
    if bias:
        torch.nn.init.normal_(na.rpb)
    x = torch.randn(2, h, w, 8, dtype=torch.float64, requires_grad=True)
    results = []
    for dense in (10**6, 0):  # the dense path, then the gather (never dense)
        na.dense_tokens = dense
        with record_attention(na) as maps:
            y = na(x)
        grads = torch.autograd.grad(y.square().sum(), [x, *na.parameters()])
        results.append((y, maps[""], grads))
    (y1, w1, g1), (y2, w2, g2) = results
    torch.testing.assert_close(y1, y2, atol=1e-12, rtol=0)
    torch.testing.assert_close(w1, w2, atol=1e-12, rtol=0)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
