"""Train the global chapter's readers and finders and save them (make weights).

The tasks are the chapter's: ``labs.global_attention.reading_task`` (2,500 training canvases of
2-4 digits, seed 0; 500 test canvases, seed 1) and ``finding_task`` (the same canvases, with
boxes), the frozen encoder's ``4 x 10`` feature maps standardised with the training statistics.
Every reader (``KINDS``: attention, pooled, flattened) and finder (``FINDERS``: object queries,
dense, flattened) is trained once per seed of ``MODEL_RECIPE``, each seed on its own 2,000
canvases. Writes ``src/visual_attention/labs/weights/global_models.pt`` (float16): the state
dicts, the stored scores, the recipe and the fingerprint of the code that made them
(``tests/test_lab_global_attention.py`` checks that the file and the code agree). About a minute
on two cores.
"""

from __future__ import annotations

import sys
import time

from visual_attention.labs import global_attention as lab
from visual_attention.labs.common import save_runs


def main() -> None:
    start = time.perf_counter()
    r = lab.MODEL_RECIPE
    x_pool, s_pool, _, _ = lab.reading_task(r["pool"], "train", seed=0)
    x_test, s_test, _, _ = lab.reading_task(r["test"], "test", seed=1)
    _, c_pool, _, box_pool = lab.finding_task(r["pool"], "train", seed=0)
    _, c_test, _, box_test = lab.finding_task(r["test"], "test", seed=1)
    f_pool, f_test = lab.standardize(lab.token_features(x_pool), lab.token_features(x_test))
    runs = lab.train_global_models(
        ((f_pool, s_pool), (f_test, s_test)),
        ((f_pool, c_pool, box_pool), (f_test, c_test, box_test)),
    )
    path = save_runs(lab.MODEL_WEIGHTS, runs, r, lab.models_fingerprint(), half=True)
    for name, run in runs.items():
        print(f"{name}: score per seed {[round(a, 3) for a in run.accuracies]}")
    size = path.stat().st_size / 1024
    print(f"{path}: {size:.0f} kB in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
