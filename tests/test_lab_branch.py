"""Tests of visual_attention.labs.branch: the two-scale task, the branches, the heads, the sweep and
the page model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _helpers import gen, randomise
from visual_attention.core import record_attention
from visual_attention.labs import branch as lab
from visual_attention.labs.common import collect_attention
from visual_attention.labs.digits import DigitCNN


def _heads(seed: int = 0) -> dict[str, lab.ScaleHead]:
    torch.manual_seed(seed)
    heads = {mode: lab.ScaleHead(mode, channels=64) for mode in lab.HEADS}
    for h in heads.values():
        for p in h.parameters():  # non-trivial weights, so that the views differ
            nn.init.normal_(p, std=0.5)
    return {k: h.eval() for k, h in heads.items()}


def test_scale_task_is_half_small_half_large_digits_with_clutter_at_the_other_scale():
    x, y, size = lab.scale_task(9, "test", seed=3)
    assert x.shape == (9, 1, 48, 48) and y.shape == size.shape == (9,)
    assert sorted(size.tolist()) == [16] * 5 + [32] * 4
    assert 0 <= x.min() and x.max() <= 1
    x2, y2, size2 = lab.scale_task(9, "test", seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(size, size2)
    assert not torch.equal(x, lab.scale_task(9, "test", seed=4)[0])
    assert [c["distractor_size"] for c in lab.SCALES.values()] == [32, 16]  # the other scale
    with pytest.raises(ValueError, match="n must be a positive integer"):
        lab.scale_task(0)


def test_branch_features_are_the_encoder_at_full_and_half_resolution_averaged():
    encoder = randomise(DigitCNN(), seed=1)
    x = torch.rand(3, 1, 48, 48, generator=gen(0))
    f = lab.branch_features(x, encoder, batch_size=2)
    assert f.shape == (3, 2, 64)
    with torch.no_grad():
        small = encoder.feature_map(x).mean((2, 3))
        large = encoder.feature_map(nn.functional.avg_pool2d(x, 2)).mean((2, 3))
    torch.testing.assert_close(f[:, 0], small)
    torch.testing.assert_close(f[:, 1], large)
    with pytest.raises(ValueError, match=r"images must be \(N, C, H, W\) with C = 1"):
        lab.branch_features(torch.rand(2, 3, 48, 48), encoder)


def test_standardize_branches_uses_one_affine_map_per_channel_for_both_branches():
    train = torch.randn(50, 2, 4, generator=gen(0)) * 3 + 1
    test = torch.randn(7, 2, 4, generator=gen(1))
    u_train, u_test = lab.standardize_branches(train, test)
    torch.testing.assert_close(u_train.mean((0, 1)), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(u_train.std((0, 1)), torch.ones(4))
    mean, std = train.mean((0, 1)), train.std((0, 1))
    torch.testing.assert_close(u_test, (test - mean) / std)
    with pytest.raises(ValueError, match=r"others\[0\] must be \(N, M, C\)"):
        lab.standardize_branches(train, torch.randn(3, 2, 5))


def test_select_head_is_sk_fuse_and_select_and_records_its_weights():
    head = _heads()["select"]
    u = torch.randn(5, 2, 64, generator=gen(2))
    with record_attention(head) as maps:
        logits = head(u)
    a = maps[""]
    assert a.shape == (5, 2, 64) and (a >= 0).all()
    torch.testing.assert_close(a.sum(1), torch.ones(5, 64))
    z = torch.relu(head.bn(head.fc_reduce(u.sum(1))))  # s = Σ_m U_m (already averaged), Eq. 3-4
    by_hand = head.fc_select(z).reshape(5, 2, 64).softmax(1)  # Eq. 5
    torch.testing.assert_close(a, by_hand)
    torch.testing.assert_close(logits, head.fc((by_hand * u).sum(1)))  # V = Σ_m a_m ⊙ U_m


def test_controls_mix_with_fixed_weights_or_use_one_branch():
    heads = _heads()
    u = torch.randn(4, 2, 64, generator=gen(3))
    other = u.clone()
    other[:, 1] += 1.0  # change the large field only
    torch.testing.assert_close(heads["mix"](u), heads["mix"].fc(0.5 * u[:, 0] + 0.5 * u[:, 1]))
    torch.testing.assert_close(heads["small"](u), heads["small"](other))
    assert not torch.allclose(heads["large"](u), heads["large"](other))
    assert sum(p.numel() for p in heads["mix"].parameters()) == 64 * 10 + 10
    with pytest.raises(ValueError, match="mode must be one of"):
        lab.ScaleHead("concat")
    with pytest.raises(ValueError, match=r"u must be \(B, M, C\) with M = 2 and C = 64, got shape \(4, 3, 64\)"):
        heads["mix"](torch.randn(4, 3, 64))


def test_run_seeds_trains_one_head_per_seed():
    x = torch.randn(60, 2, 8, generator=gen(4))
    y = (x[:, 0, 0] > 0).long()
    accs, heads, histories = lab.run_seeds("select", (x, y), (x, y), seeds=(0, 1), epochs=2)
    assert len(accs) == len(heads) == len(histories) == 2
    assert all(not h.training and h.mode == "select" for h in heads)
    assert accs == [h.final_test_accuracy for h in histories]


def test_render_digits_changes_only_the_scale():
    a, labels = lab.render_digits([3, 3], 12)
    b, labels_b = lab.render_digits([3], 36)
    assert a.shape == (2, 1, 48, 48) and b.shape == (1, 1, 48, 48)
    assert torch.equal(a[0], a[1]) and int(labels[0]) == int(labels_b[0])
    assert (a[0, :, :5, :5] == b[0, :, :5, :5]).all()  # same noise outside the digit
    assert not torch.equal(a[0], b[0])
    assert lab.render_digits([], 14)[0].shape == (0, 1, 48, 48)
    with pytest.raises(ValueError, match="size must be an integer between 2 and canvas=48"):
        lab.render_digits([0], 49)
    with pytest.raises(ValueError, match="indices must be in"):
        lab.render_digits([0, 10_000], 14)


def test_weights_by_size_gives_the_large_fields_weight_per_image_and_the_accuracy():
    encoder = randomise(DigitCNN(), seed=1)
    head = _heads()["select"]
    result = lab.weights_by_size(head, [12, 30], count=6, encoder=encoder)
    assert list(result) == [12, 30]
    for weights, accuracy in result.values():
        assert weights.shape == (6,) and ((weights >= 0) & (weights <= 1)).all()
        assert 0 <= accuracy <= 1
    assert not torch.equal(result[12][0], result[30][0])
    with pytest.raises(ValueError, match="head must be a 'select' ScaleHead"):
        lab.weights_by_size(_heads()["mix"], [12], encoder=encoder)


def test_the_page_model_is_the_trained_heads_on_the_standardised_branches():
    from visual_attention.views.browser_model import BrowserModel, run_graph

    encoder = randomise(DigitCNN(), seed=1)
    heads = _heads()
    x, y, _ = lab.scale_task(6, "test", seed=1)
    f = lab.branch_features(x, encoder)
    u = lab.standardize_branches(f, f)[1]
    model = lab.BranchModel({"SK": heads["select"], "mix": heads["mix"]}, f, encoder)
    sk, mix, weights = model(x)
    torch.testing.assert_close(sk, heads["select"](u))
    torch.testing.assert_close(mix, heads["mix"](u))
    a = collect_attention(heads["select"], u, names=[""])[""]
    torch.testing.assert_close(weights, a.mean(-1))
    widget = lab.model_explorer(model, x[:3], y[:3])
    assert [v["kind"] for v in widget.views] == ["probs", "probs", "bars"]
    out = run_graph(BrowserModel(widget.graph, widget.weights), x[4:5])
    torch.testing.assert_close(torch.from_numpy(out["branch weights"]), weights[4:5], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="exactly one 'select' head"):
        lab.BranchModel({"mix": heads["mix"]}, f, encoder)

