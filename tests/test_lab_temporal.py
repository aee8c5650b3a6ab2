"""Tests of visual_attention.labs.temporal: the "locate the query" clips, the models (temporal
self-attention and its controls), the experiment runner and the widget."""

from __future__ import annotations

import pytest
import torch

from visual_attention import record_attention
from visual_attention.labs import temporal as lab
from visual_attention.labs.digits import DigitCNN, digits_at
from visual_attention.temporal import TemporalSelfAttention
from visual_attention.train import count_parameters


def test_make_query_clips_label_is_where_the_querys_class_was_shown():
    clips, labels, drawings = lab.make_query_clips(200, frames=6, split="test", seed=3)
    assert clips.shape == (200, 6, 1, 16, 16) and labels.shape == (200,)
    assert drawings.shape == (200, 6) and labels.min() >= 0 and labels.max() <= 4
    images, classes = digits_at(16, "test")
    torch.testing.assert_close(clips, images[drawings])
    cls = classes[drawings]  # (N, T)
    for row, y, d in zip(cls, labels, drawings):
        assert len(set(row[:-1].tolist())) == 5  # distinct candidate classes
        assert row[-1] == row[y] and d[-1] != d[y]  # same class, another drawing
        assert (row[:-1] == row[-1]).sum() == 1
    again = lab.make_query_clips(200, frames=6, split="test", seed=3)
    torch.testing.assert_close(labels, again[1])
    # every candidate position is a label about equally often
    counts = torch.bincount(lab.make_query_clips(3000, seed=1)[1], minlength=7)
    assert counts.min() > 350


def test_features_of_a_clip_are_rows_of_the_drawing_table():
    torch.manual_seed(0)
    encoder = DigitCNN().eval()
    clips, _, drawings = lab.make_query_clips(3, frames=4, split="test", seed=2)
    table = lab.drawing_features(encoder, "test")
    feats = lab.frame_features(encoder, clips, batch_size=5)
    assert feats.shape == (3, 4, 64) and not feats.requires_grad
    torch.testing.assert_close(feats, table[drawings], atol=1e-5, rtol=1e-5)


def test_the_attention_model_uses_the_chapters_module_and_positions_make_it_see_order():
    torch.manual_seed(0)
    model = lab.TemporalTransformer(16, frames=5).eval()
    assert isinstance(model.attn, TemporalSelfAttention) and model.attn.mode == "frame"
    assert model.attn.attn.num_heads == 4 and model.pos.shape == (5, 32)
    feats = torch.randn(3, 5, 16)
    with torch.no_grad(), record_attention(model) as maps:
        logits = model(feats)
    assert logits.shape == (3, 4) and maps["attn"].shape == (3, 5, 5)
    torch.testing.assert_close(maps["attn"].sum(-1), torch.ones(3, 5))
    perm = torch.tensor([2, 0, 3, 1, 4])  # candidates shuffled, the query stays last
    with torch.no_grad():
        assert not torch.allclose(model(feats[:, perm]), logits, atol=1e-4)
        blind = lab.TemporalTransformer(16, frames=5, positions=False).eval()
        torch.testing.assert_close(blind(feats[:, perm]), blind(feats), atol=1e-5, rtol=1e-5)
        pooled = lab.PooledClip("attention", 16, frames=5).eval()
        torch.testing.assert_close(pooled(feats[:, perm]), pooled(feats), atol=1e-5, rtol=1e-5)


def test_controls_shapes_reach_and_parameters():
    feats = torch.randn(2, 8, 64)
    sizes = {}
    for kind in lab.KINDS:
        model = lab.make_model(kind).eval()
        with torch.no_grad():
            x = torch.randn(2, 8, 64, 4, 4) if kind == "pixel" else feats
            assert model(x).shape == (2, 7), kind
        sizes[kind] = count_parameters(model)
    conv = lab.make_model("conv")
    assert conv.reach == 15 >= 2 * lab.FRAMES - 1  # the query's output sees every frame
    assert sizes["conv"] >= 0.75 * sizes["attention"] and sizes["gru"] >= 0.75 * sizes["attention"]
    assert sizes["pixel"] == sizes["attention"]  # the same layer, on maps
    # the convolution is causal in nothing: changing frame 0 changes the query's output
    with torch.no_grad():
        other = feats.clone()
        other[:, 0] += 1
        assert not torch.allclose(conv.eval()(feats), conv(other))


def test_run_seeds_trains_one_model_per_seed_on_its_own_draw():
    encoder = DigitCNN().eval()
    table = lab.drawing_features(encoder, "train")
    _, y, d = lab.make_query_clips(40, split="test", seed=1)
    test = (lab.drawing_features(encoder, "test")[d], y)
    runs = lab.run_seeds("conv", table, test, seeds=(0, 1), n_train=64, epochs=1, batch_size=32)
    assert len(runs.accuracies) == len(runs.models) == len(runs.histories) == 2
    assert all(0 <= a <= 1 for a in runs.accuracies)
    assert not torch.equal(runs.models[0].embed.proj.weight, runs.models[1].embed.proj.weight)
    correct = lab.per_example_correct(runs.models[0], *test)
    assert len(correct) == 40 and set(correct) <= {0.0, 1.0}
    assert sum(correct) / 40 == pytest.approx(runs.accuracies[0])


def test_the_page_model_is_the_trained_model_on_the_frames_features():
    from visual_attention.views.browser_model import BrowserModel, run_graph

    torch.manual_seed(0)
    encoder = DigitCNN().eval()
    clips, labels, _ = lab.make_query_clips(3, split="test", seed=2)
    attention = lab.TemporalTransformer().eval()
    model = lab.ClipModel(attention, encoder)
    feats = lab.frame_features(encoder, clips)
    with torch.no_grad():
        logits, weights, row = model(clips)
        with record_attention(attention) as maps:
            torch.testing.assert_close(logits, attention(feats), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights[:, 0], maps["attn"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(row, maps["attn"][:, -1], atol=1e-5, rtol=1e-5)
    widget = lab.model_explorer(model, clips, labels)
    assert widget.canvases == 8 and [v["kind"] for v in widget.views] == ["probs", "bars", "maps"]
    assert widget.example_names[0] == f"#0 (the query matches frame {int(labels[0])})"
    out = run_graph(BrowserModel(widget.graph, widget.weights), clips[1:2])
    torch.testing.assert_close(torch.from_numpy(out["logits"]), logits[1:2], atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.from_numpy(out["weights"]), weights[1:2], atol=1e-4, rtol=0)


def test_validation_messages():
    with pytest.raises(ValueError, match="frames must be at most 11"):
        lab.make_query_clips(4, frames=12)
    with pytest.raises(ValueError, match="kind must be one of"):
        lab.make_model("lstm")
    with pytest.raises(ValueError, match=r"feats must be \(B, T, C\) with T = 8"):
        lab.TemporalTransformer()(torch.randn(2, 5, 64))
    with pytest.raises(ValueError, match=r"clips must be 5-d \(N, T, C, H, W\)"):
        lab.frame_features(DigitCNN(), torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="split must be one of"):
        lab.drawing_features(DigitCNN(), "val")
    with pytest.raises(ValueError, match="attention must be"):
        lab.ClipModel(lab.TemporalConv())


def test_the_pixel_model_attends_over_time_at_every_position_of_the_map():
    torch.manual_seed(0)
    model = lab.PixelTemporalTransformer(16, frames=5).eval()
    assert isinstance(model.attn, TemporalSelfAttention) and model.attn.mode == "pixel"
    maps = torch.randn(3, 5, 16, 2, 3)
    with torch.no_grad(), record_attention(model) as recorded:
        logits = model(maps)
    assert logits.shape == (3, 4) and recorded["attn"].shape == (3, 2, 3, 5, 5)
    torch.testing.assert_close(recorded["attn"].sum(-1), torch.ones(3, 2, 3, 5))
    with torch.no_grad():
        # positions are not mixed before the read-out: permuting the positions of every frame
        # alike leaves the logits unchanged; permuting the candidate frames changes them
        moved = maps.flatten(-2)[..., torch.tensor([5, 0, 3, 1, 4, 2])].reshape(maps.shape)
        torch.testing.assert_close(model(moved), logits, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(model(maps[:, torch.tensor([2, 0, 3, 1, 4])]), logits, atol=1e-4)
        # one position only: the frame model's computation on that position's vectors
        frame = lab.TemporalTransformer(16, frames=5).eval()
        frame.load_state_dict(model.state_dict())
        one = maps[..., :1, :1]
        torch.testing.assert_close(model(one), frame(one[..., 0, 0]), atol=1e-5, rtol=1e-5)
    encoder = DigitCNN().eval()
    table = lab.drawing_maps(encoder, "test")
    assert table.shape[1:] == (64, 4, 4)
    torch.testing.assert_close(table.mean(dim=(2, 3)), lab.drawing_features(encoder, "test"))
    _, y, d = lab.make_query_clips(6, split="test", seed=1)
    correct = lab.per_example_correct(lab.make_model("pixel").eval(), table[d], y)
    assert len(correct) == 6 and set(correct) <= {0.0, 1.0}


def test_the_stored_pixel_models_come_from_this_code_and_recipe():
    saved = torch.load(lab.PIXEL_WEIGHTS, weights_only=True)
    assert saved["fingerprint"] == lab.pixel_fingerprint(), (
        "the temporal pixel models' code or recipe changed since the weights were trained: run "
        "make weights"
    )
    assert saved["recipe"] == dict(lab.PIXEL_RECIPE) and list(saved["models"]) == ["pixel"]
    run = lab.load_pixel_models()
    assert len(run.models) == len(lab.PIXEL_RECIPE["seeds"]) and not run.models[0].training
    assert isinstance(run.models[0], lab.PixelTemporalTransformer)
    assert len(run.histories[0].test_accuracy) == lab.PIXEL_RECIPE["epochs"]
    # what the chapter claims of them, with a margin: every seed learned the task
    assert min(run.accuracies) > 0.85


def test_train_pixel_models_trains_what_the_file_holds():
    encoder = DigitCNN().eval()
    table = lab.drawing_maps(encoder, "train")
    _, y, d = lab.make_query_clips(20, split="test", seed=1)
    test = (lab.drawing_maps(encoder, "test")[d], y)
    runs = lab.train_pixel_models(table, test, seeds=(0,), epochs=1)
    assert list(runs) == ["pixel"] and len(runs["pixel"].models) == 1
    assert isinstance(runs["pixel"].models[0], lab.PixelTemporalTransformer)
    with pytest.raises(ValueError, match=r"table must be 4-d \(M, C, h, w\)"):
        lab.run_seeds("pixel", lab.drawing_features(encoder, "train"), test, seeds=(0,))
