"""Exercises of the Local attention chapter: windows back to a grid (the inverse of the partition
the chapter shows), the shifted-window mask for rectangular windows and shifts that differ along
the two axes (the chapter shows square ones), and how far information spreads through blocks of
neighbourhood attention (the chapter counts it for windows only)."""

from __future__ import annotations

import torch

from ..local_attention import neighborhood_index, window_partition, window_reverse
from . import Case, Exercise


def _reverse_cases() -> list[Case]:
    g = torch.Generator().manual_seed(11)

    def case(label, x, m):  # the windows of a known grid (B, H, W, C)
        return Case(label, (window_partition(x, m), m, x.shape[1], x.shape[2]))

    return [
        case("B=2, 4×6 grid, M=2", torch.randn(2, 4, 6, 3, generator=g), 2),
        case("one window covering everything", torch.randn(1, 3, 3, 2, generator=g), 3),
        case("M=1: every token its own window", torch.randn(1, 2, 3, 1, generator=g), 1),
        case("B=3, 8×4 grid, M=4", torch.randn(3, 8, 4, 5, generator=g), 4),
    ]


def _rectangular_mask(
    height: int, width: int, window: tuple[int, int], shift: tuple[int, int]
) -> torch.Tensor:
    """Swin's shifted-window mask for ``window = (M_h, M_w)`` windows on a ``height × width`` grid
    rolled by ``-shift = -(s_h, s_w)``: boolean ``(nW, M_h·M_w, M_h·M_w)``, ``True`` = may attend.

    The rows of the rolled grid fall in the regions ``[0, H-M_h), [H-M_h, H-s_h), [H-s_h, H)``
    (one region when ``s_h = 0``), the columns likewise; two tokens of a window may attend to each
    other iff they lie in the same region of rows and the same region of columns."""
    (mh, mw), (sh, sw) = window, shift

    def regions(n: int, m: int, s: int) -> torch.Tensor:  # the region of each row (or column)
        label = torch.zeros(n, dtype=torch.long)
        if s:
            label[n - m : n - s], label[n - s :] = 1, 2
        return label

    labels = 3 * regions(height, mh, sh)[:, None] + regions(width, mw, sw)[None, :]  # (H, W)
    windows = labels.reshape(height // mh, mh, width // mw, mw).permute(0, 2, 1, 3)
    windows = windows.reshape(-1, mh * mw)  # (nW, M_h·M_w), windows and tokens in row-major order
    return windows[:, :, None] == windows[:, None, :]


def _mask_cases() -> list[Case]:
    return [
        Case("6×8 grid, 3×4 windows, shift (1, 2)", (6, 8, (3, 4), (1, 2))),
        Case("shift along the columns only", (4, 6, (2, 3), (0, 1))),
        Case("square: 8×8 grid, 4×4 windows, shift (2, 2)", (8, 8, (4, 4), (2, 2))),
        Case("no shift: everything allowed", (6, 4, (3, 2), (0, 0))),
        Case("one window of 4×2, shift (1, 1)", (4, 2, (4, 2), (1, 1))),
    ]


def _neighborhood_reach(height: int, width: int, kernel_size: int, blocks: int) -> torch.Tensor:
    """How many tokens each token of a ``height × width`` grid can draw information from after
    ``blocks`` blocks of ``k × k`` neighbourhood attention (neighbourhoods shifted inward at the
    border): int64 ``(height, width)``."""
    index, _ = neighborhood_index(height, width, kernel_size)
    n = height * width
    allowed = torch.zeros(n, n).scatter_(1, index, 1.0)  # query row, key column
    seen = torch.eye(n)
    for _ in range(blocks):
        seen = ((allowed @ seen) > 0).float()
    return seen.sum(-1).long().reshape(height, width)


EXERCISES = {
    "window_reverse": Exercise(
        "window_reverse",
        "Put (B·nW, M, M, C) windows (those of one image consecutive, in row-major order) back "
        "into the grid (B, H, W, C): the inverse of window_partition.",
        reference=window_reverse,
        make_cases=_reverse_cases,
    ),
    "rectangular_window_mask": Exercise(
        "rectangular_window_mask",
        "The boolean (nW, M_h·M_w, M_h·M_w) mask of shifted M_h × M_w windows after a cyclic "
        "shift by (s_h, s_w) (True = may attend).",
        reference=_rectangular_mask,
        make_cases=_mask_cases,
    ),
    "neighborhood_reach": Exercise(
        "neighborhood_reach",
        "How many tokens each token can draw information from after a number of blocks of "
        "k × k neighbourhood attention (neighbourhoods shifted inward at the border): (H, W) "
        "int64.",
        reference=_neighborhood_reach,
        make_cases=lambda: [
            Case("9×9 grid, k=3, two blocks", (9, 9, 3, 2)),
            Case("5×7 grid, k=5, one block", (5, 7, 5, 1)),
            Case("6×6 grid, k=3, zero blocks: each token itself", (6, 6, 3, 0)),
            Case("8×8 grid, k=3, four blocks", (8, 8, 3, 4)),
            Case("k = the grid: everything after one block", (3, 3, 3, 1)),
        ],
    ),
}
