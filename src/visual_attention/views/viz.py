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
import math
import numbers
import re
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle
from PIL import Image

from .._checks import (
    check_bool,
    check_cell,
    check_choice,
    check_floating,
    check_instance,
    check_int,
    check_number,
    check_positive_number,
    check_rank,
    check_size2,
    check_str,
)

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
        if (
            image.ndim != 3
            or image.shape[0] != 3
            or image.is_complex()
            or image.dtype == torch.bool
        ):
            raise ValueError(
                f"image must be a real tensor (3, H, W), got {image.dtype} of shape "
                f"{tuple(image.shape)}"
            )
        arr = _to_numpy(image).transpose(1, 2, 0)
    else:
        arr = _array("image", image, "(H, W, 3)")
        if arr.ndim != 3 or arr.shape[-1] != 3:
            raise ValueError(f"image must be an array (H, W, 3), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
    return arr


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor as a NumPy array (bfloat16 and float16 become float32, which NumPy can hold)."""
    t = t.detach().cpu()
    return (t.float() if t.is_floating_point() else t).numpy()


def _array(name: str, value: object, layout: str) -> np.ndarray:
    """``value`` (a tensor or a NumPy array of real numbers) as an array; else ``ValueError``."""
    if isinstance(value, torch.Tensor):
        value = _to_numpy(value)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
        raise ValueError(f"{name} must be a tensor or NumPy array {layout} of numbers, got {got}")
    return value


_CSS_CLASS = re.compile(r"-?[A-Za-z_][-A-Za-z0-9_]*")


def colorize(
    values: np.ndarray, vmax: float | None = None, cmap: str = CMAP, alpha: float = 1.0
) -> np.ndarray:
    """Map an ``(h, w)`` array in ``[0, vmax]`` through a colour map → ``(h, w, 4)`` uint8 RGBA."""

    values = _array("values", values, "(h, w)").astype(np.float64)
    if vmax is not None:
        check_positive_number("vmax", vmax)
    check_choice("cmap", cmap, list(colormaps))
    check_number("alpha", alpha, 0.0, 1.0)
    if values.ndim != 2:
        raise ValueError(f"values must be 2-d (h, w), got shape {values.shape}")
    top = float(values.max()) if vmax is None else float(vmax)
    scaled = values / top if top > 0 else np.zeros_like(values)
    rgba = colormaps[cmap](np.clip(scaled, 0, 1))
    rgba[..., 3] = alpha
    return (rgba * 255 + 0.5).astype(np.uint8)


def data_uri(array: np.ndarray, fmt: str = "png", quality: int = 80) -> str:
    """Encode an ``(h, w, 3|4)`` uint8 array as a ``data:`` URI (PNG or JPEG)."""

    check_choice("fmt", fmt, ("png", "jpeg"))
    check_int("quality", quality, minimum=1)
    if quality > 100:
        raise ValueError(f"quality must be an integer in [1, 100], got {quality!r}")
    array = _array("array", array, "(h, w, 3|4)")
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(
            f"array must be a uint8 array (h, w, 3|4), got {array.dtype} of shape {array.shape}"
        )
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
    check_bool("grey", grey)
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
    if not isinstance(css_class, str) or not _CSS_CLASS.fullmatch(css_class):
        raise ValueError(
            f"css_class must be a CSS class name (letters, digits, - and _), got {css_class!r}"
        )
    w = _array("weights", weights, "(h, w)")
    if w.dtype.kind == "b" or (
        isinstance(weights, torch.Tensor) and not weights.is_floating_point()
    ):
        raise ValueError(f"weights must hold floating-point weights (h, w), got {w.dtype}")
    height, width = check_size2("size", size)
    check_number("alpha", alpha, 0.0, 1.0)
    check_str("caption", caption)
    if w.ndim != 2:
        raise ValueError(f"weights must be 2-d (h, w), got shape {w.shape}")
    h_cells, w_cells = w.shape
    box = ""
    if query is not None:
        r, c = check_cell("query", query, (h_cells, w_cells))
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
    vals, names = _check_bars(values, names, title, vmax)
    finite = [abs(v) for v in vals if math.isfinite(v)]
    top = max(vmax or 0.0, max(finite, default=0.0)) or 1.0
    rows = []
    for name, v in zip(names, vals):
        # a NaN draws no bar and an infinite value a full one; both print as what they are
        frac = 0.0 if math.isnan(v) else 50.0 if math.isinf(v) else 50 * abs(v) / top
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


def _check_bars(values, names, title, vmax) -> tuple[list[float], list[str]]:
    """Validate :func:`bars_html`'s arguments; return the values as floats and the names."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().float().tolist()
    is_list = isinstance(values, (Sequence, np.ndarray)) and not isinstance(values, str)
    if not is_list or not all(
        isinstance(v, (numbers.Real, np.number)) and not isinstance(v, bool) for v in values
    ):
        raise ValueError(f"values must be a sequence of numbers, got {values!r:.60}")
    if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"names must be a sequence of strings, got {names!r:.60}")
    if len(values) != len(names):
        raise ValueError(f"got {len(values)} values for {len(names)} names")
    check_str("title", title)
    if vmax is not None:
        check_positive_number("vmax", vmax)
    return [float(v) for v in values], list(names)


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
        ax: a matplotlib ``Axes`` to draw on (a new figure if ``None``).

    Returns:
        the axes.
    """

    check_floating("weights", weights)
    check_rank("weights", weights, exactly=2, expected="(h, w)")
    img = to_numpy_image(image)
    height, width = img.shape[:2]
    h, w = weights.shape
    check_number("alpha", alpha, 0.0, 1.0)
    check_str("title", title)
    if query is not None:
        check_cell("query", query, (h, w))
    check_instance("ax", ax, Axes, optional=True, what="matplotlib Axes")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.2))
    ax.imshow(img.mean(-1), cmap="gray", extent=(0, width, height, 0))
    im = ax.imshow(
        _to_numpy(weights),
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
