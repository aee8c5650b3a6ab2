"""The lab of the spatial chapter: its cluttered-digit task on a frozen encoder, the heads
compared on it, the multi-seed runner, and the trained heads in the reader's browser.

* :data:`TASK` and :func:`cluttered_task` — one ``16 × 16`` digit among six fragments of other
  digits on a noisy ``48 × 48`` canvas (``data.cluttered_digits``).
* :func:`encode` — the frozen :class:`~visual_attention.labs.digits.DigitCNN` run over the
  canvases once: ``(N, 1, 48, 48)`` → features ``(N, 64, 12, 12)``; :func:`standardize` them
  (both from :mod:`~visual_attention.labs.common`, shared with the other chapters' labs).
* :class:`PooledHead` — what is trained on those features: attention pooling
  (:class:`QuerySpatialAttention`), a :class:`SpatialGate` then global average pooling, or global
  average pooling alone (the control), each followed by one linear layer.
* :func:`run_seeds` — one head trained per seed with ``train.fit``.
* :class:`CanvasModel` and :func:`model_explorer` — the trained heads from the canvas up, run in
  the reader's browser on any digit they draw.
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import (
    check_choice,
    check_instance,
    check_labels,
    check_positive_int,
    check_seeds,
    check_tensor,
)
from ..core import record_attention
from ..data import cluttered_digits
from ..spatial import QuerySpatialAttention, SpatialGate
from ..train import SeedRuns, fit_seeds
from ..views.browser_model import export_model
from ..views.model_explorer import ModelExplorer, labelled, overlay, probs
from ..views.model_explorer import model_explorer as make_model_explorer
from ._checks import check_data
from .common import EncodedHeads, encode, standardize

__all__ = [
    "TASK",
    "POOLS",
    "cluttered_task",
    "encode",
    "standardize",
    "PooledHead",
    "run_seeds",
    "CanvasModel",
    "model_explorer",
]


#: The chapter's canvases: ``data.cluttered_digits`` options (every digit ``16 × 16``, the size the
#: encoder learned; six ``6 × 6`` fragments of other digits; pixel noise 0.1).
TASK = {"canvas": 48, "digit_sizes": (16, 16), "distractors": 6, "noise": 0.1, "fragment": 3 / 8}
#: The heads :class:`PooledHead` builds.
POOLS = ("attention", "gate", "avg")


def cluttered_task(
    n: int, split: str = "train", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` canvases of :data:`TASK`: images ``(n, 1, 48, 48)`` in ``[0, 1]``, labels ``(n,)``
    and the digit's boxes ``(n, 4)`` as ``(top, left, bottom, right)`` pixels (see
    :func:`visual_attention.data.cluttered_digits`)."""
    check_positive_int("n", n)
    return cluttered_digits(n, split=split, seed=seed, **TASK)


class PooledHead(nn.Module):
    """A pooling step and a linear classifier on a frozen feature map ``(B, C, h, w)``.

    * ``pool="attention"``: :class:`QuerySpatialAttention` with a learned query (the score of a
      position is ``⟨q, x_ij⟩ / √C``, a ``1 × 1`` convolution of the features; softmax over the
      ``h·w`` positions; weighted sum), recorded as ``pool``, weights ``(B, h, w)``;
    * ``pool="gate"``: CBAM's :class:`SpatialGate` (``7 × 7``) multiplied into the features, then
      global average pooling; recorded as ``gate``, map ``(B, 1, h, w)``;
    * ``pool="avg"``: global average pooling alone, the control (nothing recorded).

    The three differ only by the pooling: the attention head adds ``C`` parameters (the query),
    the gate ``2 · 7² + 2``.

    Args:
        pool: one of :data:`POOLS`.
        channels: ``C``.
        num_classes: outputs ``K``.

    Shapes: ``forward``: ``(B, C, h, w)`` → logits ``(B, K)``.
    """

    def __init__(self, pool: str = "attention", channels: int = 64, num_classes: int = 10):
        super().__init__()
        self.pool_mode = check_choice("pool", pool, POOLS)
        self.channels = check_positive_int("channels", channels)
        check_positive_int("num_classes", num_classes)
        if pool == "attention":
            self.pool = QuerySpatialAttention(channels)
        elif pool == "gate":
            self.gate = SpatialGate()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """``f`` ``(B, C, h, w)`` → logits ``(B, K)``."""
        check_tensor("f", f, "(B, C, h, w)", C=self.channels)
        if self.pool_mode == "attention":
            return self.fc(self.pool(f))  # Σ_ij α_ij f_ij: (B, C)
        if self.pool_mode == "gate":
            f = self.gate(f)  # f ⊙ M_s(f): (B, C, h, w)
        return self.fc(f.mean(dim=(2, 3)))  # global average pooling: (B, C)


def run_seeds(
    pool: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seeds: tuple[int, ...] = (0, 1, 2),
    epochs: int = 40,
    lr: float = 1e-2,
    batch_size: int = 128,
) -> SeedRuns:
    """Train one :class:`PooledHead` per seed on frozen features; evaluate on ``test``.

    Each seed seeds the head's initialisation (``seed_everything``) and the data order
    (``fit(seed=...)``); Adam, constant ``lr``.

    Args:
        pool: one of :data:`POOLS`.
        train, test: features ``(N, C, h, w)`` and labels ``(N,)``.
        seeds: one training per seed.
        epochs, lr, batch_size: of ``train.fit``.

    Returns:
        :class:`~visual_attention.train.SeedRuns`: the final test accuracies (one per seed), the
        trained heads (eval mode) and their histories (``histories[i].test_accuracy``: after every
        epoch).
    """
    check_choice("pool", pool, POOLS), check_data("train", train, "(N, C, h, w)")
    check_data("test", test, "(N, C, h, w)", C=train[0].shape[1]), check_seeds("seeds", seeds)
    return fit_seeds(
        lambda: PooledHead(pool, channels=train[0].shape[1]),
        train,
        test,
        seeds,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
    )


class CanvasModel(EncodedHeads):
    """The chapter's trained heads from the canvas up, as the reader's browser runs them.

    The frozen encoder, the standardisation with the training statistics (as :func:`standardize`;
    :class:`~visual_attention.labs.common.EncodedHeads`) and each :class:`PooledHead`; ``forward``
    returns, per head in order, its logits ``(B, K)`` and its map: attention weights ``(B, h, w)``
    or the gate ``(B, 1, h, w)``.

    Args:
        heads: ``{name: PooledHead}`` with ``pool`` ``"attention"`` or ``"gate"``.
        train_features: the encoder's raw features of the training canvases ``(N, C, h, w)``.
        encoder: the frozen digit encoder (default:
            :func:`~visual_attention.labs.digits.load_digit_cnn`).
    """

    def __init__(
        self,
        heads: dict[str, PooledHead],
        train_features: torch.Tensor,
        encoder: nn.Module | None = None,
    ) -> None:
        super().__init__(heads, PooledHead, train_features, encoder)
        if any(h.pool_mode == "avg" for h in self.heads):
            raise ValueError(
                "heads must pool with attention or a gate: global averaging has no map"
            )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f = self.standardized(self.encoder.feature_map(x))
        out = []
        for head in self.heads:
            with record_attention(head) as maps:
                logits = head(f)
            out += [logits, maps["pool" if head.pool_mode == "attention" else "gate"]]
        return tuple(out)


def model_explorer(
    model: CanvasModel, examples: torch.Tensor, labels: torch.Tensor, display: int = 240
) -> ModelExplorer:
    """The reader draws a digit (or picks a test canvas) and the page runs ``model`` on it: each
    head's map over the canvas, its prediction and the share of its map inside the ink's box.

    Args:
        model: the :class:`CanvasModel` to export.
        examples: test canvases ``(N, 1, H, W)`` to start from.
        labels: their digits ``(N,)``.
        display: the drawing area's side in CSS pixels.
    """
    check_instance("model", model, CanvasModel)
    _, _, h, w = check_tensor("examples", examples, "(N, C, H, W)", C=1)
    outputs = [f"{kind} {name}" for name in model.names for kind in ("logits", "map")]
    exported = export_model(model, examples[:1], outputs)
    views = [probs(name, f"logits {name}") for name in model.names]
    views += [overlay(name, f"map {name}") for name in model.names]
    return make_model_explorer(
        exported,
        examples,
        labelled(check_labels("labels", labels, len(examples))),
        views,
        display=display,
        brush=2.2,
        caption=f"Draw on the {h} × {w} canvas (the box follows the ink), pick a test canvas, add "
        "noise or move the drawing: the trained heads run in this page.",
    )
