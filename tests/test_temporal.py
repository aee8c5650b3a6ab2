"""Tests of visual_attention.temporal: frame-to-frame self-attention, and attention pooling over
frames as the temporal chapter uses it (:class:`visual_attention.blocks.AttentionPooling`).

Property tests check that frame weights are distributions that respect masks and causality and
that pooling does not depend on the order of the frames; reference tests compare with the paper's
formula written out and with a plain loop over positions; gradcheck checks the backward pass; the
last section checks the validation messages. The chapter's networks and widget are tested in
``test_lab_temporal.py``.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _helpers import gen
from visual_attention import record_attention
from visual_attention.blocks import AttentionPooling, MultiHeadAttention
from visual_attention.temporal import TemporalSelfAttention, causal_mask

SETTINGS = settings(max_examples=30, deadline=None)




dims = st.tuples(
    st.integers(1, 4), st.integers(1, 7), st.integers(1, 6), st.integers(0, 2**31 - 1)
)


# ------------------------------------------------------------------------------------------------
# attention pooling over frames: blocks.AttentionPooling on (B, T, D) frame features
# ------------------------------------------------------------------------------------------------


@SETTINGS
@given(dims, st.floats(0.01, 100.0))
def test_frame_weights_are_a_distribution_over_time(shape, magnitude):
    b, t, d, seed = shape
    torch.manual_seed(seed)
    pool = AttentionPooling(d).double()
    x = torch.randn(b, t, d, generator=gen(seed), dtype=torch.float64) * magnitude
    with record_attention(pool) as maps:
        out = pool(x)
    w = maps[""]
    assert w.shape == (b, t) and out.shape == (b, d)
    assert (w >= 0).all() and torch.isfinite(out).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(b, dtype=torch.float64))


@SETTINGS
@given(dims)
def test_pooling_matches_the_additive_attention_formula(shape):
    b, t, d, seed = shape
    torch.manual_seed(seed)
    pool = AttentionPooling(d, hidden_dim=3).double()
    x = torch.randn(b, t, d, generator=gen(seed), dtype=torch.float64)
    out = pool(x)
    w1, b1, w2 = pool.proj.weight, pool.proj.bias, pool.score.weight
    for i in range(b):  # e_t = w2ᵀ tanh(W1 x_t + b1); α = softmax(e); c = Σ α_t x_t
        e = torch.stack([(w2 @ torch.tanh(w1 @ x[i, s] + b1)).squeeze() for s in range(t)])
        alpha = torch.exp(e - e.max()) / torch.exp(e - e.max()).sum()
        torch.testing.assert_close(out[i], (alpha[:, None] * x[i]).sum(0))


@SETTINGS
@given(dims)
def test_pooling_does_not_depend_on_frame_order(shape):
    b, t, d, seed = shape
    torch.manual_seed(seed)
    pool = AttentionPooling(d).double()
    x = torch.randn(b, t, d, generator=gen(seed), dtype=torch.float64)
    perm = torch.randperm(t, generator=gen(seed + 1))
    with record_attention(pool) as maps:
        out = pool(x)
    with record_attention(pool) as maps_p:
        out_p = pool(x[:, perm])
    torch.testing.assert_close(out_p, out)
    torch.testing.assert_close(maps_p[""], maps[""][:, perm])  # the weights follow their frames


@SETTINGS
@given(dims)
def test_masked_frames_get_no_weight_and_do_not_matter(shape):
    b, t, d, seed = shape
    torch.manual_seed(seed)
    pool = AttentionPooling(d).double()
    x = torch.randn(b, t, d, generator=gen(seed), dtype=torch.float64)
    mask = torch.rand(b, t, generator=gen(seed + 2)) > 0.4
    with record_attention(pool) as maps:
        out = pool(x, mask)
    w = maps[""]
    assert (w[~mask] == 0).all()
    torch.testing.assert_close(w.sum(-1), mask.any(-1).double())
    assert (out[~mask.any(-1)] == 0).all()  # no valid frame: a zero clip vector
    changed = torch.where(mask[..., None], x, 1e3 * torch.randn_like(x))
    torch.testing.assert_close(pool(changed, mask), out)


def test_pooling_gradcheck():
    torch.manual_seed(0)
    pool = AttentionPooling(3).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, False, True, True], [True, True, True, True]])
    assert torch.autograd.gradcheck(lambda v: pool(v, mask), (x,))


def test_pooling_parameter_count():
    # W1 (D·hidden_dim + hidden_dim) + w2 (hidden_dim)
    assert sum(p.numel() for p in AttentionPooling(32).parameters()) == 32 * 32 + 32 + 32
    assert sum(p.numel() for p in AttentionPooling(8, hidden_dim=4).parameters()) == 8 * 4 + 4 + 4


def test_pooling_weights_are_the_recorded_frame_weights():
    torch.manual_seed(0)
    pool = AttentionPooling(4)
    x = torch.randn(3, 5, 4)
    with record_attention(pool) as maps:
        pool(x)
    torch.testing.assert_close(pool.weights(x), maps[""])


# ------------------------------------------------------------------------------------------------
# TemporalSelfAttention
# ------------------------------------------------------------------------------------------------


def loop_reference(tsa: TemporalSelfAttention, x: torch.Tensor, allowed: torch.Tensor | None):
    """TimeSformer's temporal attention written as a loop over clips and positions."""
    b, t, c, h, w = x.shape
    wq, wk, wv = tsa.attn.qkv.weight.split(c)
    bq, bk, bv = tsa.attn.qkv.bias.split(c)
    out = x.clone()
    weights = torch.zeros(b, h, w, t, t, dtype=x.dtype)
    for i in range(b):
        for r in range(h):
            for s in range(w):
                z = x[i, :, :, r, s]  # (T, C)
                q, k, v = z @ wq.T + bq, z @ wk.T + bk, z @ wv.T + bv
                scores = q @ k.T / c**0.5
                if allowed is not None:
                    scores = scores.masked_fill(~allowed[i], float("-inf"))
                a = torch.softmax(scores, dim=-1).nan_to_num(0.0)
                weights[i, r, s] = a
                out[i, :, :, r, s] = z + (a @ v) @ tsa.attn.proj.weight.T + tsa.attn.proj.bias
    return out, weights


@pytest.mark.parametrize("causal", [False, True])
def test_pixel_mode_matches_a_loop_over_positions(causal):
    torch.manual_seed(0)
    tsa = TemporalSelfAttention(3, mode="pixel", causal=causal).double()
    x = torch.randn(2, 4, 3, 2, 3, dtype=torch.float64)
    with record_attention(tsa) as maps:
        out = tsa(x)
    allowed = causal_mask(4).expand(2, 4, 4) if causal else None
    ref_out, ref_w = loop_reference(tsa, x, allowed)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(maps[""], ref_w)
    assert maps[""].shape == (2, 2, 3, 4, 4)


def test_frame_mode_attends_between_pooled_frames():
    torch.manual_seed(1)
    tsa = TemporalSelfAttention(3, mode="frame").double()
    x = torch.randn(2, 5, 3, 4, 4, dtype=torch.float64)
    with record_attention(tsa) as maps:
        out = tsa(x)
    pooled = x.mean(dim=(-2, -1))  # (B, T, C)
    q, k, v = (pooled @ tsa.attn.qkv.weight.T + tsa.attn.qkv.bias).chunk(3, dim=-1)
    a = torch.softmax(q @ k.transpose(1, 2) / 3**0.5, dim=-1)
    ref = x + ((a @ v) @ tsa.attn.proj.weight.T + tsa.attn.proj.bias)[..., None, None]
    torch.testing.assert_close(maps[""], a)
    torch.testing.assert_close(out, ref)


@SETTINGS
@given(
    st.integers(1, 3),
    st.integers(1, 6),
    st.sampled_from(["pixel", "frame"]),
    st.integers(0, 2**31 - 1),
)
def test_weights_are_distributions_and_causal_attention_ignores_the_future(b, t, mode, seed):
    torch.manual_seed(seed)
    tsa = TemporalSelfAttention(4, mode=mode, causal=True).double()
    x = torch.randn(b, t, 4, 3, 2, generator=gen(seed), dtype=torch.float64)
    with record_attention(tsa) as maps:
        out = tsa(x)
    w = maps[""]
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1], dtype=torch.float64))
    assert (w[..., ~causal_mask(t)] == 0).all()  # nothing above the diagonal
    cut = int(torch.randint(0, t, (1,), generator=gen(seed + 1)))
    future = x.clone()
    future[:, cut + 1 :] = 50 * torch.randn_like(future[:, cut + 1 :])
    torch.testing.assert_close(tsa(future)[:, : cut + 1], out[:, : cut + 1])


@SETTINGS
@given(
    st.integers(1, 3),
    st.integers(2, 6),
    st.sampled_from(["pixel", "frame"]),
    st.integers(0, 2**31 - 1),
)
def test_invalid_frames_are_never_attended(b, t, mode, seed):
    torch.manual_seed(seed)
    tsa = TemporalSelfAttention(2, mode=mode).double()
    x = torch.randn(b, t, 2, 2, 2, generator=gen(seed), dtype=torch.float64)
    mask = torch.rand(b, t, generator=gen(seed + 3)) > 0.3
    mask[:, 0] = True
    with record_attention(tsa) as maps:
        out = tsa(x, mask)
    w = maps[""]
    key_mask = mask[:, None, None, None, :] if mode == "pixel" else mask[:, None, :]
    assert (w.masked_select(~key_mask.expand_as(w)) == 0).all()
    changed = torch.where(mask[:, :, None, None, None], x, 1e3 * torch.randn_like(x))
    torch.testing.assert_close(
        tsa(changed, mask)[mask], out[mask]
    )  # valid frames see only valid frames


def test_self_attention_is_equivariant_to_frame_order_without_a_causal_mask():
    torch.manual_seed(3)
    tsa = TemporalSelfAttention(3).double()
    x = torch.randn(2, 5, 3, 2, 2, dtype=torch.float64)
    perm = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(tsa(x[:, perm]), tsa(x)[:, perm])


@pytest.mark.parametrize("mode", ["pixel", "frame"])
def test_self_attention_gradcheck(mode):
    torch.manual_seed(0)
    tsa = TemporalSelfAttention(2, mode=mode, causal=True).double()
    x = torch.randn(1, 3, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tsa, (x,))


def test_causal_mask():
    m = causal_mask(3)
    assert m.dtype == torch.bool
    assert m.tolist() == [[True, False, False], [True, True, False], [True, True, True]]


def test_self_attention_is_the_kits_one_head_attention():
    tsa = TemporalSelfAttention(8, mode="frame")
    assert isinstance(tsa.attn, MultiHeadAttention) and tsa.attn.num_heads == 1
    # W_q, W_k, W_v, W_o with biases: 4·D² + 4·D
    assert sum(p.numel() for p in tsa.parameters()) == 4 * 8 * 8 + 4 * 8
    x = torch.randn(2, 3, 8, 2, 2)
    with record_attention(tsa) as maps:
        tsa(x)
    torch.testing.assert_close(maps["attn"][:, 0], maps[""])  # the inner weights, (B, 1, T, T)


@pytest.mark.parametrize("mode", ["pixel", "frame"])
def test_causal_and_padding_masks_combine(mode):
    torch.manual_seed(4)
    tsa = TemporalSelfAttention(2, mode=mode, causal=True).double()
    x = torch.randn(2, 4, 2, 2, 3, dtype=torch.float64)
    mask = torch.tensor([[True, True, False, True], [True, False, True, True]])
    with record_attention(tsa) as maps:
        tsa(x, mask)
    w = maps[""] if mode == "frame" else maps[""].flatten(1, 2)  # (B, [H·W,] T, T)
    allowed = causal_mask(4) & mask[:, None, :]  # (B, T, T)
    if mode == "pixel":
        allowed = allowed[:, None]
    assert (w[~allowed.expand_as(w)] == 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1], dtype=torch.float64))


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------


def test_validation_messages():
    pool = AttentionPooling(4)
    with pytest.raises(ValueError, match=r"at least 2-d \(\*B, T, C\), got shape \(4,\)"):
        pool(torch.randn(4))
    with pytest.raises(ValueError, match=r"\(\*B, T, C\) with C = 4, got shape \(2, 3, 5\)"):
        pool(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="floating-point"):
        pool(torch.ones(2, 3, 4, dtype=torch.long))
    with pytest.raises(
        ValueError, match=r"mask must have shape \(\*B, T\) = \(2, 3\), got \(2, 4\)"
    ):
        pool(torch.randn(2, 3, 4), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="boolean"):
        pool(torch.randn(2, 3, 4), torch.ones(2, 3))
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        AttentionPooling(0)
    tsa = TemporalSelfAttention(4)
    with pytest.raises(ValueError, match=r"5-d \(B, T, C, H, W\), got shape \(2, 3, 4, 5\)"):
        tsa(torch.randn(2, 3, 4, 5))
    with pytest.raises(
        ValueError, match=r"\(B, T, C, H, W\) with C = 4, got shape \(1, 2, 3, 4, 4\)"
    ):
        tsa(torch.randn(1, 2, 3, 4, 4))
    with pytest.raises(
        ValueError, match=r"mask must have shape \(B, T\) = \(1, 2\), got \(1, 3\)"
    ):
        tsa(torch.randn(1, 2, 4, 2, 2), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask must be a boolean tensor \(B, T\)"):
        tsa(torch.randn(1, 2, 4, 2, 2), torch.ones(1, 2))
    with pytest.raises(ValueError, match="mode must be one of 'pixel', 'frame', got 'space'"):
        TemporalSelfAttention(4, mode="space")
    for bad in (0, True, 2.0):
        with pytest.raises(ValueError, match=f"dim must be a positive integer, got {bad!r}"):
            TemporalSelfAttention(bad)
        with pytest.raises(ValueError, match=f"frames must be a positive integer, got {bad!r}"):
            causal_mask(bad)
