"""Exercises with automatic feedback: a student's function is run against the tested reference.

Each chapter registers its exercises in ``visual_attention.exercises.<chapter>`` as a dict
``EXERCISES = {name: Exercise(...)}``. In a notebook a student writes a function and calls::

    from visual_attention.exercises import check
    check("foundations.attention_entropy", my_entropy)

:func:`check` runs the function on every case of the exercise — ordinary inputs and edge cases
(large logits, fully masked rows, a batch of one…) — and compares with the reference. The first
difference raises :class:`ExerciseError` with a message that says precisely what is wrong
(``weights of shape (2, 16) do not sum to 1 along dim -1; row 0 sums to 0.73``); success prints
one line.

Notebook cells follow nbgrader's format (``### BEGIN SOLUTION`` / ``### END SOLUTION`` in the
solution cell, ``nbgrader`` cell metadata with ``grade_id`` and ``points`` on the check cell), so
an instructor's nbgrader accepts the chapters as they are.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "Case",
    "Exercise",
    "ExerciseError",
    "check",
    "compare",
    "get_exercise",
    "judge",
    "list_exercises",
    "package_names_used",
    "reference_names",
]

#: chapters with exercises: every module of this package (``foundations``, ``spatial``…)
CHAPTERS = tuple(
    sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
)


class ExerciseError(AssertionError):
    """A student's answer differs from the reference; the message says how."""


@dataclass
class Case:
    """One input to an exercise: positional and keyword arguments and a short description."""

    label: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


@dataclass
class Exercise:
    """An exercise: what to write, the reference answer and the cases it is checked on.

    ``weights`` names outputs that are attention weights, as ``{output index: dims}``: they must be
    non-negative and sum to 1 over ``dims`` (rows that are fully masked may sum to 0).
    ``make_cases`` builds the inputs (called at each check, so students cannot edit them in place).
    """

    name: str
    description: str
    reference: Callable[..., Any]
    make_cases: Callable[[], Sequence[Case]]
    weights: dict[int, int | tuple[int, ...]] = field(default_factory=dict)
    atol: float = 1e-5
    rtol: float = 1e-4
    points: int = 1
    #: package functions an answer may call although the reference uses them too (qualified
    #: names, e.g. ``"visual_attention.core.masked_softmax"``): building blocks, not the answer.
    allowed: tuple[str, ...] = ()


def _as_tuple(x: Any) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape))


def compare(
    got: Any, want: Any, what: str, atol: float = 1e-5, rtol: float = 1e-4, values: bool = True
) -> None:
    """Raise :class:`ExerciseError` unless ``got`` matches ``want`` (tensors, numbers, tuples of
    them).

    With ``values=False`` only the structure is compared: types, lengths, shapes and dtypes.
    """
    if isinstance(want, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            raise ExerciseError(
                f"{what} should be a tensor of shape {_shape(want)}, got {type(got).__name__}"
            )
        if got.shape != want.shape:
            raise ExerciseError(f"{what} should have shape {_shape(want)}, got {_shape(got)}")
        if got.dtype != want.dtype:
            raise ExerciseError(f"{what} should have dtype {want.dtype}, got {got.dtype}")
        if not values:
            return
        if want.dtype == torch.bool or not want.is_floating_point():
            bad = (got != want).nonzero()
            if len(bad):
                idx = tuple(bad[0].tolist())
                raise ExerciseError(
                    f"{what} differs at index {idx}: got {got[idx].item()}, expected "
                    f"{want[idx].item()}"
                )
            return
        got_d, want_d = got.detach().double(), want.detach().double()
        nonfinite = ~torch.isfinite(got_d) & torch.isfinite(want_d)
        if nonfinite.any():
            idx = tuple(nonfinite.nonzero()[0].tolist())
            raise ExerciseError(
                f"{what} has a non-finite value {got_d[idx].item()} at index {idx}; expected "
                f"{want_d[idx].item():.6g}"
            )
        err = (got_d - want_d).abs() - (atol + rtol * want_d.abs())
        err = torch.where(
            torch.isnan(want_d) & torch.isnan(got_d), torch.full_like(err, -1.0), err
        )
        if (err > 0).any():
            idx = tuple(int(i) for i in torch.unravel_index(err.argmax(), err.shape))
            n_bad = int((err > 0).sum())
            raise ExerciseError(
                f"{what} differs from the reference in {n_bad} of {want.numel()} entries; the "
                "worst is at index "
                f"{idx}: got {got_d[idx].item():.6g}, expected {want_d[idx].item():.6g}"
            )
        return
    if isinstance(want, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            n = len(got) if isinstance(got, (tuple, list)) else 1
            raise ExerciseError(f"{what} should be a tuple of {len(want)} values, got {n}")
        for i, (g, w) in enumerate(zip(got, want)):
            compare(g, w, f"{what}[{i}]", atol, rtol, values)
        return
    if not values:
        return
    if isinstance(want, (int, float)):
        if not isinstance(got, (int, float, torch.Tensor)) or (
            isinstance(got, torch.Tensor) and got.numel() != 1
        ):
            raise ExerciseError(f"{what} should be a number, got {type(got).__name__}")
        g = float(got)
        if not math.isclose(g, float(want), rel_tol=rtol, abs_tol=atol):
            raise ExerciseError(f"{what} is {g:.6g}, expected {float(want):.6g}")
        return
    if got != want:
        raise ExerciseError(f"{what} is {got!r}, expected {want!r}")


def _check_weights(w: Any, dims: int | tuple[int, ...], what: str) -> None:
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise ExerciseError(f"{what} should be a floating-point tensor of attention weights")
    if (w < 0).any():
        idx = tuple((w < 0).nonzero()[0].tolist())
        raise ExerciseError(f"{what} has a negative weight {w[idx].item():.4g} at index {idx}")
    dims_t = (dims,) if isinstance(dims, int) else tuple(dims)
    sums = w.detach().double().sum(dim=dims_t)
    bad = ((sums - 1).abs() > 1e-4) & (sums.abs() > 1e-6)
    if bad.any():
        idx = tuple(bad.nonzero()[0].tolist())
        where = f"row {idx[0]}" if len(idx) == 1 else f"row {idx}"
        dim_txt = f"dim {dims_t[0]}" if len(dims_t) == 1 else f"dims {dims_t}"
        raise ExerciseError(
            f"{what}: weights of shape {_shape(w)} do not sum to 1 along {dim_txt}; {where} sums "
            f"to {sums[idx].item():.4g}"
        )


def judge(ex: Exercise, case: Case, got: Any, want: Any, name: str | None = None) -> None:
    """Compare one answer ``got`` with the reference output ``want`` on ``case``; raise on
    difference.

    Types and shapes first, then the attention-weight properties, then the values, so that the
    first message is the most useful one. Used by :func:`check` in a notebook and by the grader.
    """
    what = f"{name or ex.name}, case '{case.label}': the output"
    compare(got, want, what, values=False)
    for index, dims in ex.weights.items():
        _check_weights(
            _as_tuple(got)[index] if isinstance(want, tuple) else got, dims, f"{what} {index}"
        )
    compare(got, want, what, ex.atol, ex.rtol)


def package_names_used(fn: Any, package: str = "visual_attention") -> set[str]:
    """The package's functions and classes that ``fn``'s code refers to, as qualified names.

    Static: the names in ``fn``'s code (nested functions included) are looked up in its globals
    and closure; modules of the package are followed through the attribute names the code uses
    (``va.core.masked_softmax``), and functions that are not the package's (the notebook's own
    helpers, the exercises' reference helpers) are followed into their code. Self-contained, so
    the grader can send its source to a student's kernel.
    """
    found: set[str] = set()
    seen: set[int] = set()
    todo = [fn]
    while todo:
        f = todo.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        code = getattr(f, "__code__", None)
        if code is None:
            continue
        names, codes = set(), [code]
        while codes:
            c = codes.pop()
            names |= set(c.co_names) | set(c.co_freevars)
            codes += [k for k in c.co_consts if isinstance(k, types.CodeType)]
        scope = dict(getattr(f, "__globals__", {}))
        for name, cell in zip(code.co_freevars, getattr(f, "__closure__", None) or ()):
            try:
                scope[name] = cell.cell_contents
            except ValueError:  # an empty cell
                pass
        objects = [scope[n] for n in names if n in scope]
        while objects:
            o = objects.pop()
            if id(o) in seen:
                continue
            seen.add(id(o))
            if isinstance(o, types.ModuleType):
                if o.__name__.split(".")[0] == package:
                    objects += [getattr(o, n) for n in names if hasattr(o, n)]
                continue
            module = getattr(o, "__module__", None) or ""
            mine = module.split(".")[0] == package and not module.startswith(
                f"{package}.exercises"
            )
            if mine and callable(o):
                found.add(f"{module}.{getattr(o, '__qualname__', getattr(o, '__name__', '?'))}")
            elif isinstance(o, types.FunctionType):
                seen.discard(id(o))
                todo.append(o)
    return found


def reference_names(ex: Exercise) -> set[str]:
    """What an answer to ``ex`` must not call: the reference itself when it is the package's, else
    the package's public functions and classes the reference calls, less ``ex.allowed``."""
    ref = ex.reference
    module = getattr(ref, "__module__", "") or ""
    if module.startswith("visual_attention.") and not module.startswith(__name__):
        names = {f"{module}.{ref.__qualname__}"}
    else:
        names = package_names_used(ref)
    public = {n for n in names if not any(part.startswith("_") for part in n.split("."))}
    return public - set(ex.allowed)


def _calls_the_reference(name: str, answer: Callable[..., Any]) -> str | None:
    """Feedback if ``answer`` calls what it should implement, else ``None``."""
    used = package_names_used(answer) & reference_names(get_exercise(name))
    if not used:
        return None
    short = ", ".join(sorted(n.rsplit(".", 1)[-1] for n in used))
    return f"{name}: your function calls the package's own {short}; write it yourself"


def list_exercises() -> dict[str, Exercise]:
    """Every registered exercise, by name (``chapter.name``)."""
    found: dict[str, Exercise] = {}
    for chapter in CHAPTERS:
        module = importlib.import_module(f"{__name__}.{chapter}")
        for name, ex in module.EXERCISES.items():
            found[f"{chapter}.{name}"] = ex
    return found


def get_exercise(name: str) -> Exercise:
    """The exercise called ``chapter.name``."""
    chapter, _, short = name.partition(".")
    if chapter not in CHAPTERS or not short:
        raise ValueError(
            f"unknown exercise {name!r}; exercises are named 'chapter.name', chapters: {CHAPTERS}"
        )
    module = importlib.import_module(f"{__name__}.{chapter}")
    if short not in module.EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; {chapter} has {sorted(module.EXERCISES)}")
    return module.EXERCISES[short]


def check(name: str, answer: Callable[..., Any], quiet: bool = False) -> None:
    """Run ``answer`` on every case of exercise ``name`` and compare it with the reference.

    Raises :class:`ExerciseError` at the first difference (or error raised by ``answer``), with a
    message naming the case and what is wrong; otherwise prints one line.
    """
    ex = get_exercise(name)
    if not callable(answer):
        raise ExerciseError(f"{name}: expected a function, got {type(answer).__name__}")
    if (feedback := _calls_the_reference(name, answer)) is not None:
        raise ExerciseError(feedback)
    cases = ex.make_cases()
    for case in cases:
        want = ex.reference(*case.args, **case.kwargs)
        try:
            got = answer(*case.args, **case.kwargs)
        except NotImplementedError:
            raise ExerciseError(
                f"{name}: not answered yet (the function raises NotImplementedError)"
            ) from None
        # report the student's error as feedback, not as a crash of the checker
        except Exception as e:
            raise ExerciseError(
                f"{name}, case '{case.label}': your function raised {type(e).__name__}: {e}"
            ) from e
        judge(ex, case, got, want, name)
    if not quiet:
        print(f"✓ {name}: correct on all {len(cases)} cases")
