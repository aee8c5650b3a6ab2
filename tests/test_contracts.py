"""The error contract of the whole public API (issue: every bad input gets a clear error).

For every public callable, ``_contracts.SPECS`` holds one valid call and the kind of each argument.
A bad argument must raise ``ValueError`` or ``TypeError`` *from the package's own code* (not from
torch or Python deep inside), with a message naming the argument. The bad values come from two
sources: the fixed list of each kind (``Kind.bad``: zero, negative, bool, NaN, a string, a list
instead of a tensor, an integer tensor …) and hypothesis, which draws tensors of a wrong rank or
dtype and numbers outside each kind's domain.

Run ``python tests/test_contracts.py`` for the probe's totals.
"""

from __future__ import annotations

import math
import pathlib
import traceback
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _contracts import COVERED_ELSEWHERE, SPECS, Spec, bad_arguments, public_callables
from _contracts_labs import LAB_COVERED_ELSEWHERE, LAB_MODULES, LAB_SPECS
from visual_attention.train import SeedRuns

PACKAGE = pathlib.Path(__import__("visual_attention").__file__).parent
ALL_SPECS = SPECS + LAB_SPECS  # the paper modules' and the chapter labs' specs
SPEC_BY_NAME = {s.name: s for s in ALL_SPECS}
#: the chapter labs (not the shared floor: labs.digits, labs.common)
LAB_MODULE_CHAPTERS = [m.split(".")[1] for m in LAB_MODULES if m not in ("labs.digits", "labs.common")]
assert len(SPEC_BY_NAME) == len(ALL_SPECS), "two specs share a name"


def classify(spec: Spec, name: str, bad: object, named: bool = True) -> tuple[str, str]:
    """``("clear" | "unclear" | "silent", detail)`` for a call of ``spec`` with ``name=bad``.

    Clear: a ``ValueError``/``TypeError`` raised by the package, whose message names the argument
    (with ``named=False``, any argument: a mismatch between two arguments may be reported on
    either)."""
    target, kwargs = spec.call()
    kwargs[name] = bad
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            target(**kwargs)
    except (ValueError, TypeError) as error:
        frame = traceback.extract_tb(error.__traceback__)[-1]
        ours = pathlib.Path(frame.filename).resolve().is_relative_to(PACKAGE.resolve())
        if ours and (name in str(error) or not named):
            return "clear", str(error)
        where = "package" if ours else frame.filename
        return "unclear", f"{type(error).__name__} from {where}: {error}"
    except Exception as error:  # any other exception is a contract failure
        return "unclear", f"{type(error).__name__}: {error}"
    return "silent", "accepted"


def _pairs() -> list[tuple[str, str, object]]:
    return [(s.name, n, b) for s in ALL_SPECS for n, b in bad_arguments(s)]


PAIRS = _pairs()


def _id(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)}{str(value.dtype)[6:]}"
    text = repr(value)
    return text if len(text) < 24 else type(value).__name__


def test_every_public_callable_is_under_contract():
    covered = {s.name.split(".")[0] for s in SPECS}
    missing = sorted(set(public_callables()) - covered - set(COVERED_ELSEWHERE))
    assert not missing, f"public callables without a spec in tests/_contracts.py: {missing}"
    covered = {s.name.removesuffix(".forward") for s in LAB_SPECS}
    lab_callables = public_callables(LAB_MODULES, qualified=True)
    # a lab that re-exports a function of the floor (spatial.encode, global_attention.standardize,
    # common.like_module …) is covered by that function's spec
    specified = {id(obj) for name, obj in lab_callables.items() if name in covered}
    covered |= {n for n, obj in lab_callables.items() if id(obj) in specified}
    missing = sorted(set(lab_callables) - covered - set(LAB_COVERED_ELSEWHERE))
    assert not missing, f"lab callables without a spec in tests/_contracts_labs.py: {missing}"


RUN_SEEDS = [SPEC_BY_NAME["fit_seeds"]] + [s for s in LAB_SPECS if s.name.endswith(".run_seeds")]


def test_every_lab_that_trains_over_seeds_has_run_seeds():
    chapters = {s.name.split(".")[1] for s in RUN_SEEDS[1:]}
    # global_attention trains readers scored on strings (exact and per digit): train_readers
    assert chapters >= set(LAB_MODULE_CHAPTERS) - {"memory", "efficient_attention", "global_attention"}


@pytest.mark.parametrize("spec", RUN_SEEDS, ids=lambda s: s.name)
def test_every_run_seeds_returns_one_named_result(spec):
    """One contract: fit_seeds and every lab's run_seeds return a SeedRuns (accuracies, models,
    histories), one entry per seed."""
    target, kwargs = spec.call()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = target(**kwargs)
    assert type(runs) is SeedRuns, f"{spec.name} returned {type(runs).__name__}"
    n = len(kwargs["seeds"])
    assert len(runs.accuracies) == len(runs.models) == len(runs.histories) == n
    assert [h.final_test_accuracy for h in runs.histories] == runs.accuracies
    assert all(isinstance(m, torch.nn.Module) and not m.training for m in runs.models)


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.name)
def test_the_valid_call_works(spec):
    target, kwargs = spec.call()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        target(**kwargs)


@pytest.mark.parametrize(
    ("spec_name", "argument", "bad"), PAIRS, ids=[f"{s}-{n}-{_id(b)}" for s, n, b in PAIRS]
)
def test_a_bad_argument_gets_a_clear_error(spec_name, argument, bad):
    verdict, detail = classify(SPEC_BY_NAME[spec_name], argument, bad)
    assert verdict == "clear", f"{spec_name}({argument}={_id(bad)}): {verdict}: {detail}"


def _tensor_arguments() -> list[tuple[str, str, torch.Tensor]]:
    out = []
    for spec in ALL_SPECS:
        _, kwargs = spec.call()
        for name, value in kwargs.items():
            if isinstance(value, torch.Tensor) and name not in spec.kinds:
                out.append((spec.name, name, value))
    return out


TENSOR_ARGUMENTS = _tensor_arguments()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_tensors_of_a_wrong_dtype_get_a_clear_error(data):
    spec_name, name, value = data.draw(st.sampled_from(TENSOR_ARGUMENTS), label="argument")
    if value.dtype == torch.bool:
        dtypes = [torch.float32, torch.float16, torch.int64, torch.uint8]
    elif value.is_floating_point():
        dtypes = [torch.int64, torch.int32, torch.int8, torch.uint8, torch.bool, torch.complex64]
    else:
        dtypes = [torch.float32, torch.float64, torch.bool]
    bad = torch.zeros(value.shape, dtype=data.draw(st.sampled_from(dtypes), label="dtype"))
    verdict, detail = classify(SPEC_BY_NAME[spec_name], name, bad)
    assert verdict == "clear", f"{spec_name}({name}={_id(bad)}): {verdict}: {detail}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_tensors_of_any_shape_work_or_get_a_clear_error(data):
    """Any shape, empty sizes included: the call works or says clearly what is wrong."""
    spec_name, name, value = data.draw(st.sampled_from(TENSOR_ARGUMENTS), label="argument")
    rank = data.draw(st.integers(0, 5), label="rank")
    shape = data.draw(st.lists(st.integers(0, 3), min_size=rank, max_size=rank), label="shape")
    if value.is_floating_point():
        bad = torch.randn(shape, dtype=value.dtype)
    else:
        bad = torch.zeros(shape, dtype=value.dtype)
    verdict, detail = classify(SPEC_BY_NAME[spec_name], name, bad, named=False)
    assert verdict != "unclear", f"{spec_name}({name}={_id(bad)}): {detail}"


NUMBER_KINDS = {
    "positive int": st.one_of(st.integers(max_value=0), st.floats(allow_nan=True), st.booleans()),
    "positive number": st.one_of(
        st.floats(max_value=0.0), st.just(math.inf), st.just(math.nan), st.booleans()
    ),
}


def _scalar_arguments() -> list[tuple[str, str, str]]:
    out = []
    for spec in ALL_SPECS:
        target, kwargs = spec.call()
        for name, value in kwargs.items():
            if name in spec.skip or isinstance(value, torch.Tensor):
                continue
            kind = spec.kinds.get(name)
            if kind is None:
                import inspect

                from _contracts import _kind_from_annotation

                param = inspect.signature(target).parameters.get(name)
                kind = _kind_from_annotation(param.annotation) if param else None
            if kind is not None and kind.name in NUMBER_KINDS:
                out.append((spec.name, name, kind.name))
    return out


SCALAR_ARGUMENTS = _scalar_arguments()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_numbers_outside_their_domain_get_a_clear_error(data):
    spec_name, name, kind = data.draw(st.sampled_from(SCALAR_ARGUMENTS), label="argument")
    bad = data.draw(NUMBER_KINDS[kind], label="value")
    if kind == "positive int" and isinstance(bad, float) and bad.is_integer() and bad >= 1:
        bad = bad + 0.5 if math.isfinite(bad + 0.5) and bad + 0.5 != bad else math.nan
    verdict, detail = classify(SPEC_BY_NAME[spec_name], name, bad)
    assert verdict == "clear", f"{spec_name}({name}={bad!r}): {verdict}: {detail}"


def main(only: str = "") -> None:
    """Print the probe's totals and every failure (of the specs whose name contains ``only``)."""
    counts = {"clear": 0, "unclear": 0, "silent": 0}
    for spec_name, name, bad in PAIRS:
        if only not in spec_name:
            continue
        verdict, detail = classify(SPEC_BY_NAME[spec_name], name, bad)
        counts[verdict] += 1
        if verdict != "clear":
            print(f"{verdict:8} {spec_name}({name}={_id(bad)}): {detail[:160]}")
    total = sum(counts.values())
    print(f"bad inputs: {total} tried, " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    print(f"clear: {counts['clear'] / total:.1%}")


if __name__ == "__main__":
    import sys

    main(*sys.argv[1:])
