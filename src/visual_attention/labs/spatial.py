"""The lab of the spatial chapter: its small CNN on cluttered digits and its map explorer.

* :class:`ClutteredDigitNet` — three conv-BN-ReLU stages, optional :class:`SpatialGate` after
  stages 2 and 3, and global average or attention pooling (:class:`QuerySpatialAttention`).
* :func:`spatial_map_explorer` — a widget: a recorded map over its image, with the model's output.
"""

from __future__ import annotations

import ipywidgets
import torch
from torch import nn

from .._checks import check_choice, check_tensor, shape_str
from ..blocks import conv_bn_act
from ..spatial import QuerySpatialAttention, SpatialGate, attention_mass_in_box
from ..views.viz import VIEW_CSS, attention_overlay_html, bars_html, photo_style
from ..views.widgets import html_view, precomputed_explorer


class ClutteredDigitNet(nn.Module):
    """The chapter's small CNN for cluttered digits ``(B, 1, 40, 40)`` (``data.cluttered_digits``).

    Three ``3 × 3`` conv-BN-ReLU stages at 40, 20 and 10 pixels (max-pooling between them), then a
    pooling head and a linear classifier. ``gate=True`` puts a :class:`SpatialGate` after stages 2
    and 3 (maps ``(B, 1, 20, 20)`` and ``(B, 1, 10, 10)``, recorded as ``gate2`` and ``gate3``);
    ``pool="query"`` replaces global average pooling by :class:`QuerySpatialAttention` (weights
    ``(B, 10, 10)``, recorded as ``pool``).

    Args:
        gate: add the two spatial gates.
        pool: ``"avg"`` (global average pooling) or ``"query"`` (attention pooling, learned query).
        width: channels of the first stage (doubled at each stage).
        num_classes: number of outputs.
    """

    def __init__(
        self, gate: bool = False, pool: str = "avg", width: int = 16, num_classes: int = 10
    ) -> None:
        super().__init__()
        check_choice("pool", pool, ("avg", "query"))
        c1, c2, c3 = width, 2 * width, 4 * width
        self.stage1 = conv_bn_act(1, c1, bias=False)
        self.stage2 = conv_bn_act(c1, c2, bias=False)
        self.stage3 = conv_bn_act(c2, c3, bias=False)
        self.gate2 = SpatialGate() if gate else nn.Identity()
        self.gate3 = SpatialGate() if gate else nn.Identity()
        self.pool = QuerySpatialAttention(c3) if pool == "query" else nn.Identity()
        self.pool_mode = pool
        self.fc = nn.Linear(c3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, 1, 40, 40)`` → logits ``(B, num_classes)``."""
        check_tensor("x", x, "(B, C, H, W)", C=1)
        x = nn.functional.max_pool2d(self.stage1(x), 2)  # (B, c1, 20, 20)
        x = nn.functional.max_pool2d(self.gate2(self.stage2(x)), 2)  # (B, c2, 10, 10)
        x = self.gate3(self.stage3(x))  # (B, c3, 10, 10)
        x = self.pool(x) if self.pool_mode == "query" else x.mean(dim=(2, 3))  # (B, c3)
        return self.fc(x)


def spatial_map_explorer(
    images: torch.Tensor,
    maps: dict[str, torch.Tensor],
    outputs: dict[str, torch.Tensor],
    boxes: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    class_names: list[str] | None = None,
    display_size: tuple[int, int] = (160, 160),
    initial: dict | None = None,
):
    """Pick an image and a spatial map; see the map over the image and the model's output as bars.

    Args:
        images: ``(N, 1, H, W)`` grey or ``(N, 3, H, W)`` colour images in ``[0, 1]`` (keep ``N``
            small: each image travels once, as a CSS background).
        maps: ``{name: (N, h, w) or (N, 1, h, w)}`` maps recorded from a model (a gate or softmax
            weights).
        outputs: ``{name: (N, K)}`` class probabilities of the model each map came from (same
            keys).
        boxes: optional ``(N, 4)`` ``(top, left, bottom, right)`` boxes of the object, drawn
            dashed; with them the bars start with the map's mass inside the box
            (:func:`attention_mass_in_box`), without them with the map's mean and maximum.
        labels: optional ``(N,)`` true classes, named in the bars' title.
        class_names: ``K`` labels for the bars (default ``"0"…"K-1"``).
        display_size: drawn ``(height, width)`` in CSS pixels.
        initial: optional first ``{"map": name, "image": index}``.

    Returns:
        an explorer (see :func:`visual_attention.views.widgets.precomputed_explorer`) with controls
        ``map`` and ``image``: ``len(maps) × N`` views.
    """
    n, channels, height, width = check_tensor("images", images, "(N, 1|3, H, W)")
    if channels not in (1, 3):
        raise ValueError(f"images must be (N, 1|3, H, W), got shape {shape_str(images)}")
    if set(maps) != set(outputs):
        raise ValueError(
            f"maps and outputs must have the same keys, got {sorted(maps)} and {sorted(outputs)}"
        )
    flat = {k: (m[:, 0] if m.ndim == 4 else m) for k, m in maps.items()}
    for k, m in flat.items():
        if m.ndim != 3 or m.shape[0] != n or outputs[k].shape[0] != n:
            raise ValueError(
                f"map {k!r} {shape_str(m)} and outputs {shape_str(outputs[k])} must cover "
                f"the N={n} images"
            )
    k_classes = next(iter(outputs.values())).shape[1]
    names = class_names or [str(i) for i in range(k_classes)]
    colour = images.expand(n, 3, height, width) if images.shape[1] == 1 else images
    styles = [photo_style(img) for img in colour]
    mass = {}
    if boxes is not None:
        mass = {
            k: attention_mass_in_box(m.float(), boxes, (height, width)) for k, m in flat.items()
        }
    dh, dw = display_size

    def render(map: str, image: int):  # noqa: A002  (the control's name)
        m, p = flat[map][image], outputs[map][image]
        caption = f"{map} · {m.shape[0]}×{m.shape[1]} map · max {float(m.max()):.3f}"
        view = attention_overlay_html(styles[image][0], m, display_size, caption=caption)
        if boxes is not None:
            t, left, b, r = (int(v) for v in boxes[image])
            box = (
                f"position:absolute;left:{left * dw / width:.1f}px;top:{t * dh / height:.1f}px;"
                f"width:{(r - left) * dw / width:.1f}px;height:{(b - t) * dh / height:.1f}px;"
                "box-sizing:border-box;border:2px dashed #39d0ff"
            )
            view = (
                f'<div style="position:relative;display:inline-block">{view}'
                f'<div style="{box}"></div></div>'
            )
        values, rows = p.tolist(), [f"p({c})" for c in names]
        if boxes is not None:
            values, rows = [float(mass[map][image])] + values, ["in box"] + rows
        else:
            values = [float(m.mean()), float(m.max())] + values
            rows = ["map mean", "map max"] + rows
        title = f"predicted {names[int(p.argmax())]}"
        if labels is not None:
            title += f", true {names[int(labels[image])]}"
        return html_view(
            f'<div class="va-flex">{view}{bars_html(values, rows, title=title, vmax=1.0)}</div>'
        )

    header = ipywidgets.HTML(VIEW_CSS + "".join(tag for _, tag in styles))
    controls = {"map": list(maps), "image": list(range(n))}
    return precomputed_explorer(controls, render, header=header, initial=initial)
