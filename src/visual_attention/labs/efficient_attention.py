"""The lab of the efficient attention chapter: the online-softmax widget and a memory meter."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from .._checks import check_tensor
from ..efficient import online_softmax_trace
from ..views import viz, widgets


def online_softmax_explorer(
    image: torch.Tensor,
    features: torch.Tensor,
    feature_names,
    queries,
    chunk_sizes=(8, 16, 32, 48),
    scale: float = 5.0,
    display_size=None,
):
    """A widget that steps through the online softmax for a query patch of a photo.

    Keys are the ``h·w`` patches in reading order, processed ``chunk_size`` at a time: the heatmap
    shows the softmax over the patches seen so far, the bars the output ``o / l`` so far; after the
    last block both equal full attention. Controls: chunk size, block (steps past the last block
    show the final state), query patch.

    Args:
        image: ``(3, H, W)`` photo.
        features: ``(C, h, w)`` patch features.
        feature_names: ``C`` labels.
        queries: ``(row, col)`` query patches.
        chunk_sizes: block sizes.
        scale: score multiplier.
        display_size: drawn ``(height, width)``; ``None`` is twice the photo's size.
    """

    c, h, w = check_tensor("features", features, "(C, h, w)")
    keys = features.reshape(c, h * w).T
    size = display_size or (2 * image.shape[-2], 2 * image.shape[-1])
    css, style = viz.photo_style(image)
    traces = {
        (cs, q): online_softmax_trace(keys[q[0] * w + q[1]], keys, keys, cs, scale)
        for cs in chunk_sizes
        for q in queries
    }
    steps = max(len(t) for t in traces.values())

    def render(chunk, block, query):
        chunk_size = chunk
        trace = traces[(chunk_size, query)]
        state = trace[min(block, len(trace)) - 1]
        done = block >= len(trace)
        cap = (
            f"block {min(block, len(trace))} of {len(trace)} ({chunk_size} keys each)"
            f"{' — done: full attention' if done else ''} · m = {float(state['max']):.3f} · "
            f"l = {float(state['sum']):.3f}"
        )
        left = viz.attention_overlay_html(
            css, state["weights"].reshape(h, w), size, query=query, caption=cap
        )
        right = viz.bars_html(
            state["output"].tolist(), list(feature_names), title="output o / l so far", vmax=1.0
        )
        return widgets.html_view(f'<div class="va-flex">{left}{right}</div>')

    return widgets.precomputed_explorer(
        {
            "chunk": list(chunk_sizes),
            "block": list(range(1, steps + 1)),
            "query": [(f"{r},{cc}", (r, cc)) for r, cc in queries],
        },
        render,
        header=widgets.widgets.HTML(viz.VIEW_CSS + style),
    )


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C++ log lines written straight to file descriptor 2 (the profiler prints some)."""
    try:
        fd = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(fd, 2)
            os.close(fd)


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak CPU memory (bytes) allocated by PyTorch while ``fn()`` runs, measured by the profiler.

    Runs ``fn`` under ``torch.profiler.profile(profile_memory=True)`` and reads the allocator's
    running total from the trace's ``[memory]`` events: the peak minus what was allocated before.
    Tensors alive before the call (the inputs, the parameters) are not counted.
    """

    with _quiet_stderr():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        handle, path = tempfile.mkstemp(suffix=".json")
        os.close(handle)
        try:
            prof.export_chrome_trace(path)
            with open(path) as f:
                events = json.load(f)["traceEvents"]
        finally:
            os.remove(path)
    mem = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    if not mem:
        return 0
    start = mem[0]["args"]["Total Allocated"] - mem[0]["args"]["Bytes"]
    return int(max(e["args"]["Total Allocated"] for e in mem) - start)
