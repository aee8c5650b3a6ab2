"""The lab of the temporal chapter: "locate the query", a task that order decides, the models
that solve it or not, the multi-seed experiment and the clip explorer.

* :func:`make_query_clips` — clips of ``T`` digit frames: frames ``0 … T−2`` show ``T − 1``
  distinct digits in random order, the last frame (the *query*) another drawing of one of them;
  the label is the index of the frame that matches the query. The set of frames says nothing
  about the label: only their order does.
* :func:`drawing_features` — the frozen digit encoder's pooled vector of every drawing of a
  split, once; a clip's frame features are rows of that table. :func:`frame_features` — the same
  vectors computed from a clip's pixels.
* The models, all on frame features ``(B, T, 64)`` through the same trainable per-frame layer
  (:class:`FrameProjection`): :class:`TemporalTransformer` (the chapter's
  :class:`~visual_attention.temporal.TemporalSelfAttention` with learned temporal position
  embeddings, read out at the query frame), and the controls :class:`TemporalConv` (dilated
  temporal convolution covering the whole clip), :class:`ClipGRU` and :class:`PooledClip`
  (attention pooling or mean pooling: order-blind).
* The pixel mode: :func:`drawing_maps` (the encoder's feature *maps* ``(M, 64, 4, 4)``, not
  pooled) and :class:`PixelTemporalTransformer` (the module in ``mode="pixel"``: temporal
  attention at every position of the map, read out at the query frame as the mean over
  positions), trained by ``make weights`` (:data:`PIXEL_RECIPE`, :func:`train_pixel_models`,
  :func:`pixel_fingerprint`) and loaded by the chapter (:func:`load_pixel_models`).
* :func:`run_seeds` — one model of a kind per seed (each seed draws its own training clips and
  its own initialisation); :func:`per_example_correct` — the per-clip correctness the bootstrap
  needs; :class:`ClipModel` and :func:`model_explorer` — the trained attention model from the
  pixels up in the reader's browser, with its ``T × T`` weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .._checks import (
    check_bool,
    check_choice,
    check_instance,
    check_int,
    check_int_sequence,
    check_labels,
    check_number,
    check_positive_int,
    check_seeds,
    check_tensor,
)
from ..blocks import AttentionPooling
from ..core import record_attention
from ..temporal import TemporalSelfAttention
from ..train import SeedRuns, fit, seed_everything
from ..views.browser_model import export_model
from ..views.model_explorer import ModelExplorer, bars, maps, probs
from ..views.model_explorer import model_explorer as make_model_explorer
from ._checks import check_canvas, check_data, check_encoder
from .common import code_fingerprint, load_runs, pooled_features
from .digits import DIGIT_SIZE, DigitCNN, digits_at, like_module, load_digit_cnn

__all__ = [
    "FRAME",
    "FRAMES",
    "KINDS",
    "make_query_clips",
    "drawing_features",
    "frame_features",
    "FrameProjection",
    "TemporalTransformer",
    "TemporalConv",
    "ClipGRU",
    "PooledClip",
    "make_model",
    "run_seeds",
    "per_example_correct",
    "drawing_maps",
    "PixelTemporalTransformer",
    "PIXEL_RECIPE",
    "PIXEL_WEIGHTS",
    "train_pixel_models",
    "pixel_fingerprint",
    "load_pixel_models",
    "ClipModel",
    "model_explorer",
]

#: The side of a frame in pixels: the size at which the frozen encoder learned the digits.
FRAME = DIGIT_SIZE
#: Frames per clip: 7 candidates and the query.
FRAMES = 8
#: The models of the experiment, by name (``"pixel"``: :class:`PixelTemporalTransformer`, on
#: feature maps ``(B, T, C, h, w)``; the others on frame vectors ``(B, T, C)``).
KINDS = ("attention", "conv", "gru", "attention pooling", "mean pooling", "pixel")


def make_query_clips(
    n: int, frames: int = FRAMES, split: str = "train", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clips whose label is *where* the query's digit was shown before.

    Frames ``0 … T−2`` show ``T − 1`` distinct digit classes (drawn at random without
    replacement, in random order), one scikit-learn drawing each; frame ``T − 1`` (the query)
    shows a *different* drawing of the class of frame ``label``. Chance is ``1 / (T − 1)``.
    Drawn with tensor ops (no per-clip loop).

    Args:
        n: number of clips; frames: ``T``, from 3 to 11 (at most 10 distinct classes before the
            query).
        split: ``"train"`` or ``"test"`` drawings
            (:func:`~visual_attention.labs.digits.digits_at`).
        seed: random seed.

    Returns:
        clips ``(n, T, 1, 16, 16)`` in ``[0, 1]``, labels ``(n,)`` int64 in ``[0, T − 1)`` and
        ``drawings`` ``(n, T)`` int64: each frame's index into ``digits_at(16, split)``.
    """
    check_positive_int("n", n), check_int("seed", seed, 0)
    check_int("frames", frames, 3)
    if frames > 11:
        raise ValueError(f"frames must be at most 11 (10 classes and the query), got {frames}")
    g = torch.Generator().manual_seed(seed)
    images, classes_of = digits_at(FRAME, split)  # (M, 1, 16, 16), (M,)
    by_class = [torch.nonzero(classes_of == c).flatten() for c in range(10)]
    counts = torch.tensor([len(b) for b in by_class])  # drawings per class
    table = nn.utils.rnn.pad_sequence(by_class, batch_first=True)  # (10, most drawings)
    shown = torch.argsort(torch.rand(n, 10, generator=g), dim=-1)[:, : frames - 1]  # distinct
    label = torch.randint(frames - 1, (n,), generator=g)
    cls = torch.cat([shown, shown.gather(1, label[:, None])], dim=1)  # (n, T): query = cls[label]
    pick = (torch.rand(n, frames, generator=g) * counts[cls]).long()  # a drawing per frame
    other = 1 + (torch.rand(n, generator=g) * (counts[cls[:, -1]] - 1)).long()  # ≠ the match's
    pick[:, -1] = (pick.gather(1, label[:, None])[:, 0] + other) % counts[cls[:, -1]]
    drawings = table[cls, pick]  # (n, T)
    return images[drawings], label, drawings


def drawing_features(encoder: DigitCNN, split: str = "train") -> torch.Tensor:
    """The frozen encoder's pooled feature vector of every drawing of ``split``, once:
    ``(M, 64)``, no gradients. A clip's frame features are ``table[drawings]`` ``(N, T, 64)``,
    exactly what the encoder gives on the clip's frames."""
    check_encoder("encoder", encoder)
    if encoder is None:
        raise ValueError("encoder must be a DigitCNN, got None")
    check_choice("split", split, ("train", "test"))
    with torch.no_grad():
        return encoder.feature_map(digits_at(FRAME, split)[0]).mean(dim=(2, 3))


def drawing_maps(encoder: DigitCNN, split: str = "train") -> torch.Tensor:
    """The frozen encoder's feature *map* of every drawing of ``split``, once, not pooled:
    ``(M, 64, 4, 4)`` for the 16 × 16 frames, no gradients. A clip's maps are
    ``table[drawings]`` ``(N, T, 64, 4, 4)``; their mean over positions is
    :func:`drawing_features`."""
    check_encoder("encoder", encoder)
    if encoder is None:
        raise ValueError("encoder must be a DigitCNN, got None")
    check_choice("split", split, ("train", "test"))
    with torch.no_grad():
        return encoder.feature_map(digits_at(FRAME, split)[0])


def frame_features(encoder: DigitCNN, clips: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Every frame's feature vector from the frozen encoder: its feature map averaged over
    positions (:func:`~visual_attention.labs.common.pooled_features`).

    ``clips`` ``(N, T, 1, H, W)`` → ``(N, T, 64)``; computed in batches, without gradients. On
    the clips of :func:`make_query_clips` it equals ``drawing_features(encoder, split)[drawings]``.
    """
    return pooled_features(encoder, clips, batch_size, "clips", "(N, T, C, H, W)")


class FrameProjection(nn.Module):
    """The trainable per-frame layer every model shares: ``ReLU(W x_t + b)``, ``(B, T, C)`` →
    ``(B, T, D)``."""

    def __init__(self, in_dim: int = 64, dim: int = 32) -> None:
        super().__init__()
        self.in_dim = check_positive_int("in_dim", in_dim)
        self.proj = nn.Linear(in_dim, check_positive_int("dim", dim))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        check_tensor("feats", feats, "(B, T, C)", C=self.in_dim)
        return torch.relu(self.proj(feats))


class TemporalTransformer(nn.Module):
    """One pre-LN Transformer layer whose attention is the chapter's
    :class:`~visual_attention.temporal.TemporalSelfAttention` (``mode="frame"``), read out at the
    query frame.

    ``h_t = ReLU(W x_t + b) + p_t`` (``p_t`` a learned temporal position embedding; none with
    ``positions=False``); ``h ← h + W_o A V`` (the module on ``LN(h)``); ``h ← h + MLP(LN(h))``;
    logits ``= W_c LN(h_{T−1})`` over the ``T − 1`` candidate frames.

    Args:
        in_dim: frame feature size ``C``; dim: model width ``D``; frames: ``T``.
        positions: add the learned temporal position embeddings.
        num_heads: heads of the attention (with one or two heads some seeds stall for a while
            or settle at a partial solution; four heads trained every one of ten seeds in the
            spikes).

    ``forward(feats)``: ``(B, T, C)`` → logits ``(B, T − 1)``; records the module's weights
    ``(B, T, T)`` (the heads' mean) as ``"attn"``.
    """

    def __init__(
        self,
        in_dim: int = 64,
        dim: int = 32,
        frames: int = FRAMES,
        positions: bool = True,
        num_heads: int = 4,
    ) -> None:
        super().__init__()
        self.frames = check_int("frames", frames, 2)
        self.embed = FrameProjection(in_dim, dim)
        self.pos = (
            nn.Parameter(0.3 * torch.randn(frames, dim))
            if check_bool("positions", positions)
            else None
        )
        self.norm1, self.norm2, self.norm3 = (
            nn.LayerNorm(dim),
            nn.LayerNorm(dim),
            nn.LayerNorm(dim),
        )
        self.attn = TemporalSelfAttention(dim, mode="frame", num_heads=num_heads)
        # Transformer initialisation of the attention (as nn.MultiheadAttention's): Xavier
        # projections and zero biases start every seed with comparable, non-vanishing scores
        nn.init.xavier_uniform_(self.attn.attn.qkv.weight)
        nn.init.zeros_(self.attn.attn.qkv.bias), nn.init.zeros_(self.attn.attn.proj.bias)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, frames - 1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        check_tensor("feats", feats, "(B, T, C)", T=self.frames)
        h = self.embed(feats)  # (B, T, D)
        if self.pos is not None:
            h = h + self.pos  # + p_t: when the frame was shown
        z = self.norm1(h)
        h = h + self.attn(z[..., None, None])[..., 0, 0] - z  # h + W_o A V (the module adds z)
        h = h + self.mlp(self.norm2(h))
        return self.head(self.norm3(h[:, -1]))  # read out at the query frame


class TemporalConv(nn.Module):
    """The strongest control: dilated temporal convolutions (kernel 3, dilations ``1, 2, 4``:
    a reach of 15 frames, the whole clip seen from the query frame), residual, read out at the
    query frame. ``(B, T, C)`` → ``(B, T − 1)``."""

    def __init__(
        self,
        in_dim: int = 64,
        dim: int = 32,
        frames: int = FRAMES,
        dilations: tuple[int, ...] = (1, 2, 4),
    ) -> None:
        super().__init__()
        self.frames = check_int("frames", frames, 2)
        dilations = check_int_sequence("dilations", dilations)
        self.embed = FrameProjection(in_dim, dim)
        self.convs = nn.ModuleList(
            nn.Conv1d(dim, dim, 3, padding=d, dilation=d) for d in dilations
        )
        self.head = nn.Linear(dim, frames - 1)

    @property
    def reach(self) -> int:
        """Frames one output sees: ``1 + 2 Σ dilations``."""
        return 1 + 2 * sum(c.dilation[0] for c in self.convs)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        check_tensor("feats", feats, "(B, T, C)", T=self.frames)
        h = self.embed(feats).transpose(1, 2)  # (B, D, T)
        for conv in self.convs:
            h = h + torch.relu(conv(h))
        return self.head(h[:, :, -1])


class ClipGRU(nn.Module):
    """Control: a GRU over the frames, read out after the query frame (everything it needs must
    survive in its state). ``(B, T, C)`` → ``(B, T − 1)``."""

    def __init__(
        self, in_dim: int = 64, dim: int = 32, frames: int = FRAMES, hidden: int = 40
    ) -> None:
        super().__init__()
        self.frames = check_int("frames", frames, 2)
        self.embed = FrameProjection(in_dim, dim)
        self.gru = nn.GRU(dim, check_positive_int("hidden", hidden), batch_first=True)
        self.head = nn.Linear(hidden, frames - 1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        check_tensor("feats", feats, "(B, T, C)", T=self.frames)
        return self.head(self.gru(self.embed(feats))[0][:, -1])


class PooledClip(nn.Module):
    """Order-blind control: attention pooling (:class:`~visual_attention.blocks.AttentionPooling`,
    recorded as ``"pool"``) or the mean over frames, then an MLP. ``(B, T, C)`` → ``(B, T − 1)``.
    Any reordering of the frames gives the same logits."""

    def __init__(
        self, pool: str = "attention", in_dim: int = 64, dim: int = 32, frames: int = FRAMES
    ) -> None:
        super().__init__()
        check_choice("pool", pool, ("attention", "mean"))
        self.frames = check_int("frames", frames, 2)
        self.embed = FrameProjection(in_dim, dim)
        self.pool = AttentionPooling(dim) if pool == "attention" else None
        self.head = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, frames - 1)
        )

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        check_tensor("feats", feats, "(B, T, C)", T=self.frames)
        h = self.embed(feats)
        return self.head(h.mean(dim=1) if self.pool is None else self.pool(h))


class PixelTemporalTransformer(nn.Module):
    """The pixel mode trained: the layer of :class:`TemporalTransformer` on feature maps, its
    attention the chapter's :class:`~visual_attention.temporal.TemporalSelfAttention` in
    ``mode="pixel"`` (TimeSformer's temporal attention): at every position ``p`` of the map the
    ``T`` frames' vectors attend to each other, and nothing mixes positions until the read-out.

    ``h_{t,p} = ReLU(W x_{t,p} + b) + p_t`` (the same temporal embedding at every position);
    ``h ← h + W_o A_p V_p`` (the module on ``LN(h)``); ``h ← h + MLP(LN(h))``; logits
    ``= W_c LN(mean_p h_{T−1,p})``: the query frame's tokens averaged over positions. The same
    parameters as :class:`TemporalTransformer` (nothing depends on the map's size).

    Args:
        in_dim: channels ``C`` of the maps; dim: model width ``D``; frames: ``T``;
        num_heads: heads of the attention.

    ``forward(maps)``: ``(B, T, C, h, w)`` → logits ``(B, T − 1)``; records the module's weights
    ``(B, h, w, T, T)`` (the heads' mean) as ``"attn"``.
    """

    def __init__(
        self, in_dim: int = 64, dim: int = 32, frames: int = FRAMES, num_heads: int = 4
    ) -> None:
        super().__init__()
        self.frames = check_int("frames", frames, 2)
        self.embed = FrameProjection(in_dim, dim)
        self.pos = nn.Parameter(0.3 * torch.randn(frames, dim))
        self.norm1, self.norm2, self.norm3 = (
            nn.LayerNorm(dim),
            nn.LayerNorm(dim),
            nn.LayerNorm(dim),
        )
        self.attn = TemporalSelfAttention(dim, mode="pixel", num_heads=num_heads)
        nn.init.xavier_uniform_(self.attn.attn.qkv.weight)  # as TemporalTransformer's
        nn.init.zeros_(self.attn.attn.qkv.bias), nn.init.zeros_(self.attn.attn.proj.bias)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, frames - 1)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        check_tensor("maps", maps, "(B, T, C, h, w)", T=self.frames, C=self.embed.in_dim)
        b, t, c, hh, ww = maps.shape
        tokens = maps.permute(0, 1, 3, 4, 2).reshape(b, t * hh * ww, c)  # (B, T·h·w, C)
        h = self.embed(tokens).reshape(b, t, hh, ww, self.pos.shape[1]) + self.pos[:, None, None]
        z = self.norm1(h).permute(0, 1, 4, 2, 3)  # (B, T, D, h, w)
        h = h + (self.attn(z) - z).permute(0, 1, 3, 4, 2)  # h + W_o A_p V_p at every p
        h = h + self.mlp(self.norm2(h))
        return self.head(self.norm3(h[:, -1].mean(dim=(1, 2))))  # query frame, mean over p


def make_model(kind: str, in_dim: int = 64, frames: int = FRAMES) -> nn.Module:
    """A new model of ``kind`` (one of :data:`KINDS`) on frame features of size ``in_dim`` (on
    feature maps with ``in_dim`` channels for ``"pixel"``)."""
    check_choice("kind", kind, KINDS)
    if kind == "pixel":
        return PixelTemporalTransformer(in_dim, frames=frames)
    if kind == "attention":
        return TemporalTransformer(in_dim, frames=frames)
    if kind == "conv":
        return TemporalConv(in_dim, frames=frames)
    if kind == "gru":
        return ClipGRU(in_dim, frames=frames)
    return PooledClip(kind.split()[0], in_dim, frames=frames)


def run_seeds(
    kind: str,
    table: torch.Tensor,
    test: tuple[torch.Tensor, torch.Tensor],
    seeds: tuple[int, ...] = (0, 1, 2),
    n_train: int = 4000,
    epochs: int = 12,
    lr: float = 3e-3,
    batch_size: int = 64,
) -> SeedRuns:
    """Train one model of ``kind`` per seed; evaluate on ``test``.

    Each seed draws its own ``n_train`` training clips (:func:`make_query_clips` with that
    seed, training drawings) and its own initialisation and data order.

    Args:
        kind: one of :data:`KINDS`.
        table: :func:`drawing_features` of the training drawings ``(M, C)``; for ``"pixel"``
            their :func:`drawing_maps` ``(M, C, h, w)``.
        test: frame features ``(N, T, C)`` (maps ``(N, T, C, h, w)`` for ``"pixel"``) and labels
            ``(N,)`` of held-out clips.
        seeds, n_train: one training per seed, on this many clips.
        epochs, lr, batch_size: Adam, one epoch of linear warm-up, then a cosine decay to 0.

    Returns:
        :class:`~visual_attention.train.SeedRuns`: final test accuracies, models (eval mode),
        histories.
    """
    check_choice("kind", kind, KINDS), check_seeds("seeds", seeds)
    pixel = kind == "pixel"
    m = check_tensor("table", table, "(M, C, h, w)" if pixel else "(M, C)")[0]
    drawings = len(digits_at(FRAME, "train")[0])
    if m != drawings:
        raise ValueError(
            f"table must hold one row per training drawing ({drawings}, drawing_features(encoder, "
            f"'train')), got {m} rows"
        )
    layout = "(N, T, C, h, w)" if pixel else "(N, T, C)"
    n, t, c = check_data("test", test, layout, C=table.shape[1])[:3]
    check_labels("test[1]", test[1], n)
    check_positive_int("n_train", n_train), check_positive_int("epochs", epochs)
    check_number("lr", lr, 0.0), check_positive_int("batch_size", batch_size)
    runs = SeedRuns([], [], [])
    for seed in seeds:
        _, labels, drawings = make_query_clips(n_train, t, "train", seed=1000 + seed)
        seed_everything(seed)
        model = make_model(kind, c, t)
        history = fit(
            model,
            (table[drawings], labels),
            test,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
            progress=False,
            warmup_epochs=1,
        )
        runs.accuracies.append(history.final_test_accuracy)
        runs.models.append(model.eval())
        runs.histories.append(history)
    return runs


def per_example_correct(
    model: nn.Module, feats: torch.Tensor, labels: torch.Tensor
) -> list[float]:
    """1.0 where ``model`` classifies a clip right, else 0.0: ``(N, T, C)`` (maps
    ``(N, T, C, h, w)`` for a :class:`PixelTemporalTransformer`), ``(N,)`` → ``N`` values (the
    bootstrap of :func:`~visual_attention.views.evidence.report_evidence`)."""
    check_instance("model", model, nn.Module)
    pixel = isinstance(model, PixelTemporalTransformer)
    n = check_tensor("feats", feats, "(N, T, C, h, w)" if pixel else "(N, T, C)")[0]
    check_labels("labels", labels, n)
    with torch.no_grad():
        return (model.eval()(like_module(feats, model)).argmax(-1) == labels).float().tolist()


#: The pixel-mode experiment ``make weights`` runs (``scripts/train_temporal_pixel.py``): the
#: chapter's test clips (``make_query_clips(test_clips, split="test", seed=test_seed)``) and
#: :func:`run_seeds`'s recipe, the same as the chapter's frame-mode models.
PIXEL_RECIPE = {
    "test_clips": 2000,
    "test_seed": 1,
    "seeds": (0, 1, 2),
    "n_train": 4000,
    "epochs": 12,
    "lr": 3e-3,
    "batch_size": 64,
}
#: The weights ``make weights`` writes.
PIXEL_WEIGHTS = Path(__file__).parent / "weights" / "temporal_pixel.pt"


def train_pixel_models(
    table: torch.Tensor,
    test: tuple[torch.Tensor, torch.Tensor],
    seeds: tuple[int, ...] | None = None,
    epochs: int | None = None,
) -> dict[str, SeedRuns]:
    """Train :class:`PixelTemporalTransformer` once per seed with :data:`PIXEL_RECIPE`
    (:func:`run_seeds` with ``kind="pixel"``).

    Args:
        table: :func:`drawing_maps` of the training drawings ``(M, C, h, w)``.
        test: maps ``(N, T, C, h, w)`` and labels ``(N,)`` of the test clips.
        seeds, epochs: instead of the recipe's (a quick run).

    Returns:
        ``{"pixel": SeedRuns}``.
    """
    r = PIXEL_RECIPE
    seeds = tuple(r["seeds"] if seeds is None else check_seeds("seeds", seeds))
    epochs = r["epochs"] if epochs is None else check_positive_int("epochs", epochs)
    options = {"n_train": r["n_train"], "lr": r["lr"], "batch_size": r["batch_size"]}
    return {"pixel": run_seeds("pixel", table, test, seeds=seeds, epochs=epochs, **options)}


def pixel_fingerprint() -> str:
    """A hash of the code (docstrings aside) and the recipe that make :data:`PIXEL_WEIGHTS`."""
    parts = [PixelTemporalTransformer, FrameProjection, TemporalSelfAttention, make_model]
    parts += [run_seeds, train_pixel_models, drawing_maps, make_query_clips]
    return code_fingerprint(parts, PIXEL_RECIPE, FRAME, FRAMES)


def load_pixel_models(path: Path | str = PIXEL_WEIGHTS) -> SeedRuns:
    """The pixel-mode models ``make weights`` trained (:func:`train_pixel_models` with
    :data:`PIXEL_RECIPE`): the stored test accuracies, the models (eval mode) and their
    histories (``test_accuracy`` after every epoch).

    Args:
        path: the weights file (default: the package's, :data:`PIXEL_WEIGHTS`).
    """
    runs, _ = load_runs(path, lambda name: make_model(name), "temporal chapter's pixel models")
    return runs["pixel"]


class ClipModel(nn.Module):
    """The trained attention model from the frames' pixels up, as the reader's browser runs it.

    The frozen encoder on every frame (its pooled vector), then the
    :class:`TemporalTransformer`. ``forward``: clips ``(B, T, 1, H, W)`` → logits over the
    candidate frames ``(B, T − 1)``, the ``T × T`` weights ``(B, 1, T, T)`` and the query
    frame's row of them ``(B, T)``.
    """

    def __init__(self, attention: TemporalTransformer, encoder: nn.Module | None = None):
        super().__init__()
        check_instance("attention", attention, TemporalTransformer)
        check_encoder("encoder", encoder)
        self.encoder = load_digit_cnn() if encoder is None else encoder.eval()
        self.attention = attention.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t = check_tensor("x", x, "(B, T, C, H, W)", C=1, T=self.attention.frames)[:2]
        feats = self.encoder.feature_map(x.flatten(0, 1)).mean(dim=(2, 3))  # (B·T, 64)
        with record_attention(self.attention) as recorded:
            logits = self.attention(feats.reshape(b, t, feats.shape[-1]))
        weights = recorded["attn"]  # (B, T, T)
        return logits, weights[:, None], weights[:, -1]


def model_explorer(model: ClipModel, clips: torch.Tensor, labels: torch.Tensor) -> ModelExplorer:
    """The reader edits a clip — redraws a frame, clears one, copies one onto another — or picks
    a test clip; the page runs ``model``: which frame matches the query, and the ``T × T``
    weights of the temporal self-attention.

    Args:
        model: the :class:`ClipModel` to export.
        clips: test clips ``(N, T, 1, H, W)`` to start from; labels: their answers ``(N,)``.
    """
    check_instance("model", model, ClipModel)
    n, t = check_canvas("clips", clips, "(N, T, C, H, W)")[:2]
    check_labels("labels", labels, n)
    exported = export_model(model, clips[:1], ("logits", "weights", "query row"))
    names = [f"#{i} (the query matches frame {int(y)})" for i, y in enumerate(labels)]
    frames = [f"frame {k}" for k in range(t - 1)] + [f"frame {t - 1} (query)"]
    views = [
        probs("which frame matches the query?", "logits", frames[:-1]),
        bars("the query's weights on the frames", "query row", frames, per_canvas=True),
        maps("T × T weights (row: query frame, column: key frame)", "weights", ["A"], t - 1),
    ]
    return make_model_explorer(
        exported,
        clips[:, :, 0],
        names,
        views,
        canvas_names=frames,
        display=192,
        brush=1.0,
        caption="Pick a frame under the drawing area to draw on it: redraw the query as another "
        "digit, or copy a digit into another frame. The trained model runs in this page.",
    )
