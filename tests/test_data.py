"""Tests of visual_attention.data: the shipped photos and the patch features computed from them."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from visual_attention.data import FEATURE_NAMES, PHOTOS, load_photo, patch_features


@pytest.fixture(scope="module")
def chelsea():
    return load_photo("chelsea", (64, 96))


@pytest.mark.parametrize("name", PHOTOS)
def test_load_photo_shape_dtype_range(name):
    img = load_photo(name, (24, 40))
    assert img.shape == (3, 24, 40)
    assert img.dtype == torch.float32
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0
    assert float(img.std()) > 0.01  # a real photo, not a blank


def test_load_photo_default_size_and_other_sizes():
    assert load_photo().shape == (3, 128, 192)
    assert load_photo("coffee", (17, 5)).shape == (3, 17, 5)


def test_load_photo_grey_photo_has_equal_channels():
    img = load_photo("coins", (16, 16))  # coins is a greyscale photo
    torch.testing.assert_close(img[0], img[1])
    torch.testing.assert_close(img[0], img[2])


def test_load_photo_is_deterministic():
    torch.testing.assert_close(load_photo("astronaut", (20, 30)), load_photo("astronaut", (20, 30)), rtol=0, atol=0)


def test_load_photo_unknown_name():
    with pytest.raises(ValueError, match=r"name must be one of 'astronaut'.*got 'lena'"):
        load_photo("lena")


@pytest.mark.parametrize("size", [(0, 10), (10, -1), (10,), (1, 2, 3)])
def test_load_photo_bad_size(size):
    with pytest.raises(ValueError, match="size must be"):
        load_photo("chelsea", size)


def reference_patch_features(image: torch.Tensor, p: int) -> np.ndarray:
    """Features computed tile by tile with numpy, as the docstring describes them."""
    img = image.double().numpy()
    lum = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
    dx = np.abs(np.diff(lum, axis=1))
    dx = np.concatenate([dx, dx[:, -1:]], axis=1)
    dy = np.abs(np.diff(lum, axis=0))
    dy = np.concatenate([dy, dy[-1:, :]], axis=0)
    h, w = img.shape[1] // p, img.shape[2] // p
    out = np.zeros((6, h, w))
    for i in range(h):
        for j in range(w):
            sl = (slice(i * p, (i + 1) * p), slice(j * p, (j + 1) * p))
            out[:3, i, j] = img[(slice(None), *sl)].mean(axis=(1, 2))
            out[3, i, j] = lum[sl].std()
            out[4, i, j] = dx[sl].mean()
            out[5, i, j] = dy[sl].mean()
    return out


@pytest.mark.parametrize("p", [2, 8, 16, 32])
def test_patch_features_shape(chelsea, p):
    f = patch_features(chelsea, patch=p)
    assert f.shape == (6, 64 // p, 96 // p) == (len(FEATURE_NAMES), 64 // p, 96 // p)
    assert f.dtype == chelsea.dtype
    assert torch.isfinite(f).all()


def test_patch_features_match_a_tile_loop(chelsea):
    f = patch_features(chelsea, patch=16, standardise=False)
    np.testing.assert_allclose(f.numpy(), reference_patch_features(chelsea, 16), rtol=0, atol=1e-5)


def test_patch_features_match_a_tile_loop_on_random_image():
    img = torch.rand(3, 12, 18, generator=torch.Generator().manual_seed(0))
    f = patch_features(img, patch=3, standardise=False)
    np.testing.assert_allclose(f.numpy(), reference_patch_features(img, 3), rtol=0, atol=1e-5)


def test_standardised_channels_have_zero_mean_unit_std(chelsea):
    f = patch_features(chelsea, patch=8).reshape(6, -1)
    torch.testing.assert_close(f.mean(1), torch.zeros(6), rtol=0, atol=1e-5)
    torch.testing.assert_close(f.std(1, unbiased=False), torch.ones(6), rtol=0, atol=1e-4)
    raw = patch_features(chelsea, patch=8, standardise=False).reshape(6, -1)
    expected = (raw - raw.mean(1, keepdim=True)) / raw.std(1, unbiased=False, keepdim=True)
    torch.testing.assert_close(f, expected, rtol=1e-4, atol=1e-4)


def test_constant_image_has_no_edges_or_contrast():
    img = torch.empty(3, 16, 24)
    img[0], img[1], img[2] = 0.2, 0.5, 0.9
    f = patch_features(img, patch=8, standardise=False)
    assert f.shape == (6, 2, 3)
    assert (f[3:] == 0).all()  # contrast, x-edges, y-edges
    torch.testing.assert_close(f[:3], torch.tensor([0.2, 0.5, 0.9])[:, None, None].expand(3, 2, 3))
    # standardised, the channels are constant over the patches: finite (no 0/0), and the exactly-zero
    # edge and contrast channels stay exactly zero
    g = patch_features(img, patch=8)
    assert torch.isfinite(g).all()
    assert (g[3:] == 0).all()


def test_edges_follow_the_direction_of_the_stripes():
    """Vertical stripes change along x: x-edges, no y-edges (and the reverse)."""
    stripes = (torch.arange(16) % 2).float().expand(3, 16, 16).clone()  # varies along x (columns)
    f = patch_features(stripes, patch=4, standardise=False)
    assert (f[4] > 0.5).all() and (f[5] == 0).all()
    f = patch_features(stripes.transpose(1, 2).contiguous(), patch=4, standardise=False)
    assert (f[5] > 0.5).all() and (f[4] == 0).all()


def test_patch_features_is_deterministic(chelsea):
    torch.testing.assert_close(patch_features(chelsea, 16), patch_features(chelsea, 16), rtol=0, atol=0)


@pytest.mark.parametrize("p", [0, 1, -4, 5, 7, 2.0, 16.0, "16", None, True])
def test_patch_features_bad_patch(chelsea, p):
    with pytest.raises(ValueError, match=re.escape("patch must be an integer >= 2 dividing H=64 and W=96, got")):
        patch_features(chelsea, patch=p)


@pytest.mark.parametrize(
    "image, match",
    [
        (torch.zeros(4, 16, 16), re.escape("3 colour channels (3, H, W), got shape (4, 16, 16)")),
        (torch.zeros(16, 16), re.escape("image must be 3-d (3, H, W), got shape (16, 16)")),
        (torch.zeros(1, 3, 16, 16), re.escape("image must be 3-d (3, H, W), got shape (1, 3, 16, 16)")),
        (torch.zeros(3, 16, 16, dtype=torch.uint8), "floating-point.*torch.uint8"),
        (np.zeros((3, 16, 16), dtype=np.float32), "torch.Tensor, got ndarray"),
    ],
)
def test_patch_features_bad_image(image, match):
    with pytest.raises(ValueError, match=match):
        patch_features(image, patch=8)


def test_unit_features_have_unit_length(chelsea):
    f = patch_features(chelsea, patch=16, unit=True)
    assert f.shape == (6, 4, 6)
    torch.testing.assert_close(f.norm(dim=0), torch.ones(4, 6), rtol=0, atol=1e-5)
    # the direction is that of the standardised features
    g = patch_features(chelsea, patch=16)
    torch.testing.assert_close(f, g / g.norm(dim=0, keepdim=True), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size, patch", [((16, 24), 8), ((256, 256), 2)])
def test_constant_colour_channels_standardise_to_exact_zero(size, patch):
    img = torch.empty(3, *size)
    img[0], img[1], img[2] = 0.2, 0.5, 0.9
    f = patch_features(img, patch=patch)
    assert torch.equal(f, torch.zeros_like(f)), f.abs().max()


# --- real digits and the datasets synthesised from them -----------------------------------------

from visual_attention.data import cluttered_digits, digit_clips, load_digits  # noqa: E402


def test_load_digits_splits_are_disjoint_halves():
    x, y = load_digits()
    xtr, ytr = load_digits("train")
    xte, yte = load_digits("test")
    assert x.shape == (1797, 8, 8) and y.dtype == torch.long
    assert len(xtr) + len(xte) == len(x)
    assert torch.equal(torch.cat([xtr, xte]), x)
    assert 0 <= x.min() and x.max() <= 1
    with pytest.raises(ValueError, match="split must be"):
        load_digits("validation")


def test_cluttered_digits_shapes_boxes_and_determinism():
    x, y, b = cluttered_digits(64, canvas=40, digit_sizes=(14, 22), seed=5)
    assert x.shape == (64, 1, 40, 40) and x.dtype == torch.float32
    assert y.shape == (64,) and set(y.tolist()) <= set(range(10))
    assert b.shape == (64, 4)
    size = b[:, 2] - b[:, 0]
    assert torch.equal(size, b[:, 3] - b[:, 1])
    assert (size >= 14).all() and (size <= 22).all()
    assert (b[:, :2] >= 0).all() and (b[:, 2:] <= 40).all()
    assert 0 <= x.min() and x.max() <= 1
    x2, y2, b2 = cluttered_digits(64, canvas=40, digit_sizes=(14, 22), seed=5)
    assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(b, b2)
    assert not torch.equal(x, cluttered_digits(64, seed=6)[0])


def test_cluttered_digit_is_brighter_inside_its_box():
    x, _, b = cluttered_digits(200, noise=0.0, distractors=0, seed=1)
    inside = torch.stack([x[i, 0, t:bt, l:r].sum() for i, (t, l, bt, r) in enumerate(b.tolist())])
    assert torch.allclose(inside, x.sum(dim=(1, 2, 3)))  # without clutter all ink is in the box


def test_cluttered_digits_cuts_fragments_from_digits_drawn_at_distractor_size():
    # one fragment of 1/4 of a digit drawn at 32 px: all ink outside the 16-px digit's box lies in
    # one 8 × 8 square (without distractor_size it would be cut from a 16-px digit: 4 × 4)
    x, _, b = cluttered_digits(
        50, canvas=48, digit_sizes=(16, 16), distractors=1, noise=0.0, seed=2,
        fragment=1 / 4, distractor_size=32,
    )  # fmt: skip
    widths = []
    for image, (t, l, bt, r) in zip(x[:, 0], b.tolist()):
        outside = image.clone()
        outside[t:bt, l:r] = 0
        rows, cols = torch.nonzero(outside, as_tuple=True)
        if len(rows):
            widths.append(max(rows.max() - rows.min(), cols.max() - cols.min()).item() + 1)
    assert max(widths) <= 8 and max(widths) > 4
    with pytest.raises(ValueError, match="distractor_size must be a positive integer"):
        cluttered_digits(2, distractor_size=0)


def test_cluttered_digits_validation():
    with pytest.raises(ValueError, match="digit_sizes"):
        cluttered_digits(4, canvas=20, digit_sizes=(14, 22))


def test_digit_clips_presence_and_determinism():
    c, y, p = digit_clips(32, frames=8, canvas=24, visible=(2, 3), seed=2)
    assert c.shape == (32, 8, 1, 24, 24) and p.shape == (32, 8) and p.dtype == torch.bool
    counts = p.sum(1)
    assert (counts >= 2).all() and (counts <= 3).all()
    for row in p:  # the visible frames are consecutive
        idx = row.nonzero().flatten()
        assert (idx[1:] - idx[:-1] == 1).all()
    c2, y2, p2 = digit_clips(32, frames=8, canvas=24, visible=(2, 3), seed=2)
    assert torch.equal(c, c2) and torch.equal(y, y2) and torch.equal(p, p2)


def test_digit_frames_hold_more_ink_than_distractor_frames():
    c, _, p = digit_clips(100, noise=0.0, seed=3)
    ink = c.sum(dim=(2, 3, 4))
    assert ink[p].mean() > 2 * ink[~p].mean()


def test_digit_clips_validation():
    with pytest.raises(ValueError, match="visible"):
        digit_clips(4, frames=4, visible=(2, 5))
