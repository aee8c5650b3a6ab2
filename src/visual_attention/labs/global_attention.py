"""The lab of the global attention chapter: a decoder that reads a canvas of digits left to right,
looking at the whole feature map at every step (Luong et al. 2015's global attention; Show,
Attend and Tell's soft attention, Xu et al. 2015).

* :func:`reading_task` — ``32 × 80`` canvases holding 2 to 4 sixteen-pixel digits at random
  positions (no overlap), and the digit string read left to right.
* :func:`sequences` — the decoder's input (``BOS`` then the digits: teacher forcing) and target
  (the digits then ``EOS``), padded to :data:`STEPS`.
* :func:`token_features` — the frozen :class:`~visual_attention.labs.digits.DigitCNN` over the
  canvases, averaged over ``2 × 2`` positions: a ``4 × 10`` feature map (one position per
  ``8 × 8`` pixels); :func:`standardize` them.
* :class:`Reader` — what is trained: a token embedding, one pre-norm
  :class:`~visual_attention.blocks.DecoderBlock` (causal self-attention, cross-attention to a
  memory, MLP) and a linear head. Only the memory differs between the three readers:
  ``"attention"`` — all 40 positions of the map (the decoder attends over them at every step);
  ``"pooled"`` — one mean-pooled image vector (Show and Tell, Vinyals et al. 2015);
  ``"flattened"`` — the whole map flattened through an MLP into one vector (same reach, no
  attention over the image). :meth:`Reader.read` decodes greedily.
* :func:`fit_reader`, :func:`exact_match`, :func:`digit_accuracy`, :func:`train_readers`,
  :func:`chance_exact` — training with teacher forcing and the metrics.
* :data:`VARIANTS`, :func:`local_p_weights`, :class:`LuongReader` — the reader with Luong's
  local-p attention (a predicted aligned position, a Gaussian window) or hard attention (one
  sampled position, REINFORCE); :func:`load_variants` the ones ``make weights`` trains.
* :class:`PageReader` and :func:`model_explorer` — the trained reader in the reader's browser,
  from the pixels up, with every step's attention map.
* :func:`finding_task`, :class:`Finder`, :func:`hungarian_match`, :func:`fit_finder`,
  :func:`detections`, :func:`train_finders`, :func:`box_iou` — finding every digit's class and
  box: DETR's object queries (Carion et al. 2020) cross-attending to the map, trained with
  Hungarian matching and a "no object" class, against a dense per-position head and an MLP
  from the flattened map.
* :class:`PageFinder` and :class:`PageDecoders` — the trained finder (and both decoders on one
  canvas) in the reader's browser, from the pixels up: every query's class, box and attention
  map (:func:`model_explorer` shows any of the three page models).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from .._checks import (
    check_choice,
    check_file,
    check_instance,
    check_int,
    check_labels,
    check_number,
    check_positive_int,
    check_positive_number,
    check_seeds,
    check_size2,
    check_str,
    check_tensor,
)
from ..blocks import DecoderBlock, merge_heads, split_heads
from ..core import record_attention
from ..spatial import reinforce_loss
from ..train import History, SeedRuns, seed_everything
from ..views.browser_model import export_model
from ..views.model_explorer import ModelExplorer, lens, maps
from ..views.model_explorer import boxes as detection_boxes
from ..views.model_explorer import model_explorer as make_model_explorer
from ._checks import check_encoder
from .common import code_fingerprint, load_runs, standardize, token_features
from .digits import DIGIT_SIZE, digits_at, like_module, load_digit_cnn

__all__ = [
    "CANVAS",
    "GRID",
    "BOS",
    "EOS",
    "VOCAB",
    "TOKENS",
    "STEPS",
    "KINDS",
    "reading_task",
    "finding_task",
    "sequences",
    "alignment",
    "token_features",
    "standardize",
    "hard_one_hot",
    "Reader",
    "fit_reader",
    "exact_match",
    "digit_accuracy",
    "chance_exact",
    "train_readers",
    "VARIANTS",
    "WINDOW",
    "VARIANT_RECIPE",
    "VARIANT_WEIGHTS",
    "local_p_weights",
    "LuongReader",
    "variants_fingerprint",
    "MODEL_RECIPE",
    "MODEL_WEIGHTS",
    "train_global_models",
    "models_fingerprint",
    "load_global_models",
    "load_variants",
    "PageReader",
    "model_explorer",
    "FINDERS",
    "NO_OBJECT",
    "QUERIES",
    "box_iou",
    "Finder",
    "hungarian_match",
    "fit_finder",
    "detections",
    "train_finders",
    "PageFinder",
    "PageDecoders",
]

#: Height and width of the canvases in pixels.
CANVAS = (32, 80)
#: Height and width of the feature map the decoder reads (one position per ``8 × 8`` pixels).
GRID = (4, 10)
#: The decoder's tokens: the digits 0-9, ``BOS`` (start reading) and ``EOS`` (nothing more).
BOS, EOS, VOCAB = 10, 11, 12
#: The tokens' names, in the order of the logits.
TOKENS = tuple(str(d) for d in range(10)) + ("BOS", "EOS")
#: Decoding steps: up to four digits and the ``EOS``.
STEPS = 5
#: The readers' memories.
KINDS = ("attention", "pooled", "flattened")
_LENGTHS = (2, 3, 4)


def reading_task(
    n: int, split: str = "train", seed: int = 0, noise: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` canvases of ``32 × 80`` pixels, each holding 2, 3 or 4 digits (equally often).

    The digits (16 pixels, drawings of ``split``) sit left to right with random gaps (the free
    width is cut at sorted uniform points) and each at a random height; Gaussian pixel noise
    ``noise``, then clipping to ``[0, 1]``.

    Returns:
        images ``(n, 1, 32, 80)``, the strings ``(n, 4)`` (the digits left to right, ``-1`` after
        the last), the lengths ``(n,)`` and the digits' left edges in pixels ``(n, 4)`` (``-1``
        after the last), the last three int64.
    """
    images, strings, lengths, lefts, _ = _draw(n, split, seed, noise)
    return images, strings, lengths, lefts


def finding_task(
    n: int, split: str = "train", seed: int = 0, noise: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The canvases of :func:`reading_task` (the same ones for the same arguments) with every
    digit's box: images ``(n, 1, 32, 80)``, the classes ``(n, 4)`` (``-1`` padded), the lengths
    ``(n,)`` and the boxes ``(n, 4, 4)`` as ``(cx, cy, w, h)``, fractions of the canvas's width
    and height (rows after the last digit are 0)."""
    images, strings, lengths, lefts, tops = _draw(n, split, seed, noise)
    (h, w), s = CANVAS, DIGIT_SIZE
    corner = torch.stack([lefts, tops], -1).float()  # (n, 4, 2) pixels
    size = torch.tensor([float(s), float(s)])
    boxes = torch.cat([(corner + s / 2), size.expand_as(corner)], -1) / torch.tensor([w, h] * 2)
    return images, strings, lengths, boxes * (strings >= 0)[..., None]


def _draw(
    n: int, split: str, seed: int, noise: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    check_positive_int("n", n), check_int("seed", seed, 0)
    check_choice("split", split, ("train", "test")), check_number("noise", noise, 0.0)
    g = torch.Generator().manual_seed(seed)
    drawings, labels = digits_at(DIGIT_SIZE, split)
    (h, w), s = CANVAS, DIGIT_SIZE
    lengths = torch.tensor(_LENGTHS)[torch.randint(len(_LENGTHS), (n,), generator=g)]
    images = torch.zeros(n, 1, h, w)
    strings = torch.full((n, max(_LENGTHS)), -1)
    lefts = torch.full((n, max(_LENGTHS)), -1)
    tops = torch.full((n, max(_LENGTHS)), -1)
    for i, length in enumerate(lengths.tolist()):
        gaps = torch.randint(0, w - s * length + 1, (length,), generator=g).sort().values
        top = torch.randint(0, h - s + 1, (length,), generator=g)
        picks = torch.randint(len(drawings), (length,), generator=g)
        for j in range(length):
            left, up = int(gaps[j]) + s * j, int(top[j])
            images[i, 0, up : up + s, left : left + s] = drawings[picks[j], 0]
            lefts[i, j], tops[i, j] = left, up
        strings[i, :length] = labels[picks]
    images = (images + noise * torch.randn(images.shape, generator=g)).clamp(0, 1)
    return images, strings, lengths, lefts, tops


def alignment(attention: torch.Tensor, lefts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """How much of step ``t``'s attention lies on the columns of digit ``t``, on average over the
    canvases that have a digit ``t``: attention ``(N, STEPS, H, W)`` over the ``GRID`` (``8``
    pixels a column), the digits' left edges in pixels ``(N, 4)`` and the lengths ``(N,)`` →
    the mean share at each digit step ``(4,)`` (0 where no canvas has that digit). A digit of
    16 pixels covers two or three of the 10 columns (a uniform map: 0.2-0.3)."""
    check_tensor("attention", attention, "(N, T, H, W)", T=STEPS)
    check_labels("lengths", lengths, len(attention))
    ok = (
        isinstance(lefts, torch.Tensor)
        and not lefts.is_floating_point()
        and not lefts.is_complex()
    )
    if not ok or lefts.dtype == torch.bool or lefts.shape != (len(attention), STEPS - 1):
        raise ValueError(
            f"lefts must be an integer tensor (N, {STEPS - 1}) of pixel columns, got {lefts!r:.60}"
        )
    column = attention.float().sum(2)[:, : STEPS - 1]  # (N, 4, W): attention per column
    cell = CANVAS[1] // column.shape[-1]  # pixels per column
    starts = torch.arange(column.shape[-1]) * cell  # (W,)
    inside = (starts + cell > lefts[..., None]) & (starts < lefts[..., None] + DIGIT_SIZE)
    share = (column * inside).sum(-1)  # (N, 4)
    digit = (torch.arange(STEPS - 1)[None] < lengths[:, None]).float()  # (N, 4)
    return (share * digit).sum(0) / digit.sum(0).clamp_min(1)


def sequences(strings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher forcing: strings ``(n, 4)`` (``-1`` padded) → the decoder's inputs ``(n, STEPS)``
    ``[BOS, d₁, …, d_L, EOS, …]`` and targets ``(n, STEPS)`` ``[d₁, …, d_L, EOS, -100, …]``
    (``-100``: no loss after the ``EOS``). Step ``t`` sees the true digits before ``t``."""
    n, width = _check_strings("strings", strings)
    if width >= STEPS:
        raise ValueError(f"strings must have fewer than STEPS = {STEPS} columns, got {width}")
    digits = torch.cat([strings, torch.full((n, STEPS - width), -1)], 1)  # (n, STEPS)
    lengths = (digits >= 0).sum(1)
    step = torch.arange(STEPS)
    targets = torch.where(digits >= 0, digits, -100)
    targets[step[None] == lengths[:, None]] = EOS
    inputs = torch.cat([torch.full((n, 1), BOS), targets[:, :-1]], 1)
    return inputs.clamp(min=0).where(inputs >= 0, EOS), targets


def _check_canvases(name: str, pair: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``pair`` = ``(features (N, C, H, W), strings (N, L))``; return it."""
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"{name} must be a pair (features, strings), got {pair!r:.60}")
    check_tensor(f"{name}[0]", pair[0], "(N, C, H, W)")
    _check_strings(f"{name}[1]", pair[1], len(pair[0]))
    return pair[0], pair[1]


def _check_strings(name: str, strings: object, n: int | None = None) -> tuple[int, int]:
    """``strings`` ``(n, L)`` int64 digits 0-9 padded with -1; return its shape."""
    check_instance(name, strings, torch.Tensor)
    bad = strings.dtype != torch.int64 or strings.ndim != 2 or 0 in strings.shape
    if bad or ((strings < -1) | (strings > 9)).any() or (strings[:, 0] < 0).any():
        raise ValueError(
            f"{name} must be a 2-d int64 tensor (n, L) of digits 0-9 padded with -1 (at least "
            f"one digit per row), got {strings.dtype} of shape {tuple(strings.shape)}"
        )
    if n is not None and len(strings) != n:
        raise ValueError(f"{name} must have {n} rows, got {len(strings)}")
    return tuple(strings.shape)


def hard_one_hot(logits: torch.Tensor) -> torch.Tensor:
    """The one-hot vector of the largest logit, ``(*B, V)`` → ``(*B, V)``, from operations the
    browser's runtime has: ``relu(1 − 10⁴ · (max − logit))`` is 1 at the maximum and 0 wherever a
    logit is more than ``10⁻⁴`` below it (greedy decoding's argmax)."""
    check_tensor("logits", logits, "(*B, V)")
    gap = logits.amax(dim=-1, keepdim=True) - logits
    return torch.relu(1.0 - 1e4 * gap)


class Reader(nn.Module):
    """A one-layer attention decoder that reads a feature map as a digit string.

    ``z_t = E y_{t-1} + p_t``; ``z = DecoderBlock(z, memory)`` (causal self-attention over the
    tokens read so far, cross-attention over the memory, MLP); ``logits_t = W LN(z_t)``. What the
    memory is, is the only difference between the three ``kind`` s:

    * ``"attention"`` — one token per position, ``m_ij = W_m x_ij + e_ij`` (a learned position
      embedding): at every step the decoder scores all ``H·W`` positions (global attention);
    * ``"pooled"`` — one token, ``W_m · mean_ij x_ij`` (Show and Tell's image vector);
    * ``"flattened"`` — one token, an MLP of the flattened map ``(C·H·W → hidden → dim)``: it
      sees every position, where each digit is included, but not through attention.

    With a one-token memory the cross-attention's weight is 1: it passes the vector on.

    Args:
        kind: one of :data:`KINDS`.
        channels: ``C`` of the feature map.
        grid: its ``(H, W)``.
        dim: size of the decoder's tokens.
        num_heads: heads of the decoder's two attentions.
        hidden: width of the ``"flattened"`` memory's MLP.

    Shapes: ``forward(features, tokens)``: features ``(B, C, H, W)``, one-hot tokens
    ``(B, T, VOCAB)``, ``T ≤ STEPS`` → logits ``(B, T, VOCAB)``. :meth:`read`: greedy decoding.
    """

    def __init__(
        self,
        kind: str = "attention",
        channels: int = 64,
        grid: tuple[int, int] = GRID,
        dim: int = 64,
        num_heads: int = 4,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        self.kind = check_choice("kind", kind, KINDS)
        for name, value in (("channels", channels), ("dim", dim), ("hidden", hidden)):
            check_positive_int(name, value)
        self.channels, self.grid = channels, check_size2("grid", grid)
        positions = self.grid[0] * self.grid[1]
        if kind == "flattened":
            self.memory = nn.Sequential(
                nn.Flatten(),
                nn.Linear(channels * positions, hidden),
                nn.GELU(),
                nn.Linear(hidden, dim),
            )
        else:
            self.memory = nn.Linear(channels, dim)
        if kind == "attention":
            self.memory_pos = nn.Parameter(torch.randn(1, positions, dim) * 0.02)
        self.embed = nn.Linear(VOCAB, dim, bias=False)  # E: an embedding as a matmul of a one-hot
        self.pos = nn.Parameter(torch.randn(1, STEPS, dim) * 0.02)
        self.block = DecoderBlock(dim, num_heads, mlp_ratio=2.0)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, VOCAB)
        self.register_buffer("causal", torch.ones(STEPS, STEPS, dtype=torch.bool).tril())
        self.register_buffer("bos", nn.functional.one_hot(torch.tensor([[BOS]]), VOCAB).float())

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """The memory: ``(B, C, H, W)`` → ``(B, H·W, dim)`` (attention) or ``(B, 1, dim)``."""
        check_tensor("features", features, "(B, C, H, W)", C=self.channels)
        features = like_module(features, self)  # float32 weights read half-precision features
        if tuple(features.shape[-2:]) != self.grid:
            raise ValueError(f"features must have H, W = {self.grid}, got {tuple(features.shape)}")
        if self.kind in ("attention", *VARIANTS):  # every position of the map
            return self.memory(features.flatten(2).transpose(1, 2)) + self.memory_pos
        if self.kind == "pooled":
            return self.memory(features.mean(dim=(2, 3)))[:, None]
        return self.memory(features)[:, None]

    def forward(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        memory = self.encode(features)
        _, t, _ = check_tensor("tokens", tokens, "(B, T, V)", B=len(features), V=VOCAB)
        tokens = like_module(tokens, self)
        if t > STEPS:
            raise ValueError(f"tokens must have T ≤ STEPS = {STEPS}, got {t}")
        return self._decode(memory, tokens)

    def _decode(self, memory: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        z = self.embed(tokens) + self.pos[:, :t]
        z = self.block(z, memory, mask=self.causal[:t, :t])
        return self.head(self.norm(z))

    def read(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy decoding for :data:`STEPS` steps: each step's most likely token is the next
        step's input. Returns the tokens read, one-hot ``(B, STEPS, VOCAB)``, and the logits of
        the last pass ``(B, STEPS, VOCAB)`` (row ``t``: step ``t``'s logits; causal attention
        makes them those of step ``t``'s own pass, and its cross-attention weights, recorded by
        ``record_attention``, every step's map)."""
        memory = self.encode(features)
        # [start-greedy-reading]
        seq = self.bos.expand(len(features), 1, VOCAB)  # y_0 = BOS, one-hot  (B, 1, VOCAB)
        for _ in range(STEPS):
            logits = self._decode(memory, seq)  # every step so far attends over the memory
            seq = torch.cat([seq, hard_one_hot(logits[:, -1:])], dim=1)  # y_t = argmax p(y_t | …)
        # [end-greedy-reading]
        return seq[:, 1:], logits


def _one_hot(inputs: torch.Tensor) -> torch.Tensor:
    return nn.functional.one_hot(inputs, VOCAB).float()


def fit_reader(
    kind: str,
    train: tuple[torch.Tensor, torch.Tensor],
    seed: int = 0,
    epochs: int = 15,
    lr: float = 6e-3,
    batch_size: int = 128,
    **reader_kwargs,
) -> tuple[Reader, float]:
    """Train a :class:`Reader` with teacher forcing: cross-entropy of every step's logits against
    the target (``train = (features (N, C, H, W), strings (N, 4))``), AdamW with a one-cycle
    learning rate. Returns the reader (in eval mode) and the seconds it took."""
    features, strings = _check_canvases("train", train)
    _check_strings("train[1]", strings, len(features))
    check_int("seed", seed, 0), check_positive_int("epochs", epochs)
    check_positive_number("lr", lr), check_positive_int("batch_size", batch_size)
    start = time.perf_counter()
    generator = seed_everything(seed)
    make = LuongReader if kind in VARIANTS else Reader  # local-p and hard: the last section
    model = make(kind, features.shape[1], tuple(features.shape[-2:]), **reader_kwargs)
    inputs, targets = sequences(strings)
    tokens = _one_hot(inputs)
    n = len(features)
    steps = epochs * -(-n // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.2)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=generator).split(batch_size):
            logits = model(features[idx], tokens[idx])
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets[idx].flatten())
            if kind == "hard":  # the sampled positions learn by REINFORCE
                loss = loss + model.policy_loss(logits, targets[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    return model.eval(), time.perf_counter() - start


def _targets(strings: torch.Tensor) -> torch.Tensor:
    return sequences(strings)[1]


@torch.no_grad()
def exact_match(model: Reader, features: torch.Tensor, strings: torch.Tensor) -> torch.Tensor:
    """Per canvas, 1.0 when the greedy string (up to and with its ``EOS``) is the true string,
    else 0.0: ``(N,)``."""
    check_instance("model", model, Reader)
    check_tensor("features", features, "(N, C, H, W)")
    _check_strings("strings", strings, len(features))
    targets = _targets(strings)
    read = model.read(features)[0].argmax(-1)  # (N, STEPS)
    scored = targets != -100
    return ((read == targets) | ~scored).all(1).float()


@torch.no_grad()
def digit_accuracy(model: Reader, features: torch.Tensor, strings: torch.Tensor) -> float:
    """The share of the true digits read right at their position of the greedy string."""
    check_instance("model", model, Reader)
    check_tensor("features", features, "(N, C, H, W)")
    _check_strings("strings", strings, len(features))
    read = model.read(features)[0].argmax(-1)[:, : strings.shape[1]]
    digits = strings >= 0
    return float((read == strings)[digits].float().mean())


def chance_exact(lengths: torch.Tensor) -> float:
    """Exact-string accuracy of the best blind guess: ``max_L P(L) · 10^{-L}`` (guess the most
    rewarding length, any digits; the ten classes are about equally frequent)."""
    check_labels("lengths", lengths)
    return max(float((lengths == n).float().mean()) * 10.0**-n for n in _LENGTHS)


def train_readers(
    readers: Sequence[str],
    pool: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seeds: Sequence[int] = (0, 1, 2),
    n_train: int = 2000,
    **fit_kwargs,
) -> dict[str, dict[str, list]]:
    """For each kind of reader (:data:`KINDS`) and seed, train a reader on ``n_train``
    canvases drawn (by the seed) from ``pool`` and score it on ``test``: ``{kind: {"exact":
    [...], "digits": [...], "examples": [(N,) per seed], "models": [...], "seconds": [...]}}``.
    """
    check_seeds("seeds", seeds), check_positive_int("n_train", n_train)
    features, strings = _check_canvases("pool", pool)
    _check_canvases("test", test)
    if n_train > len(features):
        raise ValueError(f"n_train must be at most the pool's {len(features)}, got {n_train}")
    if isinstance(readers, (str, bytes)) or not isinstance(readers, Sequence) or not readers:
        raise ValueError(f"readers must be a non-empty sequence of {KINDS}, got {readers!r:.60}")
    for kind in readers:
        check_choice("readers", kind, KINDS + VARIANTS)
    out = {}
    for kind in readers:
        rec = {"exact": [], "digits": [], "examples": [], "models": [], "seconds": []}
        for seed in seeds:
            draw = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed))
            idx = draw[:n_train]
            model, seconds = fit_reader(kind, (features[idx], strings[idx]), seed, **fit_kwargs)
            scores = exact_match(model, *test)
            rec["exact"].append(float(scores.mean()))
            rec["digits"].append(digit_accuracy(model, *test))
            rec["examples"].append(scores)
            rec["models"].append(model)
            rec["seconds"].append(seconds)
        out[kind] = rec
    return out


class _FromPixels(nn.Module):
    """What the page models share: the frozen encoder's ``4 × 10`` feature map of a canvas
    ``(B, 1, 32, 80)``, standardised as in training (:meth:`features`)."""

    def __init__(self, train_features: torch.Tensor, channels: int, encoder) -> None:
        super().__init__()
        check_tensor("train_features", train_features, "(N, C, H, W)", C=channels)
        check_encoder("encoder", encoder)
        self.encoder = (load_digit_cnn() if encoder is None else encoder).eval()
        mean = train_features.mean(dim=(0, 2, 3), keepdim=True)
        std = train_features.std(dim=(0, 2, 3), keepdim=True)
        self.register_buffer("mean", mean[0])
        self.register_buffer("std", std[0].clamp_min(1e-6))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Canvases ``(B, 1, 32, 80)`` → standardised feature maps ``(B, C, 4, 10)``."""
        check_tensor("x", x, "(B, C, H, W)", C=1)
        f = nn.functional.avg_pool2d(self.encoder.feature_map(like_module(x, self.encoder)), 2)
        return (f - self.mean) / self.std


class PageReader(_FromPixels):
    """The trained reader from the pixels up, as the reader's browser runs it.

    The frozen encoder's ``4 × 10`` feature map of a canvas ``(B, 1, 32, 80)``, the training
    standardisation, and :meth:`Reader.read` unrolled for :data:`STEPS` steps (each step's
    argmax, a :func:`hard_one_hot`, feeds the next). Returns the logits of every step
    ``(B, STEPS, VOCAB)`` and every step's attention over the canvas, averaged over the heads,
    ``(B, STEPS, H, W)``.
    """

    def __init__(self, reader: Reader, train_features: torch.Tensor, encoder=None) -> None:
        check_instance("reader", reader, Reader)
        if reader.kind != "attention":
            raise ValueError(f"reader must be an attention reader, got kind {reader.kind!r}")
        super().__init__(train_features, reader.channels, encoder)
        self.reader = reader.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decode(self.features(x))

    def decode(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised feature maps ``(B, C, H, W)`` → the logits and attention of the steps."""
        with record_attention(self.reader) as maps:
            _, logits = self.reader.read(f)
        h, w = f.shape[-2:]
        attention = maps["block.cross_attn"].mean(1).unflatten(-1, (h, w))  # (B, STEPS, H, W)
        return logits, attention


def model_explorer(
    model: PageReader | PageFinder | PageDecoders, images: torch.Tensor, caption: str = ""
) -> ModelExplorer:
    """The trained decoders in the page: draw digits on a ``32 × 80`` canvas (or pick one of
    ``images`` ``(N, 1, 32, 80)``). A :class:`PageReader` shows the string it reads and each
    step's attention map; a :class:`PageFinder` every query's box over the canvas, its class (or
    "no object") and its attention map; :class:`PageDecoders` both."""
    what = "PageReader, PageFinder or PageDecoders"
    check_instance("model", model, (PageReader, PageFinder, PageDecoders), what=what)
    check_str("caption", caption)
    check_tensor("images", images, "(N, 1, H, W)", H=CANVAS[0], W=CANVAS[1])
    steps = [f"step {t + 1}" for t in range(STEPS)]
    reading = [
        lens("the string read, step by step", "logits", steps, classes=TOKENS),
        maps("where each step looks", "attention", steps),
    ]
    finding = [
        detection_boxes(
            "what each query finds",
            "boxes",
            "classes",
            [f"query {q + 1}" for q in range(QUERIES)],
            classes=[str(d) for d in range(10)] + ["no object"],
            none=NO_OBJECT,
            attention="queries",
        )
    ]
    if isinstance(model, PageReader):
        outputs, views, display = ("logits", "attention"), reading, 240
    elif isinstance(model, PageFinder):
        outputs, views, display = ("classes", "boxes", "queries"), finding, 400
    else:
        outputs, views = ("logits", "attention", "classes", "boxes", "queries"), reading + finding
        display = 400
    exported = export_model(model, images[:1], outputs)
    names = [f"example {i}" for i in range(len(images))]
    return make_model_explorer(
        exported, images[:, 0], names, views, display=display, caption=caption
    )


#: The finders: DETR's object queries and the two controls.
FINDERS = ("queries", "dense", "flattened")
#: The finders' class for "no object" (after the ten digits).
NO_OBJECT = 10
#: Object queries of the ``"queries"`` and ``"flattened"`` finders (at most four digits a canvas).
QUERIES = 6


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of boxes ``(cx, cy, w, h)``: ``a (*S, 4)`` and ``b (*S, 4)``,
    broadcast → ``(*S)`` (0 for boxes that do not meet, or of no area)."""
    check_tensor("a", a, "(*S, 4)")
    check_tensor("b", b, "(*S, 4)")
    for name, t in (("a", a), ("b", b)):
        if t.dim() < 1 or t.shape[-1] != 4:
            raise ValueError(f"{name} must be boxes (*S, 4), got shape {tuple(t.shape)}")
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(
            f"a and b must broadcast, got shapes {tuple(a.shape)} and {tuple(b.shape)}"
        ) from None
    a0, a1 = a[..., :2] - a[..., 2:] / 2, a[..., :2] + a[..., 2:] / 2
    b0, b1 = b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2
    inter = (torch.minimum(a1, b1) - torch.maximum(a0, b0)).clamp(min=0).prod(-1)
    union = (a1 - a0).clamp(min=0).prod(-1) + (b1 - b0).clamp(min=0).prod(-1) - inter
    return inter / union.clamp_min(1e-12)


class Finder(nn.Module):
    """A set of detections from the feature map: per prediction the logits of the ten digits and
    "no object" and a box ``(cx, cy, w, h)`` in fractions of the canvas.

    * ``"queries"`` — DETR (Carion et al. 2020) in one layer: :data:`QUERIES` learned object
      queries pass one :class:`~visual_attention.blocks.DecoderBlock` (self-attention among the
      queries, no mask; cross-attention over every position of the map, ``m_ij = W_m x_ij +
      e_ij``; MLP), then a linear class head and an MLP box head; trained with Hungarian matching.
    * ``"dense"`` — a per-position head, no attention: two ``3 × 3`` convolutions and a ``1 × 1``
      give every one of the ``H·W`` positions a class and a box offset from its cell's centre;
      trained by assigning each digit to the cell of its centre (no matching, no NMS).
    * ``"flattened"`` — the queries' outputs without attention: an MLP from the flattened map to
      :data:`QUERIES` predictions, trained with Hungarian matching.

    Shapes: ``forward(features)``: ``(B, C, H, W)`` → logits ``(B, P, 11)``, boxes ``(B, P, 4)``
    with ``P`` = :data:`QUERIES` (``H·W`` for ``"dense"``).
    """

    def __init__(
        self,
        kind: str = "queries",
        channels: int = 64,
        grid: tuple[int, int] = GRID,
        dim: int = 64,
        num_heads: int = 4,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        self.kind = check_choice("kind", kind, FINDERS)
        for name, value in (("channels", channels), ("dim", dim), ("hidden", hidden)):
            check_positive_int(name, value)
        self.channels, self.grid = channels, check_size2("grid", grid)
        positions = self.grid[0] * self.grid[1]
        out = NO_OBJECT + 1 + 4
        h, w = self.grid
        cy, cx = torch.meshgrid(
            (torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij"
        )  # the cells' centres, fractions of the canvas
        self.register_buffer("centres", torch.stack([cx, cy], -1).reshape(positions, 2))
        self.register_buffer("cell", torch.tensor([1.0 / w, 1.0 / h]))
        if kind == "queries":
            self.memory = nn.Linear(channels, dim)
            self.memory_pos = nn.Parameter(torch.randn(1, positions, dim) * 0.02)
            self.queries = nn.Parameter(torch.randn(1, QUERIES, dim) * 0.5)
            self.block = DecoderBlock(dim, num_heads, mlp_ratio=2.0)
            self.norm = nn.LayerNorm(dim)
            self.classes = nn.Linear(dim, NO_OBJECT + 1)
            self.box = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 4))
            self.register_buffer("everyone", torch.ones(QUERIES, QUERIES, dtype=torch.bool))
        if kind == "dense":
            width = 3 * dim // 4
            self.net = nn.Sequential(
                nn.Conv2d(channels, width, 3, padding=1),
                nn.GELU(),
                nn.Conv2d(width, width, 3, padding=1),
                nn.GELU(),
                nn.Conv2d(width, out, 1),
            )
        if kind == "flattened":
            self.net = nn.Sequential(
                nn.Flatten(),
                nn.Linear(channels * positions, hidden),
                nn.GELU(),
                nn.Linear(hidden, QUERIES * out),
            )

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_tensor("features", features, "(B, C, H, W)", C=self.channels)
        features = like_module(features, self)
        if tuple(features.shape[-2:]) != self.grid:
            raise ValueError(f"features must have H, W = {self.grid}, got {tuple(features.shape)}")
        if self.kind == "queries":
            # [start-object-queries]
            memory = self.memory(features.flatten(2).transpose(1, 2)) + self.memory_pos
            z = self.queries.expand(len(features), -1, -1)  # the same Q queries for every image
            z = self.norm(self.block(z, memory, mask=self.everyone))  # each query: all positions
            return self.classes(z), torch.sigmoid(self.box(z))  # class (or none), (cx, cy, w, h)
            # [end-object-queries]
        if self.kind == "dense":
            o = self.net(features).flatten(2).transpose(1, 2)  # (B, H·W, 15)
            centre = self.centres + torch.tanh(o[..., -4:-2]) * 2 * self.cell  # within 2 cells
            return o[..., : NO_OBJECT + 1], torch.cat([centre, torch.sigmoid(o[..., -2:])], -1)
        o = self.net(features).unflatten(1, (QUERIES, -1))
        return o[..., : NO_OBJECT + 1], torch.sigmoid(o[..., -4:])


def _check_objects(name: str, triple: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``triple`` = ``(features (N, C, H, W), classes (N, 4), boxes (N, 4, 4))``; return it."""
    if not isinstance(triple, (tuple, list)) or len(triple) != 3:
        raise ValueError(f"{name} must be a triple (features, classes, boxes), got {triple!r:.60}")
    n = check_tensor(f"{name}[0]", triple[0], "(N, C, H, W)")[0]
    width = _check_strings(f"{name}[1]", triple[1], n)[1]
    check_tensor(f"{name}[2]", triple[2], "(N, L, 4)", N=n, L=width)
    return triple[0], triple[1], triple[2]


def hungarian_match(
    logits: torch.Tensor,
    boxes: torch.Tensor,
    classes: torch.Tensor,
    targets: torch.Tensor,
    box_weight: float = 5.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DETR's matching: per image the one-to-one assignment of predictions to its digits at the
    least total cost ``−p(class) + box_weight · |b − b̂|₁`` (``scipy.optimize.
    linear_sum_assignment``). logits ``(B, P, 11)``, boxes ``(B, P, 4)``, classes ``(B, L)``
    (``-1`` padded), target boxes ``(B, L, 4)``; ``P ≥ L``. Returns the image, prediction and
    digit index of every matched pair, three ``(K,)`` int64 tensors."""
    b, p, _ = check_tensor("logits", logits, "(B, P, K)", K=NO_OBJECT + 1)
    check_tensor("boxes", boxes, "(B, P, 4)", B=b, P=p)
    width = _check_strings("classes", classes, b)[1]
    check_tensor("targets", targets, "(B, L, 4)", B=b, L=width)
    check_positive_number("box_weight", box_weight)
    with torch.no_grad():
        prob = logits.float().softmax(-1)
        # [start-matching-cost]
        p_class = prob.gather(2, classes.clamp(min=0)[:, None].expand(-1, p, -1))  # (B, P, L)
        l1 = (boxes.float()[:, :, None] - targets.float()[:, None]).abs().sum(-1)  # (B, P, L)
        cost = (box_weight * l1 - p_class).numpy()
        # [end-matching-cost]
    image, pred, digit = [], [], []
    for i, n in enumerate((classes >= 0).sum(1).tolist()):
        if n > p:
            raise ValueError(f"logits must have at least {n} predictions per image, got {p}")
        rows, cols = linear_sum_assignment(cost[i, :, :n])
        image += [i] * len(rows)
        pred += rows.tolist()
        digit += cols.tolist()
    return torch.tensor(image), torch.tensor(pred), torch.tensor(digit)


def _cell_assignment(model: Finder, classes: torch.Tensor, targets: torch.Tensor):
    """The dense head's targets: each digit belongs to the cell of its box's centre."""
    h, w = model.grid
    col = (targets[..., 0] * w).floor().long().clamp(0, w - 1)
    row = (targets[..., 1] * h).floor().long().clamp(0, h - 1)
    image, digit = (classes >= 0).nonzero(as_tuple=True)
    return image, (row * w + col)[image, digit], digit


def fit_finder(
    kind: str,
    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    seed: int = 0,
    epochs: int = 10,
    lr: float = 6e-3,
    batch_size: int = 64,
    box_weight: float = 5.0,
    no_object_weight: float = 0.2,
    **finder_kwargs,
) -> tuple[Finder, float]:
    """Train a :class:`Finder` on ``train = (features (N, C, H, W), classes (N, 4), boxes
    (N, 4, 4))``: match (Hungarian, or the dense head's cells), then the cross-entropy of every
    prediction (unmatched ones: "no object", weighted ``no_object_weight``) plus ``box_weight``
    times the L1 distance of the matched boxes; AdamW with a one-cycle learning rate. Returns the
    finder (in eval mode) and the seconds it took."""
    features, classes, targets = _check_objects("train", train)
    check_int("seed", seed, 0), check_positive_int("epochs", epochs)
    check_positive_number("lr", lr), check_positive_int("batch_size", batch_size)
    check_positive_number("box_weight", box_weight)
    check_number("no_object_weight", no_object_weight, 0.0)
    start = time.perf_counter()
    generator = seed_everything(seed)
    model = Finder(kind, features.shape[1], tuple(features.shape[-2:]), **finder_kwargs)
    weight = torch.ones(NO_OBJECT + 1)
    weight[NO_OBJECT] = no_object_weight
    n = len(features)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * -(-n // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.2)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=generator).split(batch_size):
            logits, boxes = model(features[idx])
            c, t = classes[idx], targets[idx]
            if kind == "dense":
                image, pred, digit = _cell_assignment(model, c, t)
            else:
                image, pred, digit = hungarian_match(logits, boxes, c, t, box_weight)
            wanted = torch.full(logits.shape[:2], NO_OBJECT)
            wanted[image, pred] = c[image, digit]
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), wanted.flatten(), weight)
            l1 = (boxes[image, pred] - t[image, digit]).abs().sum(-1).mean()
            opt.zero_grad()
            (loss + box_weight * l1).backward()
            opt.step()
            schedule.step()
    return model.eval(), time.perf_counter() - start


@torch.no_grad()
def detections(
    model: Finder, features: torch.Tensor, classes: torch.Tensor, boxes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Score a finder per canvas. Its detections are the predictions whose most likely class is
    a digit; they are matched one to one to the true digits at the largest total IoU. Returns
    ``(found (N,), iou (N,))``: ``found`` is 1.0 when there are as many detections as digits and
    every match has the right class and IoU ≥ 0.5, else 0.0; ``iou`` the mean IoU of the matched
    boxes over the canvas's digits (a digit left unmatched counts 0)."""
    check_instance("model", model, Finder)
    features, classes, boxes = _check_objects(
        "(features, classes, boxes)", (features, classes, boxes)
    )
    logits, predicted = model(features)
    label = logits.argmax(-1)  # (N, P)
    found, iou = torch.zeros(len(features)), torch.zeros(len(features))
    for i, n in enumerate((classes >= 0).sum(1).tolist()):
        keep = (label[i] != NO_OBJECT).nonzero()[:, 0]
        if len(keep) == 0:
            continue
        overlap = box_iou(predicted[i, keep][:, None], boxes[i, :n][None])  # (detections, n)
        rows, cols = linear_sum_assignment(-overlap.float().numpy())
        pairs = overlap[rows, cols]
        iou[i] = pairs.sum() / n
        right = (pairs >= 0.5) & (label[i, keep[rows]] == classes[i, cols])
        found[i] = float(len(keep) == n and bool(right.all()))
    return found, iou


class PageFinder(_FromPixels):
    """The trained object-query finder from the pixels up, as the reader's browser runs it.

    The frozen encoder's ``4 × 10`` feature map of a canvas ``(B, 1, 32, 80)``, the training
    standardisation and :class:`Finder` ``"queries"``. Returns, per query, the probabilities of
    the ten digits and "no object" ``(B, QUERIES, 11)`` (a softmax of its logits), its box
    ``(B, QUERIES, 4)`` as ``(cx, cy, w, h)`` in fractions of the canvas, and its
    cross-attention over the canvas, averaged over the heads, ``(B, QUERIES, H, W)``.
    """

    def __init__(self, finder: Finder, train_features: torch.Tensor, encoder=None) -> None:
        check_instance("finder", finder, Finder)
        if finder.kind != "queries":
            raise ValueError(f"finder must be an object-query finder, got kind {finder.kind!r}")
        super().__init__(train_features, finder.channels, encoder)
        self.finder = finder.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.find(self.features(x))

    def find(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Standardised feature maps ``(B, C, H, W)`` → the queries' probabilities, boxes, maps."""
        with record_attention(self.finder) as maps:
            logits, boxes = self.finder(f)
        h, w = f.shape[-2:]
        attention = maps["block.cross_attn"].mean(1).unflatten(-1, (h, w))  # (B, Q, H, W)
        return logits.softmax(-1), boxes, attention


class PageDecoders(nn.Module):
    """The chapter's two trained decoders on one canvas, as the reader's browser runs them: the
    encoder runs once, its standardised map feeds the :class:`PageReader`'s reader and the
    :class:`PageFinder`'s object queries (``train_features`` standardise both; ``encoder`` as
    there). Returns ``(logits, attention)`` of the reader then ``(classes, boxes, queries)`` of
    the finder, the shapes of the two classes' outputs."""

    def __init__(
        self, reader: Reader, finder: Finder, train_features: torch.Tensor, encoder=None
    ) -> None:
        super().__init__()
        self.reader = PageReader(reader, train_features, encoder)
        self.finder = PageFinder(finder, train_features, self.reader.encoder)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f = self.reader.features(x)  # one encoder pass for both decoders
        return (*self.reader.decode(f), *self.finder.find(f))


def train_finders(
    finders: Sequence[str],
    pool: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    seeds: Sequence[int] = (0, 1, 2),
    n_train: int = 2000,
    **fit_kwargs,
) -> dict[str, dict[str, list]]:
    """For each kind of finder (:data:`FINDERS`) and seed, train it on ``n_train`` canvases drawn
    (by the seed) from ``pool`` and score it on ``test`` (both ``(features, classes, boxes)``):
    ``{kind: {"found": [...], "iou": [...], "examples": [(N,) found per seed], "models": [...],
    "seconds": [...]}}``."""
    check_seeds("seeds", seeds), check_positive_int("n_train", n_train)
    features, classes, boxes = _check_objects("pool", pool)
    _check_objects("test", test)
    if n_train > len(features):
        raise ValueError(f"n_train must be at most the pool's {len(features)}, got {n_train}")
    if isinstance(finders, (str, bytes)) or not isinstance(finders, Sequence) or not finders:
        raise ValueError(f"finders must be a non-empty sequence of {FINDERS}, got {finders!r:.60}")
    for kind in finders:
        check_choice("finders", kind, FINDERS)
    out = {}
    for kind in finders:
        rec = {"found": [], "iou": [], "examples": [], "models": [], "seconds": []}
        for seed in seeds:
            draw = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed))
            idx = draw[:n_train]
            train = (features[idx], classes[idx], boxes[idx])
            model, seconds = fit_finder(kind, train, seed, **fit_kwargs)
            found, iou = detections(model, *test)
            rec["found"].append(float(found.mean()))
            rec["iou"].append(float(iou.mean()))
            rec["examples"].append(found)
            rec["models"].append(model)
            rec["seconds"].append(seconds)
        out[kind] = rec
    return out


# ---------------------------------------------------------------------------------------------
# Local versus global, soft versus hard (Luong et al. 2015, Sec. 3.2; Xu et al. 2015, Sec. 4.1)
# ---------------------------------------------------------------------------------------------

#: The readers whose cross-attention is not soft global attention: Luong's local-p (a predicted
#: aligned position and a Gaussian window around it) and hard attention (one sampled position).
VARIANTS = ("local_p", "hard")
#: Half-width ``D`` of local-p's window, in feature-map cells (``σ = D / 2``).
WINDOW = 2.0
#: The recipe of the variants ``make weights`` trains: the chapter's reading task and seeds
#: (2,000 of 2,500 training canvases per seed, 500 test canvases), local-p for the soft
#: reader's 15 epochs, hard attention for 30 (REINFORCE learns more slowly), with Xu et al.'s
#: expectation in half of the training passes and an entropy bonus.
VARIANT_RECIPE = {
    "pool": 2500,
    "test": 500,
    "seeds": (0, 1, 2),
    "n_train": 2000,
    "epochs": {"local_p": 15, "hard": 30},
    "reader": {"local_p": {"window": WINDOW}, "hard": {"expected": 0.5, "entropy": 0.2}},
}
#: Where ``make weights`` (``scripts/train_global_variants.py``) writes the variants.
VARIANT_WEIGHTS = Path(__file__).parent / "weights" / "global_variants.pt"


def local_p_weights(
    scores: torch.Tensor, position: torch.Tensor, grid: tuple[int, int], window: float = WINDOW
) -> torch.Tensor:
    """Luong et al. (2015)'s local-p weights over a ``grid`` of positions (Eq. 10, in 2-D).

    ``a_t(s) = align(h_t, h̄_s) · exp(−|s − p_t|² / 2σ²)``, ``σ = D / 2``: the softmax of the
    scores over the positions ``s`` of the window ``|s − p_t| ≤ D`` (each coordinate), times a
    Gaussian centred on the aligned position ``p_t``. Position ``(i, j)`` of the grid sits at
    ``(i + ½, j + ½)``. As in the paper the weights are not normalised again: they sum to at most
    1, less the further ``p_t`` lies from where the scores point.

    Args:
        scores: ``(*B, T, H·W)`` alignment scores ``score(h_t, h̄_s)``, real.
        position: ``(*B, T, 2)`` aligned positions ``p_t`` as ``(row, column)`` in cells, within
            ``[0, H] × [0, W]``, broadcastable against the scores' ``*B``.
        grid: ``(H, W)``.
        window: ``D > 0`` (at least ``½``: every ``p_t`` then has a position in its window).

    Returns:
        the weights ``(*B, T, H·W)``, non-negative, each row's sum in ``(0, 1]``.
    """
    h, w = check_size2("grid", grid)
    check_tensor("scores", scores, "(*B, T, M)", M=h * w)
    check_tensor("position", position, "(*B, T, P)", T=scores.shape[-2], P=2)
    check_positive_number("window", window)
    if window < 0.5:
        raise ValueError(f"window must be at least 0.5 cells, got {window}")
    inside_grid = (position >= 0) & (position <= torch.tensor(grid, dtype=position.dtype))
    if not bool(inside_grid.all()):  # then every window holds a position
        raise ValueError(f"position must lie within [0, {h}] × [0, {w}] (row, column) cells")
    rows, cols = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    cells = torch.stack([rows, cols], -1).flatten(0, 1).to(position)  # s: (H·W, 2)
    sigma = window / 2
    # [start-local-p]
    offset = cells - position[..., None, :]  # s − p_t for every position s     (*B, T, H·W, 2)
    inside = (offset.abs() <= window).all(-1)  # the window [p_t − D, p_t + D]
    align = scores.masked_fill(~inside, float("-inf")).softmax(-1)  # Eq. 7, in the window
    gaussian = torch.exp(-(offset**2).sum(-1) / (2 * sigma**2))  # exp(−(s − p_t)² / 2σ²)
    return align * gaussian  # a_t(s), Eq. 10
    # [end-local-p]


class LuongReader(Reader):
    """The :class:`Reader` ``"attention"`` with another cross-attention: each step's weights over
    the ``H·W`` positions come from Luong's local-p or are one sampled position (hard).

    * ``"local_p"`` — the step predicts an aligned position, ``p_t = S · sigmoid(v_pᵀ tanh(W_p
      h_t))`` (Luong Eq. 9, ``S = (H, W)``: a row and a column; ``h_t`` is the step's query,
      shared by the heads) and every head weighs the positions by :func:`local_p_weights`.
    * ``"hard"`` — Show, Attend and Tell's hard attention (Xu et al. 2015, Sec. 4.1): each head
      draws one position ``s_t ~ softmax(scores)`` while training and takes the most likely one
      in eval mode; the context is that position's value. The draw has no gradient: the scores
      learn by REINFORCE (:meth:`policy_loss`); :attr:`log_prob` ``(B, h, T)`` keeps
      ``log π(s_t)`` of the last forward pass. As Xu et al. do, a share ``expected`` of the
      training passes takes the expectation instead of a draw (soft attention's context).

    Args: ``kind`` (one of :data:`VARIANTS`), ``window`` (local-p's ``D``, in cells), ``expected``
    (hard: the share of training passes that take the expectation), ``entropy`` (hard: the
    weight ``λ_e`` of the policy's entropy, a bonus that keeps it exploring) and those of
    :class:`Reader`. Shapes: those of :class:`Reader`; :attr:`position` ``(B, T, 2)`` keeps the
    last aligned positions (local-p).
    """

    def __init__(
        self,
        kind: str = "local_p",
        channels: int = 64,
        grid: tuple[int, int] = GRID,
        dim: int = 64,
        num_heads: int = 4,
        hidden: int = 128,
        window: float = WINDOW,
        expected: float = 0.5,
        entropy: float = 0.2,
    ) -> None:
        check_choice("kind", kind, VARIANTS)
        super().__init__("attention", channels, grid, dim, num_heads, hidden)
        self.kind = kind
        self.window = check_positive_number("window", window)
        if window < 0.5:
            raise ValueError(f"window must be at least 0.5 cells, got {window}")
        self.expected = check_number("expected", expected, 0.0, 1.0)
        self.entropy = check_number("entropy", entropy, 0.0)
        if kind == "local_p":
            self.align = nn.Sequential(nn.Linear(dim, dim, bias=False), nn.Tanh())  # tanh(W_p h)
            self.v_p = nn.Linear(dim, 2, bias=False)  # v_p, one row per coordinate
        self.register_buffer("size", torch.tensor(self.grid, dtype=torch.float))  # S
        self.position: torch.Tensor | None = None
        self.log_prob: torch.Tensor | None = None

    def aligned_position(self, query: torch.Tensor) -> torch.Tensor:
        """Luong's Eq. 9: queries ``(B, T, dim)`` → ``p_t`` ``(B, T, 2)`` (row, column)."""
        return self.size * torch.sigmoid(self.v_p(self.align(query)))

    def _decode(self, memory: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        t, block = tokens.shape[1], self.block
        z = self.embed(tokens) + self.pos[:, :t]
        z = z + block.self_attn(block.norm1(z), mask=self.causal[:t, :t])
        z = z + self._cross(block.norm2(z), memory)  # the one change: which positions it reads
        z = z + block.mlp(block.norm3(z))
        return self.head(self.norm(z))

    def _cross(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        attn = self.block.cross_attn
        q = split_heads(attn.q(query), attn.num_heads)  # (B, h, T, d)
        k, v = attn.kv(memory).unflatten(-1, (2, attn.num_heads, -1)).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) * attn.scale  # score(h_t, h̄_s)  (B, h, T, H·W)
        if self.kind == "local_p":
            self.position = self.aligned_position(query)  # p_t, shared by the heads  (B, T, 2)
            weights = local_p_weights(scores, self.position[:, None], self.grid, self.window)
        else:
            weights = self._hard(scores)
        attn.remember(weights)  # (B, h, T, H·W)
        return attn.proj(merge_heads(weights @ v))

    def _hard(self, scores: torch.Tensor) -> torch.Tensor:
        """Hard attention's weights ``(B, h, T, H·W)``: one position per head (or, in a share
        ``expected`` of the training passes, the expectation)."""
        log_pi = scores.log_softmax(-1)
        self.log_prob = self.spread = None
        if self.training and float(torch.rand(())) < self.expected:
            return log_pi.exp()  # Xu et al.: the expectation α instead of a draw
        # [start-hard-attention]
        if self.training:  # s_t ~ π = softmax(scores); a draw has no gradient
            s = torch.multinomial(log_pi.detach().exp().flatten(0, -2), 1)
            s = s.view(*scores.shape[:-1], 1)
        else:  # at test, the most likely position
            s = log_pi.argmax(-1, keepdim=True)
        self.log_prob = log_pi.gather(-1, s)[..., 0]  # log π(s_t), for REINFORCE  (B, h, T)
        self.spread = -(log_pi.exp() * log_pi).sum(-1)  # the policy's entropy     (B, h, T)
        return torch.zeros_like(scores).scatter(-1, s, 1.0)  # one position per head
        # [end-hard-attention]

    def policy_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """REINFORCE for the last forward pass's draws (hard; 0 for local-p): the reward of step
        ``t`` is ``log p(y_t | s_t)`` (one layer: step ``t``'s draw changes only step ``t``'s
        output), the baseline the other canvases' mean reward at that step
        (:func:`~visual_attention.spatial.reinforce_loss`), summed over the steps, minus
        ``entropy`` times the policy's entropy (Xu et al.'s ``λ_e``).

        Args:
            logits: ``(B, T, VOCAB)`` of that pass; targets: ``(B, T)`` (``-100``: no target).
        """
        b, t, _ = check_tensor("logits", logits, "(B, T, V)", V=VOCAB)
        check_instance("targets", targets, torch.Tensor)
        if targets.dtype != torch.int64 or tuple(targets.shape) != (b, t):
            raise ValueError(
                f"targets must be int64 ({b}, {t}), got {targets.dtype} {tuple(targets.shape)}"
            )
        if self.kind != "hard" or (self.training and self.log_prob is None):
            return logits.new_zeros(())  # local-p, or a pass that took the expectation
        if self.log_prob is None or self.log_prob.shape[0] != b or self.log_prob.shape[2] != t:
            raise ValueError("policy_loss needs the draws of a forward pass over these logits")
        reward = -nn.functional.cross_entropy(
            logits.detach().transpose(1, 2), targets, reduction="none"
        )  # log p(y_t | s_t)  (B, T)
        log_prob = self.log_prob.sum(1)  # the heads' draws together  (B, T)
        loss = -self.entropy * (self.spread.sum(1) * (targets != -100)).sum() / b
        for step in range(t):
            scored = targets[:, step] != -100
            if scored.sum() >= 2:
                loss = loss + reinforce_loss(log_prob[scored, step], reward[scored, step])
        return loss


def variants_fingerprint() -> str:
    """A hash of the code (docstrings aside) and the recipe that make :data:`VARIANT_WEIGHTS`."""
    parts = [_draw, sequences, Reader, LuongReader, local_p_weights, fit_reader, train_readers]
    return code_fingerprint(parts, VARIANTS, VARIANT_RECIPE)


def load_variants(path: Path | str = VARIANT_WEIGHTS) -> dict[str, list[LuongReader]]:
    """The readers ``make weights`` trained (:func:`train_readers` of :data:`VARIANTS` with
    :data:`VARIANT_RECIPE`): ``{kind: [reader per seed]}``, in eval mode and frozen.

    Args:
        path: the weights file (default: the package's, :data:`VARIANT_WEIGHTS`).
    """
    path = check_file("path", path, "weights file of the reader variants (make weights)")
    try:
        saved = torch.load(path, weights_only=True)
        out = {}
        for kind, states in saved["readers"].items():
            models = []
            for state in states:
                model = LuongReader(kind, **saved["recipe"]["reader"][kind])
                model.load_state_dict(state)
                models.append(model.eval().requires_grad_(False))
            out[kind] = models
    except Exception as error:  # not a torch file, or weights of other models
        raise ValueError(
            f"path must be a weights file of the reader variants (make weights writes one), got "
            f"{str(path)!r}: {type(error).__name__}: {str(error)[:200]}"
        ) from error
    return out


# ---------------------------------------------------------------------------------------------
# The chapter's readers and finders, trained once by make weights
# ---------------------------------------------------------------------------------------------

#: How ``make weights`` trains the chapter's attention readers and finders and the pooled and
#: dense controls (``scripts/train_global_models.py``; the flattened controls, hundreds of
#: thousands of parameters each but quick to train, are trained by the chapter itself):
#: ``reading_task(pool, "train", 0)`` and ``finding_task`` of the same canvases,
#: ``(test, "test", 1)``; per seed ``n_train`` canvases of the pool; :func:`train_readers` and
#: :func:`train_finders` with these epochs.
MODEL_RECIPE = {
    "pool": 2500,
    "test": 500,
    "seeds": (0, 1, 2),
    "n_train": 2000,
    "epochs": {"reader": 15, "finder": 8},
    "readers": ("attention", "pooled"),
    "finders": ("queries", "dense"),
}
#: Where ``make weights`` writes them.
MODEL_WEIGHTS = Path(__file__).parent / "weights" / "global_models.pt"


def train_global_models(
    reading: tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    finding: tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]],
    readers: Sequence[str] = MODEL_RECIPE["readers"],
    finders: Sequence[str] = MODEL_RECIPE["finders"],
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
) -> dict[str, SeedRuns]:
    """:func:`train_readers` and :func:`train_finders` with :data:`MODEL_RECIPE`, as
    :class:`~visual_attention.train.SeedRuns` named ``"reader <kind>"`` (accuracy: the exact
    string) and ``"finder <kind>"`` (accuracy: canvases found); ``seeds`` and ``epochs`` replace
    the recipe's (a quick run).

    Args:
        reading: ``(pool, test)``, each standardised features ``(N, C, 4, 10)`` and strings.
        finding: ``(pool, test)``, each ``(features, classes, boxes)``.
    """
    r = MODEL_RECIPE
    seeds = tuple(r["seeds"] if seeds is None else check_seeds("seeds", seeds))
    if epochs is not None:
        check_positive_int("epochs", epochs)
    for name, pair in (("reading", reading), ("finding", finding)):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"{name} must be a pair (pool, test), got {type(pair).__name__}")
    n = min(r["n_train"], len(_check_canvases("reading[0]", reading[0])[0]))
    runs = {}
    read = (
        train_readers(readers, *reading, seeds, n, epochs=epochs or r["epochs"]["reader"])
        if readers
        else {}
    )
    for kind, rec in read.items():
        runs[f"reader {kind}"] = SeedRuns(rec["exact"], rec["models"], [History() for _ in seeds])
    found = (
        train_finders(finders, *finding, seeds, n, epochs=epochs or r["epochs"]["finder"])
        if finders
        else {}
    )
    for kind, rec in found.items():
        runs[f"finder {kind}"] = SeedRuns(rec["found"], rec["models"], [History() for _ in seeds])
    return runs


def models_fingerprint() -> str:
    """A hash of the code (docstrings aside) and the recipe that make :data:`MODEL_WEIGHTS`."""
    parts = [_draw, sequences, Reader, fit_reader, train_readers, Finder, fit_finder]
    parts += [train_finders, hungarian_match, _cell_assignment, train_global_models]
    return code_fingerprint(parts, KINDS, FINDERS, MODEL_RECIPE)


def load_global_models(path: Path | str = MODEL_WEIGHTS) -> dict[str, SeedRuns]:
    """The readers and finders ``make weights`` trained (:func:`train_global_models`), as
    :class:`~visual_attention.train.SeedRuns` named ``"reader <kind>"`` and ``"finder <kind>"``:
    the stored scores and the models (eval mode).

    Args:
        path: the weights file (default: the package's, :data:`MODEL_WEIGHTS`).
    """

    def build(name: str) -> nn.Module:
        role, kind = name.split(" ", 1)
        return (Reader if role == "reader" else Finder)(kind, 64, GRID)

    runs, _ = load_runs(path, build, "readers and finders")
    return runs
