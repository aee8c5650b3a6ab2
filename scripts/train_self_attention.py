"""Train the self-attention chapter's two experiments and save them (make weights).

The tasks are the chapter's: "are the two digits the same?" on ``labs.self_attention.pair_task``
strips and "is the leftmost of three digits the repeated one?" on ``order_task`` strips, the
frozen encoder's column features standardised with each task's training statistics. Every
``SELF_MODELS`` entry is trained once per seed of ``SELF_RECIPE``, each seed on its own draw of
training strips. Writes ``src/visual_attention/labs/weights/self_attention.pt`` (float16): the
state dicts, each epoch's test accuracy, the recipe and the fingerprint of the code that made
them (``tests/test_lab_self_attention.py`` checks that the file and the code agree). About a
minute on two cores.
"""

from __future__ import annotations

import sys
import time

from visual_attention.labs import self_attention as lab
from visual_attention.labs.common import save_runs


def task(make, recipe: dict):
    x_train, y_train, _ = make(recipe["train"], split="train", seed=recipe["train_seed"])
    x_test, y_test, _ = make(recipe["test"], split="test", seed=recipe["test_seed"])
    f_train, f_test = lab.standardize(lab.strip_features(x_train), lab.strip_features(x_test))
    return (f_train, y_train), (f_test, y_test)


def main() -> None:
    start = time.perf_counter()
    r = lab.SELF_RECIPE
    tasks = {
        "same digit": task(lab.pair_task, r["same digit"]),
        "order": task(lab.order_task, r["order"]),
    }
    runs = lab.train_self_models(tasks)
    path = save_runs(lab.SELF_WEIGHTS, runs, r, lab.self_fingerprint(), half=True)
    for name, run in runs.items():
        print(f"{name}: test accuracy per seed {[round(a, 3) for a in run.accuracies]}")
    size = path.stat().st_size / 1024
    print(f"{path}: {size:.0f} kB in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
