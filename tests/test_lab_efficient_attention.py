"""Tests of visual_attention.labs.efficient_attention: the online-softmax widget and peak_memory."""

from __future__ import annotations

import pytest
import torch

from visual_attention.efficient import online_softmax_trace
from visual_attention.labs.efficient_attention import online_softmax_explorer, peak_memory
from visual_attention.views.widgets import count_views, explorer_view


def test_peak_memory_counts_what_a_function_allocates():
    n = 256 * 1024  # float32: 1 MiB
    assert peak_memory(lambda: torch.ones(n)) >= 4 * n
    x = torch.ones(n)
    assert peak_memory(lambda: x.add_(1)) < 4 * n  # in place: nothing new


def test_online_softmax_explorer_steps_through_the_blocks():
    torch.manual_seed(0)
    image = torch.rand(3, 16, 24)
    features = torch.nn.functional.normalize(torch.randn(2, 2, 3), dim=0)
    ex = online_softmax_explorer(image, features, ["a", "b"], [(0, 0), (1, 2)], chunk_sizes=(2, 6),
                                 scale=3.0)
    assert count_views(ex) == 2 * 3 * 2  # chunk sizes × blocks (the largest count) × queries
    first, last = explorer_view(ex, chunk=2, block=1, query=(0, 0)), explorer_view(ex, chunk=2, block=3, query=(0, 0))
    assert first.value != last.value and "done: full attention" in last.value
    keys = features.reshape(2, 6).T
    final = online_softmax_trace(keys[0], keys, keys, 2, 3.0)[-1]
    torch.testing.assert_close(final["weights"], torch.softmax(keys @ keys[0] * 3.0, dim=0))
    with pytest.raises(ValueError, match=r"features must be 3-d \(C, h, w\)"):
        online_softmax_explorer(image, features[0], ["a"], [(0, 0)])
