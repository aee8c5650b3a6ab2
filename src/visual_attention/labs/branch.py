"""The lab of the branch chapter: digits at two scales, two receptive fields, SK's select step.

* :func:`scale_task` — a digit drawn at 16 or 32 pixels on a noisy ``48 × 48`` canvas, with
  fragments of other digits drawn at the *other* scale: the receptive field that reads the digit
  changes from image to image, and the wrong one sees clutter of its own size.
* :func:`branch_features` — the two branches: the frozen
  :class:`~visual_attention.labs.digits.DigitCNN` (it reads 16-pixel digits) on the canvas and on
  the canvas at half resolution (the same filters reaching twice as far), each averaged over
  positions: ``(N, 1, 48, 48)`` → ``(N, 2, 64)``.
* :class:`ScaleHead` — what is trained on them: SK's fuse and select steps then a linear
  classifier, against a fixed ½ + ½ mix and each branch alone (the controls).
* :func:`run_seeds` — one head trained per seed; :func:`weights_by_size` — the large field's
  weight as a digit grows; :class:`BranchModel` and :func:`model_explorer` — the trained heads in
  the reader's browser: draw a digit, grow or shrink it, and watch the branch weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._checks import (
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
from ..blocks import BatchNorm1d
from ..branch import fuse_branches, select_branches
from ..core import AttentionModule, masked_softmax, record_attention
from ..data import cluttered_digits, load_digits
from ..train import SeedRuns, fit_seeds
from ..views.browser_model import export_model
from ..views.model_explorer import ModelExplorer, bars, labelled, probs
from ..views.model_explorer import model_explorer as make_model_explorer
from ._checks import check_canvas, check_data, check_encoder, check_models, check_normalize
from .common import collect_attention, feature_stats, like_module, standardize
from .digits import load_digit_cnn

__all__ = [
    "CANVAS",
    "SCALES",
    "HEADS",
    "BRANCHES",
    "scale_task",
    "branch_features",
    "standardize_branches",
    "ScaleHead",
    "run_seeds",
    "render_digits",
    "weights_by_size",
    "BranchModel",
    "model_explorer",
]

#: Side of the canvases in pixels.
CANVAS = 48
#: Digit side → ``data.cluttered_digits`` options of its clutter: a 16-pixel digit gets one
#: ``8 × 8`` fragment (1/4) of a digit drawn at 32 pixels; a 32-pixel digit gets four ``6 × 6``
#: fragments (3/8) of digits drawn at 16 pixels.
SCALES = {
    16: {"distractors": 1, "distractor_size": 32, "fragment": 1 / 4},
    32: {"distractors": 4, "distractor_size": 16, "fragment": 3 / 8},
}
_TASK = {"canvas": CANVAS, "noise": 0.1}
#: The heads :class:`ScaleHead` builds: SK's select step, then the controls.
HEADS = ("select", "mix", "small", "large")
#: The branches of :func:`branch_features`, in order.
BRANCHES = ("small field", "large field")


def scale_task(
    n: int, split: str = "train", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` canvases, half with a 16-pixel digit and half with a 32-pixel digit, shuffled.

    Each digit sits at a random position among fragments of other digits drawn at the other
    scale (:data:`SCALES`), with Gaussian pixel noise 0.1 (``data.cluttered_digits``).

    Returns:
        images ``(n, 1, 48, 48)`` in ``[0, 1]``, labels ``(n,)`` and the digits' sides ``(n,)``
        (16 or 32), all int64 but the images.
    """
    check_positive_int("n", n), check_int("seed", seed, 0)
    parts = []
    for k, (size, clutter) in enumerate(SCALES.items()):
        count = n // 2 + (n % 2 if k == 0 else 0)
        if count:
            images, labels, _ = cluttered_digits(
                count,
                digit_sizes=(size, size),
                split=split,
                seed=seed * len(SCALES) + k,
                **clutter,
                **_TASK,
            )
            parts.append((images, labels, torch.full((count,), size)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return tuple(torch.cat(column)[order] for column in zip(*parts))


@torch.no_grad()
def branch_features(
    images: torch.Tensor, encoder: nn.Module | None = None, batch_size: int = 500
) -> torch.Tensor:
    """The two branches' outputs, averaged over positions: ``(N, 1, H, W)`` → ``(N, 2, C)``.

    Branch 0 (the small field) is the frozen digit encoder on the canvas; branch 1 (the large
    field) is the same encoder on the canvas at half resolution (``2 × 2`` average pooling), so
    every filter reaches twice as far, as a dilated kernel does. Each feature map is averaged over
    its positions: SK's fuse and select steps act per channel, so averaging before or after them
    gives the same result.

    Args:
        images: canvases ``(N, 1, H, W)``, ``H`` and ``W`` multiples of 8.
        encoder: a module with ``feature_map`` (default: ``load_digit_cnn()``, frozen).
        batch_size: canvases per forward pass.
    """
    check_canvas("images", images, "(N, C, H, W)", side=8)  # and at half the size
    check_positive_int("batch_size", batch_size), check_encoder("encoder", encoder)
    encoder = load_digit_cnn() if encoder is None else encoder.eval()
    parts = []
    for x in images.split(batch_size):
        x = like_module(x, encoder)
        small = encoder.feature_map(x).mean(dim=(2, 3))  # (b, C)
        large = encoder.feature_map(nn.functional.avg_pool2d(x, 2)).mean(dim=(2, 3))  # (b, C)
        parts.append(torch.stack([small, large], dim=1))  # (b, 2, C)
    return torch.cat(parts)


def standardize_branches(train: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Standardise branch features ``(N, M, C)`` per channel, with one mean and standard deviation
    for all branches (from ``train``), so that the branches stay comparable and their sum
    meaningful (:func:`visual_attention.labs.common.standardize`)."""
    check_tensor("train", train, "(N, M, C)")
    for i, f in enumerate(others):
        check_tensor(f"others[{i}]", f, "(N, M, C)", C=train.shape[2])
    as_maps = [f.transpose(1, 2)[..., None] for f in (train, *others)]  # (N, C, M, 1)
    return tuple(f[..., 0].transpose(1, 2) for f in standardize(*as_maps))


class ScaleHead(AttentionModule):
    """A linear classifier on two branches ``(B, M, C)`` mixed one of four ways.

    * ``"select"``: SK's fuse and select steps (Li et al., Eq. 1-6) on the branch outputs:
      ``s = GAP(Σ_m U_m)``, ``z = δ(B(W s))``, ``a = softmax_m(A_m z)`` per channel,
      ``V = Σ_m a_m ⊙ U_m``; records the branch weights ``a`` ``(B, M, C)``;
    * ``"mix"``: ``V = Σ_m U_m / M``, the same mixture with fixed weights (the control);
    * ``"small"`` / ``"large"``: the first or the last branch alone.

    All four end in the same ``nn.Linear(C, num_classes)``; ``"select"`` adds ``W`` (``C × d``),
    a batch norm and the ``A_m`` (``d × M·C``).

    Shapes: ``forward``: ``(B, M, C)`` → logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        mode: str = "select",
        channels: int = 64,
        branches: int = 2,
        rd_channels: int = 32,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.mode = check_choice("mode", mode, HEADS)
        self.channels = check_positive_int("channels", channels)
        self.branches = check_positive_int("branches", branches)
        check_positive_int("rd_channels", rd_channels)
        if mode == "select":  # as in SelectiveKernel: W, BN, δ, then every A_m at once
            self.fc_reduce = nn.Linear(channels, rd_channels, bias=False)
            self.bn = BatchNorm1d(rd_channels)
            self.fc_select = nn.Linear(rd_channels, branches * channels, bias=False)
        self.fc = nn.Linear(channels, check_positive_int("num_classes", num_classes))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``u`` ``(B, M, C)`` → logits ``(B, num_classes)``."""
        check_tensor("u", u, "(B, M, C)", M=self.branches, C=self.channels)
        if self.mode == "small":
            return self.fc(u[:, 0])
        if self.mode == "large":
            return self.fc(u[:, -1])
        if self.mode == "mix":
            return self.fc(u.mean(dim=1))
        maps = u[..., None, None]  # (B, M, C, 1, 1): branch outputs averaged over positions
        z = torch.relu(self.bn(self.fc_reduce(fuse_branches(maps))))  # fuse: (B, d)
        logits = self.fc_select(z).reshape(-1, self.branches, self.channels)  # (B, M, C)
        weights = self.remember(masked_softmax(logits, dim=1))  # across the branches
        return self.fc(select_branches(maps, weights)[..., 0, 0])  # select: (B, C)


def run_seeds(
    mode: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 30,
    lr: float = 1e-2,
    batch_size: int = 128,
) -> SeedRuns:
    """Train one :class:`ScaleHead` per seed on branch features ``(N, M, C)``; evaluate on
    ``test``.

    Each seed seeds the head's initialisation and the data order; Adam, constant ``lr``.

    Returns:
        :class:`~visual_attention.train.SeedRuns`: the final test accuracies (one per seed), the
        heads (eval mode) and their histories.
    """
    check_choice("mode", mode, HEADS)
    _, m, c = check_data("train", train, "(N, M, C)")
    check_data("test", test, "(N, M, C)", M=m, C=c), check_seeds("seeds", seeds)
    return fit_seeds(
        lambda: ScaleHead(mode, channels=c, branches=m),
        train,
        test,
        seeds,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
    )


def render_digits(
    indices: Sequence[int],
    size: int,
    canvas: int = CANVAS,
    noise: float = 0.1,
    split: str = "test",
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Real digits drawn at ``size × size`` pixels in the centre of a noisy canvas, no clutter.

    The noise is the same for every ``size`` and every digit (it depends only on ``seed``), so
    images of one digit at several sizes differ only by the digit's scale.

    Returns:
        images ``(N, 1, canvas, canvas)`` in ``[0, 1]`` and labels ``(N,)`` int64.
    """
    if isinstance(indices, (str, bytes)) or not isinstance(indices, Sequence):
        raise ValueError(f"indices must be a sequence of digit indices, got {indices!r:.60}")
    for i, v in enumerate(indices):
        check_int(f"indices[{i}]", v, 0)
    check_positive_int("canvas", canvas), check_number("noise", noise, 0.0)
    check_int("seed", seed, 0)
    digits, labels = load_digits(split)
    index = torch.as_tensor(list(indices), dtype=torch.long).reshape(-1)
    if len(index) and not bool(((index >= 0) & (index < len(digits))).all()):
        raise ValueError(f"indices must be in [0, {len(digits)}), got {index.tolist()}")
    if isinstance(size, bool) or not isinstance(size, int) or not 2 <= size <= canvas:
        raise ValueError(f"size must be an integer between 2 and canvas={canvas}, got {size!r}")
    resized = nn.functional.interpolate(
        digits[index][:, None], size=(size, size), mode="bilinear", align_corners=False
    ).clamp(0, 1)  # (N, 1, size, size)
    images = torch.zeros(len(index), 1, canvas, canvas)
    top = (canvas - size) // 2
    images[:, :, top : top + size, top : top + size] = resized
    noise_map = torch.randn(canvas, canvas, generator=torch.Generator().manual_seed(seed)) * noise
    return (images + noise_map).clamp(0, 1), labels[index]


def weights_by_size(
    head: ScaleHead,
    sizes: Sequence[int],
    count: int = 200,
    encoder: nn.Module | None = None,
    normalize: tuple[torch.Tensor, ...] | None = None,
) -> dict[int, tuple[torch.Tensor, float]]:
    """The same ``count`` test digits drawn at each size (:func:`render_digits`): the weight of
    the last branch (averaged over channels) and the accuracy of ``head``.

    Args:
        head: a trained ``"select"`` :class:`ScaleHead`.
        sizes: digit sides in pixels.
        count: test digits per size (the first ``count``).
        encoder: passed to :func:`branch_features`.
        normalize: ``(train features,)``: standardise as the head's training features were
            (:func:`standardize_branches`); ``None`` leaves the features raw.

    Returns:
        ``{size: (weights (count,), accuracy)}``.
    """
    check_instance("head", head, ScaleHead)
    if head.mode != "select":
        raise ValueError(f"head must be a 'select' ScaleHead, got mode={head.mode!r}")
    check_int_sequence("sizes", sizes), check_positive_int("count", count)
    check_encoder("encoder", encoder), check_normalize("normalize", normalize)
    encoder = load_digit_cnn() if encoder is None else encoder
    result = {}
    for size in sizes:
        images, labels = render_digits(range(count), size)
        f = branch_features(images, encoder)
        if normalize is not None:
            f = standardize_branches(*normalize, f)[-1]
        a = collect_attention(head, f, names=[""])[""]  # (count, M, C)
        with torch.no_grad():
            accuracy = float((head.eval()(f).argmax(-1) == labels).float().mean())
        result[size] = (a[:, -1].mean(dim=-1), accuracy)
    return result


class BranchModel(nn.Module):
    """The chapter's trained heads from the canvas up, as the reader's browser runs them.

    The two branches (:func:`branch_features`: the frozen encoder on the canvas and on the canvas
    at half resolution, averaged over positions), standardised with the training statistics
    (:func:`standardize_branches`), then each :class:`ScaleHead`. ``forward``: canvases
    ``(B, 1, H, W)`` → each head's logits ``(B, K)`` in order, then the ``"select"`` head's
    branch weights averaged over channels ``(B, M)``.

    Args:
        heads: ``{name: trained ScaleHead}``; exactly one has mode ``"select"``.
        train_features: the raw branch features of the training canvases ``(N, M, C)``.
        encoder: the frozen digit encoder (default:
            :func:`~visual_attention.labs.digits.load_digit_cnn`).
    """

    def __init__(
        self,
        heads: dict[str, ScaleHead],
        train_features: torch.Tensor,
        encoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        check_models("heads", heads, ScaleHead), check_encoder("encoder", encoder)
        selecting = [name for name, h in heads.items() if h.mode == "select"]
        if len(selecting) != 1:
            raise ValueError(f"heads must hold exactly one 'select' head, got {len(selecting)}")
        check_tensor("train_features", train_features, "(N, M, C)")
        self.encoder = load_digit_cnn() if encoder is None else encoder.eval()
        self.names = list(heads)
        self.heads = nn.ModuleList(h.eval() for h in heads.values())
        self.selecting = self.names.index(selecting[0])
        # per channel, one scale for both branches, as standardize_branches
        mean, std = feature_stats(train_features.transpose(1, 2)[..., None], "train_features")
        self.register_buffer("mean", mean.flatten())  # (C,)
        self.register_buffer("std", std.flatten())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        check_canvas("x", x, "(B, C, H, W)", side=8)
        small = self.encoder.feature_map(x).mean(dim=(2, 3))  # (B, C): the small field
        large = self.encoder.feature_map(nn.functional.avg_pool2d(x, 2)).mean(dim=(2, 3))
        u = (torch.stack([small, large], dim=1) - self.mean) / self.std  # (B, M, C)
        out, weights = [], None
        for k, head in enumerate(self.heads):
            with record_attention(head) as maps:
                out.append(head(u))
            if k == self.selecting:
                weights = maps[""].mean(dim=-1)  # (B, M): each branch's weight, over channels
        return (*out, weights)


def model_explorer(
    model: BranchModel, examples: torch.Tensor, labels: torch.Tensor, display: int = 240
) -> ModelExplorer:
    """The reader draws a digit at any size — or grows and shrinks it, or picks a test canvas —
    and the page runs ``model``: the branch weights of the ``"select"`` head and every head's
    probabilities.

    Args:
        model: the :class:`BranchModel` to export.
        examples: canvases ``(N, 1, H, W)`` to start from.
        labels: their digits ``(N,)``.
        display: the drawing area's side in CSS pixels.
    """
    check_instance("model", model, BranchModel)
    n, _, h, w = check_canvas("examples", examples, "(N, C, H, W)", side=8)
    check_labels("labels", labels, n)
    outputs = [f"logits {name}" for name in model.names] + ["branch weights"]
    exported = export_model(model, examples[:1], outputs)
    views = [probs(name, f"logits {name}") for name in model.names]
    name = model.names[model.selecting]
    views.append(bars(f"{name}: branch weights (mean over channels)", "branch weights", BRANCHES))
    return make_model_explorer(
        exported,
        examples,
        labelled(labels),
        views,
        display=display,
        brush=2.2,
        caption=f"Draw a digit on the {h} × {w} canvas, then grow or shrink it (size − +): "
        "the weight of the large field follows the digit's size. The trained heads run in this "
        "page.",
    )
