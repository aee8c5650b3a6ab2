"""Local attention: each token attends only to the tokens of a window or a neighbourhood around it.

Global attention (:mod:`visual_attention.global_attention`) scores all ``N`` tokens against all
``N`` tokens: ``N²`` weights. Local attention keeps a fixed number ``K`` of keys per query, so the
cost is ``N·K``, linear in the number of tokens. Two ways of choosing the keys:

* **Windows** — Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted
  Windows", ICCV 2021. The grid is cut into non-overlapping ``M × M`` windows and attention runs
  inside each window (W-MSA), with a learned *relative position bias* ``B`` (Eq. 4):

      Attention(Q, K, V) = SoftMax(Q Kᵀ / √d + B) V,
      B ∈ R^{M² × M²} read from B̂ ∈ R^{(2M-1) × (2M-1)}

  Windows do not talk to each other, so every other block shifts the windows by ``⌊M/2⌋``
  (SW-MSA, Eq. 3). Swin implements the shift as a *cyclic* shift of the grid (``torch.roll``) plus
  a mask that stops tokens which were not neighbours before the roll from attending to each other.
* **Sliding neighbourhoods** — each token attends to the ``k × k`` tokens around it: Ramachandran
  et al., "Stand-Alone Self-Attention in Vision Models", NeurIPS 2019 (also Parmar et al., "Image
  Transformer", ICML 2018, for 1-d/2-d local blocks); here in the form of Hassani et al.,
  "Neighborhood Attention Transformer", CVPR 2023, where the neighbourhood of a token near the
  border is shifted inward so every query has exactly ``k²`` keys, with a relative position bias.

Masks follow the package convention: ``True`` = may attend (see :mod:`visual_attention.core`).
:class:`WindowAttention` and :class:`NeighborhoodAttention` are
:class:`~visual_attention.blocks.MultiHeadAttention` (its fused ``qkv`` and ``proj``) with their
own keys and a relative position bias.

Contents: :func:`window_partition`, :func:`window_reverse`, :func:`relative_position_index`,
:class:`WindowAttention`, :func:`shifted_window_mask`, :class:`ShiftedWindowAttention`,
:func:`neighborhood_index`, :class:`NeighborhoodAttention`, :func:`window_token_index` and
:func:`to_dense` (scatter local weights into an ``N × N`` matrix), :func:`score_entries` (cost).
The chapter's widget is in :mod:`visual_attention.labs.local_attention`.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from ._checks import (
    check_bool,
    check_bool_mask,
    check_choice,
    check_odd_int,
    check_positive_int,
    check_tensor,
    shape_str,
)
from .blocks import MultiHeadAttention, merge_heads
from .core import masked_softmax

__all__ = [
    "window_partition",
    "window_reverse",
    "relative_position_index",
    "WindowAttention",
    "shifted_window_mask",
    "ShiftedWindowAttention",
    "neighborhood_index",
    "NeighborhoodAttention",
    "window_token_index",
    "to_dense",
    "score_entries",
]


def _check_grid(name: str, x: torch.Tensor, window_size: int, **sizes: int) -> tuple[int, ...]:
    """Check a token grid ``(B, H, W, C)`` with ``H`` and ``W`` multiples of ``window_size``."""
    b, h, w, c = check_tensor(name, x, "(B, H, W, C)", **sizes)
    m = check_positive_int("window_size", window_size)
    if h % m or w % m:
        raise ValueError(
            f"H and W of {name} {shape_str(x)} (B, H, W, C) must be multiples of window_size={m}"
        )
    return b, h, w, c


def _check_shift(shift_size: int, window_size: int) -> int:
    """Return ``shift_size`` if it is an ``int`` in ``[0, window_size)``; else raise."""
    is_int = isinstance(shift_size, int) and not isinstance(shift_size, bool)
    if not is_int or not 0 <= shift_size < window_size:
        raise ValueError(
            f"shift_size must be an integer in [0, window_size={window_size}), got {shift_size!r}"
        )
    return shift_size


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """Cut a token grid into non-overlapping ``M × M`` windows (Swin's ``window_partition``).

    Args:
        x: ``(B, H, W, C)``; ``H`` and ``W`` must be multiples of ``M = window_size``.

    Returns:
        ``(B·nW, M, M, C)`` with ``nW = (H/M)·(W/M)``; windows of one image are consecutive, in
        row-major order of the windows.
    """
    _check_grid("x", x, window_size)
    m = window_size
    return rearrange(x, "b (nh m1) (nw m2) c -> (b nh nw) m1 m2 c", m1=m, m2=m)


def window_reverse(
    windows: torch.Tensor, window_size: int, height: int, width: int
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B·nW, M, M, C)`` → ``(B, H, W, C)``."""
    m = check_positive_int("window_size", window_size)
    check_tensor("windows", windows, "(B·nW, M, M, C)")
    if windows.shape[1:3] != (m, m):
        raise ValueError(
            f"windows must be (B·nW, {m}, {m}, C) for window_size={m}, got {shape_str(windows)}"
        )
    check_positive_int("height", height)
    check_positive_int("width", width)
    if height % m or width % m:
        raise ValueError(f"height={height} and width={width} must be multiples of window_size={m}")
    nh, nw = height // m, width // m
    if windows.shape[0] % (nh * nw):
        raise ValueError(
            f"windows {shape_str(windows)} holds {windows.shape[0]} windows, "
            f"not a multiple of nW={nh * nw}"
        )
    return rearrange(windows, "(b nh nw) m1 m2 c -> b (nh m1) (nw m2) c", nh=nh, nw=nw)


def relative_position_index(window_size: int) -> torch.Tensor:
    """Index into Swin's bias table for every pair of tokens of an ``M × M`` window (Swin Eq. 4).

    Token ``i`` at ``(y_i, x_i)`` and token ``j`` at ``(y_j, x_j)`` have relative position
    ``(y_i - y_j, x_i - x_j) ∈ [-M+1, M-1]²``; shifted to ``[0, 2M-2]²`` and read row-major it
    gives an index into the ``(2M-1)²`` rows of the table ``B̂``.

    Returns:
        ``(M², M²)`` int64 tensor with values in ``[0, (2M-1)² - 1]``.
    """
    m = check_positive_int("window_size", window_size)
    grid = torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij")
    coords = torch.stack(grid).flatten(1)  # (2, M²): (y, x) of every token
    rel = coords[:, :, None] - coords[:, None, :] + (m - 1)  # (2, M², M²) in [0, 2M-2]
    return rel[0] * (2 * m - 1) + rel[1]


class WindowAttention(MultiHeadAttention):
    """Window multi-head self-attention with relative position bias (Swin, Liu et al. 2021, Eq. 4).

    ``SoftMax(Q Kᵀ / √d + B) V`` inside each window of ``M × M`` tokens, where ``B[h, i, j] =
    B̂[h, index(i, j)]`` is read from a learned table of ``(2M-1)²`` biases per head
    (:func:`relative_position_index`), initialised as in the reference code (truncated normal,
    std 0.02). The projections are those of :class:`~visual_attention.blocks.MultiHeadAttention`.

    Args:
        dim: channels ``C`` (divisible by ``num_heads``).
        window_size: side ``M`` of a window.
        num_heads: number of heads ``h``.
        qkv_bias: learn a bias in the q/k/v projection.
        relative_position_bias: learn ``B̂`` (Swin); ``False`` gives plain attention inside
            windows.

    Shapes:
        ``forward(x, mask=None)`` with ``x`` ``(B·nW, M², C)`` (windows from
        :func:`window_partition`, flattened) and an optional boolean ``mask`` ``(nW, M², M²)``
        (``True`` = may attend; the same for every image of the batch) → ``(B·nW, M², C)``.
        Records the weights ``(B·nW, h, M², M²)``.
    """

    def __init__(
        self,
        dim: int,
        window_size: int,
        num_heads: int,
        qkv_bias: bool = True,
        relative_position_bias: bool = True,
    ) -> None:
        super().__init__(dim, num_heads, qkv_bias=qkv_bias)
        self.window_size = check_positive_int("window_size", window_size)
        if check_bool("relative_position_bias", relative_position_bias):
            table = torch.zeros((2 * window_size - 1) ** 2, num_heads)
            self.relative_position_bias_table = nn.Parameter(
                nn.init.trunc_normal_(table, std=0.02)
            )
        else:
            self.register_parameter("relative_position_bias_table", None)
        index = relative_position_index(window_size)
        self.register_buffer("relative_position_index", index, persistent=False)

    def relative_bias(self) -> torch.Tensor:
        """The bias ``B`` of Eq. 4 for one window, ``(h, M², M²)`` (zeros without a table)."""
        n = self.window_size**2
        if self.relative_position_bias_table is None:
            return self.qkv.weight.new_zeros(self.num_heads, n, n)
        table = self.relative_position_bias_table[self.relative_position_index.flatten()]
        return rearrange(table, "(i j) h -> h i j", i=n)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = self._window_mask(x, mask)  # (B·nW, 1, M², M²) or None
        q, k, v = rearrange(
            self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads
        )
        scores = q @ k.transpose(-2, -1) * self.scale + self.relative_bias()  # Q Kᵀ / √d + B
        weights = self.remember(masked_softmax(scores, dim=-1, mask=mask))  # (B·nW, h, M², M²)
        return self.proj(merge_heads(weights @ v))  # SoftMax(Q Kᵀ / √d + B) V, then W^O

    def _window_mask(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
        """Check ``x`` ``(B·nW, M², C)`` and ``mask`` ``(nW, M², M²)``; return the mask repeated
        for every image of the batch, ``(B·nW, 1, M², M²)``, or ``None``."""
        n = self.window_size**2
        windows, _, _ = check_tensor("x", x, "(B·nW, M², C)", **{"M²": n, "C": self.dim})
        if mask is None:
            return None
        check_bool_mask("mask", mask, layout=f"(nW, {n}, {n})")
        if mask.ndim != 3 or mask.shape[1:] != (n, n) or len(mask) == 0:
            raise ValueError(
                f"mask must be a boolean tensor (nW, {n}, {n}), got {shape_str(mask)}"
            )
        if windows % len(mask):
            raise ValueError(
                f"x has {windows} windows, not a multiple of the mask's nW={len(mask)}"
            )
        return mask.to(x.device).repeat(windows // len(mask), 1, 1)[:, None]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, window_size={self.window_size}"


def shifted_window_mask(
    height: int, width: int, window_size: int, shift_size: int
) -> torch.Tensor:
    """Which tokens may attend to which inside each window after Swin's cyclic shift (SW-MSA).

    The grid is rolled by ``-shift_size`` along both axes; the last ``shift_size`` rows (and
    columns) then sit next to the first ones although they were far apart. Label the grid by the
    regions ``[0, H-M), [H-M, H-s), [H-s, H)`` (rows) × the same for columns, as in the reference
    code; two tokens of a window may attend to each other iff they carry the same label.

    Args:
        height, width: grid size (multiples of ``window_size``).
        window_size: ``M``.
        shift_size: ``s`` with ``0 <= s < M`` (Swin uses ``M // 2``); ``s = 0`` allows everything.

    Returns:
        boolean ``(nW, M², M²)``, ``True`` = may attend.
    """
    m, s = _check_mask_args(height, width, window_size, shift_size)
    # [start-shifted-window-mask]
    labels = torch.zeros(1, height, width, 1)  # region label of every token of the rolled grid
    if s:
        cuts = (slice(0, -m), slice(-m, -s), slice(-s, None))  # rows (and columns) of the regions
        for label, (rows, cols) in enumerate((r, c) for r in cuts for c in cuts):
            labels[:, rows, cols, :] = label
    windows = window_partition(labels, m).flatten(1)  # (nW, M²)
    return windows[:, :, None] == windows[:, None, :]  # same region: may attend
    # [end-shifted-window-mask]


def _check_mask_args(height, width, window_size, shift_size) -> tuple[int, int]:
    """Validate the arguments of :func:`shifted_window_mask`; return ``(M, s)``."""
    m = check_positive_int("window_size", window_size)
    for name, value in (("height", height), ("width", width)):
        if check_positive_int(name, value) % m:
            raise ValueError(f"{name}={value} must be a multiple of window_size={m}")
    return m, _check_shift(shift_size, m)


class ShiftedWindowAttention(nn.Module):
    """(Shifted) window attention on a token grid: W-MSA (``shift_size=0``) or SW-MSA (Swin Eq. 3).

    Cyclic shift ``torch.roll(x, (-s, -s))`` → :func:`window_partition` → :class:`WindowAttention`
    with :func:`shifted_window_mask` → :func:`window_reverse` → roll back by ``(s, s)``.

    Args:
        dim, window_size, num_heads, qkv_bias, relative_position_bias: as
            :class:`WindowAttention`.
        shift_size: ``s`` in ``[0, window_size)``; Swin alternates 0 and ``window_size // 2``.

    Shapes:
        ``(B, H, W, C)`` → ``(B, H, W, C)``; ``H`` and ``W`` multiples of ``window_size``. The
        weights are recorded by the inner module ``attn`` as ``(B·nW, h, M², M²)`` (windows of the
        *shifted* grid; :func:`to_dense` maps them back to token pairs of the grid).
    """

    def __init__(
        self,
        dim: int,
        window_size: int,
        num_heads: int,
        shift_size: int = 0,
        qkv_bias: bool = True,
        relative_position_bias: bool = True,
    ) -> None:
        super().__init__()
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias, relative_position_bias)
        self.window_size, self.shift_size = window_size, _check_shift(shift_size, window_size)
        self._masks: dict[tuple[int, int], torch.Tensor] = {}

    def mask(self, height: int, width: int) -> torch.Tensor | None:
        """The SW-MSA mask for a grid (cached), or ``None`` without a shift."""
        if not self.shift_size:
            return None
        if (height, width) not in self._masks:
            mask = shifted_window_mask(height, width, self.window_size, self.shift_size)
            self._masks[height, width] = mask
        return self._masks[height, width]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w, _ = _check_grid("x", x, self.window_size, C=self.attn.dim)
        h, w = int(h), int(w)  # plain ints also when traced (the grid is fixed by the export)
        s, m = self.shift_size, self.window_size
        x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))  # cyclic shift (none for W-MSA)
        windows = window_partition(x, m).flatten(1, 2)  # (B·nW, M², C)
        windows = self.attn(windows, self.mask(h, w))  # attention inside each window (Eq. 4)
        x = window_reverse(windows.unflatten(1, (m, m)), m, h, w)  # (B, H, W, C)
        return torch.roll(x, shifts=(s, s), dims=(1, 2))  # undo the shift

    def extra_repr(self) -> str:
        return f"shift_size={self.shift_size}"


def window_token_index(
    height: int, width: int, window_size: int, shift_size: int = 0
) -> torch.Tensor:
    """Grid index ``row·W + col`` of every token of every (shifted) window: ``(nW, M²)`` int64.

    Window ``w``'s ``i``-th token in :class:`ShiftedWindowAttention` is the grid token
    ``window_token_index(...)[w, i]`` (the cyclic shift undone).
    """
    check_positive_int("height", height)
    check_positive_int("width", width)
    shift_size = _check_shift(shift_size, check_positive_int("window_size", window_size))
    ids = torch.arange(height * width, dtype=torch.float64).reshape(1, height, width, 1)
    ids = torch.roll(ids, shifts=(-shift_size, -shift_size), dims=(1, 2))
    return window_partition(ids, window_size).flatten(1).long()


def neighborhood_index(
    height: int, width: int, kernel_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k × k`` neighbourhood of every token, shifted inward at the borders (Hassani et al.).

    The neighbourhood of token ``(i, j)`` spans rows ``r0 … r0+k-1`` with
    ``r0 = clamp(i - ⌊k/2⌋, 0, H - k)`` (columns alike), so every token has exactly ``k²`` keys
    and, away from the border, sits at its centre.

    Returns:
        ``(index, offset)``: ``index`` ``(H·W, k²)`` int64 grid indices of the keys (row-major),
        and ``offset`` ``(H·W, k², 2)`` int64 relative positions ``(key row - i, key col - j)`` in
        ``[-(k-1), k-1]``.
    """
    k = check_odd_int("kernel_size", kernel_size)
    if check_positive_int("height", height) < k or check_positive_int("width", width) < k:
        raise ValueError(
            f"the grid ({height}, {width}) must be at least kernel_size={k} on each side"
        )
    rows, cols = torch.arange(height), torch.arange(width)
    r0 = (rows - k // 2).clamp(0, height - k)[:, None] + torch.arange(k)  # (H, k) key rows
    c0 = (cols - k // 2).clamp(0, width - k)[:, None] + torch.arange(k)  # (W, k) key columns
    key_r = r0[:, None, :, None].expand(height, width, k, k)
    key_c = c0[None, :, None, :].expand(height, width, k, k)
    index = (key_r * width + key_c).reshape(height * width, k * k)
    offset = torch.stack(
        [key_r - rows[:, None, None, None], key_c - cols[None, :, None, None]], dim=-1
    )
    return index, offset.reshape(height * width, k * k, 2)


class NeighborhoodAttention(MultiHeadAttention):
    """Sliding-neighbourhood multi-head self-attention (Hassani et al. 2023, Eq. 1-2).

    Query ``i`` attends to the ``k²`` keys of its neighbourhood ``ρ(i)``
    (:func:`neighborhood_index`; cf. Ramachandran et al. 2019):
    ``A_i = softmax(q_i K_{ρ(i)}ᵀ / √d + B_{i,ρ(i)})``, ``NA(x)_i = A_i V_{ρ(i)}``, with a learned
    relative position bias ``B`` read from a ``(h, 2k-1, 2k-1)`` table. Memory is ``O(N·k²)``. The
    projections are those of :class:`~visual_attention.blocks.MultiHeadAttention`.

    Args:
        dim: channels ``C`` (divisible by ``num_heads``).
        kernel_size: neighbourhood side ``k``.
        num_heads: number of heads ``h``.
        qkv_bias: learn a bias in the q/k/v projection.
        relative_position_bias: learn the bias table.

    Shapes:
        ``(B, H, W, C)`` → ``(B, H, W, C)`` with ``H, W >= k``. Records the weights
        ``(B, h, H·W, k²)``: row ``n`` is query ``n``'s weights over its neighbourhood, in the
        order of ``neighborhood_index(H, W, k)[0][n]`` (:func:`to_dense` scatters them to
        ``(B, h, N, N)``).
    """

    def __init__(
        self,
        dim: int,
        kernel_size: int = 7,
        num_heads: int = 1,
        qkv_bias: bool = True,
        relative_position_bias: bool = True,
    ) -> None:
        super().__init__(dim, num_heads, qkv_bias=qkv_bias)
        self.kernel_size = k = check_odd_int("kernel_size", kernel_size)
        if check_bool("relative_position_bias", relative_position_bias):
            table = torch.zeros(num_heads, 2 * k - 1, 2 * k - 1)
            self.rpb = nn.Parameter(nn.init.trunc_normal_(table, std=0.02))
        else:
            self.register_parameter("rpb", None)
        self._index: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        #: grids of at most this many tokens take :meth:`_dense_forward` (0: never)
        self.dense_tokens = 256

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w, _ = check_tensor("x", x, "(B, H, W, C)", C=self.dim)
        if h * w <= self.dense_tokens:
            return self._dense_forward(x)  # the same attention as an N × N masked one: faster
        index, offset = self._neighborhood(h, w, x.device)  # ρ(i): (N, k²) keys, (N, k², 2)
        q, k, v = rearrange(
            self.qkv(x), "b y x (three h d) -> three b h (y x) d", three=3, h=self.num_heads
        )
        k, v = k[:, :, index], v[:, :, index]  # K_ρ(i), V_ρ(i): (B, h, N, k², d)
        scores = torch.einsum("bhnd,bhnkd->bhnk", q, k) * self.scale + self.relative_bias(offset)
        weights = self.remember(masked_softmax(scores, dim=-1))  # A_i (Eq. 1): (B, h, N, k²)
        out = torch.einsum("bhnk,bhnkd->bhnd", weights, v)  # NA(x)_i = A_i V_ρ(i) (Eq. 2)
        return self.proj(rearrange(out, "b h (y x) d -> b y x (h d)", y=h))

    def _dense_forward(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` for a small grid: the scores of all ``N × N`` pairs, the bias
        scattered to the neighbourhood's pairs and every other pair masked, so the weights are
        those of the gathered form (zero outside ``ρ(i)``) at ``O(N²)`` memory; on a CPU this is
        faster for grids of up to a few hundred tokens. Records the weights ``(B, h, N, k²)`` in
        the order of :func:`neighborhood_index`, as :meth:`forward` does."""
        b, h, w, _ = x.shape
        index, offset = self._neighborhood(h, w, x.device)  # (N, k²), (N, k², 2)
        n, kk = index.shape
        q, k, v = rearrange(
            self.qkv(x), "b y x (three h d) -> three b h (y x) d", three=3, h=self.num_heads
        )
        allowed = torch.zeros(n, n, dtype=torch.bool, device=x.device).scatter_(1, index, True)
        scores = q @ k.transpose(-2, -1) * self.scale  # (B, h, N, N)
        if self.rpb is not None:
            where = index.expand(self.num_heads, n, kk)
            bias = scores.new_zeros(self.num_heads, n, n).scatter(
                2, where, self.relative_bias(offset)
            )
            scores = scores + bias
        weights = masked_softmax(scores, dim=-1, mask=allowed)  # zero outside ρ(i)
        if self.recording:
            self.remember(weights.gather(-1, index.expand(b, self.num_heads, n, kk)))
        return self.proj(rearrange(weights @ v, "b h (y x) d -> b y x (h d)", y=h))

    def relative_bias(self, offset: torch.Tensor) -> torch.Tensor | float:
        """``B_{i,ρ(i)}`` ``(h, N, k²)``, read from the table at each key's ``offset`` (0 without
        a table)."""
        if self.rpb is None:
            return 0.0
        r = self.kernel_size - 1
        return self.rpb[:, offset[..., 0] + r, offset[..., 1] + r]

    def _neighborhood(self, height: int, width: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`neighborhood_index` of a grid, cached."""
        if (height, width) not in self._index:
            self._index[height, width] = neighborhood_index(height, width, self.kernel_size)
        return tuple(t.to(device) for t in self._index[height, width])

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, kernel_size={self.kernel_size}"


def to_dense(weights: torch.Tensor, index: torch.Tensor, kind: str = "window") -> torch.Tensor:
    """Scatter local attention weights into the full ``N × N`` matrix of global attention.

    Args:
        weights: for ``kind="window"``, window weights ``(B·nW, h, M², M²)`` with ``index`` from
            :func:`window_token_index` ``(nW, M²)``; for ``kind="neighborhood"``, neighbourhood
            weights ``(B, h, N, k²)`` with ``index`` from :func:`neighborhood_index` ``(N, k²)``.
        index: grid index of every key, as above.
        kind: ``"window"`` or ``"neighborhood"``.

    Returns:
        ``(B, h, N, N)``: entry ``[b, j, n, m]`` is the weight query token ``n`` gives key token
        ``m`` (zero outside its window or neighbourhood).
    """
    _check_to_dense(weights, index, kind)
    if kind == "window":
        nw, m2 = index.shape
        w = rearrange(weights, "(b w) h i j -> b h w i j", w=nw)
        dense = weights.new_zeros(w.shape[0], w.shape[1], nw * m2, nw * m2)
        dense[:, :, index[:, :, None].expand(nw, m2, m2), index[:, None, :].expand(nw, m2, m2)] = w
        return dense
    n = index.shape[0]
    dense = weights.new_zeros(weights.shape[0], weights.shape[1], n, n)
    return dense.scatter_add(-1, index.expand(*weights.shape[:2], *index.shape), weights)


def _check_to_dense(weights: torch.Tensor, index: torch.Tensor, kind: str) -> None:
    """Validate the arguments of :func:`to_dense`."""
    check_choice("kind", kind, ("window", "neighborhood"))
    layout = "(B·nW, h, M², M²)" if kind == "window" else "(B, h, N, k²)"
    check_tensor("weights", weights, layout)
    if not isinstance(index, torch.Tensor) or index.dtype != torch.long or index.ndim != 2:
        got = getattr(index, "dtype", type(index).__name__)
        raise ValueError(f"index must be a 2-d int64 tensor, got {got}")
    if 0 in index.shape:
        raise ValueError(f"index must hold at least one row and key, got {shape_str(index)}")
    if index.shape[1] != weights.shape[-1]:
        raise ValueError(
            f"index {shape_str(index)} does not match weights {shape_str(weights)} "
            "(last dimension)"
        )
    rows, keys = index.shape
    if kind == "window" and (weights.shape[0] % rows or weights.shape[2] != keys):
        raise ValueError(
            f"window weights {shape_str(weights)} must be (B·{rows}, h, {keys}, {keys}) "
            f"for index {shape_str(index)}"
        )
    tokens = rows * keys if kind == "window" else rows
    if index.numel() and (index.min() < 0 or index.max() >= tokens):
        raise ValueError(
            f"index must hold token numbers in [0, {tokens}), got values from "
            f"{int(index.min())} to {int(index.max())}"
        )
    if kind == "neighborhood" and weights.shape[2] != rows:
        raise ValueError(
            f"weights {shape_str(weights)} must have N = {rows} queries (dimension 2) "
            f"for index {shape_str(index)}"
        )


def score_entries(
    height: int, width: int, kind: str = "global", size: int = 7, num_heads: int = 1
) -> int:
    """Number of attention weights one image needs: ``h·N²`` (global), ``h·N·M²`` (window),
    ``h·N·k²`` (neighbourhood)."""
    n = check_positive_int("height", height) * check_positive_int("width", width)
    check_choice("kind", kind, ("global", "window", "neighborhood"))
    check_positive_int("size", size)
    check_positive_int("num_heads", num_heads)
    return num_heads * n * (n if kind == "global" else size * size)
