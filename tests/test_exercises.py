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


def good_entropy(s):
    z = s - s.max(-1, keepdim=True).values
    p = z.softmax(-1)
    return torch.logsumexp(z, -1) - (p * z).sum(-1)


def naive_entropy(s):
    p = s.softmax(-1)
    return -(p * p.log()).sum(-1)


def good_window(s, r):
    i = torch.arange(s.shape[-1])
    keep = (i[:, None] - i[None, :]).abs() <= r
    return s.masked_fill(~keep, float("-inf")).softmax(-1)


def good_jacobian(s):
    p = s.softmax(-1)
    return torch.diag_embed(p) - p[..., :, None] * p[..., None, :]


def test_right_answers_pass(capsys):
    check("foundations.attention_entropy", good_entropy)
    check("foundations.attention_entropy", lambda s: -(s.softmax(-1) * s.log_softmax(-1)).sum(-1))
    check("foundations.window_weights", good_window)
    check("foundations.softmax_jacobian", good_jacobian)
    assert capsys.readouterr().out.count("✓") == 4


@pytest.mark.parametrize(
    "name, answer, message",
    [
        ("foundations.attention_entropy", naive_entropy, "large logits.*non-finite value nan"),
        ("foundations.attention_entropy",  # not shifted: float32 loses the digits of H next to 1e4
         lambda s: torch.logsumexp(s, -1) - (s.softmax(-1) * s).sum(-1), "large logits.*differs"),
        ("foundations.attention_entropy", lambda s: good_entropy(s)[..., None], "should have shape"),
        ("foundations.attention_entropy", lambda s: good_entropy(s.double()), "should have dtype torch.float32"),
        ("foundations.window_weights", lambda s, r: torch.sigmoid(s), r"do not sum to 1 along dim -1"),
        ("foundations.window_weights", lambda s, r: s.softmax(-1), "radius 1.*differs from the reference"),
        ("foundations.window_weights", lambda s, r: good_window(s, max(r, 1)), "radius 0"),
        ("foundations.softmax_jacobian", lambda s: torch.diag_embed(s.softmax(-1)),
         "random scores.*differs from the reference"),
        ("foundations.attention_entropy", lambda s: 1 / 0, "raised ZeroDivisionError"),
    ],
)
def test_wrong_answers_are_explained(name, answer, message):
    with pytest.raises(ExerciseError, match=message):
        check(name, answer)


def test_unanswered_exercise_says_so():
    def stub(s):
        raise NotImplementedError

    with pytest.raises(ExerciseError, match="not answered yet"):
        check("foundations.attention_entropy", stub)


def test_registry():
    every = list_exercises()
    assert {"foundations.attention_entropy", "foundations.softmax_jacobian",
            "foundations.window_weights"} <= set(every)
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

    def entropy(s, p):
        return torch.logsumexp(s, -1) - (p * s).sum(-1)

    def helper(s):
        return entropy(s, va.core.masked_softmax(s, dim=-1))

    def through_a_helper(s):
        return helper(s)

    def through_an_alias(s):
        return entropy(s, renamed(s, dim=-1))

    def make_closure():
        f = renamed

        def inner(s):
            return entropy(s, f(s, dim=-1))

        return inner

    def written_out(s):
        z = s - s.max(dim=-1, keepdim=True).values
        e = z.exp()
        return e.sum(-1).log() - (e / e.sum(dim=-1, keepdim=True) * z).sum(-1)

    for answer in (helper, through_a_helper, through_an_alias, make_closure()):
        assert "visual_attention.core.masked_softmax" in package_names_used(answer), answer
        with pytest.raises(ExerciseError, match="calls the package's own masked_softmax"):
            check("foundations.attention_entropy", answer)
    assert package_names_used(written_out) == set()
    check("foundations.attention_entropy", written_out, quiet=True)
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
