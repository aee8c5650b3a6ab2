"""Tests of visual_attention.labs.efficient_attention: the widgets, peak_memory, the cost meter
and the distance between linear and softmax attention."""

from __future__ import annotations

import pytest
import torch

from _helpers import gen
from visual_attention.efficient import linear_attention, online_softmax_trace
from visual_attention.labs.efficient_attention import (
    METHODS,
    linear_vs_softmax,
    linear_weights,
    loglog_slope,
    measure_cost,
    online_softmax_explorer,
    weights_explorer,
)
from visual_attention.views.widgets import count_views, explorer_view


def test_online_softmax_explorer_steps_through_the_blocks():
    torch.manual_seed(0)
    image = torch.rand(3, 16, 24)
    features = torch.nn.functional.normalize(torch.randn(2, 2, 3), dim=0)
    ex = online_softmax_explorer(
        image, features, ["a", "b"], [(0, 0), (1, 2)], chunk_sizes=(2, 6), scale=3.0
    )
    assert count_views(ex) == 2 * 3 * 2  # chunk sizes × blocks (the largest count) × queries
    first, last = (
        explorer_view(ex, chunk=2, block=1, query=(0, 0)),
        explorer_view(ex, chunk=2, block=3, query=(0, 0)),
    )
    assert first.value != last.value and "done: full attention" in last.value
    keys = features.reshape(2, 6).T
    final = online_softmax_trace(keys[0], keys, keys, 2, 3.0)[-1]
    torch.testing.assert_close(final["weights"], torch.softmax(keys @ keys[0] * 3.0, dim=0))
    with pytest.raises(ValueError, match=r"features must be 3-d \(C, h, w\)"):
        online_softmax_explorer(image, features[0], ["a"], [(0, 0)])


def test_loglog_slope_recovers_powers_and_checks_its_input():

    xs = [256, 1024, 4096]
    assert loglog_slope(xs, [3e-9 * x**2 for x in xs]) == pytest.approx(2.0)
    assert loglog_slope(xs, [5e-6 * x for x in xs]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive"):
        loglog_slope(xs, [1.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="two or more"):
        loglog_slope([1.0], [1.0])


def test_measure_cost_rows_and_memory_of_the_weight_matrix():

    cost = measure_cost({"global": [8, 16], "linear": [8]}, dim=8, repeats=2)
    assert [r[0] for r in cost["global"]] == [64, 256] and [r[0] for r in cost["linear"]] == [64]
    assert all(r[1] > 0 for rows in cost.values() for r in rows)
    assert cost["global"][1][2] >= 256 * 256 * 4  # the (n, n) float32 weights at least
    t = torch.randn(1, 64, 8, generator=gen(0))
    for name, fn in METHODS.items():  # every method is self-attention: one output per token
        assert fn(t, 8).numel() == t.numel(), name
    with pytest.raises(ValueError, match="unknown methods"):
        measure_cost({"flash": [8]})


def test_linear_weights_reproduce_linear_attention_by_hand():
    from visual_attention.labs.efficient_attention import linear_weights

    q, k, v = (torch.randn(2, 5, 3, generator=gen(i), dtype=torch.float64) for i in range(3))
    w = linear_weights(q, k, eps=0.0)
    phi = lambda x: torch.where(x > 0, x + 1, torch.exp(x))  # elu(x) + 1, by hand
    kernel = torch.einsum("bid,bjd->bij", phi(q), phi(k))
    torch.testing.assert_close(w, kernel / kernel.sum(-1, keepdim=True))
    torch.testing.assert_close(w @ v, linear_attention(q, k, v, eps=0.0))


def test_linear_vs_softmax_by_hand_and_limits():

    q, k, v = (torch.randn(1, 6, 4, generator=gen(i), dtype=torch.float64) for i in range(3))
    r = linear_vs_softmax(q, k, v, temperature=2.0)
    w_soft = torch.softmax(q @ k.transpose(-2, -1) / (2.0 * 2.0), dim=-1)  # / (T · √D)
    w_lin = linear_weights(q / 2**0.5, k / 2**0.5)
    o_soft, o_lin = w_soft @ v, w_lin @ v
    assert r["output_error"] == pytest.approx(float((o_lin - o_soft).norm() / o_soft.norm()))
    assert r["weights_tv"] == pytest.approx(float(0.5 * (w_lin - w_soft).abs().sum(-1).mean()))
    assert r["max_softmax"] == pytest.approx(float(w_soft.amax(-1).mean()))
    assert r["max_linear"] == pytest.approx(float(w_lin.amax(-1).mean()))
    assert 0 <= r["weights_tv"] <= 1
    with pytest.raises(ValueError, match="temperature"):
        linear_vs_softmax(q, k, v, temperature=0.0)


def test_weights_explorer_shows_both_weights():

    image = torch.rand(3, 16, 24, generator=gen(0))
    features = torch.nn.functional.normalize(torch.randn(2, 2, 3, generator=gen(1)), dim=0)
    ex = weights_explorer(image, features, [(0, 0), (1, 2)], temperatures=(0.1, 1.0))
    assert count_views(ex) == 2 * 2
    sharp, flat = (explorer_view(ex, temperature=t, query=(0, 0)).value for t in (0.1, 1.0))
    assert "softmax" in sharp and "linear" in sharp and sharp != flat
    with pytest.raises(ValueError, match="temperature"):
        weights_explorer(image, features, [(0, 0)], temperatures=(0.0,))


def test_retrieval_sets_point_at_the_digit_each_query_names():
    from visual_attention.labs.efficient_attention import _digit_features, retrieval_sets

    x, y = retrieval_sets(5, length=6, split="test", seed=3)
    assert x.shape == (5, 12, 6 + 64) and y.shape == (5, 6)
    feats, labels = _digit_features("test")
    for b in range(5):
        positions = x[b, 6:, :6].argmax(-1)  # each query's one-hot position
        assert sorted(positions.tolist()) == list(range(6))  # a permutation
        assert (x[b, :6, :6] == torch.eye(6)).all()  # the strip's tokens carry their positions
        for i, p in enumerate(positions.tolist()):
            digit = (feats - x[b, p, 6:]).abs().sum(-1).argmin()  # which digit sits there
            assert labels[digit] == y[b, i]
    assert torch.equal(retrieval_sets(5, 6, "test", 3)[0], x)  # the seed fixes the draw
    with pytest.raises(ValueError, match="split"):
        retrieval_sets(2, split="val")


def test_retrieval_model_shapes_parameters_and_linear_rank():
    from visual_attention.labs.efficient_attention import RetrievalModel, retrieval_sets

    x, _ = retrieval_sets(3, length=8, seed=0)
    for kind in ("softmax", "linear", "mlp"):
        assert RetrievalModel(kind, length=8, dim=2)(x).shape == (3, 8, 10)
    soft, lin = RetrievalModel("softmax", 8, 2), RetrievalModel("linear", 8, 2)
    assert sum(p.numel() for p in soft.parameters()) == 2 * 8 * 2 + 64 * 10 + 10
    lin.load_state_dict(soft.state_dict())
    lin, x = lin.double(), x.double()  # float64: the numerical rank is the rank
    q, k = lin.query(x[:, 8:, :8]), lin.key(x[:, :8, :8])
    weights = linear_weights(q, k)  # the (8, 8) weights linear attention implies
    assert torch.linalg.matrix_rank(weights[0].detach()) <= 2  # rank ≤ dim, never 8
    soft_w = torch.softmax(q @ k.transpose(-2, -1) / 2**0.5, dim=-1)
    assert torch.linalg.matrix_rank(soft_w[0].detach()) == 8  # exp breaks the rank
    with pytest.raises(ValueError, match="kind"):
        RetrievalModel("flash")
    with pytest.raises(ValueError, match="x must be"):
        soft(torch.zeros(3, 10, 72))


def test_run_retrieval_softmax_learns_where_linear_attention_cannot():
    from visual_attention.labs.efficient_attention import run_retrieval

    soft, per_query, params = run_retrieval(
        "softmax", seeds=(0,), length=8, dim=3, epochs=6, n_train=2000, n_test=100
    )
    lin, _, _ = run_retrieval(
        "linear", seeds=(0,), length=8, dim=3, epochs=6, n_train=2000, n_test=100
    )
    assert per_query.shape == (800,) and params == 2 * 8 * 3 + 650
    assert soft[0] > 0.55 and soft[0] > lin[0] + 0.15
