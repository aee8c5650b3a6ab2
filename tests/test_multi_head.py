"""Tests of visual_attention.multi_head: the Vision Transformer built from the kit, attention
rollout. (Multi-head attention itself, against torch, is tested in test_blocks.py.)"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _helpers import gen
from visual_attention import record_attention
from visual_attention.blocks import MultiHeadAttention, PreNormBlock
from visual_attention.multi_head import (
    VisionTransformer,
    attention_rollout,
    class_token_rollout,
)
from visual_attention.train import count_parameters

SETTINGS = settings(max_examples=30, deadline=None)


# --------------------------------------------------------------------------------------------
# Vision Transformer
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dim, heads, expected",
    [(768, 12, 86_567_656), (384, 6, 22_050_664)],  # ViT-B/16, ViT-S/16 (DeiT-S) (timm's counts)
)
def test_vit_parameter_counts(dim, heads, expected):
    model = VisionTransformer(224, 16, 3, 1000, dim=dim, depth=12, num_heads=heads)
    n = count_parameters(model)
    assert abs(n - expected) / expected < 0.005
    assert f"{n / 1e6:.2f}" == f"{expected / 1e6:.2f}"
    assert model.blocks[0].mlp[0].out_features == 4 * dim
    assert model.num_patches == 196 and model.grid == 14


def test_vit_is_built_from_the_kit():
    vit = VisionTransformer(8, 2, 1, 10, dim=16, depth=2, num_heads=2, stem_channels=(4,))
    for block in vit.blocks:
        assert isinstance(block, PreNormBlock) and isinstance(block.attn, MultiHeadAttention)
        assert block.norm1.eps == block.norm2.eps == vit.norm.eps == 1e-6
        assert block.mlp[0].out_features == 64
    assert vit.patch_embed.proj.in_channels == 4
    plain = VisionTransformer(8, 2, 1, 10, dim=16, depth=1, num_heads=2)
    assert isinstance(plain.patch_embed.stem, torch.nn.Identity)
    assert plain.patch_embed.proj.in_channels == 1


def test_vit_tokens_are_the_patch_embedding_plus_position_then_the_blocks():
    torch.manual_seed(0)
    vit = VisionTransformer(8, 2, 1, 3, dim=8, depth=2, num_heads=2).eval()
    x = torch.randn(2, 1, 8, 8)
    z = vit.patch_embed(x).flatten(1, 2)  # (B, 16, 8), row-major
    z = torch.cat([vit.cls_token.expand(2, -1, -1), z], 1) + vit.pos_embed
    for block in vit.blocks:
        z = block(z)
    z = vit.norm(z)
    assert torch.allclose(vit.tokens(x), z, atol=1e-6)
    assert torch.allclose(vit(x), vit.head(z[:, 0]), atol=1e-6)


def test_vit_records_one_map_per_block_and_pools_without_class_token():
    vit = VisionTransformer(8, 2, 1, 10, dim=16, depth=3, num_heads=2)
    x = torch.randn(4, 1, 8, 8)
    with record_attention(vit) as maps:
        assert vit(x).shape == (4, 10)
    assert list(maps) == [f"blocks.{i}.attn" for i in range(3)]
    assert all(m.shape == (4, 2, 17, 17) for m in maps.values())
    pooled = VisionTransformer(8, 2, 1, 3, dim=8, depth=1, num_heads=2, class_token=False)
    assert pooled.pos_embed.shape == (1, 16, 8) and pooled(x).shape == (4, 3)


def test_vit_validation():
    vit = VisionTransformer(8, 2, 1, 10, dim=8, depth=1, num_heads=2)
    with pytest.raises(
        ValueError, match=r"x must be \(B, C, H, W\) with .*H = 8.*got shape \(2, 1, 6, 6\)"
    ):
        vit(torch.zeros(2, 1, 6, 6))
    with pytest.raises(
        ValueError, match=r"x must be \(B, C, H, W\) with C = 1.*got shape \(2, 3, 8, 8\)"
    ):
        vit(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"img_size \(8\) must be a multiple of patch_size \(3\)"):
        VisionTransformer(8, 3, 1, 10, dim=8, depth=1, num_heads=2)
    with pytest.raises(ValueError, match="depth must be a positive integer, got 0"):
        VisionTransformer(8, 2, 1, 10, dim=8, depth=0, num_heads=2)
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got True"):
        VisionTransformer(8, 2, 1, True, dim=8, depth=1, num_heads=2)
    with pytest.raises(ValueError, match="stem_channels must be a non-negative int"):
        VisionTransformer(8, 2, 1, 10, dim=8, depth=1, num_heads=2, stem_channels=-1)


# --------------------------------------------------------------------------------------------
# attention rollout
# --------------------------------------------------------------------------------------------


def random_attention(b, h, n, g):
    return torch.softmax(torch.randn(b, h, n, n, generator=g), -1)


def test_rollout_of_one_layer_is_half_attention_half_identity():
    a = random_attention(2, 3, 5, gen(13))
    assert torch.allclose(attention_rollout([a]), 0.5 * a.mean(1) + 0.5 * torch.eye(5), atol=1e-6)


def test_rollout_multiplies_later_layers_on_the_left():
    g = gen(14)
    layers = [random_attention(1, 2, 4, g) for _ in range(3)]
    hat = [0.5 * a.mean(1) + 0.5 * torch.eye(4) for a in layers]
    assert torch.allclose(attention_rollout(layers), hat[2] @ hat[1] @ hat[0], atol=1e-6)
    mx = [0.5 * a.amax(1) + 0.5 * torch.eye(4) for a in layers]
    mx = [m / m.sum(-1, keepdim=True) for m in mx]
    assert torch.allclose(
        attention_rollout(layers, head_fusion="max"), mx[2] @ mx[1] @ mx[0], atol=1e-6
    )


@SETTINGS
@given(
    st.integers(1, 4),
    st.sampled_from(["mean", "max", "min"]),
    st.floats(0, 0.9),
    st.integers(0, 10**6),
)
def test_rollout_rows_are_distributions(depth, fusion, discard, seed):
    g = gen(seed)
    layers = [random_attention(2, 3, 5, g) for _ in range(depth)]
    r = attention_rollout(layers, head_fusion=fusion, discard_ratio=discard)
    assert r.shape == (2, 5, 5) and (r >= 0).all()
    assert torch.allclose(r.sum(-1), torch.ones(2, 5), atol=1e-5)


def test_identity_attention_rolls_out_to_the_identity_and_discarding_drops_weights():
    eye = torch.eye(4).expand(1, 2, 4, 4)
    assert torch.allclose(attention_rollout([eye, eye]), torch.eye(4)[None])
    a = random_attention(1, 1, 4, gen(15))
    kept = attention_rollout([a], discard_ratio=0.5)
    off = ~torch.eye(4, dtype=torch.bool)
    assert (
        kept[0][off] == 0
    ).sum() >= 8 - 4  # half the 16 entries dropped, the diagonal kept by I


def test_class_token_rollout_map():
    g = gen(16)
    layers = [random_attention(2, 2, 17, g) for _ in range(2)]
    m = class_token_rollout(layers, (4, 4))
    r = attention_rollout(layers)[:, 0, 1:]
    assert m.shape == (2, 4, 4)
    assert torch.allclose(m.flatten(1), r / r.sum(-1, keepdim=True))
    with pytest.raises(ValueError, match=r"a 3×3 grid needs N = 10 tokens"):
        class_token_rollout(layers, (3, 3))


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (([],), {}, r"non-empty list of \(B, h, N, N\) weights"),
        (([torch.ones(1, 2, 3, 3)],), dict(head_fusion="sum"), "head_fusion must be one of"),
        (
            ([torch.ones(1, 2, 3, 3)],),
            dict(discard_ratio=1.0),
            r"discard_ratio must be a finite number in \[0, 1\)",
        ),
        (([torch.ones(2, 3, 3)],), {}, r"attentions\[0\] must be 4-d \(B, h, N, N\)"),
        (
            ([torch.ones(1, 2, 3, 3), torch.ones(1, 2, 4, 4)],),
            {},
            r"attentions\[1\] has shape \(1, 2, 4, 4\)",
        ),
    ],
)
def test_rollout_validation(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        attention_rollout(*args, **kwargs)


def test_sinusoidal_position_embedding_is_vaswanis_code():
    from visual_attention.multi_head import sinusoidal_position_embedding

    pe = sinusoidal_position_embedding(7, 6)
    assert pe.shape == (7, 6) and pe.dtype == torch.float32
    for p in range(7):
        for i in range(3):
            angle = p / 10000 ** (2 * i / 6)
            assert abs(float(pe[p, 2 * i]) - math.sin(angle)) < 1e-6
            assert abs(float(pe[p, 2 * i + 1]) - math.cos(angle)) < 1e-6
    assert len({tuple(r) for r in pe.round(decimals=4).tolist()}) == 7  # every position distinct
    # PE[p + k] is a rotation of PE[p], pair by pair: the same for every p
    k, freq = 2, 10000 ** (-torch.arange(0, 6, 2) / 6)
    rot_sin, rot_cos = torch.sin(k * freq), torch.cos(k * freq)
    s, c = pe[:-k, 0::2], pe[:-k, 1::2]
    torch.testing.assert_close(pe[k:, 0::2], s * rot_cos + c * rot_sin, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_position_embedding(4, 5)


def test_attention_without_positions_is_permutation_equivariant():
    from visual_attention.multi_head import sinusoidal_position_embedding

    torch.manual_seed(0)
    attn = MultiHeadAttention(8, 2).eval()
    x, perm = torch.randn(2, 5, 8, generator=gen(9)), torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        torch.testing.assert_close(attn(x[:, perm]), attn(x)[:, perm], atol=1e-6, rtol=0)
        pe = sinusoidal_position_embedding(5, 8)
        assert not torch.allclose(attn(x[:, perm] + pe), attn(x + pe)[:, perm], atol=1e-4)
