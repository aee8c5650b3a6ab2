"""Tests of visual_attention.train: the shared training loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visual_attention.train import History, count_parameters, evaluate, fit, seed_everything


def _blobs(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.5 + torch.stack([y * 3.0, -y * 3.0], 1)
    return x, y


def test_fit_learns_a_separable_problem():
    seed_everything(0)
    model = nn.Linear(2, 2)
    x, y = _blobs()
    xt, yt = _blobs(seed=1)
    before = evaluate(model, xt, yt)
    h = fit(model, (x, y), (xt, yt), epochs=5, lr=0.05, batch_size=32, progress=False)
    assert isinstance(h, History)
    assert len(h.loss) == len(h.train_accuracy) == len(h.test_accuracy) == 5
    assert h.loss[-1] < h.loss[0]
    assert h.final_test_accuracy > 0.95 > before or h.final_test_accuracy > 0.95
    assert h.seconds > 0


def test_fit_is_repeatable_with_the_same_seed():
    x, y = _blobs()
    runs = []
    for _ in range(2):
        seed_everything(3)
        model = nn.Linear(2, 2)
        runs.append(fit(model, (x, y), epochs=2, lr=0.01, seed=7, progress=False).loss)
    assert runs[0] == runs[1]


def test_evaluate_restores_training_mode_and_counts_correctly():
    model = nn.Sequential(nn.Dropout(0.5), nn.Identity())
    model.train()
    x = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([1, 0, 1])
    assert evaluate(model, x, y) == pytest.approx(2 / 3)
    assert model.training


def test_count_parameters():
    m = nn.Linear(3, 4)
    assert count_parameters(m) == 16
    m.bias.requires_grad_(False)
    assert count_parameters(m) == 12 and count_parameters(m, trainable_only=False) == 16


@pytest.mark.parametrize(
    "x, y, match",
    [
        (torch.zeros(4, 2, dtype=torch.long), torch.zeros(4, dtype=torch.long), "floating point"),
        (torch.zeros(4, 2), torch.zeros(4), "1-d int64"),
        (torch.zeros(4, 2), torch.zeros(3, dtype=torch.long), r"4 inputs \(N, ...\) but 3 labels"),
    ],
)
def test_bad_data_is_rejected(x, y, match):
    with pytest.raises(ValueError, match=match):
        fit(nn.Linear(2, 2), (x, y), progress=False)


def test_bad_epochs_rejected():
    x, y = _blobs(10)
    with pytest.raises(ValueError, match="epochs and batch_size must be positive"):
        fit(nn.Linear(2, 2), (x, y), epochs=0, progress=False)
