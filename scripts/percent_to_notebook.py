"""Write a chapter notebook from a 'percent' text file (an authoring aid; the .ipynb is what is committed).

    python scripts/percent_to_notebook.py chapter.py book/chapter.ipynb

Cells start at lines beginning with ``# %%``. A header may carry:
  ``[markdown]``                   a markdown cell (its lines are taken as they are, no ``#`` prefix)
  ``tags=[hide-input, ...]``       cell tags
  ``nbgrader=solution:ID``         an nbgrader solution cell (put ### BEGIN/END SOLUTION inside)
  ``nbgrader=check:ID:POINTS``     an nbgrader graded check cell
Then run ``make execute`` (or scripts/execute_notebooks.py) to store outputs and widget state.
"""
import re
import sys

import nbformat

src, dst = sys.argv[1], sys.argv[2]
text = open(src).read()
cells = []
for block in re.split(r"^# %%", text, flags=re.M)[1:]:
    header, _, body = block.partition("\n")
    tags = re.findall(r"tags=\[([^\]]*)\]", header)
    tags = [t.strip().strip('"\'') for t in tags[0].split(",")] if tags else []
    body = body.strip("\n")
    if "[markdown]" in header:
        cell = nbformat.v4.new_markdown_cell(body)
    else:
        cell = nbformat.v4.new_code_cell(body)
    if tags:
        cell.metadata["tags"] = tags
    grading = re.findall(r"nbgrader=(solution|check):([\w.-]+)(?::(\d+))?", header)
    if grading:
        kind, gid, points = grading[0]
        meta = {"grade": kind == "check", "solution": kind == "solution", "locked": kind == "check",
                "grade_id": gid, "schema_version": 3}
        if kind == "check":
            meta["points"] = int(points or 1)
        cell.metadata["nbgrader"] = meta
    cells.append(cell)
nb = nbformat.v4.new_notebook(cells=cells)
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
nbformat.write(nb, dst)
print(f"{dst}: {len(cells)} cells")
