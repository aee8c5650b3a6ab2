"""Input checks that only the chapter labs need, in the error style of
:mod:`visual_attention._checks` (a ``ValueError`` that names the argument, what was expected and
what came): canvases for the frozen digit encoder, the encoder itself, ``(x, y)`` data, dicts of
trained heads, normalisation statistics and explorer settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .._checks import check_instance, check_int, check_module, check_pair, check_tensor


def check_canvas(name: str, images: object, layout: str, side: int = 4) -> tuple[int, ...]:
    """``images`` of ``layout`` (one channel, ``C = 1``) with height and width ≥ ``side``: what
    :meth:`~visual_attention.labs.digits.DigitCNN.feature_map` can read (its two ``2 × 2``
    max-pools need 4 pixels)."""
    shape = check_tensor(name, images, layout, C=1)
    if shape[-2] < side or shape[-1] < side:
        raise ValueError(f"{name} must be {layout} with H, W ≥ {side}, got shape {shape}")
    return shape


def check_encoder(name: str, encoder: object) -> None:
    """``None`` or a module with ``feature_map``."""
    if encoder is not None and not hasattr(check_module(name, encoder), "feature_map"):
        raise ValueError(f"{name} must be a module with a feature_map method (a DigitCNN)")


def check_data(name: str, pair: object, layout: str, **sizes: int) -> tuple[int, ...]:
    """``pair`` = ``(x, y)`` inputs and labels (as ``train.fit`` takes them), ``x`` of ``layout``;
    return ``x``'s shape."""
    x, _ = check_pair(name, pair)
    return check_tensor(f"{name}[0]", x, layout, **sizes)


def check_models(name: str, value: object, cls: type) -> None:
    """A non-empty mapping ``{name: cls instance}``."""
    if not isinstance(value, Mapping) or not value:
        raise ValueError(
            f"{name} must be a non-empty dict {{name: {cls.__name__}}}, got {value!r:.60}"
        )
    for key, model in value.items():
        check_instance(f"{name}[{key!r}]", model, cls)


def check_indices(name: str, value: object, count: int | None = None) -> tuple[int, ...]:
    """A non-empty sequence of integers in ``[0, count)`` (``≥ 0`` without ``count``)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"{name} must be a non-empty sequence of indices ≥ 0, got {value!r:.60}")
    out = tuple(check_int(f"{name}[{i}]", v, 0) for i, v in enumerate(value))
    if count is not None and max(out) >= count:
        raise ValueError(f"{name} must hold indices in [0, {count}), got {list(out)}")
    return out


def check_normalize(name: str, value: object) -> None:
    """``None`` or a non-empty tuple of feature tensors ``(train features, …)``."""
    if value is None:
        return
    if not isinstance(value, (tuple, list)) or not value:
        raise ValueError(f"{name} must be None or a tuple (train features,), got {value!r:.60}")
    for i, t in enumerate(value):
        check_tensor(f"{name}[{i}]", t, "(N, *S)")


def check_index_tensor(name: str, value: object, layout: str, count: int | None = None) -> None:
    """An integer tensor of ``layout``'s rank (values in ``[0, count)`` if given)."""
    rank = len([p for p in layout.strip("()").split(",") if p.strip()])
    ok = isinstance(value, torch.Tensor) and value.ndim == rank
    ok = ok and not value.is_floating_point() and not value.is_complex()
    ok = ok and value.dtype != torch.bool
    if ok and count is not None and value.numel():
        ok = bool(((value >= 0) & (value < count)).all())
    if not ok:
        got = (
            f"shape {tuple(value.shape)} {value.dtype}"
            if isinstance(value, torch.Tensor)
            else (type(value).__name__)
        )
        within = f" in [0, {count})" if count is not None else ""
        raise ValueError(f"{name} must be an integer tensor {layout}{within}, got {got}")


def check_initial(name: str, value: object) -> None:
    """``None`` or a mapping ``{control: value}`` (checked further by the explorer)."""
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(f"{name} must be None or a dict {{control: value}}, got {value!r:.60}")
