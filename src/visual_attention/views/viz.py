"""Plots and small HTML views of attention, in one style for the whole book.

Matplotlib figures (:func:`plot_attention`) serve the printed page; the HTML helpers
(:func:`attention_overlay_html`, :func:`bars_html`) build light views for the widgets in
:mod:`visual_attention.views.widgets`, a few hundred bytes each, so that a page can carry hundreds
of them.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.patches import Rectangle
from PIL import Image

from .._checks import check_floating, check_rank

__all__ = [
    "CMAP",
    "to_numpy_image",
    "colorize",
    "data_uri",
    "photo_style",
    "attention_overlay_html",
    "bars_html",
    "VIEW_CSS",
    "plot_attention",
]

#: The book's colour map for attention weights: perceptually uniform and monotone in lightness,
#: so it reads in greyscale and in light and dark themes.
CMAP = "magma"


def to_numpy_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """A ``(3, H, W)`` tensor or an ``(H, W, 3)`` array, values in ``[0, 1]`` (or uint8) → ``(H, W,
    3)`` uint8.

    Tensors are channels-first and arrays channels-last, as in PyTorch and matplotlib.
    """
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"an image tensor must be (3, H, W), got shape {tuple(image.shape)}")
        arr = image.detach().cpu().numpy().transpose(1, 2, 0)
    else:
        arr = np.asarray(image)
        if arr.ndim != 3 or arr.shape[-1] != 3:
            raise ValueError(f"an image array must be (H, W, 3), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
    return arr


def colorize(
    values: np.ndarray, vmax: float | None = None, cmap: str = CMAP, alpha: float = 1.0
) -> np.ndarray:
    """Map an ``(h, w)`` array in ``[0, vmax]`` through a colour map → ``(h, w, 4)`` uint8 RGBA."""

    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be 2-d (h, w), got shape {values.shape}")
    top = float(values.max()) if vmax is None else float(vmax)
    scaled = values / top if top > 0 else np.zeros_like(values)
    rgba = colormaps[cmap](np.clip(scaled, 0, 1))
    rgba[..., 3] = alpha
    return (rgba * 255 + 0.5).astype(np.uint8)


def data_uri(array: np.ndarray, fmt: str = "png", quality: int = 80) -> str:
    """Encode an ``(h, w, 3|4)`` uint8 array as a ``data:`` URI (PNG or JPEG)."""

    buf = io.BytesIO()
    img = Image.fromarray(np.ascontiguousarray(array))
    if fmt == "jpeg":
        img.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=True)
    elif fmt == "png":
        img.save(buf, format="PNG", optimize=True)
    else:
        raise ValueError(f"fmt must be 'png' or 'jpeg', got {fmt!r}")
    return f"data:image/{fmt};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def photo_style(image: torch.Tensor | np.ndarray, grey: bool = True) -> tuple[str, str]:
    """A CSS rule that makes a photo the background of a class, so many views can share one copy.

    Returns:
        ``(css_class, style_tag)``; put ``style_tag`` in the page once and use ``css_class`` in
        views.
    """
    arr = to_numpy_image(image)
    if grey:  # a grey photo lets the coloured weights stand out
        lum = np.clip(arr @ np.array([0.299, 0.587, 0.114]) + 0.5, 0, 255).astype(np.uint8)
        arr = np.repeat(lum[..., None], 3, axis=-1)
    uri = data_uri(arr, fmt="jpeg", quality=85)
    css_class = "va-photo-" + hashlib.sha1(uri.encode()).hexdigest()[:10]
    return (
        css_class,
        f"<style>.{css_class}{{background-image:url({uri});background-size:100% 100%}}</style>",
    )


def attention_overlay_html(
    css_class: str,
    weights: torch.Tensor | np.ndarray,
    size: tuple[int, int],
    query: tuple[int, int] | None = None,
    alpha: float = 0.7,
    caption: str = "",
) -> str:
    """A heatmap of ``(h, w)`` weights laid over a photo (see :func:`photo_style`), as HTML.

    The weights travel as an ``h × w`` PNG stretched with ``image-rendering: pixelated``: a view
    costs a few hundred bytes however large it is drawn. Colours are scaled to the view's largest
    weight.

    Args:
        css_class: the class returned by :func:`photo_style`.
        weights: ``(h, w)`` non-negative attention weights.
        size: displayed ``(height, width)`` in CSS pixels.
        query: optional ``(row, col)`` cell to outline.
        alpha: opacity of the heatmap over the photo.
        caption: text shown under the image.
    """
    w = (
        weights.detach().cpu().numpy()
        if isinstance(weights, torch.Tensor)
        else np.asarray(weights)
    )
    if w.ndim != 2:
        raise ValueError(f"weights must be 2-d (h, w), got shape {w.shape}")
    h_cells, w_cells = w.shape
    height, width = size
    box = ""
    if query is not None:
        r, c = query
        if not (0 <= r < h_cells and 0 <= c < w_cells):
            raise ValueError(f"query {query} lies outside the {h_cells}×{w_cells} grid")
        box = (
            f'<div style="position:absolute;left:{100 * c / w_cells:.4f}%;'
            f"top:{100 * r / h_cells:.4f}%;"
            f"width:{100 / w_cells:.4f}%;height:{100 / h_cells:.4f}%;box-sizing:border-box;"
            'border:2px solid #39d0ff;outline:1px solid #000"></div>'
        )
    cap = f'<div class="va-cap">{html.escape(caption)}</div>' if caption else ""
    return (
        f'<div class="va-view"><div class="{css_class}" style="position:relative;width:{width}px;'
        f'height:{height}px">'
        f'<img alt="attention weights" src="{data_uri(colorize(w)[..., :3])}" '
        f'style="position:absolute;inset:0;width:100%;height:100%;image-rendering:pixelated;'
        f'opacity:{alpha}">'
        f"{box}</div>{cap}</div>"
    )


#: CSS shared by the HTML views; include it once per page (widget headers do).
VIEW_CSS = (
    "<style>.va-bars{font-size:12px}.va-row{display:flex;align-items:center;gap:6px;height:18px}"
    ".va-name{width:70px;text-align:right}.va-track{position:relative;width:140px;height:12px;"
    "background:rgba(127,127,127,.15);border-left:0}.va-track:after{content:'';position:absolute;"
    "left:50%;"
    "top:0;bottom:0;border-left:1px solid #888}.va-bar{position:absolute;top:1px;bottom:1px}"
    ".va-pos{background:#d9534f}.va-neg{background:#337ab7}.va-num{width:52px;"
    "font-family:monospace}"
    ".va-title{font-weight:600;margin-bottom:4px}.va-cap{font-size:12px;margin-top:2px}"
    ".va-flex{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}</style>"
)


def bars_html(
    values: Sequence[float], names: Sequence[str], title: str = "", vmax: float | None = None
) -> str:
    """Signed values as labelled horizontal bars (a context vector, say), as HTML styled by
    :data:`VIEW_CSS`.

    Each bar carries its value in a ``data-value`` attribute, so tests and scripts can read it
    back. Bars are scaled so that ``vmax`` (default: the largest ``|value|``) fills half the track.
    """
    vals = [float(v) for v in values]
    if len(vals) != len(names):
        raise ValueError(f"got {len(vals)} values for {len(names)} names")
    top = max(vmax or 0.0, max((abs(v) for v in vals), default=0.0)) or 1.0
    rows = []
    for name, v in zip(names, vals):
        frac = 50 * abs(v) / top
        left = 50 if v >= 0 else 50 - frac
        sign = "pos" if v >= 0 else "neg"
        label = html.escape(name)
        rows.append(
            f'<div class="va-row"><span class="va-name">{label}</span><span class="va-track">'
            f'<span class="va-bar va-{sign}" data-name="{label}" data-value="{v:.4f}" '
            f'style="left:{left:.1f}%;width:{frac:.1f}%"></span></span><span '
            f'class="va-num">{v:+.3f}</span></div>'
        )
    head = f'<div class="va-title">{html.escape(title)}</div>' if title else ""
    return f'<div class="va-bars">{head}{"".join(rows)}</div>'


def plot_attention(
    image: torch.Tensor | np.ndarray,
    weights: torch.Tensor,
    query: tuple[int, int] | None = None,
    ax=None,
    title: str = "",
    alpha: float = 0.6,
):
    """Draw ``(h, w)`` attention weights over an image with matplotlib, with a colour bar.

    Args:
        image: ``(3, H, W)`` tensor in ``[0, 1]`` or ``(H, W, 3)`` array.
        weights: ``(h, w)`` weights; each cell covers ``H/h × W/w`` pixels.
        query: optional ``(row, col)`` cell to outline.
        ax: matplotlib axes (a new figure if ``None``).

    Returns:
        the axes.
    """

    check_floating("weights", weights)
    check_rank("weights", weights, exactly=2, expected="(h, w)")
    img = to_numpy_image(image)
    height, width = img.shape[:2]
    h, w = weights.shape
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.2))
    ax.imshow(img.mean(-1), cmap="gray", extent=(0, width, height, 0))
    im = ax.imshow(
        weights.detach().cpu().numpy(),
        cmap=CMAP,
        alpha=alpha,
        extent=(0, width, height, 0),
        interpolation="nearest",
    )
    if query is not None:
        r, c = query
        ax.add_patch(
            Rectangle(
                (c * width / w, r * height / h),
                width / w,
                height / h,
                fill=False,
                edgecolor="#39d0ff",
                linewidth=2,
            )
        )
    ax.figure.colorbar(im, ax=ax, fraction=0.035, pad=0.02, label="attention weight")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax
