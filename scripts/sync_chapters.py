"""What every chapter carries, written from one place: the install cell, the hidden tests, the
excerpts of the package's code and the measured numbers its prose quotes.

* **The install cell**, the chapter's first code cell. A chapter opened from a launch button (Colab,
  or any fresh kernel) has no ``visual_attention``; the cell installs it from the book's
  repository, whose address and branch it takes from ``_config.yml`` (the ``repository:`` entry
  the launch buttons use), and does nothing where the package is importable (a clone after
  ``make lab``, Binder, nbval). Tagged ``remove-cell``: the site does not show it.
* **A hidden test in every graded check cell** (nbgrader's ``### BEGIN HIDDEN TESTS``): it imports
  the package afresh and runs the real ``check`` again, so a notebook that redefined ``check``,
  patched the checker's module or the reference gains nothing under nbgrader's autograde. Student
  versions drop it (``make assignments``, nbgrader's ``generate_assignment``).
* **Excerpts of the tested source**, as plain Markdown code blocks, so that the code a chapter shows
  reads as code wherever the notebook is opened (the site, JupyterLab, Colab, GitHub, a student
  version). A markdown cell names what it shows in an HTML comment, which every renderer hides::

      <!-- excerpt: src/visual_attention/core.py [stable-softmax] -->   (lines between markers)
      <!-- excerpt: src/visual_attention/branch.py SelectiveKernel.forward -->   (one object)

  and this script writes, after it, a link to the file and lines on the book's repository and the
  lines themselves (dedented), up to ``<!-- /excerpt -->``. ``tests/test_book.py`` fails when a
  notebook's excerpt differs from its source.
* **Measured numbers in prose**, from the notebook's own outputs: a code cell publishes named texts
  with ``visual_attention.views.evidence.quote`` (stored as an output of MIME type
  ``QUOTE_MIME``) and the prose holds ``<!-- quote: name -->59.15 ms<!-- /quote -->``; this script
  writes each quoted text from the stored output, so re-executing a chapter (``make execute``) and
  syncing it keeps its prose and its outputs equal, and the prose still reads as plain text.
* **The book's evidence at a glance**, in a Markdown page (the introduction): between
  ``<!-- evidence-table -->`` and ``<!-- /evidence-table -->`` a table of every chapter's evidence
  record (the output of ``views.evidence.report_evidence``, MIME type ``EVIDENCE_MIME``), in the
  order of ``_toc.yml``: the attention model and its strongest control (mean ± sd over seeds,
  parameters), the other controls, chance, the difference with its bootstrap interval, Welch's t
  and whether the strongest control is fair.
* **The chapters at a glance**, for instructors: between ``<!-- chapter-table -->`` and
  ``<!-- /chapter-table -->`` a table of every chapter's size (words of prose), graded exercises and
  their points, Think questions, and a time estimate computed from those (:func:`chapter_table`).

    python scripts/sync_chapters.py           # write (or refresh) all of these in every chapter
    python scripts/sync_chapters.py --check   # fail if a chapter differs (tests/test_install.py)
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import textwrap
from pathlib import Path

import nbformat
import yaml

from visual_attention.views.evidence import EVIDENCE_MIME, QUOTE_MIME

ROOT = Path(__file__).resolve().parents[1]
TAG = "install-package"
HIDDEN = "### BEGIN HIDDEN TESTS"
_CHECK = re.compile(r'^check\("([^"]+)",\s*([A-Za-z_][A-Za-z0-9_]*)\)', re.M)


def repository(config: Path = ROOT / "_config.yml") -> tuple[str, str]:
    """The book's repository address and branch, from ``_config.yml``."""
    repo = yaml.safe_load(config.read_text())["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def install_cell(config: Path = ROOT / "_config.yml") -> str:
    """The install cell's source."""
    url, branch = repository(config)
    return (
        "# On Colab (or any kernel without the book's package) install it; elsewhere do nothing.\n"
        "import importlib.util\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        'if importlib.util.find_spec("visual_attention") is None:\n'
        f'    package = "visual-attention @ git+{url}@{branch}"\n'
        '    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", package], check=True)'
    )


def check_cell(exercise: str, answer: str) -> str:
    """A graded cell: the visible check, then the hidden test."""
    return (
        f'check("{exercise}", {answer})\n'
        f"{HIDDEN}\n"
        "# The real checker, imported afresh: what the notebook redefined does not count.\n"
        "import importlib, sys\n"
        'for _name in [m for m in sys.modules if m.partition(".")[0] == "visual_attention"]:\n'
        "    del sys.modules[_name]\n"
        'importlib.import_module("visual_attention.exercises").check(\n'
        f'    "{exercise}", {answer}, quiet=True\n'
        ")\n"
        "### END HIDDEN TESTS"
    )


# Excerpts: a marker comment in a markdown cell, then what this script writes, then the end comment.
EXCERPT = re.compile(
    r"<!-- excerpt: (?P<path>\S+) (?P<what>\[[\w-]+\]|[\w.]+) -->\n(?P<body>.*?)<!-- /excerpt -->",
    re.S,
)
QUOTE = re.compile(r"<!-- quote: (?P<name>[\w-]+) -->(?P<text>.*?)<!-- /quote -->")


EVIDENCE_TABLE = re.compile(r"(<!-- evidence-table -->\n)(.*?)(<!-- /evidence-table -->)", re.S)


def find_object(tree: ast.Module, dotted: str) -> ast.AST | None:
    """The function or class ``dotted`` (``Class.method``) of a module's syntax tree, or None."""
    nodes: list[ast.AST] = list(tree.body)
    found = None
    for part in dotted.split("."):
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        found = next((n for n in nodes if isinstance(n, kinds) and n.name == part), None)
        if found is None:
            return None
        nodes = list(found.body)
    return found


def excerpt_lines(path: str, what: str) -> tuple[int, int, str]:
    """The first and last line (1-based) of what an excerpt shows, and its dedented text: the lines
    strictly between ``# [start-name]`` and ``# [end-name]`` for ``[name]``, or the object
    ``what`` (a function, class or ``Class.method``, decorators excluded)."""
    source = ROOT / path
    if not source.is_file():
        raise ValueError(f"excerpt: {path} is not a file of the repository")
    lines = source.read_text().splitlines()
    if what.startswith("["):
        name = what[1:-1]
        starts = [i for i, line in enumerate(lines) if line.strip() == f"# [start-{name}]"]
        ends = [i for i, line in enumerate(lines) if line.strip() == f"# [end-{name}]"]
        if len(starts) != 1 or len(ends) != 1 or starts[0] > ends[0]:
            raise ValueError(f"excerpt: {path} must hold '# [start-{name}]' and '# [end-{name}]' once")
        first, last = starts[0] + 2, ends[0]
    else:
        node = find_object(ast.parse("\n".join(lines)), what)
        if node is None:
            raise ValueError(f"excerpt: {path} has no function or class {what}")
        first, last = node.lineno, node.end_lineno
    while last > first and not lines[last - 1].strip():
        last -= 1
    return first, last, textwrap.dedent("\n".join(lines[first - 1 : last]))


def excerpt_body(path: str, what: str, config: Path = ROOT / "_config.yml") -> str:
    """What follows an excerpt's marker comment: a link to the lines on the book's repository and
    the code itself as a Markdown code block."""
    url, branch = repository(config)
    first, last, code = excerpt_lines(path, what)
    name = "" if what.startswith("[") else f"`{what}`, "
    return (
        f"[{name}`{path}`, lines {first}–{last}]({url}/blob/{branch}/{path}#L{first}-L{last}):\n\n"
        f"```python\n{code}\n```\n"
    )


def sync_excerpts(text: str) -> str:
    """A markdown cell with every excerpt written anew from its source."""
    return EXCERPT.sub(
        lambda m: (
            f"<!-- excerpt: {m['path']} {m['what']} -->\n"
            f"{excerpt_body(m['path'], m['what'])}<!-- /excerpt -->"
        ),
        text,
    )


def stored_quotes(nb: nbformat.NotebookNode) -> dict[str, str]:
    """Every named text the notebook's stored outputs publish under ``QUOTE_MIME``."""
    quotes: dict[str, str] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data", {}).get(QUOTE_MIME)
            if data is not None:
                quotes.update(json.loads(data) if isinstance(data, str) else dict(data))
    return quotes


def sync_quotes(text: str, quotes: dict[str, str], where: str) -> str:
    """A markdown cell whose quoted numbers are the stored outputs' texts."""

    def write(m: re.Match) -> str:
        if m["name"] not in quotes:
            raise ValueError(f"{where}: the prose quotes {m['name']!r}, which no output publishes")
        return f"<!-- quote: {m['name']} -->{quotes[m['name']]}<!-- /quote -->"

    return QUOTE.sub(write, text)


def stored_evidence(nb: nbformat.NotebookNode) -> list[dict]:
    """Every evidence record the notebook's stored outputs hold (``EVIDENCE_MIME``)."""
    records = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data", {}).get(EVIDENCE_MIME)
            if data is not None:
                records.append(json.loads(data) if isinstance(data, str) else dict(data))
    return records


def _mean_sd(values: list[float]) -> str:
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5
    return f"{mean:.3f} ± {sd:.3f}"


def _model(side: dict) -> str:
    params = "" if side.get("params") is None else f", {side['params']:,} params"
    return f"{side['name']}: {_mean_sd(side['values'])}{params}"


def toc_order(toc: Path = ROOT / "_toc.yml") -> list[str]:
    """The chapters' file stems in the order of the table of contents."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                found.append(Path(node["file"]).stem)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(toc.read_text()))
    return found


def evidence_table(paths: list[Path] | None = None) -> str:
    """A Markdown table of the evidence records of ``paths`` (default: every chapter, in the
    order of ``_toc.yml``), one row per record."""
    order = toc_order()
    paths = sorted(paths or chapters(), key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.stem))
    rows = [
        "| chapter | metric | attention | strongest control | other controls | chance "
        "| difference [95 % interval] | Welch's t | verdict | fair control |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in paths:
        for r in stored_evidence(nbformat.read(path, as_version=4)):
            strongest = next(c for c in r["controls"] if c["name"] == r["strongest_control"])
            others = "; ".join(_model(c) for c in r["controls"] if c is not strongest) or "—"
            interval = r.get("interval")
            span = "" if interval is None else f" [{interval[0]:+.3f}, {interval[1]:+.3f}]"
            chance = "—" if r.get("chance") is None else f"{r['chance']:g}"
            fair = {True: "yes", False: "**no**", None: "—"}[r.get("fair_control")]
            t = r["welch_t"]
            verdict = r.get("verdict") or ("attention ahead" if t >= 3 else "control ahead" if t <= -3 else "tie")
            rows.append(
                f"| [{path.stem.replace('_', ' ')}]({path.name}) | {r['metric']} "
                f"| {_model(r['attention'])} | {_model(strongest)} | {others} | {chance} "
                f"| {r['difference']:+.3f}{span} | {t:.1f} | {verdict} | {fair} |"
            )
    return "\n".join(rows) + "\n"


CHAPTER_TABLE = re.compile(r"(<!-- chapter-table -->\n)(.*?)(<!-- /chapter-table -->)", re.S)
#: The time estimate: prose read at this many words a minute (maths and code slow a reader down) ...
WORDS_PER_MINUTE = 100
#: ... plus these minutes for each graded exercise and each Think question.
EXERCISE_MINUTES, THINK_MINUTES = 15, 5
_NOT_PROSE = re.compile(r"```.*?```|\$\$.*?\$\$|<!--.*?-->|:::\{admonition\} Answer.*?^:::", re.S | re.M)
_THINK = re.compile(r"\*\*\d+\. Think\.\*\*")


def chapter_size(nb: nbformat.NotebookNode) -> dict:
    """Words of prose (code blocks, display maths, comments and Think answers left out), graded
    exercises, their points and Think questions of a chapter."""
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    graded = graded_check_cells(nb)
    return {
        "words": sum(len(_NOT_PROSE.sub(" ", text).split()) for text in markdown),
        "exercises": len(graded),
        "points": sum(c.metadata["nbgrader"].get("points", 0) for c in graded),
        "think": sum(len(_THINK.findall(text)) for text in markdown),
    }


def chapter_table(paths: list[Path] | None = None) -> str:
    """A Markdown table of every chapter's size and a time estimate for a student: reading at
    :data:`WORDS_PER_MINUTE`, plus :data:`EXERCISE_MINUTES` a graded exercise and
    :data:`THINK_MINUTES` a Think question, rounded to 5 minutes."""
    order = toc_order()
    paths = sorted(paths or chapters(), key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.stem))
    rows = [
        "| chapter | words | graded exercises (points) | Think questions | estimate |",
        "|---|---:|---:|---:|---:|",
    ]
    for path in paths:
        size = chapter_size(nbformat.read(path, as_version=4))
        minutes = size["words"] / WORDS_PER_MINUTE + EXERCISE_MINUTES * size["exercises"]
        minutes += THINK_MINUTES * size["think"]
        rows.append(
            f"| [{path.stem.replace('_', ' ')}]({path.name}) | {size['words']:,} "
            f"| {size['exercises']} ({size['points']}) | {size['think']} "
            f"| about {5 * max(1, round(minutes / 5))} min |"
        )
    return "\n".join(rows) + "\n"


def sync_evidence_table(text: str) -> str:
    """A page whose evidence table is that of the chapters' stored records."""
    if not EVIDENCE_TABLE.search(text):
        return text
    table = evidence_table()
    return EVIDENCE_TABLE.sub(lambda m: m[1] + table + m[3], text)


def sync_chapter_table(text: str) -> str:
    """A page whose table of chapters is that of the chapters as they are."""
    if not CHAPTER_TABLE.search(text):
        return text
    table = chapter_table()
    return CHAPTER_TABLE.sub(lambda m: m[1] + table + m[3], text)


def chapters() -> list[Path]:
    """Every notebook of the book."""
    return sorted((ROOT / "book").glob("*.ipynb"))


def pages() -> list[Path]:
    """Every Markdown page of the book."""
    return sorted((ROOT / "book").glob("*.md"))


def first_code_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    return next((c for c in nb.cells if c.cell_type == "code"), None)


def graded_check_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [
        c
        for c in nb.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
    ]


def sync(path: Path, check: bool = False) -> list[str]:
    """Bring the chapter's install cell and hidden tests up to date (unless ``check``); return
    what was (or, with ``check``, would be) changed."""
    if path.suffix == ".md":  # a page of the book: excerpts and the evidence table
        old = path.read_text()
        text = sync_chapter_table(sync_evidence_table(sync_excerpts(old)))
        if text != old and not check:
            path.write_text(text)
        return ["excerpts, evidence and chapter tables"] if text != old else []
    nb = nbformat.read(path, as_version=4)
    changes = []
    first = first_code_cell(nb)
    if first is not None and TAG in first.metadata.get("tags", []):
        if first.source != install_cell():
            changes.append("install cell")
            first.source = install_cell()
    else:
        changes.append("install cell added")
        cell = nbformat.v4.new_code_cell(install_cell(), metadata={"tags": [TAG, "remove-cell"]})
        nb.cells.insert(nb.cells.index(first) if first is not None else len(nb.cells), cell)
    for cell in graded_check_cells(nb):
        calls = _CHECK.findall(cell.source.split(HIDDEN)[0])
        if len(calls) != 1:
            raise ValueError(f"{path.name}: a graded cell must start with one check(...) call")
        wanted = check_cell(*calls[0])
        if not cell.source.startswith(wanted):
            changes.append(f"hidden test of {calls[0][0]}")
            rest = cell.source.split("### END HIDDEN TESTS")[-1] if HIDDEN in cell.source else ""
            visible = cell.source.split(HIDDEN)[0].split("\n", 1)
            extra = visible[1].strip("\n") if len(visible) > 1 else ""  # lines after check(...)
            cell.source = wanted + rest + (f"\n{extra}" if extra else "")
    quotes = stored_quotes(nb)
    for n, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        text = sync_quotes(sync_excerpts(cell.source), quotes, f"{path.name}, cell {n}")
        if text != cell.source:
            changes.append(f"markdown cell {n} (excerpts, quoted numbers)")
            cell.source = text
    if changes and not check:
        nbformat.write(nb, path)
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check, change nothing")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every chapter")
    args = parser.parse_args(argv)
    wrong = {p: c for p in (args.notebooks or chapters() + pages()) if (c := sync(p, check=args.check))}
    for p, changes in wrong.items():
        print(f"{p}: {'differs' if args.check else 'updated'}: {', '.join(changes)}")
    return int(bool(wrong) and args.check)


if __name__ == "__main__":
    sys.exit(main())
