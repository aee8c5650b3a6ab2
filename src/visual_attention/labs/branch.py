"""The lab of the branch chapter: digits at two scales, a Selective Kernel layer on feature maps.

* :func:`scale_task` — a digit drawn at 16 or 32 pixels on a noisy ``48 × 48`` canvas, with
  fragments of other digits drawn at the *other* scale: the receptive field that reads the digit
  changes from image to image, and the wrong one sees clutter of its own size.
* :func:`encoded_task` — the same canvases through the frozen
  :class:`~visual_attention.labs.digits.DigitCNN`: feature maps ``(N, 64, 6, 6)``.
* :class:`BranchNet` — what is trained on them: two grouped branches (a 3 × 3 and a dilated 3 × 3,
  a 5 × 5 field) mixed one of four ways — a real :class:`~visual_attention.branch.SelectiveKernel`,
  concatenation (the Inception way), a learned static per-channel mix, a fixed ½ mix — then the
  same 1 × 1 conv-BN-ReLU, global average pooling and a linear classifier.
* :func:`run_seeds` — one net trained per seed, each seed on its own data draw;
  :func:`weights_by_size` — the dilated branch's weight as a digit grows; :class:`BranchModel`
  and :func:`model_explorer` — the trained nets in the reader's browser: draw a digit, grow or
  shrink it, and watch the branch weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
from ..blocks import conv_bn_act
from ..branch import SelectiveKernel, select_branches
from ..core import masked_softmax, record_attention
from ..data import cluttered_digits, load_digits
from ..train import SeedRuns, fit_seeds
from ..views.browser_model import export_model
from ..views.model_explorer import ModelExplorer, bars, labelled, probs
from ..views.model_explorer import model_explorer as make_model_explorer
from ._checks import check_canvas, check_data, check_encoder, check_models, check_normalize
from .common import (
    EncodedHeads,
    code_fingerprint,
    collect_attention,
    encode,
    load_runs,
    standardize,
)
from .digits import load_digit_cnn

__all__ = [
    "CANVAS",
    "SCALES",
    "POOL",
    "KERNEL_SIZES",
    "MIXERS",
    "BRANCHES",
    "scale_task",
    "encoded_task",
    "feature_maps",
    "BranchNet",
    "run_seeds",
    "BRANCH_RECIPE",
    "BRANCH_WEIGHTS",
    "branch_draws",
    "train_branch_nets",
    "branch_fingerprint",
    "load_branch_nets",
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
#: The ways :class:`BranchNet` mixes its two branches: SK's selection, then the controls.
MIXERS = ("sk", "concat", "static", "half")
#: The encoder's ``12 × 12`` maps are averaged over ``POOL × POOL`` positions: ``6 × 6`` maps,
#: one position per ``8 × 8`` pixels of the canvas.
POOL = 2
#: The receptive fields of :class:`BranchNet`'s two branches on those maps: a 3 × 3 (24 pixels of
#: canvas, about a small digit) and a 3 × 3 with dilation 2 (a 5 × 5 field, 40 pixels: a large
#: digit).
KERNEL_SIZES = (3, 5)
#: The branches of :class:`BranchNet`, in order.
BRANCHES = ("3 × 3", "5 × 5 (dilated 3 × 3)")


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
    check_positive_int("n", n)
    check_int("seed", seed, 0)
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


def encoded_task(
    n: int, split: str = "train", seed: int = 0, encoder: nn.Module | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`scale_task` through the frozen digit encoder (:func:`~.common.encode`), its maps
    averaged over ``POOL × POOL`` positions (:func:`feature_maps`).

    Returns:
        feature maps ``(n, 64, 6, 6)`` (raw: standardise them with the training set's
        statistics, :func:`~visual_attention.labs.common.standardize`), labels ``(n,)`` and the
        digits' sides ``(n,)``.
    """
    check_encoder("encoder", encoder)
    images, labels, sizes = scale_task(n, split, seed)
    return feature_maps(images, encoder), labels, sizes


def feature_maps(images: torch.Tensor, encoder: nn.Module | None = None) -> torch.Tensor:
    """The frozen encoder's maps averaged over ``POOL × POOL`` positions: ``(N, 1, H, W)`` →
    ``(N, 64, H/8, W/8)``, one position per ``8 × 8`` pixels."""
    check_canvas("images", images, "(N, C, H, W)", side=4 * POOL)
    return nn.functional.avg_pool2d(encode(images, encoder), POOL)


class BranchNet(nn.Module):
    """Two grouped branches on feature maps, mixed one of four ways, then a small classifier.

    The branches are those of :class:`~visual_attention.branch.SelectiveKernel`: a 3 × 3 and a
    dilated 3 × 3 (a 5 × 5 field) grouped conv-BN-ReLU, ``C → C``. They are mixed by

    * ``"sk"``: a real :class:`~visual_attention.branch.SelectiveKernel` (its own branches, fuse
      and select; records the branch weights ``(B, M, C)`` under the name ``"mixer"``);
    * ``"concat"``: ``[U_1; U_2]`` ``(B, 2C, h, w)``, concatenated as in Inception, so that the
      next 1 × 1 convolution learns a fixed linear mix per output channel;
    * ``"static"``: ``V = Σ_m a_m ⊙ U_m`` with ``a = softmax_m(θ)``, ``θ`` ``(M, C)`` learned and
      the same for every image;
    * ``"half"``: ``V = (U_1 + U_2) / 2``.

    Then the same 1 × 1 conv-BN-ReLU (``C → C``, ``2C → C`` after the concatenation), global
    average pooling and ``nn.Linear(C, num_classes)``.

    Args:
        mode: one of :data:`MIXERS`.
        channels: ``C``, the channels of the input feature maps and of every branch.
        groups: groups of the branch convolutions (ResNeXt's cardinality).
        rd_channels: ``d``, the width of SK's compact feature ``z``.
        num_classes: classes of the classifier.

    Shapes: ``forward``: ``(B, C, h, w)`` → logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        mode: str = "sk",
        channels: int = 64,
        groups: int = 8,
        rd_channels: int = 16,
        num_classes: int = 10,
        kernel_sizes: tuple[int, int] = KERNEL_SIZES,
    ) -> None:
        super().__init__()
        self.mode = check_choice("mode", mode, MIXERS)
        kernel_sizes = check_int_sequence("kernel_sizes", kernel_sizes)
        if len(kernel_sizes) != 2 or any(k < 3 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel_sizes must be two odd sizes >= 3, got {kernel_sizes!r}")
        self.kernel_sizes = tuple(kernel_sizes)
        self.channels = c = check_positive_int("channels", channels)
        check_positive_int("groups", groups)
        check_positive_int("rd_channels", rd_channels)
        if c % groups:
            raise ValueError(f"groups must divide channels={c}, got {groups!r}")
        if mode == "sk":
            self.mixer = SelectiveKernel(
                c, c, kernel_sizes=kernel_sizes, groups=groups, rd_channels=rd_channels
            )
        else:
            self.branches = nn.ModuleList(
                conv_bn_act(c, c, 3, groups=groups, bias=False, dilation=(k - 1) // 2)
                for k in kernel_sizes
            )
        if mode == "static":
            self.mix_logits = nn.Parameter(torch.zeros(len(BRANCHES), c))  # θ: (M, C)
        self.post = conv_bn_act(2 * c if mode == "concat" else c, c, 1, bias=False)
        self.fc = nn.Linear(c, check_positive_int("num_classes", num_classes))

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, h, w)`` → the mixed branches ``(B, C, h, w)`` (``(B, 2C, h, w)`` for
        ``"concat"``)."""
        if self.mode == "sk":
            return self.mixer(x)  # split, fuse, select: the branch weights depend on x
        u = torch.stack([branch(x) for branch in self.branches], dim=1)  # (B, M, C, h, w)
        if self.mode == "concat":
            return u.flatten(1, 2)  # [U_1; U_2]: (B, 2C, h, w)
        if self.mode == "half":
            return u.mean(dim=1)
        a = masked_softmax(self.mix_logits, dim=0)  # the same (M, C) weights for every image
        return select_branches(u, a.expand(len(x), -1, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, C, h, w)`` → logits ``(B, num_classes)``."""
        check_tensor("x", x, "(B, C, h, w)", C=self.channels)
        return self.fc(self.post(self.mix(x)).mean(dim=(2, 3)))


def run_seeds(
    mode: str,
    data: Sequence[tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]],
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 12,
    lr: float = 3e-3,
    batch_size: int = 128,
    kernel_sizes: tuple[int, int] = KERNEL_SIZES,
) -> SeedRuns:
    """Train one :class:`BranchNet` per seed, seed ``seeds[i]`` on ``data[i]``.

    Args:
        mode: one of :data:`MIXERS`.
        data: one ``((train maps, labels), (test maps, labels))`` per seed, maps ``(N, C, h, w)``:
            every seed draws its own canvases, so the seeds vary the data as well as the
            initialisation and the order (Adam, constant ``lr``).

    Returns:
        :class:`~visual_attention.train.SeedRuns`: the final test accuracies (one per seed), the
        nets (eval mode) and their histories.
    """
    check_choice("mode", mode, MIXERS)
    check_seeds("seeds", seeds)
    if not isinstance(data, Sequence) or len(data) != len(seeds):
        raise ValueError(
            f"data must hold one (train, test) pair per seed ({len(seeds)}), got {data!r:.80}"
        )
    runs = SeedRuns([], [], [])
    for i, (seed, pair) in enumerate(zip(seeds, data)):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"data[{i}] must be a (train, test) pair, got {pair!r:.80}")
        _, c, _, _ = check_data(f"data[{i}][0]", pair[0], "(N, C, h, w)")
        check_data(f"data[{i}][1]", pair[1], "(N, C, h, w)", C=c)
        one = fit_seeds(
            lambda c=c: BranchNet(mode, channels=c, kernel_sizes=kernel_sizes),
            pair[0],
            pair[1],
            (seed,),
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
        )
        for mine, theirs in zip(runs, one):
            mine.extend(theirs)
    return runs


#: How ``make weights`` trains the chapter's experiment (``scripts/train_branch_nets.py``): seed
#: ``s`` draws ``encoded_task(train, "train", s)`` and ``encoded_task(test, "test", 100 + s)``,
#: standardised with its training statistics, and :func:`run_seeds` trains every mixer on it.
BRANCH_RECIPE = {"seeds": (0, 1, 2), "train": 1200, "test": 500, "epochs": 12, "lr": 3e-3}
#: The weights ``make weights`` writes.
BRANCH_WEIGHTS = Path(__file__).parent / "weights" / "branch_nets.pt"


def branch_draws(
    seeds: Sequence[int] = BRANCH_RECIPE["seeds"],
    train: int = BRANCH_RECIPE["train"],
    test: int = BRANCH_RECIPE["test"],
) -> list[
    tuple[
        tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        torch.Tensor,
        torch.Tensor,
    ]
]:
    """Each seed's data as the recipe draws it: ``((train maps, labels), (test maps, labels))``
    (standardised), the test digits' sides ``(N,)`` and the raw training maps."""
    check_seeds("seeds", seeds)
    check_positive_int("train", train)
    check_positive_int("test", test)
    draws = []
    for seed in seeds:
        f_train, y_train, _ = encoded_task(train, "train", seed=seed)
        f_test, y_test, size_test = encoded_task(test, "test", seed=100 + seed)
        u_train, u_test = standardize(f_train, f_test)
        draws.append((((u_train, y_train), (u_test, y_test)), size_test, f_train))
    return draws


def train_branch_nets(
    data: Sequence[tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]],
    modes: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
) -> dict[str, SeedRuns]:
    """:func:`run_seeds` for each of ``modes`` (default :data:`MIXERS`) with
    :data:`BRANCH_RECIPE`; ``seeds`` and ``epochs`` replace the recipe's (a quick run).

    Args:
        data: one ``((train maps, labels), (test maps, labels))`` per seed (:func:`branch_draws`).

    Returns:
        ``{mode: SeedRuns}``.
    """
    if modes is not None and (isinstance(modes, str) or not isinstance(modes, Sequence)):
        raise ValueError(f"modes must be a list of MIXERS names, got {modes!r}")
    modes = list(MIXERS) if modes is None else list(modes)
    for mode in modes:
        check_choice("modes", mode, MIXERS)
    seeds = tuple(BRANCH_RECIPE["seeds"] if seeds is None else check_seeds("seeds", seeds))
    epochs = BRANCH_RECIPE["epochs"] if epochs is None else check_positive_int("epochs", epochs)
    lr = BRANCH_RECIPE["lr"]
    return {mode: run_seeds(mode, data, seeds, epochs=epochs, lr=lr) for mode in modes}


def branch_fingerprint() -> str:
    """A hash of the code (docstrings aside) and the recipe that make :data:`BRANCH_WEIGHTS`."""
    parts = [BranchNet, run_seeds, train_branch_nets, branch_draws, encoded_task, scale_task]
    parts += [feature_maps, SelectiveKernel, select_branches]
    return code_fingerprint(parts, BRANCH_RECIPE, MIXERS, KERNEL_SIZES)


def load_branch_nets(path: Path | str = BRANCH_WEIGHTS) -> dict[str, SeedRuns]:
    """The nets ``make weights`` trained (:func:`train_branch_nets`), as
    :class:`~visual_attention.train.SeedRuns` per :data:`MIXERS` name: the stored test
    accuracies, the nets (eval mode) and their stored histories.

    Args:
        path: the weights file (default: the package's, :data:`BRANCH_WEIGHTS`).
    """
    runs, _ = load_runs(path, BranchNet, "branch nets")
    return runs


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
    check_positive_int("canvas", canvas)
    check_number("noise", noise, 0.0)
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
    net: BranchNet,
    sizes: Sequence[int],
    count: int = 200,
    encoder: nn.Module | None = None,
    normalize: tuple[torch.Tensor, ...] | None = None,
) -> dict[int, tuple[torch.Tensor, float]]:
    """The same ``count`` test digits drawn at each size (:func:`render_digits`): the weight of
    the dilated branch (averaged over channels) and the accuracy of ``net``.

    Args:
        net: a trained ``"sk"`` :class:`BranchNet`.
        sizes: digit sides in pixels.
        count: test digits per size (the first ``count``).
        encoder: the frozen encoder (default: :func:`~.digits.load_digit_cnn`).
        normalize: ``(train feature maps,)``: standardise as the net's training maps were
            (:func:`~visual_attention.labs.common.standardize`); ``None`` leaves them raw.

    Returns:
        ``{size: (weights (count,), accuracy)}``.
    """
    check_instance("net", net, BranchNet)
    if net.mode != "sk":
        raise ValueError(f"net must be an 'sk' BranchNet, got mode={net.mode!r}")
    check_int_sequence("sizes", sizes)
    check_positive_int("count", count)
    check_encoder("encoder", encoder)
    check_normalize("normalize", normalize)
    encoder = load_digit_cnn() if encoder is None else encoder
    result = {}
    for size in sizes:
        images, labels = render_digits(range(count), size)
        f = feature_maps(images, encoder)
        if normalize is not None:
            f = standardize(*normalize, f)[-1]
        a = collect_attention(net, f, names=["mixer"])["mixer"]  # (count, M, C)
        with torch.no_grad():
            accuracy = float((net.eval()(f).argmax(-1) == labels).float().mean())
        result[size] = (a[:, -1].mean(dim=-1), accuracy)
    return result


class BranchModel(EncodedHeads):
    """The chapter's trained nets from the canvas up, as the reader's browser runs them.

    The frozen encoder's feature maps, standardised with the training statistics, then each
    :class:`BranchNet`. ``forward``: canvases ``(B, 1, H, W)`` → each net's logits ``(B, K)`` in
    order, then the ``"sk"`` net's branch weights averaged over channels ``(B, M)``.

    Args:
        nets: ``{name: trained BranchNet}``; exactly one has mode ``"sk"``.
        train_features: the raw feature maps of the training canvases ``(N, C, h, w)``.
        encoder: the frozen digit encoder (default:
            :func:`~visual_attention.labs.digits.load_digit_cnn`).
    """

    def __init__(
        self,
        nets: dict[str, BranchNet],
        train_features: torch.Tensor,
        encoder: nn.Module | None = None,
    ) -> None:
        check_models("nets", nets, BranchNet)
        selecting = [name for name, net in nets.items() if net.mode == "sk"]
        if len(selecting) != 1:
            raise ValueError(f"nets must hold exactly one 'sk' net, got {len(selecting)}")
        check_tensor("train_features", train_features, "(N, C, h, w)")
        super().__init__(nets, BranchNet, train_features, encoder, name="nets")
        self.selecting = self.names.index(selecting[0])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        check_canvas("x", x, "(B, C, H, W)", side=4 * POOL)
        maps = nn.functional.avg_pool2d(self.encoder.feature_map(x), POOL)  # as feature_maps
        u = self.standardized(maps)  # (B, C, h, w)
        out, weights = [], None
        for k, net in enumerate(self.heads):
            with record_attention(net) as maps:
                out.append(net(u))
            if k == self.selecting:
                weights = maps["mixer"].mean(dim=-1)  # (B, M): each branch's weight, over channels
        return (*out, weights)


def model_explorer(
    model: BranchModel, examples: torch.Tensor, labels: torch.Tensor, display: int = 240
) -> ModelExplorer:
    """The reader draws a digit at any size — or grows and shrinks it, or picks a test canvas —
    and the page runs ``model``: the branch weights of the ``"sk"`` net and every net's
    probabilities.

    Args:
        model: the :class:`BranchModel` to export.
        examples: canvases ``(N, 1, H, W)`` to start from.
        labels: their digits ``(N,)``.
        display: the drawing area's side in CSS pixels.
    """
    check_instance("model", model, BranchModel)
    n, _, h, w = check_canvas("examples", examples, "(N, C, H, W)", side=4 * POOL)
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
        "the weight of the dilated branch follows the digit's size. The trained nets run in this "
        "page.",
    )
