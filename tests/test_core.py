"""Tests of visual_attention.core: masked_softmax, scaled_dot_product_attention, query_attention.

Property tests (hypothesis) check the invariants that define attention weights; reference tests
compare with torch's own implementation and with a hand-written loop; gradcheck checks the
backward pass in float64; the last section checks that bad inputs raise a ValueError that says
what was expected and what was given.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from _helpers import gen
from visual_attention import masked_softmax, query_attention, scaled_dot_product_attention

SETTINGS = settings(max_examples=50, deadline=None)

finite = st.floats(min_value=-30, max_value=30, allow_nan=False, allow_infinity=False)
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)




@st.composite
def scores_and_dims(draw, elements=finite, dtype=np.float64):
    """A score array and a valid ``dim`` argument: an int, or a tuple of distinct dims (any sign)."""
    shape = draw(shapes)
    arr = draw(hnp.arrays(dtype, shape, elements=elements))
    ndim = len(shape)
    if draw(st.booleans()):
        d = draw(st.integers(0, ndim - 1))
        dim: int | tuple[int, ...] = d - ndim if draw(st.booleans()) else d
    else:
        chosen = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
        dim = tuple(d - ndim if draw(st.booleans()) else d for d in chosen)
    return torch.from_numpy(arr), dim


def as_tuple(dim, ndim):
    return tuple(d % ndim for d in ((dim,) if isinstance(dim, int) else dim))


# ---------------------------------------------------------------------------------------------
# masked_softmax: properties
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(scores_and_dims())
def test_weights_are_a_distribution_over_the_normalised_dims(sd):
    scores, dim = sd
    w = masked_softmax(scores, dim=dim)
    assert w.shape == scores.shape and w.dtype == scores.dtype
    assert (w >= 0).all()
    total = w.sum(dim=as_tuple(dim, scores.ndim))
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-12)


@SETTINGS
@given(scores_and_dims(elements=st.floats(-30, 30, width=32), dtype=np.float32))
def test_weights_are_a_distribution_in_float32(sd):
    scores, dim = sd
    w = masked_softmax(scores, dim=dim)
    assert w.dtype == torch.float32
    assert (w >= 0).all()
    total = w.sum(dim=as_tuple(dim, scores.ndim))
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-5)


@SETTINGS
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=finite))
def test_single_dim_matches_torch_softmax(arr):
    scores = torch.from_numpy(arr)
    for d in range(-scores.ndim, scores.ndim):
        torch.testing.assert_close(masked_softmax(scores, dim=d), torch.softmax(scores, dim=d), rtol=0, atol=1e-12)


@SETTINGS
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=4, max_side=4), elements=finite))
def test_two_trailing_dims_equal_softmax_of_the_flattened_dims(arr):
    scores = torch.from_numpy(arr)
    w = masked_softmax(scores, dim=(-2, -1))
    ref = torch.softmax(scores.flatten(-2), dim=-1).reshape(scores.shape)
    torch.testing.assert_close(w, ref, rtol=0, atol=1e-12)
    total = w.sum(dim=(-2, -1))
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-12)


@st.composite
def scores_mask_dims(draw):
    scores, dim = draw(scores_and_dims())
    mask = torch.from_numpy(draw(hnp.arrays(np.bool_, tuple(scores.shape))))
    return scores, mask, dim


@SETTINGS
@given(scores_mask_dims())
def test_mask_is_respected(smd):
    scores, mask, dim = smd
    dims = as_tuple(dim, scores.ndim)
    w = masked_softmax(scores, dim=dim, mask=mask)
    assert torch.isfinite(w).all()
    assert (w[~mask] == 0).all()  # exactly zero, not merely small
    assert (w >= 0).all()
    any_allowed = mask.any(dim=dims)
    total = w.sum(dim=dims)
    torch.testing.assert_close(total, any_allowed.to(total.dtype), rtol=0, atol=1e-12)
    # the unmasked entries are the softmax of the unmasked scores alone
    ref = masked_softmax(scores.masked_fill(~mask, float("-inf")), dim=dim)
    torch.testing.assert_close(w, ref, rtol=0, atol=1e-12)


@SETTINGS
@given(scores_mask_dims(), st.integers(0, 2**31 - 1))
def test_gradients_are_finite_with_masks(smd, seed):
    scores, mask, dim = smd
    scores = scores.clone().requires_grad_(True)
    w = masked_softmax(scores, dim=dim, mask=mask, temperature=0.7)
    (w * torch.randn(w.shape, generator=gen(seed), dtype=w.dtype)).sum().backward()
    assert torch.isfinite(scores.grad).all()
    assert (scores.grad[~mask] == 0).all()


def test_fully_masked_row_gives_zeros_and_finite_gradients():
    scores = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [0.5, -1.0, 2.0]], requires_grad=True)
    mask = torch.tensor([[True, False, True], [False, False, False], [True, True, True]])
    w = masked_softmax(scores, mask=mask)
    assert not torch.isnan(w).any()
    assert (w[1] == 0).all()
    torch.testing.assert_close(w.sum(-1), torch.tensor([1.0, 0.0, 1.0]))
    (w * torch.arange(9.0).reshape(3, 3)).sum().backward()
    assert torch.isfinite(scores.grad).all()
    assert (scores.grad[1] == 0).all()


def test_broadcast_mask():
    scores = torch.randn(2, 3, 4, generator=gen(0), dtype=torch.float64)
    mask = torch.tensor([True, False, True, True])  # (Lk,) broadcast over the leading dims
    w = masked_softmax(scores, mask=mask)
    assert (w[..., 1] == 0).all()
    torch.testing.assert_close(w, masked_softmax(scores, mask=mask.expand(2, 3, 4)))


@SETTINGS
@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, min_side=2, max_side=6), elements=finite),
    st.floats(min_value=1e-3, max_value=1e3),
)
def test_temperature_divides_the_scores(arr, t):
    scores = torch.from_numpy(arr)
    torch.testing.assert_close(masked_softmax(scores, temperature=t), masked_softmax(scores / t), rtol=0, atol=1e-12)


@SETTINGS
@given(hnp.arrays(np.float64, st.integers(2, 8), elements=st.floats(-10, 10)))
def test_small_temperature_approaches_argmax_one_hot(arr):
    top2 = np.sort(arr)[-2:]
    assume(top2[1] - top2[0] >= 1e-2)  # a unique maximum
    scores = torch.from_numpy(arr)
    w = masked_softmax(scores, temperature=1e-4)  # gap / T >= 100
    one_hot = F.one_hot(scores.argmax(), scores.numel()).to(w.dtype)
    torch.testing.assert_close(w, one_hot, rtol=0, atol=1e-8)


@SETTINGS
@given(hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(-10, 10)))
def test_large_temperature_approaches_uniform(arr):
    scores = torch.from_numpy(arr)
    w = masked_softmax(scores, temperature=1e8)
    torch.testing.assert_close(w, torch.full_like(w, 1 / w.numel()), rtol=0, atol=1e-6)


@SETTINGS
@given(hnp.arrays(np.float64, st.integers(3, 8), elements=st.floats(-5, 5)))
def test_temperature_orders_the_sharpness(arr):
    """Lower temperature never lowers the weight of the largest score."""
    scores = torch.from_numpy(arr)
    i = scores.argmax()
    tops = [float(masked_softmax(scores, temperature=t)[i]) for t in (0.25, 0.5, 1.0, 2.0, 4.0)]
    assert all(a >= b - 1e-12 for a, b in zip(tops, tops[1:]))


@SETTINGS
@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6), elements=finite),
    st.lists(st.floats(-100, 100), min_size=6, max_size=6),
)
def test_adding_a_constant_per_row_changes_nothing(arr, shifts):
    scores = torch.from_numpy(arr)
    shift = torch.tensor(shifts[: scores.shape[0]], dtype=scores.dtype)[:, None]
    torch.testing.assert_close(masked_softmax(scores + shift), masked_softmax(scores), rtol=0, atol=1e-9)
    # and one constant for the whole tensor when normalising over both dims
    torch.testing.assert_close(
        masked_softmax(scores + shifts[0], dim=(0, 1)), masked_softmax(scores, dim=(0, 1)), rtol=0, atol=1e-9
    )


extreme = st.sampled_from([1e4, -1e4, 1e30, -1e30, 0.0, 1.0, -3.0, float("-inf")])


@SETTINGS
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=6), elements=extreme))
def test_extreme_logits_stay_finite(arr):
    scores = torch.from_numpy(arr)
    w = masked_softmax(scores)
    assert torch.isfinite(w).all()
    assert (w >= 0).all()
    assert (w[scores == float("-inf")] == 0).all()
    has_finite = torch.isfinite(scores).any(-1)
    torch.testing.assert_close(w.sum(-1), has_finite.float(), rtol=0, atol=1e-5)
    # where a row has a finite entry, torch's softmax is well defined: agree with it
    ref = torch.softmax(scores.double(), dim=-1).float()
    torch.testing.assert_close(w[has_finite], ref[has_finite], rtol=0, atol=1e-6)


def test_extreme_logits_examples():
    w = masked_softmax(torch.tensor([[1e30, -1e30, 0.0], [-1e4, 1e4, 3.0], [float("-inf")] * 3]))
    torch.testing.assert_close(w, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    w = masked_softmax(torch.tensor([3e38, -3e38, 1.0]))  # the difference overflows to -inf
    torch.testing.assert_close(w, torch.tensor([1.0, 0.0, 0.0]))


# ---------------------------------------------------------------------------------------------
# scaled_dot_product_attention
# ---------------------------------------------------------------------------------------------

sizes = st.integers(1, 5)


@st.composite
def qkv(draw, dtype=torch.float64, batch=True):
    lq, lk, d, dv = draw(sizes), draw(sizes), draw(sizes), draw(sizes)
    b = (draw(st.integers(1, 3)),) if batch and draw(st.booleans()) else ()
    g = gen(draw(st.integers(0, 2**31 - 1)))
    q = torch.randn(*b, lq, d, generator=g, dtype=dtype)
    k = torch.randn(*b, lk, d, generator=g, dtype=dtype)
    v = torch.randn(*b, lk, dv, generator=g, dtype=dtype)
    return q, k, v


def mask_without_empty_rows(shape, g):
    mask = torch.rand(shape, generator=g) > 0.5
    keep = torch.randint(0, shape[-1], shape[:-1], generator=g)
    return mask.scatter(-1, keep[..., None], True)


@SETTINGS
@given(qkv(), st.data())
def test_permuting_queries_permutes_the_outputs(t, data):
    q, k, v = t
    perm = torch.tensor(data.draw(st.permutations(range(q.shape[-2]))))
    ctx, w = scaled_dot_product_attention(q, k, v)
    ctx_p, w_p = scaled_dot_product_attention(q[..., perm, :], k, v)
    torch.testing.assert_close(ctx_p, ctx[..., perm, :], rtol=0, atol=1e-10)
    torch.testing.assert_close(w_p, w[..., perm, :], rtol=0, atol=1e-10)


@SETTINGS
@given(qkv(), st.data())
def test_permuting_keys_and_values_together(t, data):
    q, k, v = t
    perm = torch.tensor(data.draw(st.permutations(range(k.shape[-2]))))
    ctx, w = scaled_dot_product_attention(q, k, v)
    ctx_p, w_p = scaled_dot_product_attention(q, k[..., perm, :], v[..., perm, :])
    torch.testing.assert_close(ctx_p, ctx, rtol=0, atol=1e-10)
    torch.testing.assert_close(w_p, w[..., perm], rtol=0, atol=1e-10)


@SETTINGS
@given(qkv())
def test_sdpa_shapes_and_weight_rows(t):
    q, k, v = t
    ctx, w = scaled_dot_product_attention(q, k, v)
    assert ctx.shape == (*q.shape[:-1], v.shape[-1])
    assert w.shape == (*q.shape[:-1], k.shape[-2])
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1], dtype=w.dtype), rtol=0, atol=1e-12)
    torch.testing.assert_close(ctx, w @ v, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@SETTINGS
@given(t=st.data())
def test_sdpa_matches_torch(dtype, tol, t):
    q, k, v = t.draw(qkv(dtype=dtype))
    ctx, w = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(ctx, F.scaled_dot_product_attention(q, k, v), rtol=tol, atol=tol)
    scale = t.draw(st.floats(0.05, 3.0))
    ctx, _ = scaled_dot_product_attention(q, k, v, scale=scale)
    torch.testing.assert_close(ctx, F.scaled_dot_product_attention(q, k, v, scale=scale), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@SETTINGS
@given(t=st.data())
def test_sdpa_with_boolean_mask_matches_torch(dtype, tol, t):
    q, k, v = t.draw(qkv(dtype=dtype))
    g = gen(t.draw(st.integers(0, 2**31 - 1)))
    mask = mask_without_empty_rows((*q.shape[:-1], k.shape[-2]), g)
    ctx, w = scaled_dot_product_attention(q, k, v, mask=mask)
    assert (w[~mask] == 0).all()
    torch.testing.assert_close(ctx, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), rtol=tol, atol=tol)
    scale = t.draw(st.floats(0.05, 3.0))
    ctx, _ = scaled_dot_product_attention(q, k, v, mask=mask, scale=scale)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    torch.testing.assert_close(ctx, ref, rtol=tol, atol=tol)


def test_sdpa_broadcast_mask_and_batch_dims():
    g = gen(1)
    q = torch.randn(2, 1, 3, 4, generator=g, dtype=torch.float64)
    k = torch.randn(1, 5, 6, 4, generator=g, dtype=torch.float64)
    v = torch.randn(1, 5, 6, 2, generator=g, dtype=torch.float64)
    mask = torch.tensor([True, False, True, True, False, True])  # one row for every query
    ctx, w = scaled_dot_product_attention(q, k, v, mask=mask)
    assert ctx.shape == (2, 5, 3, 2) and w.shape == (2, 5, 3, 6)
    torch.testing.assert_close(ctx, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), rtol=0, atol=1e-10)


def test_sdpa_query_with_no_allowed_key_gets_zero_context():
    g = gen(2)
    q, k, v = (torch.randn(3, 4, generator=g) for _ in range(3))
    mask = torch.tensor([[True, True, False], [False, False, False], [False, True, False]])
    ctx, w = scaled_dot_product_attention(q, k, v, mask=mask)
    assert torch.isfinite(ctx).all()
    assert (ctx[1] == 0).all() and (w[1] == 0).all()
    torch.testing.assert_close(ctx[2], v[1])


def test_default_scale_is_inverse_sqrt_d():
    g = gen(3)
    q, k, v = (torch.randn(4, 9, generator=g, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(
        scaled_dot_product_attention(q, k, v)[0], scaled_dot_product_attention(q, k, v, scale=1 / 3)[0]
    )
    w = scaled_dot_product_attention(q, k, v)[1]
    torch.testing.assert_close(w, torch.softmax(q @ k.T / 3, dim=-1))


# ---------------------------------------------------------------------------------------------
# query_attention
# ---------------------------------------------------------------------------------------------


def loop_query_attention(fm, q, scale=1.0, temperature=1.0):
    """A plain-Python reference: scores, softmax over the H·W positions and the context, one by one."""
    b_, c_, h_, w_ = fm.shape
    weights = torch.zeros(b_, h_, w_, dtype=fm.dtype)
    context = torch.zeros(b_, c_, dtype=fm.dtype)
    for b in range(b_):
        e = {}
        for i, j in itertools.product(range(h_), range(w_)):
            e[i, j] = sum(float(q[b, c]) * float(fm[b, c, i, j]) for c in range(c_)) * scale / temperature
        top = max(e.values())
        z = sum(np.exp(v - top) for v in e.values())
        for (i, j), v in e.items():
            weights[b, i, j] = np.exp(v - top) / z
            for c in range(c_):
                context[b, c] += weights[b, i, j] * fm[b, c, i, j]
    return weights, context


@pytest.mark.parametrize("scale, temperature", [(1.0, 1.0), (3**-0.5, 1.0), (1.0, 0.5), (0.7, 2.0)])
def test_query_attention_matches_a_loop(scale, temperature):
    g = gen(4)
    fm = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    q = torch.randn(2, 3, generator=g, dtype=torch.float64)
    w, ctx = query_attention(fm, q, scale=scale, temperature=temperature)
    w_ref, ctx_ref = loop_query_attention(fm, q, scale, temperature)
    assert w.shape == (2, 4, 4) and ctx.shape == (2, 3)
    torch.testing.assert_close(w, w_ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(ctx, ctx_ref, rtol=0, atol=1e-10)


def test_query_attention_matches_a_loop_float32():
    g = gen(5)
    fm = torch.randn(2, 3, 4, 4, generator=g)
    q = torch.randn(2, 3, generator=g)
    w, ctx = query_attention(fm, q)
    w_ref, ctx_ref = loop_query_attention(fm.double(), q.double())
    torch.testing.assert_close(w, w_ref.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ctx, ctx_ref.float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@SETTINGS
@given(
    b=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(1, 4), w=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1), scale=st.floats(0.05, 2.0),
)
def test_query_attention_is_sdpa_with_one_query(dtype, tol, b, c, h, w, seed, scale):
    g = gen(seed)
    fm = torch.randn(b, c, h, w, generator=g, dtype=dtype)
    q = torch.randn(b, c, generator=g, dtype=dtype)
    weights, ctx = query_attention(fm, q, scale=scale)
    kv = fm.flatten(2).transpose(1, 2)  # (B, H·W, C)
    ctx_ref, w_ref = scaled_dot_product_attention(q[:, None], kv, kv, scale=scale)
    torch.testing.assert_close(ctx, ctx_ref[:, 0], rtol=tol, atol=tol)
    torch.testing.assert_close(weights, w_ref[:, 0].reshape(b, h, w), rtol=tol, atol=tol)
    torch.testing.assert_close(ctx, F.scaled_dot_product_attention(q[:, None], kv, kv, scale=scale)[:, 0],
                               rtol=tol, atol=tol)


@SETTINGS
@given(
    b=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(1, 4), w=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1), data=st.data(),
)
def test_permuting_positions_permutes_weights_and_keeps_context(b, c, h, w, seed, data):
    g = gen(seed)
    fm = torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    q = torch.randn(b, c, generator=g, dtype=torch.float64)
    perm = torch.tensor(data.draw(st.permutations(range(h * w))))
    fm_p = fm.flatten(2)[..., perm].reshape(b, c, h, w)
    weights, ctx = query_attention(fm, q)
    weights_p, ctx_p = query_attention(fm_p, q)
    torch.testing.assert_close(weights_p, weights.flatten(1)[:, perm].reshape(b, h, w), rtol=0, atol=1e-10)
    torch.testing.assert_close(ctx_p, ctx, rtol=0, atol=1e-10)
    total = weights.sum(dim=(-2, -1))
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-12)


def test_query_attention_mask():
    g = gen(6)
    fm = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    q = torch.randn(2, 3, generator=g, dtype=torch.float64)
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[0, 1, 2] = True  # image 0 may only look at one cell
    mask[1, :, :2] = True  # image 1 at the left half
    w, ctx = query_attention(fm, q, mask=mask)
    assert (w[~mask] == 0).all()
    assert float(w[0, 1, 2]) == pytest.approx(1.0)
    torch.testing.assert_close(ctx[0], fm[0, :, 1, 2])
    w_ref, ctx_ref = query_attention(fm[1:, :, :, :2].contiguous(), q[1:])
    torch.testing.assert_close(w[1, :, :2], w_ref[0])
    torch.testing.assert_close(ctx[1], ctx_ref[0])
    # a (H, W) mask is broadcast over the batch
    w2, _ = query_attention(fm, q, mask=mask[1])
    assert (w2[:, :, 2:] == 0).all()
    # no allowed position: zero weights and zero context, not NaN
    w3, ctx3 = query_attention(fm, q, mask=torch.zeros(4, 4, dtype=torch.bool))
    assert (w3 == 0).all() and (ctx3 == 0).all()


def test_query_attention_temperature():
    g = gen(7)
    fm = torch.randn(1, 3, 4, 4, generator=g, dtype=torch.float64)
    q = torch.randn(1, 3, generator=g, dtype=torch.float64)
    w_t, _ = query_attention(fm, q, scale=0.8, temperature=0.25)
    w_s, _ = query_attention(fm, q, scale=0.8 / 0.25)
    torch.testing.assert_close(w_t, w_s)


# ---------------------------------------------------------------------------------------------
# gradcheck in float64
# ---------------------------------------------------------------------------------------------


def test_gradcheck_masked_softmax():
    g = gen(8)
    x = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, False, True, True], [False] * 4, [True] * 4])  # row 1 fully masked
    assert torch.autograd.gradcheck(lambda s: masked_softmax(s, mask=mask), (x,))
    assert torch.autograd.gradcheck(lambda s: masked_softmax(s, mask=mask, temperature=0.6), (x,))
    assert torch.autograd.gradcheck(lambda s: masked_softmax(s, dim=0, temperature=2.0), (x,))
    y = torch.randn(2, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    mask3 = torch.rand(2, 3, 3, generator=g) > 0.4
    mask3[1] = False  # a fully masked (H, W) slice
    assert torch.autograd.gradcheck(lambda s: masked_softmax(s, dim=(-2, -1), mask=mask3), (y,))
    assert torch.autograd.gradgradcheck(lambda s: masked_softmax(s, mask=mask), (x,))


def test_gradcheck_scaled_dot_product_attention():
    g = gen(9)
    q = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 5, 2, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(2, 3, 5, generator=g) > 0.4
    mask[0, 1] = False  # a query with no key
    assert torch.autograd.gradcheck(lambda *a: scaled_dot_product_attention(*a), (q, k, v))
    assert torch.autograd.gradcheck(lambda *a: scaled_dot_product_attention(*a, mask=mask, scale=0.7), (q, k, v))


def test_gradcheck_query_attention():
    g = gen(10)
    fm = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    q = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(2, 4, 4, generator=g) > 0.3
    assert torch.autograd.gradcheck(lambda f, x: query_attention(f, x), (fm, q))
    assert torch.autograd.gradcheck(
        lambda f, x: query_attention(f, x, scale=0.5, temperature=0.7, mask=mask), (fm, q)
    )


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


def esc(s: str) -> str:
    return re.escape(s)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scores=torch.tensor([1, 2, 3])), "floating-point.*torch.int64"),
        (dict(scores=torch.tensor(1.0)), "at least one dimension.*0-d"),
        (dict(scores=torch.zeros(3, 4), dim=2), "dim 2 is out of range.*rank 2"),
        (dict(scores=torch.zeros(3, 4), dim=-3), "dim -3 is out of range.*rank 2"),
        (dict(scores=torch.zeros(3, 4), dim=(0, 5)), "dim 5 is out of range.*rank 2"),
        (dict(scores=torch.zeros(3, 4), dim=(0, -2)), esc("dim (0, -2) names the same dimension twice")),
        (dict(scores=torch.zeros(3, 4), dim=(1, 1)), "same dimension twice"),
        (dict(scores=torch.zeros(3, 4), dim=()), "at least one dimension"),
        (dict(scores=torch.zeros(3, 4), temperature=0), "temperature must be a positive finite number, got 0"),
        (dict(scores=torch.zeros(3, 4), temperature=-1.5), "temperature must be a positive finite number, got -1.5"),
        (dict(scores=torch.zeros(3, 4), temperature=float("nan")), "temperature must be a positive finite number"),
        (dict(scores=torch.zeros(3, 4), mask=torch.ones(3, 4)), "boolean.*torch.float32"),
        (dict(scores=torch.zeros(3, 4), mask=[[True] * 4] * 3), "boolean.*list"),
        (
            dict(scores=torch.zeros(3, 4), mask=torch.ones(2, 4, dtype=torch.bool)),
            esc("mask of shape (2, 4) does not broadcast to scores of shape (3, 4)"),
        ),
        (
            dict(scores=torch.zeros(3, 4), mask=torch.ones(2, 3, 4, dtype=torch.bool)),
            esc("mask of shape (2, 3, 4) does not broadcast to scores of shape (3, 4)"),
        ),
    ],
)
def test_masked_softmax_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        masked_softmax(**kwargs)


def r(*shape, dtype=torch.float32):
    return torch.zeros(*shape, dtype=dtype)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((r(3), r(3, 4), r(3, 4)), {}, esc("q must be at least 2-d (*B, L, D), got shape (3")),
        ((r(3, 4), r(4), r(3, 4)), {}, esc("k must be at least 2-d (*B, L, D), got shape (4")),
        ((r(3, 4), r(3, 4), r(4)), {}, esc("v must be at least 2-d (*B, L, D), got shape (4")),
        ((r(3, 4, dtype=torch.int64), r(3, 4), r(3, 4)), {}, "q must be a floating-point tensor.*int64"),
        ((r(3, 4), r(3, 4), r(3, 4, dtype=torch.float64)), {}, "share a dtype.*float32.*float64"),
        ((r(3, 4), r(5, 6), r(5, 2)), {}, esc("q (3, 4) and k (5, 6) must have the same feature size D")),
        ((r(3, 4), r(5, 4), r(6, 2)), {}, esc("k (5, 4) and v (6, 2) must have the same number of keys Lk")),
        (
            (r(2, 3, 4), r(3, 5, 4), r(3, 5, 2)), {},
            esc("batch dimensions of q (2, 3, 4), k (3, 5, 4) and v (3, 5, 2) do not broadcast"),
        ),
        ((r(3, 4), r(5, 4), r(5, 2)), {"mask": torch.ones(3, 5, dtype=torch.uint8)}, "boolean.*torch.uint8"),
        (
            (r(3, 4), r(5, 4), r(5, 2)), {"mask": torch.ones(4, 5, dtype=torch.bool)},
            esc("mask of shape (4, 5) does not broadcast to scores of shape (3, 5)"),
        ),
        (
            (r(3, 4), r(5, 4), r(5, 2)), {"mask": torch.ones(2, 3, 5, dtype=torch.bool)},
            esc("mask of shape (2, 3, 5) does not broadcast to scores of shape (3, 5)"),
        ),
    ],
)
def test_sdpa_validation(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        scaled_dot_product_attention(*args, **kwargs)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((r(2, 3, 4), r(2, 3)), {}, esc("feature_maps must be 4-d (B, C, H, W), got shape (2, 3, 4)")),
        ((r(2, 3, 4, 4), r(2, 3, 1)), {}, esc("query must be 2-d (B, C), got shape (2, 3, 1)")),
        (
            (r(2, 3, 4, 4), r(2, 5)), {},
            esc("query must be (B, C) with B = 2 and C = 3, got shape (2, 5)"),
        ),
        (
            (r(2, 3, 4, 4), r(1, 3)), {},
            esc("query must be (B, C) with B = 2 and C = 3, got shape (1, 3)"),
        ),
        ((r(2, 3, 4, 4, dtype=torch.int32), r(2, 3)), {}, "feature_maps must be a floating-point.*int32"),
        ((r(2, 3, 4, 4), r(2, 3, dtype=torch.int64)), {}, "query must be a floating-point.*int64"),
        ((r(2, 3, 4, 4), r(2, 3, dtype=torch.float64)), {}, "dtype torch.float64 differs.*torch.float32"),
        ((r(2, 3, 4, 4), r(2, 3)), {"temperature": 0.0}, "temperature must be a positive finite number"),
        ((r(2, 3, 4, 4), r(2, 3)), {"mask": torch.ones(2, 4, 4)}, "boolean.*torch.float32"),
        (
            (r(2, 3, 4, 4), r(2, 3)), {"mask": torch.ones(2, 1, 4, 4, dtype=torch.bool)},
            esc("mask of shape (2, 1, 4, 4) does not broadcast to (B, H, W) = (2, 4, 4)"),
        ),
        (
            (r(2, 3, 4, 5), r(2, 3)), {"mask": torch.ones(2, 5, 4, dtype=torch.bool)},
            esc("mask of shape (2, 5, 4) does not broadcast to (B, H, W) = (2, 4, 5)"),
        ),
    ],
)
def test_query_attention_validation(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        query_attention(*args, **kwargs)


# --- regressions: found by review ---------------------------------------------------------------


@pytest.mark.parametrize(
    "scores, temperature",
    [([1e30, 0.0], 1e-9), ([3e38, 0.0], 0.5), ([3e38, -3e38], 0.1), ([-1e30, -1e30 + 1e24], 1e-6)],
)
def test_small_temperature_on_huge_scores_stays_finite(scores, temperature):
    w = masked_softmax(torch.tensor(scores), temperature=temperature)
    assert torch.isfinite(w).all(), w
    assert torch.allclose(w.sum(), torch.tensor(1.0))
    assert int(w.argmax()) == int(torch.tensor(scores).argmax())


def test_positive_infinite_scores_take_all_the_weight():
    w = masked_softmax(torch.tensor([[float("inf"), 0.0, float("inf")], [1.0, 2.0, float("-inf")]]))
    assert torch.equal(w[0], torch.tensor([0.5, 0.0, 0.5]))
    assert torch.allclose(w[1], torch.softmax(torch.tensor([1.0, 2.0, float("-inf")]), 0))


@pytest.mark.parametrize("temperature", [True, float("inf"), float("nan"), 0, -1.0, "1"])
def test_bad_temperatures_are_rejected(temperature):
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        masked_softmax(torch.zeros(3), temperature=temperature)


def test_numpy_temperatures_are_accepted():
    s = torch.tensor([0.0, 1.0, 2.0])
    assert torch.allclose(masked_softmax(s, temperature=np.float32(2.0)), masked_softmax(s, temperature=2.0))


# --- the package's convention for handing back attention weights --------------------------------

from visual_attention import AttentionModule, record_attention  # noqa: E402


class _Gate(AttentionModule):
    def forward(self, x):
        w = self.remember(torch.sigmoid(x.mean(-1)))
        return x * w[..., None]


def test_record_attention_collects_weights_by_name_and_only_while_recording():
    model = torch.nn.Sequential(_Gate(), torch.nn.Linear(3, 3), _Gate())
    x = torch.randn(2, 3)
    model(x)
    assert all(m.attention is None for m in model if isinstance(m, AttentionModule))
    with record_attention(model) as maps:
        y = model(x)
    assert list(maps) == ["0", "2"]
    assert maps["0"].shape == (2,) and not maps["0"].requires_grad
    assert torch.allclose(maps["0"], torch.sigmoid(x.mean(-1)))
    assert all(not m.recording and m.attention is None for m in model if isinstance(m, AttentionModule))
    assert torch.allclose(model(x), y)


def test_record_attention_on_a_bare_module_and_validation():
    g = _Gate()
    with record_attention(g) as maps:
        g(torch.ones(1, 4))
    assert list(maps) == [""]
    with pytest.raises(ValueError, match="must be a torch.nn.Module"):
        record_attention("not a model")


# --- need_weights=False (PyTorch's fused kernel) and the unchecked fast path ---------------------------


@st.composite
def qkv_and_mask(draw):
    """q, k, v (float64, batch dimensions that broadcast) and a mask, possibly with fully masked queries."""
    lq, lk, d, dv = draw(sizes), draw(sizes), draw(sizes), draw(sizes)
    g = gen(draw(st.integers(0, 2**31 - 1)))
    bq, bk = draw(st.sampled_from([((), ()), ((2,), (2,)), ((2, 1), (1, 3)), ((), (2,)), ((3,), ())]))
    q = torch.randn(*bq, lq, d, generator=g, dtype=torch.float64)
    k = torch.randn(*bk, lk, d, generator=g, dtype=torch.float64)
    v = torch.randn(*bk, lk, dv, generator=g, dtype=torch.float64)
    kind = draw(st.sampled_from(["none", "full", "row", "keys"]))
    batch = torch.broadcast_shapes(bq, bk)
    mask = {
        "none": None,
        "full": torch.rand(*batch, lq, lk, generator=g) > 0.5,  # may leave a query with no key
        "row": torch.rand(lq, 1, generator=g) > 0.3,  # broadcast over the keys: whole queries masked
        "keys": torch.rand(lk, generator=g) > 0.3,  # broadcast over the queries: maybe no key at all
    }[kind]
    return q, k, v, mask


@SETTINGS
@given(qkv_and_mask(), st.sampled_from([None, 0.3, 1.0, 2.5]))
def test_need_weights_false_gives_the_same_context_and_gradients(t, scale):
    q, k, v, mask = (x.requires_grad_() if x is not None and x.is_floating_point() else x for x in t)
    ctx, w = scaled_dot_product_attention(q, k, v, mask=mask, scale=scale)
    fast, none = scaled_dot_product_attention(q, k, v, mask=mask, scale=scale, need_weights=False)
    assert none is None and w.shape == (*ctx.shape[:-1], k.shape[-2])
    torch.testing.assert_close(fast, ctx, rtol=1e-10, atol=1e-10)
    if mask is not None:  # queries with no allowed key: zero context, as in the default path
        empty = ~mask.expand(w.shape).any(-1)
        assert (fast[empty.expand(fast.shape[:-1])] == 0).all()
    g = torch.randn_like(ctx)
    want = torch.autograd.grad(ctx, (q, k, v), g)
    got = torch.autograd.grad(fast, (q, k, v), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_gradcheck_need_weights_false_with_a_fully_masked_query():
    g = gen(11)
    q = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 5, 2, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(2, 3, 5, generator=g) > 0.4
    mask[1, 2] = False
    fn = lambda *a: scaled_dot_product_attention(*a, mask=mask, scale=0.7, need_weights=False)[0]
    assert torch.autograd.gradcheck(fn, (q, k, v))
    assert (fn(q, k, v)[1, 2] == 0).all()


def test_need_weights_false_falls_back_where_the_fused_kernel_gives_nan():
    # +inf scores: the fused kernel gives NaN; ours puts all the weight on the infinite scores
    q = torch.tensor([[float("inf"), 0.0], [1.0, 0.0]])
    k = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 1.0]])
    v = torch.tensor([[1.0], [10.0], [100.0]])
    ctx, w = scaled_dot_product_attention(q, k, v)
    assert torch.equal(w[0], torch.tensor([0.5, 0.0, 0.5])) and torch.equal(ctx[0], torch.tensor([50.5]))
    fast, _ = scaled_dot_product_attention(q, k, v, need_weights=False)
    torch.testing.assert_close(fast, ctx)


def test_sdpa_fast_path_falls_back_on_overflowing_scores():
    # scores 3e38 · 4 overflow to +inf: torch.softmax gives NaN, the careful softmax does not
    q = torch.tensor([[3e38, 0.0], [1.0, 2.0]])
    k = torch.tensor([[2.0, 0.0], [1.0, 0.0], [-2.0, 0.0]])
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    ctx, w = scaled_dot_product_attention(q, k, v, scale=2.0)
    assert torch.isfinite(ctx).all() and torch.isfinite(w).all()
    scores = torch.matmul(q, k.T) * 2.0
    torch.testing.assert_close(w, masked_softmax(scores))
    assert torch.equal(w[0], torch.tensor([0.5, 0.5, 0.0]))


def test_sdpa_with_a_tensor_scale_keeps_its_gradient():
    g = gen(12)
    q, k, v = (torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    scale = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    ctx, _ = scaled_dot_product_attention(q, k, v, scale=scale)
    torch.testing.assert_close(ctx, scaled_dot_product_attention(q, k, v, scale=0.6)[0])
    assert torch.autograd.gradcheck(lambda s: scaled_dot_product_attention(q, k, v, scale=s)[0], (scale,))


@pytest.mark.parametrize(
    "args, match",
    [
        ((r(3, 4, dtype=torch.int64), r(3, 4), r(3, 4)), "q must be a floating-point tensor.*int64"),
        ((r(3, 4), r(5, 6), r(5, 2)), esc("q (3, 4) and k (5, 6) must have the same feature size D")),
        ((r(2, 3, 4), r(3, 5, 4), r(3, 5, 2)), "do not broadcast"),
    ],
)
def test_need_weights_false_validates_the_same_way(args, match):
    with pytest.raises(ValueError, match=match):
        scaled_dot_product_attention(*args, need_weights=False)
    with pytest.raises(ValueError, match=esc("mask of shape (4, 5) does not broadcast")):
        scaled_dot_product_attention(r(3, 4), r(5, 4), r(5, 2), mask=torch.ones(4, 5, dtype=torch.bool),
                                     need_weights=False)
