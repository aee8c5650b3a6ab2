"""The lab of the channel chapter: its small gated CNN, gate profiles and the gate explorer.

* :class:`GatedDigitNet` — three conv-BN-ReLU stages, each followed by SE, ECA or CBAM.
* :func:`collect_attention` and :func:`gate_profile` — recorded weights over a whole data set, in
  batches (shared with the branch chapter).
* :func:`explorer` — a widget: an image, a block's gate values and its most turned-up channels.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable

import ipywidgets
import numpy as np
import torch
from torch import nn

from .._checks import check_tensor
from ..blocks import conv_bn_act
from ..channel import (
    ChannelGate,
    EfficientChannelAttention,
    SqueezeExcitation,
    make_channel_attention,
)
from ..core import AttentionModule, record_attention
from ..views.viz import VIEW_CSS, bars_html, colorize, data_uri
from ..views.widgets import html_view, precomputed_explorer


class GatedDigitNet(nn.Module):
    """The chapter's small CNN for cluttered digits ``(B, 1, H, W)``, a gate after each stage.

    Three ``3 × 3`` conv-BN-ReLU stages of ``width``, ``2·width`` and ``4·width`` channels (2 × 2
    max pooling after the first two), each followed by ``attention`` (recorded as ``gate1``,
    ``gate2``, ``gate3``), then global average pooling and a linear classifier: the plain CNN of
    the Spatial chapter, so that the four variants differ only by their gates. In a network without
    shortcuts SENet gates the output of the whole transformation, after its non-linearity
    (SE-Inception, Hu et al. 2018, Fig. 2); we do the same for ECA and CBAM. A network this narrow
    cannot afford SENet's ``r = 16`` (16 channels would keep one hidden unit), so ``rd_ratio``
    defaults to 1/4 here.

    Args:
        attention: ``None``, ``"se"``, ``"eca"`` or ``"cbam"``.
        width: channels of the first stage.
        num_classes: outputs.
        rd_ratio: reduction of the SE and CBAM MLPs.
    """

    def __init__(
        self,
        attention: str | None = None,
        width: int = 16,
        num_classes: int = 10,
        rd_ratio: float = 1 / 4,
    ) -> None:
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.stage1 = conv_bn_act(1, c1, bias=False)
        self.stage2 = conv_bn_act(c1, c2, bias=False)
        self.stage3 = conv_bn_act(c2, c3, bias=False)
        self.gate1 = make_channel_attention(attention, c1, rd_ratio)
        self.gate2 = make_channel_attention(attention, c2, rd_ratio)
        self.gate3 = make_channel_attention(attention, c3, rd_ratio)
        self.fc = nn.Linear(c3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, 1, H, W)`` → logits ``(B, num_classes)``."""
        check_tensor("x", x, "(B, C, H, W)", C=1)
        x = nn.functional.max_pool2d(self.gate1(self.stage1(x)), 2)  # (B, c1, H/2, W/2)
        x = nn.functional.max_pool2d(self.gate2(self.stage2(x)), 2)  # (B, c2, H/4, W/4)
        x = self.gate3(self.stage3(x))  # (B, c3, H/4, W/4)
        return self.fc(x.mean(dim=(2, 3)))


def _gate_modules(model: nn.Module) -> dict[str, AttentionModule]:
    """The channel gates of ``model`` by name, in forward order (SE, ECA and CBAM channel
    gates)."""
    kinds = (SqueezeExcitation, EfficientChannelAttention, ChannelGate)
    return {n: m for n, m in model.named_modules() if isinstance(m, kinds)}


@torch.no_grad()
def collect_attention(
    model: nn.Module,
    x: torch.Tensor,
    batch_size: int = 256,
    names: Iterable[str] | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Run ``model`` in eval mode on ``x`` in batches; return the recorded attention, ``{name: (N,
    ...)}``.

    Each batch runs under :func:`~visual_attention.core.record_attention`; the weights of the
    modules in ``names`` (all that recorded, if ``None``) are passed through ``reduce`` (e.g. a
    mean over channels) and concatenated over the batches. The model's train/eval mode is restored
    afterwards.
    """
    wanted = None if names is None else list(names)
    was_training = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    try:
        for i in range(0, len(x), batch_size):
            with record_attention(model) as maps:
                model(x[i : i + batch_size])
            for name in maps if wanted is None else wanted:
                w = maps[name]
                parts.setdefault(name, []).append(w if reduce is None else reduce(w))
    finally:
        model.train(was_training)
    return {name: torch.cat(v) for name, v in parts.items()}


def gate_profile(
    model: nn.Module, x: torch.Tensor, batch_size: int = 256
) -> dict[str, torch.Tensor]:
    """Run ``model`` (in eval mode) on ``x`` and return every channel gate's values, ``{name: (N,
    C)}``."""
    return collect_attention(model, x, batch_size, names=_gate_modules(model))


def explorer(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    block_names: dict[str, str] | None = None,
    top: int = 3,
    size: int = 120,
    max_bars: int = 16,
):
    """A widget: pick a test image and a gated block; see the image, the block's gate values as
    bars, and the feature maps of the channels the gate turns up most, before and after gating.

    Args:
        model: a trained classifier holding channel gates (e.g. ``resnet(..., attention="se")``).
        images: ``(N, 1, H, W)`` greyscale images in ``[0, 1]`` (a dozen or so: every image × block
            is rendered in advance).
        labels: ``(N,)`` true classes.
        block_names: optional ``{gate module name: label}`` choosing which gates to offer (default:
            all).
        top: how many of the most-gated channels to draw.
        size: displayed image side in CSS pixels.
        max_bars: a block with more channels shows bars for the ``max_bars`` channels whose gate
            varies most across ``images`` (the same channels for every image, in channel order).

    Returns:
        an explorer (see :func:`visual_attention.views.widgets.precomputed_explorer`) with controls
        ``image`` and ``block``.
    """
    check_tensor("images", images, "(N, C, H, W)", C=1)
    gates = _gate_modules(model)
    if block_names is None:
        block_names = {n: n for n in gates}
    missing = [n for n in block_names if n not in gates]
    if missing:
        raise ValueError(f"no channel gate named {missing}; the model's gates are {list(gates)}")
    # Inputs of each gate (the block's residual branch) are captured with forward hooks.
    inputs: dict[str, torch.Tensor] = {}
    hooks = [
        gates[n].register_forward_hook(lambda m, a, o, n=n: inputs.__setitem__(n, a[0].detach()))
        for n in block_names
    ]
    was_training = model.training
    model.eval()
    with torch.no_grad(), record_attention(model) as maps:
        probs = model(images).softmax(-1)
    model.train(was_training)
    for h in hooks:
        h.remove()

    bar_channels = {}
    for name in block_names:
        spread = maps[name].std(dim=0) if len(images) > 1 else maps[name][0]
        bar_channels[name] = sorted(torch.argsort(spread, descending=True)[:max_bars].tolist())

    def png(arr: np.ndarray, vmax: float) -> str:
        return data_uri(colorize(arr, vmax=vmax)[..., :3])

    def grey(img: torch.Tensor) -> str:
        a = (img[0].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        return data_uri(np.repeat(a[..., None], 3, axis=-1))

    style = f"width:{size}px;height:{size}px;image-rendering:pixelated"
    small = f"width:{size // 2}px;height:{size // 2}px;image-rendering:pixelated"

    def render(image: int, block: str) -> ipywidgets.Widget:
        s = maps[block][image]  # (C,)
        fmap = inputs[block][image]  # (C, h, w)
        order = torch.argsort(s, descending=True)[:top].tolist()
        pred = int(probs[image].argmax())
        cap = f"label {int(labels[image])} · predicted {pred} ({float(probs[image, pred]):.2f})"
        left = (
            f'<div class="va-view"><img alt="input" src="{grey(images[image])}" style="{style}">'
            f'<div class="va-cap">{html.escape(cap)}</div></div>'
        )
        tiles = []
        vmax = float(fmap[order].abs().max()) or 1.0
        for c in order:
            before = fmap[c].clamp_min(0).numpy()
            tiles.append(
                f'<div class="va-view"><img alt="channel {c}" src="{png(before, vmax)}" '
                f'style="{small}"><div class="va-cap">ch {c}: s = {float(s[c]):.2f}</div></div>'
            )
        shown, name = bar_channels[block], block_names[block]
        title = f"gate s of {name}, all {len(s)} channels"
        if len(shown) < len(s):
            title = f"gate s of {name}: the {len(shown)} of {len(s)} channels that vary most"
        gate_bars = bars_html(s[shown].tolist(), [f"ch {c}" for c in shown], title=title, vmax=1.0)
        return html_view(
            f'<div class="va-flex">{left}{gate_bars}'
            f'<div><div class="va-title">most turned-up channels (input to the gate)</div>'
            f'<div class="va-flex">{"".join(tiles)}</div></div></div>'
        )

    header = ipywidgets.HTML(VIEW_CSS)
    controls = {
        "image": [(f"#{i} (digit {int(labels[i])})", i) for i in range(len(images))],
        "block": [(label, name) for name, label in block_names.items()],
    }
    return precomputed_explorer(controls, render, header=header)
