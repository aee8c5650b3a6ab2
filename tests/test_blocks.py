"""Tests of visual_attention.blocks, the Transformer kit: split/merge heads, multi-head attention
against torch.nn.MultiheadAttention, the MLP, the pre-norm block and the patch embedding."""

from __future__ import annotations

import copy
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from _helpers import gen
from visual_attention import record_attention
from visual_attention.blocks import (
    Mlp,
    MultiHeadAttention,
    PatchEmbed,
    PreNormBlock,
    merge_heads,
    split_heads,
)
from visual_attention.train import count_parameters

SETTINGS = settings(max_examples=30, deadline=None)




def pair(dim, heads, bias=True, seed=0):
    torch.manual_seed(seed)
    ref = torch.nn.MultiheadAttention(dim, heads, bias=bias, batch_first=True).eval()
    if bias:
        torch.nn.init.normal_(ref.in_proj_bias)
        torch.nn.init.normal_(ref.out_proj.bias)
    ours = MultiHeadAttention(dim, heads, qkv_bias=bias, proj_bias=bias).load_torch_weights(ref)
    return ours, ref


# --------------------------------------------------------------------------------------------
# heads
# --------------------------------------------------------------------------------------------


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 4), st.integers(1, 4))
def test_split_then_merge_is_the_identity(b, n, h, d):
    x = torch.randn(b, n, h * d)
    s = split_heads(x, h)
    assert s.shape == (b, h, n, d)
    assert torch.equal(s[:, 1 % h, :, :], x[:, :, (1 % h) * d : (1 % h + 1) * d])
    assert torch.equal(merge_heads(s), x)


def test_split_heads_validation():
    with pytest.raises(
        ValueError, match=r"dim = 6 of x \(1, 2, 6\) is not divisible by num_heads = 4"
    ):
        split_heads(torch.zeros(1, 2, 6), 4)
    with pytest.raises(ValueError, match=r"x must be 4-d \(B, h, N, d\)"):
        merge_heads(torch.zeros(1, 2, 6))
    with pytest.raises(ValueError, match="num_heads must be a positive integer, got True"):
        split_heads(torch.zeros(1, 2, 6), True)


# --------------------------------------------------------------------------------------------
# MultiHeadAttention against torch.nn.MultiheadAttention
# --------------------------------------------------------------------------------------------


@SETTINGS
@given(
    st.sampled_from([(8, 1), (8, 2), (12, 3), (16, 4)]),
    st.integers(1, 3),
    st.integers(1, 6),
    st.booleans(),
    st.integers(0, 10**6),
)
def test_matches_torch_without_masks(dh, b, n, bias, seed):
    dim, heads = dh
    ours, ref = pair(dim, heads, bias, seed % 1000)
    x = torch.randn(b, n, dim, generator=gen(seed))
    out, w = ours(x, return_weights=True)
    out_ref, w_ref = ref(x, x, x, average_attn_weights=False)
    assert torch.allclose(out, out_ref, atol=1e-5)
    assert torch.allclose(w, w_ref, atol=1e-5)
    assert w.shape == (b, heads, n, n)


@SETTINGS
@given(st.integers(1, 3), st.integers(2, 6), st.integers(0, 10**6))
def test_matches_torch_with_boolean_masks(b, n, seed):
    ours, ref = pair(12, 3, seed=seed % 1000)
    g = gen(seed)
    x = torch.randn(b, n, 12, generator=g)
    allowed = torch.rand(n, n, generator=g) > 0.4
    allowed[:, 0] = True  # every query keeps a key (torch gives NaN for a fully masked row)
    key_mask = torch.rand(b, n, generator=g) > 0.3
    key_mask[:, 0] = True
    out, w = ours(x, mask=allowed, key_mask=key_mask, return_weights=True)
    # torch's boolean masks say where attention is NOT allowed: invert ours
    out_ref, w_ref = ref(
        x, x, x, attn_mask=~allowed, key_padding_mask=~key_mask, average_attn_weights=False
    )
    assert torch.allclose(out, out_ref, atol=1e-5)
    assert torch.allclose(w, w_ref, atol=1e-5)
    assert (w[..., ~allowed] == 0).all()
    assert (w.permute(0, 3, 1, 2)[~key_mask] == 0).all()  # (B, N, h, N) indexed by padded keys


def test_matches_torch_with_a_causal_mask():
    ours, ref = pair(8, 2, seed=11)
    x = torch.randn(2, 5, 8)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    out, w = ours(x, mask=causal, return_weights=True)
    out_ref, w_ref = ref(x, x, x, attn_mask=~causal, average_attn_weights=False)
    assert torch.allclose(out, out_ref, atol=1e-5) and torch.allclose(w, w_ref, atol=1e-5)
    assert (w[..., ~causal] == 0).all()


def test_load_torch_weights_needs_the_same_sizes_and_biases():
    with pytest.raises(ValueError, match=r"need an nn.MultiheadAttention\(8, 2\)"):
        MultiHeadAttention(8, 2).load_torch_weights(torch.nn.MultiheadAttention(8, 4))
    with pytest.raises(ValueError, match="must agree on the biases"):
        MultiHeadAttention(8, 2).load_torch_weights(torch.nn.MultiheadAttention(8, 2, bias=False))


@SETTINGS
@given(st.integers(2, 6), st.integers(0, 10**6))
def test_permuting_tokens_permutes_outputs_and_weights(n, seed):
    mha = MultiHeadAttention(8, 2)
    g = gen(seed)
    x = torch.randn(2, n, 8, generator=g)
    perm = torch.randperm(n, generator=g)
    out, w = mha(x, return_weights=True)
    out_p, w_p = mha(x[:, perm], return_weights=True)
    assert torch.allclose(out_p, out[:, perm], atol=1e-5)
    assert torch.allclose(w_p, w[:, :, perm][:, :, :, perm], atol=1e-5)


def test_recorded_weights_are_the_returned_weights_and_rows_sum_to_one():
    mha = MultiHeadAttention(16, 4)
    x = torch.randn(3, 6, 16) * 100  # extreme inputs
    with record_attention(mha) as maps:
        out, w = mha(x, return_weights=True)
    assert torch.equal(maps[""], w)
    assert torch.isfinite(out).all() and (w >= 0).all()
    assert torch.allclose(w.sum(-1), torch.ones(3, 4, 6), atol=1e-5)


def test_gradcheck_multi_head_attention():
    torch.manual_seed(12)
    mha = MultiHeadAttention(4, 2).double()
    x = torch.randn(1, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(mha, (x,))


def test_fused_qkv_has_the_parameters_of_four_projections():
    mha = MultiHeadAttention(8, 2)
    assert count_parameters(mha) == 4 * (8 * 8 + 8)
    assert mha.qkv.weight.shape == (24, 8) and mha.head_dim == 4
    assert count_parameters(MultiHeadAttention(8, 2, qkv_bias=False)) == 4 * 8 * 8 + 8


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(x=torch.zeros(2, 3, 5)),
            r"x must be \(B, N, dim\) with dim = 8, got shape \(2, 3, 5\)",
        ),
        (dict(x=torch.zeros(3, 8)), r"x must be 3-d \(B, N, dim\)"),
        (dict(x=torch.zeros(2, 3, 8, dtype=torch.long)), "x must be a floating-point tensor"),
        (
            dict(x=torch.zeros(2, 3, 8), key_mask=torch.ones(2, 4, dtype=torch.bool)),
            r"key_mask must have shape \(B, N\) = \(2, 3\), got \(2, 4\)",
        ),
        (dict(x=torch.zeros(2, 3, 8), mask=torch.ones(3, 3)), "mask must be a boolean tensor"),
        (
            dict(x=torch.zeros(2, 3, 8), mask=torch.ones(4, 4, dtype=torch.bool)),
            r"does not broadcast to \(B, h, N, N\) = \(2, 2, 3, 3\)",
        ),
    ],
)
def test_multi_head_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiHeadAttention(8, 2)(**kwargs)


def test_constructor_validation():
    with pytest.raises(ValueError, match=r"dim \(10\) must be divisible by num_heads \(4\)"):
        MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match="num_heads must be a positive integer, got 0"):
        MultiHeadAttention(8, 0)


# --------------------------------------------------------------------------------------------
# the fused path: PyTorch's kernel whenever nothing keeps the weights
# --------------------------------------------------------------------------------------------


def _fused_calls(fn):
    """``(result of fn(), number of calls of F.scaled_dot_product_attention it made)``."""
    with mock.patch.object(
        torch.nn.functional, "scaled_dot_product_attention", wraps=F.scaled_dot_product_attention
    ) as spy:
        result = fn()
    return result, spy.call_count


def _masks(kind, b, n, g):
    """(mask, key_mask) of one kind: none, a random mask with fully masked queries, a causal
    mask, a key padding mask, both."""
    if kind == "none":
        return None, None
    if kind == "causal":
        return torch.ones(n, n, dtype=torch.bool).tril(), None
    mask = torch.rand(b, 1, n, n, generator=g) > 0.5
    mask[:, :, 0] = False  # query 0 attends to nothing: zero context on both paths
    key_mask = torch.rand(b, n, generator=g) > 0.3
    return {"mask": (mask, None), "keys": (None, key_mask), "both": (mask, key_mask)}[kind]


@SETTINGS
@given(
    st.sampled_from([torch.float32, torch.float64]),
    st.sampled_from(["none", "mask", "causal", "keys", "both"]),
    st.sampled_from([(8, 1), (8, 2), (12, 3)]),
    st.integers(1, 3),
    st.integers(1, 7),
    st.integers(0, 10**6),
)
def test_fused_path_equals_the_path_that_keeps_the_weights(dtype, kind, dh, b, n, seed):
    dim, heads = dh
    torch.manual_seed(seed % 1000)
    mha = MultiHeadAttention(dim, heads).to(dtype)
    g = gen(seed)
    x = torch.randn(b, n, dim, generator=g, dtype=dtype)
    mask, key_mask = _masks(kind, b, n, g)
    r = torch.randn(b, n, dim, generator=g, dtype=dtype)  # a random upstream gradient

    def step(return_weights):
        for t in (x, *mha.parameters()):
            t.grad = None
        x.requires_grad_(True)
        out = mha(x, mask=mask, key_mask=key_mask, return_weights=return_weights)
        out = out[0] if return_weights else out
        (out * r).sum().backward()
        return out.detach(), [t.grad.clone() for t in (x, *mha.parameters())]

    (fused, fused_grads), calls = _fused_calls(lambda: step(False))
    (kept, kept_grads), kept_calls = _fused_calls(lambda: step(True))
    assert (calls, kept_calls) == (1, 0)  # the kernel ran once, only where no weights are kept
    atol = 1e-6 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(fused, kept, atol=atol, rtol=0)
    for got, want in zip(fused_grads, kept_grads):  # gradients sum over more terms in float32
        tol = 10 * atol if dtype == torch.float32 else atol
        torch.testing.assert_close(got, want, atol=tol, rtol=0)
    if mask is not None and kind != "causal":
        assert (fused[:, 0] == kept[:, 0]).all()  # the query with no key: proj's bias alone


def test_a_recorder_gets_the_weights_of_the_path_that_keeps_them():
    mha = MultiHeadAttention(16, 4)
    x = torch.randn(2, 5, 16, generator=gen(3))
    with record_attention(mha) as maps:
        out, calls = _fused_calls(lambda: mha(x))
    assert calls == 0 and maps[""].shape == (2, 4, 5, 5)
    _, w = mha(x, return_weights=True)
    assert torch.equal(maps[""], w)
    plain, calls = _fused_calls(lambda: mha(x))
    assert calls == 1 and mha.attention is None  # nothing recorded outside the recorder
    torch.testing.assert_close(plain, out, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype, tol", [(torch.float16, 0.005), (torch.bfloat16, 0.04)])
@pytest.mark.parametrize("seed", range(5))
def test_fused_path_in_half_precision(dtype, tol, seed):
    # tol: about 8 units in the last place (10 and 7 mantissa bits); measured worst over 200
    # seeds, both paths: 0.0007 and 0.006 of the output's largest value
    torch.manual_seed(seed)
    mha = MultiHeadAttention(16, 4).to(dtype)
    x = torch.randn(2, 6, 16, generator=gen(seed))
    with torch.no_grad():
        fused, calls = _fused_calls(lambda: mha(x.to(dtype)))
        kept, _ = mha(x.to(dtype), return_weights=True)
        exact = copy.deepcopy(mha).double()(x.double())  # the same module in float64
        big, big_calls = _fused_calls(lambda: mha((x * 30).to(dtype)))  # large logits
    assert calls == big_calls == 1 and torch.isfinite(big).all()
    scale = exact.abs().max()
    assert (fused.double() - exact).abs().max() <= tol * scale
    assert (kept.double() - exact).abs().max() <= tol * scale


def test_where_the_kernel_gives_up_the_careful_path_answers():
    # core._fused_context returns None where the fused kernel's output would hold a NaN that the
    # careful softmax avoids (+inf scores; tested in test_core): the module then computes the
    # weights, and its output is the output of the path that keeps them
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 4, 8, generator=gen(5))
    mask = torch.rand(2, 1, 4, 4, generator=gen(6)) > 0.5
    with mock.patch("visual_attention.blocks._fused_context", return_value=None) as gave_up:
        out = mha(x, mask=mask)
    assert gave_up.call_count == 1
    assert torch.equal(out, mha(x, mask=mask, return_weights=True)[0])


def test_export_traces_the_path_that_keeps_the_weights():
    from visual_attention.views.browser_model import OPS, export_model, run_graph

    torch.manual_seed(6)
    model = PreNormBlock(16, MultiHeadAttention(16, 4))
    x = torch.randn(1, 5, 16, generator=gen(6))
    exported = export_model(model, x)
    ops = {n["op"] for n in exported.graph["nodes"]}
    assert "scaled_dot_product_attention" not in ops and {"softmax", "matmul"} <= ops
    assert ops <= OPS | {f"{op}_" for op in OPS}
    with torch.no_grad():
        want = model(x)  # the fused path
    got = torch.as_tensor(run_graph(exported, x)["output"])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------
# Mlp, PreNormBlock
# --------------------------------------------------------------------------------------------


def test_mlp_is_linear_gelu_linear():
    mlp = Mlp(8, 16)
    assert isinstance(mlp[1], torch.nn.GELU)
    assert (mlp[0].in_features, mlp[0].out_features, mlp[2].out_features) == (8, 16, 8)
    x = torch.randn(2, 3, 8)
    assert torch.allclose(mlp(x), mlp[2](torch.nn.functional.gelu(mlp[0](x))))


def test_pre_norm_block_is_pre_norm_residual():
    block = PreNormBlock(8, MultiHeadAttention(8, 2), norm_eps=1e-6)
    x = torch.randn(2, 5, 8)
    manual = x + block.attn(block.norm1(x))
    manual = manual + block.mlp(block.norm2(manual))
    assert torch.allclose(block(x), manual, atol=1e-6)
    assert isinstance(block.mlp[1], torch.nn.GELU) and block.mlp[0].out_features == 32
    assert block.norm1.eps == block.norm2.eps == 1e-6


def test_pre_norm_block_passes_a_mask_to_its_attention():
    block = PreNormBlock(8, MultiHeadAttention(8, 2), mlp_ratio=2.0)
    x = torch.randn(2, 5, 8)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    with record_attention(block) as maps:
        block(x, mask=causal)
    assert (maps["attn"][..., ~causal] == 0).all()
    with pytest.raises(ValueError, match="mlp_ratio must be a positive finite number"):
        PreNormBlock(8, MultiHeadAttention(8, 2), mlp_ratio=0)


# --------------------------------------------------------------------------------------------
# PatchEmbed
# --------------------------------------------------------------------------------------------


def test_patch_embedding_is_a_linear_map_of_each_patch():
    pe = PatchEmbed(2, 1, 5, stem_channels=())
    x = torch.randn(2, 1, 8, 8)
    out = pe(x)
    assert out.shape == (2, 4, 4, 5)
    patch = x[:, 0, 2:4, 4:6].reshape(2, 4)  # patch (1, 2)
    manual = patch @ pe.proj.weight.reshape(5, 4).T + pe.proj.bias
    assert torch.allclose(out[:, 1, 2], manual, atol=1e-6)
    with pytest.raises(ValueError, match=r"H and W of x \(2, 1, 7, 7\) must be multiples"):
        pe(torch.zeros(2, 1, 7, 7))
    with pytest.raises(ValueError, match=r"x must be \(B, C, H, W\) with C = 1"):
        pe(torch.zeros(2, 3, 8, 8))


def test_convolutional_stem_sees_neighbouring_pixels_and_counts_its_parameters():
    pe = PatchEmbed(2, 1, 5, stem_channels=3).eval()
    assert isinstance(PatchEmbed(2, 1, 5, stem_channels=()).stem, torch.nn.Identity)
    # 3·3·1·3 conv weights (no bias) + 2·3 batch-norm + 3·2·2·5 + 5 projection
    assert count_parameters(pe) == 27 + 6 + 60 + 5
    # two layers: 27 + 6, then 3·3·3·4 + 2·4, then 4·2·2·5 + 5
    assert count_parameters(PatchEmbed(2, 1, 5, stem_channels=(3, 4))) == 33 + 116 + 85
    x = torch.zeros(1, 1, 8, 8)
    y = x.clone()
    y[0, 0, 2, 4] = 1.0  # a pixel just above patch (1, 2): only the stem lets token 6 see it
    with torch.no_grad():
        torch.nn.init.normal_(pe.stem[0][0].weight)
        torch.nn.init.normal_(pe.proj.weight)
        changed = (pe(y) - pe(x)).abs().sum(-1)[0].flatten()  # per token, row-major
    assert changed[6] > 0 and changed[1:3].sum() > 0 and changed[12:].sum() == 0
    with pytest.raises(ValueError, match="stem_channels must be a non-negative int"):
        PatchEmbed(2, 1, 5, stem_channels=-1)
    with pytest.raises(ValueError, match="sequence of positive ints"):
        PatchEmbed(2, 1, 5, stem_channels=(4, 0))


def test_patch_embed_with_a_layer_norm():
    pe = PatchEmbed(2, 3, 6, stem_channels=(), norm=True)
    out = pe(torch.randn(2, 3, 4, 4) * 10)
    assert torch.allclose(out.mean(-1), torch.zeros(2, 2, 2), atol=1e-5)


def test_patch_embed_default_is_the_plain_vit():
    assert isinstance(PatchEmbed(2, 1, 5).stem, torch.nn.Identity)
    assert isinstance(PatchEmbed(2, 1, 5, stem_channels=0).stem, torch.nn.Identity)
    assert len(PatchEmbed(2, 1, 5, stem_channels=4).stem) == 1
    for bad in (-1, True, (4, 0), "16", (2.0,)):
        with pytest.raises(ValueError, match="stem_channels must be a non-negative int or a sequence"):
            PatchEmbed(2, 1, 5, stem_channels=bad)


def test_conv_bn_act_dilation_keeps_the_size_and_act_layer_is_optional():
    from visual_attention.blocks import conv_bn_act

    x = torch.randn(2, 4, 9, 9)
    unit = conv_bn_act(4, 6, 3, dilation=2)
    assert unit[0].dilation == (2, 2) and unit(x).shape == (2, 6, 9, 9)
    assert isinstance(unit[2], torch.nn.ReLU)
    assert len(conv_bn_act(4, 6, 1, act_layer=None)) == 2
    assert isinstance(conv_bn_act(4, 6, act_layer=torch.nn.GELU)[2], torch.nn.GELU)
    with pytest.raises(ValueError, match="dilation must be a positive integer"):
        conv_bn_act(4, 6, dilation=0)


def test_mlp_activation_is_a_parameter():
    from visual_attention.blocks import Mlp

    assert isinstance(Mlp(4, 8)[1], torch.nn.GELU)
    relu = Mlp(4, 8, act_layer=torch.nn.ReLU)
    assert isinstance(relu[1], torch.nn.ReLU)
    x = torch.randn(3, 4)
    torch.testing.assert_close(relu(x), relu[2](torch.relu(relu[0](x))))


def test_attention_pooling_with_a_query_is_bahdanau_additive_attention():
    from visual_attention.blocks import AttentionPooling

    torch.manual_seed(0)
    pool = AttentionPooling(6, 5, query_dim=3)
    h, q = torch.randn(2, 4, 6), torch.randn(2, 3)
    e = pool.score(torch.tanh(pool.proj(h) + pool.query_proj(q)[:, None, :])).squeeze(-1)
    torch.testing.assert_close(pool.weights(h, query=q), torch.softmax(e, -1))
    torch.testing.assert_close(pool(h, query=q), (torch.softmax(e, -1)[..., None] * h).sum(1))
    with pytest.raises(ValueError, match="query .* is required"):
        pool(h)
    with pytest.raises(ValueError, match=r"query must be \(\*B, D\) with D = 3"):
        pool(h, query=torch.randn(2, 4))
    with pytest.raises(ValueError, match="must have the batch dimensions of h"):
        pool(h, query=torch.randn(3, 3))
    with pytest.raises(ValueError, match="built without query_dim"):
        AttentionPooling(6)(h, query=q)
