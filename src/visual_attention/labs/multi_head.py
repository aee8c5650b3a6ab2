"""The lab of the multi-head chapter: two digits to read at once, one head against several.

* :data:`TASK` and :func:`pair_task` — two ``16 × 16`` digits on a noisy ``32 × 64`` canvas, one
  in each half; the label is the pair, ``10 · left + right`` (100 classes).
* :func:`pair_features` — the frozen :class:`~visual_attention.labs.digits.DigitCNN` run once
  over the canvases, then ``2 × 2`` average pooling: ``(N, 1, 32, 64)`` → ``(N, 64, 4, 8)``, 32
  tokens of 64 features, one per ``8 × 8`` block of pixels; :func:`standardize` them.
* :class:`MultiHeadPooling` — one learned query reads the tokens with ``h`` heads: the class
  token's row of :class:`~visual_attention.blocks.MultiHeadAttention`. Its parameters do not
  depend on ``h``: one head of width 64 and four heads of width 16 cost the same.
* :class:`PairReader` — position embeddings, the pooling, a layer norm and a factorised linear
  read-out (a score for the left digit plus a score for the right one); :func:`run_seeds`.
* :func:`mass_on_digits` — where each head's mass goes: the share on the left and on the right
  digit; :class:`PairModel` and :func:`model_explorer` — the trained readers in the reader's
  browser: draw two digits and see every head's map over the canvas.
* :func:`digit_vit` — a small ViT for the ``8 × 8`` digits; :class:`DigitViTModel` and
  :func:`vit_explorer` — a trained one in the reader's browser: every head of every layer for any
  query token, the rollout and a logit lens, on any digit the reader draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._checks import (
    check_choice,
    check_instance,
    check_int,
    check_labels,
    check_positive_int,
    check_seeds,
    check_size2,
    check_tensor,
)
from ..blocks import merge_heads, split_heads
from ..core import AttentionModule, record_attention, scaled_dot_product_attention
from ..multi_head import VisionTransformer, attention_rollout
from ..spatial import attention_mass_in_box
from ..train import SeedRuns, fit_seeds
from ..views.browser_model import export_model
from ..views.model_explorer import ModelExplorer, labelled, lens, maps, probs, tokens
from ..views.model_explorer import model_explorer as make_model_explorer
from ._checks import check_data
from .common import EncodedHeads, like_module, standardize, token_features
from .digits import DIGIT_SIZE, digits_at

__all__ = [
    "TASK",
    "pair_task",
    "pair_features",
    "standardize",
    "MultiHeadPooling",
    "StaticPooling",
    "PairReader",
    "run_seeds",
    "per_example_correct",
    "pruned_accuracy",
    "mass_on_digits",
    "PairModel",
    "model_explorer",
    "digit_vit",
    "DigitViTModel",
    "vit_explorer",
]

#: The canvases: ``(height, width)`` in pixels, the digits' side and the pixel noise.
TASK = {"canvas": (32, 64), "digit": DIGIT_SIZE, "noise": 0.1}


def pair_task(
    n: int, split: str = "train", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` canvases of :data:`TASK`, each with a digit at a random place in the left half and
    another in the right half (drawn from ``split``), plus Gaussian pixel noise.

    Returns:
        images ``(n, 1, 32, 64)`` in ``[0, 1]``, labels ``(n,)`` = ``10 · left + right`` and the
        digits' boxes ``(n, 2, 4)`` as ``(top, left, bottom, right)`` pixels (left digit first;
        bottom and right exclusive).
    """
    check_positive_int("n", n)
    check_int("seed", seed, 0)
    (height, width), side = TASK["canvas"], TASK["digit"]
    g = torch.Generator().manual_seed(seed)
    digits, classes = digits_at(side, split)  # (M, 1, side, side), (M,)
    which = torch.randint(len(digits), (n, 2), generator=g)
    top = torch.randint(0, height - side + 1, (n, 2), generator=g)
    left = torch.randint(0, width // 2 - side + 1, (n, 2), generator=g)
    left[:, 1] += width // 2  # the second digit in the right half
    images = torch.zeros(n, 1, height, width)
    for i in range(n):
        for j in range(2):
            t, c = int(top[i, j]), int(left[i, j])
            images[i, :, t : t + side, c : c + side] = digits[which[i, j]]
    images = (images + TASK["noise"] * torch.randn(images.shape, generator=g)).clamp(0, 1)
    boxes = torch.stack([top, left, top + side, left + side], dim=-1)  # (n, 2, 4)
    return images, classes[which[:, 0]] * 10 + classes[which[:, 1]], boxes


def pair_features(images: torch.Tensor, encoder: nn.Module | None = None) -> torch.Tensor:
    """The frozen encoder's map average-pooled ``2 × 2``
    (:func:`~visual_attention.labs.common.token_features`): ``(N, 1, H, W)`` →
    ``(N, 64, H/8, W/8)``. A ``16``-pixel digit covers 2 to 3 tokens a side; the pooling makes
    training four times cheaper."""
    return token_features(images, encoder)


class MultiHeadPooling(AttentionModule):
    """Learned queries read ``N`` tokens with ``h`` heads (Vaswani et al. 2017, Sec. 3.2.2).

    ``q`` is a learned ``D``-vector, ``K = X W^K``, ``V = X W^V``; all three are split into ``h``
    heads of ``d = D / h`` features; ``head_i = softmax(q_i K_iᵀ / √d) V_i``; the output is
    ``Concat(head_1, …, head_h) W^O``. This is the class token's row of
    :class:`~visual_attention.blocks.MultiHeadAttention`; the parameters (``q``, ``W^K``,
    ``W^V``, ``W^O`` and biases: ``3D² + 4D``) are the same for every ``h``.

    With ``num_queries = m > 1`` there are ``m`` learned queries, each with its own softmax in
    every head; their ``m`` outputs are concatenated before ``W^O`` (``m·D → D``): the chapter's
    "one head, two queries" control, ``m`` attention patterns without splitting the width.

    Shapes: ``forward``: tokens ``(B, N, D)`` → ``(B, D)``. Records the weights ``(B, h·m, N)``
    (head-major: head 0's queries first).
    """

    def __init__(self, dim: int, num_heads: int, num_queries: int = 1) -> None:
        super().__init__()
        self.dim, self.num_heads = check_positive_int("dim", dim), num_heads
        if dim % check_positive_int("num_heads", num_heads):
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_queries = check_positive_int("num_queries", num_queries)
        self.query = nn.Parameter(torch.randn(1, num_queries, dim) * dim**-0.5)  # q
        self.kv = nn.Linear(dim, 2 * dim)  # W^K and W^V in one projection
        self.proj = nn.Linear(num_queries * dim, dim)  # W^O

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, N, D)`` → ``(B, D)``."""
        b, _, _ = check_tensor("x", x, "(B, N, dim)", dim=self.dim)
        if self.num_queries > 1:
            return self._forward_queries(x, b)
        # [start-pooling]
        k, v = self.kv(x).chunk(2, dim=-1)  # (B, N, D) each
        q = split_heads(self.query.expand(b, -1, -1), self.num_heads)  # (B, h, 1, d)
        k, v = split_heads(k, self.num_heads), split_heads(v, self.num_heads)  # (B, h, N, d)
        context, weights = scaled_dot_product_attention(q, k, v)  # softmax(q Kᵀ/√d) V
        self.remember(weights[:, :, 0])  # (B, h, N): one map per head
        return self.proj(merge_heads(context)[:, 0])  # Concat(head_1, …, head_h) W^O
        # [end-pooling]

    def _forward_queries(self, x: torch.Tensor, b: int) -> torch.Tensor:
        k, v = self.kv(x).chunk(2, dim=-1)  # (B, N, D) each
        q = split_heads(self.query.expand(b, -1, -1), self.num_heads)  # (B, h, m, d)
        k, v = split_heads(k, self.num_heads), split_heads(v, self.num_heads)  # (B, h, N, d)
        context, weights = scaled_dot_product_attention(q, k, v)  # (B, h, m, d), (B, h, m, N)
        self.remember(weights.flatten(1, 2))  # (B, h·m, N)
        return self.proj(merge_heads(context).flatten(1))  # Concat over queries, then W^O


class StaticPooling(nn.Module):
    """The non-attention control: a per-token MLP, then learned *static* weightings of the tokens.

    ``u_n = GELU(x_n W^V + b)`` for every token (the same for all), ``s_k = Σ_n a_{kn} u_n + c_k``
    with ``K`` learned weightings ``a_k ∈ ℝ^N`` that do not depend on the input (an MLP-Mixer-like
    token-mixing layer ``N → K``, Tolstikhin et al. 2021), and ``Concat(s_1, …, s_K) W^O``. It
    reaches every token, as the attention pooling does, but no weight depends on content.

    Shapes: ``forward``: tokens ``(B, N, D)`` → ``(B, D)``.
    """

    def __init__(self, dim: int, num_tokens: int, slots: int = 2) -> None:
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.num_tokens = check_positive_int("num_tokens", num_tokens)
        self.slots = check_positive_int("slots", slots)
        self.value = nn.Linear(dim, dim)  # W^V, applied to every token
        self.mix = nn.Linear(num_tokens, slots)  # the static weightings a_k over the N tokens
        self.proj = nn.Linear(slots * dim, dim)  # W^O

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, N, D)`` → ``(B, D)``."""
        check_tensor("x", x, "(B, N, dim)", N=self.num_tokens, dim=self.dim)
        u = nn.functional.gelu(self.value(x))  # (B, N, D)
        s = self.mix(u.transpose(1, 2))  # (B, D, K): K static weighted sums of the tokens
        return self.proj(s.transpose(1, 2).flatten(1))  # Concat(s_1, …, s_K) W^O


class PairReader(nn.Module):
    """Read two digits from frozen features: tokens, :class:`MultiHeadPooling`, a read-out.

    The ``(B, C, h, w)`` map becomes ``h·w`` tokens plus learned position embeddings; the pooling
    gives one ``C``-vector, layer-normed; a linear layer gives 10 scores for the left digit and
    10 for the right one, and the logit of the pair ``(a, b)`` is their sum (so its
    cross-entropy is the sum of the two digits' cross-entropies). Only ``num_heads`` differs
    between the chapter's main models; the parameter count does not depend on it. The controls:
    ``num_queries=2`` (one head, two queries) and ``pooling="static"`` (:class:`StaticPooling`
    with two static weightings, no attention; ``num_heads`` and ``num_queries`` unused).

    Shapes: ``forward``: ``(B, C, h, w)`` → logits ``(B, 100)``, class ``10 · left + right``.
    """

    def __init__(
        self,
        num_heads: int,
        channels: int = 64,
        grid: tuple[int, int] = (4, 8),
        num_queries: int = 1,
        pooling: str = "attention",
    ):
        super().__init__()
        self.channels, self.grid = (
            check_positive_int("channels", channels),
            check_size2("grid", grid),
        )
        check_choice("pooling", pooling, ("attention", "static"))
        self.pos = nn.Parameter(torch.randn(1, grid[0] * grid[1], channels) * 0.02)
        if pooling == "attention":
            self.pool = MultiHeadPooling(channels, num_heads, num_queries)
        else:
            check_positive_int("num_heads", num_heads)
            check_positive_int("num_queries", num_queries)
            self.pool = StaticPooling(channels, grid[0] * grid[1], 2)  # two weightings, two digits
        self.norm = nn.LayerNorm(channels)
        self.fc = nn.Linear(channels, 20)  # 10 scores per digit

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        check_tensor("f", f, "(B, C, h, w)", C=self.channels, h=self.grid[0], w=self.grid[1])
        tokens = f.flatten(2).transpose(1, 2) + self.pos  # (B, N, C)
        scores = self.fc(self.norm(self.pool(tokens)))  # (B, 20)
        return (scores[:, :10, None] + scores[:, None, 10:]).flatten(1)  # (B, 100)


def run_seeds(
    num_heads: int,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 40,
    lr: float = 1e-2,
    batch_size: int = 128,
    num_queries: int = 1,
    pooling: str = "attention",
    train_size: int | None = None,
) -> SeedRuns:
    """Train one :class:`PairReader` per seed on features ``(N, C, h, w)``; evaluate on
    ``test``. Each seed seeds the initialisation and the data order and, with ``train_size``,
    the draw of that many training examples out of ``train`` (without replacement); Adam,
    constant ``lr``. ``num_heads``, ``num_queries`` and ``pooling`` go to :class:`PairReader`.

    Returns:
        :class:`~visual_attention.train.SeedRuns`: the final test accuracies (one per seed), the
        readers (eval mode) and their histories.
    """
    check_positive_int("num_heads", num_heads)
    check_positive_int("num_queries", num_queries)
    check_choice("pooling", pooling, ("attention", "static"))
    n, channels, h, w = check_data("train", train, "(N, C, h, w)")
    check_data("test", test, "(N, C, h, w)", C=channels, h=h, w=w)
    check_seeds("seeds", seeds)
    if train_size is not None and not 1 <= check_positive_int("train_size", train_size) <= n:
        raise ValueError(
            f"train_size must be in [1, {n}] (the training examples), got {train_size}"
        )
    runs = SeedRuns([], [], [])
    for seed in seeds:
        data = train
        if train_size is not None:  # this seed's own draw of the training examples
            pick = torch.randperm(n, generator=torch.Generator().manual_seed(1000 + seed))
            data = (train[0][pick[:train_size]], train[1][pick[:train_size]])
        run = fit_seeds(
            lambda: PairReader(num_heads, channels, (h, w), num_queries, pooling),
            data,
            test,
            [seed],
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
        )
        for mine, got in zip(runs, run):
            mine.extend(got)
    return runs


@torch.no_grad()
def per_example_correct(
    models: Sequence[nn.Module], test: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """Each test example's correctness averaged over ``models`` (e.g. the seeds of one model):
    ``(N,)`` in ``[0, 1]``, for the paired bootstrap of
    :func:`~visual_attention.views.evidence.report_evidence`.

    Args:
        models: trained readers mapping ``(N, C, h, w)`` to logits ``(N, K)``.
        test: ``(features (N, C, h, w), labels (N,))``.
    """
    if not isinstance(models, (list, tuple)) or not models:
        raise ValueError(f"models must be a non-empty list of trained models, got {models!r:.60}")
    for i, m in enumerate(models):
        check_instance(f"models[{i}]", m, nn.Module)
    n = check_data("test", test, "(N, C, h, w)")[0]
    x, y = test
    hits = [(m.eval()(x).argmax(-1) == y).float() for m in models]
    return torch.stack(hits).mean(0).reshape(n)


@torch.no_grad()
def pruned_accuracy(
    reader: PairReader, test: tuple[torch.Tensor, torch.Tensor], keep: Sequence[bool]
) -> float:
    """The test accuracy of a trained one-query :class:`PairReader` with some heads pruned
    (Michel et al. 2019): head ``i``'s context is zeroed where ``keep[i]`` is False, before
    ``W^O``; nothing is renormalised or retrained.

    Args:
        reader: a trained reader with :class:`MultiHeadPooling` (one query).
        test: ``(features (N, C, h, w), labels (N,))``.
        keep: one bool per head.
    """
    check_instance("reader", reader, PairReader)
    pool = reader.pool
    if not isinstance(pool, MultiHeadPooling) or pool.num_queries != 1:
        raise ValueError("reader must pool with attention and one query (num_queries=1)")
    heads = pool.num_heads
    ok = isinstance(keep, (list, tuple)) and all(isinstance(k, bool) for k in keep)
    if not ok or len(keep) != heads:
        raise ValueError(f"keep must be {heads} bools (one per head), got {keep!r:.60}")
    check_data("test", test, "(N, C, h, w)", C=reader.channels, h=reader.grid[0], w=reader.grid[1])
    f, y = test
    x = f.flatten(2).transpose(1, 2) + reader.pos  # (B, N, C)
    k, v = pool.kv(x).chunk(2, dim=-1)
    q = split_heads(pool.query.expand(len(x), -1, -1), heads)  # (B, h, 1, d)
    context, _ = scaled_dot_product_attention(q, split_heads(k, heads), split_heads(v, heads))
    context = context * torch.tensor(keep, dtype=context.dtype)[None, :, None, None]
    scores = reader.fc(reader.norm(pool.proj(merge_heads(context)[:, 0])))  # (B, 20)
    pairs = (scores[:, :10, None] + scores[:, None, 10:]).flatten(1)
    return float((pairs.argmax(-1) == y).float().mean())


def mass_on_digits(
    weights: torch.Tensor, boxes: torch.Tensor, grid: tuple[int, int]
) -> torch.Tensor:
    """Each head's attention mass on each digit.

    Args:
        weights: ``(B, h, N)`` maps of :class:`MultiHeadPooling` over ``N = rows · cols`` tokens.
        boxes: ``(B, 2, 4)`` digit boxes of :func:`pair_task` (pixels).
        grid: ``(rows, cols)`` of the tokens; each covers a block of the :data:`TASK` canvas.

    Returns:
        ``(B, h, 2)``: the share of each head's mass inside the left and the right digit's box
        (uniform attention puts ``16² / (32 · 64) = 0.125`` on each).
    """
    b, heads, n = check_tensor("weights", weights, "(B, h, N)")
    if not isinstance(boxes, torch.Tensor) or boxes.dtype == torch.bool or boxes.is_complex():
        got = boxes.dtype if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise ValueError(f"boxes must be a real tensor (B, 2, 4) of pixel boxes, got {got}")
    grid = check_size2("grid", grid)
    if tuple(boxes.shape) != (b, 2, 4):
        raise ValueError(f"boxes must be (B, 2, 4) with B = {b}, got {tuple(boxes.shape)}")
    if n != grid[0] * grid[1]:
        raise ValueError(
            f"weights have N = {n} tokens, the grid {tuple(grid)} has {grid[0]}·{grid[1]}"
        )
    maps = weights.reshape(b * heads, *grid)
    out = [
        attention_mass_in_box(maps, boxes[:, j].repeat_interleave(heads, 0), TASK["canvas"])
        for j in range(2)
    ]
    return torch.stack(out, dim=-1).reshape(b, heads, 2)


class PairModel(EncodedHeads):
    """The chapter's trained readers from the canvas up, as the reader's browser runs them.

    The frozen encoder and its ``2 × 2`` pooling (:func:`pair_features`), the standardisation
    with the training statistics (:func:`standardize`), then each :class:`PairReader`.
    ``forward``: canvases ``(B, 1, 32, 64)`` → per reader, in order, the scores of the left digit
    ``(B, 10)``, of the right digit ``(B, 10)`` (the pair's logit is their sum, so these are the
    logits of each digit's marginal) and every head's map ``(B, h, rows, cols)``.

    Args:
        readers: ``{name: trained PairReader}``.
        train_features: the raw :func:`pair_features` of the training canvases ``(N, C, h, w)``.
        encoder: the frozen digit encoder (default:
            :func:`~visual_attention.labs.digits.load_digit_cnn`).
    """

    def __init__(
        self,
        readers: dict[str, PairReader],
        train_features: torch.Tensor,
        encoder: nn.Module | None = None,
    ) -> None:
        super().__init__(readers, PairReader, train_features, encoder, "readers")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        check_tensor("x", x, "(B, C, H, W)", C=1)
        f = self.standardized(nn.functional.avg_pool2d(self.encoder.feature_map(x), 2))
        out = []
        for reader in self.heads:
            with record_attention(reader) as maps:
                pairs = reader(f).reshape(-1, 10, 10)  # [a, b] = left score a + right score b
            weights = maps["pool"].reshape(-1, reader.pool.num_heads, *reader.grid)
            out += [pairs[:, :, 0], pairs[:, 0, :], weights]  # softmax over a of l_a + r_0 = …
        return tuple(out)


def model_explorer(
    model: PairModel, examples: torch.Tensor, labels: torch.Tensor, display: int = 384
) -> ModelExplorer:
    """The reader draws two digits (or picks a test canvas, moves, grows or adds noise) and the
    page runs ``model``: every head's map over the canvas with its mass on each half, and what
    each reader reads.

    Args:
        model: the :class:`PairModel` to export.
        examples: test canvases ``(N, 1, 32, 64)`` to start from.
        labels: their pairs ``(N,)``, ``10 · left + right``.
        display: the drawing area's width in CSS pixels.
    """
    check_instance("model", model, PairModel)
    n, _, h, w = check_tensor("examples", examples, "(N, C, H, W)", C=1)
    check_labels("labels", labels, n)
    outputs = [f"{kind} {name}" for name in model.names for kind in ("left", "right", "maps")]
    exported = export_model(model, examples[:1], outputs)
    views = [
        probs(f"{name}: {side} digit", f"{side} {name}")
        for name in model.names
        for side in ("left", "right")
    ]
    halves = [("left half", 0, 0, h, w // 2), ("right half", 0, w // 2, h, w)]
    for name, reader in zip(model.names, model.heads):
        heads = [f"head {k}" for k in range(reader.pool.num_heads)]
        views.append(maps(f"{name}: every head's map", f"maps {name}", heads, regions=halves))
    names = [f"#{i} (digits {int(y) // 10} {int(y) % 10})" for i, y in enumerate(labels)]
    return make_model_explorer(
        exported,
        examples,
        names,
        views,
        display=display,
        brush=1.2,
        caption="Draw a digit in each half of the canvas (or pick a test canvas, move the ink, "
        "add noise): every head of both trained readers runs in this page.",
    )


class DigitViTModel(nn.Module):
    """A trained :class:`~visual_attention.multi_head.VisionTransformer` with everything the
    reader's browser shows of it, computed here once (the page only draws).

    ``forward``: images ``(B, C, S, S)`` → the logits ``(B, K)``, every layer's attention
    ``(B, L, h, T, T)`` (class token first), the attention rollout ``(B, T, T)``
    (:func:`~visual_attention.multi_head.attention_rollout`, heads averaged) and a logit lens
    ``(B, L, K)``: the final norm and head applied to the class token after each block, what the
    model would say if it stopped there (the last row is the logits).

    Args:
        vit: a trained ViT with a class token.
    """

    def __init__(self, vit: VisionTransformer) -> None:
        super().__init__()
        check_instance("vit", vit, VisionTransformer)
        if vit.cls_token is None:
            raise ValueError("vit must have a class token (class_token=True)")
        self.vit = vit.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        states: list[torch.Tensor] = []  # z_l after every block
        hooks = [
            b.register_forward_hook(lambda m, i, o: states.append(o)) for b in self.vit.blocks
        ]
        try:
            with record_attention(self.vit) as maps:
                logits = self.vit(x)
        finally:
            for hook in hooks:
                hook.remove()
        layers = [maps[f"blocks.{k}.attn"] for k in range(len(self.vit.blocks))]  # (B, h, T, T)
        lens = torch.stack([self.vit.head(self.vit.norm(z[:, 0])) for z in states], dim=1)
        return logits, torch.stack(layers, dim=1), attention_rollout(layers), lens


def vit_explorer(
    model: DigitViTModel, examples: torch.Tensor, labels: torch.Tensor, display: int = 192
) -> ModelExplorer:
    """The reader draws a digit (or picks a test digit) and the page runs ``model``: the
    prediction, every head of every layer for the query token the reader picks (a patch or the
    class token) over the input, the rollout of that token and the logit lens.

    Args:
        model: the :class:`DigitViTModel` to export.
        examples: test images ``(N, S, S)`` (one channel) to start from; labels: ``(N,)``.
        display: the drawing area's side in CSS pixels.
    """
    check_instance("model", model, DigitViTModel)
    vit = model.vit
    size = vit.img_size
    n = check_tensor("examples", examples, "(N, H, W)", H=size, W=size)[0]
    check_labels("labels", labels, n)
    if vit.in_channels != 1:
        raise ValueError(f"model must read one-channel images, its ViT reads {vit.in_channels}")
    example = like_module(examples[:1, None], vit)  # traced in the model's dtype, sent as float32
    exported = export_model(model, example, ("logits", "attention", "rollout", "lens"))
    depth = len(vit.blocks)
    views = [
        probs("ViT", "logits"),
        tokens("every head of every layer", "attention", (vit.grid, vit.grid), rollout="rollout"),
        lens("logit lens", "lens", [f"after layer {k + 1}" for k in range(depth)]),
    ]
    return make_model_explorer(
        exported,
        examples.float(),
        labelled(labels),
        views,
        display=display,
        brush=0.6,
        caption=f"Draw a digit on the {size} × {size} grid, or pick a test digit; click a patch "
        "of the small copy below to make it the query. The trained ViT runs in this page.",
    )


def digit_vit(
    dim: int = 32,
    depth: int = 4,
    num_heads: int = 4,
    mlp_ratio: float = 2.0,
    stem_channels: int | Sequence[int] = (16, 16),
) -> VisionTransformer:
    """A small ViT for the 8 × 8 digits: 2 × 2 patches (a 4 × 4 grid), 10 classes.

    By default width 32, 4 blocks of 4 heads, an MLP of twice the width and a convolutional stem of
    two 16-channel ``3 × 3`` layers (``stem_channels=0`` gives the plain ViT).
    """
    return VisionTransformer(
        8,
        2,
        1,
        10,
        dim=dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        stem_channels=stem_channels,
    )
