"""Benchmarks of the book's implementations, on this machine, written to benchmarks/results.md.

    python benchmarks/run.py            # everything (make bench)
    python benchmarks/run.py --smoke    # tiny sizes, to check that it runs (the test suite does this)
    python benchmarks/run.py --only speed --cases core. --out /tmp/r.md   # some rows of section 1 only

1. **Speed against references**: the median time of forward + backward of each module of
   ``visual_attention`` and of a reference on the same inputs and weights, measured side by side in
   one run (alternating calls), reported as a ratio (ours / reference; < 1 is faster). Each
   reference does the same work as ours: where ours keeps the attention weights, so does the
   reference (their softmax is materialised); ours runs without weights (``need_weights=False``)
   only against references that return none (the fused kernels), and the table says so.
2. **Cost against image size**: peak memory allocated by PyTorch and time of global attention,
   window attention, chunked (online-softmax) attention and linear attention at 256 … 4096 tokens
   (16² … 64²), with the growth exponent fitted on a log-log scale.
3. **Notebooks**: execution time of every chapter in a fresh kernel.
4. **Pages**: the weight of every built page (needs ``make book`` and Chromium).

Timings depend on the machine and on what else runs on it; nothing here is a test.

Unless ``--system-malloc`` is given, glibc's allocator is told (``mallopt``) to serve blocks up to
32 MiB from its heap and to keep freed memory: otherwise each large tensor (a 10 MB activation,
a gradient) may be a fresh ``mmap`` whose page faults cost as much as the arithmetic, and whether
it is depends on what the allocator saw before — the same code then measured 1.00× or 1.25× its
reference depending on which rows ran first. Both sides of every comparison run under the same
setting; the header of results.md says which was used.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


# --- timing -----------------------------------------------------------------------------------------


def _fwd_bwd(fn: Callable[[], torch.Tensor], params: list[torch.Tensor]) -> float:
    for p in params:
        p.grad = None
    start = time.perf_counter()
    out = fn()
    out = out[0] if isinstance(out, tuple) else out
    out.float().sum().backward()
    return time.perf_counter() - start


def side_by_side(ours: Callable, reference: Callable, params: list[torch.Tensor], reps: int) -> tuple[float, float]:
    """Median fwd+bwd seconds of ``ours`` and ``reference``, calls alternating so drift hits both.

    ``reps`` is rounded up to an even number, so that each side runs first in exactly half the pairs.
    """
    for _ in range(2):  # warm up
        _fwd_bwd(ours, params)
        _fwd_bwd(reference, params)
    a, b = [], []
    for i in range(reps + reps % 2):
        if i % 2 == 0:
            a.append(_fwd_bwd(ours, params))
            b.append(_fwd_bwd(reference, params))
        else:
            b.append(_fwd_bwd(reference, params))
            a.append(_fwd_bwd(ours, params))
    return statistics.median(a), statistics.median(b)


# --- 1. speed against references ----------------------------------------------------------------------


def speed_cases(smoke: bool) -> list[tuple[str, str, Callable, Callable, list[torch.Tensor], float]]:
    """(what, reference, ours, reference fn, params, floor) for every module with a reference."""
    from visual_attention import query_attention, scaled_dot_product_attention

    torch.manual_seed(0)
    b, h, n, d = (2, 2, 16, 8) if smoke else (8, 4, 256, 32)
    q, k, v = (torch.randn(b, h, n, d, requires_grad=True) for _ in range(3))
    cases = [
        ("core.scaled_dot_product_attention",
         "the same maths written plainly (softmax(QKᵀ/√d)V); both materialise the weights",
         lambda: scaled_dot_product_attention(q, k, v)[0],
         lambda: torch.softmax(q @ k.transpose(-2, -1) * d**-0.5, -1) @ v, [q, k, v], 1.10),
        ("core.scaled_dot_product_attention",
         "torch.nn.functional.scaled_dot_product_attention (fused); ours with need_weights=False",
         lambda: scaled_dot_product_attention(q, k, v, need_weights=False)[0],
         lambda: F.scaled_dot_product_attention(q, k, v), [q, k, v], 1.10),
    ]
    c, hh, ww = (4, 4, 4) if smoke else (64, 32, 32)
    fmap = torch.randn(b, c, hh, ww, requires_grad=True)
    query = torch.randn(b, c, requires_grad=True)

    def plain_query():
        w = torch.softmax(torch.einsum("bchw,bc->bhw", fmap, query).flatten(1), -1)
        return torch.einsum("bn,bcn->bc", w, fmap.flatten(2))

    cases.append(("core.query_attention", "einsum + softmax written plainly",
                  lambda: query_attention(fmap, query)[1], plain_query, [fmap, query], 1.10))
    cases += _module_cases(smoke)
    return cases


def _module_cases(smoke: bool) -> list:
    """Modules written by the chapters, each against a reference on the same weights."""
    cases = []
    b, c, s = (2, 32, 8) if smoke else (16, 256, 28)
    x = torch.randn(b, c, s, s, requires_grad=True)
    from visual_attention.channel import EfficientChannelAttention, SqueezeExcitation

    se = SqueezeExcitation(c)
    fc1, fc2 = [m for m in se.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][:2]

    def plain_se():
        z = x.mean((2, 3), keepdim=True)
        if isinstance(fc1, nn.Linear):
            z = z.flatten(1)
        gate = torch.sigmoid(fc2(torch.relu(fc1(z))))
        return x * gate.reshape(b, c, 1, 1)

    cases.append(("channel.SqueezeExcitation", "GAP → FC → ReLU → FC → sigmoid, written plainly",
                  lambda: se(x), plain_se, [x, *se.parameters()], 1.10))
    eca = EfficientChannelAttention(c)
    conv = next(m for m in eca.modules() if isinstance(m, nn.Conv1d))

    def plain_eca():
        z = x.mean((2, 3)).unsqueeze(1)  # (B, 1, C)
        return x * torch.sigmoid(conv(z)).reshape(b, c, 1, 1)

    cases.append(("channel.EfficientChannelAttention", "GAP → conv1d → sigmoid, written plainly",
                  lambda: eca(x), plain_eca, [x, *eca.parameters()], 1.10))
    # the Transformer kit's attention against torch's
    from visual_attention.blocks import MultiHeadAttention

    n, dim, heads = (16, 16, 2) if smoke else (197, 192, 3)
    tokens = torch.randn(8 if not smoke else 2, n, dim, requires_grad=True)
    ours = MultiHeadAttention(dim, heads)
    ref = nn.MultiheadAttention(dim, heads, batch_first=True)
    _copy_mha(ours, ref)
    cases.append(("blocks.MultiHeadAttention", "torch.nn.MultiheadAttention (need_weights=True)",
                  lambda: ours(tokens), lambda: ref(tokens, tokens, tokens, need_weights=True)[0],
                  [tokens, *ours.parameters(), *ref.parameters()], 1.05))
    cases.append(("blocks.MultiHeadAttention", "torch.nn.MultiheadAttention (need_weights=False, fused)",
                  lambda: ours(tokens), lambda: ref(tokens, tokens, tokens, need_weights=False)[0],
                  [tokens, *ours.parameters(), *ref.parameters()], 1.05))
    return cases


def _copy_mha(ours: nn.Module, ref: nn.MultiheadAttention) -> None:
    """Give torch's module our weights: ``qkv`` is torch's stacked ``in_proj``, ``proj`` its ``out_proj``."""
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv.weight)
        ref.in_proj_bias.copy_(ours.qkv.bias)
        ref.out_proj.weight.copy_(ours.proj.weight)
        ref.out_proj.bias.copy_(ours.proj.bias)


def run_speed(smoke: bool, cases: list[str] | None = None, reps: int | None = None) -> list[str]:
    """Section 1; ``cases`` keeps only the rows whose module name contains one of these strings."""
    reps = reps or (3 if smoke else 21)
    rows = ["| module | reference | ours (ms) | reference (ms) | ratio | floor |", "|---|---|---:|---:|---:|---:|"]
    for name, ref_name, ours, ref, params, floor in speed_cases(smoke):
        if cases and not any(c in name for c in cases):
            continue
        a, b = side_by_side(ours, ref, params, reps)
        ratio = a / b
        mark = "✓" if ratio <= floor else "✗"
        rows.append(f"| {name} | {ref_name} | {a * 1e3:.2f} | {b * 1e3:.2f} | {ratio:.2f} {mark} | ≤ {floor:.2f} |")
        print(rows[-1], flush=True)
    return rows


# --- 2. cost against image size ---------------------------------------------------------------------------


def _peak(fn: Callable[[], object]) -> int:
    from visual_attention.labs.efficient_attention import peak_memory

    return peak_memory(fn)


def run_scaling(smoke: bool) -> list[str]:
    from visual_attention import scaled_dot_product_attention
    from visual_attention.efficient import chunked_attention, linear_attention

    sides = [4, 6, 8] if smoke else [16, 24, 32, 48, 64]
    dim, window, chunk = 32, 8, 256
    methods: dict[str, Callable[[torch.Tensor], object]] = {
        "global (weights kept)": lambda t: scaled_dot_product_attention(t, t, t)[0],
        "chunked, online softmax (exact)": lambda t: chunked_attention(t, t, t, chunk_size=chunk),
        "linear (elu+1 kernel)": lambda t: linear_attention(t, t, t),
    }
    try:
        from visual_attention.local_attention import window_partition

        def windowed(t: torch.Tensor, side: int) -> object:
            win = min(window, side)
            grid = t.reshape(1, side, side, dim)
            w = window_partition(grid, win).reshape(-1, win * win, dim)
            return scaled_dot_product_attention(w, w, w)[0]

        methods["window 8×8 (local)"] = None  # filled per size below
    except ImportError:
        windowed = None
    rows = ["| tokens | " + " | ".join(f"{m}: memory / time" for m in methods) + " |",
            "|---:|" + "---:|" * len(methods)]
    series: dict[str, list[tuple[int, int, float]]] = {m: [] for m in methods}
    for side in sides:
        n = side * side
        t = torch.randn(1, n, dim)
        cells = []
        for m, fn in methods.items():
            call = (lambda: windowed(t, side)) if fn is None else (lambda fn=fn: fn(t))
            with torch.no_grad():
                mem = _peak(call)
                start = time.perf_counter()
                for _ in range(3):
                    call()
                sec = (time.perf_counter() - start) / 3
            series[m].append((n, mem, sec))
            cells.append(f"{mem / 2**20:.2f} MiB / {sec * 1e3:.1f} ms")
        rows.append(f"| {n} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    rows.append("| growth exponent (memory, time) | " + " | ".join(
        f"{_slope([(a, b) for a, b, _ in s]):.2f}, {_slope([(a, c) for a, _, c in s]):.2f}" for s in series.values()
    ) + " |")
    return rows


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of log(y) against log(x)."""
    pts = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y > 0]
    if len(pts) < 2:
        return float("nan")
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den if den else float("nan")


# --- 3. notebooks, 4. pages -------------------------------------------------------------------------------


#: The developers' guide's budgets for executing the chapters on the 2-core machine, in seconds.
CHAPTER_BUDGET, BOOK_BUDGET = 60, 480


def run_notebooks(smoke: bool) -> list[str]:
    sys.path.insert(0, str(ROOT / "scripts"))
    import execute_notebooks

    paths = [ROOT / "book" / "foundations.ipynb"] if smoke else sorted((ROOT / "book").glob("*.ipynb"))
    rows = ["| chapter | execution time (fresh kernel) |", "|---|---:|"]
    total = slowest = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for p in paths:
            copy = Path(tmp) / p.name
            copy.write_bytes(p.read_bytes())
            start = time.perf_counter()
            execute_notebooks.execute(copy)
            seconds = time.perf_counter() - start
            rows.append(f"| {p.stem} | {seconds:.1f} s |")
            total += seconds
            slowest = max(slowest, seconds)
            print(rows[-1], flush=True)
    rows.append(f"| **all {len(paths)}** | **{total:.1f} s** |")
    rows.append("")
    rows.append(
        f"Budgets: each chapter ≤ {CHAPTER_BUDGET} s (slowest here {slowest:.1f} s), the book ≤ "
        f"{BOOK_BUDGET} s ({total:.1f} s), on the 2-core machine."
    )
    return rows


def run_pages() -> list[str]:
    if not (ROOT / "_build" / "html" / "index.html").exists():
        return ["(site not built: run `make book` first)"]
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "site_report.py")], capture_output=True, text=True)
    return out.stdout.strip().splitlines() or [f"(site report failed: {out.stderr.strip()[-300:]})"]


def keep_freed_memory() -> str:
    """Make glibc's malloc reuse freed memory instead of returning it to the system (see the module notes).

    ``M_MMAP_THRESHOLD`` = 32 MiB (the largest allowed; setting it also stops glibc from moving it)
    and ``M_TRIM_THRESHOLD`` = 1 GiB. Returns a line for the header of results.md.
    """
    m_trim_threshold, m_mmap_threshold = -1, -3
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(m_mmap_threshold, 32 * 2**20) == 1 and libc.mallopt(m_trim_threshold, 2**30) == 1
    except (OSError, AttributeError):
        ok = False
    if not ok:
        return "Allocator: system default (glibc mallopt not available)."
    return ("Allocator: glibc malloc keeps freed memory (mallopt M_MMAP_THRESHOLD = 32 MiB, "
            "M_TRIM_THRESHOLD = 1 GiB), so timings count arithmetic, not page faults of fresh buffers.")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads; "
            f"Python {platform.python_version()}, torch {torch.__version__}, {platform.system()} {platform.release()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, few repetitions")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.md")
    sections_keys = ["speed", "scaling", "notebooks", "pages"]
    parser.add_argument("--skip", nargs="*", default=[], choices=sections_keys)
    parser.add_argument("--only", nargs="*", default=[], choices=sections_keys,
                        help="run only these sections (speed = forward + backward against references)")
    parser.add_argument("--cases", nargs="*", default=[],
                        help="speed section: only the modules whose name contains one of these strings")
    parser.add_argument("--reps", type=int, default=None, help="speed section: timed repetitions (default 21)")
    parser.add_argument("--system-malloc", action="store_true",
                        help="leave glibc's allocator at its defaults (large buffers mmap'd and returned)")
    args = parser.parse_args(argv)
    allocator = "Allocator: system default (--system-malloc)." if args.system_malloc else keep_freed_memory()
    torch.manual_seed(0)
    parts = [f"# Benchmarks\n\nMachine: {machine()}\n\n{allocator}\n\n"
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
             + (" — **smoke run (tiny sizes)**" if args.smoke else "")]
    sections = [
        ("speed", "## Forward + backward against references (median, side by side)",
         lambda: run_speed(args.smoke, args.cases, args.reps)),
        ("scaling", "## Peak memory and time against the number of tokens (one image, dim 32, no grad)",
         lambda: run_scaling(args.smoke)),
        ("notebooks", "## Chapter notebooks", lambda: run_notebooks(args.smoke)),
        ("pages", "## Built pages", run_pages),
    ]
    for key, title, fn in sections:
        if key in args.skip or (args.only and key not in args.only) or (args.smoke and key == "pages"):
            continue
        print(f"\n{title}", flush=True)
        parts.append(title + "\n\n" + "\n".join(fn()))
    args.out.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
