"""Helpers shared by the package's tests (imported as ``from _helpers import …``)."""

from __future__ import annotations

import torch


def gen(seed: int) -> torch.Generator:
    """A fresh CPU generator with this seed: every random input of a test is reproducible."""
    return torch.Generator().manual_seed(seed)


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random parameters and BN running statistics, so that no term of the maths is trivially 0
    or 1; returns the module in eval mode."""
    g = gen(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return module.eval()
