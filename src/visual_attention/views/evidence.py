"""One way for every chapter to report an experiment: a table, an assertion and a record.

A chapter's experiment compares an attention model with controls over several seeds (each seed
varies the initialisation and the data draw). :func:`report_evidence` turns the per-seed results
into

* a table: mean ± sd and parameter count of every model; against the **strongest control** (the
  best mean), the difference of the means, Welch's t (``scipy.stats.ttest_ind`` with
  ``equal_var=False``) and, where the chapter gives per-example scores on the test set, a paired
  bootstrap interval of the difference over test examples (``scipy.stats.bootstrap``);
* where the chapter gives ``chance``, how far the strongest control gets from chance towards the
  attention model: a control that does not get a quarter of the way fails by construction, and
  the record says so (``fair_control``);
* an assertion that the difference is at least ``min_standard_errors`` (Welch's t) in the
  direction the chapter claims (and, optionally, that the attention model clears a floor such as
  "clearly above chance"), so a run that does not support the text fails the notebook;
* a machine-readable record, displayed as one output of MIME type :data:`EVIDENCE_MIME` beside the
  table (myst-nb leaves it off the page; nbval does not compare it), so tools can collect the
  book's evidence from the notebooks: ``attention``, ``controls`` (each with ``name``, per-seed
  ``values`` and ``params``) and ``chance``.

:func:`quote` names the measured numbers a chapter's prose quotes, as the prose writes them, in
one output of MIME type :data:`QUOTE_MIME`; ``scripts/sync_chapters.py`` copies each into the prose
between ``<!-- quote: name -->`` and ``<!-- /quote -->``, so the text cannot drift from the
outputs.
"""

from __future__ import annotations

import html
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .._checks import check_bool, check_number, check_str

__all__ = [
    "EVIDENCE_MIME",
    "QUOTE_MIME",
    "Evidence",
    "Quotes",
    "quote",
    "report_evidence",
    "paired_interval",
]

EVIDENCE_MIME = "application/vnd.visual-attention.evidence+json"
QUOTE_MIME = "application/vnd.visual-attention.quote+json"
#: The share of the way from chance to the attention model the strongest control must reach.
FAIR_SHARE = 0.25
#: Welch's t against the strongest control from which a record reads as a difference, not a tie.
DECISIVE_T = 3.0

Side = tuple[str, tuple[float, ...], "int | None"]


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1))


@dataclass(frozen=True)
class Evidence:
    """Per-seed results of an attention model and its controls, and what they show.

    ``attention`` and each of ``controls`` are ``(name, per-seed values, parameters or None)``;
    ``interval`` is the bootstrap interval (95 %) of the difference against the strongest control
    over test examples, or None where the chapter gave no per-example scores."""

    chapter: str
    claim: str
    metric: str
    higher_is_better: bool
    attention: Side
    controls: tuple[Side, ...]
    chance: float | None = None
    interval: tuple[float, float] | None = None

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.higher_is_better else a < b

    @property
    def control(self) -> Side:
        """The strongest control: the best mean in the claimed direction."""
        best = self.controls[0]
        for side in self.controls[1:]:
            if self._better(_mean_sd(side[1])[0], _mean_sd(best[1])[0]):
                best = side
        return best

    @property
    def difference(self) -> float:
        """Mean of the attention model minus mean of the strongest control, signed so that > 0
        supports the claim (for a metric where lower is better, control minus attention)."""
        diff = _mean_sd(self.attention[1])[0] - _mean_sd(self.control[1])[0]
        return diff if self.higher_is_better else -diff

    @property
    def standard_error(self) -> float:
        """Standard error of the difference of the two means (Welch: √(s_a²/n_a + s_c²/n_c))."""
        (_, sa), (_, sc) = _mean_sd(self.attention[1]), _mean_sd(self.control[1])
        return math.sqrt(sa**2 / len(self.attention[1]) + sc**2 / len(self.control[1]))

    @property
    def standard_errors(self) -> float:
        """Welch's t of the difference against the strongest control, signed like
        :attr:`difference` (``inf`` for a positive difference with no spread on either side)."""
        if self.standard_error == 0:
            d = self.difference
            return math.inf if d > 0 else (0.0 if d == 0 else -math.inf)
        t = stats.ttest_ind(self.attention[1], self.control[1], equal_var=False).statistic
        return float(t if self.higher_is_better else -t)

    @property
    def verdict(self) -> str:
        """``"attention ahead"`` when Welch's t against the strongest control is at least
        :data:`DECISIVE_T` in the claimed direction, ``"control ahead"`` when it is at most
        ``-DECISIVE_T``, else ``"tie"``: what the record shows, whatever the chapter asserted."""
        t = self.standard_errors
        return (
            "attention ahead"
            if t >= DECISIVE_T
            else "control ahead"
            if t <= -DECISIVE_T
            else "tie"
        )

    @property
    def p_value(self) -> float | None:
        """Welch's one-sided p-value for the claimed direction (None with no spread)."""
        if self.standard_error == 0:
            return None
        side = "greater" if self.higher_is_better else "less"
        a, c = self.attention[1], self.control[1]
        return float(stats.ttest_ind(a, c, equal_var=False, alternative=side).pvalue)

    @property
    def share_of_the_way(self) -> float | None:
        """How far the strongest control gets from chance towards the attention model (0 at
        chance, 1 level with attention); None without ``chance``."""
        if self.chance is None:
            return None
        gap = _mean_sd(self.attention[1])[0] - self.chance
        return None if gap == 0 else (_mean_sd(self.control[1])[0] - self.chance) / gap

    @property
    def fair_control(self) -> bool | None:
        """Whether the strongest control gets at least :data:`FAIR_SHARE` of the way from chance
        to the attention model (None without ``chance``)."""
        share = self.share_of_the_way
        return None if share is None else share >= FAIR_SHARE

    def record(self) -> dict:
        """The JSON record displayed under :data:`EVIDENCE_MIME`."""

        def side(s: Side) -> dict:
            return {"name": s[0], "values": list(s[1]), "params": s[2]}

        return {
            "chapter": self.chapter,
            "claim": self.claim,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "chance": self.chance,
            "attention": side(self.attention),
            "controls": [side(s) for s in self.controls],
            "strongest_control": self.control[0],
            "difference": self.difference,
            "welch_t": self.standard_errors,
            "verdict": self.verdict,
            "p_value": self.p_value,
            "interval": None if self.interval is None else list(self.interval),
            "fair_control": self.fair_control,
        }

    def rows(self) -> list[tuple[str, str, str, str]]:
        """``(model, mean ± sd, parameters, per-seed values)`` for every model."""
        out = []
        for name, values, params in (self.attention, *self.controls):
            mean, sd = _mean_sd(values)
            count = "—" if params is None else f"{params:,}"
            out.append(
                (name, f"{mean:.3f} ± {sd:.3f}", count, ", ".join(f"{v:.3f}" for v in values))
            )
        return out

    def summary(self) -> str:
        n = len(self.attention[1])
        d = self.difference
        favour = "in favour of" if d >= 0 else "against"
        text = (
            f"{self.metric}: difference {abs(d):.3f} {favour} {self.attention[0]} against the "
            f"strongest control ({self.control[0]}), Welch's t = {self.standard_errors:.1f} "
            f"({n} seeds): {self.verdict}"
        )
        if self.interval is not None:
            text += f"; 95 % bootstrap interval over test examples [{self.interval[0]:+.3f}, "
            text += f"{self.interval[1]:+.3f}]"
        if self.chance is not None and self.share_of_the_way is not None:
            text += f"; the strongest control gets {self.share_of_the_way:.2f} of the way from "
            text += f"chance ({self.chance:g}) to {self.attention[0]}"
        return text

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        rows = self.rows()
        width = max(len(r[0]) for r in rows)
        text = "\n".join(f"{a:<{width}}  {b}  {c:>9} params   [{d}]" for a, b, c, d in rows)
        cells = "".join(
            f"<tr><td>{html.escape(a)}</td><td>{b}</td><td>{c}</td><td>{html.escape(d)}</td></tr>"
            for a, b, c, d in rows
        )
        table = (
            f"<table><thead><tr><th>model</th><th>{html.escape(self.metric)} (mean ± sd)</th>"
            f"<th>parameters</th><th>per seed</th></tr></thead><tbody>{cells}</tbody></table>"
            f"<p>{html.escape(self.summary())}</p>"
        )
        return {
            "text/plain": f"{text}\n{self.summary()}",
            "text/html": table,
            EVIDENCE_MIME: self.record(),
        }


def _check_side(name: str, side: object) -> Side:
    ok = isinstance(side, tuple) and len(side) in (2, 3) and isinstance(side[0], str)
    ok = (
        ok
        and isinstance(side[1], (list, tuple))
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in side[1])
    )
    values = tuple(float(v) for v in side[1]) if ok else ()
    if not ok or len(values) < 3 or not all(math.isfinite(v) for v in values):
        raise ValueError(
            f"{name} must be (name, values) or (name, values, parameters) with at least 3 finite "
            f"values (one per seed), got {side!r}"
        )
    params = side[2] if len(side) == 3 else None
    if params is not None and (
        isinstance(params, bool) or not isinstance(params, numbers.Integral) or params < 0
    ):
        raise ValueError(f"{name}: parameters must be a non-negative int or None, got {params!r}")
    return side[0], values, None if params is None else int(params)


def _bootstrap(
    examples: object, attention: str, control: str, higher: bool
) -> tuple[float, float]:
    """The 95 % paired bootstrap interval over test examples of the difference of the mean
    per-example scores (attention minus control, or the reverse where lower is better)."""
    if not isinstance(examples, Mapping) or attention not in examples or control not in examples:
        raise ValueError(
            f"examples must map the attention model and the strongest control ({attention!r}, "
            f"{control!r}) to per-example scores, got {examples!r:.80}"
        )
    a, c = (np.asarray(examples[k], dtype=float).ravel() for k in (attention, control))
    if a.shape != c.shape or a.size < 2 or not (np.isfinite(a).all() and np.isfinite(c).all()):
        raise ValueError(
            "examples: the two models need finite scores on the same test examples (at least 2), "
            f"got {a.size} and {c.size}"
        )
    sign = 1.0 if higher else -1.0
    result = stats.bootstrap(
        (a, c),
        lambda x, y, axis=-1: sign * (np.mean(x, axis=axis) - np.mean(y, axis=axis)),
        paired=True,
        vectorized=True,
        n_resamples=2000,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(0),
    )
    low, high = result.confidence_interval
    return float(low), float(high)


def paired_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """The 95 % paired bootstrap interval over test examples of ``mean(a) − mean(b)``: the
    per-example scores of two models on the same test examples ``(N,)`` each, ``N ≥ 2`` (the
    interval :func:`report_evidence` gives, for a comparison that is not a record)."""
    scores = {}
    for name, x in (("a", a), ("b", b)):
        try:
            scores[name] = np.asarray(x, dtype=float).ravel()
        except (TypeError, ValueError):
            scores[name] = None
        if scores[name] is None or scores[name].size < 2 or not np.isfinite(scores[name]).all():
            raise ValueError(f"{name} must be at least 2 finite per-example scores, got {x!r:.60}")
    if scores["a"].shape != scores["b"].shape:
        raise ValueError(f"a and b must score the same examples, got {a!r:.40} and {b!r:.40}")
    return _bootstrap(scores, "a", "b", True)


def report_evidence(
    chapter: str,
    claim: str,
    metric: str,
    attention: tuple,
    control: tuple | None = None,
    higher_is_better: bool = True,
    min_standard_errors: float = 3.0,
    floor: float | None = None,
    display: bool = True,
    *,
    controls: Sequence[tuple] | None = None,
    chance: float | None = None,
    examples: Mapping[str, Sequence[float]] | None = None,
    require_fair_control: bool = False,
    expect_difference: bool = True,
) -> Evidence:
    """Show the table and the record of an experiment; assert that it supports the claim.

    Args:
        chapter: the notebook's name, e.g. ``"spatial"``.
        claim: one sentence the text makes and the numbers must support.
        metric: what the values measure, e.g. ``"test accuracy"``.
        attention: ``(model name, one value per seed)`` or ``(name, values, parameters)``, at
            least 3 seeds.
        control: one control, as ``attention``; or ``controls``, a list of them (not both).
        higher_is_better: the direction of the claim.
        min_standard_errors: Welch's t against the strongest control must be at least this.
        floor: optional bound the attention model's mean must reach (above it if
            ``higher_is_better``, below it otherwise), e.g. "clearly above chance".
        display: show the table and the record (in a notebook).
        controls: the controls, as ``attention``; the assertion is against the strongest.
        chance: the metric at chance (None for a cost such as time).
        examples: ``{model name: per-example scores on the test set (N,)}`` (e.g. correctness
            averaged over the seeds) for the attention model and the strongest control at least:
            a paired bootstrap over test examples gives the interval of the difference.
        require_fair_control: also assert that the strongest control gets at least a quarter of
            the way from ``chance`` to the attention model (it does not fail by construction).
        expect_difference: assert Welch's t >= ``min_standard_errors`` (the claim that attention
            beats the strongest control). ``False`` where the chapter reports a tie or a loss:
            the table and the record are shown and ``floor`` and ``require_fair_control`` are
            asserted, not the difference; the chapter asserts what is robust itself.

    Returns:
        the :class:`Evidence`. Raises ``AssertionError`` when the run does not support the claim.
    """
    for name, value in (("chapter", chapter), ("claim", claim), ("metric", metric)):
        check_str(name, value)
    check_bool("higher_is_better", higher_is_better)
    check_bool("display", display)
    check_bool("require_fair_control", require_fair_control)
    check_bool("expect_difference", expect_difference)
    check_number("min_standard_errors", min_standard_errors, 0.0)
    if floor is not None:
        check_number("floor", floor)
    if chance is not None:
        check_number("chance", chance)
    if (control is None) == (controls is None):
        raise ValueError(
            f"give control or controls, one of them, got {control!r} and {controls!r}"
        )
    if controls is not None and (
        isinstance(controls, (str, tuple)) or not isinstance(controls, Sequence) or not controls
    ):
        raise ValueError(
            f"controls must be a non-empty list of (name, values, parameters), got {controls!r}"
        )
    sides = [control] if control is not None else list(controls)
    checked = tuple(
        _check_side(f"controls[{i}]" if controls is not None else "control", s)
        for i, s in enumerate(sides)
    )
    if require_fair_control and chance is None:
        raise ValueError("require_fair_control needs chance, got chance=None")
    evidence = Evidence(
        chapter,
        claim,
        metric,
        higher_is_better,
        _check_side("attention", attention),
        checked,
        chance,
    )
    if examples is not None:
        interval = _bootstrap(
            examples, evidence.attention[0], evidence.control[0], higher_is_better
        )
        evidence = Evidence(
            chapter, claim, metric, higher_is_better, evidence.attention, checked, chance, interval
        )
    if display:
        from IPython.display import display as show

        show(evidence)
    assert not expect_difference or evidence.standard_errors >= min_standard_errors, (
        f"not shown: {evidence.summary()}; the claim needs Welch's t >= {min_standard_errors}"
    )
    if floor is not None:
        mean = _mean_sd(evidence.attention[1])[0]
        reached = mean >= floor if higher_is_better else mean <= floor
        assert reached, f"{evidence.attention[0]}: {metric} {mean:.3f} does not reach {floor}"
    if require_fair_control:
        assert evidence.fair_control, (
            f"the strongest control ({evidence.control[0]}) gets only "
            f"{evidence.share_of_the_way:.2f} of the way from chance to {evidence.attention[0]}: "
            f"it fails by construction (at least {FAIR_SHARE} needed); redesign the task"
        )
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
