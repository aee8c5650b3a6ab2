"""The lab of the temporal chapter: its tasks, networks and widgets."""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np
import torch
from einops import rearrange
from torch import nn

from .._checks import check_choice, check_positive_int, check_tensor
from ..blocks import AttentionPooling, conv_bn_act
from ..views.viz import VIEW_CSS, bars_html, colorize, data_uri
from ..views.widgets import html_view, precomputed_explorer


class FrameEncoder(nn.Module):
    """A small CNN applied to every frame: clips ``(B, T, in_channels, H, W)`` → ``(B, T, dim)``.

    Two 3 × 3 :func:`~visual_attention.blocks.conv_bn_act` + 2 × 2 max-pooling stages, a global
    max-pool (the digit may be anywhere in the frame) and a linear layer to ``dim`` features.
    (Without batch-norm this small network barely leaves chance level in the chapter's few epochs.)
    """

    def __init__(self, dim: int = 32, channels: int = 16, in_channels: int = 1) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("channels", channels), ("in_channels", in_channels)):
            check_positive_int(name, value)
        self.in_channels = in_channels
        self.net = nn.Sequential(
            conv_bn_act(in_channels, channels),
            nn.MaxPool2d(2),
            conv_bn_act(channels, 2 * channels),
            nn.MaxPool2d(2),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
            nn.Linear(2 * channels, dim),
        )

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        b = check_tensor("clips", clips, "(B, T, C, H, W)", C=self.in_channels)[0]
        feats = self.net(rearrange(clips, "b t c h w -> (b t) c h w"))
        return rearrange(feats, "(b t) d -> b t d", b=b)


class ClipClassifier(nn.Module):
    """Per-frame CNN, then pooling over frames, then a linear classifier.

    Args:
        pool: ``"attention"`` (:class:`~visual_attention.blocks.AttentionPooling` over the frames)
            or ``"mean"`` (plain average over frames).
        dim: frame feature size.
        num_classes: number of classes.
        channels: width of the :class:`FrameEncoder`'s first stage.

    ``forward(clips)`` maps ``(B, T, 1, H, W)`` to logits ``(B, num_classes)``.
    """

    def __init__(
        self, pool: str = "attention", dim: int = 32, num_classes: int = 10, channels: int = 16
    ) -> None:
        super().__init__()
        check_choice("pool", pool, ("attention", "mean"))
        check_positive_int("num_classes", num_classes)
        self.encoder = FrameEncoder(dim, channels)
        self.pool = AttentionPooling(dim) if pool == "attention" else None
        self.head = nn.Linear(dim, num_classes)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(clips)  # (B, T, D)
        pooled = feats.mean(dim=1) if self.pool is None else self.pool(feats)  # (B, D)
        return self.head(pooled)


@torch.no_grad()
def explorer(
    model: ClipClassifier,
    clips: torch.Tensor,
    labels: torch.Tensor,
    present: torch.Tensor,
    size: int = 144,
):
    """Scrub through clips: the frame weights, the chosen frame, and the class probabilities.

    Controls ``clip`` (one value per clip given) and ``frame``. Each view shows the chosen frame
    (outlined in the strip of all frames, each thumbnail's border as thick as its weight), the
    frame weights as bars (``α_t``; frames that contain the digit are marked ✓), and two sets of
    class probabilities: the clip's (classifier on the attention-pooled vector) and that of the
    chosen frame alone (classifier on its features), so one sees what each frame would say alone.

    Args:
        model: a trained :class:`ClipClassifier` with ``pool="attention"``.
        clips: ``(N, T, 1, H, W)``; labels ``(N,)``; present ``(N, T)`` bool.
        size: displayed side of the chosen frame in CSS pixels.
    """
    if model.pool is None:
        raise ValueError("explorer needs a ClipClassifier with pool='attention'")
    n, t = check_tensor("clips", clips, "(N, T, C, H, W)", C=model.encoder.in_channels)[:2]
    model.eval()
    feats = model.encoder(clips)  # (N, T, D)
    weights = model.pool.weights(feats)  # (N, T)
    clip_probs = model.head(torch.einsum("nt,ntd->nd", weights, feats)).softmax(-1)  # (N, K)
    frame_probs = model.head(feats).softmax(-1)  # (N, T, K)
    classes = [str(k) for k in range(clip_probs.shape[-1])]

    def uri(frame: torch.Tensor) -> str:
        grey = (frame[0].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        return data_uri(np.repeat(grey[..., None], 3, axis=-1))

    thumbs = [[uri(clips[i, s]) for s in range(t)] for i in range(n)]

    def render(clip: int, frame: int) -> widgets.Widget:
        w = weights[clip]
        strip = "".join(
            f'<img alt="frame {s}" src="{thumbs[clip][s]}" '
            f'title="frame {s}: weight {float(w[s]):.3f}" '
            f'style="width:34px;height:34px;image-rendering:pixelated;box-sizing:border-box;'
            f"border:{1 + round(6 * float(w[s]))}px solid "
            f"{'#39d0ff' if s == frame else '#d9534f'};"
            f'margin-right:2px">'
            for s in range(t)
        )
        heat = data_uri(colorize(w[None].numpy(), vmax=1.0)[..., :3])
        mark = "digit present" if bool(present[clip, frame]) else "no digit"
        caption = (
            f"clip {clip} (label {int(labels[clip])}) · frame {frame}: "
            f"weight α = {float(w[frame]):.3f} · {mark}"
        )
        left = (
            f'<div class="va-view"><img alt="frame {frame}" src="{thumbs[clip][frame]}" '
            f'style="width:{size}px;height:{size}px;image-rendering:pixelated">'
            f'<div class="va-cap">{html.escape(caption)}</div>'
            f'<div style="margin-top:4px">{strip}</div>'
            f'<img alt="frame weights" src="{heat}" style="width:{36 * t}px;height:10px;'
            f'image-rendering:pixelated"></div>'
        )
        names = [f"t{s}{' ✓' if present[clip, s] else ''}" for s in range(t)]
        bars_w = bars_html(w.tolist(), names, title="frame weights α_t", vmax=1.0)
        bars_c = bars_html(
            clip_probs[clip].tolist(), classes, title="clip: class probabilities", vmax=1.0
        )
        bars_f = bars_html(
            frame_probs[clip, frame].tolist(), classes, title=f"frame {frame} alone", vmax=1.0
        )
        return html_view(f'<div class="va-flex">{left}{bars_w}{bars_c}{bars_f}</div>')

    return precomputed_explorer(
        {"clip": list(range(n)), "frame": list(range(t))}, render, header=widgets.HTML(VIEW_CSS)
    )
