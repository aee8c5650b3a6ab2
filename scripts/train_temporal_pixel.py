"""Train the temporal chapter's pixel-mode models and save them (make weights).

The task is the chapter's: ``labs.temporal.make_query_clips`` (each seed's own training clips,
the chapter's 2,000 test clips of held-out drawings), on the frozen encoder's feature maps per
frame (``drawing_maps``: 64 × 4 × 4, not pooled). ``PixelTemporalTransformer`` is trained once per
seed of ``PIXEL_RECIPE`` with the recipe of the chapter's frame-mode models. Writes
``src/visual_attention/labs/weights/temporal_pixel.pt``: the state dicts, each epoch's test
accuracy, the recipe and the fingerprint of the code that made them
(``tests/test_lab_temporal.py`` checks that the file and the code agree). About 70 s on two cores.
"""

from __future__ import annotations

import sys
import time

from visual_attention.labs import temporal as lab
from visual_attention.labs.common import save_runs
from visual_attention.labs.digits import load_digit_cnn


def main() -> None:
    start = time.perf_counter()
    r = lab.PIXEL_RECIPE
    encoder = load_digit_cnn()
    maps = {split: lab.drawing_maps(encoder, split) for split in ("train", "test")}
    _, y_test, d_test = lab.make_query_clips(r["test_clips"], split="test", seed=r["test_seed"])
    runs = lab.train_pixel_models(maps["train"], (maps["test"][d_test], y_test))
    path = save_runs(lab.PIXEL_WEIGHTS, runs, lab.PIXEL_RECIPE, lab.pixel_fingerprint())
    for name, run in runs.items():
        print(f"{name}: test accuracy per seed {[round(a, 3) for a in run.accuracies]}")
    size = path.stat().st_size / 1024
    print(f"{path}: {size:.0f} kB in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
