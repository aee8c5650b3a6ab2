"""Tests of visual_attention.train: the shared training loop."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from _helpers import gen
from visual_attention.labs.multi_head import digit_vit
from visual_attention.train import (
    DEIT_RECIPE,
    History,
    count_parameters,
    evaluate,
    fit,
    random_shift,
    seed_everything,
    warmup_cosine,
)

SETTINGS = settings(max_examples=30, deadline=None)




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
        (torch.zeros(4, 2, dtype=torch.long), torch.zeros(4, dtype=torch.long), "floating-point tensor"),
        (torch.zeros(4, 2), torch.zeros(4), "1-d int64"),
        (torch.zeros(4, 2), torch.zeros(3, dtype=torch.long), r"must hold as many inputs as labels"),
    ],
)
def test_bad_data_is_rejected(x, y, match):
    with pytest.raises(ValueError, match=match):
        fit(nn.Linear(2, 2), (x, y), progress=False)


def test_bad_epochs_rejected():
    x, y = _blobs(10)
    with pytest.raises(ValueError, match="must be a positive integer, got 0"):
        fit(nn.Linear(2, 2), (x, y), epochs=0, progress=False)


@SETTINGS
@given(st.integers(1, 3), st.integers(0, 2), st.integers(0, 10_000))
def test_random_shift_is_a_zero_filled_translation(b, s, seed):
    x = torch.rand(b, 2, 5, 6, generator=gen(seed)) + 0.5  # no zeros inside the image
    out = random_shift(x, s, gen(seed + 1))
    assert out.shape == x.shape
    for i in range(b):
        shifted = []
        for dy in range(-s, s + 1):
            for dx in range(-s, s + 1):
                ref = torch.zeros_like(x[i])  # ref[r, c] = x[r - dy, c - dx] where that is inside
                ref[:, max(dy, 0) : 5 + min(dy, 0), max(dx, 0) : 6 + min(dx, 0)] = \
                    x[i, :, max(-dy, 0) : 5 - max(dy, 0), max(-dx, 0) : 6 - max(dx, 0)]
                shifted.append(torch.equal(out[i], ref))
        assert sum(shifted) == 1


def test_random_shift_uses_every_offset_and_validates():
    x = torch.zeros(400, 1, 3, 3)
    x[:, 0, 1, 1] = 1.0
    where = random_shift(x, 1, gen(0)).flatten(1).argmax(-1)
    assert set(where.tolist()) == set(range(9))  # the centre pixel lands on each of the 9 positions
    assert random_shift(x, 0) is x
    with pytest.raises(ValueError, match="max_shift must be an integer ≥ 0"):
        random_shift(x, -1)
    with pytest.raises(ValueError, match=r"images must have exactly 4 dimensions|\(B, C, H, W\)"):
        random_shift(torch.zeros(3, 3), 1)
    with pytest.raises(ValueError, match="float"):
        random_shift(torch.zeros(1, 1, 3, 3, dtype=torch.long), 1)


def test_warmup_cosine_schedule():
    f = [warmup_cosine(t, 100, 10) for t in range(100)]
    assert f[:10] == pytest.approx([(t + 1) / 10 for t in range(10)])
    assert f[10] == pytest.approx(1.0) and f[55] == pytest.approx(0.5)
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[-1] < 1e-3
    assert warmup_cosine(0, 5, 0) == 1.0
    with pytest.raises(ValueError, match="warmup_steps <= total_steps"):
        warmup_cosine(0, 5, 6)


def test_fit_with_the_deit_recipe_learns_a_small_task_and_validates():
    g = gen(3)
    y = torch.randint(0, 2, (96,), generator=g)
    x = torch.rand(96, 1, 8, 8, generator=g) * 0.2
    x[y == 1, :, :4] += 0.8  # class 1: a bright top half
    seed_everything(0)
    model = digit_vit(dim=8, depth=1, num_heads=2, stem_channels=4)
    recipe = {**DEIT_RECIPE, "lr": 1e-2, "batch_size": 32, "warmup_epochs": 1}
    hist = fit(model, (x, y), (x, y), epochs=6, progress=False, **recipe)
    assert len(hist.loss) == len(hist.test_accuracy) == 6 and hist.seconds > 0
    assert hist.loss[-1] < hist.loss[0] and evaluate(model, x, y) > 0.9
    with pytest.raises(ValueError, match="warmup_epochs"):
        fit(model, (x, y), epochs=2, warmup_epochs=3)
    with pytest.raises(ValueError, match="must be a 1-d int64 tensor of labels"):
        fit(model, (x, y.float()), epochs=1)
    with pytest.raises(ValueError, match="optimizer must be one of 'adam', 'adamw'"):
        fit(model, (x, y), epochs=1, optimizer="sgd")
    with pytest.raises(ValueError, match=r"train\[0\] must be 4-d \(N, C, H, W\)"):
        fit(model, (x.flatten(1), y), epochs=1, max_shift=1)


def test_fit_recipe_is_the_deit_loop_written_out():
    """One step of fit(**DEIT_RECIPE) is AdamW + warm-up/cosine + label smoothing + a shifted batch."""
    g = gen(5)
    x, y = torch.rand(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)
    torch.manual_seed(0)
    ours = digit_vit(dim=8, depth=1, num_heads=2, stem_channels=0)
    torch.manual_seed(0)
    ref = digit_vit(dim=8, depth=1, num_heads=2, stem_channels=0)
    fit(ours, (x, y), epochs=1, seed=3, progress=False,
        **{**DEIT_RECIPE, "batch_size": 16, "warmup_epochs": 1})
    shuffle = gen(3)
    order = torch.randperm(16, generator=shuffle)
    batch = random_shift(x[order], 1, shuffle)
    opt = torch.optim.AdamW(ref.parameters(), lr=DEIT_RECIPE["lr"] * warmup_cosine(0, 1, 1),
                            weight_decay=DEIT_RECIPE["weight_decay"])
    loss = nn.functional.cross_entropy(ref(batch), y[order], label_smoothing=0.1)
    loss.backward()
    opt.step()
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(a, b)


def test_fit_seeds_draws_each_seeds_data_from_a_function_before_its_model():
    from visual_attention.train import fit_seeds

    x, y = torch.randn(8, 3), torch.arange(8) % 2
    asked = []

    def draw(seed):
        asked.append(seed)
        return x[seed : seed + 4], y[seed : seed + 4]

    runs = fit_seeds(lambda: torch.nn.Linear(3, 2), draw, (x, y), (0, 2), epochs=1, batch_size=2)
    assert asked == [0, 2] and len(runs.models) == 2
    same = fit_seeds(lambda: torch.nn.Linear(3, 2), (x[2:6], y[2:6]), (x, y), (2,), epochs=1, batch_size=2)
    torch.testing.assert_close(runs.models[1].weight, same.models[0].weight)  # as a pair would give
