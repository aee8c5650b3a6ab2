"""Tests of visual_attention.global_attention: multi-head self-attention over all tokens of a grid,
compared with torch.nn.MultiheadAttention; patchify, and the patch embedding as patchify + E."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange
from hypothesis import given, settings
from hypothesis import strategies as st

from visual_attention import record_attention
from visual_attention.blocks import MultiHeadAttention, PatchEmbed
from visual_attention.global_attention import GlobalAttention, patchify

SETTINGS = settings(max_examples=30, deadline=None)


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 7), st.sampled_from([1, 2, 4]))
def test_matches_torch_multihead_attention(b, n, heads):
    torch.manual_seed(n)
    g = GlobalAttention(8, heads)
    ref = torch.nn.MultiheadAttention(8, heads, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(g.qkv.weight)
        ref.in_proj_bias.copy_(g.qkv.bias)
        ref.out_proj.weight.copy_(g.proj.weight)
        ref.out_proj.bias.copy_(g.proj.bias)
    x = torch.randn(b, n, 8)
    with record_attention(g) as maps:
        out = g(x)
    want, want_w = ref(x, x, x, average_attn_weights=False)
    assert torch.allclose(out, want, atol=1e-5)
    assert torch.allclose(maps[""], want_w, atol=1e-6)
    assert maps[""].shape == (b, heads, n, n)


@SETTINGS
@given(st.integers(1, 4), st.integers(1, 4))
def test_grid_input_is_the_flattened_sequence(h, w):
    torch.manual_seed(h * w)
    g = GlobalAttention(4, 2)
    x = torch.randn(2, h, w, 4)
    with record_attention(g) as maps:
        out = g(x)
    assert out.shape == x.shape and maps[""].shape == (2, 2, h * w, h * w)
    assert torch.allclose(out.flatten(1, 2), g(x.flatten(1, 2)), atol=1e-6)
    assert (maps[""] >= 0).all() and torch.allclose(maps[""].sum(-1), torch.ones(()), atol=1e-6)


def test_permutation_equivariance():
    torch.manual_seed(0)
    g = GlobalAttention(6, 3)
    x = torch.randn(2, 9, 6)
    perm = torch.randperm(9)
    assert torch.allclose(g(x)[:, perm], g(x[:, perm]), atol=1e-5)


@SETTINGS
@given(st.floats(-1e4, 1e4, allow_nan=False))
def test_finite_for_extreme_inputs(big):
    g = GlobalAttention(4, 2)
    assert torch.isfinite(g(torch.full((1, 5, 4), big) + torch.randn(1, 5, 4))).all()


def test_gradcheck():
    torch.manual_seed(1)
    g = GlobalAttention(4, 2).double()
    assert torch.autograd.gradcheck(
        g, (torch.randn(1, 3, 2, 4, dtype=torch.float64, requires_grad=True),)
    )


def test_patchify_matches_a_loop():
    img = torch.randn(2, 3, 4, 6)
    tokens = patchify(img, 2)
    assert tokens.shape == (2, 6, 12)
    assert torch.equal(tokens[1, 5], img[1, :, 2:4, 4:6].permute(1, 2, 0).reshape(-1))


def test_validation_errors():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        GlobalAttention(6, 4)
    with pytest.raises(ValueError, match="num_heads must be a positive integer, got True"):
        GlobalAttention(6, True)
    with pytest.raises(
        ValueError, match=r"x must be 3-d \(B, N, C\) or 4-d \(B, H, W, C\), got shape \(4, 8\)"
    ):
        GlobalAttention(8, 2)(torch.zeros(4, 8))
    with pytest.raises(ValueError, match=r"x must be \(B, N, C\) with C = 8"):
        GlobalAttention(8, 2)(torch.zeros(1, 4, 6))
    with pytest.raises(ValueError, match=r"x must be \(B, H, W, C\) with C = 8"):
        GlobalAttention(8, 2)(torch.zeros(1, 2, 2, 6))
    with pytest.raises(ValueError, match="floating-point"):
        GlobalAttention(8, 2)(torch.zeros(1, 4, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="multiples of patch_size=3"):
        patchify(torch.zeros(1, 3, 8, 8), 3)


def test_global_attention_is_the_kits_multi_head_attention_on_a_grid():
    torch.manual_seed(3)
    g = GlobalAttention(8, num_heads=2, qkv_bias=False, scale=0.5)
    assert isinstance(g, MultiHeadAttention)
    assert g.qkv.bias is None and g.proj.bias is not None and g.scale == 0.5
    assert GlobalAttention(8).num_heads == 8  # the default of the local-attention chapter
    mha = MultiHeadAttention(8, 2, qkv_bias=False, scale=0.5)
    mha.load_state_dict(g.state_dict())
    x = torch.randn(2, 3, 4, 8)
    assert torch.equal(g(x).flatten(1, 2), mha(x.flatten(1, 2)))


def test_patch_embedding_is_patchify_then_a_linear_map():
    torch.manual_seed(4)
    pe = PatchEmbed(2, 3, 5, stem_channels=())
    images = torch.randn(2, 3, 4, 6)
    e = rearrange(pe.proj.weight, "d c p1 p2 -> d (p1 p2 c)")  # E, in patchify's order
    want = patchify(images, 2) @ e.T + pe.proj.bias  # Eq. 1: x_p E
    assert torch.allclose(pe(images).flatten(1, 2), want, atol=1e-5)
