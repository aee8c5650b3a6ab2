"""Local attention: each token attends only to the tokens of a window or a neighbourhood around it.

Global attention (:mod:`visual_attention.global_attention`) scores all ``N`` tokens against all
``N`` tokens: ``N²`` weights. Local attention keeps a fixed number ``K`` of keys per query, so the
cost is ``N·K``, linear in the number of tokens. Two ways of choosing the keys:

* **Windows** — Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted
  Windows", ICCV 2021. The grid is cut into non-overlapping ``M × M`` windows and attention runs
  inside each window (W-MSA), with a learned *relative position bias* ``B`` (Eq. 4):

      Attention(Q, K, V) = SoftMax(Q Kᵀ / √d + B) V,     B ∈ R^{M² × M²} read from B̂ ∈ R^{(2M-1) × (2M-1)}

  Windows do not talk to each other, so every other block shifts the windows by ``⌊M/2⌋`` (SW-MSA,
  Eq. 3). Swin implements the shift as a *cyclic* shift of the grid (``torch.roll``) plus a mask that
  stops tokens which were not neighbours before the roll from attending to each other.
* **Sliding neighbourhoods** — each token attends to the ``k × k`` tokens around it: Ramachandran et
  al., "Stand-Alone Self-Attention in Vision Models", NeurIPS 2019 (also Parmar et al., "Image
  Transformer", ICML 2018, for 1-d/2-d local blocks); here in the form of Hassani et al.,
  "Neighborhood Attention Transformer", CVPR 2023, where the neighbourhood of a token near the border
  is shifted inward so every query has exactly ``k²`` keys, with a relative position bias.

Masks follow the package convention: ``True`` = may attend (see :mod:`visual_attention.core`).

Contents: :func:`window_partition`, :func:`window_reverse`, :func:`relative_position_index`,
:class:`WindowAttention`, :func:`shifted_window_mask`, :class:`ShiftedWindowAttention`,
:func:`neighborhood_index`, :class:`NeighborhoodAttention`, :func:`window_token_index` and
:func:`to_dense` (scatter local weights into an ``N × N`` matrix), :func:`score_entries` and
:func:`peak_memory` (cost), and :func:`explorer` (the chapter's widget).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from ._checks import check_floating, check_positive_int, check_rank, shape_str
from .core import AttentionModule, masked_softmax

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


def _check_grid(name: str, x: torch.Tensor, window_size: int) -> tuple[int, int, int, int]:
    check_floating(name, x)
    check_rank(name, x, exactly=4, expected="(B, H, W, C)")
    check_positive_int("window_size", window_size)
    b, h, w, c = x.shape
    if h % window_size or w % window_size:
        raise ValueError(f"H and W of {name} {shape_str(x)} (B, H, W, C) must be multiples of window_size={window_size}")
    return b, h, w, c


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


def window_reverse(windows: torch.Tensor, window_size: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B·nW, M, M, C)`` → ``(B, H, W, C)``."""
    check_floating("windows", windows)
    check_rank("windows", windows, exactly=4, expected="(B·nW, M, M, C)")
    m = check_positive_int("window_size", window_size)
    if windows.shape[1:3] != (m, m):
        raise ValueError(f"windows must be (B·nW, {m}, {m}, C) for window_size={m}, got {shape_str(windows)}")
    if height % m or width % m:
        raise ValueError(f"height={height} and width={width} must be multiples of window_size={m}")
    nh, nw = height // m, width // m
    if windows.shape[0] % (nh * nw):
        raise ValueError(f"{shape_str(windows)} holds {windows.shape[0]} windows, not a multiple of nW={nh * nw}")
    return rearrange(windows, "(b nh nw) m1 m2 c -> b (nh m1) (nw m2) c", nh=nh, nw=nw)


def relative_position_index(window_size: int) -> torch.Tensor:
    """Index into Swin's bias table for every pair of tokens of an ``M × M`` window (Swin Eq. 4).

    Token ``i`` at ``(y_i, x_i)`` and token ``j`` at ``(y_j, x_j)`` have relative position
    ``(y_i - y_j, x_i - x_j) ∈ [-M+1, M-1]²``; shifted to ``[0, 2M-2]²`` and read row-major it gives an
    index into the ``(2M-1)²`` rows of the table ``B̂``.

    Returns:
        ``(M², M²)`` int64 tensor with values in ``[0, (2M-1)² - 1]``.
    """
    m = check_positive_int("window_size", window_size)
    coords = torch.stack(torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij")).flatten(1)  # (2, M²)
    rel = (coords[:, :, None] - coords[:, None, :]) + (m - 1)                                           # (2, M², M²)
    return rel[0] * (2 * m - 1) + rel[1]


class WindowAttention(AttentionModule):
    """Window multi-head self-attention with relative position bias (Swin, Liu et al. 2021, Eq. 4).

    ``SoftMax(Q Kᵀ / √d + B) V`` inside each window of ``M × M`` tokens, where ``B[h, i, j] =
    B̂[h, index(i, j)]`` is read from a learned table of ``(2M-1)²`` biases per head
    (:func:`relative_position_index`), initialised as in the reference code (truncated normal, std 0.02).

    Args:
        dim: channels ``C`` (divisible by ``num_heads``).
        window_size: side ``M`` of a window.
        num_heads: number of heads ``h``.
        qkv_bias: learn a bias in the q/k/v projection.
        relative_position_bias: learn ``B̂`` (Swin); ``False`` gives plain attention inside windows.

    Shapes:
        ``forward(x, mask=None)`` with ``x`` ``(B·nW, M², C)`` (windows from :func:`window_partition`,
        flattened) and an optional boolean ``mask`` ``(nW, M², M²)`` (``True`` = may attend; the same
        for every image of the batch) → ``(B·nW, M², C)``. Records the weights ``(B·nW, h, M², M²)``.
    """

    def __init__(
        self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True, relative_position_bias: bool = True
    ) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("window_size", window_size), ("num_heads", num_heads)):
            check_positive_int(name, value)
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.scale = (dim // num_heads) ** -0.5
        if relative_position_bias:
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        else:
            self.register_parameter("relative_position_bias_table", None)
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def relative_bias(self) -> torch.Tensor:
        """The bias ``B`` of Eq. 4 for one window, ``(h, M², M²)`` (zeros without a table)."""
        n = self.window_size**2
        if self.relative_position_bias_table is None:
            return torch.zeros(self.num_heads, n, n, dtype=self.qkv.weight.dtype, device=self.qkv.weight.device)
        return rearrange(self.relative_position_bias_table[self.relative_position_index.flatten()],
                         "(i j) h -> h i j", i=n)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        check_floating("x", x)
        check_rank("x", x, exactly=3, expected="(B·nW, M², C)")
        n = self.window_size**2
        if x.shape[1:] != (n, self.dim):
            raise ValueError(f"x must be (B·nW, {n}, {self.dim}) for window_size={self.window_size}, got {shape_str(x)}")
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        scores = (q * self.scale) @ k.transpose(-2, -1) + self.relative_bias()     # (B·nW, h, M², M²)
        if mask is None:
            weights = masked_softmax(scores, dim=-1)
        else:
            if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.ndim != 3 or mask.shape[1:] != (n, n):
                got = shape_str(mask) if isinstance(mask, torch.Tensor) else type(mask).__name__
                raise ValueError(f"mask must be a boolean (nW, {n}, {n}) tensor, got {got}")
            nw = mask.shape[0]
            if x.shape[0] % nw:
                raise ValueError(f"x has {x.shape[0]} windows, not a multiple of the mask's nW={nw}")
            scores = rearrange(scores, "(b w) h i j -> b w h i j", w=nw)
            weights = masked_softmax(scores, dim=-1, mask=mask[None, :, None].expand_as(scores))
            weights = rearrange(weights, "b w h i j -> (b w) h i j")
        self.remember(weights)
        return self.proj(rearrange(weights @ v, "b h n d -> b n (h d)"))


def shifted_window_mask(height: int, width: int, window_size: int, shift_size: int) -> torch.Tensor:
    """Which tokens may attend to which inside each window after Swin's cyclic shift (SW-MSA).

    The grid is rolled by ``-shift_size`` along both axes; the last ``shift_size`` rows (and columns)
    then sit next to the first ones although they were far apart. Label the grid by the regions
    ``[0, H-M), [H-M, H-s), [H-s, H)`` (rows) × the same for columns, as in the reference code; two
    tokens of a window may attend to each other iff they carry the same label.

    Args:
        height, width: grid size (multiples of ``window_size``).
        window_size: ``M``.
        shift_size: ``s`` with ``0 <= s < M`` (Swin uses ``M // 2``); ``s = 0`` allows everything.

    Returns:
        boolean ``(nW, M², M²)``, ``True`` = may attend.
    """
    m = check_positive_int("window_size", window_size)
    if isinstance(shift_size, bool) or not isinstance(shift_size, int) or not 0 <= shift_size < m:
        raise ValueError(f"shift_size must be an integer in [0, window_size={m}), got {shift_size!r}")
    for name, v in (("height", height), ("width", width)):
        if check_positive_int(name, v) % m:
            raise ValueError(f"{name}={v} must be a multiple of window_size={m}")
    labels = torch.zeros(1, height, width, 1)
    if shift_size:
        cuts = (slice(0, -m), slice(-m, -shift_size), slice(-shift_size, None))
        count = 0
        for hs in cuts:
            for ws in cuts:
                labels[:, hs, ws, :] = count
                count += 1
    win = window_partition(labels, m).flatten(1)          # (nW, M²)
    return win[:, :, None] == win[:, None, :]


class ShiftedWindowAttention(nn.Module):
    """(Shifted) window attention on a token grid: W-MSA (``shift_size=0``) or SW-MSA (Swin Eq. 3).

    Cyclic shift ``torch.roll(x, (-s, -s))`` → :func:`window_partition` → :class:`WindowAttention`
    with :func:`shifted_window_mask` → :func:`window_reverse` → roll back by ``(s, s)``.

    Args:
        dim, window_size, num_heads, qkv_bias, relative_position_bias: as :class:`WindowAttention`.
        shift_size: ``s`` in ``[0, window_size)``; Swin alternates 0 and ``window_size // 2``.

    Shapes:
        ``(B, H, W, C)`` → ``(B, H, W, C)``; ``H`` and ``W`` multiples of ``window_size``. The weights are
        recorded by the inner module ``attn`` as ``(B·nW, h, M², M²)`` (windows of the *shifted* grid;
        :func:`to_dense` maps them back to token pairs of the grid).
    """

    def __init__(
        self, dim: int, window_size: int, num_heads: int, shift_size: int = 0,
        qkv_bias: bool = True, relative_position_bias: bool = True,
    ) -> None:
        super().__init__()
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias, relative_position_bias)
        if isinstance(shift_size, bool) or not isinstance(shift_size, int) or not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size must be an integer in [0, window_size={window_size}), got {shift_size!r}")
        self.window_size, self.shift_size = window_size, shift_size
        self._masks: dict[tuple[int, int], torch.Tensor] = {}

    def mask(self, height: int, width: int) -> torch.Tensor | None:
        """The SW-MSA mask for a grid (cached), or ``None`` without a shift."""
        if not self.shift_size:
            return None
        if (height, width) not in self._masks:
            self._masks[height, width] = shifted_window_mask(height, width, self.window_size, self.shift_size)
        return self._masks[height, width]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = _check_grid("x", x, self.window_size)
        s, m = self.shift_size, self.window_size
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        windows = window_partition(x, m).flatten(1, 2)                     # (B·nW, M², C)
        mask = self.mask(h, w)
        out = self.attn(windows, mask.to(x.device) if mask is not None else None)
        x = window_reverse(out.unflatten(1, (m, m)), m, h, w)
        return torch.roll(x, shifts=(s, s), dims=(1, 2)) if s else x


def window_token_index(height: int, width: int, window_size: int, shift_size: int = 0) -> torch.Tensor:
    """Grid index ``row·W + col`` of every token of every (shifted) window: ``(nW, M²)`` int64.

    Window ``w``'s ``i``-th token in :class:`ShiftedWindowAttention` is the grid token
    ``window_token_index(...)[w, i]`` (the cyclic shift undone).
    """
    ids = torch.arange(height * width, dtype=torch.float64).reshape(1, height, width, 1)
    if shift_size:
        ids = torch.roll(ids, shifts=(-shift_size, -shift_size), dims=(1, 2))
    return window_partition(ids, window_size).flatten(1).long()


def neighborhood_index(height: int, width: int, kernel_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k × k`` neighbourhood of every token, shifted inward at the borders (Hassani et al. 2023).

    The neighbourhood of token ``(i, j)`` spans rows ``r0 … r0+k-1`` with
    ``r0 = clamp(i - ⌊k/2⌋, 0, H - k)`` (columns alike), so every token has exactly ``k²`` keys and,
    away from the border, sits at its centre.

    Returns:
        ``(index, offset)``: ``index`` ``(H·W, k²)`` int64 grid indices of the keys (row-major), and
        ``offset`` ``(H·W, k², 2)`` int64 relative positions ``(key row - i, key col - j)`` in
        ``[-(k-1), k-1]``.
    """
    k = check_positive_int("kernel_size", kernel_size)
    if check_positive_int("height", height) < k or check_positive_int("width", width) < k:
        raise ValueError(f"the grid ({height}, {width}) must be at least kernel_size={k} on each side")
    rows, cols = torch.arange(height), torch.arange(width)
    r0 = (rows - k // 2).clamp(0, height - k)[:, None] + torch.arange(k)   # (H, k) key rows
    c0 = (cols - k // 2).clamp(0, width - k)[:, None] + torch.arange(k)    # (W, k) key columns
    key_r = r0[:, None, :, None].expand(height, width, k, k)
    key_c = c0[None, :, None, :].expand(height, width, k, k)
    index = (key_r * width + key_c).reshape(height * width, k * k)
    offset = torch.stack([key_r - rows[:, None, None, None], key_c - cols[None, :, None, None]], dim=-1)
    return index, offset.reshape(height * width, k * k, 2)


class NeighborhoodAttention(AttentionModule):
    """Sliding-neighbourhood multi-head self-attention (Hassani et al. 2023, Eq. 1-2; cf. Ramachandran et al. 2019).

    Query ``i`` attends to the ``k²`` keys of its neighbourhood ``ρ(i)`` (:func:`neighborhood_index`):
    ``A_i = softmax(q_i K_{ρ(i)}ᵀ / √d + B_{i,ρ(i)})``, ``NA(x)_i = A_i V_{ρ(i)}``, with a learned
    relative position bias ``B`` read from a ``(h, 2k-1, 2k-1)`` table. Memory is ``O(N·k²)``.

    Args:
        dim: channels ``C`` (divisible by ``num_heads``).
        kernel_size: neighbourhood side ``k``.
        num_heads: number of heads ``h``.
        qkv_bias: learn a bias in the q/k/v projection.
        relative_position_bias: learn the bias table.

    Shapes:
        ``(B, H, W, C)`` → ``(B, H, W, C)`` with ``H, W >= k``. Records the weights ``(B, h, H·W, k²)``:
        row ``n`` is query ``n``'s weights over its neighbourhood, in the order of
        ``neighborhood_index(H, W, k)[0][n]`` (:func:`to_dense` scatters them to ``(B, h, N, N)``).
    """

    def __init__(
        self, dim: int, kernel_size: int = 7, num_heads: int = 1, qkv_bias: bool = True, relative_position_bias: bool = True
    ) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("kernel_size", kernel_size), ("num_heads", num_heads)):
            check_positive_int(name, value)
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.dim, self.kernel_size, self.num_heads = dim, kernel_size, num_heads
        self.scale = (dim // num_heads) ** -0.5
        if relative_position_bias:
            self.rpb = nn.Parameter(torch.zeros(num_heads, 2 * kernel_size - 1, 2 * kernel_size - 1))
            nn.init.trunc_normal_(self.rpb, std=0.02)
        else:
            self.register_parameter("rpb", None)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self._index: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_floating("x", x)
        check_rank("x", x, exactly=4, expected="(B, H, W, C)")
        b, h, w, c = x.shape
        if c != self.dim:
            raise ValueError(f"x must have C = {self.dim} channels (last dimension), got shape {shape_str(x)}")
        if (h, w) not in self._index:
            self._index[h, w] = neighborhood_index(h, w, self.kernel_size)
        index, offset = (t.to(x.device) for t in self._index[h, w])
        q, k, v = rearrange(self.qkv(x), "b y x (three h d) -> three b h (y x) d", three=3, h=self.num_heads)
        k, v = k[:, :, index], v[:, :, index]                                  # (B, h, N, k², d)
        scores = torch.einsum("bhnd,bhnkd->bhnk", q * self.scale, k)           # (B, h, N, k²)
        if self.rpb is not None:
            r = self.kernel_size - 1
            scores = scores + self.rpb[:, offset[..., 0] + r, offset[..., 1] + r]
        weights = self.remember(masked_softmax(scores, dim=-1))
        out = torch.einsum("bhnk,bhnkd->bhnd", weights, v)
        return self.proj(rearrange(out, "b h (y x) d -> b y x (h d)", y=h))


def to_dense(weights: torch.Tensor, index: torch.Tensor, kind: str = "window") -> torch.Tensor:
    """Scatter local attention weights into the full ``N × N`` matrix of global attention.

    Args:
        weights: for ``kind="window"``, window weights ``(B·nW, h, M², M²)`` with ``index`` from
            :func:`window_token_index` ``(nW, M²)``; for ``kind="neighborhood"``, neighbourhood weights
            ``(B, h, N, k²)`` with ``index`` from :func:`neighborhood_index` ``(N, k²)``.
        index: grid index of every key, as above.
        kind: ``"window"`` or ``"neighborhood"``.

    Returns:
        ``(B, h, N, N)``: entry ``[b, j, n, m]`` is the weight query token ``n`` gives key token ``m``
        (zero outside its window or neighbourhood).
    """
    check_floating("weights", weights)
    check_rank("weights", weights, exactly=4, expected="(B·nW, h, M², M²) or (B, h, N, k²)")
    if not isinstance(index, torch.Tensor) or index.dtype != torch.long or index.ndim != 2:
        raise ValueError(f"index must be a 2-d int64 tensor, got {getattr(index, 'dtype', type(index).__name__)}")
    if index.shape[1] != weights.shape[-1]:
        raise ValueError(f"index {shape_str(index)} does not match weights {shape_str(weights)} (last dimension)")
    if kind == "window":
        nw, m2 = index.shape
        if weights.shape[0] % nw or weights.shape[2] != m2:
            raise ValueError(f"window weights {shape_str(weights)} must be (B·{nw}, h, {m2}, {m2}) for index {shape_str(index)}")
        w = rearrange(weights, "(b w) h i j -> b h w i j", w=nw)
        dense = weights.new_zeros(w.shape[0], w.shape[1], nw * m2, nw * m2)
        dense[:, :, index[:, :, None].expand(nw, m2, m2), index[:, None, :].expand(nw, m2, m2)] = w
        return dense
    if kind == "neighborhood":
        n = index.shape[0]
        if weights.shape[2] != n:
            raise ValueError(f"weights {shape_str(weights)} must have N = {n} queries (dimension 2) for index {shape_str(index)}")
        dense = weights.new_zeros(weights.shape[0], weights.shape[1], n, n)
        return dense.scatter_add(-1, index.expand(*weights.shape[:2], *index.shape), weights)
    raise ValueError(f"kind must be 'window' or 'neighborhood', got {kind!r}")


def score_entries(height: int, width: int, kind: str = "global", size: int = 7, num_heads: int = 1) -> int:
    """Number of attention weights one image needs: ``h·N²`` (global), ``h·N·M²`` (window), ``h·N·k²`` (neighbourhood)."""
    n = check_positive_int("height", height) * check_positive_int("width", width)
    keys = {"global": n, "window": size * size, "neighborhood": size * size}
    if kind not in keys:
        raise ValueError(f"kind must be one of {sorted(keys)}, got {kind!r}")
    return num_heads * n * keys[kind]
