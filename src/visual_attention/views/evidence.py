"""One way for every chapter to report an experiment: a table, an assertion and a record.

A chapter's experiment compares an attention model with a control that differs only by the
mechanism, over several seeds. :func:`report_evidence` turns the per-seed results into

* a table (mean ± sd of each side, the difference of the means and how many standard errors it is),
* an assertion that the difference is at least ``min_standard_errors`` standard errors in the
  direction the chapter claims (and, optionally, that the attention model clears a floor such as
  "clearly above chance"), so a run that does not support the text fails the notebook,
* a machine-readable record, displayed as one output of MIME type :data:`EVIDENCE_MIME` beside the
  table (myst-nb leaves it off the page; nbval does not compare it), so tools can collect the
  book's evidence from the notebooks.

:func:`quote` names the measured numbers a chapter's prose quotes, as the prose writes them, in
one output of MIME type :data:`QUOTE_MIME`; ``scripts/sync_chapters.py`` copies each into the prose
between ``<!-- quote: name -->`` and ``<!-- /quote -->``, so the text cannot drift from the
outputs.

The standard error of the difference of two means is ``√(s_a²/n_a + s_c²/n_c)`` with the sample
standard deviations ``s`` (Welch's form: the two sides need not share a variance).
"""

from __future__ import annotations

import html
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .._checks import check_bool, check_number, check_str

__all__ = ["EVIDENCE_MIME", "QUOTE_MIME", "Evidence", "Quotes", "quote", "report_evidence"]

EVIDENCE_MIME = "application/vnd.visual-attention.evidence+json"
QUOTE_MIME = "application/vnd.visual-attention.quote+json"


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


@dataclass(frozen=True)
class Evidence:
    """Per-seed results of an attention model and its control, and what they show."""

    chapter: str
    claim: str
    metric: str
    higher_is_better: bool
    attention: tuple[str, tuple[float, ...]]
    control: tuple[str, tuple[float, ...]]

    @property
    def difference(self) -> float:
        """Mean of the attention model minus mean of the control, signed so that > 0 supports
        the claim (for a metric where lower is better, control minus attention)."""
        diff = _mean_sd(self.attention[1])[0] - _mean_sd(self.control[1])[0]
        return diff if self.higher_is_better else -diff

    @property
    def standard_error(self) -> float:
        """Standard error of the difference of the two means (Welch)."""
        (_, sa), (_, sc) = _mean_sd(self.attention[1]), _mean_sd(self.control[1])
        return math.sqrt(sa**2 / len(self.attention[1]) + sc**2 / len(self.control[1]))

    @property
    def standard_errors(self) -> float:
        """The difference in standard errors (``inf`` for a positive difference with no spread)."""
        se = self.standard_error
        if se == 0:
            return (
                math.inf if self.difference > 0 else (0.0 if self.difference == 0 else -math.inf)
            )
        return self.difference / se

    def record(self) -> dict:
        """The JSON record displayed under :data:`EVIDENCE_MIME`."""
        return {
            "chapter": self.chapter,
            "claim": self.claim,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "attention": {"name": self.attention[0], "values": list(self.attention[1])},
            "control": {"name": self.control[0], "values": list(self.control[1])},
        }

    def rows(self) -> list[tuple[str, str, str]]:
        """``(model, mean ± sd, per-seed values)`` for both sides."""
        out = []
        for name, values in (self.attention, self.control):
            mean, sd = _mean_sd(values)
            out.append((name, f"{mean:.3f} ± {sd:.3f}", ", ".join(f"{v:.3f}" for v in values)))
        return out

    def summary(self) -> str:
        n = len(self.attention[1])
        sign = "+" if self.higher_is_better else "−"
        return (
            f"{self.metric}: difference {sign}{self.difference:.3f} in favour of "
            f"{self.attention[0]} = {self.standard_errors:.1f} standard errors ({n} seeds)"
        )

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        width = max(len(r[0]) for r in self.rows())
        text = "\n".join(f"{a:<{width}}  {b}   [{c}]" for a, b, c in self.rows())
        cells = "".join(
            f"<tr><td>{html.escape(a)}</td><td>{b}</td><td>{html.escape(c)}</td></tr>"
            for a, b, c in self.rows()
        )
        table = (
            f"<table><thead><tr><th>model</th><th>{html.escape(self.metric)} (mean ± sd)</th>"
            f"<th>per seed</th></tr></thead><tbody>{cells}</tbody></table>"
            f"<p>{html.escape(self.summary())}</p>"
        )
        return {
            "text/plain": f"{text}\n{self.summary()}",
            "text/html": table,
            EVIDENCE_MIME: self.record(),
        }


def _check_side(name: str, side: object) -> tuple[str, tuple[float, ...]]:
    ok = isinstance(side, tuple) and len(side) == 2 and isinstance(side[0], str)
    ok = (
        ok
        and isinstance(side[1], (list, tuple))
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in side[1])
    )
    values = tuple(float(v) for v in side[1]) if ok else ()
    if not ok or len(values) < 3 or not all(math.isfinite(v) for v in values):
        raise ValueError(
            f"{name} must be (name, values) with at least 3 finite values (one per seed), "
            f"got {side!r}"
        )
    return side[0], values


def report_evidence(
    chapter: str,
    claim: str,
    metric: str,
    attention: tuple[str, Sequence[float]],
    control: tuple[str, Sequence[float]],
    higher_is_better: bool = True,
    min_standard_errors: float = 3.0,
    floor: float | None = None,
    display: bool = True,
) -> Evidence:
    """Show the table and the record of an experiment; assert that it supports the claim.

    Args:
        chapter: the notebook's name, e.g. ``"spatial"``.
        claim: one sentence the text makes and the numbers must support.
        metric: what the values measure, e.g. ``"test accuracy"``.
        attention, control: ``(model name, one value per seed)``, at least 3 seeds each.
        higher_is_better: the direction of the claim.
        min_standard_errors: the difference of the means must be at least this many standard
            errors in the claimed direction.
        floor: optional bound the attention model's mean must reach (above it if
            ``higher_is_better``, below it otherwise), e.g. "clearly above chance".
        display: show the table and the record (in a notebook).

    Returns:
        the :class:`Evidence`. Raises ``AssertionError`` when the run does not support the claim.
    """
    for name, value in (("chapter", chapter), ("claim", claim), ("metric", metric)):
        check_str(name, value)
    check_bool("higher_is_better", higher_is_better), check_bool("display", display)
    check_number("min_standard_errors", min_standard_errors, 0.0)
    if floor is not None:
        check_number("floor", floor)
    evidence = Evidence(
        chapter,
        claim,
        metric,
        higher_is_better,
        _check_side("attention", attention),
        _check_side("control", control),
    )
    if display:
        from IPython.display import display as show

        show(evidence)
    assert evidence.standard_errors >= min_standard_errors, (
        f"not shown: {evidence.summary()}; the claim needs >= {min_standard_errors}"
    )
    if floor is not None:
        mean = _mean_sd(evidence.attention[1])[0]
        reached = mean >= floor if higher_is_better else mean <= floor
        assert reached, f"{evidence.attention[0]}: {metric} {mean:.3f} does not reach {floor}"
    return evidence


class Quotes(Mapping):
    """Named texts the chapter's prose quotes (a read-only mapping of name → text), shown as one
    line of text and a :data:`QUOTE_MIME` record."""

    def __init__(self, texts: dict[str, str]) -> None:
        self._texts = dict(texts)

    def __getitem__(self, name: str) -> str:
        return self._texts[name]

    def __iter__(self):
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._texts)

    def __repr__(self) -> str:
        return "quoted in the text: " + "; ".join(f"{k} = {v}" for k, v in self._texts.items())

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {"text/plain": repr(self), QUOTE_MIME: dict(self._texts)}


def quote(display: bool = True, **texts: str) -> Quotes:
    """Publish the measured numbers the chapter's prose quotes, each as the prose shows it.

    ``quote(global_ms=f"{ms:.1f} ms")`` in a code cell, and
    ``<!-- quote: global_ms -->…<!-- /quote -->`` in a markdown cell: ``scripts/sync_chapters.py``
    writes the stored output's text between the two comments (every renderer hides them), and
    ``tests/test_book.py`` fails when they differ.

    Args:
        display: show the texts (one line) and their record, as a cell output.
        **texts: name → the text the prose shows (non-empty, one line), e.g. ``"59.2 ms"``.

    Returns:
        the :class:`Quotes` (a mapping of name → text).
    """
    check_bool("display", display)
    if not texts:
        raise ValueError("texts: expected at least one name=text, got none")
    for name, text in texts.items():
        check_str(name, text)
        if not text.strip() or "\n" in text or "<!--" in text:
            raise ValueError(f"{name}: expected one line of prose, got {text!r}")
    quotes = Quotes(texts)
    if display:
        from IPython.display import display as show

        show(quotes)
    return quotes
