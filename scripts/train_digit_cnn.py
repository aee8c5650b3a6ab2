"""Train the frozen digit encoder the chapters' experiments share and save its weights (make weights).

Writes ``src/visual_attention/labs/weights/digit_cnn.pt``: the state dict, the recipe, the
fingerprint of the code that made it and its test accuracy. Seeded: the same machine gives the same
file; ``tests/test_lab_digits.py`` checks that the file and this script agree.
"""

from __future__ import annotations

import sys

import torch

from visual_attention.labs.digits import RECIPE, WEIGHTS, recipe_fingerprint, train_digit_cnn


def main() -> None:
    torch.set_num_threads(2)
    model, accuracy = train_digit_cnn(progress=True)
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": model.state_dict(),
            "recipe": dict(RECIPE),
            "fingerprint": recipe_fingerprint(),
            "test_accuracy": accuracy,
        },
        WEIGHTS,
    )
    print(f"{WEIGHTS}: test accuracy {accuracy:.3f}, {WEIGHTS.stat().st_size / 1024:.0f} kB")


if __name__ == "__main__":
    sys.exit(main())
