"""Tests of visual_attention.labs.temporal: the temporal chapter's clip classifier and widget."""

from __future__ import annotations

import pytest
import torch

from visual_attention import record_attention
from visual_attention.blocks import AttentionPooling
from visual_attention.labs.temporal import ClipClassifier, FrameEncoder, explorer


def test_clip_classifier_shapes_and_parameters():
    clips = torch.rand(3, 8, 1, 24, 24)
    for pool in ("attention", "mean"):
        model = ClipClassifier(pool)
        assert model(clips).shape == (3, 10)
    assert ClipClassifier("mean", num_classes=4)(clips).shape == (3, 4)
    assert FrameEncoder(32)(clips).shape == (3, 8, 32)
    extra = sum(p.numel() for p in ClipClassifier("attention").parameters()) - sum(
        p.numel() for p in ClipClassifier("mean").parameters()
    )
    assert extra == 32 * 32 + 32 + 32  # attention pooling costs only its scoring network


def test_clip_classifier_pools_with_the_kits_attention_pooling():
    torch.manual_seed(0)
    model = ClipClassifier("attention", dim=8, channels=4).eval()
    assert isinstance(model.pool, AttentionPooling)
    clips = torch.rand(2, 5, 1, 24, 24)
    with torch.no_grad(), record_attention(model) as maps:
        logits = model(clips)
    w = maps["pool"]
    assert w.shape == (2, 5)
    torch.testing.assert_close(w.sum(-1), torch.ones(2))
    feats = model.encoder(clips)
    torch.testing.assert_close(logits, model.head(torch.einsum("bt,btd->bd", w, feats)))


def test_frame_encoder_is_two_conv_bn_relu_stages():
    enc = FrameEncoder(dim=6, channels=3)
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in enc.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 3, (3, 3), (1, 1)),
        (3, 6, (3, 3), (1, 1)),
    ]
    assert [n.num_features for n in norms] == [3, 6]


def test_explorer_has_a_view_per_clip_and_frame():
    from visual_attention.views import widgets

    torch.manual_seed(0)
    model = ClipClassifier("attention")
    clips, labels = torch.rand(2, 4, 1, 24, 24), torch.tensor([3, 5])
    present = torch.tensor([[True, True, False, False], [False, True, True, False]])
    box = explorer(model, clips, labels, present)
    assert widgets.count_views(box) == 8
    a = widgets.explorer_view(box, clip=0, frame=0).value
    b = widgets.explorer_view(box, clip=0, frame=1).value
    assert a != b and "data-value" in a and "frame weights" in a
    with pytest.raises(ValueError, match="pool='attention'"):
        explorer(ClipClassifier("mean"), clips, labels, present)


def test_validation_messages():
    with pytest.raises(ValueError, match="pool must be one of 'attention', 'mean', got 'max'"):
        ClipClassifier("max")
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
        ClipClassifier(num_classes=0)
    with pytest.raises(ValueError, match="channels must be a positive integer, got True"):
        FrameEncoder(channels=True)
    with pytest.raises(ValueError, match=r"clips must be \(B, T, C, H, W\) with C = 1"):
        FrameEncoder()(torch.rand(2, 3, 3, 24, 24))
    with pytest.raises(ValueError, match=r"clips must be 5-d \(B, T, C, H, W\)"):
        FrameEncoder()(torch.rand(2, 3, 24, 24))
