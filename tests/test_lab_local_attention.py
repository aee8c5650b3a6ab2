"""Tests of visual_attention.labs.local_attention: the chapter's widget computes what
ShiftedWindowAttention records."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange

from visual_attention import record_attention
from visual_attention.labs.local_attention import explorer as la_explorer
from visual_attention.local_attention import ShiftedWindowAttention, to_dense, window_token_index


def test_explorer_computes_what_shifted_window_attention_records():
    image = torch.rand(3, 24, 36)
    features = torch.nn.functional.normalize(torch.randn(6, 6, 6), dim=0)
    ex = la_explorer(image, features, [f"f{i}" for i in range(6)], window_sizes=(2, 3), scale=4.0,
                     initial={"window": 2, "shift": True, "query": (4, 2)})
    assert (ex.window, ex.shift, ex.query) == (2, 1, 26) and ex.controls == ["window", "shift"]
    grid = rearrange(features, "c h w -> 1 h w c")
    for m, s in ((2, 0), (2, 1), (3, 1), (3, 2)):
        layer = ShiftedWindowAttention(6, m, 1, shift_size=s, qkv_bias=False, relative_position_bias=False)
        layer.attn.scale = 4.0
        with torch.no_grad(), record_attention(layer) as maps:
            layer.attn.qkv.weight.copy_(torch.eye(6).repeat(3, 1))
            layer.attn.proj.weight.copy_(torch.eye(6))
            layer.attn.proj.bias.zero_()
            context = layer(grid)[0].flatten(0, 1)
        dense = to_dense(maps["attn"], window_token_index(6, 6, m, s))[0, 0]
        for q in (0, 7, 26, 35):
            w, c = ex.compute(window=m, shift=s, query=q)
            torch.testing.assert_close(w, dense[q], atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(c, context[q], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="window size 4 must divide the grid 6×6"):
        la_explorer(image, features, [f"f{i}" for i in range(6)], window_sizes=(4,))


def test_explorer_validation():
    with pytest.raises(ValueError, match=r"features must be 3-d \(C, h, w\)"):
        la_explorer(torch.rand(3, 8, 8), torch.rand(1, 6, 2, 2), ["a"] * 6)
