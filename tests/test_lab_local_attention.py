"""Tests of visual_attention.labs.local_attention: the shift experiment's task, heads and
measurements, and the chapter's window widget (it computes what ShiftedWindowAttention records)."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange

from visual_attention import record_attention
from visual_attention.labs import local_attention as lab
from visual_attention.labs.common import token_features
from visual_attention.labs.local_attention import window_explorer as la_explorer
from visual_attention.local_attention import ShiftedWindowAttention, to_dense, window_token_index


def test_explorer_computes_what_shifted_window_attention_records():
    image = torch.rand(3, 24, 36)
    features = torch.nn.functional.normalize(torch.randn(6, 6, 6), dim=0)
    ex = la_explorer(
        image,
        features,
        [f"f{i}" for i in range(6)],
        window_sizes=(2, 3),
        scale=4.0,
        initial={"window": 2, "shift": True, "query": (4, 2)},
    )
    assert (ex.window, ex.shift, ex.query) == (2, 1, 26) and ex.controls == ["window", "shift"]
    grid = rearrange(features, "c h w -> 1 h w c")
    for m, s in ((2, 0), (2, 1), (3, 1), (3, 2)):
        layer = ShiftedWindowAttention(
            6, m, 1, shift_size=s, qkv_bias=False, relative_position_bias=False
        )
        layer.attn.scale = 4.0
        with torch.no_grad(), record_attention(layer) as maps:
            layer.attn.qkv.weight.copy_(torch.eye(6).repeat(3, 1))
            layer.attn.proj.weight.copy_(torch.eye(6))
            layer.attn.proj.bias.zero_()
            context = layer(grid)[0].flatten(0, 1)
        dense = to_dense(maps["attn"], window_token_index(6, 6, m, s))[0, 0]
        for q in (0, 7, 26, 35):
            w, c = ex.compute(window=m, shift=s, query=q)
            torch.testing.assert_close(w, dense[q], atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(c, context[q], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="window size 4 must divide the grid 6×6"):
        la_explorer(image, features, [f"f{i}" for i in range(6)], window_sizes=(4,))


def test_explorer_validation():
    with pytest.raises(ValueError, match=r"features must be 3-d \(C, h, w\)"):
        la_explorer(torch.rand(3, 8, 8), torch.rand(1, 6, 2, 2), ["a"] * 6)


def test_pair_task_halves_are_encoded_separately_and_balanced():
    images, features, labels, classes = lab.pair_task(20, "test", seed=3)
    assert images.shape == (20, 1, 16, 32) and features.shape == (20, 64, 2, 4)
    assert labels.tolist().count(1) == 10
    assert torch.equal(labels, (classes[:, 0] == classes[:, 1]).long())
    # the left window's tokens are the encoder's tokens of the left half alone
    torch.testing.assert_close(features[..., :2], token_features(images[..., :16]))
    torch.testing.assert_close(features[..., 2:], token_features(images[..., 16:]))
    with pytest.raises(ValueError, match="n must be even"):
        lab.pair_task(5)


def test_reach_by_hand():
    r = lab.reach(2, 4, 2, [0, 1])
    assert r[0].tolist() == [[4, 4, 4, 4]] * 2  # one window: 2 × 2 tokens
    assert r[1].tolist() == [[4, 8, 8, 4]] * 2  # the middle shifted window straddles the border
    assert lab.reach(2, 4, 2, [0, 0])[1].max() == 4  # without the shift: never more
    assert lab.reach(4, 8, 4, [0, 2])[1, 0].tolist() == [16, 16, 32, 32, 32, 32, 16, 16]


@pytest.mark.parametrize("shift", [0, lab.SHIFT])
def test_shift_head_crosses_the_border_only_with_the_shift(shift):
    torch.manual_seed(0)
    head = lab.ShiftHead(shift, channels=5, dim=8).eval()
    x = torch.randn(3, 5, 2, 4)
    y = x.clone()
    y[..., 2:] = torch.randn(3, 5, 2, 2)  # another right digit
    with torch.no_grad():
        token = lambda f: head.classify(
            head.norm(head.blocks(f.permute(0, 2, 3, 1) @ head.embed.weight.T + head.embed.bias))
        )  # noqa: E731,E501
        left_x, left_y = token(x)[:, :, :2], token(y)[:, :, :2]
    assert head(x).shape == (3, 2)
    assert torch.allclose(left_x, left_y) == (shift == 0)  # left tokens see the right digit?
    measured, uniform = lab.border_mass(head, x)
    if shift:
        assert 0 < measured < 1 and uniform == pytest.approx(0.5)
    else:
        assert (measured, uniform) == (0.0, 0.0)
    with pytest.raises(ValueError, match="shift must be one of"):
        lab.ShiftHead(2)


def test_the_page_model_is_the_trained_heads_with_their_block_weights():
    from _helpers import randomise
    from visual_attention.labs.common import standardize
    from visual_attention.labs.digits import DigitCNN
    from visual_attention.views.browser_model import BrowserModel, run_graph

    encoder = randomise(DigitCNN(), seed=2)
    x, raw, y, _ = lab.pair_task(4, "test", seed=1, encoder=encoder)
    f = standardize(raw, raw)[1]
    torch.manual_seed(0)
    heads = {"shifted": lab.ShiftHead(1).eval(), "not shifted": lab.ShiftHead(0).eval()}
    model = lab.WindowPairModel(heads, raw, encoder)
    out = model(x)  # the halves encoded on their own give pair_task's features
    for k, head in enumerate(heads.values()):
        torch.testing.assert_close(out[2 * k], head(f))
        torch.testing.assert_close(out[2 * k + 1][:, 0].mean(1), lab.block_weights(head, f))
    left, right = [0, 1, 4, 5], [2, 3, 6, 7]  # the two windows' tokens (row-major on 2 × 4)
    plain = out[3][:, 0]  # no shift: a token of the left window never sees the right one
    assert float(plain[:, :, left][:, :, :, right].abs().max()) == 0
    assert float(out[1][:, 0][:, :, left][:, :, :, right].abs().max()) > 0  # the shifted one does
    widget = lab.model_explorer(model, x, y)
    assert widget.display_size == [192, 384] and widget.views[2]["grid"] == [2, 4]
    replay = run_graph(BrowserModel(widget.graph, widget.weights), x[2:3])
    torch.testing.assert_close(
        torch.from_numpy(replay["attention shifted"]), out[1][2:3], atol=1e-5, rtol=0
    )


def _neighbour_labels_by_loop(cls: torch.Tensor) -> torch.Tensor:
    h, w = cls.shape
    out = torch.zeros(h, w, dtype=torch.long)
    for i in range(h):
        for j in range(w):
            for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                a, b = i + di, j + dj
                if 0 <= a < h and 0 <= b < w and cls[a, b] == cls[i, j]:
                    out[i, j] = 1
    return out


def test_neighbour_task_labels_are_the_four_neighbours():
    from visual_attention.labs.local_attention import _digit_vectors

    features, labels = lab.neighbour_task(6, "test", seed=4, classes=3)
    assert features.shape == (6, 64, 8, 8) and labels.shape == (6, 8, 8)
    vectors, classes = _digit_vectors("test")
    # every token is one drawing of the test split: recover its class, then the labels by a loop
    flat = rearrange(features, "n c h w -> (n h w) c")
    match = (flat[:, None] - vectors[None]).abs().amax(-1).argmin(-1)
    cls = classes[match].reshape(6, 8, 8)
    for g in range(6):
        assert len(cls[g].unique()) <= 3
        assert torch.equal(labels[g], _neighbour_labels_by_loop(cls[g]))
    again = lab.neighbour_task(6, "test", seed=4, classes=3)
    assert torch.equal(again[0], features) and torch.equal(again[1], labels)
    with pytest.raises(ValueError, match="classes must be at most 10"):
        lab.neighbour_task(2, classes=11)


@pytest.mark.parametrize("mixer", lab.MIXERS)
def test_token_net_shapes_and_reach(mixer):
    torch.manual_seed(0)
    net = lab.TokenNet(mixer, channels=6, dim=8, num_heads=2).eval()
    x = torch.randn(2, 6, 8, 8)
    assert net(x).shape == (2, 8, 8, 2)
    y = x.clone()
    y[:, :, 7, 7] += 1.0  # change the far corner token
    with torch.no_grad():
        changed = (net(x) - net(y)).abs().amax(-1)[0] > 0  # (8, 8): which tokens noticed
    if mixer in ("convolution", "neighbourhood"):  # two 3 × 3 blocks: at most two steps away
        assert not changed[:5].any() and not changed[:, :5].any() and changed[7, 7]
    if mixer == "global":
        assert changed.all()


def test_depthwise_mixer_is_a_static_local_filter():
    torch.manual_seed(0)
    mixer = lab.DepthwiseMixer(4, 3)
    x = torch.zeros(1, 5, 5, 4)
    x[0, 2, 2] = 1.0
    out = mixer(x) - mixer(torch.zeros_like(x))
    assert out[0, 1:4, 1:4].abs().sum() > 0 and out[0, 0].abs().sum() == 0
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        lab.DepthwiseMixer(4, 2)


def test_run_token_seeds_and_token_correct():
    test = lab.neighbour_task(4, "test", seed=1)
    runs = lab.run_token_seeds("convolution", 8, test, seeds=(0, 1), epochs=2, batch_size=4)
    assert len(runs.accuracies) == 2 and len(runs.histories[0].test_accuracy) == 2
    correct = lab.token_correct(runs.models[0], *test)
    assert correct.shape == (4 * 64,) and float(correct.mean()) == pytest.approx(
        runs.accuracies[0]
    )
    with pytest.raises(ValueError, match="labels must be an int64 tensor"):
        lab.token_correct(runs.models[0], test[0], test[1].float())


def test_the_stored_token_mixers_come_from_this_code_and_recipe():
    saved = torch.load(lab.TOKEN_WEIGHTS, weights_only=True)
    assert saved["fingerprint"] == lab.token_fingerprint(), (
        "the token mixers' code or recipe changed since the weights were trained: run make weights"
    )
    assert saved["recipe"] == dict(lab.TOKEN_RECIPE) and list(saved["models"]) == list(lab.MIXERS)
    runs = lab.load_token_mixers()
    for run in runs.values():
        assert len(run.models) == len(lab.TOKEN_RECIPE["seeds"]) and not run.models[0].training
        assert len(run.histories[0].test_accuracy) == lab.TOKEN_RECIPE["epochs"]
    # what the chapter claims of them, with margins: neighbourhood attention and the convolution
    # learn the task equally well, global attention stays at chance, the bias matters
    mean = {m: sum(r.accuracies) / len(r.accuracies) for m, r in runs.items()}
    assert min(mean["neighbourhood"], mean["convolution"]) > 0.8
    assert abs(mean["neighbourhood"] - mean["convolution"]) < 0.06
    assert mean["global"] < 0.7 and mean["window"] > mean["window, no bias"] + 0.05


def test_train_token_mixers_trains_what_the_file_holds(tmp_path):
    test = lab.neighbour_task(2, "test", seed=100)
    runs = lab.train_token_mixers(test, mixers=["convolution"], seeds=(0,), epochs=1)
    assert list(runs) == ["convolution"] and isinstance(runs["convolution"].models[0], lab.TokenNet)
    with pytest.raises(ValueError, match="mixers"):
        lab.train_token_mixers(test, mixers="global")
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match="weights file of the token mixers"):
        lab.load_token_mixers(other)
