"""Tests of visual_attention.labs.temporal: the temporal chapter's clips, pooling head, experiment
runner and widget."""

from __future__ import annotations

import pytest
import torch

from visual_attention import record_attention
from visual_attention.blocks import AttentionPooling
from visual_attention.labs import temporal as lab
from visual_attention.labs.digits import DigitCNN


def test_make_clips_shows_the_digit_in_a_few_consecutive_frames():
    clips, labels, present = lab.make_clips(40, frames=6, visible=(1, 2), split="test", seed=3)
    assert clips.shape == (40, 6, 1, 16, 16) and labels.shape == (40,)
    assert present.shape == (40, 6) and present.dtype == torch.bool
    assert clips.min() >= 0 and clips.max() <= 1
    counts = present.sum(-1)
    assert counts.min() >= 1 and counts.max() <= 2
    for row in present:  # one run of consecutive frames
        idx = row.nonzero().flatten()
        assert (idx.diff() == 1).all()
    again = lab.make_clips(40, frames=6, visible=(1, 2), split="test", seed=3)
    torch.testing.assert_close(clips, again[0])
    # without noise and fragments, only the digit's frames hold ink
    bare, _, shown = lab.make_clips(20, frames=4, fragments=0, noise=0.0, seed=1)
    assert (bare[~shown] == 0).all() and (bare[shown].flatten(1).sum(-1) > 0).all()


def test_paste_takes_the_maximum_in_place():
    canvas = torch.zeros(2, 5, 5)
    lab._paste(canvas, torch.ones(2, 2, 3), torch.tensor([0, 3]), torch.tensor([1, 2]))
    assert canvas[0, 0:2, 1:4].eq(1).all() and canvas[1, 3:5, 2:5].eq(1).all()
    assert canvas.sum() == 12


def test_frame_features_are_the_encoders_pooled_vectors():
    torch.manual_seed(0)
    encoder = DigitCNN().eval()
    clips = torch.rand(3, 4, 1, 16, 16)
    feats = lab.frame_features(encoder, clips, batch_size=5)
    assert feats.shape == (3, 4, 64) and not feats.requires_grad
    with torch.no_grad():
        expected = encoder.feature_map(clips[1, 2][None]).mean(dim=(2, 3))[0]
    torch.testing.assert_close(feats[1, 2], expected)


def test_clip_head_pools_with_the_kits_attention_pooling():
    torch.manual_seed(0)
    model = lab.ClipHead("attention", dim=8).eval()
    assert isinstance(model.pool, AttentionPooling)
    feats = torch.randn(2, 5, 8)
    with torch.no_grad(), record_attention(model) as maps:
        logits = model(feats)
    w = maps["pool"]
    assert w.shape == (2, 5)
    torch.testing.assert_close(w.sum(-1), torch.ones(2))
    torch.testing.assert_close(logits, model.head(torch.einsum("bt,btd->bd", w, feats)))
    mean = lab.ClipHead("mean", dim=8, num_classes=4)
    torch.testing.assert_close(mean(feats), mean.head(feats.mean(1)))
    extra = sum(p.numel() for p in lab.ClipHead("attention").parameters()) - sum(
        p.numel() for p in lab.ClipHead("mean").parameters()
    )
    assert extra == 64 * 64 + 64 + 64  # the mechanism costs only its scoring network


def test_run_seeds_returns_one_accuracy_model_and_history_per_seed():
    torch.manual_seed(0)
    feats, labels = torch.randn(24, 3, 6), torch.randint(0, 10, (24,))
    runs = {
        kind: lab.run_seeds(kind, (feats, labels), (feats, labels), seeds=(0, 1), epochs=2, batch_size=8)
        for kind in ("attention", "mean")
    }
    assert all(len(r.accuracies) == len(r.models) == len(r.histories) == 2 for r in runs.values())
    assert runs["attention"].models[0].pool is not None and runs["mean"].models[0].pool is None
    assert len(runs["mean"].histories[0].test_accuracy) == 2 and not runs["mean"].models[1].training
    assert runs["mean"].accuracies[0] == runs["mean"].histories[0].final_test_accuracy


def test_weight_on_digit_frames():
    w = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])
    present = torch.tensor([[True, False, False], [False, True, True]])
    assert lab.weight_on_digit_frames(w, present) == pytest.approx(0.7)


def test_the_page_model_is_the_trained_heads_on_the_frames_features():
    from visual_attention.views.browser_model import BrowserModel, run_graph

    torch.manual_seed(0)
    encoder = DigitCNN().eval()
    clips, labels, present = lab.make_clips(3, frames=4, split="test", seed=2)
    feats = lab.frame_features(encoder, clips)
    attention, mean = lab.ClipHead("attention").eval(), lab.ClipHead("mean").eval()
    model = lab.ClipModel(attention, mean, encoder)
    logits, weights, plain = model(clips)
    torch.testing.assert_close(logits, attention(feats))
    torch.testing.assert_close(weights, attention.pool.weights(feats))
    torch.testing.assert_close(plain, mean(feats))
    widget = lab.model_explorer(model, clips, labels, present)
    assert widget.canvases == 4 and [v["kind"] for v in widget.views] == ["probs", "probs", "bars"]
    first = ", ".join(str(int(k)) for k in present[0].nonzero()[:, 0])
    assert widget.example_names[0] == f"#0 (digit {int(labels[0])} in frames {first})"
    out = run_graph(BrowserModel(widget.graph, widget.weights), clips[1:2])
    torch.testing.assert_close(torch.from_numpy(out["frame weights"]), weights[1:2], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="attention must pool with attention"):
        lab.ClipModel(mean, attention, encoder)


def test_validation_messages():
    with pytest.raises(ValueError, match="pool must be one of 'attention', 'mean', got 'max'"):
        lab.ClipHead("max")
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
        lab.ClipHead(num_classes=0)
    with pytest.raises(ValueError, match=r"feats must be \(B, T, D\) with D = 64"):
        lab.ClipHead()(torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match=r"clips must be 5-d \(N, T, C, H, W\)"):
        lab.frame_features(DigitCNN(), torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="visible"):
        lab.make_clips(4, frames=3, visible=(2, 4))
