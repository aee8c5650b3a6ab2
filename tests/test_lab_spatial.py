"""Tests of visual_attention.labs.spatial: the task, the heads, the runner and the explorer."""

from __future__ import annotations

import pytest
import torch

from _helpers import gen
from visual_attention import data
from visual_attention.core import record_attention
from visual_attention.labs import spatial as lab
from visual_attention.labs.spatial import PooledHead
from visual_attention.train import count_parameters

# ---------------------------------------------------------------------------------------------
# the chapter's task, encoder features, heads and runner
# ---------------------------------------------------------------------------------------------


def test_cluttered_task_is_cluttered_digits_with_the_chapters_settings():
    x, y, boxes = lab.cluttered_task(4, split="test", seed=3)
    assert x.shape == (4, 1, 48, 48) and y.shape == (4,) and boxes.shape == (4, 4)
    assert ((boxes[:, 2] - boxes[:, 0]) == 16).all() and ((boxes[:, 3] - boxes[:, 1]) == 16).all()
    ref = data.cluttered_digits(4, split="test", seed=3, **lab.TASK)
    for a, b in zip((x, y, boxes), ref):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        lab.cluttered_task(0)






def test_pooled_heads_differ_only_by_the_pooling():
    f = torch.rand(3, 8, 4, 4, generator=gen(2))
    heads = {p: PooledHead(p, channels=8, num_classes=5).eval() for p in lab.POOLS}
    recorded = {}
    for p, head in heads.items():
        with record_attention(head) as maps:
            assert head(f).shape == (3, 5)
        recorded[p] = {k: tuple(v.shape) for k, v in maps.items()}
    assert recorded == {
        "attention": {"pool": (3, 4, 4)},
        "gate": {"gate": (3, 1, 4, 4)},
        "avg": {},
    }
    plain = count_parameters(heads["avg"])
    assert count_parameters(heads["attention"]) - plain == 8  # the query
    assert count_parameters(heads["gate"]) - plain == 2 * 49 + 2  # 7x7 conv 2 -> 1, BN
    # the query starts at zero: attention pooling begins as global average pooling
    heads["attention"].fc.load_state_dict(heads["avg"].fc.state_dict())
    torch.testing.assert_close(heads["attention"](f), heads["avg"](f))


def test_pooled_head_validation():
    with pytest.raises(ValueError, match="pool must be one of 'attention', 'gate', 'avg'"):
        PooledHead("max")
    with pytest.raises(
        ValueError, match=r"f must be \(B, C, h, w\) with C = 64, got shape \(2, 8, 4, 4\)"
    ):
        PooledHead()(torch.rand(2, 8, 4, 4))


def test_run_seeds_trains_one_head_per_seed_reproducibly():
    g = gen(3)
    f, y = torch.rand(40, 8, 3, 3, generator=g), torch.randint(0, 3, (40,), generator=g)
    acc, heads, histories = lab.run_seeds(
        "attention", (f, y), (f[:10], y[:10]), seeds=(0, 1), epochs=2
    )
    assert len(acc) == len(heads) == 2 and [len(h.test_accuracy) for h in histories] == [2, 2]
    assert all(0 <= a <= 1 for a in acc) and not heads[0].training
    again, heads_again, _ = lab.run_seeds(
        "attention", (f, y), (f[:10], y[:10]), seeds=(0,), epochs=2
    )
    assert again[0] == acc[0]
    torch.testing.assert_close(heads_again[0].pool.query, heads[0].pool.query)
    assert not torch.equal(heads[0].pool.query, heads[1].pool.query)


# ---------------------------------------------------------------------------------------------
# the chapter's explorer
# ---------------------------------------------------------------------------------------------


def test_the_canvas_model_is_the_encoder_the_standardisation_and_the_heads():
    torch.manual_seed(0)
    x, _, _ = lab.cluttered_task(6, split="test", seed=3)
    raw = lab.encode(x)
    heads = {"attention pooling": PooledHead("attention").eval(), "gate": PooledHead("gate").eval()}
    with torch.no_grad():
        heads["attention pooling"].pool.query.normal_()
    model = lab.CanvasModel(heads, raw)
    (f,) = lab.standardize(raw)
    with torch.no_grad():
        logits_a, map_a, logits_g, map_g = model(x)
        torch.testing.assert_close(logits_a, heads["attention pooling"](f))
        torch.testing.assert_close(logits_g, heads["gate"](f))
    assert map_a.shape == (6, 12, 12) and map_g.shape == (6, 1, 12, 12)
    torch.testing.assert_close(map_a.sum((-2, -1)), torch.ones(6))
    explorer = lab.model_explorer(model, x[:3], torch.tensor([1, 2, 3]))
    assert [v["name"] for v in explorer.views] == ["attention pooling", "gate"] * 2
    assert [v["kind"] for v in explorer.views] == ["probs", "probs", "map", "map"]
    assert explorer.canvas == [48, 48] and len(explorer.examples) == 3 * 48 * 48 * 4
    with pytest.raises(ValueError, match="averaging has no map"):
        lab.CanvasModel({"avg": PooledHead("avg")}, raw)
