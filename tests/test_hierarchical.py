"""Tests of visual_attention.hierarchical: Swin's patch merging, blocks and the Swin-T parameter
count; hierarchical attention pooling (HAN) against an explicit formula. The chapter's classifier and
widget are tested in test_lab_hierarchical.py."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from visual_attention import record_attention
from visual_attention.blocks import AttentionPooling, PatchEmbed, PreNormBlock
from visual_attention.hierarchical import (
    HierarchicalAttentionPooling,
    PatchMerging,
    SwinBlock,
    SwinTransformer,
    image_regions,
    swin_tiny,
)
from visual_attention.train import count_parameters

SETTINGS = settings(max_examples=30, deadline=None)


def test_swin_tiny_has_28_29_million_parameters():
    n = count_parameters(swin_tiny())
    assert abs(n - 28.29e6) / 28.29e6 < 0.005
    assert n == 28_288_354  # timm's swin_tiny_patch4_window7_224


def test_swin_stage_shapes_and_recorded_windows():
    torch.manual_seed(0)
    model = SwinTransformer(img_size=56, dim=8, depths=(2, 2), num_heads=(2, 4), window_size=7, num_classes=3)
    x = torch.randn(2, 3, 56, 56)
    with record_attention(model) as maps:
        logits = model(x)
    assert logits.shape == (2, 3)
    assert model.forward_features(x).shape == (2, 7, 7, 16)
    # stage 0: 14×14 grid → 4 windows of 7×7 per image; stage 1: 7×7 grid → a single window, no shift
    assert maps["stages.0.blocks.0.attn.attn"].shape == (8, 2, 49, 49)
    assert maps["stages.1.blocks.1.attn.attn"].shape == (2, 4, 49, 49)
    assert model.stages[0].blocks[1].attn.shift_size == 3 and model.stages[1].blocks[1].attn.shift_size == 0


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4))
def test_patch_merging_matches_the_formula(b, nh, nw, c):
    torch.manual_seed(c)
    x = torch.randn(b, 2 * nh, 2 * nw, c)
    pm = PatchMerging(c)
    out = pm(x)
    assert out.shape == (b, nh, nw, 2 * c)
    i, j = nh - 1, nw - 1
    group = torch.cat([x[:, 2 * i, 2 * j], x[:, 2 * i + 1, 2 * j], x[:, 2 * i, 2 * j + 1], x[:, 2 * i + 1, 2 * j + 1]], -1)
    assert torch.allclose(out[:, i, j], pm.reduction(pm.norm(group)), atol=1e-5)


def test_patch_merging_parameters():
    assert count_parameters(PatchMerging(96)) == 4 * 96 * 2 * 96 + 2 * 4 * 96


def test_swin_block_is_residual_and_shrinks_its_window_on_small_grids():
    block = SwinBlock(8, 2, (4, 4), window_size=7, shift_size=3)
    assert block.attn.window_size == 4 and block.attn.shift_size == 0
    x = torch.randn(1, 4, 4, 8)
    assert block(x).shape == x.shape


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 5), st.floats(-50, 50))
def test_attention_pooling_matches_han_equations(b, t, c, shift):
    torch.manual_seed(t)
    pool = AttentionPooling(c, hidden_dim=3)
    h = torch.randn(b, t, c) + shift
    with record_attention(pool) as maps:
        s = pool(h)
    u = torch.tanh(h @ pool.proj.weight.T + pool.proj.bias)              # Eq. 5
    alpha = torch.softmax(u @ pool.score.weight[0], dim=-1)             # Eq. 6, context u_w
    assert torch.allclose(maps[""], alpha, atol=1e-6)
    assert torch.allclose(s, (alpha[..., None] * h).sum(1), atol=1e-4)  # Eq. 7
    assert (maps[""] >= 0).all() and torch.allclose(maps[""].sum(-1), torch.ones(()), atol=1e-6)


def test_image_regions_match_a_loop():
    x = torch.randn(2, 3, 4, 6)
    regions = image_regions(x, 2)
    assert regions.shape == (2, 6, 4, 3)
    assert torch.equal(regions[1, 4], x[1, :, 2:4, 2:4].reshape(3, 4).T)


def test_hierarchical_pooling_is_two_levels_of_pooling():
    torch.manual_seed(1)
    hap = HierarchicalAttentionPooling(4, region_size=2)
    x = torch.randn(3, 4, 4, 6)
    with record_attention(hap) as maps:
        v = hap(x)
    pw, rw = maps["patch_pool"], maps["region_pool"]
    assert pw.shape == (3, 6, 4) and rw.shape == (3, 6) and v.shape == (3, 4)
    assert torch.allclose(pw.sum(-1), torch.ones(()), atol=1e-6) and torch.allclose(rw.sum(-1), torch.ones(()), atol=1e-6)
    # the image vector is a convex combination of positions with weight α_region · α_position
    combined = (rw[..., None] * pw).reshape(3, 2, 3, 2, 2).permute(0, 1, 3, 2, 4).reshape(3, 24)
    assert torch.allclose(combined.sum(-1), torch.ones(()), atol=1e-6)
    assert torch.allclose(v, torch.einsum("bn,bcn->bc", combined, x.flatten(2)), atol=1e-5)


def test_region_permutation_equivariance_of_the_region_level():
    """Permuting whole regions does not change the image vector (region pooling is permutation invariant)."""
    torch.manual_seed(2)
    hap = HierarchicalAttentionPooling(3, region_size=2)
    x = torch.randn(1, 3, 4, 4)
    swapped = torch.cat([x[..., 2:], x[..., :2]], dim=-1)   # swap left and right regions
    assert torch.allclose(hap(x), hap(swapped), atol=1e-6)


def test_gradcheck():
    torch.manual_seed(3)
    hap = HierarchicalAttentionPooling(3, region_size=2, encode_regions=True).double()
    pm = PatchMerging(2).double()
    assert torch.autograd.gradcheck(hap, (torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True),))
    assert torch.autograd.gradcheck(pm, (torch.randn(1, 2, 2, 2, dtype=torch.float64, requires_grad=True),))


def test_validation_errors():
    with pytest.raises(ValueError, match=r"x must be \(B, H, W, 4\) with even H and W, got \(1, 3, 4, 4\)"):
        PatchMerging(4)(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="multiples of region_size=3"):
        image_regions(torch.zeros(1, 2, 4, 4), 3)
    with pytest.raises(ValueError, match=r"must be 4-d \(B, C, H, W\)"):
        image_regions(torch.zeros(2, 4, 4), 2)
    with pytest.raises(ValueError, match=r"h must be \(\*B, T, C\) with C = 5"):
        AttentionPooling(5)(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="floating-point"):
        AttentionPooling(4)(torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="equally long"):
        SwinTransformer(depths=(2, 2), num_heads=(3,))
    with pytest.raises(ValueError, match=r"images must be \(B, C, H, W\) with .*H = 224"):
        swin_tiny().forward_features(torch.zeros(1, 3, 112, 112))


def test_swin_is_built_from_the_kit():
    """Swin's patch embedding and blocks are the shared blocks.PatchEmbed and blocks.PreNormBlock."""
    model = SwinTransformer(img_size=56, dim=8, depths=(2,), num_heads=(2,), num_classes=3)
    assert isinstance(model.patch_embed, PatchEmbed) and not isinstance(model.patch_embed.norm, torch.nn.Identity)
    block = model.stages[0].blocks[1]
    assert isinstance(block, PreNormBlock) and isinstance(block, SwinBlock)
    assert block.attn.shift_size == 3 and block.mlp[0].out_features == 32
    x = torch.randn(2, 14, 14, 8)
    want = x + block.attn(block.norm1(x))                        # Swin Eq. 3
    torch.testing.assert_close(block(x), want + block.mlp(block.norm2(want)))


def test_hierarchical_pooling_hidden_dim():
    hap = HierarchicalAttentionPooling(6, region_size=2, hidden_dim=3)
    assert hap.patch_pool.proj.out_features == 3 and hap.region_pool.proj.out_features == 3
    assert hap(torch.randn(2, 6, 4, 4)).shape == (2, 6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dim": True}, "dim must be a positive integer, got True"),
        ({"num_classes": 0}, "num_classes must be a positive integer, got 0"),
        ({"img_size": 100}, r"img_size=100 must be a multiple of patch_size·2\^\(stages-1\) = 32"),
        ({"img_size": 96, "depths": (2,), "num_heads": (3,)}, r"stage 0 has a 24×24 grid"),
        ({"depths": (2, 0), "num_heads": (3, 6)}, "depths must be a non-empty sequence of positive integers, got \\(2, 0\\)"),
    ],
)
def test_swin_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SwinTransformer(**kwargs)


def test_hierarchical_pooling_validation():
    with pytest.raises(ValueError, match="region_size must be a positive integer, got True"):
        HierarchicalAttentionPooling(4, region_size=True)
    with pytest.raises(ValueError, match="hidden_dim must be a positive integer, got 0"):
        HierarchicalAttentionPooling(4, region_size=2, hidden_dim=0)
