"""Re-execute chapter notebooks in place, storing outputs and widget state (``make execute``).

Each notebook runs in a fresh kernel from its own folder, as nbval and readers run it. Cell timing
metadata is not recorded, so that re-running an unchanged chapter leaves its file unchanged.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb,
        kernel_name="python3",
        timeout=600,
        store_widget_state=True,
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    for cell in nb.cells:  # execution counts from 1 in order, as a reader's run gives
        cell.get("metadata", {}).pop("execution", None)
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(paths: list[str]) -> None:
    if not paths:
        sys.exit("usage: execute_notebooks.py NOTEBOOK.ipynb [...]")
    for p in paths:
        seconds = execute(Path(p))
        print(f"{p}: executed in {seconds:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
