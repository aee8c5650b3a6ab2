"""Tests of visual_attention.views.viz: colour maps, data URIs, the HTML views and the matplotlib plot."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import base64
import html
import io
import re
from html.parser import HTMLParser

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib import colormaps
from matplotlib.patches import Rectangle
from PIL import Image

from visual_attention.views.viz import (
    CMAP,
    attention_overlay_html,
    bars_html,
    colorize,
    data_uri,
    photo_style,
    plot_attention,
    to_numpy_image,
)


def decode(uri: str, fmt: str = "png") -> Image.Image:
    prefix = f"data:image/{fmt};base64,"
    assert uri.startswith(prefix)
    img = Image.open(io.BytesIO(base64.b64decode(uri[len(prefix):], validate=True)))
    img.load()
    assert img.format == fmt.upper()
    return img


def rng_weights(h, w, seed=0):
    x = torch.rand(h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x / x.sum()


# --- to_numpy_image / colorize / data_uri -------------------------------------------------------


def test_to_numpy_image_from_chw_tensor():
    img = torch.zeros(3, 4, 5)
    img[0] = 1.0
    img[1, 0, 0] = 0.5
    img[2] = 2.0  # clipped
    arr = to_numpy_image(img)
    assert arr.shape == (4, 5, 3) and arr.dtype == np.uint8
    assert (arr[..., 0] == 255).all() and (arr[..., 2] == 255).all()
    assert arr[0, 0, 1] == 128 and arr[1, 1, 1] == 0


def test_to_numpy_image_keeps_hwc_uint8_and_rejects_other_shapes():
    arr = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    assert to_numpy_image(arr) is not None and (to_numpy_image(arr) == arr).all()
    with pytest.raises(ValueError, match=re.escape("got shape (4, 5)")):
        to_numpy_image(np.zeros((4, 5)))
    with pytest.raises(ValueError, match=re.escape("of shape (2, 4, 5)")):
        to_numpy_image(torch.zeros(2, 4, 5))


@pytest.mark.parametrize("alpha", [1.0, 0.7, 0.0])
def test_colorize_dtype_shape_alpha(alpha):
    values = rng_weights(3, 5).numpy()
    rgba = colorize(values, alpha=alpha)
    assert rgba.dtype == np.uint8 and rgba.shape == (3, 5, 4)
    assert (rgba[..., 3] == int(alpha * 255 + 0.5)).all()


def test_colorize_scales_to_the_maximum_or_vmax():
    values = np.array([[0.0, 0.25], [0.5, 1.0]]) * 3
    rgba = colorize(values)
    top = (np.array(colormaps[CMAP](1.0)) * 255 + 0.5).astype(np.uint8)
    bottom = (np.array(colormaps[CMAP](0.0)) * 255 + 0.5).astype(np.uint8)
    assert (rgba[1, 1] == top).all() and (rgba[0, 0] == bottom).all()
    # the colour map is monotone in lightness: brighter for larger weights
    lum = rgba[..., :3].astype(float) @ [0.299, 0.587, 0.114]
    assert lum[0, 0] < lum[0, 1] < lum[1, 0] < lum[1, 1]
    # with vmax twice the maximum, the maximum gets the middle colour
    mid = (np.array(colormaps[CMAP](0.5)) * 255 + 0.5).astype(np.uint8)
    assert (colorize(values, vmax=6.0)[1, 1] == mid).all()
    # all-zero input does not divide by zero
    zeros = colorize(np.zeros((2, 2)))
    assert (zeros[..., :3] == bottom[:3]).all()


def test_colorize_rejects_non_2d():
    with pytest.raises(ValueError, match=re.escape("values must be 2-d (h, w), got shape (2, 3, 4)")):
        colorize(np.zeros((2, 3, 4)))


@pytest.mark.parametrize("channels", [3, 4])
def test_data_uri_png_round_trips(channels):
    arr = np.random.default_rng(0).integers(0, 256, size=(7, 11, channels), dtype=np.uint8)
    img = decode(data_uri(arr), "png")
    assert img.size == (11, 7)
    assert img.mode == ("RGB" if channels == 3 else "RGBA")
    assert (np.asarray(img) == arr).all()  # PNG is lossless


def test_data_uri_jpeg_has_the_right_size():
    arr = np.full((9, 13, 4), 200, dtype=np.uint8)
    img = decode(data_uri(arr, fmt="jpeg", quality=90), "jpeg")
    assert img.size == (13, 9) and img.mode == "RGB"
    assert np.abs(np.asarray(img).astype(int) - 200).max() <= 3


def test_data_uri_bad_format():
    with pytest.raises(ValueError, match="fmt must be one of 'png', 'jpeg', got 'gif'"):
        data_uri(np.zeros((2, 2, 3), dtype=np.uint8), fmt="gif")


def test_photo_style():
    img = torch.rand(3, 10, 14, generator=torch.Generator().manual_seed(1))
    css_class, style = photo_style(img)
    assert re.fullmatch(r"va-photo-[0-9a-f]{10}", css_class)
    assert style.startswith("<style>") and f".{css_class}{{" in style
    uri = re.search(r"url\((data:[^)]*)\)", style).group(1)
    jpg = decode(uri, "jpeg")
    assert jpg.size == (14, 10)
    px = np.asarray(jpg).astype(int)
    assert np.abs(px[..., 0] - px[..., 1]).max() <= 3  # grey by default
    # the class is a content hash: same photo, same class; another photo, another class
    assert photo_style(img)[0] == css_class
    assert photo_style(1 - img)[0] != css_class


# --- attention_overlay_html ---------------------------------------------------------------------


def overlay_png(html_text: str) -> Image.Image:
    src = re.search(r'<img[^>]*src="(data:image/png;base64,[^"]+)"', html_text).group(1)
    return decode(src, "png")


@pytest.mark.parametrize("h, w", [(1, 1), (3, 5), (6, 4)])
def test_overlay_has_class_and_a_png_of_the_weights_size(h, w):
    weights = rng_weights(h, w)
    out = attention_overlay_html("va-photo-abc", weights, size=(120, 200))
    assert 'class="va-photo-abc"' in out and 'class="va-view"' in out
    assert "width:200px;height:120px" in out
    png = overlay_png(out)
    assert png.size == (w, h)
    # one pixel per cell, coloured by the colour map scaled to the largest weight (PNG is lossless)
    expected = colorize(weights.numpy())[..., :3]
    assert (np.asarray(png.convert("RGB")) == expected).all()


def test_overlay_accepts_numpy_and_the_brightest_cell_is_the_largest_weight():
    weights = np.zeros((3, 4))
    weights[2, 1] = 1.0
    png = np.asarray(overlay_png(attention_overlay_html("c", weights, (30, 40))).convert("RGB")).astype(float)
    lum = png @ [0.299, 0.587, 0.114]
    assert np.unravel_index(lum.argmax(), lum.shape) == (2, 1)


@pytest.mark.parametrize("query", [(0, 0), (1, 2), (2, 4)])
def test_overlay_query_box_position(query):
    h, w = 3, 5
    out = attention_overlay_html("c", rng_weights(h, w), (60, 100), query=query)
    r, c = query
    m = re.search(r"left:([\d.]+)%;top:([\d.]+)%;width:([\d.]+)%;height:([\d.]+)%", out)
    assert m is not None
    left, top, width, height = map(float, m.groups())
    assert left == pytest.approx(100 * c / w, abs=1e-4)
    assert top == pytest.approx(100 * r / h, abs=1e-4)
    assert width == pytest.approx(100 / w, abs=1e-4)
    assert height == pytest.approx(100 / h, abs=1e-4)


def test_overlay_without_query_has_no_box_and_caption_is_escaped():
    out = attention_overlay_html("c", rng_weights(2, 2), (10, 10), caption="T < 1 & <b>")
    assert "border:2px solid" not in out
    assert html.escape("T < 1 & <b>") in out and "<b>" not in out


@pytest.mark.parametrize("query", [(3, 0), (0, 5), (-1, 0), (0, -1)])
def test_overlay_query_outside_the_grid(query):
    with pytest.raises(ValueError, match=re.escape(f"cell of the 3×5 grid, got {query}")):
        attention_overlay_html("c", rng_weights(3, 5), (10, 10), query=query)


def test_overlay_rejects_non_2d_weights():
    with pytest.raises(ValueError, match=re.escape("weights must be 2-d (h, w), got shape (1, 3, 5)")):
        attention_overlay_html("c", torch.rand(1, 3, 5), (10, 10))


# --- bars_html ----------------------------------------------------------------------------------


class _Bars(HTMLParser):
    """Collects the attributes of every element carrying a ``data-value``."""

    def __init__(self):
        super().__init__()
        self.bars: list[dict[str, str]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-value" in a:
            self.bars.append(a)


def bars(html_text: str) -> list[dict[str, str]]:
    parser = _Bars()
    parser.feed(html_text)
    return parser.bars


def bar_values(html_text: str) -> list[str]:
    return [b["data-value"] for b in bars(html_text)]


def bar_widths(html_text: str) -> list[float]:
    return [float(re.search(r"width:\s*([\d.]+)%", b["style"]).group(1)) for b in bars(html_text)]


def test_bars_carry_rounded_values_in_order():
    values = [0.123456, -1.98765, 0.0, 3.14159265, -0.00004]
    names = ["red", "green", "blue", "x", "y"]
    out = bars_html(values, names, title="context")
    assert bar_values(out) == [f"{v:.4f}" for v in values]
    assert [float(s) for s in bar_values(out)] == [round(v, 4) for v in values]
    assert [b["data-name"] for b in bars(out)] == names
    assert "context" in out


def test_bars_accept_tensors_and_scale_with_vmax():
    out = bars_html(torch.tensor([0.5, -0.25]), ["a", "b"])
    assert bar_values(out) == ["0.5000", "-0.2500"]
    assert bar_widths(out) == pytest.approx([50.0, 25.0])  # the largest |value| spans half the track
    assert bar_widths(bars_html([0.5, -0.25], ["a", "b"], vmax=1.0)) == pytest.approx([25.0, 12.5])


def test_bars_escape_names():
    out = bars_html([1.0], ["<x&y>"])
    assert "<x&y>" not in out and html.escape("<x&y>") in out


@pytest.mark.parametrize("values, names", [([1.0, 2.0], ["a", "b", "c"]), ([1.0, 2.0, 3.0], ["a"]), ([1.0], [])])
def test_bars_length_mismatch(values, names):
    with pytest.raises(ValueError, match=f"got {len(values)} values for {len(names)} names"):
        bars_html(values, names)


# --- plot_attention -----------------------------------------------------------------------------


def test_plot_attention_returns_axes():
    img = torch.rand(3, 32, 48, generator=torch.Generator().manual_seed(2))
    weights = rng_weights(4, 6).float()
    ax = plot_attention(img, weights, query=(1, 2), title="a title")
    try:
        assert isinstance(ax, matplotlib.axes.Axes)
        assert ax.get_title() == "a title"
        assert len(ax.images) == 2
        assert ax.images[1].get_array().shape == (4, 6)
        boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(boxes) == 1
        assert boxes[0].get_xy() == pytest.approx((2 * 48 / 6, 1 * 32 / 4))
        assert boxes[0].get_width() == pytest.approx(8) and boxes[0].get_height() == pytest.approx(8)
    finally:
        plt.close(ax.figure)


def test_plot_attention_draws_on_given_axes():
    fig, ax = plt.subplots()
    try:
        out = plot_attention(np.zeros((8, 8, 3)), rng_weights(2, 2))
        plt.close(out.figure)
        out = plot_attention(np.zeros((8, 8, 3)), rng_weights(2, 2), ax=ax)
        assert out is ax
        assert not ax.patches
    finally:
        plt.close(fig)


def test_plot_attention_rejects_bad_weights():
    with pytest.raises(ValueError, match=re.escape("weights must be 2-d (h, w), got shape (1, 2, 2)")):
        plot_attention(np.zeros((8, 8, 3)), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="weights must be a floating-point tensor"):
        plot_attention(np.zeros((8, 8, 3)), torch.zeros(2, 2, dtype=torch.int64))


def test_a_three_pixel_wide_tensor_is_read_channels_first():
    img = torch.rand(3, 5, 3)
    arr = to_numpy_image(img)
    assert arr.shape == (5, 3, 3)
    assert arr[2, 1, 0] == int(img[0, 2, 1] * 255 + 0.5)
