"""The lab of the branch chapter: its small SK network, digits drawn at chosen sizes, the explorer.

* :class:`BranchNet` — a small classifier of cluttered digits, with SK units or plain convolutions.
* :func:`render_digits` / :func:`render_digit` — real digits at a chosen size on a noisy canvas.
* :func:`branch_weights_by_size` — the SK branch weights over a data set, averaged over channels.
* :func:`explorer` — a widget: a digit, its drawn size and an SK block; the branch weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets
import torch
from torch import nn

from .._checks import check_tensor
from ..blocks import conv_bn_act
from ..branch import SelectiveKernel
from ..core import record_attention
from ..data import load_digits
from ..views.viz import VIEW_CSS, bars_html, colorize, data_uri
from ..views.widgets import html_view, precomputed_explorer
from .channel import collect_attention


class BranchNet(nn.Module):
    """A small classifier for ``(B, 1, 40, 40)`` cluttered digits, with or without SK units.

    ``stem (conv 3×3) → blocks (each stride 2) → GAP → linear``; ``widths = (stem, block 1, …)``.
    With ``selective=True`` each block is a :class:`SelectiveKernel` (3×3 and dilated "5×5"
    branches, ``groups`` groups, ``d = max(C / 16, min_rd_channels)``); otherwise a ``conv 3×3 → BN
    → ReLU`` (pass wider ``widths`` so that both models have about the same number of parameters).
    The blocks are ``blocks[0]``, ``blocks[1]``…, so their recorded weights are named
    ``"blocks.0"``, ``"blocks.1"``….
    """

    def __init__(
        self,
        widths: Sequence[int] = (16, 32, 48, 64),
        selective: bool = True,
        groups: int = 4,
        min_rd_channels: int = 16,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        widths = tuple(widths)
        if len(widths) < 2:
            raise ValueError(
                f"widths must be (stem, block 1, …) with at least one block, got {widths!r}"
            )
        self.selective = selective
        self.stem = conv_bn_act(1, widths[0], bias=False)

        def block(in_channels: int, out_channels: int) -> nn.Module:
            if selective:
                return SelectiveKernel(
                    in_channels,
                    out_channels,
                    stride=2,
                    groups=groups,
                    min_rd_channels=min_rd_channels,
                )
            return conv_bn_act(in_channels, out_channels, stride=2, groups=groups, bias=False)

        self.blocks = nn.Sequential(*(block(a, b) for a, b in zip(widths[:-1], widths[1:])))
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, "(B, C, H, W)", C=1)
        return self.head(self.blocks(self.stem(x)).mean(dim=(-2, -1)))


def render_digits(
    indices: Sequence[int],
    size: int,
    canvas: int = 40,
    noise: float = 0.15,
    split: str = "test",
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Real digits drawn at ``size × size`` pixels in the centre of a noisy canvas, all in one
    batch.

    The noise is the same for every ``size`` and every digit (it depends only on ``seed``), so
    images of one digit at several sizes differ only by the digit's scale. The digits are loaded
    and resized once for the whole batch.

    Returns:
        images ``(N, 1, canvas, canvas)`` in ``[0, 1]`` and labels ``(N,)`` int64.
    """
    digits, labels = load_digits(split)
    index = torch.as_tensor(list(indices), dtype=torch.long).reshape(-1)
    if len(index) and not bool(((index >= 0) & (index < len(digits))).all()):
        raise ValueError(f"indices must be in [0, {len(digits)}), got {index.tolist()}")
    if not 2 <= size <= canvas:
        raise ValueError(f"size must be between 2 and canvas={canvas}, got {size}")
    resized = nn.functional.interpolate(
        digits[index][:, None], size=(size, size), mode="bilinear", align_corners=False
    ).clamp(0, 1)  # (N, 1, size, size)
    images = torch.zeros(len(index), 1, canvas, canvas)
    top = (canvas - size) // 2
    images[:, :, top : top + size, top : top + size] = resized
    noise_map = torch.randn(canvas, canvas, generator=torch.Generator().manual_seed(seed)) * noise
    return (images + noise_map).clamp(0, 1), labels[index]


def render_digit(
    index: int,
    size: int,
    canvas: int = 40,
    noise: float = 0.15,
    split: str = "test",
    seed: int = 0,
) -> tuple[torch.Tensor, int]:
    """One real digit drawn at ``size × size`` pixels in the centre of a noisy canvas.

    The noise is the same for every ``size`` (it depends only on ``seed``), so images of one digit
    at several sizes differ only by the digit's scale. (:func:`render_digits` draws many at once.)

    Returns:
        the image ``(1, canvas, canvas)`` in ``[0, 1]`` and the digit's label.
    """
    images, labels = render_digits(
        [index], size, canvas=canvas, noise=noise, split=split, seed=seed
    )
    return images[0], int(labels[0])


def branch_weights_by_size(
    model: nn.Module, images: torch.Tensor, batch_size: int = 256
) -> dict[str, torch.Tensor]:
    """The SK branch weights of ``model`` on ``images``, averaged over channels: ``{block: (N,
    M)}``.

    Runs ``model`` in eval mode under :func:`~visual_attention.core.record_attention`, in batches
    (:func:`visual_attention.channel.collect_attention`, shared with the channel chapter's gate
    profiles).
    """
    return collect_attention(
        model, images, batch_size, reduce=lambda w: w.mean(dim=-1)
    )  # (b, M, C) -> (b, M)


def explorer(
    model: nn.Module,
    digits: Sequence[int],
    sizes: Sequence[int],
    display: int = 160,
    split: str = "test",
    seed: int = 0,
):
    """A widget: pick a digit, the size it is drawn at and an SK block; see the branch weights.

    Each view shows the image, the block's mean branch weights (3×3 vs 5×5) with the share of
    channels that prefer the larger kernel, and the model's class probabilities (its output).

    Args:
        model: a trained network holding :class:`SelectiveKernel` units (e.g. :class:`BranchNet`).
        digits: indices of test digits (see :func:`render_digit`).
        sizes: digit sides in pixels.
        display: drawn side of the image in CSS pixels.

    Returns:
        an explorer (see :func:`visual_attention.views.widgets.precomputed_explorer`) with controls
        ``digit``, ``size`` and ``block``.
    """
    was_training = model.training
    model.eval()
    results = {}
    for size in sizes:
        batch, labels = render_digits(digits, size, split=split, seed=seed)
        with torch.no_grad(), record_attention(model) as maps:
            probs = model(batch).softmax(-1)
        for k, index in enumerate(digits):
            results[index, size] = (
                batch[k, 0],
                int(labels[k]),
                probs[k],
                {n: w[k] for n, w in maps.items()},
            )
    model.train(was_training)
    blocks = list(next(iter(results.values()))[3])
    if not blocks:
        raise ValueError("model holds no SelectiveKernel unit that recorded weights")
    first = next(m for m in model.modules() if isinstance(m, SelectiveKernel))
    branch_names = [f"{k}×{k} branch" for k in first.kernel_sizes]

    def render(digit: int, size: int, block: str) -> ipywidgets.Widget:
        image, label, probs, maps = results[digit, size]
        w = maps[block]  # (M, C)
        img = colorize(image.numpy(), vmax=1.0, cmap="gray")[..., :3]
        pred = int(probs.argmax())
        caption = f"digit {label} drawn at {size}×{size} px · predicted {pred}"
        caption += f" ({float(probs[pred]):.2f})"
        style = f"width:{display}px;height:{display}px;image-rendering:pixelated"
        left = (
            f'<div class="va-view"><img alt="digit" src="{data_uri(img)}" style="{style}">'
            f'<div class="va-cap">{caption}</div></div>'
        )
        means = w.mean(dim=-1).tolist()
        prefer = float((w[-1] > w[0]).float().mean())
        share = (
            f"share of channels with {branch_names[-1].split()[0]} > {branch_names[0].split()[0]}"
        )
        middle = bars_html(
            means + [prefer],
            branch_names + [share],
            title=f"{block}: mean branch weight",
            vmax=1.0,
        )
        right = bars_html(
            probs.tolist(),
            [str(c) for c in range(len(probs))],
            title="output: class probabilities",
            vmax=1.0,
        )
        return html_view(f'<div class="va-flex">{left}{middle}{right}</div>')

    return precomputed_explorer(
        {"digit": list(digits), "size": list(sizes), "block": blocks},
        render,
        header=ipywidgets.HTML(VIEW_CSS),
    )
