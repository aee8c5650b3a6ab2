"""Spatial attention: *where* to look in a feature map.

* :class:`SpatialGate` — the spatial attention module of CBAM (Woo et al., "CBAM: Convolutional
  Block Attention Module", ECCV 2018, Eq. 3): the channel-wise average and maximum of the feature
  map, a ``k × k`` convolution and a sigmoid give a map ``M_s ∈ (0, 1)^{H×W}`` that is multiplied
  into every channel.
* :class:`QuerySpatialAttention` — soft attention over positions with one query per image (Xu et
  al., "Show, Attend and Tell", ICML 2015, Eq. 4-6; Jetley et al., "Learn to Pay Attention", ICLR
  2018, with a query from a global descriptor): weights that sum to 1 over the ``H·W`` positions
  and a context vector ``(B, C)``, usable as the attention-pooling head of a CNN.
* :class:`HardSpatialAttention` and :func:`reinforce_loss` — *hard* attention over positions
  (Mnih et al., "Recurrent Models of Visual Attention", NeurIPS 2014; the "hard" variant of Xu et
  al., Sec. 4.1): the same weights read as a distribution, one position *sampled* from it and its
  feature vector taken as the glimpse; the sample has no gradient, so the policy is trained with
  REINFORCE (Williams 1992) and a baseline.
* :func:`channel_pool`, :func:`attention_mass_in_box` and :func:`pointing_game` — the pooling step
  of CBAM, the "how much of the map lies on the object" measure used by the chapter, and the
  pointing game of Zhang et al. ("Top-down Neural Attention by Excitation Backprop", ECCV 2016):
  does the map's maximum fall on the object?

The two differ in kind: a gate scores each position *independently* (many positions can be on at
once, nothing is normalised), while query attention makes positions *compete* through a softmax.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import (
    check_bool,
    check_choice,
    check_floating,
    check_int_or_none,
    check_odd_int,
    check_positive_int,
    check_size2,
    check_tensor,
    shape_str,
)
from .blocks import BatchNorm2d
from .core import AttentionModule, query_attention

#: Values accepted by ``QuerySpatialAttention(query=...)``.
QUERIES = ("learned", "global")

__all__ = [
    "channel_pool",
    "SpatialGate",
    "QuerySpatialAttention",
    "HardSpatialAttention",
    "reinforce_loss",
    "attention_mass_in_box",
    "pointing_game",
]


def channel_pool(x: torch.Tensor) -> torch.Tensor:
    """Average and maximum over the channels at every position: CBAM's spatial descriptor.

    ``[AvgPool(F); MaxPool(F)]`` of Woo et al. (2018), Eq. 3, pooled along the channel axis.

    Args:
        x: feature map ``(B, C, H, W)``.

    Returns:
        ``(B, 2, H, W)``: channel 0 the mean over ``C``, channel 1 the maximum over ``C``.
    """
    if 0 in check_tensor("x", x, "(B, C, H, W)")[1:]:
        raise ValueError(f"x must have C, H and W of at least 1, got shape {shape_str(x)}")
    avg = x.mean(dim=1, keepdim=True)  # AvgPool over the channels: (B, 1, H, W)
    peak = x.amax(dim=1, keepdim=True)  # MaxPool over the channels: (B, 1, H, W)
    return torch.cat([avg, peak], dim=1)  # [AvgPool(F); MaxPool(F)], Eq. 3: (B, 2, H, W)


class SpatialGate(AttentionModule):
    """CBAM's spatial attention module (Woo et al., ECCV 2018, Eq. 3).

    ``M_s(F) = σ(BN(f^{k×k}([AvgPool(F); MaxPool(F)])))`` and the output is ``F ⊙ M_s(F)``, the map
    broadcast over the channels. As in the authors' reference code the ``2 → 1`` convolution has no
    bias and is followed by a one-channel BatchNorm (the reference code uses a BatchNorm momentum
    of 0.01; we keep PyTorch's default, 0.1, so that the running statistics settle in short
    trainings; it also concatenates max before mean, we follow the paper's order, mean then max).

    Records the spatial map ``(B, 1, H, W)``, values in ``(0, 1)``.

    Args:
        kernel_size: odd side ``k`` of the convolution (7 in the paper; padding ``k // 2`` keeps
            ``H × W``).
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.kernel_size = check_odd_int("kernel_size", kernel_size)
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = BatchNorm2d(1)

    # fmt: off
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, C, H, W)`` → ``x ⊙ M_s(x)``, same shape."""
        check_tensor("x", x, "(B, C, H, W)")
        pooled = channel_pool(x)                          # (B, 2, H, W): mean and max over C
        gate = torch.sigmoid(self.bn(self.conv(pooled)))  # M_s, Eq. 3: (B, 1, H, W), in (0, 1)
        return x * self.remember(gate)                    # broadcast over the C channels
    # fmt: on

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


class QuerySpatialAttention(AttentionModule):
    """Attention pooling: one query per image attends over the ``H·W`` positions of a feature map.

    Soft attention of Xu et al. (ICML 2015, Eq. 4-6), whose score is an MLP of the features and
    the query (additive attention), here with a scaled dot-product score instead:

    ``α_ij = softmax_ij(⟨q, k_ij⟩ / √D)``, ``c = Σ_ij α_ij x_ij``

    computed by :func:`visual_attention.core.query_attention`. The keys ``k_ij`` are the feature
    vectors ``x_ij`` themselves (``D = C``) or, with ``query_dim``, a ``1 × 1`` convolution of them
    to ``D`` dimensions; the values are always the features, so the context lives in the feature
    space.

    The query is either

    * ``"learned"``: one learned vector ``q ∈ R^D`` shared by all images ("what does a digit look
      like?"), or
    * ``"global"``: computed from the image's global average ``g = mean_ij x_ij`` as ``q = W g +
      b`` (the global descriptor as query, as in Jetley et al., "Learn to Pay Attention", ICLR
      2018).

    Both start at ``q = 0``: uniform weights, so the module begins as global average pooling and
    learns to depart from it.

    Records the weights ``(B, H, W)``, non-negative and summing to 1 over ``H, W``.

    Args:
        channels: ``C``, the channels of the input.
        query_dim: ``D``, the dimension of queries and keys; ``None`` means ``C`` and no key
            projection.
        query: ``"learned"`` or ``"global"``.

    Returns (forward):
        the context vector ``(B, C)``.
    """

    def __init__(
        self, channels: int, query_dim: int | None = None, query: str = "learned"
    ) -> None:
        super().__init__()
        check_positive_int("channels", channels)
        check_int_or_none("query_dim", query_dim)
        self.channels, self.query_mode = channels, check_choice("query", query, QUERIES)
        self.query_dim = channels if query_dim is None else query_dim
        self.key = nn.Identity() if query_dim is None else nn.Conv2d(channels, query_dim, 1)
        if query == "learned":
            self.query = nn.Parameter(torch.zeros(self.query_dim))
        else:
            self.query = nn.Linear(channels, self.query_dim)
            nn.init.zeros_(self.query.weight)
            nn.init.zeros_(self.query.bias)
        self.scale = self.query_dim**-0.5  # dot products of D-vectors grow like √D

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, C, H, W)`` → context ``(B, C)``."""
        check_tensor("x", x, "(B, C, H, W)", C=self.channels)
        q = self._query(x)  # (B, D): learned, or from the global descriptor
        weights, _ = query_attention(self.key(x), q, scale=self.scale)  # α_ij, Eq. 4-5: (B, H, W)
        return torch.einsum("bhw,bchw->bc", self.remember(weights), x)  # c = Σ α_ij x_ij, Eq. 6

    def _query(self, x: torch.Tensor) -> torch.Tensor:
        """The query ``q`` ``(B, D)``: the learned vector for every image, or ``W g + b``."""
        if self.query_mode == "learned":
            return self.query.expand(x.shape[0], -1)
        return self.query(x.mean(dim=(2, 3)))  # g = mean_ij x_ij, the global descriptor

    def extra_repr(self) -> str:
        return f"channels={self.channels}, query_dim={self.query_dim}, query={self.query_mode!r}"


class HardSpatialAttention(QuerySpatialAttention):
    """Hard attention: one position sampled from the attention weights, its features the glimpse.

    The weights are those of :class:`QuerySpatialAttention`, ``α_ij = softmax_ij(⟨q, k_ij⟩/√D)``,
    read as a policy ``π(l) = α_l`` over the ``H·W`` positions (Mnih et al., NeurIPS 2014, Sec. 3;
    Xu et al., ICML 2015, Sec. 4.1, "stochastic hard attention"). In training mode (or with
    ``sample=True``) one location ``l ~ π`` is drawn per image; in eval mode the most likely one is
    taken (the "greedy" policy at test time). The output is the feature vector ``x_l`` — not an
    average: ``E_l[x_l] = Σ α_ij x_ij`` is soft attention's context. With ``glimpses = k``,
    ``k`` locations are drawn independently (with replacement; in eval mode the ``k`` most likely
    ones) and the output is the mean of their feature vectors, a ``k``-sample estimate of soft
    attention's context.

    The draw has no gradient. The module keeps ``log_prob`` ``(B,)``, ``Σ_t log π(l_t)`` of the
    chosen locations (differentiable in the query and the keys), and ``location`` ``(B, k)``,
    their row-major indices, for :func:`reinforce_loss`.

    Records the weights ``(B, H, W)``, non-negative and summing to 1 over ``H, W``.

    Args:
        channels, query_dim, query: as :class:`QuerySpatialAttention`.
        sample: draw ``l ~ π`` in eval mode too.
        glimpses: locations ``k`` per image.

    Returns (forward):
        the glimpse ``(B, C)`` (the mean over the ``k`` glimpses).
    """

    def __init__(
        self,
        channels: int,
        query_dim: int | None = None,
        query: str = "learned",
        sample: bool = False,
        glimpses: int = 1,
    ) -> None:
        super().__init__(channels, query_dim, query)
        self.sample = check_bool("sample", sample)
        self.glimpses = check_positive_int("glimpses", glimpses)
        self.log_prob: torch.Tensor | None = None
        self.location: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, C, H, W)`` → glimpse ``x_l`` ``(B, C)``, ``l ~ π`` (or its mode)."""
        check_tensor("x", x, "(B, C, H, W)", C=self.channels)
        q = self._query(x)  # (B, D)
        scores = torch.einsum("bdhw,bd->bhw", self.key(x), q) * self.scale  # ⟨q, k_ij⟩ / √D
        log_pi = scores.flatten(1).log_softmax(dim=-1)  # log α: (B, H·W)
        self.remember(log_pi.exp().view_as(scores))  # α_ij, the policy
        k = self.glimpses
        if self.training or self.sample:
            with torch.no_grad():  # a sample: no gradient flows through l
                loc = torch.multinomial(log_pi.exp(), k, replacement=True)  # l_1..l_k ~ π: (B, k)
        else:
            loc = log_pi.topk(min(k, log_pi.shape[1]), dim=-1).indices  # the most likely ones
        self.location, self.log_prob = loc, log_pi.gather(1, loc).sum(-1)  # Σ_t log π(l_t): (B,)
        glimpses = x.flatten(2).gather(2, loc[:, None, :].expand(-1, x.shape[1], -1))  # (B, C, k)
        return glimpses.mean(-1)  # the mean of the glimpses' features


def reinforce_loss(
    log_prob: torch.Tensor, reward: torch.Tensor, baseline: bool = True
) -> torch.Tensor:
    """The REINFORCE surrogate of a sampled policy: ``−mean_b (r_b − b_b) · log π(l_b)``.

    Its gradient is the score-function estimate of ``−∇ E_l[r]`` (Williams 1992; Mnih et al.,
    NeurIPS 2014, Eq. 2): unbiased, whatever makes the reward (here: a correct classification).
    Subtracting a baseline that does not depend on the example's own draw keeps it unbiased and
    lowers its variance; the baseline here is the mean reward of the *other* examples of the batch
    (leave-one-out), no parameters. The reward carries no gradient.

    Args:
        log_prob: ``(B,)`` ``log π(l)`` of the sampled locations
            (:attr:`HardSpatialAttention.log_prob`).
        reward: ``(B,)`` rewards.
        baseline: subtract the leave-one-out baseline (needs ``B ≥ 2``); else ``b = 0``.

    Returns:
        the scalar surrogate loss (minimise it alongside the classification loss).
    """
    check_floating("log_prob", log_prob)
    (b,) = check_tensor("log_prob", log_prob, "(B,)")
    check_tensor("reward", reward, "(B,)", B=b)
    check_bool("baseline", baseline)
    if baseline and b < 2:
        raise ValueError(f"the leave-one-out baseline needs a batch of at least 2, got B = {b}")
    r = reward.detach().to(log_prob.dtype)
    base = (r.sum() - r) / (b - 1) if baseline else torch.zeros_like(r)  # b: the others' mean
    return -((r - base) * log_prob).mean()


def attention_mass_in_box(
    maps: torch.Tensor, boxes: torch.Tensor, canvas: int | tuple[int, int]
) -> torch.Tensor:
    """Fraction of a map's mass that falls inside a box of the input image.

    Each cell of an ``h × w`` map covers a ``H/h × W/w`` block of the ``H × W`` canvas (nearest
    upsampling; ``H`` and ``W`` must be multiples of ``h`` and ``w``); the map is normalised to sum
    1 and the mass of the pixels inside the box is summed. For a softmax map this is the attention
    weight on the object; for a gate it is the share of the gate's total opening. A uniform map
    scores the box's share of the canvas area.

    Args:
        maps: ``(B, h, w)`` or ``(B, 1, h, w)`` non-negative maps.
        boxes: ``(B, 4)`` integer ``(top, left, bottom, right)`` pixel bounds, bottom and right
            exclusive.
        canvas: ``H`` (square) or ``(H, W)``, the input image's size in pixels.

    Returns:
        ``(B,)`` fractions in ``[0, 1]`` (0 for an all-zero map).
    """
    check_floating("maps", maps)
    if maps.ndim == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    b, h, w = check_tensor("maps", maps, "(B, h, w)")
    _check_boxes(boxes, b)
    height, width = check_size2("canvas", canvas, square=True)
    if height % h or width % w:
        raise ValueError(
            f"the canvas ({height}, {width}) must be a multiple of the map's (h, w) = ({h}, {w})"
        )
    fine = maps.repeat_interleave(height // h, dim=1).repeat_interleave(width // w, dim=2)
    rows = torch.arange(height, device=maps.device)[None, :, None]  # (1, H, 1)
    cols = torch.arange(width, device=maps.device)[None, None, :]  # (1, 1, W)
    top, left, bottom, right = (boxes[:, i, None, None] for i in range(4))
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)  # (B, H, W)
    total = fine.sum(dim=(1, 2))
    return (fine * inside).sum(dim=(1, 2)) / torch.where(total > 0, total, torch.ones_like(total))


def _check_boxes(boxes: object, batch: int) -> None:
    """Raise ``ValueError`` unless ``boxes`` is an integer tensor ``(B, 4)`` with ``B = batch``."""
    ok = isinstance(boxes, torch.Tensor) and not boxes.is_floating_point()
    ok = ok and boxes.dtype != torch.bool and not boxes.is_complex()
    if not ok or boxes.ndim != 2 or boxes.shape[1] != 4:
        got = shape_str(boxes) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise ValueError(
            f"boxes must be an integer tensor (B, 4) of (top, left, bottom, right), got {got}"
        )
    if boxes.shape[0] != batch:
        raise ValueError(
            f"boxes {shape_str(boxes)} must have the same batch size B = {batch} as the maps"
        )


def pointing_game(
    maps: torch.Tensor, boxes: torch.Tensor, canvas: int | tuple[int, int]
) -> torch.Tensor:
    """Whether each map's maximum falls inside the object's box: a hit of the pointing game.

    Zhang et al. (ECCV 2016, Sec. 4.1) score a map by where its single highest point lies; here
    the point is the centre pixel of the arg-max cell of an ``h × w`` map over an ``H × W``
    canvas (each cell covers ``H/h × W/w`` pixels; the first maximum in row-major order on ties),
    and the paper's 15-pixel tolerance is not used. A uniform map points at its first cell.

    Args:
        maps: ``(B, h, w)`` or ``(B, 1, h, w)`` maps.
        boxes: ``(B, 4)`` integer ``(top, left, bottom, right)`` pixel bounds, bottom and right
            exclusive.
        canvas: ``H`` (square) or ``(H, W)``, a multiple of the map's size.

    Returns:
        ``(B,)`` booleans: hits.
    """
    check_floating("maps", maps)
    if maps.ndim == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    b, h, w = check_tensor("maps", maps, "(B, h, w)")
    _check_boxes(boxes, b)
    height, width = check_size2("canvas", canvas, square=True)
    if height % h or width % w:
        raise ValueError(
            f"the canvas ({height}, {width}) must be a multiple of the map's (h, w) = ({h}, {w})"
        )
    peak = maps.flatten(1).argmax(dim=1)  # the highest cell, row-major: (B,)
    row = (peak // w) * (height // h) + (height // h) // 2  # its centre pixel
    col = (peak % w) * (width // w) + (width // w) // 2
    top, left, bottom, right = boxes.unbind(dim=1)
    return (row >= top) & (row < bottom) & (col >= left) & (col < right)
