"""The chapters show the package's code through excerpts that cannot drift silently, and quote
only numbers their own outputs print.

Every excerpt is a Markdown code block that ``scripts/sync_chapters.py`` writes from the tested
source, so that it reads as code wherever the notebook is opened (the site, JupyterLab, Colab,
GitHub, a student version); no ``{literalinclude}``, which only Sphinx understands, is left. An
excerpt is one function or method that is short by itself, or the lines between explicit markers
(``# [start-name]`` / ``# [end-name]``) that occur exactly once in the source file: markers move with
the code they frame, where an anchor such as "the first ``return``" would not.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
sys.path.insert(0, str(ROOT / "scripts"))

import sync_chapters  # noqa: E402

MAX_OBJECT_LINES = 30
PAGES = sorted(BOOK.glob("*.ipynb")) + sorted(BOOK.glob("*.md"))


def markdown_cells(path: Path) -> list[str]:
    if path.suffix == ".ipynb":
        return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]
    return [path.read_text()]


def excerpts():
    for path in PAGES:
        for text in markdown_cells(path):
            for m in sync_chapters.EXCERPT.finditer(text):
                yield pytest.param(path, m, id=f"{path.stem}:{m['path'].split('/')[-1]}:{m['what']}")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_page_uses_a_directive_that_only_sphinx_shows(page):
    for text in markdown_cells(page):
        assert "{literalinclude}" not in text, f"{page.name}: write the excerpt with sync_chapters.py"
        opened, closed = text.count("<!-- excerpt:"), text.count("<!-- /excerpt -->")
        assert opened == closed == len(sync_chapters.EXCERPT.findall(text)), (
            f"{page.name}: every '<!-- excerpt: PATH WHAT -->' needs its '<!-- /excerpt -->'"
        )


def test_student_versions_show_the_excerpts_as_code():
    from visual_attention import assignments

    for path in sorted(BOOK.glob("*.ipynb")):
        student = assignments.student_version(nbformat.read(path, as_version=4), path.stem)
        text = "\n".join(c.source for c in student.cells if c.cell_type == "markdown")
        assert "{literalinclude}" not in text
        for m in sync_chapters.EXCERPT.finditer(text):
            assert f"```python\n{sync_chapters.excerpt_lines(m['path'], m['what'])[2]}\n```" in m["body"]


@pytest.mark.parametrize(("page", "match"), list(excerpts()))
def test_every_excerpt_is_the_exact_text_of_its_source(page, match):
    path, what = match["path"], match["what"]
    assert (ROOT / path).is_file(), f"{page.name}: {path} does not exist"
    first, last, code = sync_chapters.excerpt_lines(path, what)  # markers unique, object found
    assert match["body"] == sync_chapters.excerpt_body(path, what), (
        f"{page.name} shows {path} {what} as it was, not as it is: run python scripts/sync_chapters.py"
    )
    assert f"#L{first}-L{last})" in match["body"] and f"```python\n{code}\n```" in match["body"]
    if not what.startswith("["):
        assert last - first + 1 <= MAX_OBJECT_LINES, (
            f"{page.name} shows {what} whole ({last - first + 1} lines): cut it with markers"
        )


def test_an_edited_source_makes_the_excerpt_test_fail(tmp_path, monkeypatch):
    source = tmp_path / "src" / "mod.py"
    source.parent.mkdir()
    source.write_text("def f(x):\n    # [start-core]\n    y = x + 1\n    # [end-core]\n    return y\n")
    monkeypatch.setattr(sync_chapters, "ROOT", tmp_path)
    config = ROOT / "_config.yml"
    cell = f"<!-- excerpt: src/mod.py [core] -->\n{sync_chapters.excerpt_body('src/mod.py', '[core]', config)}"
    cell += "<!-- /excerpt -->"
    assert "```python\ny = x + 1\n```" in cell and "#L3-L3)" in cell
    assert sync_chapters.sync_excerpts(cell) == cell
    source.write_text(source.read_text().replace("x + 1", "x + 2"))
    assert "y = x + 2" in sync_chapters.sync_excerpts(cell) != cell
    assert "y = x + 2" in sync_chapters.excerpt_body("src/mod.py", "f", config)
    source.write_text(source.read_text().replace("    # [end-core]\n", ""))
    with pytest.raises(ValueError, match=r"\[end-core\]"):
        sync_chapters.excerpt_lines("src/mod.py", "[core]")


def test_every_marker_in_the_package_is_shown_somewhere():
    shown = {(m["path"], m["what"]) for p in excerpts() for m in [p.values[1]]}
    for path in (ROOT / "src" / "visual_attention").rglob("*.py"):
        relative = path.relative_to(ROOT).as_posix()
        for name in re.findall(r"# \[start-([\w-]+)\]", path.read_text()):
            assert (relative, f"[{name}]") in shown, f"{relative}: [start-{name}] is shown by no chapter"


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


# Measured numbers in prose: each is quoted from an output (sync_chapters.py writes it) or printed
# by one; numbers from papers stand in a sentence that cites them.

MEASURED = re.compile(
    r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?:\s?(ms|µs|s|MiB|MB|kB|KiB|GB|%)(?!\w))?(?![\w.]*\d)"
)
CITING = re.compile(r"\[cited\]|\b(Sec|Table|Tab|Fig|Eq|Eqs|Appendix)\.?\s|et al\.")


def stored_output_text(nb: nbformat.NotebookNode) -> str:
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            texts.append(out.get("text", ""))
            texts += [v for k, v in out.get("data", {}).items() if k in ("text/plain", "text/html")]
    return "\n".join(t if isinstance(t, str) else "".join(t) for t in texts)


def prose(text: str) -> str:
    """A markdown cell without what is not prose: code, math, excerpts, quotes, links' targets."""
    text = re.sub(r"\{footcite(?::\w+)?\}`[^`]*`", " [cited] ", text)  # CITING still sees it
    for pattern in (
        sync_chapters.EXCERPT.pattern, sync_chapters.QUOTE.pattern, r"```.*?```", r":::.*?:::",
        r"\$\$.*?\$\$", r"\$[^$\n]+\$", r"`[^`\n]+`", r"\]\([^)]*\)", r"<[^>\n]+>", r"\{[\w:-]+\}",
    ):
        text = re.sub(pattern, " ", text, flags=re.S)
    return text


def measured_numbers(text: str):
    """(number as written, its sentence) for each decimal number or number with a unit in prose."""
    for sentence in re.split(r"(?<=[.!?:;])\s+(?=[A-Z*(])|\n\n", text):
        for m in MEASURED.finditer(sentence):
            if m.group(2) or m.group(3):
                yield m.group(0), sentence


def printed(number: str, outputs: str) -> bool:
    """Whether the outputs print ``number`` (0.88 matches a printed 0.880, 0.20 a printed 0.2)."""
    value = re.match(r"[\d,]+(\.\d+)?", number).group(0)
    if "." in value:
        whole, fraction = value.split(".")
        value = f"{whole}.{fraction.rstrip('0') or '0'}"
    return re.search(rf"(?<![\d.]){re.escape(value)}0*(?![\d])", outputs) is not None


@pytest.mark.parametrize("path", sorted(BOOK.glob("*.ipynb")), ids=lambda p: p.name)
def test_every_measured_number_in_prose_comes_from_the_outputs(path):
    nb = nbformat.read(path, as_version=4)
    quotes, outputs = sync_chapters.stored_quotes(nb), stored_output_text(nb)
    missing = []
    for n, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for m in sync_chapters.QUOTE.finditer(cell.source):
            assert quotes.get(m["name"]) == m["text"], (
                f"{path.name}, cell {n}: quotes {m['name']} as {m['text']!r}, the outputs publish "
                f"{quotes.get(m['name'])!r}: run python scripts/sync_chapters.py"
            )
        for number, sentence in measured_numbers(prose(cell.source)):
            if not CITING.search(sentence) and not printed(number, outputs):
                missing.append(f"cell {n}: {number!r} in {' '.join(sentence.split())[:120]!r}")
    assert not missing, (
        f"{path.name}: measured numbers in prose that no output prints (quote them with "
        "views.evidence.quote, or cite the paper they come from):\n" + "\n".join(missing)
    )


def test_quoted_numbers_follow_the_outputs(tmp_path):
    from visual_attention.views.evidence import QUOTE_MIME, quote

    record = quote(display=False, global_ms="59.2 ms")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("Global attention takes <!-- quote: global_ms -->63 ms<!-- /quote -->."),
        nbformat.v4.new_code_cell("quote(global_ms=...)"),
    ]
    nb.cells[1].outputs = [nbformat.v4.new_output("display_data", data=record._repr_mimebundle_())]
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nb, path)
    assert "markdown cell 0 (excerpts, quoted numbers)" in sync_chapters.sync(path, check=True)
    sync_chapters.sync(path)
    assert "takes <!-- quote: global_ms -->59.2 ms<!-- /quote -->." in nbformat.read(path, 4).cells[0].source
    assert QUOTE_MIME in nb.cells[1].outputs[0].data
    nb.cells[0].source = "It takes <!-- quote: local_ms -->1 ms<!-- /quote -->."
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="local_ms"):
        sync_chapters.sync(path)
    stale = "It takes 63.0 ms, and 59.2 ms."
    found = [n for n, _ in measured_numbers(prose(stale)) if not printed(n, "forward: 59.2 ms")]
    assert found == ["63.0 ms"]


@pytest.mark.parametrize("path", sorted(BOOK.glob("*.ipynb")), ids=lambda p: p.name)
def test_a_plain_markdown_renderer_shows_every_excerpt_as_code_and_hides_the_markers(path):
    """What GitHub, Colab and JupyterLab do with a markdown cell: CommonMark, no MyST."""
    from markdown_it import MarkdownIt

    render = MarkdownIt("commonmark").render
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "markdown" or "<!-- excerpt:" not in cell.source:
            continue
        html = render(cell.source)
        for m in sync_chapters.EXCERPT.finditer(cell.source):
            code = sync_chapters.excerpt_lines(m["path"], m["what"])[2]
            escaped = code.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            assert f'<code class="language-python">{escaped}\n</code>' in html
        visible = re.sub(r"<!--.*?-->", "", html, flags=re.S)
        assert "excerpt:" not in visible and "{literalinclude}" not in visible


# The introduction's table of every chapter's evidence, written from the stored records.


def test_the_introductions_evidence_table_is_that_of_the_stored_records():
    intro = (BOOK / "intro.md").read_text()
    m = sync_chapters.EVIDENCE_TABLE.search(intro)
    assert m, "book/intro.md has no <!-- evidence-table --> … <!-- /evidence-table -->"
    assert m[2] == sync_chapters.evidence_table(), "run: python scripts/sync_chapters.py"
    records = [r for p in sorted(BOOK.glob("*.ipynb")) for r in sync_chapters.stored_evidence(nbformat.read(p, 4))]
    assert len(m[2].strip().splitlines()) == 2 + len(records) and records
    for r in records:  # every model of every record, with its parameters
        for side in (r["attention"], *r["controls"]):
            assert side["name"] in m[2]
            assert side.get("params") is None or f"{side['params']:,} params" in m[2]


def test_the_evidence_table_follows_a_changed_record(tmp_path):
    from visual_attention.views.evidence import report_evidence

    ev = report_evidence(
        "toy", "attention beats pooling", "accuracy", attention=("attn", (0.9, 0.92, 0.91), 100),
        controls=[("max", (0.6, 0.62, 0.61), 90), ("mean", (0.3, 0.31, 0.29), 80)], chance=0.1,
        display=False,
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("report_evidence(...)")]
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data=ev._repr_mimebundle_())]
    nbformat.write(nb, tmp_path / "toy.ipynb")
    table = sync_chapters.evidence_table([tmp_path / "toy.ipynb"])
    row = table.splitlines()[2]
    assert "attn: 0.910 ± 0.010, 100 params" in row and "max: 0.610 ± 0.010, 90 params" in row
    assert "mean: 0.300 ± 0.010, 80 params" in row and "| attention ahead | yes |" in row and "+0.300" in row
    page = tmp_path / "intro.md"
    page.write_text("Records:\n<!-- evidence-table -->\nstale\n<!-- /evidence-table -->\n")
    assert sync_chapters.EVIDENCE_TABLE.sub(lambda m: m[1] + table + m[3], page.read_text()).count("attn:") == 1


def test_the_instructors_table_of_chapters_is_that_of_the_chapters():
    page = (BOOK / "instructors.md").read_text()
    m = sync_chapters.CHAPTER_TABLE.search(page)
    assert m, "book/instructors.md has no <!-- chapter-table --> … <!-- /chapter-table -->"
    assert m[2] == sync_chapters.chapter_table(), "run: python scripts/sync_chapters.py"
    assert len(m[2].strip().splitlines()) == 2 + len(list(BOOK.glob("*.ipynb")))


def test_a_chapters_size_counts_prose_exercises_and_think_questions():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("One two three.\n\n```python\nnot prose at all\n```\n$$x + y$$"),
        nbformat.v4.new_markdown_cell(
            "**4. Think.** Why so?\n\n:::{admonition} Answer\n:class: dropdown\nhidden words\n:::\n"
        ),
        nbformat.v4.new_code_cell("check('x.y', f)", metadata={"nbgrader": {"grade": True, "points": 2}}),
    ]
    size = sync_chapters.chapter_size(nb)
    assert size == {"words": 7, "exercises": 1, "points": 2, "think": 1}


@pytest.mark.parametrize("path", sorted(BOOK.glob("*.ipynb")), ids=lambda p: p.name)
def test_no_chapter_sets_the_thread_count(path):
    # make portable runs every chapter on one thread (OMP_NUM_THREADS=1), two chapters at a
    # time: a chapter that sets its own thread count escapes that arithmetic and oversubscribes
    # the machine (a branch chapter that asked for two threads took 425 s there instead of 51 s)
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    assert "set_num_threads" not in code, f"{path.name} sets torch's thread count"
