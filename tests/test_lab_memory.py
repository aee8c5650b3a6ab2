"""Tests of visual_attention.labs.memory: the memory chapter's networks and widget."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from visual_attention import record_attention
from visual_attention.blocks import MultiHeadAttention
from visual_attention.labs.memory import DigitEncoder, TokenClassifier, explorer
from visual_attention.memory import ExternalAttention


def test_experiment_models():
    enc = DigitEncoder(16)
    x = torch.rand(5, 8, 8)
    assert enc(x).shape == (5, 10)
    torch.testing.assert_close(enc.embed(x).norm(dim=-1), torch.ones(5))
    assert DigitEncoder(4, hidden_dim=8, num_classes=3)(x).shape == (5, 3)
    for kind in ("external", "self"):
        assert TokenClassifier(kind)(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    assert TokenClassifier("self", dim=8, num_classes=4)(torch.rand(2, 1, 8, 8)).shape == (2, 4)


def test_token_classifier_attention_blocks():
    assert isinstance(TokenClassifier("external").attn, ExternalAttention)
    attn = TokenClassifier("self", dim=6).attn
    assert isinstance(attn, MultiHeadAttention) and attn.num_heads == 1


def test_self_attention_baseline_matches_torch():
    torch.manual_seed(0)
    sa = TokenClassifier("self", dim=6).attn.double()
    x = torch.randn(2, 7, 6, dtype=torch.float64)
    with record_attention(sa) as maps:
        out = sa(x)
    q, k, v = sa.qkv(x).chunk(3, dim=-1)
    torch.testing.assert_close(out, sa.proj(F.scaled_dot_product_attention(q, k, v)))
    assert maps[""].shape == (2, 1, 7, 7)  # (B, h, N, N) with one head


def test_token_classifier_records_the_attention_of_its_block():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 8, 8)
    for kind, shape in (("external", (2, 64, 16)), ("self", (2, 1, 64, 64))):
        model = TokenClassifier(kind, dim=8, memory_size=16)
        with record_attention(model) as maps:
            model(x)
        assert maps["attn"].shape == shape


def test_explorer_views():
    from visual_attention.views import widgets

    torch.manual_seed(0)
    enc = DigitEncoder(4)
    gallery, labels = torch.rand(12, 8, 8), torch.arange(12) % 10
    box = explorer(enc, torch.rand(3, 8, 8), gallery, labels, hops=(1, 2))
    assert widgets.count_views(box) == 6
    a = widgets.explorer_view(box, query=0, hops=1).value
    b = widgets.explorer_view(box, query=1, hops=1).value
    assert a != b and "read vector" in a and "data-value" in a


def test_validation_messages():
    with pytest.raises(
        ValueError, match="attention must be one of 'external', 'self', got 'local'"
    ):
        TokenClassifier("local")
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
        TokenClassifier(num_classes=0)
    with pytest.raises(ValueError, match="hidden_dim must be a positive integer, got True"):
        DigitEncoder(hidden_dim=True)
    with pytest.raises(ValueError, match=r"x must be \(B, C, H, W\) with C = 1"):
        TokenClassifier()(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"x must be \(B, H, W\) with H = 8"):
        DigitEncoder()(torch.rand(2, 7, 8))
    with pytest.raises(ValueError, match=r"queries must be 3-d \(Q, H, W\)"):
        explorer(DigitEncoder(4), torch.rand(8, 8), torch.rand(3, 8, 8), torch.arange(3))
