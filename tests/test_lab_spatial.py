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
    heads = {
        "attention pooling": PooledHead("attention").eval(),
        "gate": PooledHead("gate").eval(),
    }
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
    with pytest.raises(ValueError, match="the others have no map"):
        lab.CanvasModel({"avg": PooledHead("avg")}, raw)


# ---------------------------------------------------------------------------------------------
# the experiment inside the encoder's last stage, and the natural-image experiment
# ---------------------------------------------------------------------------------------------


def test_lower_features_are_the_encoders_first_two_stages():
    from visual_attention.labs.digits import load_digit_cnn

    x, _, _ = lab.cluttered_task(3, split="test", seed=2)
    f = lab.lower_features(x)
    assert f.shape == (3, 64, 12, 12)
    enc = load_digit_cnn()
    torch.testing.assert_close(enc.features[4](f), enc.feature_map(x))  # the last stage on top
    with pytest.raises(ValueError, match="images must be"):
        lab.lower_features(torch.rand(2, 3, 16, 16))


def test_stage_nets_differ_only_by_the_pooling_and_record_their_maps():
    f = torch.rand(3, 8, 4, 4, generator=gen(3))
    nets = {p: lab.StageNet(p, channels=8, width=6, num_classes=5).eval() for p in lab.STAGE_POOLS}
    recorded = {}
    for p, net in nets.items():
        with record_attention(net) as maps:
            assert net(f).shape == (3, 5)
        recorded[p] = {k: tuple(v.shape) for k, v in maps.items()}
    assert recorded == {
        "attention": {"pool": (3, 4, 4)},
        "gate": {"gate": (3, 1, 4, 4)},
        "avg": {},
        "max": {},
    }
    plain = count_parameters(nets["avg"])
    assert count_parameters(nets["max"]) == plain
    assert count_parameters(nets["attention"]) - plain == 6  # the query
    assert count_parameters(nets["gate"]) - plain == 2 * 49 + 2
    # max pooling is the per-channel maximum of the stage's output
    net = nets["max"]
    torch.testing.assert_close(net(f), net.fc(net.stage(f).amax(dim=(2, 3))))
    with pytest.raises(ValueError, match="pool must be one of"):
        lab.StageNet("median")


def test_run_stage_seeds_draws_its_own_training_examples_per_seed():
    train = (
        torch.randn(40, 8, 3, 3, generator=gen(4)),
        torch.randint(10, (40,), generator=gen(5)),
    )
    test = (torch.randn(10, 8, 3, 3, generator=gen(6)), torch.randint(10, (10,), generator=gen(7)))
    runs = lab.run_stage_seeds(
        "attention", train, test, seeds=(0, 1), n_train=20, epochs=2, width=4
    )
    assert len(runs.accuracies) == 2 and all(0 <= a <= 1 for a in runs.accuracies)
    assert len(runs.histories[0].test_accuracy) == 2
    assert not torch.equal(lab._subset(40, 20, 0), lab._subset(40, 20, 1))
    assert torch.equal(lab._subset(40, None, 0), torch.arange(40))
    with pytest.raises(ValueError, match="n_train must be at most the 40 training examples"):
        lab.run_stage_seeds("avg", train, test, seeds=(0,), n_train=41)


def test_face_scenes_paste_real_photos_on_real_scenes():
    from skimage import data as skdata

    x, y, boxes = lab.face_scenes(12, split="test", seed=5, canvas=32, patch=16, distractors=1)
    assert x.shape == (12, 1, 32, 32) and set(y.tolist()) <= {0, 1}
    assert ((boxes[:, 2] - boxes[:, 0]) == 16).all() and ((boxes[:, 3] - boxes[:, 1]) == 16).all()
    again = lab.face_scenes(12, split="test", seed=5, canvas=32, patch=16, distractors=1)
    assert all(torch.equal(a, b) for a, b in zip((x, y, boxes), again))
    # the pasted first photo is a face exactly when the label says so: compare with the photos
    photos = torch.tensor(skdata.lfw_subset(), dtype=torch.float32)[:, None]
    faces, others = lab._photos("test", 16)
    for i in range(12):
        t, l, b, r = boxes[i].tolist()
        patch = x[i, 0, t:b, l:r]
        source = faces if y[i] == 1 else others
        dist = min(
            min((patch - p).abs().max().item(), (patch - p.flip(1)).abs().max().item())
            for p in source
        )
        assert dist < 1e-5
    assert photos.shape == (200, 1, 25, 25)
    # training and test photos are disjoint
    train_faces, _ = lab._photos("train", 16)
    assert (train_faces[:, None] - faces[None]).abs().flatten(2).amax(-1).min() > 1e-3
    assert not set(lab.SCENES["train"]) & set(lab.SCENES["test"])
    with pytest.raises(ValueError, match="distractors must be in"):
        lab.face_scenes(2, canvas=32, patch=16, distractors=4)


def test_scene_net_and_its_runner():
    x = torch.rand(2, 1, 32, 32, generator=gen(8))
    for p in lab.STAGE_POOLS:
        assert lab.SceneNet(p, width=4).eval()(x).shape == (2, 2)
    test = lab.face_scenes(8, split="test", seed=0)[:2]
    runs = lab.run_scene_seeds("max", test, seeds=(0,), n_train=16, epochs=1, width=4)
    assert len(runs.models) == 1 and 0 <= runs.accuracies[0] <= 1


def test_canvas_model_runs_stage_nets_from_the_canvas():
    x, _, _ = lab.cluttered_task(4, split="test", seed=3)
    raw = lab.lower_features(x)
    nets = {"a": lab.StageNet("attention").eval(), "g": lab.StageNet("gate").eval()}
    model = lab.CanvasModel(nets, raw)
    f = (raw - model.mean) / model.std
    la, ma, lg, mg = model(x)
    torch.testing.assert_close(la, nets["a"](f))
    torch.testing.assert_close(lg, nets["g"](f))
    assert ma.shape == (4, 12, 12) and mg.shape == (4, 1, 12, 12)
    with pytest.raises(ValueError, match="heads must pool with attention or a gate"):
        lab.CanvasModel({"m": lab.StageNet("max")}, raw)


# ---------------------------------------------------------------------------------------------
# hard attention: the glimpse network, its runner and the spread of its gradient
# ---------------------------------------------------------------------------------------------


def test_glimpse_net_has_the_attention_stage_nets_parameters_and_loss():
    net = lab.GlimpseNet(8, width=4, num_classes=3, glimpses=2)
    assert count_parameters(net) == count_parameters(lab.StageNet("attention", 8, 4, 3))
    f, y = torch.randn(5, 8, 3, 3, generator=gen(0)), torch.tensor([0, 1, 2, 0, 1])
    logits = net.train()(f)
    assert logits.shape == (5, 3) and net.pool.location.shape == (5, 2)
    loss = net.loss(logits, y)
    loss.backward()
    assert net.pool.query.grad is not None and net.pool.query.grad.abs().sum() > 0
    reward = (logits.argmax(-1) == y).float()
    ce = torch.nn.functional.cross_entropy(logits, y)
    from visual_attention.spatial import reinforce_loss

    assert torch.allclose(loss, ce + reinforce_loss(net.pool.log_prob, reward))


def test_run_glimpse_seeds_trains_with_the_stage_runners_draws():
    train = (
        torch.randn(12, 8, 3, 3, generator=gen(1)),
        torch.randint(0, 3, (12,), generator=gen(2)),
    )
    test = (torch.randn(6, 8, 3, 3, generator=gen(3)), torch.randint(0, 3, (6,), generator=gen(4)))
    runs = lab.run_glimpse_seeds(
        train, test, seeds=(0, 1), n_train=8, epochs=2, batch_size=4, width=4
    )
    assert len(runs.accuracies) == 2 and all(0 <= a <= 1 for a in runs.accuracies)
    assert all(not m.training for m in runs.models) and len(runs.histories[0].test_accuracy) == 2
    again = lab.run_glimpse_seeds(
        train, test, seeds=(0,), n_train=8, epochs=2, batch_size=4, width=4
    )
    assert again.accuracies[0] == runs.accuracies[0]  # seeded
    with pytest.raises(ValueError, match="n_train"):
        lab.run_glimpse_seeds(train, test, n_train=13)


def test_policy_gradients_spread_and_restore_the_model():
    net = lab.GlimpseNet(8, width=4, num_classes=3).eval()
    f, y = torch.randn(16, 8, 3, 3, generator=gen(5)), torch.randint(0, 3, (16,), generator=gen(6))
    g = lab.policy_gradients(net, f, y, draws=6, baseline=False)
    assert g.shape == (6, 4) and torch.isfinite(g).all()
    assert not net.training and net.pool.sample is False  # left as it was
    assert torch.equal(g, lab.policy_gradients(net, f, y, draws=6, baseline=False))  # seeded
    with pytest.raises(ValueError, match="draws"):
        lab.policy_gradients(net, f, y, draws=0)


def test_the_stored_stage_models_come_from_this_code_and_recipe():
    saved = torch.load(lab.STAGE_WEIGHTS, weights_only=True)
    assert saved["fingerprint"] == lab.stage_fingerprint(), (
        "the spatial stage models' code or recipe changed since the weights were trained: run "
        "make weights"
    )
    assert saved["recipe"] == dict(lab.STAGE_RECIPE)
    assert list(saved["models"]) == list(lab.STAGE_MODELS)
    runs = lab.load_stage_models()
    seeds = len(lab.STAGE_RECIPE["seeds"])
    for run in runs.values():
        assert len(run.models) == seeds and not run.models[0].training
        assert len(run.histories[0].test_accuracy) == lab.STAGE_RECIPE["epochs"]
    # what the chapter claims of them, with margins: attention pooling ahead of GMP ahead of GAP,
    # four glimpses learn, and hard attention does not beat soft
    mean = {name: sum(run.accuracies) / seeds for name, run in runs.items()}
    assert mean["attention"] > mean["max"] + 0.03 and mean["max"] > mean["avg"]
    assert 0.5 < mean["hard, 4 glimpses"] < mean["attention"] + 0.02


def test_train_stage_models_trains_what_the_file_holds():
    x, y, _ = lab.cluttered_task(24, split="train", seed=0)
    (f,) = lab.standardize(lab.lower_features(x))
    runs = lab.train_stage_models((f, y), (f[:8], y[:8]), names=["max", "hard, 4 glimpses"],
                                  seeds=(0,), epochs=1)
    assert list(runs) == ["max", "hard, 4 glimpses"]
    assert isinstance(runs["hard, 4 glimpses"].models[0], lab.GlimpseNet)
    with pytest.raises(ValueError, match="names"):
        lab.train_stage_models((f, y), (f, y), names=["nope"])
    with pytest.raises(ValueError, match="names"):
        lab.train_stage_models((f, y), (f, y), names="max")


def test_load_stage_models_refuses_other_files(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match="weights file of the spatial"):
        lab.load_stage_models(other)
    with pytest.raises(ValueError, match="path"):
        lab.load_stage_models(tmp_path / "missing.pt")
