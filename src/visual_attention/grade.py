"""Grade a submitted chapter notebook: a score per exercise, as a table and as JSON.

    python -m visual_attention.grade submission.ipynb [--source book/foundations.ipynb]
                                     [--timeout 30] [--json report.json]

How it works, and why a broken or malicious submission cannot crash it or buy points:

* The **instructor's notebook** (``--source``, or ``book/<chapter>.ipynb`` named in the student
  version's metadata) is the authority: its graded cells (nbgrader ``grade: true``) say which
  exercises exist, their points, and which function answers each (``check("<exercise>", answer)``).
  Metadata, points or check cells edited in the submission change nothing.
* The submission's cells run in order in a fresh Jupyter kernel in a temporary folder, each with a
  time limit; a cell that fails, loops forever (interrupted, then the kernel is restarted if need
  be) or kills the kernel (restarted) only costs what depended on it.
* Where the submission's check cell for an exercise stands (or at the end, if it was deleted), the
  grader sends the exercise's inputs to the kernel and gets back only the outputs of the student's
  function. The comparison with the reference runs **in the grader's own process** with
  :func:`visual_attention.exercises.judge`, so patching ``check``, ``torch.allclose`` or anything
  else inside the kernel has no effect. Outputs come back through
  ``torch.load(weights_only=True)``: tensors, numbers, strings and containers only, no code.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import queue
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ._checks import import_extra
from .exercises import (
    ExerciseError,
    get_exercise,
    judge,
    package_names_used,
    reference_names,
)

nbformat = import_extra("nbformat", "grading")

__all__ = ["ExerciseResult", "GradeReport", "graded_cells", "grade"]

BOOK = Path(__file__).resolve().parents[2] / "book"


@dataclass
class ExerciseResult:
    """The outcome of one graded exercise."""

    grade_id: str
    exercise: str
    points: float
    score: float
    feedback: str


@dataclass
class GradeReport:
    """Every exercise's result and the total."""

    notebook: str
    source: str
    results: list[ExerciseResult]

    @property
    def score(self) -> float:
        return sum(r.score for r in self.results)

    @property
    def max_score(self) -> float:
        return sum(r.points for r in self.results)

    def to_json(self) -> str:
        return json.dumps(
            {
                "notebook": self.notebook,
                "source": self.source,
                "score": self.score,
                "max_score": self.max_score,
                "exercises": [asdict(r) for r in self.results],
            },
            indent=2,
            ensure_ascii=False,
        )

    def table(self) -> str:
        rows = [f"{'exercise':<32} {'score':>9}  feedback", "-" * 80]
        for r in self.results:
            rows.append(f"{r.exercise:<32} {r.score:>4g} / {r.points:<3g} {r.feedback}")
        rows.append("-" * 80)
        rows.append(f"{'total':<32} {self.score:>4g} / {self.max_score:<3g}")
        return "\n".join(rows)


@dataclass
class _Graded:
    grade_id: str
    exercise: str
    answer: str  # source of the expression naming the student's function
    points: float


def graded_cells(nb: nbformat.NotebookNode) -> list[_Graded]:
    """The graded check cells of an instructor notebook, in order."""
    found = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade"):
            continue
        call = None
        for node in ast.walk(ast.parse(cell.source)):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", "")) == "check"
            ):
                call = node
                break
        if call is None or len(call.args) < 2 or not isinstance(call.args[0], ast.Constant):
            raise ValueError(
                f"graded cell {meta.get('grade_id')!r} does not call check('<exercise>', answer)"
            )
        found.append(
            _Graded(
                grade_id=meta["grade_id"],
                exercise=call.args[0].value,
                answer=ast.get_source_segment(cell.source, call.args[1]),
                points=float(meta.get("points", 1)),
            )
        )
    return found


class _Kernel:
    """A Jupyter kernel that runs one piece of code at a time under a time limit."""

    def __init__(self, cwd: str, kernel_name: str = "python3"):
        manager = import_extra("jupyter_client", "grading").KernelManager
        self.km = manager(kernel_name=kernel_name)
        self.cwd = cwd
        self._start()

    def _start(self) -> None:
        self.km.start_kernel(cwd=self.cwd)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def restart(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            self.km.restart_kernel(now=True)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float) -> tuple[str, str]:
        """Execute ``code``; returns ``(status, detail)`` with status ok, error, timeout or
        died."""
        msg_id = self.kc.execute(code, store_history=False, allow_stdin=False)
        deadline = time.monotonic() + timeout
        interrupted = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if interrupted:  # the interrupt did not help: start afresh
                    self.restart()
                    return "timeout", f"timed out after {timeout:g} s (kernel restarted)"
                self.km.interrupt_kernel()
                interrupted = True
                deadline = time.monotonic() + 5
                continue
            if not self.km.is_alive():
                self.restart()
                return "died", "the kernel died (restarted)"
            try:
                msg = self.kc.get_shell_msg(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            self._drain()
            content = msg["content"]
            if interrupted:
                return "timeout", f"timed out after {timeout:g} s"
            if content["status"] == "ok":
                return "ok", ""
            return "error", f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"

    def _drain(self) -> None:
        while True:
            try:
                self.kc.get_iopub_msg(timeout=0.01)
            except queue.Empty:
                return

    def shutdown(self) -> None:
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=True)


_RUNNER = """
def __va_grade(answer, inputs, outputs):
    import types
    from typing import Any
    import torch
{names}
    results = [["names", sorted(__va_names(answer))]]
    for args, kwargs in torch.load(inputs, weights_only=True):
        try:
            results.append(["ok", answer(*args, **kwargs)])
        except NotImplementedError:
            results.append(["todo", ""])
        except Exception as e:
            results.append(["error", f"{{type(e).__name__}}: {{e}}"])
    torch.save(results, outputs)
__va_grade({answer}, {inputs!r}, {outputs!r})
del __va_grade
"""
# What the answer's code calls, found in the kernel by a fresh copy of the checker's own analysis
# (sent as source, so that nothing the submission redefined takes part).
_NAMES = textwrap.indent(
    inspect.getsource(package_names_used).replace("def package_names_used(", "def __va_names("),
    "    ",
)


def _grade_one(kernel: _Kernel, g: _Graded, work: Path, timeout: float) -> ExerciseResult:
    def result(score: float, feedback: str) -> ExerciseResult:
        return ExerciseResult(g.grade_id, g.exercise, g.points, score, feedback)

    ex = get_exercise(g.exercise)
    cases = ex.make_cases()
    inputs, outputs = work / f"{g.grade_id}.in.pt", work / f"{g.grade_id}.out.pt"
    outputs.unlink(missing_ok=True)
    torch.save([(c.args, c.kwargs) for c in cases], inputs)
    runner = _RUNNER.format(
        names=_NAMES, answer=g.answer, inputs=str(inputs), outputs=str(outputs)
    )
    status, detail = kernel.run(runner, timeout)
    if status != "ok":
        return result(0, detail)
    try:
        answers = torch.load(outputs, weights_only=True)
    # missing file, or outputs that are not plain tensors/numbers/containers
    except Exception as e:
        return result(
            0, f"could not read the outputs of {g.answer} ({type(e).__name__}); return tensors"
        )
    if not isinstance(answers, list) or len(answers) != len(cases) + 1:
        return result(0, f"could not read the outputs of {g.answer}")
    (tag, names), *answers = answers
    forbidden = reference_names(ex) & set(names if tag == "names" else [])
    if tag != "names" or forbidden:
        short = ", ".join(sorted(n.rsplit(".", 1)[-1] for n in forbidden)) or "?"
        return result(0, f"your function calls the package's own {short}; write it yourself")
    for case, item in zip(cases, answers):
        kind, got = (
            item if isinstance(item, (list, tuple)) and len(item) == 2 else ("error", "bad output")
        )
        if kind == "todo":
            return result(0, "not answered yet (raises NotImplementedError)")
        if kind == "error":
            return result(0, f"case '{case.label}': your function raised {got}")
        try:
            judge(ex, case, got, ex.reference(*case.args, **case.kwargs), g.exercise)
        except ExerciseError as e:
            return result(0, str(e))
    return result(g.points, f"correct on all {len(cases)} cases")


def _find_source(submission: nbformat.NotebookNode, path: Path) -> Path:
    chapter = submission.metadata.get("visual_attention", {}).get("chapter") or path.stem
    candidate = BOOK / f"{chapter}.ipynb"
    if not candidate.is_file():
        raise SystemExit(
            f"cannot find the instructor notebook for {path.name}: pass --source "
            "book/<chapter>.ipynb"
        )
    return candidate


def grade(
    submission: Path | str,
    source: Path | str | None = None,
    timeout: float = 30.0,
    kernel_name: str = "python3",
) -> GradeReport:
    """Run ``submission`` and grade each exercise of the instructor notebook ``source``.

    Args:
        submission: the student's notebook.
        source: the instructor notebook (default: found from the submission's metadata or name).
        timeout: seconds allowed to each cell and to each exercise's grading.
        kernel_name: the Jupyter kernel to run the submission in.
    """
    submission = Path(submission)
    try:
        nb = nbformat.read(submission, as_version=4)
    except Exception as e:
        raise SystemExit(
            f"{submission}: not a readable notebook ({type(e).__name__}: {e})"
        ) from None
    source = Path(source) if source else _find_source(nb, submission)
    expected = graded_cells(nbformat.read(source, as_version=4))
    by_id = {g.grade_id: g for g in expected}
    results: dict[str, ExerciseResult] = {}
    with tempfile.TemporaryDirectory(prefix="va-grade-") as tmp:
        work = Path(tmp)
        kernel = _Kernel(cwd=tmp, kernel_name=kernel_name)
        try:
            for cell in nb.cells:
                if cell.get("cell_type") != "code":
                    continue
                gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                if gid in by_id and gid not in results:
                    results[gid] = _grade_one(kernel, by_id[gid], work, timeout)
                elif not cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
                    kernel.run(cell.get("source", ""), timeout)
            for g in expected:  # check cells the submission deleted: graded at the end
                if g.grade_id not in results:
                    results[g.grade_id] = _grade_one(kernel, g, work, timeout)
        finally:
            kernel.shutdown()
    return GradeReport(str(submission), str(source), [results[g.grade_id] for g in expected])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Grade a submitted chapter notebook.")
    parser.add_argument("submission", type=Path)
    parser.add_argument("--source", type=Path, default=None, help="the instructor notebook")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per cell and per exercise"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the report as JSON here"
    )
    args = parser.parse_args(argv)
    report = grade(args.submission, args.source, args.timeout)
    print(report.table())
    if args.json:
        args.json.write_text(report.to_json(), encoding="utf-8")
    print(report.to_json() if args.json is None else f"JSON report: {args.json}", file=sys.stdout)


if __name__ == "__main__":
    main()
