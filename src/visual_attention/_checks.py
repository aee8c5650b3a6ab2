"""Input validation shared by every public function: errors that name expected and actual
shapes."""

from __future__ import annotations

import importlib
import math
import numbers
import types
from collections.abc import Sequence
from pathlib import Path

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
    """Raise ``ValueError`` if ``t`` has the wrong number of dimensions; ``expected`` names the
    layout."""
    bad = (exactly is not None and t.ndim != exactly) or (
        at_least is not None and t.ndim < at_least
    )
    if bad:
        want = f"{exactly}-d" if exactly is not None else f"at least {at_least}-d"
        layout = f" {expected}" if expected else ""
        raise ValueError(f"{name} must be {want}{layout}, got shape {shape_str(t)}")


def check_qkv(q: object, k: object, v: object, *, broadcast: bool = True) -> None:
    """Raise ``ValueError`` unless ``q``, ``k``, ``v`` are valid inputs of dot-product attention.

    Expected layouts: ``q (*B, Lq, D)``, ``k (*B, Lk, D)``, ``v (*B, Lk, Dv)``, floating point, one
    dtype. With ``broadcast=True`` the batch dimensions ``*B`` need only broadcast together (as in
    :func:`torch.matmul`); with ``broadcast=False`` they must be equal. Shared by
    :func:`visual_attention.core.scaled_dot_product_attention` and
    :mod:`visual_attention.efficient`.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        check_floating(name, t)
        check_rank(name, t, at_least=2, expected="(*B, L, D)")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k and v must share a dtype, got {q.dtype}, {k.dtype} and {v.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q {shape_str(q)} and k {shape_str(k)} must have the same feature size D (last "
            "dimension)"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k {shape_str(k)} and v {shape_str(v)} must have the same number of keys Lk "
            "(dimension -2)"
        )
    if not broadcast:
        if q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
            raise ValueError(
                f"q {shape_str(q)}, k {shape_str(k)} and v {shape_str(v)} must have the same "
                "batch dimensions"
            )
        return
    if q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
        return
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"batch dimensions of q {shape_str(q)}, k {shape_str(k)} and v {shape_str(v)} do not "
            "broadcast"
        ) from None


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an ``int`` ≥ 1 (``bool`` is not accepted), else raise
    ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_int(name: str, value: object, minimum: int | None = None) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``) ≥ ``minimum``; else raise
    ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a ``bool``; else raise ``ValueError`` (``1``, ``"no"`` are not
    booleans)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_str(name: str, value: object) -> str:
    """Return ``value`` if it is a ``str``; else raise ``ValueError``."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__} {value!r}")
    return value


def check_number(
    name: str,
    value: object,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``float(value)`` if it is a real number (not a ``bool``, not NaN) in the interval
    from ``low`` to ``high`` (closed unless ``low_open``/``high_open``); infinite bounds are always
    open. Else raise ``ValueError`` naming the interval."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and not math.isnan(value)
    if ok:
        above = value > low if (low_open or math.isinf(low)) else value >= low
        below = value < high if (high_open or math.isinf(high)) else value <= high
        ok = above and below and math.isfinite(value)
    if not ok:
        left = "(" if (low_open or math.isinf(low)) else "["
        right = ")" if (high_open or math.isinf(high)) else "]"
        interval = f"{left}{low:g}, {high:g}{right}".replace("inf", "∞")
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return float(value)


def check_size2(name: str, value: object, square: bool = False) -> tuple[int, int]:
    """Return ``value`` as ``(int, int)`` if it is a pair of positive integers (or, with
    ``square``, one positive integer ``n`` for ``(n, n)``); else raise ``ValueError``."""
    if square and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return check_positive_int(name, value), check_positive_int(name, value)
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in value)
    ):
        raise ValueError(f"{name} must be a pair of positive integers (H, W), got {value!r}")
    return int(value[0]), int(value[1])


def check_cell(name: str, value: object, grid: tuple[int, int]) -> tuple[int, int]:
    """Return ``value`` if it is a ``(row, col)`` pair of ints inside an ``h × w`` grid; else
    raise ``ValueError``."""
    ok = isinstance(value, (tuple, list)) and len(value) == 2
    ok = ok and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    if not ok or not (0 <= value[0] < grid[0] and 0 <= value[1] < grid[1]):
        raise ValueError(
            f"{name} must be a (row, col) cell of the {grid[0]}×{grid[1]} grid, got {value!r}"
        )
    return int(value[0]), int(value[1])


def check_int_sequence(name: str, value: object, length: int | None = None) -> tuple[int, ...]:
    """Return ``value`` as a tuple if it is a non-empty sequence of positive integers (of
    ``length`` entries when given); else raise ``ValueError``."""
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0
    ok = ok and all(
        not isinstance(v, bool) and isinstance(v, numbers.Integral) and v >= 1 for v in value
    )
    if not ok or (length is not None and len(value) != length):
        count = f"{length} " if length is not None else "a non-empty sequence of "
        raise ValueError(f"{name} must be {count}positive integers, got {value!r}")
    return tuple(int(v) for v in value)


def check_module(name: str, value: object) -> torch.nn.Module:
    """Return ``value`` if it is a ``torch.nn.Module``; else raise ``ValueError``."""
    if not isinstance(value, torch.nn.Module):
        raise ValueError(f"{name} must be a torch.nn.Module, got {type(value).__name__}")
    return value


def check_scale(name: str, value: object) -> float | torch.Tensor | None:
    """``None`` (the default scale), a tensor (a learned scale) or a positive finite number."""
    if value is None or isinstance(value, torch.Tensor):
        return value
    return check_positive_number(name, value)


def check_int_or_none(name: str, value: object) -> int | None:
    """``None``, or ``value`` if it is an ``int`` ≥ 1; else raise ``ValueError``."""
    return None if value is None else check_positive_int(name, value)


def check_positive_number(name: str, value: object) -> float:
    """Return ``float(value)`` if it is a finite real number > 0 (not a ``bool``); else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_choice(name: str, value: object, choices: Sequence[object]) -> object:
    """Return ``value`` if it is one of ``choices``; else raise ``ValueError`` listing them."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value


def _layout_names(layout: str) -> list[str]:
    return [part.strip() for part in layout.strip().strip("()").split(",") if part.strip()]


def check_tensor(name: str, t: object, layout: str, **sizes: int) -> tuple[int, ...]:
    """Check a floating-point tensor against a layout such as ``"(B, C, H, W)"``; return its shape.

    The layout's entries name the dimensions; one entry starting with ``*`` (``"(*B, T, C)"``)
    stands for any number of leading dimensions. ``sizes`` fixes named entries, e.g.
    ``check_tensor("x", x, "(B, C, H, W)", C=64)``. The ``ValueError`` names the argument, the
    expected layout and sizes, and the shape (or type, or dtype) that came.
    """
    check_floating(name, t)
    names = _layout_names(layout)
    stars = [i for i, n in enumerate(names) if n.startswith("*")]
    if stars:
        check_rank(name, t, at_least=len(names) - 1, expected=layout)
    else:
        check_rank(name, t, exactly=len(names), expected=layout)
    _check_nonempty(name, t, names, stars[0] if stars else None, layout)
    for key, want in sizes.items():
        i = names.index(key)
        axis = i - len(names) if stars and i > stars[0] else i
        if t.shape[axis] != want:
            wanted = " and ".join(f"{k} = {v}" for k, v in sizes.items())
            raise ValueError(f"{name} must be {layout} with {wanted}, got shape {shape_str(t)}")
    return tuple(t.shape)


def _check_nonempty(
    name: str, t: torch.Tensor, names: list[str], star: int | None, layout: str
) -> None:
    """Only batch dimensions (names starting with ``B``, and ``*`` entries) may be empty: zero
    tokens, channels or grid cells leave nothing to attend over."""
    for i, dim in enumerate(names):
        if dim.startswith(("B", "*")) or i == star:
            continue
        axis = i - len(names) if star is not None and i > star else i
        if t.shape[axis] == 0:
            raise ValueError(
                f"{name} must be {layout} with {dim} ≥ 1 (only the batch may be empty), got shape "
                f"{shape_str(t)}"
            )


def check_bool_mask(
    name: str,
    mask: object,
    *,
    shape: Sequence[int] | None = None,
    broadcast_to: Sequence[int] | None = None,
    layout: str = "",
) -> None:
    """Raise ``ValueError`` unless ``mask`` is a boolean tensor (``True`` = may attend).

    ``shape`` asks for that exact shape; ``broadcast_to`` for a shape that broadcasts to it without
    growing it. ``layout`` names the dimensions in the message, e.g. ``"(B, N)"``.
    """
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(
            f"{name} must be a boolean tensor {layout} (True = may attend), got {got}".replace(
                "  ", " "
            )
        )
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise ValueError(
            f"{name} must have shape {layout} = {tuple(shape)}, got {shape_str(mask)}"
        )
    if broadcast_to is not None:
        try:
            fits = torch.broadcast_shapes(mask.shape, tuple(broadcast_to)) == tuple(broadcast_to)
        except RuntimeError:
            fits = False
        if not fits:
            target = f"{layout} = " if layout.startswith("(") else f"{layout} " if layout else ""
            raise ValueError(
                f"{name} of shape {shape_str(mask)} does not broadcast to "
                f"{target}{tuple(broadcast_to)}"
            )


def check_odd_int(name: str, value: object) -> int:
    """Return ``value`` if it is a positive odd ``int`` (a kernel with a centre); else raise."""
    if check_positive_int(name, value) % 2 == 0:
        raise ValueError(f"{name} must be a positive odd integer, got {value!r}")
    return value


def check_xy(x: object, y: object, x_name: str, y_name: str) -> None:
    """Inputs ``(N, ...)`` floating point and int64 labels ``(N,)``."""
    check_tensor(x_name, x, "(N, *rest)")
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.ndim != 1:
        got = f"{y.dtype} of shape {shape_str(y)}" if isinstance(y, torch.Tensor) else type(y)
        raise ValueError(f"{y_name} must be a 1-d int64 tensor of labels (N,), got {got}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{x_name} {shape_str(x)} and {y_name} {shape_str(y)} must hold as many inputs as "
            "labels (N)"
        )


def check_pair(name: str, pair: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: a pair of inputs and labels."""
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"{name} must be a pair (x, y) of inputs and labels, got {pair!r:.60}")
    check_xy(pair[0], pair[1], f"{name}[0]", f"{name}[1]")
    return pair[0], pair[1]


def check_seeds(name: str, seeds: object) -> tuple[int, ...]:
    """A non-empty sequence of integer seeds ≥ 0."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds:
        raise ValueError(f"{name} must be a non-empty sequence of integers ≥ 0, got {seeds!r}")
    return tuple(check_int(f"{name}[{i}]", s, 0) for i, s in enumerate(seeds))


def check_instance(
    name: str, value: object, cls: type, optional: bool = False, what: str = ""
) -> None:
    """Raise ``ValueError`` unless ``value`` is a ``cls`` (or ``None``, if ``optional``); ``what``
    names the class in the message (default: ``cls.__name__``)."""
    if optional and value is None:
        return
    if not isinstance(value, cls):
        none, got = " or None" if optional else "", type(value).__name__
        raise ValueError(f"{name} must be a {what or cls.__name__}{none}, got {got}")


def check_file(name: str, path: object, what: str = "file") -> Path:
    """``path`` (a ``str`` or a :class:`~pathlib.Path`) of an existing file, as a ``Path``;
    ``what`` says what the file holds."""
    if isinstance(path, bool) or not isinstance(path, (str, Path)):
        raise ValueError(f"{name} must be a str or a Path of a {what}, got {type(path).__name__}")
    if not Path(path).is_file():
        raise ValueError(f"{name} must name an existing {what}, got {str(path)!r}: no such file")
    return Path(path)


def check_callable(name: str, value: object, optional: bool = False, what: str = "") -> None:
    """Raise ``ValueError`` unless ``value`` is callable (or ``None``, if ``optional``); ``what``
    says what it is called with (``"(logits, labels) → loss"``)."""
    if optional and value is None:
        return
    if not callable(value):
        none = "None or " if optional else ""
        takes = f" {what}" if what else ""
        raise ValueError(f"{name} must be {none}a callable{takes}, got {type(value).__name__}")


def check_labels(name: str, labels: object, n: int | None = None) -> torch.Tensor:
    """An integer tensor ``(N,)`` (``N = n`` if given)."""
    ok = isinstance(labels, torch.Tensor) and labels.ndim == 1
    ok = ok and not labels.is_floating_point() and not labels.is_complex()
    ok = ok and labels.dtype != torch.bool and (n is None or len(labels) == n)
    if not ok:
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        dtype = f" {labels.dtype}" if isinstance(labels, torch.Tensor) else ""
        size = f" with N = {n}" if n is not None else ""
        raise ValueError(f"{name} must be an integer tensor (N,){size}, got {got}{dtype}")
    return labels


def import_extra(module: str, extra: str) -> types.ModuleType:
    """Import ``module``, part of the package's ``extra``; say how to install it if missing."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{module} is missing: it comes with the '{extra}' extra of the book's package: "
            f'pip install ".[{extra}]" in a clone (or make setup there), or pip install '
            f'"visual-attention[{extra}] @ git+https://github.com/attention-in-vision/attention-in-vision"'
        ) from error
