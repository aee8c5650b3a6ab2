"""Train the local chapter's experiment 2 (five token mixers) and save it (make weights).

The task is the chapter's: ``labs.local_attention.neighbour_task`` ("is my digit one of my four
neighbours'?" on an ``8 × 8`` grid of digit tokens). Every ``MIXERS`` entry (windows with and
without the relative position bias, neighbourhood attention, a depthwise convolution + MLP, global
attention) is trained once per seed of ``TOKEN_RECIPE``, each seed on its own 600 training grids,
and tested on 400 test grids. Writes ``src/visual_attention/labs/weights/token_mixers.pt``: the
state dicts, each epoch's test accuracy, the recipe and the fingerprint of the code that made them
(``tests/test_lab_local_attention.py`` checks that the file and the code agree). About 40 s on two
cores.
"""

from __future__ import annotations

import sys
import time

from visual_attention.labs import local_attention as lab
from visual_attention.labs.common import save_runs


def main() -> None:
    start = time.perf_counter()
    r = lab.TOKEN_RECIPE
    test = lab.neighbour_task(r["test_grids"], "test", seed=r["test_seed"])
    runs = lab.train_token_mixers(test)
    path = save_runs(lab.TOKEN_WEIGHTS, runs, lab.TOKEN_RECIPE, lab.token_fingerprint(), half=True)
    for name, run in runs.items():
        print(f"{name}: per-token test accuracy per seed {[round(a, 3) for a in run.accuracies]}")
    size = path.stat().st_size / 1024
    print(f"{path}: {size:.0f} kB in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
