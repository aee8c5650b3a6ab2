"""Tests of visual_attention.labs.global_attention: the pair task, the token features, the
neighbourhood mask, the pair head and its page model, and the token classifier with a pluggable
attention layer."""

from __future__ import annotations

import json

import pytest
import torch

from _helpers import randomise
from visual_attention import record_attention
from visual_attention.blocks import PatchEmbed, PreNormBlock
from visual_attention.global_attention import GlobalAttention
from visual_attention.labs import global_attention as lab
from visual_attention.labs.global_attention import TokenClassifier


def test_token_classifier_shapes_and_records():
    for stem in ("conv", "patch"):
        model = TokenClassifier(
            img_size=16,
            patch_size=4,
            dim=8,
            depth=2,
            stem=stem,
            attn_layer=lambda d, i: GlobalAttention(d, 2),
        )
        with record_attention(model) as maps:
            assert model(torch.randn(3, 1, 16, 16)).shape == (3, 10)
        assert [tuple(v.shape) for v in maps.values()] == [(3, 2, 16, 16)] * 2
        assert list(maps) == ["blocks.0.attn", "blocks.1.attn"]


def test_blocks_are_the_kits_pre_norm_blocks_around_the_chosen_attention():
    built = []

    def build(d, i):
        built.append(i)
        return GlobalAttention(d, 2)

    model = TokenClassifier(
        img_size=16, patch_size=4, dim=8, depth=3, attn_layer=build, mlp_ratio=3
    )
    assert built == [0, 1, 2]
    assert all(isinstance(b, PreNormBlock) and b.mlp[0].out_features == 24 for b in model.blocks)
    assert isinstance(TokenClassifier(dim=8).blocks[0].attn, GlobalAttention)
    assert TokenClassifier(dim=8).blocks[0].attn.num_heads == 4


def test_the_attention_layer_receives_and_returns_a_grid():
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return x

    model = TokenClassifier(
        img_size=16, patch_size=4, dim=8, depth=1, attn_layer=lambda d, i: Spy()
    )
    model(torch.zeros(2, 1, 16, 16))
    assert seen == [(2, 4, 4, 8)]


def test_conv_stem_halves_with_stride_2_convs_then_mixes_at_the_token_grid():
    model = TokenClassifier(img_size=16, patch_size=4, dim=8, depth=1)
    convs = [m for m in model.embed.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [
        (1, 4, 2),
        (4, 8, 2),
        (8, 8, 1),
    ]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.embed.modules()) == 3
    assert model.embed(torch.zeros(2, 1, 16, 16)).shape == (2, 4, 4, 8)  # a token grid
    one = TokenClassifier(img_size=16, patch_size=1, dim=8, depth=1)
    assert isinstance(one.embed, PatchEmbed) and one.embed.proj.kernel_size == (1, 1)
    patch = TokenClassifier(img_size=16, patch_size=4, dim=8, depth=1, stem="patch")
    assert isinstance(patch.embed, PatchEmbed) and patch.embed.proj.kernel_size == (4, 4)


def test_validation_errors():
    with pytest.raises(ValueError, match=r"images must be \(B, C, H, W\) with .*H = 16"):
        TokenClassifier(img_size=16, dim=8)(torch.zeros(1, 1, 20, 20))
    with pytest.raises(ValueError, match=r"images must be \(B, C, H, W\) with C = 1"):
        TokenClassifier(img_size=16, dim=8)(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="stem must be one of 'patch', 'conv', got 'resnet'"):
        TokenClassifier(stem="resnet")
    with pytest.raises(ValueError, match="power-of-two patch_size"):
        TokenClassifier(img_size=18, patch_size=3)
    with pytest.raises(
        ValueError, match=r"img_size \(18\) must be a multiple of patch_size \(4\)"
    ):
        TokenClassifier(img_size=18, patch_size=4)
    with pytest.raises(ValueError, match="depth must be a positive integer, got True"):
        TokenClassifier(depth=True)


def test_pair_task_places_two_digits_in_opposite_corners_and_labels_same():
    x, y, classes = lab.pair_task(40, "far", "test", seed=3, noise=0.0)
    assert x.shape == (40, 1, 48, 48) and y.shape == (40,) and classes.shape == (40, 2)
    assert y.dtype == torch.long and y.sum() == 20  # half the pairs are the same digit
    torch.testing.assert_close(y, (classes[:, 0] == classes[:, 1]).long())
    assert x[:, :, 18:30].abs().sum() == 0  # nothing between the corners' bands
    assert x[:, :, :18, :18].sum(dim=(1, 2, 3)).min() > 0  # digit A top-left
    assert x[:, :, 30:, 30:].sum(dim=(1, 2, 3)).min() > 0  # digit B bottom-right
    again = lab.pair_task(40, "far", "test", seed=3, noise=0.0)[0]
    assert torch.equal(x, again)


def test_pair_task_near_puts_the_pair_side_by_side_and_a_distractor_in_the_other_band():
    x, y, classes = lab.pair_task(30, "near", "test", seed=1, noise=0.0, classes=(3, 5))
    assert set(classes.flatten().tolist()) <= {3, 5}
    torch.testing.assert_close(y, (classes[:, 0] == classes[:, 1]).long())
    top, bottom = x[:, 0, :18].sum(dim=(1, 2)), x[:, 0, 30:].sum(dim=(1, 2))
    assert bool(((top > 0) & (bottom > 0)).all())  # something in both bands
    with pytest.raises(ValueError, match="layout must be one of"):
        lab.pair_task(4, "diagonal")
    with pytest.raises(ValueError, match="at least two distinct digits"):
        lab.pair_task(4, classes=(3,))


def test_neighbourhood_mask_by_hand():
    m = lab.neighbourhood_mask(3, 4, 3)
    assert m.shape == (12, 12) and m.dtype == torch.bool
    assert torch.equal(m, m.T)
    assert m[0].nonzero()[:, 0].tolist() == [0, 1, 4, 5]  # corner: 2 × 2 of the 3 × 3
    assert m[5].nonzero()[:, 0].tolist() == [0, 1, 2, 4, 5, 6, 8, 9, 10]
    assert lab.neighbourhood_mask(6, 6, 13).all()  # a square wider than the grid is global
    with pytest.raises(ValueError, match="kernel_size must be a positive integer"):
        lab.neighbourhood_mask(3, 3, 0)




def test_pair_head_differs_only_by_its_mask():
    torch.manual_seed(0)
    glob, local = lab.PairHead(None, channels=8, grid=4, dim=8, num_heads=2), None
    torch.manual_seed(0)
    local = lab.PairHead(3, channels=8, grid=4, dim=8, num_heads=2)
    params = dict(glob.named_parameters())
    assert all(torch.equal(p, params[n]) for n, p in local.named_parameters())
    assert glob.mask.all() and local.mask.sum() == lab.neighbourhood_mask(4, 4, 3).sum()
    f = torch.randn(5, 8, 4, 4)
    assert glob(f).shape == (5, 2)
    w = lab.attention_weights(local, f)  # (5, 16, 16), head-averaged
    assert w.shape == (5, 16, 16) and bool((w[:, ~local.mask] == 0).all())
    torch.testing.assert_close(w.sum(-1), torch.ones(5, 16))
    with record_attention(local) as maps:
        local(f)
    torch.testing.assert_close(maps["block.attn"].mean(1), w)
    with pytest.raises(ValueError, match=r"features must be \(B, C, H, W\) with C = 8"):
        glob(torch.randn(1, 3, 4, 4))


def test_attention_mass_of_a_masked_head_is_one_and_uniform_is_the_mask_density():
    f = torch.randn(3, 8, 4, 4)
    inside, uniform = lab.attention_mass(lab.PairHead(3, 8, 4, 8, 2), f, kernel_size=3)
    assert abs(inside - 1.0) < 1e-6
    assert abs(uniform - lab.neighbourhood_mask(4, 4, 3).float().mean().item()) < 1e-9
    head = lab.PairHead(None, 8, 4, 8, 2)
    with torch.no_grad():
        head.block.attn.qkv.weight.zero_()
        head.block.attn.qkv.bias.zero_()  # equal scores: uniform weights
    inside, _ = lab.attention_mass(head, f, kernel_size=3)
    assert abs(inside - uniform) < 1e-6


def test_run_seeds_on_a_tiny_problem():
    f, y = torch.randn(16, 8, 4, 4), torch.arange(16) % 2
    acc, heads, hist = lab.run_seeds(None, (f, y), (f, y), seeds=(0, 1, 2), epochs=2)
    assert len(acc) == len(heads) == len(hist) == 3 and all(0 <= a <= 1 for a in acc)
    assert len(hist[0].test_accuracy) == 2 and not heads[0].training


def test_the_page_model_is_the_trained_heads_on_the_standardised_tokens():
    from visual_attention.labs.digits import DigitCNN
    from visual_attention.views.browser_model import BrowserModel, run_graph

    encoder = randomise(DigitCNN(), seed=3)
    x, y, _ = lab.pair_task(4, "far", "test", seed=1)
    raw = lab.token_features(x, encoder)
    f = lab.standardize(raw, raw)[1]
    torch.manual_seed(0)
    heads = {"global": lab.PairHead(None).eval(), "3×3": lab.PairHead(3).eval()}
    model = lab.TokenPairModel(heads, raw, encoder)
    out = model(x)
    for k, head in enumerate(heads.values()):
        torch.testing.assert_close(out[2 * k], head(f))
        torch.testing.assert_close(out[2 * k + 1][:, 0].mean(1), lab.attention_weights(head, f))
    assert (out[3][:, 0] * ~heads["3×3"].mask == 0).all()  # the control attends in its neighbourhood
    widget = lab.model_explorer(model, x, y)
    assert [v["kind"] for v in widget.views] == ["probs", "probs", "tokens", "tokens"]
    assert widget.views[2]["grid"] == [6, 6] and widget.views[2]["prefix"] == 0
    json.dumps(widget.graph, allow_nan=False)  # the -inf of the masked scores is valid JSON
    assert {"float": "-inf"} in widget.graph["constants"].values()
    mask = [t for t in widget.graph["tensors"].values() if t.get("dtype") == "bool"]
    assert mask, "the neighbourhood mask travels as a typed tensor"
    replay = run_graph(BrowserModel(widget.graph, widget.weights), x[2:3])
    torch.testing.assert_close(torch.from_numpy(replay["attention 3×3"]), out[3][2:3], atol=1e-6, rtol=0)

