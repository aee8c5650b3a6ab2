"""Smoke test of benchmarks/run.py: it runs on tiny sizes and writes its tables (no timing is checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_run_on_tiny_sizes(tmp_path):
    out = tmp_path / "results.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert text.startswith("# Benchmarks") and "Machine:" in text and "Allocator:" in text and "smoke run" in text
    assert "| core.scaled_dot_product_attention | torch.nn.functional.scaled_dot_product_attention" in text
    assert "| core.query_attention |" in text
    assert "| blocks.MultiHeadAttention | torch.nn.MultiheadAttention" in text
    assert "growth exponent" in text
    assert "| foundations |" in text
    for line in text.splitlines():  # every ratio is a positive number
        if line.startswith("| core.") or line.startswith("| channel.") or line.startswith("| blocks."):
            ratio = float(line.split("|")[5].split()[0])
            assert ratio > 0


def test_benchmarks_only_some_rows_of_the_speed_section(tmp_path):
    out = tmp_path / "results.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--only", "speed",
         "--cases", "core.scaled", "--reps", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = out.read_text()
    assert "Allocator:" in text and "## Forward + backward" in text
    assert "## Peak memory" not in text and "## Chapter notebooks" not in text
    rows = [line for line in text.splitlines() if line.startswith("| core.") or line.startswith("| channel.")]
    assert len(rows) == 2 and all(r.startswith("| core.scaled_dot_product_attention |") for r in rows)
    assert "need_weights=False" in rows[1] and "materialise the weights" in rows[0]


def test_fused_attention_benchmark_writes_its_table(tmp_path):
    out = tmp_path / "fused.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fused_attention.py"), "--smoke", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| tiny |")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].split("|")[1:-1]]
    assert len(cells) == 6 and float(cells[4].split()[0]) > 0  # the ratio of the fastest steps
    for pair in cells[2:4]:  # "fastest / median"
        fastest, median = (float(v) for v in pair.split(" / "))
        assert 0 < fastest <= median
