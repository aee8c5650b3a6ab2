"""The one small training loop every experiment in the book shares.

:func:`fit` trains a classifier with Adam and cross-entropy, shows progress with ``tqdm.auto`` and
returns a :class:`History`; :func:`evaluate` gives accuracy; :func:`seed_everything` makes a run
repeatable on one machine. Accuracies still differ in the last digits across machines (different
CPUs sum floats in different orders), so chapters print them as machine-dependent outputs with a
floor asserted beside them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = ["History", "seed_everything", "evaluate", "fit", "count_parameters"]


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
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _check_xy(x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ValueError(f"{name}: inputs and labels must be tensors")
    if not x.is_floating_point():
        raise ValueError(f"{name}: inputs must be floating point, got {x.dtype}")
    if y.dtype != torch.long or y.ndim != 1:
        raise ValueError(f"{name}: labels must be a 1-d int64 tensor (N,), got {y.dtype} of shape {tuple(y.shape)}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: {x.shape[0]} inputs (N, ...) but {y.shape[0]} labels (N,)")


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Accuracy of ``model`` on inputs ``x`` ``(N, ...)`` with labels ``y`` ``(N,)``, in eval mode."""
    _check_xy(x, y, "evaluate")
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += (model(x[i : i + batch_size]).argmax(-1) == y[i : i + batch_size]).sum().item()
    model.train(was_training)
    return correct / max(len(x), 1)


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
) -> History:
    """Train ``model`` with Adam on ``train = (x, y)``; evaluate on ``test`` after every epoch.

    Args:
        model: maps ``(B, ...)`` inputs to ``(B, classes)`` logits.
        train: inputs ``(N, ...)`` and int64 labels ``(N,)``.
        test: optional held-out ``(x, y)``.
        epochs, lr, batch_size, weight_decay: the usual.
        seed: seeds the parameter-free randomness of training (the shuffling order).
        loss_fn: defaults to cross-entropy.
        progress: show a ``tqdm.auto`` bar over the batches of all epochs.

    Returns:
        the :class:`History`.
    """
    from tqdm.auto import tqdm

    x, y = train
    _check_xy(x, y, "train")
    if test is not None:
        _check_xy(*test, "test")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    loss_fn = loss_fn or nn.functional.cross_entropy
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = History()
    steps = (len(x) + batch_size - 1) // batch_size
    bar = tqdm(total=epochs * steps, desc=desc, disable=not progress, leave=False)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total, correct, seen = 0.0, 0, 0
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            logits = model(x[idx])
            loss = loss_fn(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += (logits.argmax(-1) == y[idx]).sum().item()
            seen += len(idx)
            bar.update(1)
        history.loss.append(total / seen)
        history.train_accuracy.append(correct / seen)
        if test is not None:
            history.test_accuracy.append(evaluate(model, *test))
    bar.close()
    history.seconds = time.perf_counter() - start
    return history
