"""Tests of visual_attention.multi_head: multi-head attention against torch, the ViT, attention rollout."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from visual_attention import record_attention
from visual_attention.labs.multi_head import digit_vit
from visual_attention.multi_head import (
    MultiHeadAttention,
    PatchEmbedding,
    TransformerBlock,
    VisionTransformer,
    attention_rollout,
    class_token_rollout,
    merge_heads,
    split_heads,
)
from visual_attention.train import (
    count_parameters,
)

SETTINGS = settings(max_examples=30, deadline=None)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def pair(dim, heads, bias=True, seed=0):
    torch.manual_seed(seed)
    ref = torch.nn.MultiheadAttention(dim, heads, bias=bias, batch_first=True).eval()
    if bias:
        torch.nn.init.normal_(ref.in_proj_bias)
        torch.nn.init.normal_(ref.out_proj.bias)
    ours = MultiHeadAttention(dim, heads, bias=bias).load_torch_weights(ref)
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
    with pytest.raises(ValueError, match=r"dim = 6 of x \(1, 2, 6\) is not divisible by num_heads = 4"):
        split_heads(torch.zeros(1, 2, 6), 4)
    with pytest.raises(ValueError, match=r"x must be 4-d \(B, h, N, d\)"):
        merge_heads(torch.zeros(1, 2, 6))


# --------------------------------------------------------------------------------------------
# MultiHeadAttention against torch.nn.MultiheadAttention
# --------------------------------------------------------------------------------------------


@SETTINGS
@given(st.sampled_from([(8, 1), (8, 2), (12, 3), (16, 4)]), st.integers(1, 3), st.integers(1, 6),
       st.booleans(), st.integers(0, 10**6))
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
    out_ref, w_ref = ref(x, x, x, attn_mask=~allowed, key_padding_mask=~key_mask, average_attn_weights=False)
    assert torch.allclose(out, out_ref, atol=1e-5)
    assert torch.allclose(w, w_ref, atol=1e-5)
    assert (w[..., ~allowed] == 0).all()
    assert (w.permute(0, 3, 1, 2)[~key_mask] == 0).all()  # (B, M, h, N) indexed by padded keys


def test_matches_torch_with_a_causal_mask_and_cross_attention():
    ours, ref = pair(8, 2, seed=11)
    x, mem = torch.randn(2, 5, 8), torch.randn(2, 7, 8)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    assert torch.allclose(ours(x, mask=causal), ref(x, x, x, attn_mask=~causal)[0], atol=1e-5)
    out, w = ours(x, mem, mem, return_weights=True)
    out_ref, w_ref = ref(x, mem, mem, average_attn_weights=False)
    assert torch.allclose(out, out_ref, atol=1e-5) and torch.allclose(w, w_ref, atol=1e-5)
    assert w.shape == (2, 2, 5, 7)


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


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=torch.zeros(2, 3, 5)), r"x must have dim = 8 features \(B, N, dim\), got shape \(2, 3, 5\)"),
        (dict(x=torch.zeros(3, 8)), r"x must be 3-d \(B, N, dim\)"),
        (dict(x=torch.zeros(2, 3, 8, dtype=torch.long)), "x must be a floating-point tensor"),
        (dict(x=torch.zeros(2, 3, 8), key_mask=torch.ones(2, 4, dtype=torch.bool)), r"key_mask must be a boolean tensor of shape \(B, M\) = \(2, 3\)"),
        (dict(x=torch.zeros(2, 3, 8), mask=torch.ones(3, 3)), "mask must be a boolean tensor"),
        (dict(x=torch.zeros(2, 3, 8), mask=torch.ones(4, 4, dtype=torch.bool)), r"does not broadcast to \(B, h, N, M\) = \(2, 2, 3, 3\)"),
    ],
)
def test_multi_head_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiHeadAttention(8, 2)(**kwargs)


def test_constructor_validation():
    with pytest.raises(ValueError, match="dim must be a positive multiple of num_heads"):
        MultiHeadAttention(10, 4)


# --------------------------------------------------------------------------------------------
# Vision Transformer
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dim, heads, expected",
    [(768, 12, 86_567_656), (384, 6, 22_050_664)],  # ViT-B/16, ViT-S/16 (timm's counts)
)
def test_vit_parameter_counts(dim, heads, expected):
    model = VisionTransformer(224, 16, 3, 1000, dim=dim, depth=12, num_heads=heads)
    n = count_parameters(model)
    assert abs(n - expected) / expected < 0.005
    assert model.blocks[0].mlp[0].out_features == 4 * dim


def test_patch_embedding_is_a_linear_map_of_each_patch():
    pe = PatchEmbedding(8, 2, 1, 5)
    x = torch.randn(2, 1, 8, 8)
    out = pe(x)
    assert out.shape == (2, 16, 5)
    patch = x[:, 0, 2:4, 4:6].reshape(2, 4)  # patch (1, 2) is token 1·4 + 2
    manual = patch @ pe.proj.weight.reshape(5, 4).T + pe.proj.bias
    assert torch.allclose(out[:, 6], manual, atol=1e-6)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 8, 8\), got \(2, 1, 6, 6\)"):
        pe(torch.zeros(2, 1, 6, 6))
    with pytest.raises(ValueError, match="patch_size must divide img_size"):
        PatchEmbedding(8, 3, 1, 5)


def test_convolutional_stem_sees_neighbouring_pixels_and_counts_its_parameters():
    pe = PatchEmbedding(8, 2, 1, 5, stem_channels=3).eval()
    assert isinstance(PatchEmbedding(8, 2, 1, 5).stem, torch.nn.Identity)
    # 3·3·1·3 conv weights (no bias) + 2·3 batch-norm + 3·2·2·5 + 5 projection
    assert count_parameters(pe) == 27 + 6 + 60 + 5
    # two layers: 27 + 6, then 3·3·3·4 + 2·4, then 4·2·2·5 + 5
    assert count_parameters(PatchEmbedding(8, 2, 1, 5, stem_channels=(3, 4))) == 33 + 116 + 85
    x = torch.zeros(1, 1, 8, 8)
    y = x.clone()
    y[0, 0, 2, 4] = 1.0  # a pixel just above patch (1, 2): only the stem lets token 6 see it
    with torch.no_grad():
        torch.nn.init.normal_(pe.stem[0].weight)
        torch.nn.init.normal_(pe.proj.weight)
        changed = (pe(y) - pe(x)).abs().sum(-1)[0]
    assert changed[6] > 0 and changed[1:3].sum() > 0 and changed[12:].sum() == 0
    with pytest.raises(ValueError, match="stem_channels must be a non-negative int"):
        PatchEmbedding(8, 2, 1, 5, stem_channels=-1)
    with pytest.raises(ValueError, match="sequence of positive ints"):
        PatchEmbedding(8, 2, 1, 5, stem_channels=(4, 0))
    assert digit_vit(stem_channels=0).patch_embed.proj.in_channels == 1


def test_transformer_block_is_pre_norm_residual():
    block = TransformerBlock(8, 2)
    x = torch.randn(2, 5, 8)
    manual = x + block.attn(block.norm1(x))
    manual = manual + block.mlp(block.norm2(manual))
    assert torch.allclose(block(x), manual, atol=1e-6)
    assert isinstance(block.mlp[1], torch.nn.GELU)


def test_vit_records_one_map_per_block_and_pools_without_class_token():
    vit = digit_vit(dim=16, depth=3, num_heads=2)
    x = torch.randn(4, 1, 8, 8)
    with record_attention(vit) as maps:
        assert vit(x).shape == (4, 10)
    assert list(maps) == [f"blocks.{i}.attn" for i in range(3)]
    assert all(m.shape == (4, 2, 17, 17) for m in maps.values())
    pooled = VisionTransformer(8, 2, 1, 3, dim=8, depth=1, num_heads=2, class_token=False)
    assert pooled.pos_embed.shape == (1, 16, 8) and pooled(x).shape == (4, 3)


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
    assert torch.allclose(attention_rollout(layers, head_fusion="max"), mx[2] @ mx[1] @ mx[0], atol=1e-6)


@SETTINGS
@given(st.integers(1, 4), st.sampled_from(["mean", "max", "min"]), st.floats(0, 0.9), st.integers(0, 10**6))
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
    assert (kept[0][off] == 0).sum() >= 8 - 4  # half the 16 entries dropped, the diagonal kept by I


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
        (([],), {}, "at least one layer"),
        (([torch.ones(1, 2, 3, 3)],), dict(head_fusion="sum"), "head_fusion must be"),
        (([torch.ones(1, 2, 3, 3)],), dict(discard_ratio=1.0), r"discard_ratio must be in \[0, 1\)"),
        (([torch.ones(2, 3, 3)],), {}, r"attentions\[0\] must be 4-d \(B, h, N, N\)"),
        (([torch.ones(1, 2, 3, 3), torch.ones(1, 2, 4, 4)],), {}, r"attentions\[1\] has shape \(1, 2, 4, 4\)"),
    ],
)
def test_rollout_validation(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        attention_rollout(*args, **kwargs)


def test_explorer_computes_what_the_model_records():
    from visual_attention.labs.multi_head import explorer

    vit = digit_vit(dim=16, depth=2, num_heads=2)
    image = torch.rand(1, 8, 8, generator=gen(17))
    box = explorer(vit, image, initial={"layer": 1, "head": 1, "query": 3})
    assert box.shape == [2, 2, 17, 8, 8] and (box.layer, box.head, box.query) == (1, 1, 4)
    vit.eval()
    with torch.no_grad(), record_attention(vit) as maps:
        vit(image[None])
    for layer in range(2):
        recorded = maps[f"blocks.{layer}.attn"][0]                   # (h, N', N')
        for head in range(2):
            for query in (0, 1, 9, 16):
                w, c = box.compute(layer=layer, head=head, query=query, temperature=1.0)
                torch.testing.assert_close(w, recorded[head, query], atol=1e-6, rtol=1e-5)
                assert c.shape == (8,)
    with pytest.raises(ValueError, match="class token"):
        explorer(VisionTransformer(8, 2, 1, 10, 16, 1, 2, class_token=False), image)
