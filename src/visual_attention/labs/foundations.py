"""The lab of the Foundations chapter: a task where the network must learn where to look.

**Odd one out.** A ``3 × 3`` grid of handwritten digits shows eight digits of one class and one of
another; the answer is the class of the odd digit, wherever it sits. Averaging the nine digits'
features (mean pooling) drowns the odd digit in eight of the common class, so a classifier on the
mean cannot tell which class is odd. Attention can: additive scores
``e_i = w₂ᵀ tanh(W₁ x_i + W_q q + b₁)`` with the query ``q`` = the mean of the grid ("what the
grid mostly looks like") let each digit be compared with the rest, and the softmax can put its
weight on the odd one. Only the scores are learned: which digit to look at is never labelled.

Each digit is read by the frozen digit encoder (:mod:`visual_attention.labs.digits`), so only the
pooling and a linear classifier are trained: seconds per seed.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .._checks import (
    check_choice,
    check_instance,
    check_int,
    check_positive_int,
    check_seeds,
    check_tensor,
)
from ..blocks import AttentionPooling
from ..train import SeedRuns, fit_seeds
from .digits import DIGIT_SIZE, digits_at, load_digit_cnn

__all__ = ["OddOneOut", "odd_one_out", "OddOneOutNet", "run_seeds"]

GRID = 3


class OddOneOut(NamedTuple):
    """A batch of the task: ``images`` ``(N, 1, 48, 48)`` (the 3 × 3 grid of 16 × 16 digits),
    ``tokens`` ``(N, 9, 64)`` (the frozen encoder's vector of each digit, row-major), ``labels``
    ``(N,)`` (the odd digit's class) and ``positions`` ``(N,)`` (its index 0-8 in the grid)."""

    images: torch.Tensor
    tokens: torch.Tensor
    labels: torch.Tensor
    positions: torch.Tensor


@torch.no_grad()
def odd_one_out(n: int, split: str = "train", seed: int = 0) -> OddOneOut:
    """``n`` grids of nine digits from ``split`` (``"train"``: the first 1,200 scikit-learn digits,
    ``"test"``: the other 597): eight of a random class, one of another class at a random place.
    The same arguments give the same grids."""
    check_positive_int("n", n)
    check_choice("split", split, ("train", "test")), check_int("seed", seed, 0)
    x, y = digits_at(DIGIT_SIZE, split)
    g = torch.Generator().manual_seed(seed)
    k = GRID * GRID
    common = torch.randint(10, (n,), generator=g)
    odd = (common + torch.randint(1, 10, (n,), generator=g)) % 10  # any other class
    positions = torch.randint(k, (n,), generator=g)
    classes = common[:, None].repeat(1, k)
    classes[torch.arange(n), positions] = odd
    by_class = [torch.nonzero(y == c).flatten() for c in range(10)]
    pick = torch.randint(1 << 30, (n, k), generator=g)
    index = torch.empty(n, k, dtype=torch.long)
    for c in range(10):  # a random digit of the right class in every cell
        cells = classes == c
        index[cells] = by_class[c][pick[cells] % len(by_class[c])]
    vectors = load_digit_cnn().feature_map(x).mean(dim=(2, 3))  # (N_digits, 64), once
    s = DIGIT_SIZE
    images = x[index].reshape(n, GRID, GRID, s, s).permute(0, 1, 3, 2, 4)
    return OddOneOut(images.reshape(n, 1, GRID * s, GRID * s), vectors[index], odd, positions)


class OddOneOutNet(nn.Module):
    """Pool the nine digit vectors, then a linear classifier.

    ``pool="attention"``: :class:`~visual_attention.blocks.AttentionPooling` with the mean of the
    vectors as its query (``e_i = w₂ᵀ tanh(W₁ x_i + W_q x̄ + b₁)``, softmax over the nine digits);
    ``pool="mean"``: the plain mean, the control that differs only by the mechanism.

    Shapes: tokens ``(B, 9, 64)`` → logits ``(B, 10)``; with attention the weights ``(B, 9)`` are
    recorded (``record_attention``, under the name ``"pool"``).
    """

    def __init__(self, pool: str = "attention", dim: int = 64, hidden_dim: int = 32) -> None:
        super().__init__()
        self.mode = check_choice("pool", pool, ("attention", "mean"))
        self.dim = check_positive_int("dim", dim)
        check_positive_int("hidden_dim", hidden_dim)
        self.pool = (
            AttentionPooling(dim, hidden_dim, query_dim=dim) if pool == "attention" else None
        )
        self.head = nn.Linear(dim, 10)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        check_tensor("tokens", tokens, "(B, N, C)", C=self.dim)
        mean = tokens.mean(dim=1)  # x̄: what the grid mostly looks like
        pooled = mean if self.pool is None else self.pool(tokens, query=mean)
        return self.head(pooled)


def run_seeds(
    train: OddOneOut, test: OddOneOut, pool: str, seeds=(0, 1, 2), epochs: int = 30
) -> SeedRuns:
    """Train one :class:`OddOneOutNet` per seed (Adam 1e-2, batches of 128) on the tokens of
    ``train``; return :class:`~visual_attention.train.SeedRuns`: the final test accuracies, the
    networks (eval mode) and their histories (the test accuracy after every epoch)."""
    check_instance("train", train, OddOneOut), check_instance("test", test, OddOneOut)
    check_choice("pool", pool, ("attention", "mean")), check_seeds("seeds", seeds)
    check_positive_int("epochs", epochs)
    return fit_seeds(
        lambda: OddOneOutNet(pool),
        (train.tokens, train.labels),
        (test.tokens, test.labels),
        seeds,
        epochs=epochs,
        lr=1e-2,
        batch_size=128,
    )
