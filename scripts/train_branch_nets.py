"""Train the branch chapter's experiment and save it (make weights).

The task is the chapter's: ``labs.branch.encoded_task`` (digits at two scales with clutter at
the other scale, through the frozen encoder), one draw per seed (``branch_draws``: 1,200 training
and 500 test canvases). Every ``MIXERS`` entry (SK, concatenation, a learned static mix, a fixed
half mix) is trained once per seed of ``BRANCH_RECIPE``. Writes
``src/visual_attention/labs/weights/branch_nets.pt`` (float16): the state dicts, each epoch's test
accuracy, the recipe and the fingerprint of the code that made them (``tests/test_lab_branch.py``
checks that the file and the code agree). About 40 s on two cores.
"""

from __future__ import annotations

import sys
import time

from visual_attention.labs import branch as lab
from visual_attention.labs.common import save_runs


def main() -> None:
    start = time.perf_counter()
    data = [d[0] for d in lab.branch_draws()]
    runs = lab.train_branch_nets(data)
    path = save_runs(
        lab.BRANCH_WEIGHTS, runs, lab.BRANCH_RECIPE, lab.branch_fingerprint(), half=True
    )
    for name, run in runs.items():
        print(f"{name}: test accuracy per seed {[round(a, 3) for a in run.accuracies]}")
    size = path.stat().st_size / 1024
    print(f"{path}: {size:.0f} kB in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
