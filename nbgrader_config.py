"""nbgrader configuration for a course made of this book's chapters.

It needs nothing but nbgrader: the book's package need not be installed where nbgrader runs. Put
this file at your course's root (beside ``source/``) with a copy of
``src/visual_attention/student_release.py`` beside it, or load it in place from your own
configuration: ``load_subconfig("<clone>/nbgrader_config.py")``. It adds two preprocessors from
that file to ``nbgrader generate_assignment``: ``StripForStudents`` after ``ClearOutput`` (the
student versions are then those of ``make assignments``: no saved widget state, no answers to the
"Think" questions) and ``CheckStudentVersion`` last, which stops the release of a notebook that
still holds an answer, a hidden test, an output or widget state. Without that file nbgrader stops
at once, before it releases anything.

The kernel that runs the notebooks (the students', and the one ``nbgrader autograde`` starts: the
chapters name ``python3``) needs the book's package, for the chapters and their hidden tests. In
that kernel's environment, from a clone: ``pip install ".[lab]"``, or without one: ``pip install
"visual-attention[lab] @ git+https://github.com/attention-in-vision/attention-in-vision"``; see the
instructors' page of the book.
"""

import importlib.util
import sys
from pathlib import Path

from nbgrader.converters import GenerateAssignment
from nbgrader.preprocessors import ClearOutput

FILE = "student_release.py"


def _student_release():
    """``student_release.py``: beside this file, else in the clone it is part of, else in the
    book's package where it is installed; stop nbgrader if there is none."""
    here = Path(__file__).resolve().parent  # traitlets gives the config file its __file__
    places = [here / FILE, here / "src" / "visual_attention" / FILE]
    package = importlib.util.find_spec("visual_attention")  # finds, does not import
    if package is not None:
        places += [Path(p) / FILE for p in package.submodule_search_locations or []]
    for path in places:
        if path.is_file():
            spec = importlib.util.spec_from_file_location("visual_attention_student_release", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            return module
    # SystemExit, not an exception: nbgrader logs those and goes on with its defaults.
    raise SystemExit(
        f"{__file__}: {FILE} is not beside it, nor in a clone of the book, nor in an installed "
        f"book package (looked in {', '.join(str(p.parent) for p in places)}). Without it "
        "nbgrader would release the chapters with their answers and widget state: copy "
        f"src/visual_attention/{FILE} from the book's repository beside this file."
    )


_release = _student_release()
c = get_config()  # noqa: F821  (nbgrader's config loader provides it)

_steps = list(GenerateAssignment.class_traits()["preprocessors"].default())
_steps.insert(_steps.index(ClearOutput) + 1, _release.StripForStudents)
_steps.append(_release.CheckStudentVersion)
c.GenerateAssignment.preprocessors = _steps
