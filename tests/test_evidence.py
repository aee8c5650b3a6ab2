"""Tests of visual_attention.views.evidence: the table, the assertion and the record of an experiment."""

from __future__ import annotations

import math

import pytest

from visual_attention.views.evidence import EVIDENCE_MIME, Evidence, report_evidence

ATT = ("attention pooling", [0.88, 0.87, 0.89])
CTRL = ("mean pooling", [0.53, 0.49, 0.57])


def test_a_clear_difference_is_reported_and_recorded():
    ev = report_evidence("spatial", "Attention pooling beats GAP.", "test accuracy", ATT, CTRL, display=False)
    assert math.isclose(ev.difference, 0.88 - 0.53, abs_tol=1e-12)
    se = math.sqrt(0.01**2 / 3 + 0.04**2 / 3)  # sample sds 0.01 and 0.04
    assert math.isclose(ev.standard_error, se, rel_tol=1e-9)
    assert math.isclose(ev.standard_errors, (0.88 - 0.53) / se, rel_tol=1e-9)  # Welch's t
    record = ev.record()
    assert record["attention"] == {"name": "attention pooling", "values": [0.88, 0.87, 0.89], "params": None}
    assert record["controls"] == [{"name": "mean pooling", "values": [0.53, 0.49, 0.57], "params": None}]
    assert record["chance"] is None and record["interval"] is None and record["strongest_control"] == "mean pooling"
    assert 0 < record["p_value"] < 0.01
    bundle = ev._repr_mimebundle_()
    assert bundle[EVIDENCE_MIME] == record
    assert "0.880 ± 0.010" in bundle["text/html"] and "0.530 ± 0.040" in bundle["text/plain"]


def test_the_assertion_is_against_the_strongest_of_several_controls_with_their_parameters():
    controls = [("mean pooling", [0.10, 0.11, 0.09], 650), ("max pooling", [0.80, 0.81, 0.79], 650),
                ("MLP", [0.70, 0.72, 0.71], 18_794)]
    ev = report_evidence("c", "claim", "test accuracy", ("attention", [0.90, 0.91, 0.89], 4_810),
                         controls=controls, chance=0.1, display=False)
    assert ev.control[0] == "max pooling" and math.isclose(ev.difference, 0.10, abs_tol=1e-9)
    assert math.isclose(ev.share_of_the_way, (0.80 - 0.1) / (0.90 - 0.1)) and ev.fair_control
    text = ev._repr_mimebundle_()["text/plain"]
    assert "4,810 params" in text and "18,794 params" in text and "strongest control (max pooling)" in text
    assert [c["params"] for c in ev.record()["controls"]] == [650, 650, 18_794]
    with pytest.raises(AssertionError, match="strongest control"):  # only the weak one is beaten
        report_evidence("c", "claim", "test accuracy", ("attention", [0.82, 0.80, 0.81]),
                        controls=controls, display=False)


def test_a_control_that_fails_by_construction_is_named_and_can_fail_the_notebook():
    weak = [("mean pooling", [0.10, 0.11, 0.12], 650)]
    ev = report_evidence("c", "claim", "test accuracy", ATT, controls=weak, chance=0.1, display=False)
    assert ev.fair_control is False and ev.record()["fair_control"] is False
    with pytest.raises(AssertionError, match="fails by construction"):
        report_evidence("c", "claim", "test accuracy", ATT, controls=weak, chance=0.1,
                        require_fair_control=True, display=False)
    with pytest.raises(ValueError, match="require_fair_control needs chance"):
        report_evidence("c", "claim", "m", ATT, controls=weak, require_fair_control=True, display=False)


def test_a_paired_bootstrap_over_test_examples_gives_the_interval():
    import numpy as np

    rng = np.random.default_rng(1)
    a = (rng.random(2000) < 0.9).astype(float)  # per-example correctness, about 0.9 and 0.6
    c = (rng.random(2000) < 0.6).astype(float)
    ev = report_evidence("c", "claim", "test accuracy", ATT, CTRL, display=False,
                         examples={"attention pooling": a, "mean pooling": c})
    low, high = ev.interval
    assert low < a.mean() - c.mean() < high and 0 < high - low < 0.1
    assert ev.interval == report_evidence("c", "claim", "test accuracy", ATT, CTRL, display=False,
                                          examples={"attention pooling": a, "mean pooling": c}).interval
    assert "95 % bootstrap interval" in ev.summary() and ev.record()["interval"] == [low, high]
    for bad in ({"attention pooling": a}, {"attention pooling": a, "mean pooling": c[:10]}, [a, c]):
        with pytest.raises(ValueError, match="examples"):
            report_evidence("c", "claim", "test accuracy", ATT, CTRL, display=False, examples=bad)


def test_a_difference_within_the_noise_fails_the_notebook():
    with pytest.raises(AssertionError, match="not shown: test accuracy"):
        report_evidence("c", "claim", "test accuracy", ("a", [0.50, 0.60, 0.55]), ("b", [0.52, 0.58, 0.50]),
                        display=False)
    with pytest.raises(AssertionError, match="not shown"):  # the wrong direction
        report_evidence("c", "claim", "test accuracy", CTRL, ATT, display=False)


def test_a_reported_tie_or_loss_asserts_the_floors_not_the_difference():
    loss = report_evidence("c", "a tie", "test accuracy", CTRL, controls=[ATT], chance=0.1,
                           floor=0.5, require_fair_control=True, expect_difference=False, display=False)
    assert loss.standard_errors < 0 and loss.fair_control
    with pytest.raises(AssertionError, match="does not reach 0.6"):  # the floor still holds
        report_evidence("c", "a tie", "test accuracy", CTRL, controls=[ATT], floor=0.6,
                        expect_difference=False, display=False)
    with pytest.raises(ValueError, match="expect_difference must be"):
        report_evidence("c", "a tie", "test accuracy", ATT, CTRL, expect_difference=1, display=False)


def test_lower_is_better_and_the_floor():
    ev = report_evidence("c", "claim", "error", ("a", [0.1, 0.12, 0.11]), ("b", [0.5, 0.45, 0.55]),
                         higher_is_better=False, floor=0.2, display=False)
    assert ev.difference > 0 and ev.standard_errors > 3
    with pytest.raises(AssertionError, match="does not reach 0.95"):
        report_evidence("c", "claim", "test accuracy", ATT, CTRL, floor=0.95, display=False)


def test_no_spread_and_validation():
    ev = Evidence("c", "claim", "m", True, ("a", (1.0, 1.0, 1.0), None), (("b", (0.0, 0.0, 0.0), None),))
    assert ev.standard_errors == math.inf and ev.p_value is None
    for bad in (("a", [0.9, 0.8]), ("a", [0.9, float("nan"), 0.8]), [0.9, 0.8, 0.7], ("a",)):
        with pytest.raises(ValueError, match="attention must be \\(name, values\\)"):
            report_evidence("c", "claim", "m", bad, CTRL, display=False)
    with pytest.raises(ValueError, match="parameters must be a non-negative int"):
        report_evidence("c", "claim", "m", ("a", [0.9, 0.8, 0.7], -1), CTRL, display=False)
    with pytest.raises(ValueError, match="control or controls"):
        report_evidence("c", "claim", "m", ATT, CTRL, controls=[CTRL], display=False)
    with pytest.raises(ValueError, match="controls must be a non-empty list"):
        report_evidence("c", "claim", "m", ATT, controls=[], display=False)


def test_nbval_does_not_compare_the_record():
    import conftest

    assert EVIDENCE_MIME in conftest.EXTRA_SKIPPED


def test_quote_publishes_the_texts_the_prose_quotes_as_one_line_and_a_record():
    from visual_attention.views.evidence import QUOTE_MIME, Quotes, quote

    record = quote(display=False, global_ms="59.2 ms", slope="2.5")
    assert isinstance(record, Quotes) and dict(record) == {"global_ms": "59.2 ms", "slope": "2.5"}
    bundle = record._repr_mimebundle_()
    assert bundle[QUOTE_MIME] == {"global_ms": "59.2 ms", "slope": "2.5"}
    assert bundle["text/plain"] == "quoted in the text: global_ms = 59.2 ms; slope = 2.5"
    for bad in ({}, {"a": ""}, {"a": "two\nlines"}, {"a": "<!-- /quote -->"}, {"a": 0.5}):
        with pytest.raises(ValueError, match="a|texts"):
            quote(display=False, **bad)


def test_the_verdict_says_tie_or_which_side_is_ahead_and_the_summary_keeps_the_sign():
    from visual_attention.views.evidence import report_evidence

    def record(attention, control):
        return report_evidence(
            "toy", "claim", "accuracy", attention=("attn", attention, 10), controls=[("ctl", control, 10)],
            display=False, expect_difference=False,
        )

    ahead = record((0.9, 0.91, 0.92), (0.5, 0.52, 0.51))
    tie = record((0.90, 0.92, 0.91), (0.91, 0.90, 0.92))
    behind = record((0.5, 0.52, 0.51), (0.9, 0.91, 0.92))
    assert (ahead.verdict, tie.verdict, behind.verdict) == ("attention ahead", "tie", "control ahead")
    assert ahead.record()["verdict"] == "attention ahead"
    assert "difference 0.400 against attn" in behind.summary() and "+-" not in behind.summary()
    assert "difference 0.400 in favour of attn" in ahead.summary()
