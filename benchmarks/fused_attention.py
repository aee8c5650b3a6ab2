"""A training step of ``blocks.MultiHeadAttention`` against timm's fused ``Attention``.

The reference is timm's ``Attention`` (``timm/models/vision_transformer.py``) written out: one
``qkv`` linear, ``F.scaled_dot_product_attention`` (PyTorch's fused kernel), the output ``proj``;
no dropout, no q/k norm. Both modules get the same weights and inputs; one training step is a
forward pass, the sum of the output and its backward pass, gradients cleared before each. The
two run side by side in one process, alternating (each goes first in half the pairs), and the
table reports the fastest step of each (the least disturbed by the rest of the machine) and the
median. A third column times ours while :func:`visual_attention.core.record_attention` records
its weights: the path that materialises them, which is also what every step took before the
fused path existed.

    python benchmarks/fused_attention.py [--reps 200] [--smoke] [--out FILE]

Prints the table (Markdown); ``--out`` also writes it to a file. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from visual_attention.blocks import MultiHeadAttention
from visual_attention.core import record_attention

# (name, batch, tokens, dim, heads): a ViT-Ti/16 layer on 224² (197 tokens), the sizes of the
# multi-head chapter's small ViTs, and a larger batch of short sequences.
SIZES = [
    ("ViT-Ti/16 layer", 8, 197, 192, 3),
    ("chapter ViT", 64, 17, 64, 4),
    ("short sequences", 256, 16, 32, 4),
]
SMOKE_SIZES = [("tiny", 2, 5, 8, 2)]


class TimmAttention(nn.Module):
    """timm's ``Attention`` with the fused kernel: ``qkv`` → SDPA → ``proj``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


def _step(module: nn.Module, x: torch.Tensor) -> float:
    """Seconds of one training step: forward, backward of the output's sum."""
    for p in (x, *module.parameters()):
        p.grad = None
    start = time.perf_counter()
    module(x).sum().backward()
    return time.perf_counter() - start


def _recorded_step(module: nn.Module, x: torch.Tensor) -> float:
    with record_attention(module):
        return _step(module, x)


def measure(batch: int, tokens: int, dim: int, heads: int, reps: int) -> dict[str, list[float]]:
    """Step times of ours, the reference and ours recording, alternating so drift hits all."""
    torch.manual_seed(0)
    ours, ref = MultiHeadAttention(dim, heads).train(), TimmAttention(dim, heads).train()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(batch, tokens, dim, requires_grad=True)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)  # the same function
    runs = {
        "ours": lambda: _step(ours, x),
        "timm": lambda: _step(ref, x),
        "recorded": lambda: _recorded_step(ours, x),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():  # warm up
        fn(), fn()
    order = list(runs)
    for i in range(reps + reps % 2):
        for key in order if i % 2 == 0 else order[::-1]:
            times[key].append(runs[key]())
    return times


def table(sizes: list[tuple[str, int, int, int, int]], reps: int) -> list[str]:
    rows = [
        "| size | (B, N, D), heads | ours: fastest / median (ms) | timm-style fused: fastest / "
        "median (ms) | ratio of the fastest | ours recording the weights: fastest (ms) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, b, n, d, h in sizes:
        t = measure(b, n, d, h, reps)
        fast = {k: min(v) * 1e3 for k, v in t.items()}
        med = {k: statistics.median(v) * 1e3 for k, v in t.items()}
        ratio = fast["ours"] / fast["timm"]
        rows.append(
            f"| {name} | ({b}, {n}, {d}), {h} | {fast['ours']:.3f} / {med['ours']:.3f} | "
            f"{fast['timm']:.3f} / {med['timm']:.3f} | {ratio:.3f} {'✓' if ratio <= 1.05 else '✗'}"
            f" | {fast['recorded']:.3f} |"
        )
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=200, help="timed steps per module and size")
    parser.add_argument("--smoke", action="store_true", help="one tiny size, few steps")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    rows = table(SMOKE_SIZES if args.smoke else SIZES, 3 if args.smoke else args.reps)
    header = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    if args.out is not None:
        args.out.write_text(header + "\n\n" + "\n".join(rows) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
