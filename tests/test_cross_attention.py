"""Tests of the cross-attention of visual_attention.blocks: CrossAttention against
torch.nn.MultiheadAttention with separate key/value inputs (masks included), the properties of
its weights, causal_mask and the pre-norm DecoderBlock."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _helpers import gen
from visual_attention import record_attention
from visual_attention.blocks import CrossAttention, DecoderBlock, MultiHeadAttention
from visual_attention.temporal import causal_mask
from visual_attention.train import count_parameters

SETTINGS = settings(max_examples=30, deadline=None)


def pair(dim, heads, memory_dim, bias=True, seed=0):
    torch.manual_seed(seed)
    ref = torch.nn.MultiheadAttention(
        dim, heads, bias=bias, kdim=memory_dim, vdim=memory_dim, batch_first=True
    ).eval()
    if bias:
        torch.nn.init.normal_(ref.in_proj_bias)
        torch.nn.init.normal_(ref.out_proj.bias)
    ours = CrossAttention(dim, heads, memory_dim, qkv_bias=bias, proj_bias=bias)
    return ours.load_torch_weights(ref), ref


@SETTINGS
@given(
    st.sampled_from([(8, 1), (8, 2), (12, 3)]),
    st.sampled_from([None, 5, 12]),
    st.integers(1, 3),
    st.integers(1, 5),
    st.integers(1, 7),
    st.booleans(),
    st.integers(0, 10**6),
)
def test_matches_torch_with_separate_keys_and_values(dh, mdim, b, n, m, bias, seed):
    dim, heads = dh
    ours, ref = pair(dim, heads, mdim or dim, bias, seed % 1000)
    g = gen(seed)
    x, memory = torch.randn(b, n, dim, generator=g), torch.randn(b, m, mdim or dim, generator=g)
    out, w = ours(x, memory, return_weights=True)
    out_ref, w_ref = ref(x, memory, memory, average_attn_weights=False)
    assert w.shape == (b, heads, n, m)
    assert torch.allclose(out, out_ref, atol=1e-5) and torch.allclose(w, w_ref, atol=1e-5)


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 5), st.integers(2, 7), st.integers(0, 10**6))
def test_matches_torch_with_masks(b, n, m, seed):
    ours, ref = pair(12, 3, 7, seed=seed % 1000)
    g = gen(seed)
    x, memory = torch.randn(b, n, 12, generator=g), torch.randn(b, m, 7, generator=g)
    allowed = torch.rand(n, m, generator=g) > 0.4
    allowed[:, 0] = True  # every query keeps a position (torch gives NaN for a fully masked row)
    key_mask = torch.rand(b, m, generator=g) > 0.3
    key_mask[:, 0] = True
    out, w = ours(x, memory, mask=allowed, key_mask=key_mask, return_weights=True)
    out_ref, w_ref = ref(  # torch's boolean masks say where attention is NOT allowed
        x,
        memory,
        memory,
        attn_mask=~allowed,
        key_padding_mask=~key_mask,
        average_attn_weights=False,
    )
    assert torch.allclose(out, out_ref, atol=1e-5) and torch.allclose(w, w_ref, atol=1e-5)
    assert (w[..., ~allowed] == 0).all()
    assert (w.permute(0, 3, 1, 2)[~key_mask] == 0).all()  # (B, M, h, N) at padded positions


@SETTINGS
@given(
    st.integers(1, 3),
    st.integers(1, 4),
    st.integers(1, 6),
    st.sampled_from([1.0, 1e3, 1e6]),
    st.integers(0, 10**6),
)
def test_weights_are_a_distribution_over_the_allowed_memory(b, n, m, size, seed):
    g = gen(seed)
    attn = CrossAttention(8, 2, 4)
    x, memory = torch.randn(b, n, 8, generator=g) * size, torch.randn(b, m, 4, generator=g) * size
    key_mask = torch.rand(b, m, generator=g) > 0.4
    with torch.no_grad():
        out, w = attn(x, memory, key_mask=key_mask, return_weights=True)
    assert torch.isfinite(out).all() and torch.isfinite(w).all()
    assert (w >= 0).all()
    sums = w.sum(-1)  # (B, h, N): 1, or 0 for a batch whose memory is all padding
    expected = key_mask.any(-1).to(w.dtype)[:, None, None].expand_as(sums)
    assert torch.allclose(sums, expected, atol=1e-5)
    assert (w.permute(0, 3, 1, 2)[~key_mask] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_finite_in_half_precision_for_extreme_inputs(dtype):
    attn = CrossAttention(8, 2, 4).to(dtype)
    # scores of a few thousand: exp overflows in float16 unless the maximum is subtracted
    x = (torch.randn(2, 3, 8, generator=gen(1)) * 30).to(dtype)
    memory = (torch.randn(2, 5, 4, generator=gen(2)) * 30).to(dtype)
    with torch.no_grad():
        out, w = attn(x, memory, return_weights=True)
    assert out.dtype == dtype and torch.isfinite(out).all() and torch.isfinite(w).all()
    assert torch.allclose(w.float().sum(-1), torch.ones(2, 2, 3), atol=1e-2)


def test_batch_one_and_one_memory_position():
    attn = CrossAttention(8, 2)
    with record_attention(attn) as maps:
        out = attn(torch.randn(1, 4, 8), torch.randn(1, 1, 8))
    assert out.shape == (1, 4, 8)
    assert torch.equal(maps[""], torch.ones(1, 2, 4, 1))  # one position: all the weight on it


def test_gradcheck_float64():
    attn = CrossAttention(4, 2, 3).double()
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    memory = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    key_mask = torch.tensor([[True, True, False, True, True], [True] * 5])
    assert torch.autograd.gradcheck(lambda a, m: attn(a, m, key_mask=key_mask), (x, memory))


def test_with_its_own_input_as_memory_it_is_self_attention():
    mha = MultiHeadAttention(8, 2)
    cross = CrossAttention(8, 2)
    with torch.no_grad():
        cross.q.weight.copy_(mha.qkv.weight[:8]), cross.q.bias.copy_(mha.qkv.bias[:8])
        cross.kv.weight.copy_(mha.qkv.weight[8:]), cross.kv.bias.copy_(mha.qkv.bias[8:])
        cross.proj.load_state_dict(mha.proj.state_dict())
    x = torch.randn(2, 5, 8)
    causal = causal_mask(5)
    assert torch.allclose(cross(x, x, mask=causal), mha(x, mask=causal), atol=1e-6)
    assert count_parameters(cross) == count_parameters(mha)


def test_validation_names_the_argument():
    attn = CrossAttention(8, 2, 4)
    x, memory = torch.randn(2, 3, 8), torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match="memory"):
        attn(x, torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="memory"):
        attn(x, torch.randn(3, 5, 4))
    with pytest.raises(ValueError, match="memory dtype"):
        attn(x, memory.double())
    with pytest.raises(ValueError, match=r"key_mask must have shape \(B, M\) = \(2, 5\)"):
        attn(x, memory, key_mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask of shape \(3, 3\) does not broadcast"):
        attn(x, memory, mask=torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="key_mask must be a boolean tensor"):
        attn(x, memory, key_mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match="divisible"):
        CrossAttention(10, 4)
    with pytest.raises(ValueError, match="memory_dim must be a positive integer"):
        CrossAttention(8, 2, 0)
    with pytest.raises(ValueError, match=r"need an nn.MultiheadAttention\(8, 2, kdim=4"):
        attn.load_torch_weights(torch.nn.MultiheadAttention(8, 2))


def test_the_decoder_block_is_causal_and_reads_the_memory():
    torch.manual_seed(0)
    block = DecoderBlock(8, 2, memory_dim=6).eval()
    x, memory = torch.randn(2, 4, 8), torch.randn(2, 5, 6)
    with record_attention(block) as maps:
        out = block(x, memory)
    assert out.shape == (2, 4, 8)
    assert maps["self_attn"].shape == (2, 2, 4, 4) and maps["cross_attn"].shape == (2, 2, 4, 5)
    assert (maps["self_attn"][..., ~causal_mask(4)] == 0).all()
    later = x.clone()
    later[:, 2:] += 1.0  # changing later tokens leaves the earlier outputs unchanged
    assert torch.allclose(block(later, memory)[:, :2], out[:, :2], atol=1e-6)
    assert not torch.allclose(block(x, memory + 1.0), out)
    padded = torch.tensor([[True, True, True, False, False]] * 2)
    changed = memory.clone()
    changed[:, 3:] = 9.0  # padded positions of the memory change nothing
    assert torch.allclose(
        block(x, changed, memory_mask=padded), block(x, memory, memory_mask=padded), atol=1e-6
    )
