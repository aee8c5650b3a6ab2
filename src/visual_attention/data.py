"""Datasets built only from data that ships with packages (nothing is downloaded).

* :func:`load_photo` — a real photo from :mod:`skimage.data` (``chelsea``, ``astronaut``, ``coffee``…)
  as a ``(3, H, W)`` float tensor.
* :func:`patch_features` — a small, interpretable feature map for a photo: one vector per
  ``p × p`` patch (mean colour, contrast and edge strength), so that attention over a real image can
  be computed and explained without a trained network.
"""

from __future__ import annotations

import numpy as np
import torch

from ._checks import check_floating, check_rank, shape_str

__all__ = ["PHOTOS", "FEATURE_NAMES", "load_photo", "patch_features"]

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

    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose one of {PHOTOS}")
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be (H, W) with positive entries, got {size!r}")
    img = getattr(skdata, name)()
    if img.ndim == 2:
        img = gray2rgb(img)
    img = resize(img[..., :3], size, anti_aliasing=True, preserve_range=False)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().clamp_(0, 1)


def patch_features(
    image: torch.Tensor, patch: int = 16, standardise: bool = True, unit: bool = False
) -> torch.Tensor:
    """Describe each ``patch × patch`` tile of an image by six numbers (see :data:`FEATURE_NAMES`).

    Channels: mean red, green and blue; the standard deviation of the luminance (contrast); the mean
    absolute horizontal and vertical luminance differences (edges across x and across y).
    With ``standardise`` each channel is shifted and scaled to mean 0 and standard deviation 1 over
    the patches of the image, so that no channel dominates the dot products. With ``unit`` each
    patch's vector is then scaled to length 1, so that the dot product of two of them is their cosine
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
    if image.shape[0] != 3:
        raise ValueError(f"image must have 3 colour channels (3, H, W), got shape {shape_str(image)}")
    _, height, width = image.shape
    if not isinstance(patch, int) or patch < 2 or height % patch or width % patch:
        raise ValueError(
            f"patch must be an integer >= 2 dividing H={height} and W={width}, got {patch!r}"
        )
    h, w = height // patch, width // patch

    def tiles(x: torch.Tensor) -> torch.Tensor:  # (C, H', W') -> (C, h, w, p*p), cropping to whole tiles
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
        feats = torch.where(flat_channel, 0.0, (feats - mean) / torch.where(flat_channel, 1.0, std)).float()
    if unit:
        feats = feats / feats.norm(dim=0, keepdim=True).clamp_min(1e-6)
    return feats
