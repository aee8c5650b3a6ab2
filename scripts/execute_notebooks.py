"""Re-execute chapter notebooks in place, storing outputs and widget state (``make execute``); or,
with ``--check``, execute them under another arithmetic and store nothing (``make portable``).

Each notebook runs in a fresh kernel from its own folder, as nbval and readers run it. Cell timing
metadata is not recorded, so that re-running an unchanged chapter leaves its file unchanged. After
writing, ``scripts/sync_chapters.py`` brings the prose's quoted numbers up to date with the new
outputs.

``--check`` runs every chapter with PyTorch's portable kernels (``ATEN_CPU_CAPABILITY=default``:
no AVX2 or AVX-512) and one thread, ``--jobs`` chapters at a time: another machine's rounding, so
every training run takes another path. A chapter passes when no cell raises — its assertions are
floors and comparisons with a margin, not properties of one trajectory — and when every output
nbval compares (the cells not marked ``# NBVAL_IGNORE_OUTPUT``) is the stored one, after nbval's
sanitising (``tests/nbval-sanitize.cfg``): what the book stores, any machine reproduces.
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sync_chapters

#: The second arithmetic of ``--check``: PyTorch's kernels without AVX2/AVX-512, one thread.
PORTABLE_ENV = {
    "ATEN_CPU_CAPABILITY": "default",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}


ROOT = Path(__file__).resolve().parents[1]
#: What nbval does not compare: widget views and their reprs, SVG, the evidence and quote records
#: (conftest.py), images.
NOT_COMPARED = {
    "image/png",
    "image/jpeg",
    "image/svg+xml",
    "application/vnd.jupyter.widget-view+json",
    "application/vnd.visual-attention.evidence+json",
    "application/vnd.visual-attention.quote+json",
}


def sanitizers() -> list[tuple[re.Pattern, str]]:
    """nbval's sanitising patterns (``tests/nbval-sanitize.cfg``)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "tests" / "nbval-sanitize.cfg")
    return [(re.compile(config[s]["regex"]), config[s]["replace"]) for s in config.sections()]


def compared_text(cell: nbformat.NotebookNode) -> list[str]:
    """The outputs of a code cell as nbval compares them, sanitised; [] for an ignored cell."""
    if cell.cell_type != "code" or "NBVAL_IGNORE_OUTPUT" in cell.source:
        return []
    texts: list[str] = []
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        if "application/vnd.jupyter.widget-view+json" in data:
            continue
        if out.get("output_type") == "stream":  # consecutive chunks of a stream are one (nbval)
            head = f"{out.get('name')}: "
            if texts and texts[-1].startswith(head):
                texts[-1] += out.get("text", "")
            else:
                texts.append(head + out.get("text", ""))
        texts += [f"{k}: {v}" for k, v in sorted(data.items()) if k not in NOT_COMPARED]
    text = "\n".join(texts)
    for pattern, replace in sanitizers():
        text = pattern.sub(replace, text)
    return [text]


def differences(stored: nbformat.NotebookNode, run: nbformat.NotebookNode) -> list[str]:
    """The cells whose compared outputs differ between the stored notebook and a new run."""
    return [
        f"cell {n}: stored {a[0][:300]!r}\n        now    {b[0][:300]!r}"
        for n, (old, new) in enumerate(zip(stored.cells, run.cells))
        if (a := compared_text(old)) != (b := compared_text(new))
    ]


def execute(path: Path, write: bool = True) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` in a fresh kernel; store its outputs if ``write``; return the
    executed notebook."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb,
        kernel_name="python3",
        timeout=600,
        store_widget_state=write,
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    if write:
        for cell in nb.cells:  # execution counts from 1 in order, as a reader's run gives
            cell.get("metadata", {}).pop("execution", None)
        nbformat.write(nb, path)
        sync_chapters.sync(path)
        for page in sync_chapters.pages():  # the introduction's table of every chapter's evidence
            sync_chapters.sync(page)
    return nb


def check(paths: list[Path], jobs: int) -> int:
    """Execute every chapter under :data:`PORTABLE_ENV`; return how many failed."""
    os.environ.update(PORTABLE_ENV)  # the kernels inherit it

    def run(path: Path) -> tuple[Path, float, str | None]:
        start = time.perf_counter()
        stored = nbformat.read(path, as_version=4)
        try:
            changed = differences(stored, execute(path, write=False))
        except CellExecutionError as error:
            return path, time.perf_counter() - start, str(error)
        if changed:
            message = "outputs nbval compares differ under another arithmetic (mark the cell "
            message += "# NBVAL_IGNORE_OUTPUT and assert a floor in it):\n" + "\n".join(changed)
            return path, time.perf_counter() - start, message
        return path, time.perf_counter() - start, None

    failed = 0
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for path, seconds, error in pool.map(run, paths):
            print(f"{path}: {'FAILED' if error else 'passed'} in {seconds:.1f} s", flush=True)
            if error:
                failed += 1
                print(error[-3000:], flush=True)
    print(f"{len(paths) - failed} passed, {failed} failed")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="another arithmetic; store nothing")
    parser.add_argument("--jobs", type=int, default=2, help="chapters at a time with --check")
    args = parser.parse_args(argv)
    if args.check:
        return int(check(args.notebooks, args.jobs) > 0)
    for p in args.notebooks:
        start = time.perf_counter()
        execute(p)
        print(f"{p}: executed in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
