"""A small CNN that reads digits, trained once and frozen: the front end of the chapters'
experiments.

An experiment about an attention mechanism should spend its seconds on the mechanism, its control
and several seeds, not on learning to see strokes. :class:`DigitCNN` learns that once: three
``3 × 3`` conv-BN-ReLU layers (32, 64, 64 channels) with two ``2 × 2`` max-pools, global average
pooling and a linear head, trained on the first 1,200 scikit-learn digits drawn at 16 × 16 pixels
(:func:`train_digit_cnn`). The chapters load its weights (:func:`load_digit_cnn`) and run it fully
convolutionally over larger canvases: ``feature_map`` turns a ``48 × 48`` canvas into a ``64 × 12 ×
12`` map, one feature vector per ``4 × 4`` block of pixels, on which only the attention mechanism
and its head are trained.

The weights (``weights/digit_cnn.pt``, about 230 kB) are made by ``make weights``
(``scripts/train_digit_cnn.py``, seeded); the file records the recipe and a hash of the code that
made it, and ``tests/test_lab_digits.py`` checks that script and file agree.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path

import torch
from torch import nn

from .._checks import (
    check_file,
    check_module,
    check_positive_int,
    check_tensor,
)
from ..blocks import conv_bn_act
from ..data import load_digits
from ..train import evaluate, fit, seed_everything
from ._checks import check_canvas

__all__ = [
    "DIGIT_SIZE",
    "RECIPE",
    "WEIGHTS",
    "DigitCNN",
    "like_module",
    "digits_at",
    "train_digit_cnn",
    "recipe_fingerprint",
    "load_digit_cnn",
]

#: The side, in pixels, at which the encoder learns the digits (the 8 × 8 originals, upsampled).
DIGIT_SIZE = 16
#: How :func:`train_digit_cnn` trains (``fit`` options and the seed); recorded in the weights file.
RECIPE = {"seed": 0, "epochs": 8, "lr": 3e-3, "batch_size": 64, "max_shift": 2, "noise": 0.1}
WEIGHTS = Path(__file__).parent / "weights" / "digit_cnn.pt"


class DigitCNN(nn.Module):
    """Conv-BN-ReLU 32 → pool → 64 → pool → 64, global average pooling, linear head.

    Shapes: ``forward``: ``(B, 1, H, W)`` → logits ``(B, 10)``; :meth:`feature_map`:
    ``(B, 1, H, W)`` → ``(B, 64, H/4, W/4)``. Trained on ``16 × 16`` digits, it reads a digit of
    about that size anywhere on a larger canvas.
    """

    channels = 64

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_act(1, 32, bias=False),
            nn.MaxPool2d(2),
            conv_bn_act(32, 64, bias=False),
            nn.MaxPool2d(2),
            conv_bn_act(64, self.channels, bias=False),
        )
        self.head = nn.Linear(self.channels, check_positive_int("num_classes", num_classes))

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        check_canvas("x", x, "(B, C, H, W)")  # one channel, H, W ≥ 4 (two 2 × 2 max-pools)
        return self.features(like_module(x, self))  # float32 weights read half-precision images

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.feature_map(x).mean(dim=(2, 3)))


def like_module(x: torch.Tensor, module: torch.nn.Module) -> torch.Tensor:
    """``x`` in the floating dtype of ``module``'s parameters (a no-op when they agree): a frozen
    float32 encoder reads half-precision images."""
    check_tensor("x", x, "(B, *S)")
    check_module("module", module)
    dtype = next((p.dtype for p in module.parameters()), x.dtype)
    return x if x.dtype == dtype else x.to(dtype)


def digits_at(size: int, split: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The scikit-learn digits drawn at ``size × size`` pixels (bilinear, as on the canvases of
    :func:`visual_attention.data.cluttered_digits`): images ``(N, 1, size, size)``, labels
    ``(N,)``."""
    check_positive_int("size", size)
    images, labels = load_digits(split)
    resized = nn.functional.interpolate(
        images[:, None], size=(size, size), mode="bilinear", align_corners=False
    )
    return resized.clamp(0, 1), labels


def train_digit_cnn(progress: bool = False) -> tuple[DigitCNN, float]:
    """Train :class:`DigitCNN` with :data:`RECIPE` on the training digits; return it (in eval mode)
    and its accuracy on the 597 held-out test digits.

    Every training digit is seen twice, clean and with Gaussian pixel noise (``RECIPE["noise"]``,
    as on the chapters' canvases), each batch shifted by up to ``max_shift`` pixels.
    """
    generator = seed_everything(RECIPE["seed"])
    model = DigitCNN()
    x, y = digits_at(DIGIT_SIZE, "train")
    noisy = (x + RECIPE["noise"] * torch.randn(x.shape, generator=generator)).clamp(0, 1)
    train = (torch.cat([x, noisy]), torch.cat([y, y]))
    options = {k: RECIPE[k] for k in ("epochs", "lr", "batch_size", "max_shift")}
    fit(model, train, None, seed=RECIPE["seed"], progress=progress, desc="digit CNN", **options)
    return model.eval(), evaluate(model, *digits_at(DIGIT_SIZE, "test"))


def recipe_fingerprint() -> str:
    """A hash of the code and the recipe that make the weights: editing either changes it."""
    code = inspect.getsource(DigitCNN) + inspect.getsource(train_digit_cnn) + repr(RECIPE)
    return hashlib.sha256(code.encode()).hexdigest()[:16]


def load_digit_cnn(path: Path | str = WEIGHTS) -> DigitCNN:
    """The trained :class:`DigitCNN`, frozen (eval mode, no gradients).

    Args:
        path: a weights file written by ``make weights`` (default: the package's,
            :data:`WEIGHTS`).
    """
    path = check_file("path", path, "weights file of the digit encoder (make weights writes it)")
    model = DigitCNN()
    try:
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved["state_dict"])
    except Exception as error:  # not a torch file, not a dict, or another network's weights
        raise ValueError(
            f"path must be a weights file of the digit encoder (make weights writes one), got "
            f"{str(path)!r}: {type(error).__name__}: {str(error)[:200]}"
        ) from error
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()
