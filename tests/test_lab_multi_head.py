"""Tests of visual_attention.labs.multi_head: the chapter's digit ViT and its head explorer."""

from __future__ import annotations

import pytest
import torch

from _helpers import gen
from visual_attention import record_attention
from visual_attention.labs.multi_head import digit_vit, explorer
from visual_attention.multi_head import VisionTransformer
from visual_attention.train import count_parameters


def test_digit_vit_is_the_chapters_configuration():
    vit = digit_vit()
    assert (vit.grid, vit.pos_embed.shape[1], len(vit.blocks)) == (4, 17, 4)
    assert vit.blocks[0].attn.num_heads == 4 and vit.blocks[0].mlp[0].out_features == 64
    assert [
        m.out_channels for m in vit.patch_embed.stem.modules() if isinstance(m, torch.nn.Conv2d)
    ] == [16, 16]
    assert vit(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    plain = digit_vit(stem_channels=0)
    assert plain.patch_embed.proj.in_channels == 1
    assert count_parameters(plain) < count_parameters(vit)


def test_explorer_computes_what_the_model_records():
    vit = digit_vit(dim=16, depth=2, num_heads=2)
    image = torch.rand(1, 8, 8, generator=gen(17))
    box = explorer(vit, image, initial={"layer": 1, "head": 1, "query": 3})
    assert box.shape == [2, 2, 17, 8, 8] and (box.layer, box.head, box.query) == (1, 1, 4)
    vit.eval()
    with torch.no_grad(), record_attention(vit) as maps:
        vit(image[None])
    for layer in range(2):
        recorded = maps[f"blocks.{layer}.attn"][0]  # (h, N', N')
        for head in range(2):
            for query in (0, 1, 9, 16):
                w, c = box.compute(layer=layer, head=head, query=query, temperature=1.0)
                torch.testing.assert_close(w, recorded[head, query], atol=1e-6, rtol=1e-5)
                assert c.shape == (8,)
    with pytest.raises(ValueError, match="class token"):
        explorer(VisionTransformer(8, 2, 1, 10, 16, 1, 2, class_token=False), image)
    with pytest.raises(ValueError, match=r"image must be 3-d \(C, H, W\)"):
        explorer(vit, image[None])
