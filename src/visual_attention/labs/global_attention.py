"""The lab of the global attention chapter: two digits on a canvas and a question about the pair,
answered by one attention block whose only variable is its reach.

* :func:`pair_task` — ``48 × 48`` canvases with two ``16``-pixel digits, labelled "same digit?".
  ``layout="far"``: the two digits sit in opposite corners; ``layout="near"``: they sit side by
  side and a third digit (a distractor, as often of the left digit's class as not) sits in the
  other half of the canvas.
* :func:`token_features` — the frozen :class:`~visual_attention.labs.digits.DigitCNN` run once
  over the canvases, averaged over ``2 × 2`` positions: a ``6 × 6`` grid of tokens (one per
  ``8 × 8`` pixels), ``(N, 1, 48, 48)`` → ``(N, 64, 6, 6)``
  (:func:`visual_attention.labs.common.token_features`); :func:`standardize` them.
* :class:`PairHead` — what is trained: a token embedding, one pre-norm Transformer block and a
  linear classifier of the mean token. ``reach=None`` lets every token attend to all 36 tokens
  (global attention); ``reach=k`` masks the same attention to each token's ``k × k``
  neighbourhood (:func:`neighbourhood_mask`). Nothing else differs.
* :class:`TokenClassifier` — a tiny ViT-like classifier with a pluggable attention layer (the
  local attention chapter's comparison of windows and global attention on pixels).
* :func:`run_seeds` — one head trained per seed; :func:`attention_mass` — the share of attention
  inside the neighbourhood; :class:`TokenPairModel` and :func:`model_explorer` — the trained
  models in the reader's browser: draw two digits, pick a query token, see where each head looks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from einops.layers.torch import Rearrange
from torch import nn

from .._checks import (
    check_callable,
    check_choice,
    check_instance,
    check_int,
    check_int_or_none,
    check_labels,
    check_number,
    check_positive_int,
    check_seeds,
    check_tensor,
)
from ..blocks import MultiHeadAttention, PatchEmbed, PreNormBlock, conv_bn_act
from ..core import record_attention
from ..global_attention import GlobalAttention
from ..train import SeedRuns, fit_seeds
from ..views.browser_model import export_model
from ..views.model_explorer import ModelExplorer, probs, tokens
from ..views.model_explorer import model_explorer as make_model_explorer
from ._checks import check_canvas, check_data
from .common import EncodedHeads, standardize, token_features
from .digits import DIGIT_SIZE, digits_at, like_module

__all__ = [
    "CANVAS",
    "GRID",
    "LAYOUTS",
    "pair_task",
    "token_features",
    "neighbourhood_mask",
    "PairHead",
    "TokenClassifier",
    "run_seeds",
    "attention_mass",
    "TokenPairModel",
    "model_explorer",
    "standardize",
]

#: Side of the canvases in pixels.
CANVAS = 48
#: Side of the token grid (one token per ``8 × 8`` pixels).
GRID = 6
#: The layouts of :func:`pair_task`.
LAYOUTS = ("far", "near")
_JITTER = 2  # pixels a digit may move away from its corner or edge


def _place(canvas: torch.Tensor, digits: torch.Tensor, top: torch.Tensor, left: torch.Tensor):
    """Write ``digits`` ``(n, 1, s, s)`` into ``canvas`` ``(n, 1, H, W)`` at per-image corners."""
    s = digits.shape[-1]
    rows = (top[:, None] + torch.arange(s))[:, :, None]  # (n, s, 1)
    cols = (left[:, None] + torch.arange(s))[:, None, :]  # (n, 1, s)
    canvas[torch.arange(len(canvas))[:, None, None], 0, rows, cols] = digits[:, 0]


def pair_task(
    n: int,
    layout: str = "far",
    split: str = "train",
    seed: int = 0,
    noise: float = 0.1,
    classes: Sequence[int] = tuple(range(10)),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` canvases with a pair of digits, half of them the same digit (different drawings).

    ``"far"``: digit A near the top-left corner, digit B near the bottom-right corner (each
    moved by up to 2 pixels), about 30 pixels (4 tokens) apart in each direction. ``"near"``:
    A and B side by side in the top or bottom band of the canvas at a random column, a third digit
    (the distractor, of A's class half the time) in the other band: the answer is next to itself.
    Gaussian pixel noise ``noise``, then clipping to ``[0, 1]``. The digits are drawn from
    ``classes`` (at least two).

    Returns:
        images ``(n, 1, 48, 48)``, labels ``(n,)`` (1 = same digit) and the digits' classes
        ``(n, 2)`` (A, B), the last two int64.
    """
    check_positive_int("n", n), check_int("seed", seed, 0)
    check_choice("layout", layout, LAYOUTS), check_number("noise", noise, 0.0)
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
        raise ValueError(f"classes must be a sequence of digits 0-9, got {classes!r}")
    for i, c in enumerate(classes):
        check_int(f"classes[{i}]", c, 0)
    g = torch.Generator().manual_seed(seed)
    images, labels = digits_at(DIGIT_SIZE, split)
    by_class = [torch.nonzero(labels == c)[:, 0] for c in range(10)]

    def draw(classes: torch.Tensor) -> torch.Tensor:  # one random drawing of each class
        pick = [by_class[c][torch.randint(len(by_class[c]), (1,), generator=g)] for c in classes]
        return images[torch.cat(pick)]

    same = (torch.arange(n) % 2 == 0)[torch.randperm(n, generator=g)]
    cls = torch.as_tensor(list(classes), dtype=torch.long)
    k = len(cls)
    if k < 2 or not bool(((cls >= 0) & (cls < 10)).all()) or len(set(cls.tolist())) < k:
        raise ValueError(f"classes must be at least two distinct digits 0-9, got {classes!r}")
    ai = torch.randint(k, (n,), generator=g)
    bi = torch.where(same, ai, (ai + torch.randint(1, k, (n,), generator=g)) % k)
    a, b = cls[ai], cls[bi]
    canvas = torch.zeros(n, 1, CANVAS, CANVAS)
    far = CANVAS - DIGIT_SIZE  # the last corner a digit fits in
    jitter = lambda: torch.randint(0, _JITTER + 1, (n,), generator=g)  # noqa: E731
    if layout == "far":
        _place(canvas, draw(a), jitter(), jitter())
        _place(canvas, draw(b), far - jitter(), far - jitter())
    else:
        top = torch.rand(n, generator=g) < 0.5  # the pair in the top band, or the bottom one
        row = torch.where(top, jitter(), far - jitter())
        col = torch.randint(0, CANVAS - 2 * DIGIT_SIZE + 1, (n,), generator=g)
        _place(canvas, draw(a), row, col)
        _place(canvas, draw(b), row, col + DIGIT_SIZE)
        like_a = torch.rand(n, generator=g) < 0.5
        d = torch.where(like_a, a, cls[torch.randint(k, (n,), generator=g)])
        d_col = torch.randint(0, far + 1, (n,), generator=g)
        _place(canvas, draw(d), torch.where(top, far - jitter(), jitter()), d_col)
    canvas = (canvas + noise * torch.randn(canvas.shape, generator=g)).clamp(0, 1)
    return canvas, same.long(), torch.stack([a, b], dim=1)


def neighbourhood_mask(height: int, width: int, kernel_size: int) -> torch.Tensor:
    """Which token may attend to which: ``(N, N)`` boolean, ``N = height · width`` (row-major),
    ``True`` where the key lies in the ``k × k`` square centred on the query (clipped at the
    borders, as in stand-alone self-attention), i.e. ``|Δy| ≤ k // 2`` and ``|Δx| ≤ k // 2``."""
    for name, value in (("height", height), ("width", width), ("kernel_size", kernel_size)):
        check_positive_int(name, value)
    ys, xs = torch.arange(height).repeat_interleave(width), torch.arange(width).repeat(height)
    r = kernel_size // 2
    return ((ys[:, None] - ys[None]).abs() <= r) & ((xs[:, None] - xs[None]).abs() <= r)


class PairHead(nn.Module):
    """One pre-norm Transformer block over a token grid and a linear classifier of the mean token.

    ``z = x W_e + E_pos`` (a linear embedding of each token and a learned position embedding),
    ``z ← PreNormBlock(z)`` with :class:`~visual_attention.blocks.MultiHeadAttention` (masked
    to :func:`neighbourhood_mask` when ``reach = k``, unmasked when ``reach = None``), then
    ``LayerNorm``, the mean over tokens and ``nn.Linear(dim, num_classes)``. Only the mask
    differs between the global model and its neighbourhood control: same parameters, same count.

    Shapes: ``forward``: features ``(B, C, H, W)`` → logits ``(B, num_classes)``; the block records
    the weights ``(B, h, N, N)`` (zero outside the neighbourhood when masked).
    """

    def __init__(
        self,
        reach: int | None = None,
        channels: int = 64,
        grid: int = GRID,
        dim: int = 64,
        num_heads: int = 4,
        num_classes: int = 2,
    ) -> None:
        super().__init__()
        self.reach = check_int_or_none("reach", reach)
        self.channels, self.grid = check_positive_int("channels", channels), grid
        check_positive_int("grid", grid), check_positive_int("dim", dim)
        check_positive_int("num_heads", num_heads)
        self.embed = nn.Linear(channels, dim)
        self.pos = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, grid * grid, dim), std=0.02))
        self.block = PreNormBlock(dim, MultiHeadAttention(dim, num_heads), mlp_ratio=2.0)
        every = torch.ones(grid * grid, grid * grid, dtype=torch.bool)
        self.register_buffer(
            "mask", every if reach is None else neighbourhood_mask(grid, grid, reach)
        )
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, check_positive_int("num_classes", num_classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        g = self.grid
        check_tensor("features", features, "(B, C, H, W)", C=self.channels, H=g, W=g)
        z = self.embed(features.flatten(2).transpose(1, 2)) + self.pos  # (B, N, dim)
        z = self.norm(self.block(z, mask=self.mask))  # every token, or its neighbourhood
        return self.fc(z.mean(dim=1))  # mean token → logits


class TokenClassifier(nn.Module):
    """A tiny ViT-like image classifier whose attention layer is pluggable.

    Token embedding plus a learned position embedding → ``depth`` pre-norm Transformer blocks
    (:class:`~visual_attention.blocks.PreNormBlock`) over the ``(H/p) × (W/p)`` token grid → mean
    of the tokens → a linear head. ``attn_layer(dim, i)`` builds the attention of block ``i``; it
    receives and returns a grid ``(B, H, W, C)``, and the block index lets a window attention
    alternate plain and shifted windows (e.g. ``lambda d, i: GlobalAttention(d, 4)``).

    Args:
        img_size, in_channels, num_classes: input side, channels and number of classes.
        patch_size: side of a patch (the image side must be a multiple of it).
        dim: token channels.
        depth: number of blocks.
        attn_layer: ``(dim, block index) → module`` building the attention of each block (default:
            global, 4 heads).
        mlp_ratio: hidden width of the MLP as a multiple of ``dim``.
        stem: ``"patch"`` embeds each ``patch_size × patch_size`` patch linearly (ViT Eq. 1,
            :class:`~visual_attention.blocks.PatchEmbed`); ``"conv"`` (default) uses ``3 × 3``
            :func:`~visual_attention.blocks.conv_bn_act` layers down to the same grid (one stride-2
            convolution per halving, ``dim / 2`` channels before the last, then one stride-1
            convolution; the convolutional stem of Xiao et al., NeurIPS 2021, a light form of ViT's
            "hybrid" input, Sec. 3.1), which trains far faster on small data.

    Shapes:
        ``(B, in_channels, img_size, img_size)`` → logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        img_size: int = 40,
        in_channels: int = 1,
        num_classes: int = 10,
        patch_size: int = 4,
        dim: int = 32,
        depth: int = 2,
        attn_layer: Callable[[int, int], nn.Module] | None = None,
        mlp_ratio: float = 2.0,
        stem: str = "conv",
    ) -> None:
        super().__init__()
        for name, value in (
            ("img_size", img_size),
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("patch_size", patch_size),
            ("dim", dim),
            ("depth", depth),
        ):
            check_positive_int(name, value)
        check_choice("stem", stem, ("patch", "conv"))
        if img_size % patch_size:
            raise ValueError(
                f"img_size ({img_size}) must be a multiple of patch_size ({patch_size})"
            )
        check_callable("attn_layer", attn_layer, optional=True, what="(dim, block) → a module")
        attn_layer = attn_layer or (lambda d, i: GlobalAttention(d, num_heads=4))
        self.img_size, self.in_channels, self.grid = img_size, in_channels, img_size // patch_size
        if stem == "conv" and patch_size > 1:
            self.embed = _conv_stem(in_channels, dim, patch_size)
        else:  # a patch embedding; with patch_size 1 the conv stem is this 1 × 1 projection too
            self.embed = PatchEmbed(patch_size, in_channels, dim, stem_channels=())
        self.pos = nn.Parameter(torch.zeros(1, self.grid, self.grid, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(
            *[PreNormBlock(dim, attn_layer(dim, i), mlp_ratio) for i in range(depth)]
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = self.img_size
        check_tensor("images", images, "(B, C, H, W)", C=self.in_channels, H=size, W=size)
        x = self.embed(images) + self.pos  # tokens + position embedding, (B, H', W', dim)
        x = self.norm(self.blocks(x))  # depth pre-norm blocks on the grid
        return self.head(x.mean(dim=(1, 2)))  # mean of the tokens → logits


def _conv_stem(in_channels: int, dim: int, patch_size: int) -> nn.Sequential:
    """``log₂ p`` stride-2 ``3 × 3`` conv-BN-ReLU layers, then a stride-1 one: ``(B, C, H, W)`` →
    a token grid ``(B, H/p, W/p, dim)``."""
    if patch_size & (patch_size - 1):
        raise ValueError(f"a conv stem needs a power-of-two patch_size, got {patch_size}")
    layers, c, halvings = [], in_channels, patch_size.bit_length() - 1
    for i in range(halvings):  # per factor of 2 a stride-2 conv, the last one to dim channels
        out = dim if i == halvings - 1 else max(dim // 2, 1)
        layers.append(conv_bn_act(c, out, stride=2))
        c = out
    layers.append(conv_bn_act(dim, dim))  # then one stride-1 conv at the token grid's resolution
    return nn.Sequential(*layers, Rearrange("b c h w -> b h w c"))


def run_seeds(
    reach: int | None,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 10,
    lr: float = 5e-3,
    batch_size: int = 128,
) -> SeedRuns:
    """Train one :class:`PairHead` per seed on token features ``(N, C, H, W)``; evaluate on
    ``test``.

    Each seed seeds the head's initialisation and the data order; AdamW (weight decay 0.05),
    one warm-up epoch, then a cosine decay of ``lr`` to 0.

    Returns:
        :class:`~visual_attention.train.SeedRuns`: the final test accuracies (one per seed), the
        heads (eval mode) and their histories.
    """
    check_int_or_none("reach", reach)
    _, c, h, _ = check_data("train", train, "(N, C, H, W)")
    check_data("test", test, "(N, C, H, W)", C=c), check_seeds("seeds", seeds)
    return fit_seeds(
        lambda: PairHead(reach, channels=c, grid=h),
        train,
        test,
        seeds,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        optimizer="adamw",
        weight_decay=0.05,
        warmup_epochs=1,
    )


@torch.no_grad()
def attention_weights(head: PairHead, features: torch.Tensor) -> torch.Tensor:
    """The block's attention weights on ``features`` ``(B, C, H, W)``, averaged over heads:
    ``(B, N, N)`` (row = query token, column = key token)."""
    check_instance("head", head, PairHead)
    g = head.grid
    check_tensor("features", features, "(B, C, H, W)", C=head.channels, H=g, W=g)
    features = like_module(features, head)  # half-precision features for a float32 head
    _, weights = head.block.attn(
        head.block.norm1(head.embed(features.flatten(2).transpose(1, 2)) + head.pos),
        mask=head.mask,
        return_weights=True,
    )
    return weights.mean(dim=1)


def attention_mass(
    head: PairHead, features: torch.Tensor, kernel_size: int = 3
) -> tuple[float, float]:
    """The share of each query's attention that falls inside its ``k × k`` neighbourhood,
    averaged over queries and images, and the same share for uniform attention (the value of a
    head that ignores distance).

    Returns:
        ``(measured, uniform)``.
    """
    check_instance("head", head, PairHead), check_positive_int("kernel_size", kernel_size)
    w = attention_weights(head, features)  # (B, N, N)
    inside = neighbourhood_mask(head.grid, head.grid, kernel_size)  # (N, N)
    measured = float((w * inside).sum(-1).mean())
    return measured, float(inside.float().mean())


class TokenPairModel(EncodedHeads):
    """The chapter's trained heads from the canvas up, as the reader's browser runs them.

    The frozen encoder's tokens (:func:`token_features`), the standardisation with the training
    statistics (:func:`standardize`) and each :class:`PairHead`. ``forward``: canvases
    ``(B, 1, 48, 48)`` → per head, in order, its logits ``(B, 2)`` (different, same) and its
    block's attention ``(B, 1, h, N, N)`` (one layer).

    Args:
        heads: ``{name: trained PairHead}``.
        train_features: the raw :func:`token_features` of the training canvases ``(N, C, g, g)``.
        encoder: the frozen digit encoder (default:
            :func:`~visual_attention.labs.digits.load_digit_cnn`).
    """

    def __init__(
        self,
        heads: dict[str, PairHead],
        train_features: torch.Tensor,
        encoder: nn.Module | None = None,
    ) -> None:
        super().__init__(heads, PairHead, train_features, encoder)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        check_canvas("x", x, "(B, C, H, W)", side=8)
        f = nn.functional.avg_pool2d(self.encoder.feature_map(x), 2)  # tokens, as token_features
        f = self.standardized(f)
        out = []
        for head in self.heads:
            with record_attention(head) as maps:
                out.append(head(f))
            out.append(maps["block.attn"][:, None])  # (B, 1 layer, h, N, N)
        return tuple(out)


def model_explorer(
    model: TokenPairModel, examples: torch.Tensor, labels: torch.Tensor, display: int = 240
) -> ModelExplorer:
    """The reader draws two digits (or picks a test canvas, moves, resizes, adds noise) and picks
    a query token; the page runs ``model``: where that token looks in every head of each model,
    over the canvas, and each model's probability of "same digit".

    Args:
        model: the :class:`TokenPairModel` to export.
        examples: test canvases ``(N, 1, 48, 48)`` to start from; labels: ``(N,)``, 1 = same.
        display: the drawing area's side in CSS pixels.
    """
    check_instance("model", model, TokenPairModel)
    n = check_canvas("examples", examples, "(N, C, H, W)", side=8)[0]
    check_labels("labels", labels, n)
    outputs = [f"{kind} {name}" for name in model.names for kind in ("logits", "attention")]
    exported = export_model(model, examples[:1], outputs)
    grid = (model.heads[0].grid, model.heads[0].grid)
    views = [probs(name, f"logits {name}", ("different", "same")) for name in model.names]
    views += [
        tokens(f"{name}: where the query token looks", f"attention {name}", grid, prefix=0)
        for name in model.names
    ]
    names = [
        f"#{i} ({'same digit' if int(y) else 'different digits'})" for i, y in enumerate(labels)
    ]
    return make_model_explorer(
        exported,
        examples,
        names,
        views,
        display=display,
        brush=2.2,
        caption="Draw a digit in the top-left and one in the bottom-right corner, or pick a test "
        "canvas; click a token of a small copy below to make it the query. Both trained models "
        "run in this page.",
    )
