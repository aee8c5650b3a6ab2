"""Tests of visual_attention.labs.self_attention: the marks task, the local CNN and the non-local
network, and the chapter's explorer."""

from __future__ import annotations

import pytest
import torch

from _helpers import gen
from visual_attention import record_attention
from visual_attention.labs.self_attention import LocalCNN, NonLocalNet, explorer, marks_task
from visual_attention.self_attention import NonLocalBlock, position_self_attention


def test_marks_task_is_deterministic_balanced_and_labelled_by_intensity():
    x, y = marks_task(200, seed=7)
    x2, y2 = marks_task(200, seed=7)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert x.shape == (200, 1, 8, 16) and y.dtype == torch.int64
    assert y.sum().item() == 100
    clean, labels = marks_task(50, noise=0.0, seed=8)
    left = clean[:, 0, :, :5].sum(dim=(1, 2))
    right = clean[:, 0, :, -5:].sum(dim=(1, 2))
    assert torch.equal(left.abs(), torch.full((50,), 5.0)) and torch.equal(
        right.abs(), torch.full((50,), 5.0)
    )
    assert torch.equal((left.sign() == right.sign()).long(), labels)
    with pytest.raises(ValueError, match="width >= 12, got height=8, width=8"):
        marks_task(3, width=8)
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        marks_task(0)


def test_models_shapes_and_recorded_weights():
    x = torch.randn(3, 1, 8, 16)
    assert LocalCNN(8)(x).shape == (3, 2)
    net = NonLocalNet(8)
    with record_attention(net) as maps:
        assert net(x).shape == (3, 2)
    assert maps["features.1"].shape == (3, 128, 128)
    assert isinstance(net.features[1], NonLocalBlock)


def test_explorer_computes_position_self_attention_per_embedding():
    image = torch.rand(3, 16, 24, generator=gen(9))
    feats = torch.randn(3, 2, 3, generator=gen(10))
    emb = {"all": torch.eye(3), "first": torch.tensor([[1.0, 0, 0]])}
    box = explorer(
        image,
        feats,
        emb,
        ["a", "b", "c"],
        temperature=0.5,
        initial={"compare": "first", "row": 1, "column": 2},
    )
    assert box.layer == 1 and box.query == 5 and box.layer_names == ["all", "first"]
    for layer, e in enumerate(emb.values()):
        z = torch.einsum("dc,chw->dhw", e, feats)
        z = z / z.norm(dim=0, keepdim=True).clamp_min(1e-6)
        for t in (0.5, 0.07):
            y, a = position_self_attention(z[None], z[None], feats[None], scale=1 / t)
            for i in range(6):
                w, out = box.compute(layer=layer, query=i, temperature=t)
                torch.testing.assert_close(w, a[0, i], atol=1e-5, rtol=1e-4)
                torch.testing.assert_close(out, y[0].reshape(3, 6)[:, i], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match=r"must have shape \(C', 3\)"):
        explorer(image, feats, {"bad": torch.eye(2)}, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"features must be 3-d \(C, h, w\)"):
        explorer(image, feats[None], emb, ["a", "b", "c"])
    with pytest.raises(ValueError, match="feature_names has 2 entries for 3 channels"):
        explorer(image, feats, emb, ["a", "b"])
