"""Tests of visual_attention.exercises: the checkers must accept right answers and say what is wrong."""

from __future__ import annotations

import pytest
import torch

from visual_attention.exercises import (
    ExerciseError,
    check,
    compare,
    get_exercise,
    judge,
    list_exercises,
    package_names_used,
    reference_names,
)


def good_softmax(s):
    e = (s - s.max(-1, keepdim=True).values).exp()
    return e / e.sum(-1, keepdim=True)


def good_masked(s, m):
    return torch.nan_to_num(s.masked_fill(~m, float("-inf")).softmax(-1))


def good_query(f, q):
    s = torch.einsum("bchw,bc->bhw", f, q)
    w = s.flatten(1).softmax(-1).view_as(s)
    return w, torch.einsum("bhw,bchw->bc", w, f)


def test_right_answers_pass(capsys):
    check("foundations.softmax", good_softmax)
    check("foundations.masked_softmax", good_masked)
    check("foundations.query_attention", good_query)
    assert capsys.readouterr().out.count("✓") == 3


@pytest.mark.parametrize(
    "name, answer, message",
    [
        ("foundations.softmax", lambda s: s.exp() / s.exp().sum(-1, keepdim=True), "non-finite value nan"),
        ("foundations.softmax", torch.sigmoid, r"do not sum to 1 along dim -1; row 0 sums to"),
        ("foundations.softmax", lambda s: good_softmax(s)[..., :-1], "should have shape"),
        ("foundations.softmax", lambda s: good_softmax(s.double()), "should have dtype torch.float32"),
        ("foundations.masked_softmax", lambda s, m: s.masked_fill(~m, float("-inf")).softmax(-1),
         "row 1 fully masked"),
        ("foundations.masked_softmax", lambda s, m: s.softmax(-1), "differs from the reference"),
        ("foundations.query_attention", lambda f, q: good_query(f, q)[0], "should be a tuple of 2 values"),
        ("foundations.softmax", lambda s: 1 / 0, "raised ZeroDivisionError"),
    ],
)
def test_wrong_answers_are_explained(name, answer, message):
    with pytest.raises(ExerciseError, match=message):
        check(name, answer)


def test_unanswered_exercise_says_so():
    def stub(s):
        raise NotImplementedError

    with pytest.raises(ExerciseError, match="not answered yet"):
        check("foundations.softmax", stub)


def test_registry():
    every = list_exercises()
    assert {"foundations.softmax", "foundations.masked_softmax", "foundations.query_attention"} <= set(every)
    for name, ex in every.items():
        cases = ex.make_cases()
        assert len(cases) >= 2, f"{name} has fewer than two cases"
        for case in cases:  # the reference passes its own check
            ex.reference(*case.args, **case.kwargs)
    with pytest.raises(ValueError, match="unknown exercise"):
        get_exercise("foundations.nope")
    with pytest.raises(ValueError, match="unknown exercise"):
        get_exercise("nochapter")


@pytest.mark.parametrize("name", sorted(list_exercises()))
def test_every_reference_passes_its_own_check(name):
    ex = get_exercise(name)
    for case in ex.make_cases():
        want = ex.reference(*case.args, **case.kwargs)
        judge(ex, case, ex.reference(*case.args, **case.kwargs), want, name)


@pytest.mark.parametrize("name", sorted(list_exercises()))
def test_an_answer_that_calls_the_reference_scores_nothing(name):
    ex = get_exercise(name)
    if not reference_names(ex):
        assert ex.reference.__module__.startswith("visual_attention.exercises")
        return  # the reference is written out in the exercise module: nothing to call
    namespace = {"reference": ex.reference}  # as a notebook would hold an imported function
    exec("def answer(*args, **kwargs):\n    return reference(*args, **kwargs)", namespace)
    with pytest.raises(ExerciseError, match="calls the package's own"):
        check(name, namespace["answer"])


def test_calls_to_the_reference_are_found_however_they_are_spelled():
    import visual_attention as va
    from visual_attention.core import masked_softmax as renamed

    def helper(s):
        return va.core.masked_softmax(s, dim=-1)

    def through_a_helper(s):
        return helper(s)

    def through_an_alias(s):
        return renamed(s, dim=-1)

    def make_closure():
        f = renamed

        def inner(s):
            return f(s, dim=-1)

        return inner

    def written_out(s):
        e = (s - s.max(dim=-1, keepdim=True).values).exp()
        return e / e.sum(dim=-1, keepdim=True)

    for answer in (helper, through_a_helper, through_an_alias, make_closure()):
        assert "visual_attention.core.masked_softmax" in package_names_used(answer), answer
        with pytest.raises(ExerciseError, match="calls the package's own masked_softmax"):
            check("foundations.softmax", answer)
    assert package_names_used(written_out) == set()
    check("foundations.softmax", written_out, quiet=True)
    # a building block the exercise allows is not the answer
    assert "visual_attention.core.masked_softmax" in get_exercise("temporal.causal_weights").allowed


def test_compare_messages():
    with pytest.raises(ExerciseError, match=r"worst is at index \(1,\): got 3, expected 2"):
        compare(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 2.0]), "x")
    with pytest.raises(ExerciseError, match="x is 2, expected 3"):
        compare(2.0, 3.0, "x")
    with pytest.raises(ExerciseError, match=r"differs at index \(0,\)"):
        compare(torch.tensor([True]), torch.tensor([False]), "m")
    compare((torch.ones(2), 1.0), (torch.ones(2), 1.0), "pair")
