"""Tests of visual_attention.labs.foundations: the look-up task, its five heads and the page model."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from visual_attention import record_attention
from visual_attention.labs.digits import DIGIT_SIZE, digits_at
from visual_attention.labs.foundations import (
    KINDS,
    RetrievalModel,
    RetrievalNet,
    digit_vectors,
    retrieval,
)
from visual_attention.train import count_parameters
from visual_attention.views.browser_model import export_model, run_graph


def _class_of(images: torch.Tensor, split: str) -> list[int]:
    x, y = digits_at(DIGIT_SIZE, split)
    out = []
    for image in images:  # every slot is one of the split's digits; find which
        match = (x[:, 0] - image[0]).abs().flatten(1).amax(1) == 0
        out.append(int(y[match][0]))
    return out


def test_the_answer_is_the_value_of_the_key_the_query_matches():
    task = retrieval(20, "test", seed=3)
    assert task.images.shape == (20, 9, 1, 16, 16) and task.tokens.shape == (20, 9, 64)
    vectors = digit_vectors("test")[0]
    for b in range(20):
        classes = _class_of(task.images[b], "test")
        keys, values, query = classes[0:8:2], classes[1:8:2], classes[8]
        assert len(set(keys)) == 4  # the keys have different classes
        t = int(task.targets[b])
        assert keys[t] == query and int(task.labels[b]) == values[t]
        # the query is another slot's drawing: tokens are the standardised vectors of the images
        assert any(torch.allclose(task.tokens[b, 8], v) for v in vectors)
    again = retrieval(20, "test", seed=3)
    assert torch.equal(again.tokens, task.tokens) and torch.equal(again.labels, task.labels)
    assert not torch.equal(retrieval(20, "test", seed=4).labels, task.labels)


def test_the_vectors_are_standardised_with_the_training_statistics():
    train = digit_vectors("train")[0]
    torch.testing.assert_close(train.mean(0), torch.zeros(64), atol=1e-4, rtol=0)
    torch.testing.assert_close(train.std(0), torch.ones(64), atol=1e-3, rtol=0)


def test_attention_weights_sum_to_one_and_pick_the_key_that_matches():
    tokens = torch.randn(4, 9, 64)
    net = RetrievalNet("attention")
    with record_attention(net) as maps:
        assert net(tokens).shape == (4, 10)
    alpha = maps[""]
    assert alpha.shape == (4, 4) and (alpha >= 0).all()
    torch.testing.assert_close(alpha.sum(-1), torch.ones(4))
    # identity projections: the query equal to key 2 (and long) puts the weight on item 2
    with torch.no_grad():
        net = RetrievalNet("attention", width=64)
        for proj in (net.query_proj, net.key_proj):
            proj.weight.copy_(torch.eye(64)), proj.bias.zero_()
    tokens[:, -1] = tokens[:, 4]
    tokens[:, 0:8:2] *= 3
    tokens[:, -1] *= 3
    with record_attention(net) as maps:
        net(tokens)
    assert (maps[""].argmax(-1) == 2).all()


@pytest.mark.parametrize("kind", KINDS)
def test_every_head_gives_logits_and_the_strongest_control_is_fair_in_size(kind):
    net = RetrievalNet(kind)
    assert net(torch.randn(3, 9, 64)).shape == (3, 10)
    if kind == "max":
        assert count_parameters(net) >= 0.75 * count_parameters(RetrievalNet("attention"))


def test_controls_that_cannot_see_the_query_ignore_it():
    tokens = torch.randn(5, 9, 64)
    other = tokens.clone()
    other[:, -1] = torch.randn(5, 64)
    mean = RetrievalNet("mean")
    torch.testing.assert_close(mean(tokens), mean(other))
    torch.testing.assert_close(mean(tokens), mean.head(tokens[:, 1:8:2].mean(1)))


def test_the_page_model_equals_the_heads_and_its_exported_graph():
    task = retrieval(3, "test", seed=0)
    att, ctrl = RetrievalNet("attention").eval(), RetrievalNet("max").eval()
    model = RetrievalModel(att, ctrl)
    with torch.no_grad():
        logits, weights, control = model(task.images)
        torch.testing.assert_close(logits, att(task.tokens), atol=1e-4, rtol=0)
        torch.testing.assert_close(control, ctrl(task.tokens), atol=1e-4, rtol=0)
    assert weights.shape == (3, 4)
    replayed = run_graph(export_model(model, task.images[:1], ("a", "w", "m")), task.images[:1])
    for r, o in zip(replayed.values(), (logits, weights, control)):
        torch.testing.assert_close(torch.as_tensor(r), o[:1], atol=1e-4, rtol=0)


def test_validation():
    with pytest.raises(ValueError, match="kind must be one of 'attention', 'max'"):
        RetrievalNet("gate")
    with pytest.raises(ValueError, match=r"tokens must be \(B, L, C\) with L = 9"):
        RetrievalNet()(torch.randn(2, 7, 64))
    with pytest.raises(ValueError, match="split must be one of 'train', 'test'"):
        retrieval(4, "val")
    with pytest.raises(ValueError, match="items must be at most 10"):
        retrieval(4, items=11)
    with pytest.raises(ValueError, match="attention must be a RetrievalNet of kind 'attention'"):
        RetrievalModel(RetrievalNet("max"), RetrievalNet("max"))


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 3), scale=st.sampled_from([1e-3, 1.0, 1e3]), seed=st.integers(0, 99))
def test_the_weights_are_a_distribution_for_any_batch_and_scale(batch, scale, seed):
    torch.manual_seed(seed)
    net = RetrievalNet("attention")
    with record_attention(net) as maps:
        logits = net(scale * torch.randn(batch, 9, 64))
    alpha = maps[""]
    assert torch.isfinite(logits).all() and (alpha >= 0).all()
    torch.testing.assert_close(alpha.sum(-1), torch.ones(batch))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_stays_finite(dtype):
    net = RetrievalNet("attention").to(dtype)
    with record_attention(net) as maps:
        out = net(100 * torch.randn(2, 9, 64).to(dtype))
    assert torch.isfinite(out).all() and torch.isfinite(maps[""]).all()


def test_gradcheck_in_float64():
    net = RetrievalNet("attention", width=4).double()
    tokens = torch.randn(2, 9, 64, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(net, (tokens,))
