"""The lab of the multi-head chapter: the small ViT for 8 × 8 digits and the head explorer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from einops import rearrange

from .._checks import check_tensor
from ..multi_head import VisionTransformer
from ..views.widgets import attention_explorer


def digit_vit(
    dim: int = 32,
    depth: int = 4,
    num_heads: int = 4,
    mlp_ratio: float = 2.0,
    stem_channels: int | Sequence[int] = (16, 16),
) -> VisionTransformer:
    """The chapter's small ViT for the 8 × 8 digits: 2 × 2 patches (a 4 × 4 grid), 10 classes.

    By default width 32, 4 blocks of 4 heads, an MLP of twice the width and a convolutional stem of
    two 16-channel ``3 × 3`` layers (``stem_channels=0`` gives the plain ViT).
    """
    return VisionTransformer(
        8,
        2,
        1,
        10,
        dim=dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        stem_channels=stem_channels,
    )


def explorer(
    model: VisionTransformer,
    image: torch.Tensor,
    display_size: tuple[int, int] = (160, 160),
    initial: Mapping[str, Any] | None = None,
):
    """Pick a layer, a head and a query token of a trained ViT; see that head's map and its
    context.

    The image goes through the model once; the queries, keys and values of every head of every
    layer (``(L, h, N', d)``, class token first) go to an
    :class:`~visual_attention.views.widgets.AttentionExplorer`, which computes in the reader's
    browser the head's weights ``softmax(q kᵀ/(√d·T))`` over the patches (the class token's own
    weight is given in the caption) and its context vector for any query patch, head, layer and
    temperature ``T`` (``T = 1`` is what the model computes).

    Args:
        model: a :class:`VisionTransformer` with a class token.
        image: ``(C, H, W)`` input of the model.
        display_size: drawn size in CSS pixels.
        initial: optional first ``{"layer": l, "head": h, "query": q}`` (``q = "cls"`` or a
            patch index).

    Returns:
        an :class:`~visual_attention.views.widgets.AttentionExplorer` (controls: temperature,
        layer,
            head; the query is set on the image, or with the "class token" button).
    """

    if model.cls_token is None:
        raise ValueError("explorer needs a VisionTransformer with a class token")
    check_tensor("image", image, "(C, H, W)")
    g = model.grid
    qkv = []

    def keep_projections(module, inputs, output):
        q, k, v = rearrange(
            module.qkv(inputs[0]), "b n (three h d) -> three b h n d", three=3, h=module.num_heads
        )
        qkv.append([q[0], k[0], v[0]])  # (h, N', d) each

    hooks = [blk.attn.register_forward_hook(keep_projections) for blk in model.blocks]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(image[None])
    finally:
        for hk in hooks:
            hk.remove()
        model.train(was_training)
    q, k, v = (torch.stack([layer[i] for layer in qkv]) for i in range(3))  # (L, h, N', d) each
    shown = image.mean(0, keepdim=True).expand(3, -1, -1)
    shown = (shown - shown.min()) / (shown.max() - shown.min()).clamp_min(1e-6)
    first = dict(initial or {})
    query = first.get("query", "cls")
    d = q.shape[-1]
    return attention_explorer(
        q,
        k,
        v,
        grid=(g, g),
        prefix=1,
        image=shown,
        scale=d**-0.5,
        temperature=1.0,
        temperature_range=(0.1, 10.0),
        query=0 if query == "cls" else 1 + int(query),
        layer=first.get("layer", 0),
        head=first.get("head", 0),
        controls=("temperature", "layer", "head"),
        value_names=[f"c{i}" for i in range(d)],
        context_title="context of the head, softmax(q kᵀ/√d) v",
        display_size=display_size,
        label="multi-head",
    )
