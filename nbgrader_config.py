"""nbgrader configuration for a course made of this book's chapters.

Copy this file to your course's root (beside ``source/``), or import it from your own
``nbgrader_config.py``. It adds one preprocessor to ``nbgrader generate_assignment``: the student
versions it releases then equal ``make assignments``' (no saved widget state, no answers to the
"Think" questions). The chapters' graded cells carry hidden tests that re-run the real checker.
Students need the book's package where nbgrader runs their notebooks: ``pip install
"visual-attention[lab]"`` (see the instructors' page of the book).
"""

from nbgrader.converters import GenerateAssignment
from nbgrader.preprocessors import ClearOutput

from visual_attention.assignments import StripForStudents

c = get_config()  # noqa: F821  (nbgrader's config loader provides it)

_steps = list(GenerateAssignment.class_traits()["preprocessors"].default())
_steps.insert(_steps.index(ClearOutput) + 1, StripForStudents)
c.GenerateAssignment.preprocessors = _steps
