"""The lab of the temporal chapter: digit clips, a pooling head on frozen frame features, the
multi-seed experiment and the clip explorer.

* :func:`make_clips` — clips of ``16 × 16`` frames in which one digit (the label) is shown in only
  1–2 frames; the other frames hold noise and fragments of other digits (distractors).
* :func:`frame_features` — the frozen digit encoder (``labs.digits.load_digit_cnn``) turns every
  frame into its pooled 64-d feature vector, once.
* :class:`ClipHead` — attention pooling over the frames (the mechanism) or their plain mean (the
  control), then one linear classifier: the only trained parameters.
* :func:`run_experiment` — both heads over several seeds; :func:`explorer` — scrub through clips.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np
import torch
from torch import nn

from .._checks import (
    check_bool_mask,
    check_choice,
    check_data,
    check_encoder,
    check_instance,
    check_int,
    check_int_sequence,
    check_labels,
    check_module,
    check_number,
    check_positive_int,
    check_seeds,
    check_tensor,
)
from ..blocks import AttentionPooling
from ..train import History, fit, seed_everything
from ..views.viz import VIEW_CSS, bars_html, colorize, data_uri
from ..views.widgets import html_view, precomputed_explorer
from .digits import DIGIT_SIZE, DigitCNN, check_canvas, digits_at

__all__ = [
    "FRAME",
    "make_clips",
    "frame_features",
    "ClipHead",
    "run_experiment",
    "weight_on_digit_frames",
    "explorer",
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


@torch.no_grad()
def frame_features(encoder: DigitCNN, clips: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Every frame's feature vector from the frozen encoder: its feature map averaged over
    positions (the vector its own classifier reads).

    ``clips`` ``(N, T, 1, H, W)`` → ``(N, T, 64)``; computed once, in batches, without gradients.
    """
    check_module("encoder", encoder), check_encoder("encoder", encoder)
    n, t = check_canvas("clips", clips, "(N, T, C, H, W)")[:2]
    check_positive_int("batch_size", batch_size)
    frames = clips.flatten(0, 1)
    feats = [
        encoder.feature_map(frames[i : i + batch_size]).mean(dim=(2, 3))
        for i in range(0, len(frames), batch_size)
    ]
    return torch.cat(feats).reshape(n, t, -1)


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


def run_experiment(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seeds: tuple[int, ...] = (0, 1, 2),
    epochs: int = 30,
    lr: float = 1e-2,
    batch_size: int = 128,
) -> tuple[dict[str, list[float]], dict[str, ClipHead], dict[str, History]]:
    """Train a :class:`ClipHead` of each kind (``"attention"``, ``"mean"``) once per seed.

    Args:
        train, test: frame features ``(N, T, D)`` and labels ``(N,)``.
        seeds: one training per seed and kind (the seed sets the initialisation and the order).
        epochs, lr, batch_size: Adam, one epoch of linear warm-up, then a cosine decay to 0.

    Returns:
        final test accuracies ``{kind: [one per seed]}``, and the model and the history of the
        first seed of each kind.
    """
    d = check_data("train", train, "(N, T, D)")[2]
    check_data("test", test, "(N, T, D)", D=d), check_seeds("seeds", seeds)
    accuracies: dict[str, list[float]] = {}
    models: dict[str, ClipHead] = {}
    histories: dict[str, History] = {}
    for kind in ("attention", "mean"):
        accuracies[kind] = []
        for seed in seeds:
            seed_everything(seed)
            model = ClipHead(kind, dim=train[0].shape[-1])
            history = fit(
                model,
                train,
                test,
                epochs=epochs,
                lr=lr,
                batch_size=batch_size,
                seed=seed,
                warmup_epochs=1,
                progress=False,
            )
            accuracies[kind].append(history.final_test_accuracy)
            if seed == seeds[0]:
                models[kind], histories[kind] = model.eval(), history
    return accuracies, models, histories


def weight_on_digit_frames(weights: torch.Tensor, present: torch.Tensor) -> float:
    """Mean over clips of the total weight on the frames that show the digit.

    ``weights`` ``(N, T)`` (each row sums to 1), ``present`` ``(N, T)`` bool. Averaging gives
    these frames their share, ``present.float().mean()``.
    """
    check_tensor("weights", weights, "(N, T)")
    check_bool_mask("present", present, shape=weights.shape, layout="(N, T)")
    return float((weights * present).sum(-1).mean())


@torch.no_grad()
def explorer(
    model: ClipHead,
    clips: torch.Tensor,
    feats: torch.Tensor,
    labels: torch.Tensor,
    present: torch.Tensor,
    size: int = 144,
):
    """Scrub through clips: the frame weights, the chosen frame, and the class probabilities.

    Controls ``clip`` (one value per clip given) and ``frame``. Each view shows the chosen frame
    (outlined in the strip of all frames, each thumbnail's border as thick as its weight), the
    frame weights as bars (``α_t``; frames that contain the digit are marked ✓), and two sets of
    class probabilities: the clip's (classifier on the attention-pooled vector) and that of the
    chosen frame alone (classifier on its features), so one sees what each frame would say alone.

    Args:
        model: a trained :class:`ClipHead` with ``pool="attention"``.
        clips: ``(N, T, 1, H, W)``; feats: their frame features ``(N, T, D)``
            (:func:`frame_features`); labels ``(N,)``; present ``(N, T)`` bool.
        size: displayed side of the chosen frame in CSS pixels.
    """
    check_instance("model", model, ClipHead)
    if model.pool is None:
        raise ValueError("explorer needs a ClipHead with pool='attention'")
    n, t = check_tensor("clips", clips, "(N, T, C, H, W)", C=1)[:2]
    check_tensor("feats", feats, "(N, T, D)", N=n, T=t, D=model.dim)
    check_labels("labels", labels, n), check_positive_int("size", size)
    check_bool_mask("present", present, shape=(n, t), layout="(N, T)")
    model.eval()
    weights = model.pool.weights(feats)  # (N, T)
    clip_probs = model.head(torch.einsum("nt,ntd->nd", weights, feats)).softmax(-1)  # (N, K)
    frame_probs = model.head(feats).softmax(-1)  # (N, T, K)
    classes = [str(k) for k in range(clip_probs.shape[-1])]

    def uri(frame: torch.Tensor) -> str:
        grey = (frame[0].float().clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        return data_uri(np.repeat(grey[..., None], 3, axis=-1))

    thumbs = [[uri(clips[i, s]) for s in range(t)] for i in range(n)]

    def render(clip: int, frame: int) -> widgets.Widget:
        w = weights[clip]
        strip = "".join(
            f'<img alt="frame {s}" src="{thumbs[clip][s]}" '
            f'title="frame {s}: weight {float(w[s]):.3f}" '
            f'style="width:34px;height:34px;image-rendering:pixelated;box-sizing:border-box;'
            f"border:{1 + round(6 * float(w[s]))}px solid "
            f"{'#39d0ff' if s == frame else '#d9534f'};"
            f'margin-right:2px">'
            for s in range(t)
        )
        heat = data_uri(colorize(w[None].float().numpy(), vmax=1.0)[..., :3])
        mark = "digit present" if bool(present[clip, frame]) else "no digit"
        caption = (
            f"clip {clip} (label {int(labels[clip])}) · frame {frame}: "
            f"weight α = {float(w[frame]):.3f} · {mark}"
        )
        left = (
            f'<div class="va-view"><img alt="frame {frame}" src="{thumbs[clip][frame]}" '
            f'style="width:{size}px;height:{size}px;image-rendering:pixelated">'
            f'<div class="va-cap">{html.escape(caption)}</div>'
            f'<div style="margin-top:4px">{strip}</div>'
            f'<img alt="frame weights" src="{heat}" style="width:{36 * t}px;height:10px;'
            f'image-rendering:pixelated"></div>'
        )
        names = [f"t{s}{' ✓' if present[clip, s] else ''}" for s in range(t)]
        bars_w = bars_html(w.tolist(), names, title="frame weights α_t", vmax=1.0)
        bars_c = bars_html(
            clip_probs[clip].tolist(), classes, title="clip: class probabilities", vmax=1.0
        )
        bars_f = bars_html(
            frame_probs[clip, frame].tolist(), classes, title=f"frame {frame} alone", vmax=1.0
        )
        return html_view(f'<div class="va-flex">{left}{bars_w}{bars_c}{bars_f}</div>')

    return precomputed_explorer(
        {"clip": list(range(n)), "frame": list(range(t))}, render, header=widgets.HTML(VIEW_CSS)
    )
