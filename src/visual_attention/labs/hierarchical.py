"""The lab of the hierarchical chapter: a small CNN with attention pooling, and the widget."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from .._checks import check_choice, check_positive_int, check_tensor
from ..blocks import AttentionPooling, conv_bn_act
from ..core import record_attention
from ..hierarchical import HierarchicalAttentionPooling, image_regions
from ..views import widgets as W
from ..views.viz import VIEW_CSS, attention_overlay_html, bars_html, photo_style


class PoolingClassifier(nn.Module):
    """A small CNN whose feature map is pooled by attention, flat or hierarchical, then classified.

    Three ``3 × 3`` :func:`~visual_attention.blocks.conv_bn_act` layers (the first and last with
    stride 2, so 40 × 40 → 10 × 10), then ``pooling="flat"`` (one
    :class:`~visual_attention.blocks.AttentionPooling` over all ``H·W`` positions) or
    ``"hierarchical"`` (:class:`~visual_attention.hierarchical.HierarchicalAttentionPooling` with
    ``region_size``), then a linear head.

    Shapes: ``(B, in_channels, H, W)`` → logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        pooling: str = "hierarchical",
        in_channels: int = 1,
        num_classes: int = 10,
        channels: int = 32,
        region_size: int = 5,
    ) -> None:
        super().__init__()
        self.pooling = check_choice("pooling", pooling, ("flat", "hierarchical"))
        self.in_channels = check_positive_int("in_channels", in_channels)
        c = check_positive_int("channels", channels)
        self.features = nn.Sequential(
            conv_bn_act(in_channels, c, stride=2), conv_bn_act(c, c), conv_bn_act(c, c, stride=2)
        )
        hierarchical = pooling == "hierarchical"
        self.pool = (
            HierarchicalAttentionPooling(c, region_size) if hierarchical else AttentionPooling(c)
        )
        self.head = nn.Linear(c, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_tensor("images", images, "(B, C, H, W)", C=self.in_channels)
        f = self.features(images)  # (B, C, H', W')
        if self.pooling == "flat":
            return self.head(self.pool(rearrange(f, "b c h w -> b (h w) c")))
        return self.head(self.pool(f))


def explorer(
    model: PoolingClassifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    size: int = 200,
    initial: dict | None = None,
):
    """The chapter's widget: the two levels of a trained hierarchical pooling, image by image.

    Controls: ``image`` (one of ``images`` ``(n, 1, H, W)``), ``level`` (``"patches in a
    region"`` or ``"regions"``) and ``region``. At the patch level the map shows the chosen
    region's weights over its positions and the bars its region vector; at the region level the
    map shows the region weights and the bars the image vector next to the chosen region's share
    ``α_r s_r`` of it.
    """

    if model.pooling != "hierarchical":
        raise ValueError("explorer needs a PoolingClassifier with pooling='hierarchical'")
    check_tensor("images", images, "(n, 1, H, W)")
    model.eval()
    with torch.no_grad(), record_attention(model) as maps:
        feats = model.features(images)
        pool = model.pool
        region_vectors = pool.patch_pool(image_regions(feats, pool.region_size))  # (n, R, C)
        image_vectors = pool.region_pool(pool.region_encoder(region_vectors))  # (n, C)
        predictions = model.head(image_vectors).argmax(-1)
    patch_w, region_w = maps["pool.patch_pool"], maps["pool.region_pool"]  # (n, R, P), (n, R)
    _, c, h, w = feats.shape
    r = model.pool.region_size
    nh, nw = h // r, w // r
    names = [f"c{i}" for i in range(c)][:8]
    styles, classes = "", []
    for img in images:
        cls, tag = photo_style(img.expand(3, -1, -1))
        styles += tag
        classes.append(cls)
    vmax = float(image_vectors[:, :8].abs().max())

    def render(image: int, level: str, region: int):
        rr, rc = divmod(region, nw)
        head = f"digit {int(labels[image])}, predicted {int(predictions[image])}"
        if level == "patches":
            grid = torch.zeros(h, w)
            rows, cols = slice(rr * r, (rr + 1) * r), slice(rc * r, (rc + 1) * r)
            grid[rows, cols] = patch_w[image, region].reshape(r, r)
            caption = f"{head} · region {region}: weights of its {r * r} positions (sum 1)"
            left = attention_overlay_html(classes[image], grid, (size, size), caption=caption)
            right = bars_html(
                region_vectors[image, region, :8].tolist(),
                names,
                title=f"region vector s_{region} (first 8 channels)",
                vmax=vmax,
            )
        else:
            grid = region_w[image].reshape(nh, nw)
            caption = f"{head} · region weights; region {region} has {float(grid[rr, rc]):.3f}"
            left = attention_overlay_html(
                classes[image], grid, (size, size), query=(rr, rc), caption=caption
            )
            share = region_w[image, region] * region_vectors[image, region, :8]
            right = bars_html(
                image_vectors[image, :8].tolist(), names, title="image vector v", vmax=vmax
            ) + bars_html(
                share.tolist(),
                names,
                title=f"α_{region}·s_{region}: region {region}'s share",
                vmax=vmax,
            )
        return W.html_view(f'<div class="va-flex">{left}<div>{right}</div></div>')

    return W.precomputed_explorer(
        {
            "image": list(range(len(images))),
            "level": [("patches in a region", "patches"), ("regions", "regions")],
            "region": list(range(nh * nw)),
        },
        render,
        header=W.widgets.HTML(VIEW_CSS + styles),
        initial=initial,
    )
