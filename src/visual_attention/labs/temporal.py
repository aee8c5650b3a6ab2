"""The lab of the temporal chapter: digit clips, a pooling head on frozen frame features, the
multi-seed experiment and the clip explorer.

* :func:`make_clips` — clips of ``16 × 16`` frames in which one digit (the label) is shown in only
  1–2 frames; the other frames hold noise and fragments of other digits (distractors).
* :func:`frame_features` — the frozen digit encoder (``labs.digits.load_digit_cnn``) turns every
  frame into its pooled 64-d feature vector, once.
* :class:`ClipHead` — attention pooling over the frames (the mechanism) or their plain mean (the
  control), then one linear classifier: the only trained parameters.
* :func:`run_seeds` — one head of either kind trained per seed; :class:`ClipModel` and
  :func:`model_explorer` — the trained heads in the reader's browser: edit a clip's frames and
  watch the frame weights.
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import (
    check_bool_mask,
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
from ..train import SeedRuns, fit_seeds
from ..views.browser_model import export_model
from ..views.model_explorer import ModelExplorer, bars, probs
from ..views.model_explorer import model_explorer as make_model_explorer
from ._checks import check_canvas, check_data, check_encoder
from .common import pooled_features
from .digits import DIGIT_SIZE, DigitCNN, digits_at, load_digit_cnn

__all__ = [
    "FRAME",
    "make_clips",
    "frame_features",
    "ClipHead",
    "run_seeds",
    "weight_on_digit_frames",
    "ClipModel",
    "model_explorer",
]


#: The side of a frame in pixels: the size at which the frozen encoder learned the digits.
FRAME = DIGIT_SIZE


def _paste(canvas: torch.Tensor, patch: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor):
    """In place, ``canvas[m, r:r+h, c:c+w] = max(canvas[...], patch[m])`` for every ``m``.

    ``canvas`` ``(M, S, S)``, ``patch`` ``(M, h, w)``, top-left corners ``rows, cols`` ``(M,)``.
    """
    m, h, w = patch.shape
    r = (rows[:, None, None] + torch.arange(h)[None, :, None]).expand(m, h, w)
    c = (cols[:, None, None] + torch.arange(w)[None, None, :]).expand(m, h, w)
    i = torch.arange(m)[:, None, None].expand(m, h, w)
    canvas[i, r, c] = torch.maximum(canvas[i, r, c], patch)


def make_clips(
    n: int,
    frames: int = 8,
    visible: tuple[int, int] = (1, 2),
    fragments: int = 2,
    fragment: int = 8,
    noise: float = 0.1,
    split: str = "train",
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clips in which a digit is visible in only a few consecutive frames.

    Each clip shows one scikit-learn digit (the label), drawn at ``16 × 16`` pixels and shifted by
    up to 2 pixels (as the frozen encoder saw digits in training), in a run of ``visible``
    consecutive frames, moving along a line; every other frame shows ``fragments`` random
    ``fragment × fragment`` crops of other digits at random places. Gaussian pixel noise
    (``noise``) everywhere. Drawn with tensor ops (no per-clip loop).

    Args:
        n: number of clips; frames: frames per clip ``T``.
        visible: ``(fewest, most)`` frames that show the digit.
        fragments, fragment: distractors per empty frame and their side in pixels.
        noise: standard deviation of the pixel noise.
        split: ``"train"`` or ``"test"`` digits (:func:`~visual_attention.labs.digits.digits_at`).
        seed: random seed.

    Returns:
        clips ``(n, T, 1, 16, 16)`` in ``[0, 1]``, labels ``(n,)`` int64 and ``present``
        ``(n, T)`` bool, True where the digit is shown.
    """
    check_positive_int("n", n)
    check_positive_int("frames", frames), check_int_sequence("visible", visible, 2)
    check_int("fragments", fragments, 0), check_positive_int("fragment", fragment)
    check_number("noise", noise, 0.0), check_int("seed", seed, 0)
    if not 1 <= visible[0] <= visible[1] <= frames or not 1 <= fragment <= FRAME:
        raise ValueError(
            f"need 1 <= visible[0] <= visible[1] <= frames and 1 <= fragment <= {FRAME}, got "
            f"visible={visible}, frames={frames}, fragment={fragment}"
        )
    g = torch.Generator().manual_seed(seed)
    digits, labels = digits_at(FRAME, split)
    digits = digits[:, 0]  # (D, 16, 16)
    pad, side = 2, FRAME + 4  # draw on 20 × 20, keep the central 16 × 16: shifts of ±2 pixels
    k = torch.randint(len(digits), (n,), generator=g)
    count = torch.randint(visible[0], visible[1] + 1, (n,), generator=g)
    first = (torch.rand(n, generator=g) * (frames - count + 1)).long()
    t = torch.arange(frames)
    present = (t >= first[:, None]) & (t < (first + count)[:, None])  # (n, T)
    start, end = (torch.randint(side - FRAME + 1, (n, 2), generator=g) for _ in range(2))
    step = ((t - first[:, None]) / (count[:, None] - 1).clamp(min=1)).clamp(0, 1)  # (n, T)
    pos = (start[:, None] + step[..., None] * (end - start)[:, None]).round().long()  # (n, T, 2)
    canvas = torch.zeros(n * frames, side, side)
    on, off = present.flatten(), ~present.flatten()
    drawn = canvas[on]
    patch = digits[k].repeat_interleave(frames, 0)[on]
    _paste(drawn, patch, pos.flatten(0, 1)[on, 0], pos.flatten(0, 1)[on, 1])
    canvas[on] = drawn
    empty, m = canvas[off], int(off.sum())
    for _ in range(fragments):
        other = digits[torch.randint(len(digits), (m,), generator=g)]
        corner = torch.randint(FRAME - fragment + 1, (m, 2), generator=g)
        rows = (corner[:, 0, None, None] + torch.arange(fragment)[None, :, None]).expand(
            m, fragment, fragment
        )
        cols = (corner[:, 1, None, None] + torch.arange(fragment)[None, None, :]).expand(
            m, fragment, fragment
        )
        piece = other[torch.arange(m)[:, None, None], rows, cols]  # (m, f, f)
        where = torch.randint(side - fragment + 1, (m, 2), generator=g)
        _paste(empty, piece, where[:, 0], where[:, 1])
    canvas[off] = empty
    clips = canvas[:, pad:-pad, pad:-pad].reshape(n, frames, 1, FRAME, FRAME)
    clips = (clips + noise * torch.randn(clips.shape, generator=g)).clamp(0, 1)
    return clips, labels[k], present


def frame_features(encoder: DigitCNN, clips: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Every frame's feature vector from the frozen encoder: its feature map averaged over
    positions (the vector its own classifier reads;
    :func:`~visual_attention.labs.common.pooled_features`).

    ``clips`` ``(N, T, 1, H, W)`` → ``(N, T, 64)``; computed once, in batches, without gradients.
    """
    return pooled_features(encoder, clips, batch_size, "clips", "(N, T, C, H, W)")


class ClipHead(nn.Module):
    """Pooling over frames, then a linear classifier: the only trained part of the clip model.

    Args:
        pool: ``"attention"`` (:class:`~visual_attention.blocks.AttentionPooling` over the
            frames, recorded as ``pool``) or ``"mean"`` (plain average: the control).
        dim: frame feature size ``D``; num_classes: number of classes.

    ``forward(feats)`` maps frame features ``(B, T, D)`` to logits ``(B, num_classes)``.
    """

    def __init__(self, pool: str = "attention", dim: int = 64, num_classes: int = 10) -> None:
        super().__init__()
        check_choice("pool", pool, ("attention", "mean"))
        check_positive_int("dim", dim)
        check_positive_int("num_classes", num_classes)
        self.dim = dim
        self.pool = AttentionPooling(dim) if pool == "attention" else None
        self.head = nn.Linear(dim, num_classes)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        check_tensor("feats", feats, "(B, T, D)", D=self.dim)
        pooled = feats.mean(dim=1) if self.pool is None else self.pool(feats)  # (B, D)
        return self.head(pooled)


def run_seeds(
    pool: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seeds: tuple[int, ...] = (0, 1, 2),
    epochs: int = 30,
    lr: float = 1e-2,
    batch_size: int = 128,
) -> SeedRuns:
    """Train one :class:`ClipHead` (``pool`` ``"attention"`` or ``"mean"``) per seed on frame
    features; evaluate on ``test``.

    Args:
        pool: ``"attention"`` (the mechanism) or ``"mean"`` (the control).
        train, test: frame features ``(N, T, D)`` and labels ``(N,)``.
        seeds: one training per seed (the seed sets the initialisation and the data order).
        epochs, lr, batch_size: Adam, one epoch of linear warm-up, then a cosine decay to 0.

    Returns:
        :class:`~visual_attention.train.SeedRuns`: the final test accuracies (one per seed), the
        heads (eval mode) and their histories.
    """
    check_choice("pool", pool, ("attention", "mean"))
    d = check_data("train", train, "(N, T, D)")[2]
    check_data("test", test, "(N, T, D)", D=d), check_seeds("seeds", seeds)
    return fit_seeds(
        lambda: ClipHead(pool, dim=d),
        train,
        test,
        seeds,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        warmup_epochs=1,
    )


def weight_on_digit_frames(weights: torch.Tensor, present: torch.Tensor) -> float:
    """Mean over clips of the total weight on the frames that show the digit.

    ``weights`` ``(N, T)`` (each row sums to 1), ``present`` ``(N, T)`` bool. Averaging gives
    these frames their share, ``present.float().mean()``.
    """
    check_tensor("weights", weights, "(N, T)")
    check_bool_mask("present", present, shape=weights.shape, layout="(N, T)")
    return float((weights * present).sum(-1).mean())


class ClipModel(nn.Module):
    """The chapter's trained heads from the frames' pixels up, as the reader's browser runs them.

    The frozen encoder on every frame (:func:`frame_features`), then the attention-pooling
    :class:`ClipHead` and the averaging control. ``forward``: clips ``(B, T, 1, H, W)`` → the
    attention head's logits ``(B, K)``, its frame weights ``α_t`` ``(B, T)`` and the control's
    logits ``(B, K)``.

    Args:
        attention: a trained :class:`ClipHead` with ``pool="attention"``; mean: one with
            ``pool="mean"``.
        encoder: the frozen digit encoder (default:
            :func:`~visual_attention.labs.digits.load_digit_cnn`).
    """

    def __init__(self, attention: ClipHead, mean: ClipHead, encoder: nn.Module | None = None):
        super().__init__()
        check_instance("attention", attention, ClipHead), check_instance("mean", mean, ClipHead)
        check_encoder("encoder", encoder)
        if attention.pool is None or mean.pool is not None:
            raise ValueError("attention must pool with attention and mean by averaging")
        self.encoder = load_digit_cnn() if encoder is None else encoder.eval()
        self.attention, self.mean = attention.eval(), mean.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t = check_tensor("x", x, "(B, T, C, H, W)", C=1)[:2]
        feats = self.encoder.feature_map(x.flatten(0, 1)).mean(dim=(2, 3))  # (B·T, D)
        feats = feats.reshape(b, t, feats.shape[-1])
        with record_attention(self.attention) as maps:
            logits = self.attention(feats)
        return logits, maps["pool"], self.mean(feats)


def model_explorer(
    model: ClipModel, clips: torch.Tensor, labels: torch.Tensor, present: torch.Tensor
) -> ModelExplorer:
    """The reader edits a clip — clears frames, draws a digit in any frame, copies a frame to the
    next, adds noise — or picks a test clip; the page runs ``model``: the weight of every frame
    and both heads' probabilities.

    Args:
        model: the :class:`ClipModel` to export.
        clips: test clips ``(N, T, 1, H, W)`` to start from.
        labels: their digits ``(N,)``; present: ``(N, T)`` bool, the frames showing the digit.
    """
    check_instance("model", model, ClipModel)
    n, t = check_canvas("clips", clips, "(N, T, C, H, W)")[:2]
    check_labels("labels", labels, n)
    check_bool_mask("present", present, shape=(n, t), layout="(N, T)")
    exported = export_model(model, clips[:1], ("logits attention", "frame weights", "logits mean"))
    names = [
        f"#{i} (digit {int(y)} in frames {', '.join(str(int(k)) for k in p.nonzero()[:, 0])})"
        for i, (y, p) in enumerate(zip(labels, present))
    ]
    frames = [f"frame {k}" for k in range(t)]
    views = [
        probs("attention pooling", "logits attention"),
        probs("mean over frames (control)", "logits mean"),
        bars("frame weights α_t", "frame weights", frames, per_canvas=True),
    ]
    return make_model_explorer(
        exported,
        clips[:, :, 0],
        names,
        views,
        canvas_names=frames,
        display=192,
        brush=1.0,
        caption="Pick a frame under the drawing area to draw on it: clear the frames that show "
        "the digit, draw it in others or copy it to the next frame. The trained heads run in "
        "this page.",
    )
