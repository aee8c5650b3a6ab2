"""Tests of visual_attention.efficient: the online softmax, chunked attention and linear attention.
The chapter's widget and memory meter are tested in test_lab_efficient_attention.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from visual_attention import scaled_dot_product_attention
from visual_attention.efficient import (
    chunked_attention,
    linear_attention,
    online_softmax_trace,
    online_softmax_update,
)

SETTINGS = settings(max_examples=40, deadline=None)


def qkv(b, lq, lk, d, dv, seed=0, dtype=torch.float32, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, lq, d, generator=g, dtype=dtype) * spread,
            torch.randn(b, lk, d, generator=g, dtype=dtype) * spread,
            torch.randn(b, lk, dv, generator=g, dtype=dtype))


@SETTINGS
@given(lq=st.integers(1, 9), lk=st.integers(1, 40), d=st.integers(1, 6), chunk=st.integers(1, 50),
       seed=st.integers(0, 10_000))
def test_chunked_equals_exact_attention(lq, lk, d, chunk, seed):
    q, k, v = qkv(2, lq, lk, d, 3, seed)
    want, _ = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(chunked_attention(q, k, v, chunk_size=chunk), want, atol=1e-5, rtol=1e-5)


def test_chunked_equals_torch_sdpa_at_image_sizes():
    q, k, v = qkv(2, 256, 1024, 16, 16, seed=1)
    want = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(chunked_attention(q, k, v, chunk_size=100), want, atol=1e-5, rtol=1e-5)


@SETTINGS
@given(seed=st.integers(0, 10_000), chunk=st.integers(1, 12))
def test_chunked_respects_masks_and_fully_masked_rows(seed, chunk):
    q, k, v = qkv(1, 5, 12, 4, 2, seed, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(1, 5, 12, generator=g) > 0.5
    mask[0, 2] = False  # a query that may attend to nothing
    want, _ = scaled_dot_product_attention(q, k, v, mask=mask)
    got = chunked_attention(q, k, v, chunk_size=chunk, mask=mask)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    assert torch.equal(got[0, 2], torch.zeros(2, dtype=torch.float64))


def test_chunked_is_finite_for_extreme_scores():
    q, k, v = qkv(1, 4, 64, 8, 3, seed=2, spread=300.0)  # scores of order 1e5
    got = chunked_attention(q, k, v, chunk_size=7)
    want, _ = scaled_dot_product_attention(q, k, v)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_chunked_gradcheck():
    q, k, v = (t.requires_grad_() for t in qkv(1, 3, 7, 2, 2, seed=3, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda a, b, c: chunked_attention(a, b, c, chunk_size=3), (q, k, v))


def test_chunked_is_permutation_equivariant_in_queries_and_invariant_in_keys():
    q, k, v = qkv(1, 6, 10, 4, 3, seed=4, dtype=torch.float64)
    pq, pk = torch.randperm(6), torch.randperm(10)
    base = chunked_attention(q, k, v, chunk_size=4)
    torch.testing.assert_close(chunked_attention(q[:, pq], k, v, chunk_size=4), base[:, pq])
    torch.testing.assert_close(chunked_attention(q, k[:, pk], v[:, pk], chunk_size=4), base)


def test_linear_attention_is_a_convex_combination_with_its_kernel():
    q, k, v = qkv(2, 5, 9, 4, 3, seed=5, dtype=torch.float64)
    phi = lambda x: F.elu(x) + 1
    w = phi(q) @ phi(k).transpose(-2, -1)
    w = w / w.sum(-1, keepdim=True)
    assert (w > 0).all()
    torch.testing.assert_close(linear_attention(q, k, v, eps=0.0), w @ v)


def test_linear_attention_gradcheck_and_finiteness():
    q, k, v = (t.requires_grad_() for t in qkv(1, 3, 4, 2, 2, seed=6, dtype=torch.float64))
    assert torch.autograd.gradcheck(linear_attention, (q, k, v))
    big = qkv(1, 4, 4, 3, 2, seed=7, spread=1e3)
    assert torch.isfinite(linear_attention(*big)).all()


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((torch.zeros(3), torch.zeros(3, 2), torch.zeros(3, 2)), {}, r"q must be at least 2-d \(\*B, L, D\), got shape \(3,\)"),
        ((torch.zeros(2, 3), torch.zeros(4, 2), torch.zeros(4, 2)), {}, r"same feature size D"),
        ((torch.zeros(2, 3), torch.zeros(4, 3), torch.zeros(5, 2)), {}, r"same number of keys Lk"),
        ((torch.zeros(2, 2, 3), torch.zeros(3, 4, 3), torch.zeros(3, 4, 2)), {}, r"same batch dimensions"),
        ((torch.zeros(2, 3, dtype=torch.long),) * 3, {}, r"floating-point"),
        ((torch.zeros(2, 3), torch.zeros(4, 3), torch.zeros(4, 2)), {"chunk_size": 0}, r"chunk_size must be a positive"),
        ((torch.zeros(2, 3), torch.zeros(4, 3), torch.zeros(4, 2)), {"mask": torch.ones(2, 4)}, r"boolean"),
        ((torch.zeros(2, 3), torch.zeros(4, 3), torch.zeros(4, 2)), {"mask": torch.ones(3, 4, dtype=torch.bool)},
         r"does not broadcast"),
    ],
)
def test_chunked_validation(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        chunked_attention(*args, **kwargs)


def test_linear_validation():
    with pytest.raises(ValueError, match="same feature size D"):
        linear_attention(torch.zeros(2, 3), torch.zeros(4, 2), torch.zeros(4, 2))


def test_online_softmax_update_folds_blocks_into_the_softmax():
    g = torch.Generator().manual_seed(8)
    scores, values = torch.randn(3, 10, generator=g, dtype=torch.float64), torch.randn(3, 10, 2, generator=g, dtype=torch.float64)
    m, l_, o = torch.full((3, 1), -torch.inf, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64)
    for block in (slice(0, 4), slice(4, 5), slice(5, 10)):
        m, l_, o = online_softmax_update(m, l_, o, scores[:, block], values[:, block])
    weights = torch.softmax(scores, dim=-1)
    torch.testing.assert_close(m, scores.amax(-1, keepdim=True))
    torch.testing.assert_close(o / l_, torch.einsum("bn,bnd->bd", weights, values))
    # the same values for every query: (n, Dv) broadcasts
    shared = values[0]
    m2, l2, o2 = online_softmax_update(torch.full((3, 1), -torch.inf, dtype=torch.float64),
                                       torch.zeros(3, 1, dtype=torch.float64),
                                       torch.zeros(3, 2, dtype=torch.float64), scores, shared)
    torch.testing.assert_close(o2 / l2, weights @ shared)


def test_online_softmax_trace_ends_at_full_attention():
    g = torch.Generator().manual_seed(9)
    keys, query = torch.randn(11, 3, generator=g), torch.randn(3, generator=g)
    states = online_softmax_trace(query, keys, keys, chunk_size=4, scale=2.0)
    assert len(states) == 3
    assert (states[0]["weights"][4:] == 0).all() and torch.isclose(states[0]["weights"].sum(), torch.tensor(1.0))
    weights = torch.softmax(keys @ query * 2.0, dim=0)
    torch.testing.assert_close(states[-1]["weights"], weights)
    torch.testing.assert_close(states[-1]["output"], weights @ keys)
    assert float(states[-1]["max"]) == float((keys @ query * 2.0).max())


def test_online_softmax_validation():
    state = (torch.full((2, 1), -torch.inf), torch.zeros(2, 1), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"values must be \(\*B, n, Dv\) with n = 4"):
        online_softmax_update(*state, torch.zeros(2, 4), torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="running_max must be a floating-point tensor"):
        online_softmax_update(torch.zeros(2, 1, dtype=torch.long), *state[1:], torch.zeros(2, 4), torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match=r"keys must be \(N, D\) with D = 3"):
        online_softmax_trace(torch.zeros(3), torch.zeros(5, 2), torch.zeros(5, 2), 2)
    with pytest.raises(ValueError, match=r"values must be \(N, Dv\) with N = 5"):
        online_softmax_trace(torch.zeros(3), torch.zeros(5, 3), torch.zeros(4, 2), 2)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, got True"):
        online_softmax_trace(torch.zeros(3), torch.zeros(5, 3), torch.zeros(5, 2), True)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, got True"):
        chunked_attention(torch.zeros(2, 3), torch.zeros(4, 3), torch.zeros(4, 2), chunk_size=True)
