"""Train the hierarchical chapter's main experiment and save it (make weights).

The task is the chapter's: ``labs.hierarchical.flagged_panels`` (2,000 training canvases, seed 0;
600 test canvases, seed 1), the frozen digit encoder's features standardised with the training
statistics. Every ``POOLS`` head (hierarchical attention pooling, region classifier + max, flat
attention pooling, the hierarchy on misaligned regions) is trained once per seed of
``REGION_RECIPE``, each seed on its own 1,500 training canvases. Writes
``src/visual_attention/labs/weights/region_heads.pt``: the state dicts, each epoch's test accuracy,
the recipe and the fingerprint of the code that made them (``tests/test_lab_hierarchical.py``
checks that the file and the code agree). About a minute on two cores.
"""

from __future__ import annotations

import sys
import time

from visual_attention.labs import hierarchical as lab
from visual_attention.labs.common import encode, save_runs, standardize


def main() -> None:
    start = time.perf_counter()
    x_train, y_train, _ = lab.flagged_panels(2000, "train", seed=0)
    x_test, y_test, _ = lab.flagged_panels(600, "test", seed=1)
    f_train, f_test = standardize(encode(x_train), encode(x_test))
    runs = lab.train_region_heads((f_train, y_train), (f_test, y_test))
    path = save_runs(lab.REGION_WEIGHTS, runs, lab.REGION_RECIPE, lab.region_fingerprint())
    for name, run in runs.items():
        print(f"{name}: test accuracy per seed {[round(a, 3) for a in run.accuracies]}")
    size = path.stat().st_size / 1024
    print(f"{path}: {size:.0f} kB in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
