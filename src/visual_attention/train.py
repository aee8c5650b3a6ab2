"""The one small training loop every experiment in the book shares.

:func:`fit` trains a classifier with cross-entropy, shows progress with ``tqdm.auto`` and returns a
:class:`History`; :func:`evaluate` gives accuracy; :func:`seed_everything` makes a run repeatable
on one machine; :func:`fit_seeds` trains one model per seed and returns :class:`SeedRuns`, the
result every lab's ``run_seeds`` returns. The options of :func:`fit` cover the small-data
Transformer recipe of DeiT (Touvron et al., "Training data-efficient image transformers &
distillation through attention", ICML 2021), gathered in :data:`DEIT_RECIPE`: AdamW (Loshchilov &
Hutter, ICLR 2019), a linear warm-up then cosine decay of the learning rate (:func:`warmup_cosine`;
Loshchilov & Hutter, ICLR 2017), label smoothing (Szegedy et al., CVPR 2016) and random
translations (:func:`random_shift`). Accuracies still differ in the last digits across machines
(different CPUs sum floats in different orders), so chapters print them as machine-dependent
outputs with a floor asserted beside them.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ._checks import (
    check_bool,
    check_callable,
    check_choice,
    check_floating,
    check_int,
    check_module,
    check_number,
    check_pair,
    check_positive_int,
    check_positive_number,
    check_rank,
    check_seeds,
    check_str,
    check_xy,
)

__all__ = [
    "History",
    "seed_everything",
    "evaluate",
    "fit",
    "count_parameters",
    "fit_seeds",
    "SeedRuns",
    "random_shift",
    "warmup_cosine",
    "DEIT_RECIPE",
]

#: The options of :func:`fit` that make the small-data Transformer recipe (after DeiT), scaled down
#: for 8 × 8 digits: ``fit(model, train, test, epochs=…, **DEIT_RECIPE)``.
DEIT_RECIPE = {
    "optimizer": "adamw",
    "lr": 5e-3,
    "batch_size": 128,
    "weight_decay": 0.1,
    "warmup_epochs": 3,
    "label_smoothing": 0.1,
    "max_shift": 1,
}


@dataclass
class History:
    """What :func:`fit` measured: per-epoch mean training loss and accuracies, and wall time."""

    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final_test_accuracy(self) -> float:
        return self.test_accuracy[-1] if self.test_accuracy else float("nan")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a ``torch.Generator`` seeded the same way."""
    check_int("seed", seed, minimum=0)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    check_module("model", model)
    check_bool("trainable_only", trainable_only)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Accuracy of ``model`` on inputs ``x`` ``(N, ...)`` with labels ``y`` ``(N,)``, in eval
    mode (``x`` in the model's precision: half-precision inputs for a float32 model)."""
    check_module("model", model)
    check_xy(x, y, "x", "y")
    check_positive_int("batch_size", batch_size)
    x = _like_model(x, model)
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += (model(x[i : i + batch_size]).argmax(-1) == y[i : i + batch_size]).sum().item()
    model.train(was_training)
    return correct / max(len(x), 1)


def random_shift(
    images: torch.Tensor, max_shift: int = 1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Translate each image by its own random ``(dy, dx)``, ``|dy|, |dx| ≤ max_shift`` pixels,
    filling with zeros.

    The translation augmentation of small-image training (pad by ``max_shift``, crop back at a
    random offset). Input and output ``(B, C, H, W)``; ``max_shift = 0`` returns the images
    unchanged.
    """
    check_floating("images", images)
    check_rank("images", images, exactly=4, expected="(B, C, H, W)")
    check_int("max_shift", max_shift, minimum=0)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {generator!r}")
    if max_shift == 0:
        return images
    b, c, h, w = images.shape
    s = max_shift
    padded = F.pad(images, (s, s, s, s))  # (B, C, H + 2s, W + 2s)
    dy, dx = torch.randint(
        0, 2 * s + 1, (2, b), generator=generator
    )  # crop offsets; shift = s − offset
    rows = dy[:, None, None, None] + torch.arange(h)[None, None, :, None]
    cols = dx[:, None, None, None] + torch.arange(w)[None, None, None, :]
    return padded[
        torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols
    ]


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate factor at ``step``: linear warm-up to 1 over ``warmup_steps``, then cosine
    decay to 0.

    ``(step + 1) / warmup_steps`` during warm-up, then ``½ (1 + cos(π t))`` with ``t`` going from 0
    to 1 over the remaining steps (Loshchilov & Hutter, "SGDR", ICLR 2017, without restarts).
    """
    check_int("step", step, minimum=0)
    check_positive_int("total_steps", total_steps)
    check_int("warmup_steps", warmup_steps, minimum=0)
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"need total_steps >= 1 and 0 <= warmup_steps <= total_steps, got {total_steps}, "
            f"{warmup_steps}"
        )
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    epochs: int = 5,
    lr: float = 3e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    seed: int = 0,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
    desc: str = "training",
    optimizer: str = "adam",
    warmup_epochs: int | None = None,
    label_smoothing: float = 0.0,
    max_shift: int = 0,
) -> History:
    """Train ``model`` on ``train = (x, y)``; evaluate on ``test`` after every epoch.

    Args:
        model: maps ``(B, ...)`` inputs to ``(B, num_classes)`` logits.
        train: inputs ``(N, ...)`` (read in the model's precision) and int64 labels ``(N,)``.
        test: optional held-out ``(x, y)``.
        epochs, lr, batch_size, weight_decay: the usual.
        seed: seeds the parameter-free randomness of training (the shuffling order, the shifts);
            seed the model's initialisation yourself.
        loss_fn: ``(logits, labels) → loss``; defaults to cross-entropy (with
            ``label_smoothing``).
        progress: show a ``tqdm.auto`` bar over the batches of all epochs.
        optimizer: ``"adam"`` (weight decay as an L2 penalty) or ``"adamw"`` (decoupled weight
            decay).
        warmup_epochs: ``None`` keeps ``lr`` constant; a number ``w`` warms it up linearly over
            ``w`` epochs and then decays it along a cosine to 0, updated every step
            (:func:`warmup_cosine`).
        label_smoothing: of the default cross-entropy.
        max_shift: translate every training batch by up to this many pixels (:func:`random_shift`;
            inputs ``(N, C, H, W)``).

    Returns:
        the :class:`History`.
    """
    _check_fit(
        model,
        train,
        test,
        epochs,
        lr,
        batch_size,
        weight_decay,
        seed,
        loss_fn,
        progress,
        desc,
        optimizer,
        warmup_epochs,
        label_smoothing,
        max_shift,
    )
    x, y = _like_model(train[0], model), train[1]
    if loss_fn is None:

        def loss_fn(logits, labels):
            return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)

    gen = torch.Generator().manual_seed(seed)
    adam = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
    opt = adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    starts = _batch_starts(len(x), batch_size, _has_batch_norm(model))
    steps = len(starts)
    schedule = None
    if warmup_epochs is not None:
        schedule = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: warmup_cosine(step, epochs * steps, warmup_epochs * steps)
        )
    history = History()
    bar = tqdm(total=epochs * steps, desc=desc, disable=not progress, leave=False)
    start = time.perf_counter()
    # [start-fit-loop]
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total, correct, seen = 0.0, 0, 0
        for i, end in zip(starts, [*starts[1:], len(x)]):
            idx = order[i:end]
            batch = random_shift(x[idx], max_shift, gen) if max_shift else x[idx]
            logits = model(batch)
            loss = loss_fn(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if schedule is not None:
                schedule.step()
            total += loss.item() * len(idx)
            correct += (logits.argmax(-1) == y[idx]).sum().item()
            seen += len(idx)
            bar.update(1)
        # [end-fit-loop]
        history.loss.append(total / seen)
        history.train_accuracy.append(correct / seen)
        if test is not None:
            history.test_accuracy.append(evaluate(model, *test))
    bar.close()
    history.seconds = time.perf_counter() - start
    return history


class SeedRuns(NamedTuple):
    """What :func:`fit_seeds` returns, and with it every lab's ``run_seeds``: one entry per seed,
    in the order of the seeds. A tuple, so ``accuracies, models, histories = run`` unpacks it."""

    #: the final test accuracy of each seed's model
    accuracies: list[float]
    #: the trained models, in eval mode
    models: list[nn.Module]
    #: what :func:`fit` measured for each (``histories[i].test_accuracy``: after every epoch)
    histories: list[History]


def fit_seeds(
    make_model: Callable[[], nn.Module],
    train: tuple[torch.Tensor, torch.Tensor] | Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    test: tuple[torch.Tensor, torch.Tensor] | Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    seeds: Sequence[int],
    **options: object,
) -> SeedRuns:
    """Train one model per seed, as every chapter's experiment does, quietly.

    For each seed, :func:`seed_everything` seeds the model's initialisation (``make_model()``)
    and :func:`fit` (``seed=seed``) the data order; ``options`` go to :func:`fit`. Where each
    seed also draws its own data, ``train`` (and ``test``) may be a function ``seed → (x, y)``,
    called before the seed's model is made.

    Returns:
        :class:`SeedRuns`: the final test accuracy, the model (in eval mode) and the
        :class:`History` of each seed.
    """
    check_callable("make_model", make_model, what="() → a new model")
    check_seeds("seeds", seeds)
    if test is None:
        raise ValueError("test must be a pair (x, y): the seeds are compared by test accuracy")
    runs = SeedRuns([], [], [])
    for seed in seeds:
        drawn = train(seed) if callable(train) else train
        held_out = test(seed) if callable(test) else test
        seed_everything(seed)
        model = make_model()
        history = fit(model, drawn, held_out, seed=seed, progress=False, **options)
        runs.accuracies.append(history.final_test_accuracy)
        runs.models.append(model.eval())
        runs.histories.append(history)
    return runs


def _check_fit(
    model,
    train,
    test,
    epochs,
    lr,
    batch_size,
    weight_decay,
    seed,
    loss_fn,
    progress,
    desc,
    optimizer,
    warmup_epochs,
    label_smoothing,
    max_shift,
) -> None:
    """Validate the arguments of :func:`fit`."""
    check_module("model", model)
    x, _ = check_pair("train", train)
    if test is not None:
        check_pair("test", test)
    check_positive_int("epochs", epochs)
    check_positive_number("lr", lr)
    check_positive_int("batch_size", batch_size)
    check_number("weight_decay", weight_decay, 0.0)
    check_int("seed", seed, minimum=0)
    check_bool("progress", progress)
    check_str("desc", desc)
    check_callable("loss_fn", loss_fn, optional=True, what="(logits, labels) → loss")
    check_choice("optimizer", optimizer, ("adam", "adamw"))
    if warmup_epochs is not None and check_int("warmup_epochs", warmup_epochs, 0) > epochs:
        raise ValueError(f"warmup_epochs must be in [0, epochs = {epochs}], got {warmup_epochs}")
    check_number("label_smoothing", label_smoothing, 0.0, 1.0, high_open=True)
    if check_int("max_shift", max_shift, minimum=0):
        check_rank("train[0]", x, exactly=4, expected="(N, C, H, W)")


def _like_model(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Floating inputs ``x`` in the precision of ``model``'s parameters (the same tensor when they
    agree): half-precision data through a float32 model."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), x.dtype)
    return x.to(dtype) if x.is_floating_point() else x


def _has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _batch_starts(n: int, batch_size: int, no_single: bool) -> list[int]:
    """Where each batch starts; with ``no_single`` a last batch of one sample joins the one before
    (BatchNorm cannot normalise a single sample in training)."""
    starts = list(range(0, n, batch_size))
    if no_single and len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return starts
