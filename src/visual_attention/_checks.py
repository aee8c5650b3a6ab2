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


def check_qkv(q: object, k: object, v: object, *, broadcast: bool = True) -> None:
    """Raise ``ValueError`` unless ``q``, ``k``, ``v`` are valid inputs of dot-product attention.

    Expected layouts: ``q (*B, Lq, D)``, ``k (*B, Lk, D)``, ``v (*B, Lk, Dv)``, floating point, one dtype.
    With ``broadcast=True`` the batch dimensions ``*B`` need only broadcast together (as in
    :func:`torch.matmul`); with ``broadcast=False`` they must be equal. Shared by
    :func:`visual_attention.core.scaled_dot_product_attention` and :mod:`visual_attention.efficient`.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_floating(name, t)
        check_rank(name, t, at_least=2, expected="(*B, L, D)")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k and v must share a dtype, got {q.dtype}, {k.dtype} and {v.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q {shape_str(q)} and k {shape_str(k)} must have the same feature size D (last dimension)")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k {shape_str(k)} and v {shape_str(v)} must have the same number of keys Lk (dimension -2)")
    if not broadcast:
        if q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
            raise ValueError(
                f"q {shape_str(q)}, k {shape_str(k)} and v {shape_str(v)} must have the same batch dimensions"
            )
        return
    if q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
        return
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"batch dimensions of q {shape_str(q)}, k {shape_str(k)} and v {shape_str(v)} do not broadcast"
        ) from None
