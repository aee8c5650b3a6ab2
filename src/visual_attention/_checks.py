"""Input validation shared by every public function: errors that name expected and actual shapes."""

from __future__ import annotations

import torch


def shape_str(t: torch.Tensor) -> str:
    """``(2, 3, 4)`` for a tensor of that shape (``(3,)`` in one dimension, ``()`` in none)."""
    return str(tuple(t.shape))


def check_floating(name: str, t: object) -> None:
    """Raise ``ValueError`` unless ``t`` is a floating-point tensor."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")


def check_rank(
    name: str,
    t: torch.Tensor,
    *,
    exactly: int | None = None,
    at_least: int | None = None,
    expected: str = "",
) -> None:
    """Raise ``ValueError`` if ``t`` has the wrong number of dimensions; ``expected`` names the layout."""
    bad = (exactly is not None and t.ndim != exactly) or (at_least is not None and t.ndim < at_least)
    if bad:
        want = f"{exactly}-d" if exactly is not None else f"at least {at_least}-d"
        layout = f" {expected}" if expected else ""
        raise ValueError(f"{name} must be {want}{layout}, got shape {shape_str(t)}")
