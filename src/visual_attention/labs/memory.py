"""The lab of the memory chapter: its tasks, networks and widgets."""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np
import torch
from einops import rearrange
from torch import nn

from .._checks import check_choice, check_positive_int, check_tensor
from ..blocks import MultiHeadAttention
from ..memory import ExternalAttention, KeyValueMemory
from ..views.viz import VIEW_CSS, bars_html, colorize, data_uri
from ..views.widgets import html_view, precomputed_explorer


class DigitEncoder(nn.Module):
    """A tiny MLP for the 8 × 8 digits: ``(B, 8, 8)`` → logits ``(B, num_classes)``.

    :meth:`embed` gives the embedding ``(B, dim)``, scaled to unit length, so that dot products
    between embeddings are cosine similarities: a memory read then prefers the slots that look
    like the query.
    """

    def __init__(self, dim: int = 16, hidden_dim: int = 64, num_classes: int = 10) -> None:
        super().__init__()
        for name, value in (
            ("dim", dim),
            ("hidden_dim", hidden_dim),
            ("num_classes", num_classes),
        ):
            check_positive_int(name, value)
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(64, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, dim)
        )
        self.head = nn.Linear(dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, "(B, H, W)", H=8, W=8)
        return nn.functional.normalize(self.body(x), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class TokenClassifier(nn.Module):
    """Pixels as tokens, one attention block with a residual, mean over tokens, linear classifier.

    A 3 × 3 convolution turns each pixel into a ``dim``-dimensional token; the block is
    ``tokens + attn(LN(tokens))``.

    ``attention`` is ``"external"`` (:class:`~visual_attention.memory.ExternalAttention`) or
    ``"self"`` (one-head :class:`~visual_attention.blocks.MultiHeadAttention`).
    ``forward``: ``(B, 1, H, W)`` → ``(B, num_classes)``.
    """

    def __init__(
        self,
        attention: str = "external",
        dim: int = 32,
        memory_size: int = 64,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        check_choice("attention", attention, ("external", "self"))
        check_positive_int("num_classes", num_classes)
        self.stem = nn.Sequential(nn.Conv2d(1, dim, 3, padding=1), nn.ReLU())
        self.norm = nn.LayerNorm(dim)
        if attention == "external":
            self.attn = ExternalAttention(dim, memory_size)
        else:
            self.attn = MultiHeadAttention(dim, num_heads=1)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, "(B, C, H, W)", C=1)
        tokens = rearrange(self.stem(x), "b d h w -> b (h w) d")  # (B, N = H·W, D)
        tokens = tokens + self.attn(self.norm(tokens))
        return self.head(tokens.mean(dim=1))


@torch.no_grad()
def explorer(
    encoder: DigitEncoder,
    queries: torch.Tensor,
    gallery: torch.Tensor,
    gallery_labels: torch.Tensor,
    hops: tuple[int, ...] = (1, 2, 3),
    temperature: float = 0.1,
    top: int = 5,
):
    """Pick a query digit and a number of hops: see the slot weights, top slots and read vector.

    The memory holds the gallery's embeddings as keys and values (:meth:`DigitEncoder.embed`); the
    query is the query digit's embedding, read through :class:`KeyValueMemory` with ``hops`` hops.
    Each view shows the query, the slot weights of the last hop as a strip over all ``S`` slots
    (sorted by the slots' labels), thumbnails of the ``top`` heaviest slots with their weights and
    labels, the final read vector ``u_K`` as bars and the class probabilities of the encoder's
    head on it.

    Args:
        queries: ``(Q, 8, 8)`` digits; gallery ``(S, 8, 8)`` and its labels ``(S,)``.
    """
    check_tensor("queries", queries, "(Q, H, W)", H=8, W=8)
    check_tensor("gallery", gallery, "(S, H, W)", H=8, W=8)
    encoder.eval()
    order = torch.argsort(gallery_labels, stable=True)
    gallery, gallery_labels = gallery[order], gallery_labels[order]
    keys = encoder.embed(gallery)  # (S, D)
    u0 = encoder.embed(queries)  # (Q, D)
    results = {}
    for k in hops:
        memory = KeyValueMemory(keys.shape[-1], hops=k, temperature=temperature)
        memory.recording = True
        u = memory(u0, keys, keys)
        results[k] = (u, memory.attention[:, -1], encoder.head(u).softmax(-1))
    dims = [f"u{i}" for i in range(keys.shape[-1])]
    vmax = max(float(r[0].abs().max()) for r in results.values())

    def uri(img: torch.Tensor) -> str:
        grey = (img.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        return data_uri(np.repeat(grey[..., None], 3, axis=-1))

    thumbs = [uri(g) for g in gallery]
    qthumbs = [uri(q) for q in queries]
    s = len(gallery)

    def render(query: int, hops: int) -> widgets.Widget:
        u, p, probs = results[hops]
        w = p[query]
        best = torch.topk(w, min(top, s))
        cells = "".join(
            f'<div style="display:inline-block;text-align:center;margin-right:4px;font-size:11px">'
            f'<img alt="slot {j}" src="{thumbs[j]}" '
            f'style="width:40px;height:40px;image-rendering:pixelated">'
            f"<br>{int(gallery_labels[j])} · {v:.2f}</div>"
            for v, j in zip(best.values.tolist(), best.indices.tolist())
        )
        strip = data_uri(colorize(w[None].numpy())[..., :3])
        predicted = gallery_labels == int(torch.argmax(probs[query]))
        caption = (
            f"query {query} · {hops} hop{'s' if hops > 1 else ''} · "
            f"max slot weight {float(w.max()):.3f} · "
            f"weight on slots of the predicted class {float(w[predicted].sum()):.3f}"
        )
        left = (
            f'<div class="va-view"><img alt="query" src="{qthumbs[query]}" '
            f'style="width:80px;height:80px;'
            f'image-rendering:pixelated"><div class="va-cap">{html.escape(caption)}</div>'
            f'<div class="va-cap">slot weights over the {s} slots (sorted by label 0→9)</div>'
            f'<img alt="slot weights" src="{strip}" '
            f'style="width:320px;height:14px;image-rendering:pixelated">'
            f'<div class="va-cap">top {len(best.values)} slots (label · weight)</div>'
            f"<div>{cells}</div></div>"
        )
        right = bars_html(u[query].tolist(), dims, title="read vector u_K", vmax=vmax)
        probs_html = bars_html(
            probs[query].tolist(),
            [str(c) for c in range(probs.shape[-1])],
            title="class probabilities of u_K",
            vmax=1.0,
        )
        return html_view(f'<div class="va-flex">{left}{right}{probs_html}</div>')

    return precomputed_explorer(
        {"query": list(range(len(queries))), "hops": list(hops)},
        render,
        header=widgets.HTML(VIEW_CSS),
    )
