"""The Transformer kit, written once: the parts every chapter builds its networks from.

* :func:`split_heads`, :func:`merge_heads` — ``(B, N, h·d) ↔ (B, h, N, d)``.
* :class:`MultiHeadAttention` — Vaswani et al., "Attention Is All You Need", NeurIPS 2017,
  Sec. 3.2.2: ``MultiHead(X) = Concat(head_1, …, head_h) W^O`` with
  ``head_i = softmax(X W_i^Q (X W_i^K)ᵀ / √d) X W_i^V`` and ``d = dim / h``; one fused ``qkv``
  projection as in timm and ViT's Eq. 5-8. Equal to :class:`torch.nn.MultiheadAttention` with the
  same weights (:meth:`MultiHeadAttention.load_torch_weights`).
* :class:`Mlp` — the position-wise feed-forward network: Linear, GELU, Linear (ViT Eq. 3).
* :class:`PreNormBlock` — ``x + attn(LN(x))`` then ``x + MLP(LN(x))`` (ViT Eq. 2-3, Swin Eq. 3),
  for any attention module.
* :class:`PatchEmbed` — cut an image into ``p × p`` patches and embed each linearly (ViT Eq. 1),
  with an optional convolutional stem (Xiao et al., "Early Convolutions Help Transformers See
  Better", NeurIPS 2021) and an optional LayerNorm (Swin Sec. 3.1).
* :func:`conv_bn_act` — convolution, batch norm and ReLU, the unit of every small CNN in the book;
  :class:`BatchNorm1d` and :class:`BatchNorm2d` — PyTorch's batch norms, which also take one value
  per channel in training mode (a batch of one): the package's networks use them.
* :class:`AttentionPooling` — additive attention pooling with a learned context vector (Bahdanau et
  al., ICLR 2015; Yang et al., "Hierarchical Attention Networks", NAACL 2016, Eq. 5-7; the
  attention unit of Long et al., "Attention Clusters", CVPR 2018, Eq. 2-3):
  ``α = softmax(w₂ᵀ tanh(W₁ h + b₁))``, ``s = Σ α_t h_t``.
* :class:`CrossAttention` — the encoder-decoder attention of Vaswani et al. 2017 (Sec. 3.2.3):
  queries from one sequence, keys and values from another (the encoder's memory), with the heads,
  scale and masks of :class:`MultiHeadAttention`; :class:`DecoderBlock` — a pre-norm decoder
  layer: causal self-attention, cross-attention to the memory, MLP.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from ._checks import (
    check_bool,
    check_bool_mask,
    check_callable,
    check_int_or_none,
    check_module,
    check_positive_int,
    check_positive_number,
    check_scale,
    check_tensor,
)
from .core import (
    AttentionModule,
    _fused_context,
    masked_softmax,
    scaled_dot_product_attention,
)

__all__ = [
    "split_heads",
    "merge_heads",
    "MultiHeadAttention",
    "Mlp",
    "PreNormBlock",
    "PatchEmbed",
    "BatchNorm1d",
    "BatchNorm2d",
    "conv_bn_act",
    "AttentionPooling",
    "CrossAttention",
    "DecoderBlock",
]


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(B, N, h·d) → (B, h, N, d)``: head ``i`` gets features ``i·d … (i+1)·d − 1``."""
    check_tensor("x", x, "(B, N, dim)")
    check_positive_int("num_heads", num_heads)
    if x.shape[-1] % num_heads:
        raise ValueError(
            f"dim = {x.shape[-1]} of x {tuple(x.shape)} is not divisible by num_heads = "
            f"{num_heads}"
        )
    return rearrange(x, "b n (h d) -> b h n d", h=num_heads)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, h, N, d) → (B, N, h·d)``, the inverse of :func:`split_heads` (the "Concat")."""
    check_tensor("x", x, "(B, h, N, d)")
    return rearrange(x, "b h n d -> b n (h d)")


def _allowed_mask(
    mask, key_mask, scores: tuple[int, int, int, int], key_layout: str, layout: str
) -> torch.Tensor | None:
    """Check ``mask`` (broadcastable to ``scores = (B, h, N, M)``) and ``key_mask`` ``(B, M)``;
    return ``mask & key_mask`` as one boolean mask broadcastable to the scores, or ``None``."""
    b, _, _, m = scores
    if key_mask is not None:
        check_bool_mask("key_mask", key_mask, shape=(b, m), layout=key_layout)
        key_mask = key_mask[:, None, None, :]  # (B, 1, 1, M)
    if mask is not None:
        check_bool_mask("mask", mask, broadcast_to=scores, layout=layout)
        if mask.dim() < 2:  # a scalar or a row: at least (N, M) for the fused kernel
            mask = mask.reshape((1,) * (2 - mask.dim()) + tuple(mask.shape))
    if mask is None:
        return key_mask
    return mask if key_mask is None else mask & key_mask


class MultiHeadAttention(AttentionModule):
    """Multi-head scaled dot-product self-attention (Vaswani et al. 2017, Sec. 3.2.2).

    ``q, k, v = x W_qkv`` (one ``dim → 3·dim`` projection), each split into ``h`` heads of
    ``d = dim / h`` features; ``head_i = softmax(q_i k_iᵀ · scale) v_i`` with ``scale = 1/√d``;
    the heads are concatenated and projected by ``W^O`` (``proj``). The ``h`` heads of size
    ``dim / h`` cost as much as one head of size ``dim``, and each has its own attention pattern.

    Args:
        dim: token size ``D`` (input and output); a multiple of ``num_heads``.
        num_heads: ``h``.
        qkv_bias: a bias in the ``qkv`` projection (ViT and Swin have one).
        proj_bias: a bias in the output projection.
        scale: multiplier of the scores; ``None`` means ``d ** -0.5``.

    Shapes:
        ``forward(x, mask=None, key_mask=None, return_weights=False)``: tokens ``(B, N, D)``;
        ``mask`` boolean, broadcastable to ``(B, h, N, N)``, ``True`` = may attend; ``key_mask``
        boolean ``(B, N)``, ``False`` = a padding token nobody attends to. Returns ``(B, N, D)``,
        or ``(out, weights)`` with ``return_weights=True``. Records the weights ``(B, h, N, N)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        check_positive_int("num_heads", num_heads)
        check_bool("qkv_bias", qkv_bias)
        check_bool("proj_bias", proj_bias)
        check_scale("scale", scale)
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.scale = self.head_dim**-0.5 if scale is None else float(scale)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        b, n, _ = check_tensor("x", x, "(B, N, dim)", dim=self.dim)
        check_bool("return_weights", return_weights)
        allowed = self._allowed(mask, key_mask, b, n)
        if not (return_weights or self._keeps_weights()):
            return self._fused(x, allowed)  # nothing keeps the weights: PyTorch's fused kernel
        # [start-multi-head-attention]
        q, k, v = rearrange(
            self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads
        )
        context, weights = scaled_dot_product_attention(q, k, v, mask=allowed, scale=self.scale)
        out = self.proj(merge_heads(context))  # Concat(head_1, …, head_h) W^O
        self.remember(weights)  # (B, h, N, N)
        # [end-multi-head-attention]
        return (out, weights) if return_weights else out

    def _keeps_weights(self) -> bool:
        """Whether the weights must be computed: a recorder wants them, or the forward pass is
        being traced (``views.browser_model.export_model``: the browser's runtime implements the
        softmax and matmuls, not PyTorch's fused kernel, whose fallbacks also branch on data)."""
        return self.recording or torch.jit.is_tracing()

    def _fused(self, x: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        """The output of :meth:`forward` without the weights ``(B, h, N, N)``, from
        :func:`torch.nn.functional.scaled_dot_product_attention`: the fast path of
        :func:`~visual_attention.core.scaled_dot_product_attention` with ``need_weights=False``
        (same results up to rounding; queries with no allowed key get a zero context, and a NaN
        the careful softmax may avoid sends the call down the path that computes the weights)."""
        q, k, v = (
            self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        )
        context = _fused_context(q, k, v, allowed, self.scale)  # q, k, v and mask are checked
        if context is None:
            context, _ = scaled_dot_product_attention(q, k, v, mask=allowed, scale=self.scale)
        return self.proj(context.transpose(1, 2).flatten(2))  # (B, N, h·d)

    def _allowed(self, mask, key_mask, b: int, n: int) -> torch.Tensor | None:
        """``mask & key_mask`` as one boolean mask broadcastable to ``(B, h, N, N)``, or
        ``None``."""
        return _allowed_mask(mask, key_mask, (b, self.num_heads, n, n), "(B, N)", "(B, h, N, N)")

    @torch.no_grad()
    def load_torch_weights(self, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of a :class:`torch.nn.MultiheadAttention` of the same size; return
        ``self``.

        torch keeps ``W^Q, W^K, W^V`` stacked in ``in_proj_weight`` ``(3·dim, dim)``: the layout of
        ``qkv.weight``.
        """
        same = mha.embed_dim == self.dim and mha.num_heads == self.num_heads
        if not same or not mha._qkv_same_embed_dim:
            raise ValueError(
                f"need an nn.MultiheadAttention({self.dim}, {self.num_heads}) with equal q/k/v "
                "sizes"
            )
        if (mha.in_proj_bias is None) != (self.qkv.bias is None):
            raise ValueError("mha and this module must agree on the biases (qkv_bias, proj_bias)")
        self.qkv.weight.copy_(mha.in_proj_weight)
        self.proj.weight.copy_(mha.out_proj.weight)
        if self.qkv.bias is not None:
            self.qkv.bias.copy_(mha.in_proj_bias)
        if self.proj.bias is not None:
            self.proj.bias.copy_(mha.out_proj.bias)
        return self

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}"


class Mlp(nn.Sequential):
    """A two-layer MLP: ``Linear(dim → hidden_dim)``, an activation, ``Linear(hidden_dim → dim)``.

    With GELU (the default) it is the Transformer's position-wise MLP (ViT Eq. 3); with ReLU, the
    shared MLP of CBAM's channel attention. Shapes: ``(*, dim)`` → ``(*, dim)``.
    """

    def __init__(self, dim: int, hidden_dim: int, act_layer: type[nn.Module] = nn.GELU) -> None:
        check_positive_int("dim", dim)
        check_positive_int("hidden_dim", hidden_dim)
        check_callable("act_layer", act_layer, what="() → an activation module")
        super().__init__(nn.Linear(dim, hidden_dim), act_layer(), nn.Linear(hidden_dim, dim))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(*, dim)`` → ``(*, dim)``."""
        check_tensor("x", x, "(*B, dim)", dim=self.dim)
        return super().forward(x)


class PreNormBlock(nn.Module):
    """A pre-norm Transformer block around any attention (ViT Eq. 2-3; Swin Eq. 3).

    ``z' = z + attn(LN(z))``, then ``z = z' + MLP(LN(z'))`` with an :class:`Mlp` of
    ``mlp_ratio · dim`` hidden units. ``attn`` maps its input to the same shape: tokens
    ``(B, N, dim)`` (:class:`MultiHeadAttention`) or a grid ``(B, H, W, dim)`` (window attention).

    Args:
        dim: channels of the tokens.
        attn: the attention module (built by the caller, so one block serves every kind).
        mlp_ratio: hidden width of the MLP as a multiple of ``dim``.
        norm_eps: the LayerNorms' epsilon (timm's ViT uses ``1e-6``, PyTorch's default is
            ``1e-5``).

    Shapes: ``(B, …, dim)`` → the same; ``forward(x, **kwargs)`` passes ``kwargs`` (e.g. a mask) to
    ``attn``.
    """

    def __init__(
        self, dim: int, attn: nn.Module, mlp_ratio: float = 4.0, norm_eps: float = 1e-5
    ) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        check_module("attn", attn)
        check_positive_number("mlp_ratio", mlp_ratio)
        check_positive_number("norm_eps", norm_eps)
        self.dim = dim
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, **attn_kwargs) -> torch.Tensor:
        check_tensor("x", x, "(B, *, dim)", dim=self.dim)
        x = x + self.attn(self.norm1(x), **attn_kwargs)  # z' = z + MSA(LN(z))
        return x + self.mlp(self.norm2(x))  # z = z' + MLP(LN(z'))


class PatchEmbed(nn.Module):
    """Cut an image into ``p × p`` patches and embed each linearly (ViT Eq. 1, ``x_p E``).

    A convolution with kernel and stride ``p`` is that linear map applied to every patch. With
    ``stem_channels`` a convolutional stem comes first (Xiao et al., NeurIPS 2021): one ``3 × 3``
    :func:`conv_bn_act` (no bias) at full resolution per entry — ``16`` is one layer of 16 maps,
    ``(16, 16)`` two — so each token also sees the pixels just outside its patch; ``0`` or ``()``
    is the paper's plain ViT. ``norm=True`` adds Swin's LayerNorm after the projection.

    Args:
        patch_size: ``p``; the image's height and width must be multiples of it.
        in_channels: channels of the image.
        dim: size of a token.
        stem_channels: widths of the stem's layers.
        norm: LayerNorm the tokens.

    Shapes: ``(B, in_channels, H, W)`` → a grid of tokens ``(B, H/p, W/p, dim)`` (row-major;
    flatten dimensions 1-2 for a sequence).
    """

    def __init__(
        self,
        patch_size: int,
        in_channels: int,
        dim: int,
        stem_channels: int | Sequence[int] = 0,
        norm: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (
            ("patch_size", patch_size),
            ("in_channels", in_channels),
            ("dim", dim),
        ):
            check_positive_int(name, value)
        check_bool("norm", norm)
        widths = _stem_widths(stem_channels)
        self.patch_size, self.in_channels, self.dim = patch_size, in_channels, dim
        layers, c = [], in_channels
        for width in widths:
            layers.append(conv_bn_act(c, width, bias=False))
            c = width
        self.stem = nn.Sequential(*layers) if layers else nn.Identity()
        self.proj = nn.Conv2d(c, dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(dim) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = check_tensor("x", x, "(B, C, H, W)", C=self.in_channels)
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f"H and W of x {tuple(x.shape)} must be multiples of patch_size={self.patch_size}"
            )
        return self.norm(rearrange(self.proj(self.stem(x)), "b d h w -> b h w d"))


def _stem_widths(stem_channels: object) -> tuple[int, ...]:
    """``16`` → ``(16,)``, ``0`` → ``()``, a sequence of positive ints → a tuple; else
    ``ValueError``."""
    if (
        isinstance(stem_channels, int)
        and not isinstance(stem_channels, bool)
        and stem_channels >= 0
    ):
        return (stem_channels,) if stem_channels else ()
    widths = tuple(stem_channels) if isinstance(stem_channels, (list, tuple)) else None
    if widths is None or not all(
        isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in widths
    ):
        raise ValueError(
            "stem_channels must be a non-negative int or a sequence of positive ints, "
            f"got {stem_channels!r}"
        )
    return widths


class _OneValueBatchNorm:
    """In training mode, a batch norm that sees one value per channel (a batch of one ``(1, C)``,
    or ``(1, C, 1, 1)``) has no batch statistics: PyTorch raises. This one normalises such an
    input with its running statistics, as in eval mode, and leaves them unchanged; every other
    input takes PyTorch's path, unchanged."""

    layouts: tuple[str, ...] = ()

    def __init__(self, num_features: int, *args, **kwargs) -> None:
        super().__init__(check_positive_int("num_features", num_features), *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rank = x.ndim if isinstance(x, torch.Tensor) else -1
        fits = [lay for lay in self.layouts if lay.count(",") + 1 == rank]
        layout = fits[0] if fits else self.layouts[-1]
        check_tensor("x", x, layout, C=self.num_features)
        if self.training and x.numel() <= x.shape[1] and self.running_mean is not None:
            stats = (self.running_mean, self.running_var, self.weight, self.bias)
            return nn.functional.batch_norm(x, *stats, training=False, eps=self.eps)
        return super().forward(x)


class BatchNorm1d(_OneValueBatchNorm, nn.BatchNorm1d):
    """:class:`torch.nn.BatchNorm1d` that also normalises a batch of one in training mode (with
    the running statistics, left unchanged). Shapes: ``(B, C)`` or ``(B, C, L)``, unchanged."""

    layouts = ("(B, C)", "(B, C, L)")


class BatchNorm2d(_OneValueBatchNorm, nn.BatchNorm2d):
    """:class:`torch.nn.BatchNorm2d` that also normalises one value per channel in training mode
    (a batch of one ``1 × 1`` map, with the running statistics, left unchanged). Shapes:
    ``(B, C, H, W)``, unchanged."""

    layouts = ("(B, C, H, W)",)


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    groups: int = 1,
    bias: bool = True,
    dilation: int = 1,
    act_layer: type[nn.Module] | None = nn.ReLU,
) -> nn.Sequential:
    """``Conv2d``, ``BatchNorm2d`` and an activation (``ReLU``; ``act_layer=None`` for none).

    The padding ``dilation · (kernel_size - 1) // 2`` keeps ``H × W`` at stride 1 for an odd
    kernel, dilated or not. Shapes: ``(B, in_channels, H, W)`` →
    ``(B, out_channels, ⌈H/stride⌉, ⌈W/stride⌉)``.
    """
    for name, value in (
        ("in_channels", in_channels),
        ("out_channels", out_channels),
        ("kernel_size", kernel_size),
        ("stride", stride),
        ("groups", groups),
        ("dilation", dilation),
    ):
        check_positive_int(name, value)
    check_bool("bias", bias)
    check_callable("act_layer", act_layer, optional=True, what="() → an activation module")
    padding = dilation * (kernel_size - 1) // 2
    conv = nn.Conv2d(
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=bias
    )
    layers = [conv, BatchNorm2d(out_channels)] + ([act_layer()] if act_layer else [])
    return nn.Sequential(*layers)


class AttentionPooling(AttentionModule):
    """Additive attention pooling (Bahdanau et al. 2015; HAN Eq. 5-7; Attention Clusters Eq. 2-3).

    For vectors ``h_t ∈ R^C``: score ``e_t = w₂ᵀ tanh(W₁ h_t + b₁)``, weight
    ``α_t = softmax_t(e_t)`` over the valid ``t``, pooled vector ``s = Σ_t α_t h_t``. Without a
    query, ``w₂`` is a learned context vector ("which parts are informative?", as in HAN). With
    ``query_dim``, each call also takes a query ``q`` and scores ``e_t = w₂ᵀ tanh(W₁ h_t + W_q q +
    b₁)``: Bahdanau's additive attention, where what counts as informative depends on the input.

    Args:
        dim: channels ``C`` of the vectors ``h_t``.
        hidden_dim: size of ``tanh(W₁ h_t + b₁)`` (default ``dim``).
        query_dim: size ``D`` of a query ``q``; ``None`` (default): no query.

    Shapes:
        ``forward(h, mask=None, query=None)``: ``h`` ``(*B, T, C)``, optional boolean ``mask``
        ``(*B, T)``, ``True`` = a valid element, and with ``query_dim`` a query ``(*B, D)`` →
        ``(*B, C)`` (zeros where no element is valid). Records the weights ``(*B, T)``, summing
        to 1 over ``T``; :meth:`weights` computes them alone.
    """

    def __init__(
        self, dim: int, hidden_dim: int | None = None, query_dim: int | None = None
    ) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        hidden_dim = check_int_or_none("hidden_dim", hidden_dim) or dim
        self.dim, self.query_dim = dim, check_int_or_none("query_dim", query_dim)
        self.proj = nn.Linear(dim, hidden_dim)  # W₁, b₁
        self.score = nn.Linear(hidden_dim, 1, bias=False)  # w₂: a bias would cancel in the softmax
        if query_dim is not None:
            self.query_proj = nn.Linear(query_dim, hidden_dim, bias=False)  # W_q

    def weights(
        self, h: torch.Tensor, mask: torch.Tensor | None = None, query: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The weights ``α`` ``(*B, T)`` of ``h`` ``(*B, T, C)``, without pooling."""
        wq = self._checked_query_term(h, mask, query)  # W_q q (*B, 1, hidden), or 0
        u = self.proj(h) + wq  # W₁ h_t + b₁ (+ W_q q)
        scores = self.score(torch.tanh(u)).squeeze(-1)  # e_t = w₂ᵀ tanh(…)
        return masked_softmax(scores, dim=-1, mask=mask)  # α_t

    def _checked_query_term(self, h, mask, query) -> torch.Tensor | float:
        """Check the inputs; ``W_q q`` broadcast over ``T`` ``(*B, 1, hidden)``, or 0."""
        check_tensor("h", h, "(*B, T, C)", C=self.dim)
        if mask is not None:
            check_bool_mask("mask", mask, shape=h.shape[:-1], layout="(*B, T)")
        if self.query_dim is None:
            if query is not None:
                raise ValueError("query given to an AttentionPooling built without query_dim")
            return 0.0
        if query is None:
            raise ValueError(f"query (*B, D = {self.query_dim}) is required: query_dim is set")
        check_tensor("query", query, "(*B, D)", D=self.query_dim)
        if query.shape[:-1] != h.shape[:-2]:
            raise ValueError(
                f"query {tuple(query.shape)} must have the batch dimensions of h {tuple(h.shape)}"
            )
        return self.query_proj(query).unsqueeze(-2)

    def forward(
        self, h: torch.Tensor, mask: torch.Tensor | None = None, query: torch.Tensor | None = None
    ) -> torch.Tensor:
        alpha = self.remember(self.weights(h, mask, query))  # (*B, T)
        return torch.einsum("...t,...tc->...c", alpha, h)  # s = Σ_t α_t h_t


def _causal_mask(n: int, device: torch.device) -> torch.Tensor:
    """The decoder's causal mask ``(n, n)``: ``True`` on and below the diagonal, so token ``i``
    may attend to tokens ``0 … i`` and never to a later one (Vaswani et al. 2017, Sec. 3.2.3;
    the same mask as :func:`visual_attention.temporal.causal_mask`, which ``blocks`` cannot
    import)."""
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


class CrossAttention(AttentionModule):
    """Multi-head cross-attention: queries from ``x``, keys and values from a memory (Vaswani et
    al. 2017, Sec. 3.2.3, "encoder-decoder attention").

    ``q = x W^Q``, ``[k, v] = m W^KV`` (one ``memory_dim → 2·dim`` projection), each split
    into ``h`` heads of ``d = dim / h`` features; ``head_i = softmax(q_i k_iᵀ · scale) v_i``: each
    of the ``N`` queries scores all ``M`` memory positions, the *global* attention of Luong et
    al. (2015) and the soft attention of Show, Attend and Tell (Xu et al. 2015). The heads are
    concatenated and projected by ``W^O`` (``proj``). Heads, scale and masks are those of
    :class:`MultiHeadAttention` (the same helpers); with ``memory = x`` it is self-attention.

    Args:
        dim: size ``D`` of the queries' tokens (and of the output); a multiple of ``num_heads``.
        num_heads: ``h``.
        memory_dim: size of the memory's tokens; ``None`` means ``dim``.
        qkv_bias: biases in the ``q`` and ``kv`` projections.
        proj_bias: a bias in the output projection.
        scale: multiplier of the scores; ``None`` means ``d ** -0.5``.

    Shapes:
        ``forward(x, memory, mask=None, key_mask=None, return_weights=False)``: queries ``x``
        ``(B, N, D)``, memory ``(B, M, memory_dim)``; ``mask`` boolean, broadcastable to
        ``(B, h, N, M)``, ``True`` = may attend; ``key_mask`` boolean ``(B, M)``, ``False`` = a
        padding position of the memory. Returns ``(B, N, D)``, or ``(out, weights)`` with
        ``return_weights=True``. Records the weights ``(B, h, N, M)``; a query with no allowed
        position gets weights 0 and a context of zeros.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        memory_dim: int | None = None,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        check_positive_int("num_heads", num_heads)
        memory_dim = dim if memory_dim is None else check_positive_int("memory_dim", memory_dim)
        check_bool("qkv_bias", qkv_bias)
        check_bool("proj_bias", proj_bias)
        check_scale("scale", scale)
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.memory_dim = memory_dim
        self.scale = self.head_dim**-0.5 if scale is None else float(scale)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(memory_dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        mask: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        b, n, m = self._check(x, memory, return_weights)
        scores = (b, self.num_heads, n, m)
        allowed = _allowed_mask(mask, key_mask, scores, "(B, M)", "(B, h, N, M)")
        # [start-cross-attention]
        q = split_heads(self.q(x), self.num_heads)  # queries from the decoder  (B, h, N, d)
        k, v = rearrange(  # keys and values from the memory                (B, h, M, d)
            self.kv(memory), "b m (two h d) -> two b h m d", two=2, h=self.num_heads
        )
        context, weights = scaled_dot_product_attention(q, k, v, mask=allowed, scale=self.scale)
        out = self.proj(merge_heads(context))  # Concat(head_1, …, head_h) W^O
        # [end-cross-attention]
        self.remember(weights)  # (B, h, N, M): where each query looked in the memory
        return (out, weights) if return_weights else out

    def _check(self, x, memory, return_weights) -> tuple[int, int, int]:
        """Check the inputs; return ``(B, N, M)``."""
        b, n, _ = check_tensor("x", x, "(B, N, dim)", dim=self.dim)
        _, m, _ = check_tensor(
            "memory", memory, "(B, M, memory_dim)", B=b, memory_dim=self.memory_dim
        )
        if memory.dtype != x.dtype:
            raise ValueError(f"memory dtype {memory.dtype} differs from x dtype {x.dtype}")
        check_bool("return_weights", return_weights)
        return b, n, m

    @torch.no_grad()
    def load_torch_weights(self, mha: nn.MultiheadAttention) -> CrossAttention:
        """Copy the weights of a :class:`torch.nn.MultiheadAttention` ``(dim, num_heads,
        kdim=vdim=memory_dim)``; return ``self``.

        torch keeps ``W^Q, W^K, W^V`` stacked in ``in_proj_weight`` when all sizes agree, and as
        ``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight`` otherwise; the biases are always
        stacked in ``in_proj_bias``.
        """
        same = mha.embed_dim == self.dim and mha.num_heads == self.num_heads
        if not same or mha.kdim != self.memory_dim or mha.vdim != self.memory_dim:
            raise ValueError(
                f"need an nn.MultiheadAttention({self.dim}, {self.num_heads}, "
                f"kdim={self.memory_dim}, vdim={self.memory_dim})"
            )
        if (mha.in_proj_bias is None) != (self.q.bias is None):
            raise ValueError("mha and this module must agree on the biases (qkv_bias, proj_bias)")
        if mha._qkv_same_embed_dim:
            wq, wk, wv = mha.in_proj_weight.chunk(3)
        else:
            wq, wk, wv = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
        self.q.weight.copy_(wq)
        self.kv.weight.copy_(torch.cat([wk, wv]))
        self.proj.weight.copy_(mha.out_proj.weight)
        if self.q.bias is not None:
            bq, bkv = mha.in_proj_bias.split([self.dim, 2 * self.dim])
            self.q.bias.copy_(bq)
            self.kv.bias.copy_(bkv)
        if self.proj.bias is not None:
            self.proj.bias.copy_(mha.out_proj.bias)
        return self

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, memory_dim={self.memory_dim}"


class DecoderBlock(nn.Module):
    """A pre-norm Transformer decoder layer (Vaswani et al. 2017, Sec. 3.1, in the pre-norm
    arrangement of :class:`PreNormBlock`).

    ``z' = z + SelfAttn(LN(z))`` under a causal mask (token ``i`` sees tokens ``≤ i``),
    ``z'' = z' + CrossAttn(LN(z'), memory)`` (every token scores every memory position), and
    ``z''' = z'' + MLP(LN(z''))``.

    Args:
        dim: channels of the decoder's tokens.
        num_heads: heads of both attentions.
        memory_dim: channels of the memory (``None``: ``dim``).
        mlp_ratio: hidden width of the MLP as a multiple of ``dim``.
        norm_eps: the LayerNorms' epsilon.

    Shapes:
        ``forward(x, memory, mask=None, memory_mask=None)``: tokens ``(B, N, dim)``, memory
        ``(B, M, memory_dim)``; ``mask`` the self-attention's boolean mask broadcastable to
        ``(B, h, N, N)`` (``None``: causal); ``memory_mask`` boolean ``(B, M)``, ``False`` = a
        padding position of the memory. Returns ``(B, N, dim)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        memory_dim: int | None = None,
        mlp_ratio: float = 4.0,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        check_positive_number("mlp_ratio", mlp_ratio)
        check_positive_number("norm_eps", norm_eps)
        self.dim = dim
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.self_attn = MultiHeadAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.cross_attn = CrossAttention(dim, num_heads, memory_dim)
        self.norm3 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, n, _ = check_tensor("x", x, "(B, N, dim)", dim=self.dim)
        if memory_mask is not None:  # checked here, so that its error names it
            m = check_tensor("memory", memory, "(B, M, C)", B=b)[1]
            check_bool_mask("memory_mask", memory_mask, shape=(b, m), layout="(B, M)")
        mask = _causal_mask(n, x.device) if mask is None else mask
        x = x + self.self_attn(self.norm1(x), mask=mask)  # causal self-attention
        x = x + self.cross_attn(self.norm2(x), memory, key_mask=memory_mask)  # reads the memory
        return x + self.mlp(self.norm3(x))
