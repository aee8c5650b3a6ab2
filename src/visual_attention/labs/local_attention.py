"""The lab of the local attention chapter: its widget (which tokens may a query see?)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange

from .._checks import check_tensor
from ..views.widgets import attention_explorer


def explorer(
    image: torch.Tensor,
    features: torch.Tensor,
    feature_names: Sequence[str],
    window_sizes: Sequence[int] = (2, 3, 4, 6),
    scale: float = 5.0,
    display_size: tuple[int, int] | None = None,
    initial: dict | None = None,
):
    """The chapter's widget: which tokens a query may see under (shifted) windows, and the cost.

    ``features`` ``(C, h, w)`` (unit patch features of a photo) serve as queries, keys and values
    (identity projections, no bias) of a one-head window attention with window size ``M`` (or
    global attention) and any cyclic shift ``0 ≤ s < M``, as
    :class:`~visual_attention.local_attention.ShiftedWindowAttention` computes it. The reader's
    browser computes the query's weights over the photo (zero outside its window, or outside its
    region of a shifted window), the context vector, and the number of attention weights against
    global attention (:class:`visual_attention.views.widgets.AttentionExplorer`).

    Args:
        image: ``(3, H, W)`` photo in ``[0, 1]``.
        features: ``(C, h, w)``; every window size must divide ``h`` and ``w``.
        feature_names: ``C`` labels for the context bars.
        window_sizes: the sizes ``M`` offered besides global attention.
        scale: logits are ``scale · ⟨q, k⟩`` (the module's ``attn.scale``).
        display_size: drawn ``(height, width)`` in CSS pixels.
        initial: optional first ``{"window": M, "shift": s or True (= M // 2),
            "query": (row, col)}``.
    """

    c, h, w = check_tensor("features", features, "(C, h, w)")
    first = dict(initial or {})
    m = int(first.get("window", 0))
    shift = first.get("shift", 0)
    shift = m // 2 if shift is True else int(shift or 0)
    return attention_explorer(
        rearrange(features, "c h w -> (h w) c"),
        grid=(h, w),
        image=image,
        scale=scale,
        query=tuple(first.get("query", (0, 0))),
        window=m,
        shift=shift,
        window_sizes=window_sizes,
        controls=("window", "shift"),
        value_names=list(feature_names),
        context_title="context vector",
        display_size=display_size,
        label="local-attention",
    )
