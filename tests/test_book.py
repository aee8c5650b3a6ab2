"""The chapters show the package's code through excerpts that cannot drift silently.

Every ``{literalinclude}`` of a chapter is either ``:pyobject:`` on a function or method that is short
by itself, or cut by explicit markers (``# [start-name]`` / ``# [end-name]``) that occur exactly once
in the source file. Anchors such as ``:start-at: return`` would match whatever line comes first after
an edit; markers move with the code they frame.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
DIRECTIVE = re.compile(r"```\{literalinclude\}\s*(\S+)\n(.*?)```", re.S)
ALLOWED = {"pyobject", "start-after", "end-before", "dedent", "language", "caption", "emphasize-lines"}
MAX_PYOBJECT_LINES = 30


def excerpts():
    for path in sorted(BOOK.glob("*.ipynb")) + sorted(BOOK.glob("*.md")):
        if path.suffix == ".ipynb":
            texts = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]
        else:
            texts = [path.read_text()]
        for text in texts:
            for m in DIRECTIVE.finditer(text):
                options = dict(re.findall(r"^:([\w-]+):\s*(.*)$", m.group(2), re.M))
                yield pytest.param(path, m.group(1), options, id=f"{path.stem}:{m.group(1).split('/')[-1]}:"
                                   f"{options.get('pyobject') or options.get('start-after', '')}")


def unquote(value: str) -> str:
    return value.strip().strip('"').strip("'")


def find_object(tree: ast.Module, dotted: str) -> ast.AST | None:
    nodes: list[ast.AST] = list(tree.body)
    found = None
    for part in dotted.split("."):
        found = next((n for n in nodes if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part), None)
        if found is None:
            return None
        nodes = list(found.body)
    return found


@pytest.mark.parametrize(("page", "target", "options"), list(excerpts()))
def test_excerpts_are_cut_by_markers_or_are_short_objects(page, target, options):
    source = (page.parent / target).resolve()
    assert source.is_file(), f"{page.name}: {target} does not exist"
    unknown = set(options) - ALLOWED
    assert not unknown, f"{page.name} cuts {target} with {sorted(unknown)}: use markers or :pyobject:"
    text = source.read_text()
    if "start-after" in options or "end-before" in options:
        start, end = unquote(options.get("start-after", "")), unquote(options.get("end-before", ""))
        name = re.fullmatch(r"# \[start-([\w-]+)\]", start)
        assert name, f"{page.name}: start-after must be a '# [start-name]' marker, got {start!r}"
        assert end == f"# [end-{name.group(1)}]", f"{page.name}: end-before must be '# [end-{name.group(1)}]'"
        assert text.count(start) == 1 and text.count(end) == 1, f"markers of {name.group(1)} must be unique"
        assert text.index(start) < text.index(end)
        assert "pyobject" not in options
    else:
        assert "pyobject" in options, f"{page.name} includes all of {target}"
        node = find_object(ast.parse(text), options["pyobject"])
        assert node is not None, f"{page.name}: {options['pyobject']} is not in {target}"
        length = node.end_lineno - node.lineno + 1
        assert length <= MAX_PYOBJECT_LINES, (
            f"{page.name} shows {options['pyobject']} whole ({length} lines): cut it with markers"
        )


def test_every_marker_in_the_package_is_shown_somewhere():
    shown = {unquote(opts["start-after"]) for _, _, opts in (p.values for p in excerpts()) if "start-after" in opts}
    for path in (ROOT / "src" / "visual_attention").rglob("*.py"):
        for marker in re.findall(r"# \[start-[\w-]+\]", path.read_text()):
            assert marker in shown, f"{path.name}: {marker} is shown by no chapter (remove it or show it)"


# References: one BibTeX file, cited per page with {footcite} and listed by {footbibliography}.

BIBFILE = ROOT / "references.bib"
CITE = re.compile(r"\{(?:foot)?cite(?::\w+)?\}`([^`]+)`")
REFERENCES = re.compile(r"^## References[ \t]*\n(.*?)(?=^#{1,2} |\Z)", re.M | re.S)


def chapter_texts() -> dict[str, str]:
    """The markdown of every chapter and page of the book, cells joined."""
    texts = {}
    for path in sorted(BOOK.glob("*.ipynb")) + sorted(BOOK.glob("*.md")):
        if path.suffix == ".ipynb":
            cells = nbformat.read(path, as_version=4).cells
            texts[path.name] = "\n\n".join(c.source for c in cells if c.cell_type == "markdown")
        else:
            texts[path.name] = path.read_text()
    return texts


def cited_keys(text: str) -> set[str]:
    return {key.strip() for m in CITE.finditer(text) for key in m.group(1).split(",")}


def bib_entries():
    from pybtex.database import parse_file

    return parse_file(str(BIBFILE), bib_format="bibtex").entries


def test_bibliography_entries_are_complete():
    entries = bib_entries()
    assert entries, "references.bib is empty"
    for key, entry in entries.items():
        assert re.fullmatch(r"[a-z]+\d{4}[a-z]+", key), f"{key}: keys look like wang2018nonlocal"
        assert entry.persons.get("author"), f"{key} has no author"
        for field in ("title", "year"):
            assert entry.fields.get(field), f"{key} has no {field}"
        year = re.search(r"\d{4}", key).group()
        assert year == entry.fields["year"], f"{key}: the year in the key is not the entry's ({entry.fields['year']})"
        if entry.type == "misc":
            assert entry.fields.get("eprint"), f"{key}: a preprint needs its arXiv id (eprint)"
        else:
            assert entry.fields.get("booktitle") or entry.fields.get("journal"), f"{key} has no venue"


def test_every_citation_is_in_the_bibliography_and_every_entry_is_cited():
    known = {key.lower() for key in bib_entries()}
    used = set()
    for name, text in chapter_texts().items():
        keys = cited_keys(text)
        missing = sorted(k for k in keys if k.lower() not in known)
        assert not missing, f"{name} cites {missing}, which references.bib does not hold"
        used |= {k.lower() for k in keys}
    unused = sorted(known - used)
    assert not unused, f"references.bib holds {unused}, which no chapter cites"


@pytest.mark.parametrize("name", list(chapter_texts()))
def test_chapter_lists_its_citations_with_footbibliography(name):
    text = chapter_texts()[name]
    sections = REFERENCES.findall(text)
    assert len(sections) <= 1, f"{name} has {len(sections)} References sections"
    if sections:
        listed = [line for line in sections[0].splitlines() if re.match(r"\s*([-*+]|\d+\.)\s", line)]
        assert not listed, f"{name} keeps a hand-written reference list: {listed[0].strip()!r}; use {{footcite}}"
        assert "{footbibliography}" in sections[0], f"{name}: '## References' must hold a {{footbibliography}}"
    if cited_keys(text):
        assert "```{footbibliography}" in text, f"{name} cites works but has no {{footbibliography}}"
        assert sections, f"{name} cites works but has no '## References' section"
    uses_cite = re.search(r"\{cite(?::\w+)?\}`", text)
    assert not uses_cite, f"{name}: use the page-local {{footcite}}, not {{cite}} (one bibliography per page)"
