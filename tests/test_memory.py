"""Tests of visual_attention.memory: key-value memory reads (End-To-End Memory Networks) and
External Attention.

Property tests check that slot weights are distributions that respect masks and that a read does
not depend on the order of the slots; reference tests compare with the papers' formulas, with the
reference code of External Attention and with PyTorch's attention; gradcheck checks the backward
pass; the last section checks the validation messages. The chapter's networks and widget are
tested in ``test_lab_memory.py``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from _helpers import gen
from visual_attention import record_attention
from visual_attention.memory import ExternalAttention, KeyValueMemory, memory_read

SETTINGS = settings(max_examples=30, deadline=None)




sizes = st.tuples(
    st.integers(1, 4), st.integers(1, 9), st.integers(1, 5), st.integers(0, 2**31 - 1)
)


def rand(*shape, seed=0, scale=1.0):
    return torch.randn(*shape, generator=gen(seed), dtype=torch.float64) * scale


# ------------------------------------------------------------------------------------------------
# memory_read and KeyValueMemory
# ------------------------------------------------------------------------------------------------


@SETTINGS
@given(sizes, st.floats(0.01, 50.0), st.booleans())
def test_read_matches_the_memory_network_formula(size, magnitude, shared):
    b, s, d, seed = size
    u = rand(b, d, seed=seed, scale=magnitude)
    m = rand(s, d, seed=seed + 1) if shared else rand(b, s, d, seed=seed + 1)
    c = rand(s, 3, seed=seed + 2) if shared else rand(b, s, 3, seed=seed + 2)
    read, p = memory_read(u, m, c, temperature=0.5)
    mb, cb = m.expand(b, s, d), c.expand(b, s, 3)
    ref_p = torch.softmax(torch.einsum("bd,bsd->bs", u, mb) / 0.5, dim=-1)  # p_i = softmax(uᵀ m_i)
    torch.testing.assert_close(p, ref_p)
    torch.testing.assert_close(read, torch.einsum("bs,bsv->bv", ref_p, cb))  # o = Σ p_i c_i
    assert (p >= 0).all() and torch.isfinite(read).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(b, dtype=torch.float64))


@SETTINGS
@given(sizes)
def test_read_does_not_depend_on_slot_order(size):
    b, s, d, seed = size
    u, m, c = rand(b, d, seed=seed), rand(s, d, seed=seed + 1), rand(s, d, seed=seed + 2)
    perm = torch.randperm(s, generator=gen(seed))
    read, p = memory_read(u, m, c)
    read_p, p_p = memory_read(u, m[perm], c[perm])
    torch.testing.assert_close(read_p, read)
    torch.testing.assert_close(p_p, p[:, perm])


@SETTINGS
@given(sizes)
def test_masked_slots_are_never_read(size):
    b, s, d, seed = size
    u, m, c = rand(b, d, seed=seed), rand(b, s, d, seed=seed + 1), rand(b, s, 2, seed=seed + 2)
    mask = torch.rand(b, s, generator=gen(seed + 3)) > 0.4
    read, p = memory_read(u, m, c, mask=mask)
    assert (p[~mask] == 0).all()
    torch.testing.assert_close(p.sum(-1), mask.any(-1).double())
    changed = torch.where(mask[..., None], c, 1e3 * torch.randn_like(c))
    torch.testing.assert_close(memory_read(u, m, changed, mask=mask)[0], read)


@SETTINGS
@given(sizes, st.integers(1, 4))
def test_hops_follow_u_next_equals_u_plus_o(size, hops):
    b, s, d, seed = size
    u, m, c = rand(b, d, seed=seed), rand(s, d, seed=seed + 1), rand(s, d, seed=seed + 2)
    memory = KeyValueMemory(d, hops=hops)
    with record_attention(memory) as maps:
        out = memory(u, m, c)
    ref, weights = u, []
    for _ in range(hops):
        p = torch.softmax(u_scores := ref @ m.T, dim=-1)
        assert u_scores.shape == (b, s)
        ref = ref + p @ c
        weights.append(p)
    torch.testing.assert_close(out, ref)
    assert maps[""].shape == (b, hops, s)
    torch.testing.assert_close(maps[""], torch.stack(weights, 1))


def test_memory_gradcheck():
    u, m, c = (
        rand(2, 3, seed=0).requires_grad_(),
        rand(4, 3, seed=1).requires_grad_(),
        rand(4, 3, seed=2).requires_grad_(),
    )
    mask = torch.tensor([True, False, True, True])
    assert torch.autograd.gradcheck(
        lambda a, b, v: KeyValueMemory(3, hops=2)(a, b, v, mask), (u, m, c)
    )


def test_memory_has_no_parameters():
    assert sum(p.numel() for p in KeyValueMemory(16, hops=3).parameters()) == 0


# ------------------------------------------------------------------------------------------------
# ExternalAttention
# ------------------------------------------------------------------------------------------------


def reference_external_attention(ea: ExternalAttention, queries: torch.Tensor) -> torch.Tensor:
    """The paper's reference code (MenghaoGuo/EANet, External_attention.forward, tokens last)."""
    attn = ea.mk(queries)  # b, n, k
    attn = F.softmax(attn, dim=1)  # over the n tokens
    attn = attn / (1e-9 + attn.sum(dim=2, keepdim=True))  # over the k memory units
    return ea.mv(attn)  # bs, n, d_model


@SETTINGS
@given(sizes, st.integers(1, 8), st.floats(0.01, 100.0))
def test_external_attention_matches_the_reference_code(size, memory_size, magnitude):
    b, n, d, seed = size
    torch.manual_seed(seed)
    ea = ExternalAttention(d, memory_size).double()
    x = rand(b, n, d, seed=seed, scale=magnitude)
    with record_attention(ea) as maps:
        out = ea(x)
    # Eq. 5 exactly: softmax over the tokens, then ℓ1 over the units (as a softmax of the logs)
    exact = torch.softmax(torch.log_softmax(ea.mk(x), dim=1), dim=2)
    torch.testing.assert_close(out, ea.mv(exact))
    w = maps[""]
    assert w.shape == (b, n, memory_size) and (w >= 0).all() and torch.isfinite(out).all()
    # every token's weights sum to 1, even where the reference code's Σ_s Â + 1e-9 is ~1e-6 short
    torch.testing.assert_close(w.sum(-1), torch.ones(b, n, dtype=torch.float64))
    ref = reference_external_attention(ea, x)
    # the paper's code agrees wherever its 1e-9 is negligible: moderate inputs, and tokens whose
    # Σ_s Â is at least 1e-3 (with one memory unit a token's Σ_s Â can be ~1e-5, and 1e-9 / 1e-5
    # is beyond rtol)
    total = torch.softmax(ea.mk(x), dim=1).sum(dim=2)  # (B, N): the reference's denominator
    kept = total >= 1e-3
    if magnitude <= 5:
        torch.testing.assert_close(out[kept], ref[kept], rtol=1e-5, atol=1e-6)


@SETTINGS
@given(sizes)
def test_external_attention_is_equivariant_to_token_order(size):
    b, n, d, seed = size
    torch.manual_seed(seed)
    ea = ExternalAttention(d, 4).double()
    x = rand(b, n, d, seed=seed)
    perm = torch.randperm(n, generator=gen(seed))
    torch.testing.assert_close(ea(x[:, perm]), ea(x)[:, perm])


@SETTINGS
@given(sizes)
def test_external_attention_mask_hides_padding(size):
    b, n, d, seed = size
    torch.manual_seed(seed)
    ea = ExternalAttention(d, 5).double()
    x = rand(b, n, d, seed=seed)
    mask = torch.rand(b, n, generator=gen(seed + 1)) > 0.3
    mask[:, 0] = True
    with record_attention(ea) as maps:
        out = ea(x, mask)
    assert (maps[""][~mask] == 0).all()
    changed = torch.where(mask[..., None], x, 1e3 * torch.randn_like(x))
    torch.testing.assert_close(ea(changed, mask)[mask], out[mask])
    # with all tokens valid the mask changes nothing
    torch.testing.assert_close(ea(x, torch.ones(b, n, dtype=torch.bool)), ea(x))


def test_external_attention_parameters_and_gradcheck():
    assert sum(p.numel() for p in ExternalAttention(32, 64).parameters()) == 2 * 32 * 64
    torch.manual_seed(0)
    ea = ExternalAttention(3, 4).double()
    x = rand(2, 5, 3, seed=1).requires_grad_()
    assert torch.autograd.gradcheck(ea, (x,))


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------


def test_validation_messages():
    u, m, c = torch.randn(2, 3), torch.randn(5, 3), torch.randn(5, 4)
    with pytest.raises(ValueError, match=r"2-d \(B, D\), got shape \(3,\)"):
        memory_read(torch.randn(3), m, c)
    with pytest.raises(ValueError, match=r"feature size D = 3"):
        memory_read(u, torch.randn(5, 2), c)
    with pytest.raises(ValueError, match="same number of slots S"):
        memory_read(u, m, torch.randn(6, 4))
    with pytest.raises(ValueError, match=r"B = 2 memories"):
        memory_read(u, torch.randn(3, 5, 3), c)
    with pytest.raises(ValueError, match=r"keys must be 2-d \(S, D\) or 3-d \(B, S, D\)"):
        memory_read(u, torch.randn(1, 2, 5, 3), c)
    with pytest.raises(
        ValueError,
        match=r"mask of shape \(4,\) does not broadcast to \(S,\) or \(B, S\) = \(2, 5\)",
    ):
        memory_read(u, m, c, mask=torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask must be a boolean tensor \(S,\) or \(B, S\)"):
        memory_read(u, m, c, mask=torch.ones(5))
    with pytest.raises(ValueError, match="floating-point"):
        memory_read(u.long(), m, c)
    with pytest.raises(ValueError, match="temperature must be a positive finite number, got 0.0"):
        memory_read(u, m, c, temperature=0.0)
    with pytest.raises(ValueError, match=r"values must be \(\*B, S, D\) with D = 3"):
        KeyValueMemory(3)(u, m, c)
    with pytest.raises(ValueError, match=r"query must be \(B, D\) with D = 4, got shape \(2, 3\)"):
        KeyValueMemory(4)(u, m, c)
    with pytest.raises(ValueError, match="hops must be a positive integer, got 0"):
        KeyValueMemory(3, hops=0)
    with pytest.raises(ValueError, match="hops must be a positive integer, got True"):
        KeyValueMemory(3, hops=True)
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        KeyValueMemory(3, temperature=-1.0)
    ea = ExternalAttention(4, 8)
    with pytest.raises(ValueError, match=r"3-d \(B, N, D\), got shape \(2, 4\)"):
        ea(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"\(B, N, D\) with D = 4, got shape \(2, 3, 5\)"):
        ea(torch.randn(2, 3, 5))
    with pytest.raises(
        ValueError, match=r"mask must have shape \(B, N\) = \(2, 3\), got \(2, 4\)"
    ):
        ea(torch.randn(2, 3, 4), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask must be a boolean tensor \(B, N\)"):
        ea(torch.randn(2, 3, 4), torch.ones(2, 3))
    with pytest.raises(ValueError, match="memory_size must be a positive integer, got 0"):
        ExternalAttention(4, 0)
