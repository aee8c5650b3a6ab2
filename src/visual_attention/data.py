"""Datasets built only from data that ships with packages (nothing is downloaded).

* :func:`load_photo` — a real photo from :mod:`skimage.data` (``chelsea``, ``astronaut``,
  ``coffee``…) as a ``(3, H, W)`` float tensor.
* :func:`patch_features` — a small, interpretable feature map for a photo: one vector per
  ``p × p`` patch (mean colour, contrast and edge strength), so that attention over a real image
  can be computed and explained without a trained network.
* :func:`load_digits` — the 1,797 real 8 × 8 handwritten digits of
  :func:`sklearn.datasets.load_digits`.
* :func:`cluttered_digits` — a digit at a random position and scale on a larger noisy canvas with
  distractor fragments of other digits, and the digit's box: a task where *where to look* matters.
* :func:`digit_clips` — short clips of a digit moving across a noisy canvas, present in only a few
  frames among distractor frames: a task where *when to look* matters.

Every generator is deterministic given its ``seed``, and train and test sets are drawn from
disjoint halves of the real digits (``split="train"`` or ``"test"``), so a test digit was never
seen in training.
"""

from __future__ import annotations

import numpy as np
import torch

from ._checks import (
    check_bool,
    check_choice,
    check_floating,
    check_int,
    check_int_or_none,
    check_number,
    check_positive_int,
    check_rank,
    check_size2,
    shape_str,
)

__all__ = [
    "PHOTOS",
    "FEATURE_NAMES",
    "load_photo",
    "patch_features",
    "load_digits",
    "cluttered_digits",
    "digit_clips",
]

#: Colour photos of :mod:`skimage.data` that :func:`load_photo` accepts.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "coins")

#: Names of the channels returned by :func:`patch_features`, in order.
FEATURE_NAMES = ("red", "green", "blue", "contrast", "x-edges", "y-edges")


def load_photo(name: str = "chelsea", size: tuple[int, int] = (128, 192)) -> torch.Tensor:
    """Load a photo shipped with scikit-image, resized with anti-aliasing.

    Args:
        name: one of :data:`PHOTOS`.
        size: output ``(H, W)`` in pixels.

    Returns:
        ``(3, H, W)`` float32 tensor with values in ``[0, 1]``.
    """
    from skimage import data as skdata
    from skimage.color import gray2rgb
    from skimage.transform import resize

    check_choice("name", name, PHOTOS)
    check_size2("size", size)
    img = getattr(skdata, name)()
    if img.ndim == 2:
        img = gray2rgb(img)
    img = resize(img[..., :3], size, anti_aliasing=True, preserve_range=False)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().clamp_(0, 1)


def patch_features(
    image: torch.Tensor, patch: int = 16, standardise: bool = True, unit: bool = False
) -> torch.Tensor:
    """Describe each ``patch × patch`` tile of an image by six numbers (see :data:`FEATURE_NAMES`).

    Channels: mean red, green and blue; the standard deviation of the luminance (contrast); the
    mean absolute horizontal and vertical luminance differences (edges across x and across y). With
    ``standardise`` each channel is shifted and scaled to mean 0 and standard deviation 1 over the
    patches of the image, so that no channel dominates the dot products. With ``unit`` each patch's
    vector is then scaled to length 1, so that the dot product of two of them is their cosine
    similarity: a patch then matches itself best, whatever its norm.

    Args:
        image: ``(3, H, W)`` floating tensor; ``H`` and ``W`` must be multiples of ``patch``.
        patch: tile size in pixels.
        standardise: z-score each channel over the tiles.
        unit: scale every tile's feature vector to unit length (after standardising).

    Returns:
        ``(6, H // patch, W // patch)`` feature map.
    """
    check_floating("image", image)
    check_rank("image", image, exactly=3, expected="(3, H, W)")
    check_bool("standardise", standardise)
    check_bool("unit", unit)
    if image.shape[0] != 3:
        raise ValueError(
            f"image must have 3 colour channels (3, H, W), got shape {shape_str(image)}"
        )
    _, height, width = image.shape
    if not isinstance(patch, int) or patch < 2 or height % patch or width % patch:
        raise ValueError(
            f"patch must be an integer >= 2 dividing H={height} and W={width}, got {patch!r}"
        )
    h, w = height // patch, width // patch

    def tiles(
        x: torch.Tensor,
    ) -> torch.Tensor:  # (C, H', W') -> (C, h, w, p*p), cropping to whole tiles
        c = x.shape[0]
        x = x[:, : h * patch, : w * patch]
        return x.reshape(c, h, patch, w, patch).permute(0, 1, 3, 2, 4).reshape(c, h, w, -1)

    lum = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2])[None]
    dx = (lum[:, :, 1:] - lum[:, :, :-1]).abs()
    dy = (lum[:, 1:, :] - lum[:, :-1, :]).abs()
    dx = torch.cat([dx, dx[:, :, -1:]], dim=2)  # pad back to full width / height
    dy = torch.cat([dy, dy[:, -1:, :]], dim=1)
    feats = torch.cat(
        [
            tiles(image).mean(-1),
            tiles(lum).std(-1, unbiased=False),
            tiles(dx).mean(-1),
            tiles(dy).mean(-1),
        ]
    )
    if standardise:
        flat = feats.reshape(feats.shape[0], -1).double()
        mean, std = flat.mean(1)[:, None, None], flat.std(1, unbiased=False)[:, None, None]
        # a channel that is constant over the image (up to rounding) carries no information: 0
        flat_channel = std <= 1e-5 * (mean.abs() + 1)
        feats = torch.where(
            flat_channel, 0.0, (feats - mean) / torch.where(flat_channel, 1.0, std)
        ).float()
    if unit:
        feats = feats / feats.norm(dim=0, keepdim=True).clamp_min(1e-6)
    return feats


def load_digits(split: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The real handwritten digits shipped with scikit-learn.

    Args:
        split: ``None`` for all 1,797 digits, ``"train"`` for the first 1,200, ``"test"`` for the
            rest.

    Returns:
        images ``(N, 8, 8)`` float32 in ``[0, 1]`` and labels ``(N,)`` int64.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    d = sk_load_digits()
    images = torch.from_numpy(d.images / 16.0).float()
    labels = torch.from_numpy(d.target).long()
    if split is None:
        return images, labels
    if split == "train":
        return images[:1200], labels[:1200]
    if split == "test":
        return images[1200:], labels[1200:]
    raise ValueError(f"split must be None, 'train' or 'test', got {split!r}")


class _Resized:
    """All digits resized (bilinearly) to a given side, computed once per side."""

    def __init__(self, digits: torch.Tensor):
        self.digits = digits[:, None]
        self.cache: dict[int, np.ndarray] = {}

    def __call__(self, size: int) -> np.ndarray:
        if size not in self.cache:
            resized = torch.nn.functional.interpolate(
                self.digits, size=(size, size), mode="bilinear", align_corners=False
            )
            self.cache[size] = resized[:, 0].clamp(0, 1).double().numpy()
        return self.cache[size]


def cluttered_digits(
    n: int,
    canvas: int = 40,
    digit_sizes: tuple[int, int] = (14, 22),
    distractors: int = 4,
    noise: float = 0.15,
    split: str = "train",
    seed: int = 0,
    fragment: float = 5 / 8,
    distractor_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Real digits placed on a larger noisy canvas among fragments of other digits.

    Each image holds one digit resized to a random size in ``digit_sizes`` at a random position,
    ``distractors`` fragments of *other* digits (random crops of 5/8 of a digit drawn at the same
    size, so strokes look alike) and Gaussian pixel noise. The label is the digit's class.

    Args:
        n: number of images.
        canvas: side of the square canvas in pixels.
        digit_sizes: ``(smallest, largest)`` digit side in pixels.
        distractors: fragments per image.
        noise: standard deviation of the pixel noise.
        split: ``"train"`` or ``"test"``: which half of the real digits to draw from.
        seed: random seed; the same arguments give the same images.
        fragment: side of a fragment as a fraction of the side its digit is drawn at (at least 3
            pixels).
        distractor_size: side at which the other digits are drawn before a fragment is cut from
            them; ``None`` draws them at the size of the image's digit, so that strokes look
            alike. (The branch chapter draws them at another scale than the digit.)

    Returns:
        images ``(n, 1, canvas, canvas)`` float32 clipped to ``[0, 1]``, labels ``(n,)`` int64 and
        boxes ``(n, 4)`` int64 as ``(top, left, bottom, right)`` pixel bounds of the digit
        (``bottom`` and ``right`` exclusive).
    """
    check_positive_int("n", n)
    check_positive_int("canvas", canvas)
    check_size2("digit_sizes", digit_sizes)
    check_int("distractors", distractors, minimum=0)
    check_number("noise", noise, 0.0)
    check_int("seed", seed, minimum=0)
    check_number("fragment", fragment, 0.0, 1.0, low_open=True)
    if n < 1 or canvas < digit_sizes[1] or not 2 <= digit_sizes[0] <= digit_sizes[1]:
        raise ValueError(
            f"need n >= 1 and 2 <= digit_sizes[0] <= digit_sizes[1] <= canvas, got n={n}, "
            f"digit_sizes={digit_sizes}, canvas={canvas}"
        )
    check_int_or_none("distractor_size", distractor_size)
    digits, labels = load_digits(split)
    resized = _Resized(digits)
    rng = np.random.default_rng(seed)
    images = np.zeros((n, canvas, canvas), dtype=np.float64)
    out_labels = np.zeros(n, dtype=np.int64)
    boxes = np.zeros((n, 4), dtype=np.int64)
    for i in range(n):
        k = rng.integers(len(digits))
        size = int(rng.integers(digit_sizes[0], digit_sizes[1] + 1))
        img = images[i]
        side = size if distractor_size is None else distractor_size
        piece = max(3, round(fragment * side))  # a crop of another digit drawn at side × side
        for _ in range(distractors):
            other = resized(side)[rng.integers(len(digits))]
            r, c = rng.integers(0, side - piece + 1, size=2)
            frag = other[r : r + piece, c : c + piece]
            fr, fc = rng.integers(0, canvas - piece + 1, size=2)
            region = img[fr : fr + frag.shape[0], fc : fc + frag.shape[1]]
            np.maximum(region, frag, out=region)
        top, left = (int(v) for v in rng.integers(0, canvas - size + 1, size=2))
        region = img[top : top + size, left : left + size]
        np.maximum(region, resized(size)[k], out=region)
        img += rng.normal(0.0, noise, size=img.shape)
        out_labels[i] = labels[k]
        boxes[i] = (top, left, top + size, left + size)
    images = np.clip(images, 0.0, 1.0)
    return (
        torch.from_numpy(images[:, None]).float(),
        torch.from_numpy(out_labels),
        torch.from_numpy(boxes),
    )


def digit_clips(
    n: int,
    frames: int = 8,
    canvas: int = 24,
    visible: tuple[int, int] = (2, 3),
    noise: float = 0.15,
    split: str = "train",
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Short clips in which a real digit moves across a noisy canvas during a few frames only.

    In each clip one digit (the label) is visible in a run of ``visible`` consecutive frames,
    moving in a straight line; every other frame shows only noise and a moving fragment of another
    digit (a distractor). A model must find *when* the digit appears.

    Args:
        n: number of clips.
        frames: frames per clip ``T``.
        canvas: frame side in pixels (the digit is drawn at 12 × 12).
        visible: ``(fewest, most)`` frames in which the digit is visible.
        noise: standard deviation of the pixel noise.
        split: ``"train"`` or ``"test"``: which half of the real digits to draw from.
        seed: random seed.

    Returns:
        clips ``(n, T, 1, canvas, canvas)`` float32 in ``[0, 1]``, labels ``(n,)`` int64 and
        ``present`` ``(n, T)`` bool, True where the digit is visible.
    """
    size = 12
    check_positive_int("n", n)
    check_positive_int("canvas", canvas)
    check_positive_int("frames", frames)
    check_size2("visible", visible)
    check_number("noise", noise, 0.0)
    check_int("seed", seed, minimum=0)
    if n < 1 or canvas < size + 2 or not 1 <= visible[0] <= visible[1] <= frames:
        raise ValueError(
            f"need n >= 1, canvas >= {size + 2} and 1 <= visible[0] <= visible[1] <= frames, got "
            f"n={n}, "
            f"canvas={canvas}, visible={visible}, frames={frames}"
        )
    digits, labels = load_digits(split)
    resized = _Resized(digits)(size)
    rng = np.random.default_rng(seed)
    clips = np.zeros((n, frames, canvas, canvas))
    present = np.zeros((n, frames), dtype=bool)
    out_labels = np.zeros(n, dtype=np.int64)
    span = canvas - size
    for i in range(n):
        k = rng.integers(len(digits))
        digit = resized[k]
        count = int(rng.integers(visible[0], visible[1] + 1))
        first = int(rng.integers(0, frames - count + 1))
        (r0, c0), (r1, c1) = rng.integers(0, span + 1, size=(2, 2))
        other = resized[rng.integers(len(digits))]
        r, c = rng.integers(0, size - 8 + 1, size=2)
        frag = other[r : r + 8, c : c + 8]
        (fr0, fc0), (fr1, fc1) = rng.integers(0, canvas - 8 + 1, size=(2, 2))
        for t in range(frames):
            a = t / max(frames - 1, 1)
            fr, fc = round(fr0 + a * (fr1 - fr0)), round(fc0 + a * (fc1 - fc0))
            frame = clips[i, t]
            np.maximum(frame[fr : fr + 8, fc : fc + 8], frag, out=frame[fr : fr + 8, fc : fc + 8])
            if first <= t < first + count:
                b = (t - first) / max(count - 1, 1)
                r, c = round(r0 + b * (r1 - r0)), round(c0 + b * (c1 - c0))
                np.maximum(
                    frame[r : r + size, c : c + size], digit, out=frame[r : r + size, c : c + size]
                )
                present[i, t] = True
        out_labels[i] = labels[k]
    clips += rng.normal(0.0, noise, size=clips.shape)
    clips = np.clip(clips, 0.0, 1.0)
    return (
        torch.from_numpy(clips[:, :, None]).float(),
        torch.from_numpy(out_labels),
        torch.from_numpy(present),
    )
