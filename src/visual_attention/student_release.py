"""What a chapter's student version leaves out beyond nbgrader's own steps, in one file.

Self-contained on purpose: it imports the standard library, traitlets and nbconvert, nothing from
the book's package. The repository's ``nbgrader_config.py`` loads this file by its path, so that
nbgrader releases the chapters right where the book's package is not installed (nbgrader in an
environment of its own); :mod:`visual_attention.assignments` (``make assignments``) imports it.

* :func:`strip_for_students` drops the saved widget state and the Think questions' answers (MyST
  ``{admonition} Answer`` blocks); nbgrader keeps both.
* :func:`leaks` lists what a student version must not hold: an answer block, a solution region, a
  hidden test, a mark scheme, an output or saved widget state.
* :class:`StripForStudents` and :class:`CheckStudentVersion`, the two nbgrader preprocessors that
  ``nbgrader_config.py`` adds to ``generate_assignment``: the first after ``ClearOutput``, the
  second last, which stops the release of a notebook that still :func:`leaks`.
"""

from __future__ import annotations

import re

import traitlets

__all__ = [
    "ANSWER_NOTE",
    "CheckStudentVersion",
    "StripForStudents",
    "leaks",
    "strip_answers",
    "strip_for_students",
]

# A "Think" question's answer: a MyST dropdown admonition titled "Answer", to the closing fence.
_ANSWER = re.compile(r"^(:{3,})\{admonition\} Answer[^\n]*\n.*?^\1[ \t]*$\n?", re.M | re.S)
#: What replaces a Think answer in a student version.
ANSWER_NOTE = "*(Write your answer here; the answer is in the instructor's version.)*\n"
# What no student version holds, whether or not its block is well formed.
_LEAKS = {
    "an answer block": re.compile(r"\{admonition\}\s*Answer"),
    "a solution region": re.compile(r"###\s*(BEGIN|END) SOLUTION"),
    "a hidden test": re.compile(r"###\s*(BEGIN|END) HIDDEN TESTS"),
    "a mark scheme": re.compile(r"===\s*(BEGIN|END) MARK SCHEME"),
}


def strip_answers(source: str) -> str:
    """Markdown ``source`` without its ``{admonition} Answer`` blocks (each becomes
    :data:`ANSWER_NOTE`)."""
    return _ANSWER.sub(ANSWER_NOTE, source)


def strip_for_students(nb):
    """Drop ``nb``'s saved widget state and its Think answers, in place; return ``nb``."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = strip_answers(cell.source)
    return nb


def leaks(nb) -> list[str]:
    """What notebook ``nb`` holds that no student version may: ``["cell 12: a hidden test", …]``
    (empty for a clean student version)."""
    found = ["saved widget state"] if "widgets" in nb.metadata else []
    for i, cell in enumerate(nb.cells):
        found += [f"cell {i}: {what}" for what, rx in _LEAKS.items() if rx.search(cell.source)]
        if cell.cell_type == "code" and cell.get("outputs"):
            found.append(f"cell {i}: outputs")
    return found


try:  # nbconvert comes with nbgrader (and with the package's grading extra)
    from nbconvert.preprocessors import Preprocessor as _Preprocessor
except ImportError:  # pragma: no cover - without it only the classes below are unusable
    _Preprocessor = object


class StripForStudents(_Preprocessor):
    """An nbgrader preprocessor: :func:`strip_for_students`, what nbgrader itself keeps.

    After ``ClearOutput`` in ``generate_assignment``, it makes nbgrader release the same
    notebooks as ``make assignments``.
    """

    enabled = traitlets.Bool(True).tag(config=True)  # nbconvert's preprocessors default to off

    def preprocess(self, nb, resources):
        return strip_for_students(nb), resources


class CheckStudentVersion(_Preprocessor):
    """An nbgrader preprocessor, the last of ``generate_assignment``: a notebook that still
    :func:`leaks` (an answer, a hidden test, widget state …) is not released; nbgrader reports
    the error and exits non-zero."""

    enabled = traitlets.Bool(True).tag(config=True)

    def preprocess(self, nb, resources):
        found = leaks(nb)
        if found:
            name = resources.get("unique_key") or "the notebook"
            raise ValueError(
                f"{name}: not released, its student version holds " + "; ".join(found)
            )
        return nb, resources
