"""Tests of visual_attention.spatial's hard attention: HardSpatialAttention and reinforce_loss.

Properties (hypothesis): the policy is soft attention's distribution; a glimpse is the feature
vector at the chosen location (the mean over k glimpses); ``log_prob`` is the log of the chosen
weights; eval mode takes the most likely locations; the REINFORCE surrogate's gradient is
``-(r - b) ∇ log π`` and its expectation over draws is the exact policy gradient; inputs are
validated.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _helpers import gen
from visual_attention.core import record_attention
from visual_attention.spatial import HardSpatialAttention, QuerySpatialAttention, reinforce_loss

SETTINGS = settings(max_examples=30, deadline=None)


def _module(c, seed, k=1, mode="learned", dtype=torch.float64):
    m = HardSpatialAttention(c, query=mode, glimpses=k).to(dtype)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=gen(seed), dtype=dtype))
    return m


@SETTINGS
@given(
    st.integers(1, 3),
    st.integers(1, 4),
    st.integers(1, 5),
    st.integers(1, 5),
    st.integers(1, 3),
    st.sampled_from(["learned", "global"]),
    st.integers(0, 2**31 - 1),
)
def test_glimpse_is_the_features_at_the_sampled_locations(b, c, h, w, k, mode, seed):
    x = torch.randn(b, c, h, w, generator=gen(seed), dtype=torch.float64)
    m = _module(c, seed, k, mode).train()
    soft = QuerySpatialAttention(c, query=mode).to(torch.float64)
    soft.load_state_dict(m.state_dict())
    torch.manual_seed(seed)
    with record_attention(m) as maps, record_attention(soft) as soft_maps:
        out = m(x)
        soft(x)
    pi = maps[""]
    assert torch.allclose(pi, soft_maps[""])  # the policy is soft attention's weights
    assert (pi >= 0).all() and torch.allclose(pi.sum(dim=(1, 2)), torch.ones(b, dtype=pi.dtype))
    loc = m.location
    assert loc.shape == (b, k) and ((0 <= loc) & (loc < h * w)).all()
    flat = x.flatten(2)
    expected = torch.stack([flat[i, :, loc[i]].mean(-1) for i in range(b)])
    assert out.shape == (b, c) and torch.allclose(out, expected)
    log_pi = pi.flatten(1).gather(1, loc).log().sum(-1)
    assert torch.allclose(m.log_prob, log_pi, atol=1e-8)


def test_eval_mode_takes_the_most_likely_locations():
    x = torch.randn(2, 3, 4, 4, generator=gen(0), dtype=torch.float64)
    m = _module(3, 1, k=2).eval()
    with record_attention(m) as maps:
        m(x)
    top = maps[""].flatten(1).topk(2, dim=-1).indices
    assert torch.equal(m.location, top)
    m.sample = True  # sample=True draws in eval mode too
    torch.manual_seed(0)
    draws = {tuple(m(x).flatten().tolist()) for _ in range(20)}
    assert len(draws) > 1


def test_sampled_glimpses_average_to_soft_attentions_context():
    x = torch.randn(1, 3, 3, 3, generator=gen(2), dtype=torch.float64)
    m = _module(3, 3).train()
    soft = QuerySpatialAttention(3).to(torch.float64)
    soft.load_state_dict(m.state_dict())
    torch.manual_seed(0)
    mean = torch.stack([m(x) for _ in range(4000)]).mean(0)
    assert torch.allclose(mean, soft(x), atol=0.1)  # E_l[x_l] = Σ α_ij x_ij


def test_reinforce_surrogate_and_baseline():
    log_prob = torch.tensor([-1.0, -2.0, -0.5], requires_grad=True)
    reward = torch.tensor([1.0, 0.0, 1.0])
    loss = reinforce_loss(log_prob, reward, baseline=False)
    loss.backward()
    assert torch.allclose(log_prob.grad, -reward / 3)
    log_prob.grad = None
    reinforce_loss(log_prob, reward).backward()
    base = torch.tensor([0.5, 1.0, 0.5])  # the mean reward of the other two
    assert torch.allclose(log_prob.grad, -(reward - base) / 3)
    # a constant reward with the baseline: nothing to learn
    assert reinforce_loss(log_prob, torch.ones(3)).item() == 0.0


def test_reinforce_is_unbiased_for_the_exact_policy_gradient():
    """E_l[(r(l) − b) ∇ log π(l)] = ∇ Σ_l π(l) r(l) for a reward that depends on the location."""
    x = torch.randn(1, 2, 2, 3, generator=gen(4), dtype=torch.float64)
    m = _module(2, 5).train()
    r_of = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    with record_attention(m) as maps:
        m(x)
    exact = torch.autograd.grad(_expected(m, x, r_of), m.query)[0]  # ∇ Σ_l π(l) r(l)
    torch.manual_seed(1)
    xs = x.expand(4000, -1, -1, -1)
    m(xs)
    reward = r_of[m.location[:, 0]]
    est = torch.autograd.grad(reinforce_loss(m.log_prob, reward), m.query)[0]
    assert torch.allclose(-est, exact, atol=0.05 + 0.1 * exact.abs().max().item())
    assert maps[""].shape == (1, 2, 3)


def _expected(m, x, r_of):
    scores = torch.einsum("bdhw,bd->bhw", m.key(x), m._query(x)) * m.scale
    return (scores.flatten(1).softmax(-1)[0] * r_of).sum()


def test_low_precision_extremes_and_gradcheck():
    for dtype in (torch.float16, torch.bfloat16):
        x = torch.randn(2, 3, 4, 4, generator=gen(0)).to(dtype) * 1e3
        m = _module(3, 0, dtype=dtype).eval()
        with record_attention(m) as maps:
            out = m(x)
        assert torch.isfinite(out).all() and torch.isfinite(maps[""]).all()
        assert torch.isfinite(m.log_prob).all()
    x = torch.randn(1, 3, 3, 3, generator=gen(1), dtype=torch.float64, requires_grad=True)
    m = _module(3, 2, k=2).eval()

    def f(x):
        out = m(x)
        return out, m.log_prob

    assert torch.autograd.gradcheck(f, (x,))


def test_validation():
    with pytest.raises(ValueError, match="glimpses"):
        HardSpatialAttention(3, glimpses=0)
    with pytest.raises(ValueError, match="sample"):
        HardSpatialAttention(3, sample="yes")
    with pytest.raises(ValueError, match="x"):
        HardSpatialAttention(3)(torch.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match="batch of at least 2"):
        reinforce_loss(torch.zeros(1), torch.ones(1))
    with pytest.raises(ValueError, match="reward"):
        reinforce_loss(torch.zeros(3), torch.ones(2))
    with pytest.raises((ValueError, TypeError), match="log_prob"):
        reinforce_loss(torch.zeros(3, dtype=torch.long), torch.ones(3))
