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


def test_fit_applies_the_schedule_every_step_and_augments_every_batch():
    x, y = _blobs(n=64)
    seen = []
    seed_everything(0)
    model = nn.Linear(2, 2)

    def augment(batch, generator):
        seen.append((len(batch), isinstance(generator, torch.Generator)))
        return batch + 0.0

    h = fit(model, (x, y), epochs=2, lr=0.1, batch_size=16, progress=False,
            lr_schedule=lambda step: 1.0 / (step + 1), augment=augment)
    assert seen == [(16, True)] * 8 and len(h.loss) == 2
    # the same run without hooks gives a different trajectory: the schedule shrank the steps
    seed_everything(0)
    plain = fit(nn.Linear(2, 2), (x, y), epochs=2, lr=0.1, batch_size=16, progress=False)
    assert plain.loss != h.loss


def test_decoupled_weight_decay_is_adamw():
    x, y = _blobs(n=64)
    results = []
    for make in ("fit", "adamw"):
        seed_everything(0)
        model = nn.Linear(2, 2)
        if make == "fit":
            fit(model, (x, y), epochs=1, lr=0.05, batch_size=64, weight_decay=0.5, decoupled_weight_decay=True,
                progress=False)
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.5)
            order = torch.randperm(64, generator=torch.Generator().manual_seed(0))
            loss = nn.functional.cross_entropy(model(x[order]), y[order])
            opt.zero_grad()
            loss.backward()
            opt.step()
        results.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(*results))


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
