"""The lab of the hierarchical chapter: a task where the region decides, flat against
hierarchical attention pooling on a frozen encoder, and Swin's receptive field stage by stage.

* :func:`flagged_panels` — a ``64 × 64`` canvas cut into four ``32 × 32`` panels, each holding a
  digit in one of its corners; one panel also holds a small square, the flag, in the opposite
  corner. The label is the digit of the flagged panel: which digit counts is decided by a mark
  that no feature seeing the digit whole also sees (the encoder's features see ``18 × 18``
  pixels), but that lies inside the digit's panel.
* :class:`RegionHead` — what is trained on the frozen encoder's features ``(N, 64, 16, 16)``:
  hierarchical attention pooling over ``8 × 8``-position regions (one per panel), and three
  controls, each ending in a classifier: one flat attention pooling over all 256 positions with as
  many parameters; the hierarchy on misaligned regions (shifted by half a panel); and, without
  attention, a classifier on each region's mean vector with a max over the regions.
* :func:`run_seeds` — one head trained per seed, each on its own draw of the training canvases;
  :func:`position_weights` — the weight each head
  gives each position; :func:`region_mass` — the weight inside the flagged panel.
* :func:`receptive_fields` — which input patches can move a token of a Swin Transformer, block by
  block (the gradient of the token with respect to the image).
* :class:`SwinHead`, :data:`SWIN_HEADS`, :func:`panel_tokens`, :func:`train_swin_heads` and
  :func:`load_swin_heads` — Swin's hierarchy trained on the same task: two stages of ``2 × 2``
  windows with patch merging between them, against one stage of the same parameters with
  ``4 × 4`` windows (the same reach, four times the scores) or ``2 × 2`` windows (the same
  scores, half the reach). Trained by ``make weights`` (``scripts/train_swin_heads.py``, about
  two minutes); the chapter loads the weights and evaluates them.
* :class:`PanelModel` and :func:`model_explorer` — the trained heads in the reader's browser:
  draw digits and a flag and see both heads' weights over the canvas.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
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
from ..blocks import AttentionPooling
from ..core import record_attention
from ..hierarchical import (
    HierarchicalAttentionPooling,
    SwinStage,
    SwinTransformer,
    image_regions,
)
from ..train import SeedRuns, fit_seeds
from ..views.browser_model import export_model
from ..views.model_explorer import ModelExplorer, labelled, maps, overlay, probs
from ..views.model_explorer import model_explorer as make_model_explorer
from ._checks import check_canvas, check_data
from .common import EncodedHeads, code_fingerprint, load_runs, standardize
from .digits import DIGIT_SIZE, digits_at, like_module

__all__ = [
    "CANVAS",
    "PANEL",
    "FLAG",
    "POOLS",
    "ATTENTION_POOLS",
    "flagged_panels",
    "panel_boxes",
    "RegionHead",
    "run_seeds",
    "REGION_RECIPE",
    "REGION_WEIGHTS",
    "train_region_heads",
    "region_fingerprint",
    "load_region_heads",
    "position_weights",
    "region_mass",
    "receptive_fields",
    "SWIN_HEADS",
    "SWIN_RECIPE",
    "SWIN_WEIGHTS",
    "SwinHead",
    "panel_tokens",
    "train_swin_heads",
    "swin_fingerprint",
    "load_swin_heads",
    "PanelModel",
    "model_explorer",
]

#: Side of the canvases in pixels.
CANVAS = 64
#: Side of a panel in pixels (a ``2 × 2`` grid of panels); ``8 × 8`` positions of the encoder.
PANEL = 32
#: Side of the flag, a white square, in pixels.
FLAG = 5
_JITTER, _NOISE = 2, 0.1
#: The heads :class:`RegionHead` builds: the mechanism, then the controls.
POOLS = ("hierarchical", "region_max", "flat", "misaligned")
#: The heads that pool with attention (and so have a weight on every position).
ATTENTION_POOLS = ("hierarchical", "flat", "misaligned")


def flagged_panels(
    n: int, split: str = "train", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` canvases of four panels, one digit each; the label is the digit of the flagged panel.

    Each ``32 × 32`` panel holds a ``16 × 16`` digit (``labs.digits.digits_at``, from ``split``)
    in a random corner, moved inwards by up to 2 pixels; the flagged panel holds a ``5 × 5``
    white square in the opposite corner, moved inwards by the same amount. Gaussian pixel noise
    0.1. The digit and its flag are at least 7 pixels apart along each axis.

    Returns:
        images ``(n, 1, 64, 64)`` in ``[0, 1]``, labels ``(n,)`` and the flagged panel ``(n,)``
        (0-3 in row-major order), int64.
    """
    check_positive_int("n", n)
    check_int("seed", seed, 0)
    check_choice("split", split, ("train", "test"))
    digits, digit_labels = digits_at(DIGIT_SIZE, split)
    g = torch.Generator().manual_seed(seed)
    k, far, d = CANVAS // PANEL, PANEL - DIGIT_SIZE, DIGIT_SIZE
    images = torch.zeros(n, 1, CANVAS, CANVAS)
    flagged = torch.randint(k * k, (n,), generator=g)
    chosen = torch.randint(len(digits), (n, k * k), generator=g)
    corners = torch.randint(2, (n, k * k, 2), generator=g)  # (bottom?, right?) per panel
    shifts = torch.randint(_JITTER + 1, (n, k * k, 2), generator=g)
    for i in range(n):
        for p in range(k * k):
            (br, bc), (jr, jc) = corners[i, p].tolist(), shifts[i, p].tolist()
            top = (p // k) * PANEL + (far - jr if br else jr)
            left = (p % k) * PANEL + (far - jc if bc else jc)
            images[i, 0, top : top + d, left : left + d] = digits[chosen[i, p], 0]
            if p == int(flagged[i]):  # the flag in the opposite corner
                top = (p // k) * PANEL + (jr if br else PANEL - FLAG - jr)
                left = (p % k) * PANEL + (jc if bc else PANEL - FLAG - jc)
                images[i, 0, top : top + FLAG, left : left + FLAG] = 1.0
    labels = digit_labels[chosen.gather(1, flagged[:, None])[:, 0]]
    images = (images + _NOISE * torch.randn(images.shape, generator=g)).clamp(0, 1)
    return images, labels, flagged


def _check_indices(name: str, t: object, count: int, n: int | None = None) -> torch.Tensor:
    """Check a 1-D integer tensor (of length ``n`` if given) with entries in ``[0, count)``."""
    ok = isinstance(t, torch.Tensor) and t.ndim == 1 and not t.is_floating_point()
    ok = ok and t.dtype != torch.bool and not t.is_complex()
    if not ok or (n is not None and len(t) != n) or ((t < 0) | (t >= count)).any():
        length = "(N,)" if n is None else f"({n},)"
        raise ValueError(f"{name} must be an integer tensor {length} in [0, {count}), got {t!r}")
    return t


def panel_boxes(flagged: torch.Tensor) -> torch.Tensor:
    """Pixel boxes ``(n, 4)`` ``(top, left, bottom, right)`` of the panels ``flagged`` ``(n,)``."""
    _check_indices("flagged", flagged, (CANVAS // PANEL) ** 2)
    k = CANVAS // PANEL
    top, left = (flagged // k) * PANEL, (flagged % k) * PANEL
    return torch.stack([top, left, top + PANEL, left + PANEL], dim=1)


class RegionHead(nn.Module):
    """A pooling of a feature map and a classifier: hierarchical attention or a control.

    * ``pool="hierarchical"``: :class:`~visual_attention.hierarchical.HierarchicalAttentionPooling`
      with ``r × r`` regions: an :class:`~visual_attention.blocks.AttentionPooling` over the
      positions of each region, another over the region vectors; records ``pool.patch_pool``
      ``(B, R, r²)`` and ``pool.region_pool`` ``(B, R)``;
    * ``pool="misaligned"``: the same on the feature map rolled by ``r / 2`` positions along both
      axes, so that every region straddles four of the ``r × r`` blocks (the ablation: the
      hierarchy without the partition that fits the task);
    * ``pool="flat"``: one :class:`~visual_attention.blocks.AttentionPooling` over all ``h·w``
      positions; records ``pool`` ``(B, h·w)``;
    * ``pool="region_max"``, without attention: each region's mean vector, a classifier shared by
      the regions (``C → hidden_dim → num_classes``, ReLU) and, per class, the max over regions.

    The attention heads end in ``nn.Linear(C, num_classes)``. ``hidden_dim`` (the tanh units of
    each attention pooling, the hidden units of the region classifier) defaults to 16 for the
    two hierarchies and 32 for the flat pooling and the region classifier: the flat head then has
    exactly the hierarchy's parameters, the region classifier 0.87 of them (``C = 64``).

    Shapes: ``forward``: ``(B, C, h, w)`` → logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        pool: str = "hierarchical",
        channels: int = 64,
        region_size: int = PANEL // 4,
        hidden_dim: int | None = None,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.pool_mode = check_choice("pool", pool, POOLS)
        self.channels = check_positive_int("channels", channels)
        self.region_size = check_positive_int("region_size", region_size)
        self.shift = region_size // 2 if pool == "misaligned" else 0
        if hidden_dim is None:
            hidden_dim = 16 if pool in ("hierarchical", "misaligned") else 32
        check_positive_int("hidden_dim", hidden_dim)
        check_positive_int("num_classes", num_classes)
        if pool in ("hierarchical", "misaligned"):
            self.pool = HierarchicalAttentionPooling(channels, region_size, hidden_dim)
        elif pool == "flat":
            self.pool = AttentionPooling(channels, hidden_dim)
        else:
            self.pool = None
        if pool == "region_max":
            self.fc = nn.Sequential(
                nn.Linear(channels, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_classes)
            )
        else:
            self.fc = nn.Linear(channels, num_classes)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """``f`` ``(B, C, h, w)`` → logits ``(B, num_classes)``."""
        check_tensor("f", f, "(B, C, h, w)", C=self.channels)
        if self.pool_mode == "flat":  # one pooling over all positions: (B, C)
            return self.fc(self.pool(rearrange(f, "b c h w -> b (h w) c")))
        if self.pool_mode == "region_max":  # no attention: classify each region, max over them
            regions = image_regions(f, self.region_size).mean(2)  # (B, R, C)
            return self.fc(regions).amax(1)
        if self.pool_mode == "misaligned":  # regions shifted by r / 2 along both axes
            f = torch.roll(f, (self.shift, self.shift), (2, 3))
        return self.fc(self.pool(f))  # regions, then the image: (B, C)


def run_seeds(
    pool: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 25,
    lr: float = 1e-2,
    batch_size: int = 128,
    train_size: int | None = None,
) -> SeedRuns:
    """Train one :class:`RegionHead` per seed on features ``(N, C, h, w)``; evaluate on ``test``.

    Each seed seeds the head's initialisation, the data order and, with ``train_size``, which
    ``train_size`` of the training examples it learns from (a seeded draw without replacement);
    Adam, constant ``lr``.

    Returns:
        :class:`~visual_attention.train.SeedRuns`: the final test accuracies (one per seed), the
        heads (eval mode) and their histories (``histories[i].test_accuracy``: after every epoch).
    """
    check_choice("pool", pool, POOLS)
    c = check_data("train", train, "(N, C, h, w)")[1]
    check_data("test", test, "(N, C, h, w)", C=c)
    check_seeds("seeds", seeds)
    return fit_seeds(
        lambda: RegionHead(pool, channels=c),
        _seed_draws(train, train_size),
        test,
        seeds,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
    )


def _seed_draws(train: tuple[torch.Tensor, torch.Tensor], train_size: int | None):
    """``seed → (x, y)``: each seed's own ``train_size`` training examples (a seeded draw
    without replacement; all of them with ``None``)."""
    n = len(train[0])
    if train_size is not None and not 1 <= check_int("train_size", train_size, 1) <= n:
        raise ValueError(f"train_size must be at most the {n} training examples, got {train_size}")

    def draw(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        if train_size is None:
            return train
        keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:train_size]
        return train[0][keep], train[1][keep]

    return draw


#: How ``make weights`` trains the chapter's main experiment (``scripts/train_region_heads.py``):
#: every :data:`POOLS` head once per seed, each seed on its own ``train_size`` of the 2,000
#: training canvases (``flagged_panels(2000, "train", 0)``; test ``(600, "test", 1)``).
REGION_RECIPE = {
    "seeds": (0, 1, 2),
    "epochs": 25,
    "lr": 1e-2,
    "batch_size": 128,
    "train_size": 1500,
}
#: The weights ``make weights`` writes (``scripts/train_region_heads.py``).
REGION_WEIGHTS = Path(__file__).parent / "weights" / "region_heads.pt"


def train_region_heads(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    pools: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
) -> dict[str, SeedRuns]:
    """:func:`run_seeds` for each of ``pools`` (default :data:`POOLS`) with
    :data:`REGION_RECIPE`; ``seeds`` and ``epochs`` replace the recipe's (a quick run).

    Args:
        train, test: standardised features ``(N, C, h, w)`` and labels ``(N,)``.

    Returns:
        ``{pool: SeedRuns}``.
    """
    if pools is not None and (isinstance(pools, str) or not isinstance(pools, Sequence)):
        raise ValueError(f"pools must be a list of POOLS names, got {pools!r}")
    pools = list(POOLS) if pools is None else list(pools)
    for pool in pools:
        check_choice("pools", pool, POOLS)
    r = dict(REGION_RECIPE)
    if seeds is not None:
        r["seeds"] = tuple(check_seeds("seeds", seeds))
    if epochs is not None:
        r["epochs"] = check_positive_int("epochs", epochs)
    train_size = min(r.pop("train_size"), check_data("train", train, "(N, C, h, w)")[0])
    return {pool: run_seeds(pool, train, test, train_size=train_size, **r) for pool in pools}


def region_fingerprint() -> str:
    """A hash of the code (docstrings aside) and the recipe that make :data:`REGION_WEIGHTS`."""
    parts = [RegionHead, HierarchicalAttentionPooling, run_seeds, _seed_draws, train_region_heads]
    parts += [image_regions, flagged_panels]
    return code_fingerprint(parts, REGION_RECIPE, POOLS)


def load_region_heads(path: Path | str = REGION_WEIGHTS) -> dict[str, SeedRuns]:
    """The heads ``make weights`` trained (:func:`train_region_heads`), as
    :class:`~visual_attention.train.SeedRuns` per :data:`POOLS` name: the stored test accuracies,
    the heads (eval mode) and their stored histories.

    Args:
        path: the weights file (default: the package's, :data:`REGION_WEIGHTS`).
    """
    runs, _ = load_runs(path, lambda pool: RegionHead(pool), "region heads")
    return runs


@torch.no_grad()
def position_weights(head: RegionHead, f: torch.Tensor) -> torch.Tensor:
    """The weight of each position in the pooled vector: ``(N, C, h, w)`` → ``(N, h, w)``.

    Flat: the softmax weights. Hierarchical: the product ``α_i α_it`` of the region's weight and
    the position's weight inside its region (HAN's factorised map). Each map sums to 1.
    """
    check_instance("head", head, RegionHead)
    if head.pool_mode not in ATTENTION_POOLS:
        raise ValueError(
            f"head must pool with attention ({ATTENTION_POOLS}), got {head.pool_mode!r}"
        )
    check_tensor("f", f, "(N, C, h, w)", C=head.channels)
    with record_attention(head.eval()) as maps:
        head(like_module(f, head))  # half-precision features for a float32 head
    return _position_map(head, maps, *f.shape[-2:])


def _position_map(head: RegionHead, maps: dict[str, torch.Tensor], h: int, w: int) -> torch.Tensor:
    """:func:`position_weights` from the maps ``head`` recorded on an ``h × w`` feature map."""
    if head.pool_mode == "flat":
        return maps["pool"].reshape(-1, h, w)
    r = head.region_size
    product = maps["pool.region_pool"][..., None] * maps["pool.patch_pool"]  # (N, R, r²)
    rolled = rearrange(product, "n (nh nw) (r1 r2) -> n (nh r1) (nw r2)", nw=w // r, r1=r, r2=r)
    if head.pool_mode == "misaligned":  # back to the positions of the map
        rolled = torch.roll(rolled, (-head.shift, -head.shift), (1, 2))
    return rolled


def region_mass(weights: torch.Tensor, region: torch.Tensor, region_size: int) -> torch.Tensor:
    """The weight inside one region per map: ``weights`` ``(N, h, w)``, ``region`` ``(N,)``
    (row-major index of a ``region_size × region_size`` block) → ``(N,)``."""
    n, h, w = check_tensor("weights", weights, "(N, h, w)")
    r = check_positive_int("region_size", region_size)
    _check_indices("region", region, (h // r) * (w // r), n)
    per_region = rearrange(weights, "n (nh r1) (nw r2) -> n (nh nw) (r1 r2)", r1=r, r2=r)
    return per_region.sum(-1).gather(1, region[:, None].long())[:, 0]


def receptive_fields(
    model: SwinTransformer, threshold: float = 0.0
) -> list[dict[str, int | str | torch.Tensor]]:
    """How far a token of a Swin Transformer reaches into the image, after every block.

    One forward pass of a random image; for each block, the gradient of one token near the
    centre of its grid (projected on a fixed random direction) with respect to the image, summed
    over each input patch in absolute value. A patch *can influence* the token where that sum
    exceeds ``threshold`` times its maximum; with the default 0 (any non-zero gradient; masked
    attention weights are exactly 0) the count is the theoretical receptive field. The
    *effective* field (Luo et al. 2016) is the fewest patches that hold 90 % of the gradient.

    Returns:
        one ``dict`` per block: ``stage``, ``block``, ``kind`` (``"W-MSA"`` or ``"SW-MSA"``),
        ``grid`` (the stage's side in tokens), ``patches`` (that can influence the token),
        ``side`` (of their bounding box, in patches), ``effective`` (patches with 90 %) and
        ``gradient``, the per-patch sums ``(H/p, W/p)``.
    """
    check_instance("model", model, SwinTransformer)
    check_number("threshold", threshold, 0.0, 1.0, high_open=True)
    size, p = model.img_size, model.patch_embed.patch_size
    p = p if isinstance(p, int) else p[0]
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, model.in_channels, size, size, generator=g).requires_grad_(True)
    model.eval()
    x, outputs = model.patch_embed(image), []
    for s, stage in enumerate(model.stages):
        for b, block in enumerate(stage.blocks):
            x = block(x)
            kind = "SW-MSA" if block.attn.shift_size else "W-MSA"
            outputs.append((s + 1, b + 1, kind, x))
        x = stage.downsample(x)
    rows = []
    for s, b, kind, out in outputs:
        grid = out.shape[1]
        direction = torch.randn(out.shape[-1], generator=g)
        token = out[0, grid // 2, grid // 2] @ direction
        (grad,) = torch.autograd.grad(token, image, retain_graph=True)
        per_patch = rearrange(grad.abs(), "1 c (h p1) (w p2) -> h w (c p1 p2)", p1=p, p2=p).sum(-1)
        reach = per_patch > threshold * per_patch.max()
        rows_hit, cols_hit = reach.any(1).nonzero()[:, 0], reach.any(0).nonzero()[:, 0]
        side = int(max(rows_hit[-1] - rows_hit[0], cols_hit[-1] - cols_hit[0])) + 1
        mass = per_patch.flatten().sort(descending=True).values.cumsum(0)
        effective = int((mass < 0.9 * mass[-1]).sum()) + 1
        rows.append(
            {
                "stage": s,
                "block": b,
                "kind": kind,
                "grid": grid,
                "patches": int(reach.sum()),
                "side": side,
                "effective": effective,
                "gradient": per_patch,
            }
        )
    return rows


#: The Swin heads of the stage experiment: name → ``(dim, depths, window_size)``. The first is
#: the hierarchy; the others one stage of (about) its parameters.
SWIN_HEADS = {
    "two stages, 2 × 2 windows": (16, (1, 1), 2),
    "one stage, 4 × 4 windows": (24, (2,), 4),
    "one stage, 2 × 2 windows": (24, (2,), 2),
}
#: How ``make weights`` trains every :data:`SWIN_HEADS` entry (:func:`train_swin_heads`).
SWIN_RECIPE = {"seeds": (0, 1, 2), "epochs": 30, "lr": 3e-3, "batch_size": 128, "train_size": 1500}
#: The weights ``make weights`` writes (``scripts/train_swin_heads.py``).
SWIN_WEIGHTS = Path(__file__).parent / "weights" / "swin_heads.pt"


class SwinHead(nn.Module):
    """Swin stages on a grid of tokens, then a LayerNorm, the mean over tokens and a classifier.

    A linear embedding ``C → dim`` per token, then one :class:`~visual_attention.hierarchical.
    SwinStage` per entry of ``depths`` (blocks alternating W-MSA and SW-MSA with
    ``window_size × window_size`` windows; one head in the first stage, two after), with
    :class:`~visual_attention.hierarchical.PatchMerging` between stages: each stage halves the
    grid and doubles the channels, so a window of the same size covers twice the side.

    Args:
        dim: channels of the first stage.
        depths: blocks per stage.
        window_size: ``M`` of every stage.
        channels: ``C`` of the input tokens.
        grid: side of the input grid (a multiple of ``window_size · 2^(stages-1)``).
        num_classes: classes of the classifier.
        mlp_ratio: hidden width of each block's MLP as a multiple of its channels.

    Shapes: ``forward``: tokens ``(B, C, grid, grid)`` → logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        dim: int = 16,
        depths: Sequence[int] = (1, 1),
        window_size: int = 2,
        channels: int = 64,
        grid: int = 8,
        num_classes: int = 10,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        depths = check_int_sequence("depths", depths)
        self.window_size = check_positive_int("window_size", window_size)
        self.channels = check_positive_int("channels", channels)
        self.grid = check_positive_int("grid", grid)
        check_positive_int("num_classes", num_classes)
        check_number("mlp_ratio", mlp_ratio, 0.0, low_open=True)
        if grid % (window_size * 2 ** (len(depths) - 1)):
            raise ValueError(
                f"grid={grid} must be a multiple of window_size · 2^(stages - 1), got "
                f"depths={tuple(depths)!r}, window_size={window_size}"
            )
        self.embed = nn.Linear(channels, dim)
        stages, width, side = [], dim, grid
        for i, depth in enumerate(depths):
            last = i == len(depths) - 1
            heads = 1 if i == 0 else 2
            stages.append(
                SwinStage(width, depth, heads, (side, side), window_size, mlp_ratio, not last)
            )
            width, side = (width, side) if last else (2 * width, side // 2)
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, num_classes)

    def scores_per_image(self) -> int:
        """The attention scores (query-key pairs, per head) of one image, every block summed."""
        total, side = 0, self.grid
        for stage in self.stages:
            for block in stage.blocks:
                window, heads = block.attn.window_size, block.attn.attn.num_heads
                total += side * side * window * window * heads
            if not isinstance(stage.downsample, nn.Identity):  # patch merging halves the grid
                side //= 2
        return total

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens`` ``(B, C, grid, grid)`` → logits ``(B, num_classes)``."""
        g = self.grid
        check_tensor("tokens", tokens, "(B, C, H, W)", C=self.channels, H=g, W=g)
        x = self.stages(self.embed(tokens.permute(0, 2, 3, 1)))  # (B, H', W', C')
        return self.fc(self.norm(x).mean(dim=(1, 2)))


def panel_tokens(
    train_features: torch.Tensor, test_features: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's raw features averaged over ``2 × 2`` positions (one token per ``8 × 8``
    pixels: ``4 × 4`` tokens per panel), standardised with the training statistics:
    ``(N, C, 16, 16)`` and ``(M, C, 16, 16)`` → ``(N, C, 8, 8)`` and ``(M, C, 8, 8)``."""
    c = check_tensor("train_features", train_features, "(N, C, H, W)")[1]
    check_tensor("test_features", test_features, "(N, C, H, W)", C=c)
    for name, f in (("train_features", train_features), ("test_features", test_features)):
        if f.shape[-1] % 2 or f.shape[-2] % 2:
            raise ValueError(f"{name} must have an even grid, got {tuple(f.shape)}")
    return standardize(F.avg_pool2d(train_features, 2), F.avg_pool2d(test_features, 2))


def train_swin_heads(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    names: Sequence[str] | None = None,
    seeds: Sequence[int] = SWIN_RECIPE["seeds"],
    epochs: int = SWIN_RECIPE["epochs"],
    lr: float = SWIN_RECIPE["lr"],
    batch_size: int = SWIN_RECIPE["batch_size"],
    train_size: int | None = SWIN_RECIPE["train_size"],
) -> dict[str, SeedRuns]:
    """Train each :data:`SWIN_HEADS` entry (``names``, default all) once per seed on tokens
    ``(N, C, 8, 8)`` (:func:`panel_tokens`), each seed on its own ``train_size`` training
    examples (the same draw as :func:`run_seeds`); Adam, constant ``lr``.

    Returns:
        ``{name: SeedRuns}``: final test accuracies, heads (eval mode), histories.
    """
    c, h = check_data("train", train, "(N, C, h, w)")[1:3]
    check_data("test", test, "(N, C, h, w)", C=c, h=h, w=h)
    check_seeds("seeds", seeds)
    if names is not None and (isinstance(names, str) or not isinstance(names, Sequence)):
        raise ValueError(f"names must be a list of SWIN_HEADS names, got {names!r}")
    names = list(SWIN_HEADS) if names is None else list(names)
    for name in names:
        check_choice("names", name, tuple(SWIN_HEADS))
    runs = {}
    for name in names:
        dim, depths, window = SWIN_HEADS[name]
        runs[name] = fit_seeds(
            lambda dim=dim, depths=depths, window=window: SwinHead(dim, depths, window, c, h),
            _seed_draws(train, train_size),
            test,
            seeds,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
        )
    return runs


def swin_fingerprint() -> str:
    """A hash of the code (docstrings aside) and the recipe that make :data:`SWIN_WEIGHTS`."""
    parts = [SwinHead, SwinStage, train_swin_heads, _seed_draws, panel_tokens]
    return code_fingerprint(parts, SWIN_HEADS, SWIN_RECIPE)


def load_swin_heads(path: Path | str = SWIN_WEIGHTS) -> dict[str, SeedRuns]:
    """The heads ``make weights`` trained (:func:`train_swin_heads` with :data:`SWIN_RECIPE`),
    as :class:`~visual_attention.train.SeedRuns` per :data:`SWIN_HEADS` name: the stored test
    accuracies, the heads (eval mode, frozen) and their stored histories.

    Args:
        path: the weights file (default: the package's, :data:`SWIN_WEIGHTS`).
    """

    def build(name: str) -> SwinHead:
        if name not in SWIN_HEADS:
            raise ValueError(f"no Swin head named {name!r}")
        return SwinHead(*SWIN_HEADS[name])

    runs, _ = load_runs(path, build, "Swin heads")
    for run in runs.values():
        for model in run.models:
            model.requires_grad_(False)
    return runs


class PanelModel(EncodedHeads):
    """The chapter's trained heads from the canvas up, as the reader's browser runs them.

    The frozen encoder, the standardisation with the training statistics
    (:func:`~visual_attention.labs.common.standardize`) and each :class:`RegionHead`.
    ``forward``: canvases ``(B, 1, 64, 64)`` → per head, in order, its logits ``(B, K)`` and its
    weight on every position ``(B, h, w)`` (:func:`position_weights`); then all the heads' maps
    stacked ``(B, heads, h, w)``.

    Args:
        heads: ``{name: trained RegionHead}``.
        train_features: the encoder's raw features of the training canvases ``(N, C, h, w)``.
        encoder: the frozen digit encoder (default:
            :func:`~visual_attention.labs.digits.load_digit_cnn`).
    """

    def __init__(
        self,
        heads: dict[str, RegionHead],
        train_features: torch.Tensor,
        encoder: nn.Module | None = None,
    ) -> None:
        super().__init__(heads, RegionHead, train_features, encoder)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        check_canvas("x", x, "(B, C, H, W)")
        f = self.standardized(self.encoder.feature_map(x))
        out, weights = [], []
        for head in self.heads:
            with record_attention(head) as maps:
                out.append(head(f))
            weights.append(_position_map(head, maps, *f.shape[-2:]))
            out.append(weights[-1])
        return (*out, torch.stack(weights, dim=1))


def model_explorer(
    model: PanelModel, examples: torch.Tensor, labels: torch.Tensor, display: int = 256
) -> ModelExplorer:
    """The reader draws digits and a flag (or picks a test canvas, moves, resizes, adds noise) and
    the page runs ``model``: each head's weights over the canvas with their share in each panel,
    and its probabilities.

    Args:
        model: the :class:`PanelModel` to export.
        examples: test canvases ``(N, 1, 64, 64)`` to start from.
        labels: their labels ``(N,)``.
        display: the drawing area's side in CSS pixels.
    """
    check_instance("model", model, PanelModel)
    n, _, h, w = check_canvas("examples", examples, "(N, C, H, W)")
    check_labels("labels", labels, n)
    outputs = [f"{kind} {name}" for name in model.names for kind in ("logits", "map")] + ["maps"]
    exported = export_model(model, examples[:1], outputs)
    k = CANVAS // PANEL
    panels = [
        (
            f"panel {p}",
            (p // k) * PANEL,
            (p % k) * PANEL,
            (p // k + 1) * PANEL,
            (p % k + 1) * PANEL,
        )
        for p in range(k * k)
    ]
    views = [probs(name, f"logits {name}") for name in model.names]
    views += [overlay(name, f"map {name}") for name in model.names]
    views.append(maps("every head's weights, by panel", "maps", model.names, regions=panels))
    return make_model_explorer(
        exported,
        examples,
        labelled(labels),
        views,
        display=display,
        brush=1.6,
        caption=f"Draw a digit in a panel and a small square (the flag) in the opposite corner of "
        f"its {PANEL} × {PANEL} panel, or pick a test canvas: both trained heads run in this "
        "page.",
    )
