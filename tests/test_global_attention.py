"""Tests of visual_attention.global_attention: multi-head self-attention over all tokens, compared with
torch.nn.MultiheadAttention; patchify; the token classifier."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from visual_attention import record_attention
from visual_attention.global_attention import GlobalAttention, patchify
from visual_attention.labs.global_attention import TokenClassifier

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
    assert torch.autograd.gradcheck(g, (torch.randn(1, 3, 2, 4, dtype=torch.float64, requires_grad=True),))


def test_patchify_matches_a_loop():
    img = torch.randn(2, 3, 4, 6)
    tokens = patchify(img, 2)
    assert tokens.shape == (2, 6, 12)
    assert torch.equal(tokens[1, 5], img[1, :, 2:4, 4:6].permute(1, 2, 0).reshape(-1))


def test_token_classifier_shapes_and_records():
    for stem in ("conv", "patch"):
        model = TokenClassifier(img_size=16, patch_size=4, dim=8, depth=2, stem=stem,
                                attn_layer=lambda d, i: GlobalAttention(d, 2))
        with record_attention(model) as maps:
            assert model(torch.randn(3, 1, 16, 16)).shape == (3, 10)
        assert [tuple(v.shape) for v in maps.values()] == [(3, 2, 16, 16)] * 2


def test_conv_stem_halves_with_stride_2_convs_then_mixes_at_the_token_grid():
    model = TokenClassifier(img_size=16, patch_size=4, dim=8, depth=1)
    convs = [m for m in model.embed if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [(1, 4, 2), (4, 8, 2), (8, 8, 1)]
    assert model.embed(torch.zeros(2, 1, 16, 16)).shape == (2, 8, 4, 4)
    one = TokenClassifier(img_size=16, patch_size=1, dim=8, depth=1)
    assert isinstance(one.embed, torch.nn.Conv2d) and one.embed.kernel_size == (1, 1)


def test_validation_errors():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        GlobalAttention(6, 4)
    with pytest.raises(ValueError, match=r"x must be 3-d \(B, N, C\) or 4-d \(B, H, W, C\), got shape \(4, 8\)"):
        GlobalAttention(8, 2)(torch.zeros(4, 8))
    with pytest.raises(ValueError, match=r"C = 8 channels"):
        GlobalAttention(8, 2)(torch.zeros(1, 4, 6))
    with pytest.raises(ValueError, match="floating-point"):
        GlobalAttention(8, 2)(torch.zeros(1, 4, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="multiples of patch_size=3"):
        patchify(torch.zeros(1, 3, 8, 8), 3)
    with pytest.raises(ValueError, match=r"images must be \(B, 1, 16, 16\)"):
        TokenClassifier(img_size=16, dim=8)(torch.zeros(1, 1, 20, 20))
    with pytest.raises(ValueError, match="stem must be"):
        TokenClassifier(stem="resnet")


def test_explorer_computes_what_global_attention_computes_head_by_head():
    from einops import rearrange

    from visual_attention.core import scaled_dot_product_attention
    from visual_attention.global_attention import GlobalAttention
    from visual_attention.labs.global_attention import explorer

    torch.manual_seed(2)
    features = torch.nn.functional.normalize(torch.randn(6, 3, 4), dim=0)
    ex = explorer(torch.rand(3, 48, 64), features, [f"f{i}" for i in range(6)],
                  initial={"head": "texture head", "row": 2, "column": 1})
    assert (ex.head, ex.query) == (1, 9) and ex.head_names[1] == "texture head"
    tokens = rearrange(features, "c h w -> 1 (h w) c")
    for n_heads, heads in ((2, (0, 1)), (1, (2,))):
        layer = GlobalAttention(6, num_heads=n_heads, qkv_bias=False, scale=5.0)
        with torch.no_grad():
            layer.qkv.weight.copy_(torch.eye(6).repeat(3, 1))
            q, k, v = rearrange(layer.qkv(tokens), "b n (three h d) -> three b h n d", three=3, h=n_heads)
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
