"""Exercises of the Local attention chapter: windows back to a grid (the inverse of the partition
the chapter shows), the shifted-window mask, and Swin's relative position index."""

from __future__ import annotations

import torch

from ..local_attention import (
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)
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


def _mask_cases() -> list[Case]:
    return [
        Case("8×8 grid, M=4, shift 2", (8, 8, 4, 2)),
        Case("no shift: everything allowed", (4, 4, 2, 0)),
        Case("one window, M=4, shift 1", (4, 4, 4, 1)),
        Case("6×9 grid, M=3, shift 1", (6, 9, 3, 1)),
    ]


EXERCISES = {
    "window_reverse": Exercise(
        "window_reverse",
        "Put (B·nW, M, M, C) windows (those of one image consecutive, in row-major order) back "
        "into the grid (B, H, W, C): the inverse of window_partition.",
        reference=window_reverse,
        make_cases=_reverse_cases,
    ),
    "shifted_window_mask": Exercise(
        "shifted_window_mask",
        "The boolean (nW, M², M²) mask of Swin's shifted windows after the cyclic shift "
        "(True = may attend).",
        reference=shifted_window_mask,
        make_cases=_mask_cases,
    ),
    "relative_position_index": Exercise(
        "relative_position_index",
        "Index (M², M²) into Swin's (2M-1)² bias table for every pair of tokens of a window.",
        reference=relative_position_index,
        make_cases=lambda: [Case(f"M={m}", (m,)) for m in (1, 2, 3, 7)],
    ),
}
