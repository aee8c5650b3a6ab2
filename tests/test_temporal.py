"""Tests of visual_attention.temporal: attention pooling over frames and frame-to-frame self-attention.

Property tests check that frame weights are distributions that respect masks and causality and
that pooling does not depend on the order of the frames; reference tests compare with the paper's
formula written out and with a plain loop over positions; gradcheck checks the backward pass; the
last section checks the validation messages.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from visual_attention import record_attention
from visual_attention.labs.temporal import ClipClassifier, FrameEncoder, explorer
from visual_attention.temporal import TemporalAttentionPooling, TemporalSelfAttention, causal_mask

SETTINGS = settings(max_examples=30, deadline=None)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


dims = st.tuples(st.integers(1, 4), st.integers(1, 7), st.integers(1, 6), st.integers(0, 2**31 - 1))


# ------------------------------------------------------------------------------------------------
# TemporalAttentionPooling
# ------------------------------------------------------------------------------------------------


@SETTINGS
@given(dims, st.floats(0.01, 100.0))
def test_frame_weights_are_a_distribution_over_time(shape, magnitude):
    b, t, d, seed = shape
    torch.manual_seed(seed)
    pool = TemporalAttentionPooling(d).double()
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
    pool = TemporalAttentionPooling(d, hidden=3).double()
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
    pool = TemporalAttentionPooling(d).double()
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
    pool = TemporalAttentionPooling(d).double()
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
    pool = TemporalAttentionPooling(3).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, False, True, True], [True, True, True, True]])
    assert torch.autograd.gradcheck(lambda v: pool(v, mask), (x,))


def test_pooling_parameter_count():
    # W1 (D·hidden + hidden) + w2 (hidden)
    assert sum(p.numel() for p in TemporalAttentionPooling(32).parameters()) == 32 * 32 + 32 + 32
    assert sum(p.numel() for p in TemporalAttentionPooling(8, hidden=4).parameters()) == 8 * 4 + 4 + 4


# ------------------------------------------------------------------------------------------------
# TemporalSelfAttention
# ------------------------------------------------------------------------------------------------


def loop_reference(tsa: TemporalSelfAttention, x: torch.Tensor, allowed: torch.Tensor | None):
    """TimeSformer's temporal attention written as a loop over clips and positions."""
    b, t, c, h, w = x.shape
    wq, wk, wv = tsa.qkv.weight.split(c)
    bq, bk, bv = tsa.qkv.bias.split(c)
    out = x.clone()
    weights = torch.zeros(b, h, w, t, t, dtype=x.dtype)
    for i in range(b):
        for r in range(h):
            for s in range(w):
                z = x[i, :, :, r, s]                                   # (T, C)
                q, k, v = z @ wq.T + bq, z @ wk.T + bk, z @ wv.T + bv
                scores = q @ k.T / c**0.5
                if allowed is not None:
                    scores = scores.masked_fill(~allowed[i], float("-inf"))
                a = torch.softmax(scores, dim=-1).nan_to_num(0.0)
                weights[i, r, s] = a
                out[i, :, :, r, s] = z + (a @ v) @ tsa.proj.weight.T + tsa.proj.bias
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
    pooled = x.mean(dim=(-2, -1))                                      # (B, T, C)
    q, k, v = (pooled @ tsa.qkv.weight.T + tsa.qkv.bias).chunk(3, dim=-1)
    a = torch.softmax(q @ k.transpose(1, 2) / 3**0.5, dim=-1)
    ref = x + ((a @ v) @ tsa.proj.weight.T + tsa.proj.bias)[..., None, None]
    torch.testing.assert_close(maps[""], a)
    torch.testing.assert_close(out, ref)


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 6), st.sampled_from(["pixel", "frame"]), st.integers(0, 2**31 - 1))
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
@given(st.integers(1, 3), st.integers(2, 6), st.sampled_from(["pixel", "frame"]), st.integers(0, 2**31 - 1))
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
    torch.testing.assert_close(tsa(changed, mask)[mask], out[mask])  # valid frames see only valid frames


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


# ------------------------------------------------------------------------------------------------
# the experiment's models and the widget
# ------------------------------------------------------------------------------------------------


def test_clip_classifier_shapes_and_parameters():
    clips = torch.rand(3, 8, 1, 24, 24)
    for pool in ("attention", "mean"):
        model = ClipClassifier(pool)
        assert model(clips).shape == (3, 10)
    assert FrameEncoder(32)(clips).shape == (3, 8, 32)
    extra = sum(p.numel() for p in ClipClassifier("attention").parameters()) - sum(
        p.numel() for p in ClipClassifier("mean").parameters())
    assert extra == 32 * 32 + 32 + 32  # attention pooling costs only its scoring network


def test_explorer_has_a_view_per_clip_and_frame():
    from visual_attention.views import widgets

    torch.manual_seed(0)
    model = ClipClassifier("attention")
    clips, labels = torch.rand(2, 4, 1, 24, 24), torch.tensor([3, 5])
    present = torch.tensor([[True, True, False, False], [False, True, True, False]])
    box = explorer(model, clips, labels, present)
    assert widgets.count_views(box) == 8
    a = widgets.explorer_view(box, clip=0, frame=0).value
    b = widgets.explorer_view(box, clip=0, frame=1).value
    assert a != b and "data-value" in a and "frame weights" in a
    with pytest.raises(ValueError, match="pool='attention'"):
        explorer(ClipClassifier("mean"), clips, labels, present)


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------


def test_validation_messages():
    pool = TemporalAttentionPooling(4)
    with pytest.raises(ValueError, match=r"3-d \(B, T, D\), got shape \(2, 4\)"):
        pool(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"D = 4 .* got \(2, 3, 5\)"):
        pool(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="floating-point"):
        pool(torch.ones(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"mask must have shape \(B, T\) = \(2, 3\), got \(2, 4\)"):
        pool(torch.randn(2, 3, 4), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="boolean"):
        pool(torch.randn(2, 3, 4), torch.ones(2, 3))
    tsa = TemporalSelfAttention(4)
    with pytest.raises(ValueError, match=r"5-d \(B, T, C, H, W\)"):
        tsa(torch.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"C = 4 channels"):
        tsa(torch.randn(1, 2, 3, 4, 4))
    with pytest.raises(ValueError, match="mode must be"):
        TemporalSelfAttention(4, mode="space")
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        TemporalAttentionPooling(0)
    with pytest.raises(ValueError, match="frames must be a positive integer"):
        causal_mask(0)
    with pytest.raises(ValueError, match="pool must be"):
        ClipClassifier("max")
