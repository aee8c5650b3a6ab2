"""Tests of visual_attention.labs.global_attention: the token classifier with a pluggable attention
layer and the chapter's head explorer."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange

from visual_attention import record_attention
from visual_attention.blocks import PatchEmbed, PreNormBlock
from visual_attention.core import scaled_dot_product_attention
from visual_attention.global_attention import GlobalAttention
from visual_attention.labs.global_attention import TokenClassifier, explorer


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


def test_explorer_computes_what_global_attention_computes_head_by_head():
    torch.manual_seed(2)
    features = torch.nn.functional.normalize(torch.randn(6, 3, 4), dim=0)
    ex = explorer(
        torch.rand(3, 48, 64),
        features,
        [f"f{i}" for i in range(6)],
        initial={"head": "texture head", "row": 2, "column": 1},
    )
    assert (ex.head, ex.query) == (1, 9) and ex.head_names[1] == "texture head"
    tokens = rearrange(features, "c h w -> 1 (h w) c")
    for n_heads, heads in ((2, (0, 1)), (1, (2,))):
        layer = GlobalAttention(6, num_heads=n_heads, qkv_bias=False, scale=5.0)
        with torch.no_grad():
            layer.qkv.weight.copy_(torch.eye(6).repeat(3, 1))
            q, k, v = rearrange(
                layer.qkv(tokens), "b n (three h d) -> three b h n d", three=3, h=n_heads
            )
            ctx, weights = scaled_dot_product_attention(q, k, v, scale=5.0)
        for j, head in enumerate(heads):
            slots = slice(3 * j, 3 * j + 3) if n_heads == 2 else slice(0, 6)
            for query in (0, 5, 11):
                w, c = ex.compute(head=head, query=query, temperature=1.0)
                torch.testing.assert_close(w, weights[0, j, query], atol=1e-6, rtol=1e-5)
                torch.testing.assert_close(c[slots], ctx[0, j, query], atol=1e-5, rtol=1e-4)
                outside = torch.ones(6, dtype=torch.bool)
                outside[slots] = False
                assert torch.count_nonzero(c[outside]) == 0  # nothing outside the head's slots
    with pytest.raises(ValueError, match=r"features must be \(C, h, w\) with C = 6"):
        explorer(torch.rand(3, 48, 64), features[:5], [f"f{i}" for i in range(5)])
