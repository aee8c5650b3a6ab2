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
    assert ev.standard_errors > 10
    assert ev.record() == {
        "chapter": "spatial", "claim": "Attention pooling beats GAP.", "metric": "test accuracy",
        "higher_is_better": True,
        "attention": {"name": "attention pooling", "values": [0.88, 0.87, 0.89]},
        "control": {"name": "mean pooling", "values": [0.53, 0.49, 0.57]},
    }
    bundle = ev._repr_mimebundle_()
    assert bundle[EVIDENCE_MIME] == ev.record()
    assert "0.880 ± 0.010" in bundle["text/html"] and "0.530 ± 0.040" in bundle["text/plain"]


def test_a_difference_within_the_noise_fails_the_notebook():
    with pytest.raises(AssertionError, match="not shown: test accuracy"):
        report_evidence("c", "claim", "test accuracy", ("a", [0.50, 0.60, 0.55]), ("b", [0.52, 0.58, 0.50]),
                        display=False)
    with pytest.raises(AssertionError, match="not shown"):  # the wrong direction
        report_evidence("c", "claim", "test accuracy", CTRL, ATT, display=False)


def test_lower_is_better_and_the_floor():
    ev = report_evidence("c", "claim", "error", ("a", [0.1, 0.12, 0.11]), ("b", [0.5, 0.45, 0.55]),
                         higher_is_better=False, floor=0.2, display=False)
    assert ev.difference > 0
    with pytest.raises(AssertionError, match="does not reach 0.95"):
        report_evidence("c", "claim", "test accuracy", ATT, CTRL, floor=0.95, display=False)


def test_no_spread_and_validation():
    ev = Evidence("c", "claim", "m", True, ("a", (1.0, 1.0, 1.0)), ("b", (0.0, 0.0, 0.0)))
    assert ev.standard_errors == math.inf
    for bad in (("a", [0.9, 0.8]), ("a", [0.9, float("nan"), 0.8]), [0.9, 0.8, 0.7], ("a",)):
        with pytest.raises(ValueError, match="attention must be \\(name, values\\) with at least 3 finite values"):
            report_evidence("c", "claim", "m", bad, CTRL, display=False)


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
