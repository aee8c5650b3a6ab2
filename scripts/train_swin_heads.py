"""Train the Swin heads of the hierarchical chapter's stage experiment and save them (make weights).

The task is the chapter's: ``labs.hierarchical.flagged_panels`` (2,000 training canvases, seed 0;
600 test canvases, seed 1), the frozen digit encoder's features averaged to ``8 × 8`` tokens
(``panel_tokens``). Every ``SWIN_HEADS`` entry is trained once per seed of ``SWIN_RECIPE``, each
seed on its own 1,500 training canvases. Writes ``src/visual_attention/labs/weights/
swin_heads.pt``: the state dicts, each epoch's test accuracy, the recipe and the fingerprint of the
code that made them (``tests/test_lab_hierarchical.py`` checks that the file and the code agree).
About two minutes on two cores.
"""

from __future__ import annotations

import sys
import time

import torch

from visual_attention.labs import hierarchical as lab
from visual_attention.labs.common import encode, save_runs


def main() -> None:
    torch.set_num_threads(2)
    start = time.perf_counter()
    x_train, y_train, _ = lab.flagged_panels(2000, "train", seed=0)
    x_test, y_test, _ = lab.flagged_panels(600, "test", seed=1)
    t_train, t_test = lab.panel_tokens(encode(x_train), encode(x_test))
    runs = lab.train_swin_heads((t_train, y_train), (t_test, y_test))
    save_runs(lab.SWIN_WEIGHTS, runs, lab.SWIN_RECIPE, lab.swin_fingerprint())
    for name, run in runs.items():
        print(f"{name}: test accuracy per seed {[round(a, 3) for a in run.accuracies]}")
    size = lab.SWIN_WEIGHTS.stat().st_size / 1024
    print(f"{lab.SWIN_WEIGHTS}: {size:.0f} kB in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
