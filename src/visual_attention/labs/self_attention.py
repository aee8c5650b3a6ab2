"""The lab of the self-attention chapter: two digits at a controlled distance ("the same digit?"),
a local network whose receptive field is known and the same network with a non-local block, and
the explorers.

* :func:`pair_task` — two real digits on a noisy ``16 × 128`` strip, their centres ``d`` pixels
  apart; label 1 if they are the same digit. An XOR-like relation: no sum of separate evidence
  about each digit gives it, so a network must see both digits at one position.
* :func:`strip_features` — the frozen digit encoder run over the strips once: ``(N, 1, 16, 128)``
  → ``(N, 64, 1, 32)``, one feature vector per 4-pixel column.
* :class:`PairNet` — what is trained on them: a mixing block, then the same per-position MLP and
  the average of its logits over positions. The block is a :class:`NonLocalBlock` (every column
  sees every column) or, the control, a :class:`LocalBlock` (a ``1 × k`` convolution: every column
  sees ``k`` columns); :func:`receptive_field` says how many pixels that is.
* :func:`run_seeds`, :func:`accuracy_by_distance`, :func:`attention_to_other` — the multi-seed
  runner and the two measurements; :class:`StripModel` and :func:`model_explorer` — the trained
  networks in the reader's browser: draw two digits at any distance, see where a column looks.
* :func:`explorer` — the self-attention of a photo's patches, computed in the browser.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._checks import (
    check_choice,
    check_instance,
    check_int,
    check_int_sequence,
    check_labels,
    check_module,
    check_positive_int,
    check_positive_number,
    check_seeds,
    check_size2,
    check_str,
    check_tensor,
    shape_str,
)
from ..blocks import BatchNorm2d
from ..core import record_attention
from ..multi_head import sinusoidal_position_embedding
from ..self_attention import NonLocalBlock
from ..train import SeedRuns, evaluate, fit_seeds
from ..views.browser_model import export_model
from ..views.model_explorer import ModelExplorer, probs, tokens
from ..views.model_explorer import model_explorer as make_model_explorer
from ..views.widgets import attention_explorer
from ._checks import check_data, check_initial
from .common import (
    EncodedHeads,
    code_fingerprint,
    collect_attention,
    encode,
    load_runs,
    standardize,
)
from .digits import DIGIT_SIZE, digits_at

__all__ = [
    "STRIP",
    "DISTANCES",
    "KERNEL",
    "ENCODER_LAYERS",
    "MODES",
    "DILATIONS",
    "ORDER_DIGITS",
    "MODELS",
    "pair_task",
    "order_task",
    "strip_features",
    "receptive_field",
    "LocalBlock",
    "DilatedBlock",
    "PairNet",
    "PoolMLP",
    "make_model",
    "run_seeds",
    "SELF_RECIPE",
    "SELF_MODELS",
    "SELF_WEIGHTS",
    "train_self_models",
    "self_fingerprint",
    "load_self_models",
    "accuracy_by_distance",
    "correct_by_example",
    "digit_columns",
    "attention_to_other",
    "render_pair",
    "standardize",
    "StripModel",
    "model_explorer",
    "explorer",
]

#: ``(height, width)`` of the strips in pixels: one row of 16-pixel digits.
STRIP = (DIGIT_SIZE, 128)
#: Distances between the centres of the two digits, in pixels (16 = side by side).
DISTANCES = (16, 24, 32, 40, 48, 64, 80, 96)
#: Width, in encoder columns, of the control's convolution (:class:`LocalBlock`).
KERNEL = 9
#: The frozen encoder's layers as ``(kernel, stride)``: conv, pool, conv, pool, conv.
ENCODER_LAYERS = ((3, 1), (2, 2), (3, 1), (2, 2), (3, 1))
#: The mixing blocks :class:`PairNet` builds: the non-local block, then the local control, then
#: the dilated control that sees the whole strip.
MODES = ("non-local", "local", "dilated")
#: What :func:`run_seeds` trains: a :class:`PairNet` of each mode, and :class:`PoolMLP`.
MODELS = (*MODES, "pool-mlp")
#: Dilations of :class:`DilatedBlock`'s ``1 × 3`` convolutions: together they reach 31 columns.
DILATIONS = (1, 2, 4, 8)
#: Digits on each strip of :func:`order_task`.
ORDER_DIGITS = 3


def pair_task(
    n: int, distances: Sequence[int] = DISTANCES, split: str = "train", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` strips with two digits whose centres are ``d`` pixels apart: the same digit or not?

    Each strip is ``STRIP = (16, 128)`` pixels: a real digit (drawn at 16 × 16) at a random
    column, a second one ``d`` pixels to its right (every distance of ``distances`` equally
    often), Gaussian pixel noise 0.1, clipped to ``[0, 1]``. Half of the strips (label 1) show two
    images of the same class (usually two different images), the other half two different
    classes, and so at every distance (to within one strip): chance is 0.5 everywhere. Digits
    come from ``split`` of the scikit-learn digits (``labs.digits.digits_at``).

    Returns:
        images ``(n, 1, 16, 128)``, labels ``(n,)`` int64 (1 = same digit) and the left columns
        of the two digits ``(n, 2)`` int64 (their difference is ``d``).
    """
    check_positive_int("n", n)
    check_int_sequence("distances", distances)
    check_int("seed", seed, 0)
    height, width = STRIP
    dist = torch.as_tensor(list(distances), dtype=torch.long)
    if len(dist) == 0 or bool(((dist < height) | (dist > width - height)).any()):
        raise ValueError(
            f"distances must lie in [{height}, {width - height}], got {dist.tolist()}"
        )
    g = torch.Generator().manual_seed(seed)
    digits, classes = digits_at(DIGIT_SIZE, split)
    # balanced: "same" alternates and each distance takes every pair of strips in turn, so every
    # distance holds as many "same" as "different" strips (±1)
    order = torch.randperm(n, generator=g)
    same = (torch.arange(n) % 2 == 0)[order]
    d = dist[(torch.arange(n) // 2 + torch.randint(len(dist), (1,), generator=g)) % len(dist)]
    d = d[order]
    first = torch.randint(len(digits), (n,), generator=g)
    wanted = torch.where(
        same, classes[first], (classes[first] + torch.randint(1, 10, (n,), generator=g)) % 10
    )
    by_class = [torch.nonzero(classes == c)[:, 0] for c in range(10)]
    pick = torch.rand(n, generator=g)
    second = torch.stack([by_class[c][int(u * len(by_class[c]))] for c, u in zip(wanted, pick)])
    left = (torch.rand(n, generator=g) * (width - height - d + 1)).long()
    columns = torch.stack([left, left + d], 1)
    images = torch.zeros(n, 1, height, width)
    for i in range(n):
        for digit, c in zip((first[i], second[i]), columns[i].tolist()):
            images[i, :, :, c : c + height] = digits[digit]
    images = (images + 0.1 * torch.randn(images.shape, generator=g)).clamp(0, 1)
    return images, same.long(), columns


def order_task(
    n: int, split: str = "train", seed: int = 0, digits: int = ORDER_DIGITS
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` strips of ``digits`` digits in a row: is the **leftmost** digit repeated further on?

    Each strip is ``STRIP = (16, 128)`` pixels holding ``digits`` real digits (16 × 16, from
    ``split``) at random, non-overlapping places (sorted gaps), Gaussian pixel noise 0.1, clipped
    to ``[0, 1]``. Every strip shows ``digits − 1`` classes, one of them twice; label 1 (half the
    strips) if the twice-shown class is the leftmost digit's. The same classes occur in the same
    numbers under both labels, so what is present does not answer: the label pairs *content*
    (which two digits match) with *position* (which digit is leftmost).

    Returns:
        images ``(n, 1, 16, 128)``, labels ``(n,)`` int64 (1 = the leftmost digit is repeated) and
        the left pixel columns of the digits ``(n, digits)`` int64, left to right.
    """
    check_positive_int("n", n)
    check_int("seed", seed, 0)
    height, width = STRIP
    if not 3 <= check_int("digits", digits) <= width // height:
        raise ValueError(f"digits must lie in [3, {width // height}], got {digits}")
    g = torch.Generator().manual_seed(seed)
    pool, classes = digits_at(DIGIT_SIZE, split)
    by_class = [torch.nonzero(classes == c)[:, 0] for c in range(10)]
    labels = (torch.arange(n) % 2 == 0)[torch.randperm(n, generator=g)]
    gaps = (torch.rand(n, digits, generator=g) * (width - digits * height + 1)).long()
    columns = gaps.sort(1).values + height * torch.arange(digits)  # (n, digits), left to right
    images = torch.zeros(n, 1, height, width)
    for i in range(n):
        c = torch.randperm(10, generator=g)[: digits - 1].tolist()  # c[0] is shown twice
        first, rest = (c[0], [c[0], *c[1:]]) if labels[i] else (c[1], [c[0], c[0], *c[2:]])
        row = [first] + [rest[j] for j in torch.randperm(digits - 1, generator=g).tolist()]
        for cls, col in zip(row, columns[i].tolist()):
            pick = by_class[cls][torch.randint(len(by_class[cls]), (1,), generator=g)]
            images[i, :, :, col : col + height] = pool[pick[0]]
    images = (images + 0.1 * torch.randn(images.shape, generator=g)).clamp(0, 1)
    return images, labels.long(), columns


def strip_features(images: torch.Tensor, encoder: nn.Module | None = None) -> torch.Tensor:
    """The frozen digit encoder over strips, averaged over its 4 rows: ``(N, 1, 16, W)`` →
    ``(N, 64, 1, W/4)``, one feature vector per 4-pixel column (``labs.common.encode``)."""
    check_tensor("images", images, "(N, C, H, W)", C=1, H=STRIP[0])
    return encode(images, encoder).mean(dim=2, keepdim=True)


def receptive_field(layers: Sequence[tuple[int, ...]]) -> int:
    """The receptive field, in input pixels, of one output position of a stack of layers.

    Each layer is ``(kernel, stride)`` or ``(kernel, stride, dilation)``; a layer of kernel ``k``
    and dilation ``r`` (its taps ``r`` apart) adds ``(k − 1)·r·J`` pixels, where ``J`` is the
    product of the strides of the layers before it. The encoder (:data:`ENCODER_LAYERS`) gives
    18; a ``1 × 9`` convolution on its output adds ``8 · 4``.
    """
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise ValueError(
            f"layers must be a sequence of (kernel, stride[, dilation]) tuples, got {layers!r:.60}"
        )
    checked = []
    for i, layer in enumerate(layers):
        name = f"layers[{i}] (kernel, stride[, dilation])"
        size = len(layer) if isinstance(layer, Sequence) and len(layer) in (2, 3) else 2
        checked.append((*check_int_sequence(name, layer, size), 1)[:3])
    field, jump = 1, 1
    for kernel, stride, dilation in checked:
        field, jump = field + (kernel - 1) * dilation * jump, jump * stride
    return field


class LocalBlock(nn.Module):
    """The control: :class:`NonLocalBlock`'s residual form with a local window instead of all
    positions.

    ``y = ReLU(conv_{1×k}(x))`` (every column combines the ``k`` columns around it, ``C → C'``
    with ``C' = width``, default ``C/2`` like the non-local block's bottleneck) and
    ``z = BN(W_z y) + x`` with the BatchNorm's scale starting at zero, as in Eq. (6). Shapes:
    ``(B, C, H, W)`` → ``(B, C, H, W)``.
    """

    def __init__(self, channels: int, kernel: int = KERNEL, width: int | None = None) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.kernel = check_positive_int("kernel", kernel)
        width = max(1, channels // 2) if width is None else check_positive_int("width", width)
        self.conv = nn.Conv2d(channels, width, (1, kernel), padding=(0, kernel // 2))
        self.w_z = nn.Conv2d(width, channels, 1)
        self.norm = BatchNorm2d(channels)
        nn.init.zeros_(self.norm.weight)  # the block starts as the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, "(B, C, H, W)", C=self.channels)
        return self.norm(self.w_z(torch.relu(self.conv(x)))) + x


class DilatedBlock(nn.Module):
    """A control that sees the whole strip without attention: :class:`LocalBlock`'s residual form
    with a stack of dilated convolutions.

    ``y = ReLU(conv_{1×3, dilation 8}(… ReLU(conv_{1×3, dilation 1}(x))))`` with ``width``
    channels (``C → width → … → width``), then ``z = BN(W_z y) + x`` with the BatchNorm's scale
    starting at zero. With dilations 1, 2, 4, 8 every column combines ``1 + 2·(1 + 2 + 4 + 8) =
    31`` columns around it (:func:`receptive_field` with ``(3, 1, dilation)`` layers): as far as
    the non-local block, through a fixed, content-blind weighting of offsets (Yu and Koltun 2016).
    Shapes: ``(B, C, H, W)`` → ``(B, C, H, W)``.
    """

    def __init__(
        self, channels: int, width: int = 32, dilations: Sequence[int] = DILATIONS
    ) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_positive_int("width", width)
        self.dilations = check_int_sequence("dilations", dilations)
        ins = (channels, *[width] * (len(self.dilations) - 1))
        self.convs = nn.ModuleList(
            nn.Conv2d(c, width, (1, 3), padding=(0, r), dilation=(1, r))
            for c, r in zip(ins, self.dilations)
        )
        self.w_z = nn.Conv2d(width, channels, 1)
        self.norm = BatchNorm2d(channels)
        nn.init.zeros_(self.norm.weight)  # the block starts as the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, "(B, C, H, W)", C=self.channels)
        y = x
        for conv in self.convs:
            y = torch.relu(conv(y))
        return self.norm(self.w_z(y)) + x


class PairNet(nn.Module):
    """A mixing block, then the same per-position MLP and the average of its logits.

    ``mode="non-local"``: a :class:`NonLocalBlock` (embedded Gaussian, ``C' = C/2``);
    ``mode="local"``: a :class:`LocalBlock` of width ``kernel``; ``mode="dilated"``: a
    :class:`DilatedBlock`. The head, two ``1 × 1`` convolutions (``C → hidden → 2``), decides at
    every position from what the block brought there; the decisions are averaged. Input
    ``(B, C, 1, L)`` features, output ``(B, 2)``; the non-local block records ``(B, L, L)``
    weights under the name ``"mix"``.

    ``positions=L`` adds the fixed sinusoidal position code of Vaswani et al. (Sec. 3.5,
    ``multi_head.sinusoidal_position_embedding``) ``p`` ``(1, C, 1, L)`` to the features before
    the block (``x + p``, as the Transformer adds it to its tokens), so that the block can tell
    columns apart by place as well as by content, with no new parameters; without it
    (``positions=0``) the non-local block is permutation-equivariant over the columns.
    """

    def __init__(
        self,
        mode: str = "non-local",
        channels: int = 64,
        kernel: int = KERNEL,
        hidden: int = 64,
        positions: int = 0,
    ) -> None:
        super().__init__()
        self.mode = check_choice("mode", mode, MODES)
        check_positive_int("hidden", hidden)
        self.channels = check_positive_int("channels", channels)
        self.positions = check_int("positions", positions, 0)
        if mode == "local":
            self.mix = LocalBlock(channels, kernel)
        elif mode == "dilated":
            self.mix = DilatedBlock(channels)
        else:
            self.mix = NonLocalBlock(channels)
        if positions:
            code = sinusoidal_position_embedding(positions, channels)  # (L, C)
            self.register_buffer("position", code.T[None, :, None, :].contiguous())
        self.head = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, 2, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, "(B, C, H, W)", C=self.channels)
        if self.positions:
            check_tensor("x", x, "(B, C, H, W)", W=self.positions)
            x = x + self.position  # absolute positions: one code per column, whatever is there
        return self.head(self.mix(x)).mean(dim=(2, 3))


class PoolMLP(nn.Module):
    """The global control without content-based weighting: pool the whole strip, then an MLP.

    A ``1 × 1`` convolution with ReLU (``C → hidden``) at every column, the maximum and the mean
    of its outputs over all positions (``2·hidden`` numbers: what is present anywhere, and how
    much of it), and an MLP ``2·hidden → hidden → 2``. Its reach is the whole strip, like the
    non-local block's, but it keeps no map: it knows *what* occurs, not *where*. Input
    ``(B, C, H, W)``, output ``(B, 2)``.
    """

    def __init__(self, channels: int = 64, hidden: int = 64) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_positive_int("hidden", hidden)
        self.embed = nn.Conv2d(channels, hidden, 1)
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, "(B, C, H, W)", C=self.channels)
        e = torch.relu(self.embed(x)).flatten(2)  # (B, hidden, HW)
        return self.head(torch.cat([e.amax(-1), e.mean(-1)], 1))  # max and mean over positions


def make_model(model: str, channels: int = 64, positions: int = 0) -> nn.Module:
    """A new network of the experiment by name: a :class:`PairNet` of mode ``model``
    (:data:`MODES`, with ``positions`` for the non-local block) or ``"pool-mlp"``, a
    :class:`PoolMLP`."""
    check_choice("model", model, MODELS)
    check_int("positions", positions, 0)
    if model == "pool-mlp":
        if positions:
            raise ValueError(f"positions are for PairNet modes, not 'pool-mlp', got {positions}")
        return PoolMLP(channels)
    return PairNet(model, channels=channels, positions=positions)


def run_seeds(
    mode: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 20,
    lr: float = 1e-2,
    batch_size: int = 128,
    subset: int | None = None,
    positions: int = 0,
) -> SeedRuns:
    """Train one network per seed on features ``(N, C, 1, L)``; evaluate on ``test``.

    ``mode`` names the network (:func:`make_model`: a :class:`PairNet` mode or ``"pool-mlp"``;
    ``positions`` for a position embedding). Each seed seeds the initialisation and the data
    order and, with ``subset``, draws the seed's own ``subset`` training examples from ``train``
    (a different draw for every seed); Adam, constant ``lr``.

    Returns:
        :class:`~visual_attention.train.SeedRuns`: the final test accuracies (one per seed), the
        networks (eval mode) and their histories.
    """
    check_choice("mode", mode, MODELS)
    n, c = check_data("train", train, "(N, C, H, W)")[:2]
    check_data("test", test, "(N, C, H, W)", C=c)
    check_seeds("seeds", seeds)
    check_int("positions", positions, 0)
    if subset is not None and not 1 <= check_int("subset", subset) <= n:
        raise ValueError(f"subset must be in [1, {n}] (the training examples), got {subset}")

    def draw(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        if subset is None:
            return train
        keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:subset]
        return train[0][keep], train[1][keep]

    return fit_seeds(
        lambda: make_model(mode, c, positions),
        draw,
        test,
        seeds,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
    )


#: How ``make weights`` trains the chapter's two experiments (``scripts/train_self_attention.py``):
#: each task's strips (``pair_task`` / ``order_task`` with these sizes and seeds), each seed's draw
#: of ``subset`` training strips, and :func:`train.fit`'s settings.
SELF_RECIPE = {
    "same digit": {"train": 2000, "train_seed": 0, "test": 1200, "test_seed": 1, "subset": 1600},
    "order": {"train": 2500, "train_seed": 2, "test": 1000, "test_seed": 3, "subset": 2000},
    "seeds": (0, 1, 2),
    "epochs": 20,
    "lr": 1e-2,
    "batch_size": 256,
}
#: The networks of the two experiments: name → (task, :func:`make_model` name, ``positions``).
SELF_MODELS = {
    "non-local": ("same digit", "non-local", 0),
    "pool-mlp": ("same digit", "pool-mlp", 0),
    "local": ("same digit", "local", 0),
    "non-local + positions": ("order", "non-local", 32),
    "dilated convolution": ("order", "dilated", 0),
    "global max/mean pool + MLP": ("order", "pool-mlp", 0),
    "non-local, no positions": ("order", "non-local", 0),
}
#: The weights ``make weights`` writes.
SELF_WEIGHTS = Path(__file__).parent / "weights" / "self_attention.pt"


def train_self_models(
    tasks: Mapping[
        str, tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    ],
    names: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
) -> dict[str, SeedRuns]:
    """:func:`run_seeds` for each :data:`SELF_MODELS` entry (``names``, default all) with
    :data:`SELF_RECIPE`; ``seeds`` and ``epochs`` replace the recipe's (a quick run).

    Args:
        tasks: ``{"same digit": (train, test), "order": (train, test)}``, each a pair of
            standardised strip features ``(N, C, 1, L)`` and labels ``(N,)`` (the tasks the names
            need).

    Returns:
        ``{name: SeedRuns}``.
    """
    check_instance("tasks", tasks, Mapping)
    if names is not None and (isinstance(names, str) or not isinstance(names, Sequence)):
        raise ValueError(f"names must be a list of SELF_MODELS names, got {names!r}")
    names = list(SELF_MODELS) if names is None else list(names)
    for name in names:
        check_choice("names", name, tuple(SELF_MODELS))
        if SELF_MODELS[name][0] not in tasks:
            raise ValueError(
                f"tasks must hold {SELF_MODELS[name][0]!r} for {name!r}, got {list(tasks)}"
            )
    r = SELF_RECIPE
    options = {"epochs": r["epochs"], "lr": r["lr"], "batch_size": r["batch_size"]}
    options["seeds"] = tuple(r["seeds"] if seeds is None else check_seeds("seeds", seeds))
    if epochs is not None:
        options["epochs"] = check_positive_int("epochs", epochs)
    runs = {}
    for name in names:
        task, model, positions = SELF_MODELS[name]
        train, test = tasks[task]
        subset = min(r[task]["subset"], check_data("train", train, "(N, C, H, W)")[0])
        runs[name] = run_seeds(model, train, test, subset=subset, positions=positions, **options)
    return runs


def self_fingerprint() -> str:
    """A hash of the code (docstrings aside) and the recipe that make :data:`SELF_WEIGHTS`."""
    parts = [PairNet, PoolMLP, LocalBlock, DilatedBlock, make_model, run_seeds, train_self_models]
    parts += [pair_task, order_task, strip_features, NonLocalBlock]
    return code_fingerprint(parts, SELF_RECIPE, SELF_MODELS)


def load_self_models(path: Path | str = SELF_WEIGHTS) -> dict[str, SeedRuns]:
    """The networks ``make weights`` trained (:func:`train_self_models`), as
    :class:`~visual_attention.train.SeedRuns` per :data:`SELF_MODELS` name: the stored test
    accuracies, the networks (eval mode) and their stored histories.

    Args:
        path: the weights file (default: the package's, :data:`SELF_WEIGHTS`).
    """

    def build(name: str) -> nn.Module:
        _, model, positions = SELF_MODELS[name]
        return make_model(model, positions=positions)

    runs, _ = load_runs(path, build, "self-attention networks")
    return runs


def accuracy_by_distance(
    net: nn.Module, features: torch.Tensor, labels: torch.Tensor, columns: torch.Tensor
) -> dict[int, float]:
    """Test accuracy of ``net`` for each distance between the digits: ``{d: accuracy}``, ``d`` in
    increasing order (``columns`` ``(N, 2)`` from :func:`pair_task`)."""
    check_module("net", net)
    n = check_tensor("features", features, "(N, *S)")[0]
    check_labels("labels", labels, n), _check_columns(columns, n)
    d = columns[:, 1] - columns[:, 0]
    return {
        int(v): evaluate(net, features[d == v], labels[d == v]) for v in torch.unique(d).tolist()
    }


def correct_by_example(
    nets: Sequence[nn.Module], features: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Per test example, the share of ``nets`` (one per seed) that answer it right: ``(N,)`` in
    ``[0, 1]``, for the paired bootstrap of ``views.evidence.report_evidence``."""
    if isinstance(nets, nn.Module) or not isinstance(nets, Sequence) or not nets:
        raise ValueError(f"nets must be a non-empty list of trained networks, got {nets!r:.60}")
    for i, net in enumerate(nets):
        check_module(f"nets[{i}]", net)
    n = check_tensor("features", features, "(N, *S)")[0]
    check_labels("labels", labels, n)
    right = []
    for net in nets:
        dtype = next((p.dtype for p in net.parameters()), features.dtype)  # the net's precision
        with torch.no_grad():
            logits = torch.cat([net.eval()(part.to(dtype)) for part in features.split(256)])
        right.append((logits.argmax(-1) == labels).to(torch.float32))
    return torch.stack(right).mean(0)


def _check_columns(columns: torch.Tensor, n: int | None = None) -> None:
    """``columns``: an integer ``(N, 2)`` tensor of left pixel columns (``N = n`` if given)."""
    if not isinstance(columns, torch.Tensor) or columns.ndim != 2:
        got = shape_str(columns) if isinstance(columns, torch.Tensor) else type(columns).__name__
        raise ValueError(f"columns must be an integer tensor (N, 2), got {got}")
    if (
        columns.is_floating_point()
        or columns.dtype == torch.bool
        or columns.shape[1] != 2
        or n not in (None, len(columns))
    ):
        raise ValueError(
            f"columns must be an integer (N={n or 'N'}, 2) tensor, got "
            f"{columns.dtype} {shape_str(columns)}"
        )


def digit_columns(columns: torch.Tensor, length: int = STRIP[1] // 4) -> torch.Tensor:
    """Which encoder columns lie inside each digit: ``(N, 2)`` left pixel columns → a boolean
    ``(N, 2, length)`` mask (column ``j`` covers pixels ``4j … 4j + 3``; it is inside a digit when
    all four are)."""
    _check_columns(columns), check_positive_int("length", length)
    start = torch.arange(length) * 4  # (L,)
    left = columns[..., None]  # (N, 2, 1)
    return (start >= left) & (start + 4 <= left + DIGIT_SIZE)


def attention_to_other(
    net: PairNet, features: torch.Tensor, columns: torch.Tensor
) -> torch.Tensor:
    """The share of the non-local block's attention that the first digit's columns put on the
    second digit's columns, per strip: ``(N,)`` (averaged over the first digit's columns).

    A uniform attention would give ``(columns of the second digit) / L``.
    """
    check_instance("net", net, PairNet)
    if net.mode != "non-local":
        raise ValueError(f"net must be a 'non-local' PairNet, got mode={net.mode!r}")
    n = check_tensor("features", features, "(N, C, H, W)", C=net.channels)[0]
    _check_columns(columns, n)
    a = collect_attention(net, features, names=["mix"])["mix"]  # (N, L, L)
    inside = digit_columns(columns, a.shape[-1]).to(a.dtype)  # (N, 2, L)
    to_second = (a * inside[:, 1, None, :]).sum(-1)  # (N, L): mass on the second digit
    return (to_second * inside[:, 0]).sum(-1) / inside[:, 0].sum(-1)


def render_pair(
    first: int, second: int, distance: int, split: str = "test", seed: int = 0
) -> torch.Tensor:
    """Test digits ``first`` and ``second`` (indices into ``digits_at(16, split)``) centred on a
    strip, ``distance`` pixels apart, with the same noise at every distance: ``(1, 16, 128)``."""
    height, width = STRIP
    check_int("first", first, 0)
    check_int("second", second, 0)
    check_int("seed", seed, 0)
    if not height <= check_int("distance", distance) <= width - height:
        raise ValueError(f"distance must lie in [{height}, {width - height}], got {distance}")
    digits, _ = digits_at(DIGIT_SIZE, split)
    for name, index in (("first", first), ("second", second)):
        if index >= len(digits):
            raise ValueError(f"{name} must be a digit index in [0, {len(digits)}), got {index}")
    image = torch.zeros(1, height, width)
    left = (width - height - distance) // 2
    for index, c in ((first, left), (second, left + distance)):
        image[:, :, c : c + height] = digits[index]
    noise = torch.randn(STRIP, generator=torch.Generator().manual_seed(seed))
    return (image + 0.1 * noise).clamp(0, 1)


class StripModel(EncodedHeads):
    """The chapter's trained networks from the strip's pixels up, as the reader's browser runs
    them.

    The frozen encoder over the strip (:func:`strip_features`), the standardisation with the
    training statistics (``labs.common.standardize``) and each :class:`PairNet`. ``forward``:
    strips ``(B, 1, 16, W)`` → per network, in order, its logits ``(B, 2)`` (different, same);
    then the non-local block's weights ``(B, 1, 1, L, L)`` (one layer, one head; ``L = W/4``).

    Args:
        nets: ``{name: trained PairNet}``; exactly one has mode ``"non-local"``.
        train_features: the raw :func:`strip_features` of the training strips ``(N, C, 1, L)``.
        encoder: the frozen digit encoder (default:
            :func:`~visual_attention.labs.digits.load_digit_cnn`).
    """

    def __init__(
        self,
        nets: Mapping[str, PairNet],
        train_features: torch.Tensor,
        encoder: nn.Module | None = None,
    ) -> None:
        super().__init__(nets, PairNet, train_features, encoder, "nets")
        attending = [name for name, n in nets.items() if n.mode == "non-local"]
        if len(attending) != 1:
            raise ValueError(f"nets must hold exactly one 'non-local' net, got {len(attending)}")
        self.attending = self.names.index(attending[0])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        check_tensor("x", x, "(B, C, H, W)", C=1, H=STRIP[0])
        f = self.encoder.feature_map(x).mean(dim=2, keepdim=True)  # (B, C, 1, L): strip_features
        f = self.standardized(f)
        out, weights = [], None
        for k, net in enumerate(self.heads):
            with record_attention(net) as maps:
                out.append(net(f))
            if k == self.attending:
                weights = maps["mix"][:, None, None]  # (B, 1 layer, 1 head, L, L)
        return (*out, weights)


def model_explorer(
    model: StripModel, examples: torch.Tensor, labels: torch.Tensor, display: int = 640
) -> ModelExplorer:
    """The reader draws two digits anywhere on the strip (or picks a test strip, moves, resizes,
    adds noise) and picks a query column; the page runs ``model``: where that column looks in the
    non-local block, over the strip, and every network's probability of "same digit".

    Args:
        model: the :class:`StripModel` to export.
        examples: test strips ``(N, 1, 16, W)`` to start from; labels: ``(N,)``, 1 = same.
        display: the drawing area's width in CSS pixels.
    """
    check_instance("model", model, StripModel)
    n, _, _, w = check_tensor("examples", examples, "(N, C, H, W)", C=1, H=STRIP[0])
    check_labels("labels", labels, n)
    outputs = [f"logits {name}" for name in model.names] + ["weights"]
    exported = export_model(model, examples[:1], outputs)
    views = [probs(name, f"logits {name}", ("different", "same")) for name in model.names]
    views.append(
        tokens(
            f"{model.names[model.attending]}: where the query column looks",
            "weights",
            (1, w // 4),
            prefix=0,
        )
    )
    names = [
        f"#{i} ({'same digit' if int(y) else 'different digits'})" for i, y in enumerate(labels)
    ]
    return make_model_explorer(
        exported,
        examples,
        names,
        views,
        display=display,
        brush=1.2,
        caption="Draw two digits anywhere on the strip, near or far apart (or pick a test strip), "
        "then click a column of the small copy below to make it the query. The trained networks "
        "run in this page.",
    )


def explorer(
    image: torch.Tensor,
    features: torch.Tensor,
    embeddings: Mapping[str, torch.Tensor],
    feature_names: Sequence[str],
    temperature: float = 0.1,
    display_size: tuple[int, int] | None = None,
    initial: Mapping[str, Any] | None = None,
):
    """Pick a query patch of a photo, an embedding and a temperature; see where it looks and its
    output.

    For each embedding ``E`` (a ``(C', C)`` matrix playing ``θ = φ``), every patch ``x_i`` is
    mapped to ``E x_i``, scaled to unit length, and attends to all patches with weights
    ``softmax_j(⟨E x_i, E x_j⟩ / T)``; the output ``y_i = Σ_j a_ij x_j`` (``g`` = identity) is
    drawn as bars named by ``feature_names``. The weights and the output are computed in the
    reader's browser (:class:`visual_attention.views.widgets.AttentionExplorer`): any patch, any
    temperature.

    Args:
        image: ``(3, H, W)`` photo in ``[0, 1]``.
        features: ``(C, h, w)`` features, one vector per patch.
        embeddings: ordered ``{name: (C', C) matrix}`` (the explorer's "embedding" control).
        feature_names: ``C`` labels for the output bars.
        temperature: first softmax temperature ``T``.
        display_size: drawn ``(height, width)`` in CSS pixels (default twice the photo's size).
        initial: optional first ``{"compare": name, "row": r, "column": c}``.

    Returns:
        an :class:`~visual_attention.views.widgets.AttentionExplorer` with one "layer" per
        embedding (``θx`` as queries and keys, zero-padded to the widest embedding, ``x`` as
        values).
    """

    check_tensor("image", image, "(C, H, W)")
    c, h, w = check_tensor("features", features, "(C, h, w)")
    if isinstance(embeddings, torch.Tensor) or not isinstance(embeddings, Mapping):
        raise ValueError(
            f"embeddings must be a dict {{name: (C', C) matrix}}, got {embeddings!r:.60}"
        )
    for name, e in embeddings.items():
        check_tensor(f"embeddings[{name!r}]", e, "(D, C)", C=c)
    if isinstance(feature_names, (str, bytes)) or not isinstance(feature_names, Sequence):
        raise ValueError(
            f"feature_names must be a sequence of {c} names, got {feature_names!r:.60}"
        )
    for i, name in enumerate(feature_names):
        check_str(f"feature_names[{i}]", name)
    check_positive_number("temperature", temperature)
    check_initial("initial", initial)
    if display_size is not None:
        check_size2("display_size", display_size)
    unknown = set(initial or {}) - {"compare", "row", "column"}
    if unknown:
        raise ValueError(
            f"initial names unknown controls {sorted(unknown)}; use compare, row, column"
        )
    if len(feature_names) != c:
        raise ValueError(f"feature_names has {len(feature_names)} entries for {c} channels")
    if not embeddings:
        raise ValueError("embeddings must name at least one (C', C) matrix")
    widest = max(e.shape[0] for e in embeddings.values() if e.ndim == 2)
    zs = []
    for name, e in embeddings.items():
        if e.ndim != 2 or e.shape[1] != c:
            raise ValueError(f"embedding {name!r} must have shape (C', {c}), got {shape_str(e)}")
        z = torch.einsum("dc,chw->dhw", e.to(features.dtype), features)
        z = z / z.norm(dim=0, keepdim=True).clamp_min(1e-6)
        z = torch.cat([z, z.new_zeros(widest - z.shape[0], h, w)])  # zeros change no dot product
        zs.append(z.reshape(widest, h * w).T)  # (hw, C'max)
    names = list(embeddings)
    first = dict(initial or {})
    values = features.reshape(c, h * w).T
    return attention_explorer(
        torch.stack(zs)[:, None],
        values=values[None, None].expand(len(zs), 1, -1, -1),
        grid=(h, w),
        image=image,
        temperature=temperature,
        temperature_range=(0.01, 2.0),
        query=(first.get("row", 0), first.get("column", 0)),
        layer=names.index(first.get("compare", names[0])),
        controls=("temperature", "layer"),
        layer_label="compare",
        layer_names=names,
        value_names=list(feature_names),
        context_title="output y = Σⱼ aᵢⱼ xⱼ",
        display_size=display_size,
        label="self-attention",
    )
