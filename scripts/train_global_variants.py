"""Train the global chapter's local-p and hard-attention readers and save them (make weights).

The task and seeds are those of the chapter's soft global reader: ``labs.global_attention.
reading_task`` (2,500 training canvases, seed 0; 500 test canvases, seed 1), the frozen digit
encoder's ``4 × 10`` map standardised with the training statistics, and per seed of
``VARIANT_RECIPE`` a reader on its own 2,000 training canvases (``train_readers``). Writes
``src/visual_attention/labs/weights/global_variants.pt``: the state dicts, the test scores, the
recipe and the fingerprint of the code that made them (``tests/test_lab_global_attention.py``
checks that the file and the code agree). The chapter evaluates them on its own test canvases.
About two minutes on two cores.
"""

from __future__ import annotations

import sys
import time

import torch

from visual_attention.labs import global_attention as lab


def main() -> None:
    torch.set_num_threads(2)
    start = time.perf_counter()
    recipe = lab.VARIANT_RECIPE
    x_pool, s_pool, _, _ = lab.reading_task(recipe["pool"], "train", seed=0)
    x_test, s_test, _, _ = lab.reading_task(recipe["test"], "test", seed=1)
    f_pool, f_test = lab.standardize(lab.token_features(x_pool), lab.token_features(x_test))
    readers, exact, digits = {}, {}, {}
    for kind in lab.VARIANTS:
        runs = lab.train_readers(
            [kind],
            (f_pool, s_pool),
            (f_test, s_test),
            seeds=recipe["seeds"],
            n_train=recipe["n_train"],
            epochs=recipe["epochs"][kind],
            **recipe["reader"][kind],
        )[kind]
        readers[kind] = [model.state_dict() for model in runs["models"]]
        exact[kind], digits[kind] = runs["exact"], runs["digits"]
        print(
            f"{kind}: exact string per seed {[round(a, 3) for a in runs['exact']]}, per digit "
            f"{[round(a, 3) for a in runs['digits']]}, {sum(runs['seconds']):.0f} s"
        )
    lab.VARIANT_WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    saved = {
        "readers": readers,
        "exact": exact,
        "digits": digits,
        "recipe": recipe,
        "fingerprint": lab.variants_fingerprint(),
    }
    torch.save(saved, lab.VARIANT_WEIGHTS)
    size = lab.VARIANT_WEIGHTS.stat().st_size / 1024
    print(f"{lab.VARIANT_WEIGHTS}: {size:.0f} kB in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
