"""Tests of visual_attention.labs.multi_head: the two-digit task, the multi-head pooling, the
per-head mass on each digit and the page model."""

from __future__ import annotations

import pytest
import torch

from _helpers import gen
from visual_attention import record_attention
from visual_attention.labs import multi_head as lab
from visual_attention.labs.digits import digits_at
from visual_attention.labs.multi_head import digit_vit
from visual_attention.train import count_parameters


def test_pair_task_places_one_digit_in_each_half_and_labels_the_pair():
    images, labels, boxes = lab.pair_task(6, "test", seed=3)
    assert images.shape == (6, 1, 32, 64) and labels.shape == (6,) and boxes.shape == (6, 2, 4)
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    assert (boxes[..., 2] - boxes[..., 0] == 16).all() and (
        boxes[..., 3] - boxes[..., 1] == 16
    ).all()
    assert (boxes[:, 0, 3] <= 32).all() and (boxes[:, 1, 1] >= 32).all()
    assert ((labels >= 0) & (labels < 100)).all()
    again = lab.pair_task(6, "test", seed=3)
    assert torch.equal(images, again[0]) and torch.equal(labels, again[1])
    # the left digit's class is the tens: it is the digit drawn in the left box (up to noise)
    digits, classes = digits_at(16, "test")
    t, c = (int(v) for v in boxes[0, 0, :2])
    patch = images[0, 0, t : t + 16, c : c + 16]
    best = int(((digits[:, 0] - patch) ** 2).sum(dim=(1, 2)).argmin())
    assert int(classes[best]) == int(labels[0]) // 10
    with pytest.raises(ValueError, match="n"):
        lab.pair_task(0)


def test_pooling_is_multi_head_attention_with_one_learned_query():
    torch.manual_seed(0)
    pool = lab.MultiHeadPooling(8, 2)
    x = torch.randn(3, 5, 8, generator=gen(1))
    pool.recording = True
    out = pool(x)
    k, v = pool.kv(x).chunk(2, dim=-1)
    q = pool.query[0, 0]
    by_hand = []
    for h in range(2):
        s = slice(4 * h, 4 * h + 4)
        w = torch.softmax(k[..., s] @ q[s] / 2.0, dim=-1)  # (3, 5), scale 1/√4
        torch.testing.assert_close(pool.attention[:, h], w)
        by_hand.append((w[..., None] * v[..., s]).sum(1))  # (3, 4)
    torch.testing.assert_close(out, pool.proj(torch.cat(by_hand, dim=-1)))
    assert pool.attention.shape == (3, 2, 5)
    with pytest.raises(ValueError, match="divisible"):
        lab.MultiHeadPooling(8, 3)


def test_readers_differ_only_by_the_number_of_heads():
    one, four = lab.PairReader(1), lab.PairReader(4)
    assert count_parameters(one) == count_parameters(four)
    assert one.pool.num_heads == 1 and four.pool.num_heads == 4
    f = torch.randn(2, 64, 4, 8, generator=gen(2))
    logits = four(f)
    assert logits.shape == (2, 100)
    scores = four.fc(four.norm(four.pool(f.flatten(2).transpose(1, 2) + four.pos)))
    torch.testing.assert_close(logits[:, 37], scores[:, 3] + scores[:, 17])
    with pytest.raises(ValueError, match="f must be"):
        four(torch.randn(2, 64, 8, 16))


def test_mass_on_digits_by_hand_and_uniform():
    boxes = torch.tensor([[[0, 0, 16, 16], [16, 40, 32, 56]]])
    uniform = torch.full((1, 2, 32), 1 / 32)
    torch.testing.assert_close(
        lab.mass_on_digits(uniform, boxes, (4, 8)), torch.full((1, 2, 2), 0.125)
    )
    w = torch.zeros(1, 2, 32)
    w[0, 0, 0] = 1.0  # head 0: all on token (0, 0), inside the left box
    w[0, 1, 2 * 8 + 5] = 0.5  # head 1: half on token (2, 5), inside the right box
    w[0, 1, 2 * 8 + 7] = 0.5  # and half on token (2, 7), outside both
    mass = lab.mass_on_digits(w, boxes, (4, 8))
    torch.testing.assert_close(mass, torch.tensor([[[1.0, 0.0], [0.0, 0.5]]]))
    with pytest.raises(ValueError, match="boxes"):
        lab.mass_on_digits(w, boxes[:, :1], (4, 8))


def test_run_seeds_and_the_page_model_on_a_tiny_run():
    from visual_attention.views.browser_model import BrowserModel, run_graph

    images, labels, boxes = lab.pair_task(12, "train", seed=0)
    raw = lab.pair_features(images)
    f = lab.standardize(raw)[0]
    assert f.shape == (12, 64, 4, 8)
    acc, models, histories = lab.run_seeds(2, (f, labels), (f, labels), seeds=(0, 1), epochs=1)
    assert len(acc) == 2 and len(histories[0].test_accuracy) == 1 and not models[0].training
    with torch.no_grad(), record_attention(models[0]) as maps:
        pairs = models[0](f[:3])
    assert maps["pool"].shape == (3, 2, 32)
    page = lab.PairModel({"2 heads": models[0]}, raw)
    with torch.no_grad():
        left, right, heads = page(images[:3])
    # the pair's probabilities are the product of the two digits' (the read-out is factorised)
    joint = pairs.softmax(-1).reshape(3, 10, 10)
    torch.testing.assert_close(left.softmax(-1), joint.sum(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(right.softmax(-1), joint.sum(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(heads, maps["pool"].reshape(3, 2, 4, 8))
    widget = lab.model_explorer(page, images[:3], labels[:3])
    assert widget.display_size == [192, 384] and widget.canvas == [32, 64]
    assert [v["kind"] for v in widget.views] == ["probs", "probs", "maps"]
    assert widget.views[2]["regions"] == [
        ["left half", 0, 0, 32, 32],
        ["right half", 0, 32, 32, 64],
    ]
    out = run_graph(BrowserModel(widget.graph, widget.weights), images[1:2])
    torch.testing.assert_close(
        torch.from_numpy(out["maps 2 heads"]), heads[1:2], atol=1e-6, rtol=0
    )


def test_digit_vit_is_a_small_vit_for_the_8x8_digits():
    vit = digit_vit()
    assert (vit.grid, vit.pos_embed.shape[1], len(vit.blocks)) == (4, 17, 4)
    assert vit.blocks[0].attn.num_heads == 4 and vit.blocks[0].mlp[0].out_features == 64
    assert vit(torch.randn(3, 1, 8, 8, generator=gen(4))).shape == (3, 10)
    assert count_parameters(digit_vit(stem_channels=0)) < count_parameters(vit)


def test_two_queries_are_two_softmaxes_of_full_width_concatenated_before_w_o():
    torch.manual_seed(0)
    pool = lab.MultiHeadPooling(8, 1, num_queries=2)
    x = torch.randn(3, 5, 8, generator=gen(5))
    pool.recording = True
    out = pool(x)
    k, v = pool.kv(x).chunk(2, dim=-1)
    contexts = []
    for j in range(2):
        w = torch.softmax(k @ pool.query[0, j] / 8**0.5, dim=-1)  # (3, 5): scale 1/√8
        torch.testing.assert_close(pool.attention[:, j], w)
        contexts.append((w[..., None] * v).sum(1))
    torch.testing.assert_close(out, pool.proj(torch.cat(contexts, dim=-1)))
    assert pool.attention.shape == (3, 2, 5) and pool.proj.in_features == 16
    # one query is the chapter's pooling, parameter for parameter
    assert count_parameters(lab.MultiHeadPooling(8, 2, 1)) == 3 * 64 + 4 * 8
    with pytest.raises(ValueError, match="num_queries"):
        lab.MultiHeadPooling(8, 2, 0)


def test_static_pooling_weights_do_not_depend_on_the_content():
    torch.manual_seed(0)
    pool = lab.StaticPooling(8, 6, slots=2)
    x = torch.randn(2, 6, 8, generator=gen(6))
    u = torch.nn.functional.gelu(pool.value(x))  # (2, 6, 8)
    a, c = pool.mix.weight, pool.mix.bias  # (2, 6), (2,): fixed weightings of the tokens
    s = torch.einsum("kn,bnd->bkd", a, u) + c[None, :, None]
    torch.testing.assert_close(pool(x), pool.proj(s.flatten(1)))
    with pytest.raises(ValueError, match="x must be"):
        pool(torch.randn(2, 5, 8))


def test_the_controls_parameter_counts_and_their_reach():
    counts = {
        name: count_parameters(lab.PairReader(**kw))
        for name, kw in {
            "4": dict(num_heads=4),
            "1": dict(num_heads=1),
            "2q": dict(num_heads=1, num_queries=2),
            "static": dict(num_heads=1, pooling="static"),
        }.items()
    }
    assert counts == {"4": 16020, "1": 16020, "2q": 20180, "static": 15958}
    assert counts["static"] >= 0.75 * counts["4"]  # the non-attention control is not starved
    with pytest.raises(ValueError, match="pooling"):
        lab.PairReader(1, pooling="max")


def test_run_seeds_draws_each_seeds_training_set_and_the_per_example_scores():
    images, labels, _ = lab.pair_task(16, "train", seed=0)
    f = lab.standardize(lab.pair_features(images))[0]
    runs = lab.run_seeds(1, (f, labels), (f, labels), seeds=(0, 1), epochs=1, train_size=8)
    assert len(runs.accuracies) == 2 and not runs.models[1].training
    scores = lab.per_example_correct(runs.models, (f, labels))
    assert scores.shape == (16,) and set(scores.unique().tolist()) <= {0.0, 0.5, 1.0}
    assert abs(float(scores.mean()) - sum(runs.accuracies) / 2) < 1e-6
    with pytest.raises(ValueError, match="train_size"):
        lab.run_seeds(1, (f, labels), (f, labels), seeds=(0,), epochs=1, train_size=17)
    # pruning no head is the model itself
    reader = runs.models[0]
    assert abs(lab.pruned_accuracy(reader, (f, labels), [True]) - runs.accuracies[0]) < 1e-6
    with pytest.raises(ValueError, match="keep"):
        lab.pruned_accuracy(reader, (f, labels), [True, False])


