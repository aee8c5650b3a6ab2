"""Train the spatial chapter's stage experiment and save it (make weights).

The task is the chapter's: ``labs.spatial.cluttered_task`` (2,000 training canvases, seed 0; 500
test canvases, seed 1), the frozen encoder's lower stages (``lower_features``), standardised with
the training statistics. Every ``STAGE_MODELS`` entry (attention pooling, CBAM's gate, GAP, GMP,
hard attention with one and four glimpses) is trained once per seed of ``STAGE_RECIPE``, each seed
on its own 1,000 training canvases. Writes ``src/visual_attention/labs/weights/spatial_stage.pt``:
the state dicts, each epoch's test accuracy, the recipe and the fingerprint of the code that made
them (``tests/test_lab_spatial.py`` checks that the file and the code agree). About 45 s on two
cores.
"""

from __future__ import annotations

import sys
import time

from visual_attention.labs import spatial as lab
from visual_attention.labs.common import save_runs


def main() -> None:
    start = time.perf_counter()
    r = lab.STAGE_RECIPE
    x_train, y_train, _ = lab.cluttered_task(r["train_canvases"], split="train", seed=0)
    x_test, y_test, _ = lab.cluttered_task(r["test_canvases"], split="test", seed=1)
    f_train, f_test = lab.standardize(lab.lower_features(x_train), lab.lower_features(x_test))
    runs = lab.train_stage_models((f_train, y_train), (f_test, y_test))
    path = save_runs(lab.STAGE_WEIGHTS, runs, lab.STAGE_RECIPE, lab.stage_fingerprint())
    for name, run in runs.items():
        print(f"{name}: test accuracy per seed {[round(a, 3) for a in run.accuracies]}")
    size = path.stat().st_size / 1024
    print(f"{path}: {size:.0f} kB in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
