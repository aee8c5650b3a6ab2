"""The three operations every chapter of the book is built from.

* :func:`masked_softmax` turns scores into attention weights: non-negative, summing to one over
  the attended dimensions, with an optional boolean mask and a temperature.
* :func:`scaled_dot_product_attention` is the query/key/value attention of Vaswani et al.,
  "Attention Is All You Need" (NeurIPS 2017), Eq. (1): ``softmax(Q Kᵀ / √d) V``.
* :func:`query_attention` is the vision form used in the Foundations chapter: one query vector per
  image attends over the ``H·W`` positions of a feature map and returns a spatial weight map and a
  context vector (the "soft attention" of Xu et al., "Show, Attend and Tell", ICML 2015, Eq. 4-6,
  with a dot-product score in place of their MLP score).

Every ``nn.Module`` of the package that computes attention derives from :class:`AttentionModule`
and hands its weights back the same way: ``with record_attention(model) as maps: model(x)``.

Mask convention, shared by the whole package and by
:func:`torch.nn.functional.scaled_dot_product_attention`: a boolean mask is ``True`` where
attention is *allowed* and ``False`` where it is blocked.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ._checks import (
    check_bool,
    check_bool_mask,
    check_floating,
    check_positive_number,
    check_qkv,
    check_scale,
    check_tensor,
)

__all__ = [
    "masked_softmax",
    "scaled_dot_product_attention",
    "query_attention",
    "AttentionModule",
    "record_attention",
]


def _normalise_dims(dim: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    if isinstance(dim, bool) or not isinstance(dim, (int, Sequence)) or isinstance(dim, str):
        raise ValueError(f"dim must be an int or a sequence of ints, got {dim!r}")
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    if not dims:
        raise ValueError("dim must name at least one dimension, got an empty sequence")
    out = []
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int) or not -ndim <= d < ndim:
            raise ValueError(f"dim {d!r} is out of range for a tensor of rank {ndim}")
        out.append(d % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"dim {tuple(dims)} names the same dimension twice")
    return tuple(out)


def masked_softmax(
    scores: torch.Tensor,
    dim: int | Sequence[int] = -1,
    mask: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Numerically stable softmax over one or several dimensions, with a mask and a temperature.

    ``weights = exp(s / T) / Σ exp(s / T)``, the sum running over ``dim`` and over unmasked entries
    only. The maximum is subtracted before ``exp`` (it cancels in the ratio), so large logits do
    not overflow. A slice whose entries are all masked (or all ``-inf``) gets weights of zero, not
    NaN: "attend to nothing" contributes nothing to a context vector.

    Args:
        scores: floating tensor of any shape ``(*S)``.
        dim: the dimension, or dimensions, to normalise over (e.g. ``(-2, -1)`` for ``H, W``).
        mask: optional boolean tensor broadcastable to ``(*S)``; ``True`` = may attend.
        temperature: ``T > 0``; ``T < 1`` sharpens the weights, ``T > 1`` flattens them.

    Returns:
        weights of shape ``(*S)``, non-negative, summing to 1 over ``dim`` (or to 0 where fully
        masked).
    """
    dims = _check_softmax(scores, dim, mask, temperature)
    x = scores if mask is None else scores.masked_fill(~mask, float("-inf"))
    weights = _fused_softmax(x, dims, temperature)  # fast path: PyTorch's fused kernel
    if _has_nan(weights):  # weights lie in [0, 1]: their sum is finite unless one is NaN
        return _stable_softmax(x, dims, temperature)
    return weights


def _check_softmax(scores, dim, mask, temperature) -> tuple[int, ...]:
    """Validate the arguments of :func:`masked_softmax`; return ``dim`` as a tuple."""
    check_floating("scores", scores)
    if scores.ndim == 0:
        raise ValueError("scores must have at least one dimension, got a 0-d tensor")
    dims = _normalise_dims(dim, scores.ndim)
    check_positive_number("temperature", temperature)
    if mask is not None:
        check_bool_mask("mask", mask, broadcast_to=scores.shape, layout="scores of shape")
    return dims


def _has_nan(t: torch.Tensor) -> bool:
    """Whether ``t`` holds a NaN, in one reduction without a temporary (``isnan(t).any()`` costs
    ~9× more).

    The sum of a tensor holding a NaN is NaN. It can also be NaN when huge values of both signs sum
    to ``inf - inf``: a false alarm that only sends the caller down its slower, careful path.
    """
    return t.numel() > 0 and bool(torch.isnan(t.sum()))


def _fused_softmax(x: torch.Tensor, dims: tuple[int, ...], temperature: float) -> torch.Tensor:
    """PyTorch's fused softmax over ``dims``, unchecked.

    It gives NaN exactly in the cases :func:`_stable_softmax` treats specially: a slice with no
    finite score (fully masked), a slice holding ``+inf``, or scores that overflow when divided by
    a small temperature. Callers check for NaN (in the weights, or more cheaply in a context
    computed from them) and then take the careful path; the fused kernel saves several passes over
    the scores.
    """
    if dims == (x.ndim - 1,):
        return torch.softmax(x / temperature if temperature != 1 else x, dim=-1)
    last = tuple(range(x.ndim - len(dims), x.ndim))
    moved = x.movedim(dims, last) if dims != last else x
    flat = moved.flatten(x.ndim - len(dims)) if len(dims) > 1 else moved
    w = torch.softmax(flat / temperature if temperature != 1 else flat, dim=-1)
    w = w.reshape(moved.shape)
    return w.movedim(last, dims) if dims != last else w


def _stable_softmax(x: torch.Tensor, dims: tuple[int, ...], temperature: float) -> torch.Tensor:
    """The softmax with its limits spelt out: zeros for a slice with no finite score (fully
    masked), all the weight on the ``+inf`` entries of a slice that holds some."""
    x = _infinite_scores_to_limit(x, dims)
    # [start-stable-softmax]
    peak = x.detach().amax(dim=dims, keepdim=True)  # the largest score of each slice
    peak = torch.where(torch.isfinite(peak), peak, 0.0)  # a fully masked slice stays at -inf
    e = torch.exp((x - peak) / temperature)  # every exp(s - max) <= 1: no overflow
    total = e.sum(dim=dims, keepdim=True)  # masked entries add exp(-inf) = 0
    return e / torch.where(total > 0, total, 1.0)  # fully masked: 0 / 1 = 0, not NaN
    # [end-stable-softmax]


def _infinite_scores_to_limit(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """In a slice holding ``+inf`` scores the softmax's limit puts all weight on those entries:
    they become 0 and every other entry ``-inf``. Other slices are returned unchanged."""
    infinite = (x.detach().amax(dim=dims, keepdim=True) == float("inf")).expand_as(x)
    if not infinite.any():
        return x
    limit = torch.where(x == float("inf"), 0.0, float("-inf")).to(x.dtype)
    return torch.where(infinite, limit, x)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
    need_weights: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scaled dot-product attention, returning the context and the weights.

    ``weights = softmax(q kᵀ · scale)`` over the keys, ``context = weights v``
    (Vaswani et al. 2017, Eq. 1). The scale defaults to ``1/√D``: without it the dot products of
    ``D``-dimensional vectors grow like ``√D`` and the softmax saturates.

    Args:
        q: queries ``(*B, Lq, D)``.
        k: keys ``(*B, Lk, D)``.
        v: values ``(*B, Lk, Dv)``.
        mask: optional boolean mask broadcastable to ``(*B, Lq, Lk)``; ``True`` = query may attend
            to that key. A query with no allowed key gets a zero context.
        scale: multiplier of the scores; ``None`` means ``D ** -0.5``.
        need_weights: ``False`` returns ``(context, None)`` without materialising the
            ``(*B, Lq, Lk)`` weights: the work goes to PyTorch's fused kernel,
            :func:`torch.nn.functional.scaled_dot_product_attention` (as
            ``torch.nn.MultiheadAttention`` does with ``need_weights=False``), with the same
            results up to rounding — queries with no allowed key still get a zero context, and
            inputs that make the fused kernel return NaN (``+inf`` scores) take the path that keeps
            the weights.

    Returns:
        ``(context, weights)`` with shapes ``(*B, Lq, Dv)`` and ``(*B, Lq, Lk)``; weights is
        ``None`` when ``need_weights=False``.
    """
    mask, scale = _check_attention(q, k, v, mask, scale, need_weights)
    if not need_weights and isinstance(scale, float):
        context = _fused_context(q, k, v, mask, scale)  # fast path: PyTorch's fused kernel
        if context is not None:
            return context, None
    context, weights = _attention(q, k, v, mask, scale)
    return context, (weights if need_weights else None)


def _attention(q, k, v, mask, scale) -> tuple[torch.Tensor, torch.Tensor]:
    """``(softmax(q kᵀ · scale) v, weights)`` of checked inputs; ``mask`` ``(*B, Lq, Lk)``."""
    # [start-attention]
    scores = _scaled(q @ k.transpose(-2, -1), scale)  # q kᵀ / √d   (*B, Lq, Lk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # blocked keys: exp(-inf) = 0
    weights = torch.softmax(scores, dim=-1)  # each query's weights over the keys sum to 1
    context = weights @ v  # (*B, Lq, Dv): the weighted sum of the values
    # [end-attention]
    # A NaN weight (no finite score in a row, or a +inf score) makes its context row NaN, and
    # the context (*B, Lq, Dv) is cheaper to check than the weights (*B, Lq, Lk).
    if _has_nan(context if context.numel() else weights):
        weights = _stable_softmax(scores, (scores.ndim - 1,), 1.0)
        context = weights @ v
    return context, weights


def _check_attention(
    q, k, v, mask, scale, need_weights=True
) -> tuple[torch.Tensor | None, float | torch.Tensor]:
    """Validate the inputs of :func:`scaled_dot_product_attention`; return the mask expanded to
    the scores' shape ``(*B, Lq, Lk)`` (a view) and the scale (``D ** -0.5`` by default)."""
    check_qkv(q, k, v)
    check_scale("scale", scale)
    check_bool("need_weights", need_weights)
    scores_shape = (*torch.broadcast_shapes(q.shape[:-2], k.shape[:-2]), q.shape[-2], k.shape[-2])
    if mask is not None:
        check_bool_mask("mask", mask, broadcast_to=scores_shape, layout="scores of shape")
        mask = mask.expand(scores_shape)
    if scale is None:
        scale = q.shape[-1] ** -0.5
    if isinstance(scale, numbers.Real) and not isinstance(scale, bool):
        scale = float(scale)
    return mask, scale


def _scaled(scores: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """``scores · scale`` for ``scores`` fresh from a matmul: skipped when the scale is 1, in place
    when it is a number (the matmul's backward needs its inputs, not its output), out of place for
    a tensor."""
    if (
        isinstance(scale, torch.Tensor)
        or isinstance(scale, bool)
        or not isinstance(scale, numbers.Real)
    ):
        return scores * scale
    return scores if scale == 1 else scores.mul_(float(scale))


def _fused_context(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, scale: float
) -> torch.Tensor | None:
    """The context of :func:`scaled_dot_product_attention` from PyTorch's fused kernel, or
    ``None``.

    ``None`` (the caller then computes the weights) where the fused kernel's result would differ
    from ours: a NaN in its output, which the careful softmax may avoid (``+inf`` scores).
    Fully masked queries are given every key (so no kernel ever sees an empty row) and their
    context is then set to zero, which also makes their gradient zero.
    """
    if q.shape[-2] == 0 or k.shape[-2] == 0:
        return None
    empty = None
    if mask is not None:
        allowed = mask.any(dim=-1, keepdim=True)  # (*B, Lq, 1)
        if not bool(allowed.all()):
            empty = ~allowed
            mask = mask | empty
    context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    if empty is not None:
        context = context.masked_fill(empty, 0.0)
    return None if _has_nan(context) else context


def query_attention(
    feature_maps: torch.Tensor,
    query: torch.Tensor,
    scale: float = 1.0,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One query per image attends over every position of its feature map.

    For image ``b`` and position ``(i, j)`` with feature vector ``x_bij ∈ R^C``:

    * score ``e_bij = scale · ⟨q_b, x_bij⟩`` (a plain dot product unless ``scale`` is given,
      e.g. ``scale=C ** -0.5``);
    * weight ``α_bij = exp(e_bij / T) / Σ_{i'j'} exp(e_bi'j' / T)`` over the ``H·W`` positions;
    * context ``c_b = Σ_ij α_bij x_bij``.

    Args:
        feature_maps: ``(B, C, H, W)``, the keys and values (one C-vector per position).
        query: ``(B, C)``, one query per image.
        scale: multiplier of the dot products (default 1: no scaling).
        temperature: softmax temperature ``T > 0``.
        mask: optional boolean ``(B, H, W)`` (or broadcastable), ``True`` = position may be
            attended.

    Returns:
        ``(weights, context)``: weights ``(B, H, W)`` summing to 1 over ``H, W``; context ``(B,
        C)``.
    """
    _check_query_attention(feature_maps, query, mask, scale)
    # [start-query-attention]
    scores = _scaled(torch.einsum("bchw,bc->bhw", feature_maps, query), scale)  # scale·⟨q, x_ij⟩
    weights = masked_softmax(scores, dim=(-2, -1), mask=mask, temperature=temperature)  # α_ij
    context = torch.einsum("bhw,bchw->bc", weights, feature_maps)  # c = Σ_ij α_ij x_ij
    # [end-query-attention]
    return weights, context


def _check_query_attention(feature_maps, query, mask, scale) -> None:
    check_scale("scale", scale)
    b, c, h, w = check_tensor("feature_maps", feature_maps, "(B, C, H, W)")
    check_tensor("query", query, "(B, C)", B=b, C=c)
    if query.dtype != feature_maps.dtype:
        raise ValueError(
            f"query dtype {query.dtype} differs from feature_maps dtype {feature_maps.dtype}"
        )
    if mask is not None:
        check_bool_mask("mask", mask, broadcast_to=(b, h, w), layout="(B, H, W)")


class AttentionModule(torch.nn.Module):
    """Base class of every module in the package that computes attention weights.

    A subclass calls ``self.remember(weights)`` in ``forward`` with its weights — a gate
    ``(B, C)``, a spatial map ``(B, 1, H, W)``, branch weights ``(B, M, C)``, per-head maps
    ``(B, h, N, N)``… (its docstring says which). Nothing is kept unless recording is on, so
    training pays nothing; :func:`record_attention` turns it on for a whole model and collects the
    weights by module name, so one plotting or widget function serves every module.
    """

    def __init__(self) -> None:
        super().__init__()
        self.recording = False
        self.attention: torch.Tensor | None = None

    def remember(self, weights: torch.Tensor) -> torch.Tensor:
        """Keep a detached copy of ``weights`` if recording; return ``weights`` unchanged."""
        if self.recording:
            self.attention = weights.detach()
        return weights


# a lower-case name: it is used as a function, ``with record_attention(model) as maps``
class record_attention:
    """Collect the attention weights of every :class:`AttentionModule` inside ``model``.

    Example::

        with record_attention(model) as maps:
            model(x)
        maps["layer1.0.se"]  # the weights that module computed during the forward pass

    ``maps`` is filled when the ``with`` block ends: ``{module name: weights}``, in the order of
    ``model.named_modules()``; a module that ran several times keeps its last weights. A bare
    :class:`AttentionModule` is recorded under the name ``""``.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.modules = {n: m for n, m in model.named_modules() if isinstance(m, AttentionModule)}
        self.maps: dict[str, torch.Tensor] = {}

    def __enter__(self) -> dict[str, torch.Tensor]:
        for m in self.modules.values():
            m.recording, m.attention = True, None
        return self.maps

    def __exit__(self, *exc) -> None:
        for name, m in self.modules.items():
            if m.attention is not None:
                self.maps[name] = m.attention
            m.recording, m.attention = False, None
