"""Tests of visual_attention._checks: the one set of input checks every public function uses."""

from __future__ import annotations

import re

import pytest
import torch

from visual_attention._checks import (
    check_bool_mask,
    check_choice,
    check_int_or_none,
    check_odd_int,
    check_positive_int,
    check_positive_number,
    check_tensor,
)


def test_check_tensor_returns_the_shape_and_names_what_came():
    assert check_tensor("x", torch.zeros(2, 3, 4, 5), "(B, C, H, W)", C=3) == (2, 3, 4, 5)
    assert check_tensor("h", torch.zeros(2, 7, 5, 8), "(*B, T, C)", C=8) == (2, 7, 5, 8)
    assert check_tensor("h", torch.zeros(5, 8), "(*B, T, C)", T=5) == (5, 8)
    cases = [
        ([1, 2], "x must be a torch.Tensor, got list"),
        (torch.zeros(2, 3, dtype=torch.long), "x must be a floating-point tensor, got dtype torch.int64"),
        (torch.zeros(2, 3), "x must be 4-d (B, C, H, W), got shape (2, 3)"),
        (torch.zeros(2, 4, 1, 1), "x must be (B, C, H, W) with C = 3, got shape (2, 4, 1, 1)"),
    ]
    for value, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            check_tensor("x", value, "(B, C, H, W)", C=3)
    with pytest.raises(ValueError, match=re.escape("h must be at least 2-d (*B, T, C), got shape (8,)")):
        check_tensor("h", torch.zeros(8), "(*B, T, C)")


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "3", None])
def test_positive_int_rejects_bools_floats_and_non_positive(bad):
    with pytest.raises(ValueError, match=re.escape(f"n must be a positive integer, got {bad!r}")):
        check_positive_int("n", bad)


def test_int_helpers():
    assert check_positive_int("n", 3) == 3
    assert check_int_or_none("n", None) is None and check_int_or_none("n", 4) == 4
    assert check_odd_int("k", 7) == 7
    for bad in (4, 0, True, 3.0):
        with pytest.raises(ValueError, match="k must be a positive"):
            check_odd_int("k", bad)


def test_number_and_choice():
    assert check_positive_number("t", 2) == 2.0
    for bad in (0, -1.0, float("inf"), float("nan"), True, "1"):
        with pytest.raises(ValueError, match="t must be a positive finite number"):
            check_positive_number("t", bad)
    assert check_choice("mode", "a", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=re.escape("mode must be one of 'a', 'b', got 'c'")):
        check_choice("mode", "c", ("a", "b"))


def test_bool_mask():
    check_bool_mask("mask", torch.ones(2, 3, dtype=torch.bool), shape=(2, 3), layout="(B, N)")
    check_bool_mask("mask", torch.ones(1, 3, dtype=torch.bool), broadcast_to=(2, 3), layout="(B, N)")
    with pytest.raises(ValueError, match=re.escape("mask must be a boolean tensor (B, N) (True = may attend), got torch.float32")):
        check_bool_mask("mask", torch.ones(2, 3), layout="(B, N)")
    with pytest.raises(ValueError, match=re.escape("mask must have shape (B, N) = (2, 3), got (3, 2)")):
        check_bool_mask("mask", torch.ones(3, 2, dtype=torch.bool), shape=(2, 3), layout="(B, N)")
    with pytest.raises(ValueError, match=re.escape("mask of shape (2, 2, 3) does not broadcast to (B, N) = (2, 3)")):
        check_bool_mask("mask", torch.ones(2, 2, 3, dtype=torch.bool), broadcast_to=(2, 3), layout="(B, N)")


def test_generic_checks_refuse_bools_nan_and_wrong_types():
    from visual_attention._checks import (
        check_bool,
        check_cell,
        check_int,
        check_int_sequence,
        check_module,
        check_number,
        check_size2,
        check_str,
    )

    assert check_int("seed", 0, minimum=0) == 0 and check_int("dim", -1) == -1
    for bad in (True, 1.5, "1", None):
        with pytest.raises(ValueError, match="seed must be an integer"):
            check_int("seed", bad)
    with pytest.raises(ValueError, match=re.escape("seed must be an integer ≥ 0, got -1")):
        check_int("seed", -1, minimum=0)
    assert check_bool("causal", False) is False
    for bad in ("no", 1, None):
        with pytest.raises(ValueError, match="causal must be True or False"):
            check_bool("causal", bad)
    assert check_number("p", 0.0, 0.0, 1.0, high_open=True) == 0.0
    for bad in (1.0, -0.1, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match=re.escape("p must be a finite number in [0, 1)")):
            check_number("p", bad, 0.0, 1.0, high_open=True)
    with pytest.raises(ValueError, match=re.escape("x must be a finite number in (-∞, ∞)")):
        check_number("x", float("inf"))
    assert check_size2("grid", (2, 3)) == (2, 3) and check_size2("canvas", 4, square=True) == (4, 4)
    for bad in ((0, 3), (2,), (2.5, 3), (True, 3), "ab", 4):
        with pytest.raises(ValueError, match="grid must be a pair of positive integers"):
            check_size2("grid", bad)
    assert check_int_sequence("depths", [2, 2]) == (2, 2)
    for bad in ((), (0,), 2, (1.5,), "12"):
        with pytest.raises(ValueError, match="depths must be"):
            check_int_sequence("depths", bad)
    with pytest.raises(ValueError, match="layers must be 4 positive integers"):
        check_int_sequence("layers", (1, 1), length=4)
    assert check_cell("query", (1, 2), (2, 3)) == (1, 2)
    for bad in ((2, 0), (0, 3), (-1, 0), (0.5, 0), 3):
        with pytest.raises(ValueError, match=re.escape("query must be a (row, col) cell of the 2×3 grid")):
            check_cell("query", bad, (2, 3))
    assert check_str("title", "t") == "t"
    with pytest.raises(ValueError, match="title must be a string, got int 3"):
        check_str("title", 3)
    with pytest.raises(ValueError, match="model must be a torch.nn.Module, got int"):
        check_module("model", 3)


def test_only_batch_dimensions_may_be_empty():
    assert check_tensor("x", torch.zeros(0, 3, 4, 4), "(B, C, H, W)") == (0, 3, 4, 4)
    assert check_tensor("h", torch.zeros(0, 2, 5, 8), "(*B, T, C)") == (0, 2, 5, 8)
    for shape, dim in (((2, 0, 4, 4), "C"), ((2, 3, 0, 4), "H"), ((2, 3, 4, 0), "W")):
        with pytest.raises(ValueError, match=re.escape(f"with {dim} ≥ 1 (only the batch may be empty)")):
            check_tensor("x", torch.zeros(shape), "(B, C, H, W)")
    with pytest.raises(ValueError, match=re.escape("with T ≥ 1")):
        check_tensor("h", torch.zeros(2, 0, 8), "(*B, T, C)")
