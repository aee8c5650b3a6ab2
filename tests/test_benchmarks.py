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
