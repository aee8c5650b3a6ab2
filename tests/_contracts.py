"""The public API's input contract, as data: a valid call of every public callable, and the kind of
each argument, from which ``test_contracts.py`` derives bad arguments.

A :class:`Spec` holds one valid call. The kind of each argument comes from its annotation (``int``
→ a positive integer, ``float`` → a positive finite number, ``bool``, ``torch.Tensor``,
``tuple[int, int]`` …) unless ``kinds`` names it; ``Kind.bad`` lists the values that break it.
Forward passes of modules are specs of their own (``"Module.forward"``), made from a built module.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
from collections.abc import Callable
from typing import Any

import torch

from _helpers import gen

#: The modules whose ``__all__`` is the public API under contract.
MODULES = (
    "core blocks spatial channel branch self_attention multi_head global_attention "
    "local_attention hierarchical temporal memory efficient resnet data train views.viz "
    "views.widgets views.diagrams views.evidence views.browser_model views.model_explorer"
).split()


@dataclasses.dataclass(frozen=True)
class Kind:
    """What an argument accepts, as a list of values it must refuse."""

    name: str
    bad: tuple[Any, ...]


NAN, INF = math.nan, math.inf
POS_INT = Kind("positive int", (0, -1, True, 2.5, "2", None))
NONNEG_INT = Kind("non-negative int", (-1, True, 2.5, "2", None))
STEM = Kind("stem widths", (-1, True, 2.5, "2", (0,), (8, -1)))
ANY_INT = Kind("int", (True, 2.5, "2", None))
POS_FLOAT = Kind("positive number", (0.0, -1.0, NAN, INF, True, "1"))
NONNEG_FLOAT = Kind("non-negative number", (-1.0, NAN, INF, True, "1"))
FRACTION = Kind("number in [0, 1)", (-0.1, 1.5, NAN, True, "0.5"))
UNIT = Kind("number in [0, 1]", (-0.1, 1.5, NAN, True, "0.5"))
REAL = Kind("finite number", (NAN, INF, True, "1"))
BOOL = Kind("bool", ("no", 2, None))
STR = Kind("str", (3, None))
SIZE2 = Kind("(int, int)", ((0, 4), (4,), (4.5, 4), (True, 4), "ab", 4.5))
NEVER = Kind("not mutated", ())
IMAGE = Kind("image (tensor or array)", ("x", None, 3, [[1.0]]))
#: kinds every callable gets from its signature alone (``generic_kind``), even for arguments its
#: spec skips: a non-callable for a callable, a non-Axes for ``ax``, a missing file for a path
CALLABLE = Kind("callable", (5, "f"))
AXES = Kind("matplotlib Axes or None", ("x", 3, [1]))
PATH = Kind("path of an existing file", (3, None, "/nonexistent/digit_cnn.pt", "/"))


def choice(*_options: object) -> Kind:
    """A string among ``options``."""
    return Kind("choice", ("nonsense", 3))


def optional(kind: Kind) -> Kind:
    """``kind`` or ``None``."""
    return Kind(f"{kind.name} or None", tuple(b for b in kind.bad if b is not None))


def tensor_bad(value: torch.Tensor, optional_: bool) -> tuple[Any, ...]:
    """A list, the wrong dtype, a 0-d tensor (and ``None`` unless optional) for ``value``."""
    wrong_dtype = value.long() if value.is_floating_point() else value.float()
    bad = [value.tolist(), wrong_dtype, value.sum()]
    if value.dtype == torch.bool:  # a 0-d mask broadcasts; one key too many does not
        bad[2] = torch.cat([value, value[..., :1]], -1)
    if not optional_:
        bad.append(None)
    return tuple(bad)


@dataclasses.dataclass
class Spec:
    """One valid call: ``target(**make()[1])`` (``make()[0]`` is the callable)."""

    name: str
    make: Callable[[], tuple[Callable[..., Any], dict[str, Any]]]
    kinds: dict[str, Kind] = dataclasses.field(default_factory=dict)
    #: arguments to leave alone (callables, classes, free-form values)
    skip: tuple[str, ...] = ()

    def call(self) -> tuple[Callable[..., Any], dict[str, Any]]:
        return self.make()


def _kind_from_annotation(annotation: Any) -> Kind | None:
    text = str(annotation).replace("typing.", "")
    table = {
        "int": POS_INT,
        "int | None": optional(POS_INT),
        "float": POS_FLOAT,
        "float | None": optional(POS_FLOAT),
        "bool": BOOL,
        "str": STR,
        "tuple[int, int]": SIZE2,
        "tuple[int, int] | None": optional(SIZE2),
        "Path | str": PATH,
        "str | Path": PATH,
    }
    return table.get(text)


def generic_kind(name: str, annotation: Any) -> Kind | None:
    """The kind an argument has by its signature alone: a callable (``Callable[…]``, ``type[…]``),
    matplotlib axes (``ax``) or the path of a file (``Path``)."""
    text = str(annotation)
    if "Callable" in text or "type[" in text:
        return CALLABLE
    if name == "ax":
        return AXES
    if "Path" in text:
        return PATH
    return None


def bad_arguments(spec: Spec) -> list[tuple[str, Any]]:
    """Every ``(argument, bad value)`` pair of ``spec``'s call: from the kind of each argument of
    the valid call, and from :func:`generic_kind` for the arguments it skips or leaves out."""
    target, kwargs = spec.call()
    fn = target
    sig = inspect.signature(fn)
    out = []
    for name, param in sig.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if (name not in kwargs or name in spec.skip) and name not in spec.kinds:
            kind = generic_kind(name, param.annotation)
            out += [(name, b) for b in kind.bad] if kind is not None else []
    for name, value in kwargs.items():
        if name in spec.skip:
            continue
        kind = spec.kinds.get(name)
        if kind is None and isinstance(value, torch.Tensor):
            param = sig.parameters.get(name)
            optional_ = param is not None and (
                "None" in str(param.annotation) or param.default is None
            )
            out += [(name, b) for b in tensor_bad(value, optional_)]
            continue
        if kind is None:
            param = sig.parameters.get(name)
            kind = _kind_from_annotation(param.annotation) if param is not None else None
        if kind is None:
            raise AssertionError(f"{spec.name}: no kind for argument {name!r}; declare one")
        out += [(name, b) for b in kind.bad]
    return out


def _r(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=gen(seed))


def _mask(*shape: int) -> torch.Tensor:
    m = torch.rand(*shape, generator=gen(1)) > 0.3
    m[..., 0] = True
    return m


def _module(cls_path: str, *args: Any, **kwargs: Any) -> torch.nn.Module:
    module, name = cls_path.rsplit(".", 1)
    cls = getattr(importlib.import_module(f"visual_attention.{module}"), name)
    return cls(*args, **kwargs).eval()


def _fn(path: str) -> Callable[..., Any]:
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(f"visual_attention.{module}"), name)


def call(path: str, kinds: dict[str, Kind] | None = None, skip: tuple[str, ...] = (), **kw):
    """A spec calling ``visual_attention.<path>`` with ``kw`` (values may be zero-arg lambdas)."""

    def make():
        return _fn(path), {k: (v() if callable(v) and k not in skip else v) for k, v in kw.items()}

    return Spec(path.rsplit(".", 1)[1], make, kinds or {}, skip)


def forward(
    path: str,
    build: Callable[[], torch.nn.Module],
    kinds: dict[str, Kind] | None = None,
    skip: tuple[str, ...] = (),
    **kw,
):
    """A spec of ``build().forward(**kw)``."""

    def make():
        return build().forward, {k: (v() if callable(v) else v) for k, v in kw.items()}

    return Spec(path.rsplit(".", 1)[1] + ".forward", make, kinds or {}, skip)


def _digits_model():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))


def _explorer_kwargs():
    return dict(queries=_r(16, 4), keys=_r(16, 4, seed=1), values=_r(16, 3, seed=2), grid=(4, 4))


def _attentions():
    return [torch.softmax(_r(2, 2, 5, 5, seed=s), -1) for s in range(2)]



def _explorer():
    return _fn("views.widgets.precomputed_explorer")(
        {"a": [1, 2], "b": ["x", "y"]}, lambda a, b: _fn("views.widgets.html_view")(f"{a}{b}")
    )


def _tiny_model():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU()).eval()


def _exported():
    return _fn("views.browser_model.export_model")(_Head(), _r(1, 1, 4, 4), ("logits", "map"))


class _Head(torch.nn.Module):
    """A tiny image model with logits and a map, for the model explorer's spec."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = _module("spatial.QuerySpatialAttention", 1)
        self.fc = torch.nn.Linear(1, 3)

    def forward(self, x):
        with _fn("core.record_attention")(self) as maps:
            logits = self.fc(self.pool(x))
        return logits, maps["pool"]

SPECS: list[Spec] = [
    # core
    call(
        "core.masked_softmax",
        {"dim": ANY_INT},
        scores=lambda: _r(2, 5),
        dim=-1,
        mask=lambda: _mask(2, 5),
        temperature=1.0,
    ),
    call(
        "core.scaled_dot_product_attention",
        q=lambda: _r(2, 3, 4),
        k=lambda: _r(2, 5, 4),
        v=lambda: _r(2, 5, 6),
        mask=lambda: _mask(2, 3, 5),
        scale=0.5,
        need_weights=True,
    ),
    call(
        "core.query_attention",
        feature_maps=lambda: _r(2, 3, 4, 4),
        query=lambda: _r(2, 3),
        scale=1.0,
        temperature=1.0,
        mask=lambda: _mask(2, 4, 4),
    ),
    call(
        "core.record_attention",
        {"model": Kind("module", (3, None, "m"))},
        model=lambda: _module("blocks.MultiHeadAttention", 8, 2),
    ),
    # blocks
    call("blocks.split_heads", x=lambda: _r(2, 5, 8), num_heads=2),
    call("blocks.merge_heads", x=lambda: _r(2, 2, 5, 4)),
    call(
        "blocks.MultiHeadAttention", dim=8, num_heads=2, qkv_bias=True, proj_bias=True, scale=None
    ),
    forward(
        "blocks.MultiHeadAttention",
        lambda: _module("blocks.MultiHeadAttention", 8, 2),
        x=lambda: _r(2, 5, 8),
        mask=lambda: _mask(5, 5),
        key_mask=lambda: _mask(2, 5),
        return_weights=True,
    ),
    call("blocks.Mlp", skip=("act_layer",), dim=8, hidden_dim=16),
    forward("blocks.Mlp", lambda: _module("blocks.Mlp", 8, 16), x=lambda: _r(2, 5, 8)),
    call(
        "blocks.PreNormBlock",
        {"attn": Kind("module", (3, None))},
        dim=8,
        attn=lambda: _module("blocks.MultiHeadAttention", 8, 2),
        mlp_ratio=4.0,
        norm_eps=1e-5,
    ),
    forward(
        "blocks.PreNormBlock",
        lambda: _module("blocks.PreNormBlock", 8, _module("blocks.MultiHeadAttention", 8, 2)),
        x=lambda: _r(2, 5, 8),
    ),
    call(
        "blocks.PatchEmbed",
        {"stem_channels": STEM},
        patch_size=2,
        in_channels=3,
        dim=8,
        stem_channels=0,
        norm=False,
    ),
    forward(
        "blocks.PatchEmbed",
        lambda: _module("blocks.PatchEmbed", 2, 3, 8),
        x=lambda: _r(2, 3, 8, 8),
    ),
    call("blocks.BatchNorm1d", {"num_features": POS_INT}, num_features=4),
    forward("blocks.BatchNorm1d", lambda: _module("blocks.BatchNorm1d", 4), x=lambda: _r(3, 4)),
    call("blocks.BatchNorm2d", {"num_features": POS_INT}, num_features=4),
    forward(
        "blocks.BatchNorm2d", lambda: _module("blocks.BatchNorm2d", 4), x=lambda: _r(3, 4, 2, 2)
    ),
    call(
        "blocks.conv_bn_act",
        skip=("act_layer",),
        in_channels=3,
        out_channels=4,
        kernel_size=3,
        stride=1,
        groups=1,
        bias=True,
        dilation=1,
    ),
    call("blocks.AttentionPooling", dim=8, hidden_dim=None, query_dim=None),
    forward(
        "blocks.AttentionPooling",
        lambda: _module("blocks.AttentionPooling", 8),
        h=lambda: _r(2, 5, 8),
        mask=lambda: _mask(2, 5),
    ),
    call(
        "blocks.CrossAttention",
        dim=8,
        num_heads=2,
        memory_dim=6,
        qkv_bias=True,
        proj_bias=True,
        scale=None,
    ),
    forward(
        "blocks.CrossAttention",
        lambda: _module("blocks.CrossAttention", 8, 2, 6),
        x=lambda: _r(2, 3, 8),
        memory=lambda: _r(2, 5, 6),
        mask=lambda: _mask(3, 5),
        key_mask=lambda: _mask(2, 5),
        return_weights=True,
    ),
    call("blocks.DecoderBlock", dim=8, num_heads=2, memory_dim=6, mlp_ratio=4.0, norm_eps=1e-5),
    forward(
        "blocks.DecoderBlock",
        lambda: _module("blocks.DecoderBlock", 8, 2, 6),
        x=lambda: _r(2, 3, 8),
        memory=lambda: _r(2, 5, 6),
        mask=lambda: _mask(3, 3),
        memory_mask=lambda: _mask(2, 5),
    ),
    # spatial
    call("spatial.channel_pool", x=lambda: _r(2, 3, 4, 4)),
    call(
        "spatial.SpatialGate",
        {"kernel_size": Kind("odd int", (0, 4, -1, True, 3.0))},
        kernel_size=7,
    ),
    forward(
        "spatial.SpatialGate", lambda: _module("spatial.SpatialGate"), x=lambda: _r(2, 3, 4, 4)
    ),
    call(
        "spatial.QuerySpatialAttention",
        {"query": choice("learned", "global")},
        channels=3,
        query_dim=None,
        query="learned",
    ),
    forward(
        "spatial.QuerySpatialAttention",
        lambda: _module("spatial.QuerySpatialAttention", 3),
        x=lambda: _r(2, 3, 4, 4),
    ),
    call(
        "spatial.HardSpatialAttention",
        {"query": choice("learned", "global"), "sample": BOOL, "glimpses": POS_INT},
        channels=3,
        query_dim=None,
        query="learned",
        sample=False,
        glimpses=2,
    ),
    forward(
        "spatial.HardSpatialAttention",
        lambda: _module("spatial.HardSpatialAttention", 3, glimpses=2),
        x=lambda: _r(2, 3, 4, 4),
    ),
    call(
        "spatial.reinforce_loss",
        {"baseline": BOOL},
        log_prob=lambda: -torch.rand(3, generator=gen(0)),
        reward=lambda: torch.tensor([1.0, 0.0, 1.0]),
        baseline=True,
    ),
    call(
        "spatial.attention_mass_in_box",
        {
            "canvas": POS_INT,
            "boxes": Kind(
                "int boxes",
                (torch.zeros(2, 4), [[0, 0, 4, 4]] * 2, None, torch.zeros(2, 3, dtype=torch.long)),
            ),
        },
        maps=lambda: torch.rand(2, 4, 4, generator=gen(0)),
        boxes=lambda: torch.tensor([[0, 0, 4, 4], [2, 2, 6, 8]]),
        canvas=8,
    ),
    call(
        "spatial.pointing_game",
        {"canvas": POS_INT},
        maps=lambda: torch.rand(2, 4, 4, generator=gen(0)),
        boxes=lambda: torch.tensor([[0, 0, 4, 4], [2, 2, 6, 8]]),
        canvas=8,
    ),
    # channel
    call(
        "channel.make_rd_channels", channels=64, rd_ratio=0.25, rd_channels=None, min_rd_channels=1
    ),
    call("channel.eca_kernel_size", {"beta": REAL}, channels=64, gamma=2.0, beta=1.0),
    call("channel.SqueezeExcitation", channels=8, rd_ratio=0.25, rd_channels=None),
    forward(
        "channel.SqueezeExcitation",
        lambda: _module("channel.SqueezeExcitation", 8),
        x=lambda: _r(2, 8, 4, 4),
    ),
    call(
        "channel.EfficientChannelAttention",
        {"beta": REAL},
        channels=8,
        gamma=2.0,
        beta=1.0,
        kernel_size=None,
    ),
    forward(
        "channel.EfficientChannelAttention",
        lambda: _module("channel.EfficientChannelAttention", 8),
        x=lambda: _r(2, 8, 4, 4),
    ),
    call("channel.ChannelGate", channels=8, rd_ratio=0.25, rd_channels=None),
    forward(
        "channel.ChannelGate", lambda: _module("channel.ChannelGate", 8), x=lambda: _r(2, 8, 4, 4)
    ),
    call(
        "channel.CBAM",
        {"kernel_size": Kind("odd int", (0, 4, True))},
        channels=8,
        rd_ratio=0.25,
        kernel_size=7,
    ),
    forward("channel.CBAM", lambda: _module("channel.CBAM", 8), x=lambda: _r(2, 8, 4, 4)),
    call(
        "channel.make_channel_attention",
        {"attention": Kind("choice", ("nonsense", 3))},
        attention="se",
        channels=8,
        rd_ratio=0.25,
    ),
    # branch
    call("branch.sk_rd_channels", channels=64, rd_ratio=0.25, min_rd_channels=8),
    call("branch.default_groups", in_channels=64, out_channels=64, max_groups=32),
    call("branch.fuse_branches", branches=lambda: _r(2, 2, 8, 4, 4)),
    call(
        "branch.select_branches",
        branches=lambda: _r(2, 2, 8, 4, 4),
        weights=lambda: torch.softmax(_r(2, 2, 8, seed=1), 1),
    ),
    call(
        "branch.SelectiveKernel",
        {"kernel_sizes": Kind("odd ints", ((3, 4), (), 3, (0, 3)))},
        skip=("act_layer",),
        in_channels=8,
        out_channels=8,
        stride=1,
        kernel_sizes=(3, 5),
        dilate=True,
        groups=None,
        rd_ratio=0.25,
        min_rd_channels=4,
        rd_channels=None,
    ),
    forward(
        "branch.SelectiveKernel",
        lambda: _module("branch.SelectiveKernel", 8),
        x=lambda: _r(2, 8, 6, 6),
    ),
    # self_attention
    call(
        "self_attention.position_self_attention",
        q=lambda: _r(2, 4, 3, 3),
        k=lambda: _r(2, 4, 3, 3, seed=1),
        v=lambda: _r(2, 5, 3, 3, seed=2),
        scale=None,
        mask=lambda: _mask(2, 9, 9),
    ),
    call(
        "self_attention.NonLocalBlock",
        channels=8,
        rd_ratio=0.5,
        rd_channels=None,
        scale=True,
        subsample=False,
        use_bn=True,
    ),
    forward(
        "self_attention.NonLocalBlock",
        lambda: _module("self_attention.NonLocalBlock", 8),
        x=lambda: _r(2, 8, 4, 4),
    ),
    call(
        "self_attention.mean_attention_distance",
        weights=lambda: torch.softmax(_r(2, 16, 16), -1),
        grid=(4, 4),
    ),
    call("self_attention.relative_position_bias", table=lambda: _r(2, 7), length=4),
    # multi_head
    call(
        "multi_head.VisionTransformer",
        {"stem_channels": STEM},
        img_size=8,
        patch_size=2,
        in_channels=1,
        num_classes=3,
        dim=8,
        depth=1,
        num_heads=2,
        mlp_ratio=2.0,
        class_token=True,
        stem_channels=0,
    ),
    forward(
        "multi_head.VisionTransformer",
        lambda: _module("multi_head.VisionTransformer", 8, 2, 1, 3, 8, 1, 2),
        x=lambda: _r(2, 1, 8, 8),
    ),
    call("multi_head.sinusoidal_position_embedding", num_positions=5, dim=8),
    call(
        "multi_head.attention_rollout",
        {
            "attentions": Kind("list of maps", ([], 3, None)),
            "discard_ratio": FRACTION,
            "head_fusion": choice("mean", "max", "min"),
        },
        attentions=_attentions,
        head_fusion="mean",
        discard_ratio=0.0,
    ),
    call(
        "multi_head.class_token_rollout",
        {
            "attentions": Kind("list of maps", ([], 3, None)),
            "discard_ratio": FRACTION,
            "head_fusion": choice("mean", "max", "min"),
        },
        attentions=_attentions,
        grid=(2, 2),
        head_fusion="mean",
        discard_ratio=0.0,
    ),
    # global_attention
    call("global_attention.GlobalAttention", dim=8, num_heads=2, qkv_bias=True, scale=None),
    forward(
        "global_attention.GlobalAttention",
        lambda: _module("global_attention.GlobalAttention", 8, 2),
        x=lambda: _r(2, 5, 8),
    ),
    call("global_attention.patchify", images=lambda: _r(2, 3, 8, 8), patch_size=4),
    # local_attention
    call("local_attention.window_partition", x=lambda: _r(2, 8, 8, 3), window_size=4),
    call(
        "local_attention.window_reverse",
        windows=lambda: _r(8, 4, 4, 3),
        window_size=4,
        height=8,
        width=8,
    ),
    call("local_attention.relative_position_index", window_size=4),
    call(
        "local_attention.WindowAttention",
        dim=8,
        window_size=2,
        num_heads=2,
        qkv_bias=True,
        relative_position_bias=True,
    ),
    forward(
        "local_attention.WindowAttention",
        lambda: _module("local_attention.WindowAttention", 8, 2, 2),
        x=lambda: _r(3, 4, 8),
        mask=lambda: _mask(3, 4, 4),
    ),
    call(
        "local_attention.shifted_window_mask",
        {"shift_size": NONNEG_INT},
        height=8,
        width=8,
        window_size=4,
        shift_size=2,
    ),
    call(
        "local_attention.ShiftedWindowAttention",
        {"shift_size": NONNEG_INT},
        dim=8,
        window_size=2,
        num_heads=2,
        shift_size=1,
        qkv_bias=True,
        relative_position_bias=True,
    ),
    forward(
        "local_attention.ShiftedWindowAttention",
        lambda: _module("local_attention.ShiftedWindowAttention", 8, 2, 2, 1),
        x=lambda: _r(2, 4, 4, 8),
    ),
    call(
        "local_attention.neighborhood_index",
        {"kernel_size": Kind("odd int", (0, 4, True))},
        height=5,
        width=5,
        kernel_size=3,
    ),
    call(
        "local_attention.NeighborhoodAttention",
        {"kernel_size": Kind("odd int", (0, 4, True, 3.0))},
        dim=8,
        kernel_size=3,
        num_heads=2,
        qkv_bias=True,
        relative_position_bias=True,
    ),
    forward(
        "local_attention.NeighborhoodAttention",
        lambda: _module("local_attention.NeighborhoodAttention", 8, 3, 2),
        x=lambda: _r(2, 5, 5, 8),
    ),
    call(
        "local_attention.window_token_index",
        {"shift_size": NONNEG_INT},
        height=8,
        width=8,
        window_size=4,
        shift_size=0,
    ),
    call(
        "local_attention.to_dense",
        {
            "kind": choice("window", "neighborhood"),
            "index": Kind(
                "int64 index",
                (torch.zeros(4, 4), torch.full((4, 4), -1), torch.full((4, 4), 16), None, [[0]]),
            ),
        },
        weights=lambda: torch.softmax(_r(4, 1, 4, 4), -1),
        index=lambda: _fn("local_attention.window_token_index")(4, 4, 2),
        kind="window",
    ),
    call(
        "local_attention.score_entries",
        {"kind": choice("global", "window", "neighborhood")},
        height=8,
        width=8,
        kind="window",
        size=4,
        num_heads=1,
    ),
    # hierarchical
    call("hierarchical.PatchMerging", dim=8),
    forward(
        "hierarchical.PatchMerging",
        lambda: _module("hierarchical.PatchMerging", 8),
        x=lambda: _r(2, 4, 4, 8),
    ),
    call(
        "hierarchical.SwinBlock",
        {"shift_size": NONNEG_INT},
        dim=8,
        num_heads=2,
        input_resolution=(4, 4),
        window_size=2,
        shift_size=1,
        mlp_ratio=2.0,
    ),
    forward(
        "hierarchical.SwinBlock",
        lambda: _module("hierarchical.SwinBlock", 8, 2, (4, 4), 2),
        x=lambda: _r(2, 4, 4, 8),
    ),
    call(
        "hierarchical.SwinStage",
        dim=8,
        depth=2,
        num_heads=2,
        input_resolution=(4, 4),
        window_size=2,
        mlp_ratio=2.0,
        downsample=True,
    ),
    forward(
        "hierarchical.SwinStage",
        lambda: _module("hierarchical.SwinStage", 8, 2, 2, (4, 4), 2),
        x=lambda: _r(2, 4, 4, 8),
    ),
    call(
        "hierarchical.SwinTransformer",
        {
            "depths": Kind("positive ints", ((0,), (), 2, (2.5,))),
            "num_heads": Kind("positive ints", ((0,), (), 2)),
        },
        img_size=8,
        patch_size=2,
        in_channels=1,
        num_classes=3,
        dim=8,
        depths=(2,),
        num_heads=(2,),
        window_size=2,
        mlp_ratio=2.0,
    ),
    forward(
        "hierarchical.SwinTransformer",
        lambda: _module("hierarchical.SwinTransformer", 8, 2, 1, 3, 8, (2,), (2,), 2),
        images=lambda: _r(2, 1, 8, 8),
    ),
    call("hierarchical.swin_tiny", num_classes=10),
    call("hierarchical.image_regions", x=lambda: _r(2, 3, 4, 4), region_size=2),
    call(
        "hierarchical.HierarchicalAttentionPooling",
        dim=8,
        region_size=2,
        hidden_dim=None,
        encode_regions=False,
    ),
    forward(
        "hierarchical.HierarchicalAttentionPooling",
        lambda: _module("hierarchical.HierarchicalAttentionPooling", 8, 2),
        x=lambda: _r(2, 8, 4, 4),
    ),
    # temporal
    call("temporal.causal_mask", {"device": Kind("device", (3, 2.5))}, frames=4, device=None),
    call(
        "temporal.TemporalSelfAttention",
        {"mode": choice("pixel", "frame")},
        dim=8,
        mode="pixel",
        causal=False,
    ),
    forward(
        "temporal.TemporalSelfAttention",
        lambda: _module("temporal.TemporalSelfAttention", 8),
        x=lambda: _r(2, 3, 8, 2, 2),
    ),
    # memory
    call(
        "memory.memory_read",
        query=lambda: _r(2, 4),
        keys=lambda: _r(2, 5, 4, seed=1),
        values=lambda: _r(2, 5, 3, seed=2),
        mask=lambda: _mask(2, 5),
        scale=1.0,
        temperature=1.0,
    ),
    call("memory.KeyValueMemory", dim=4, hops=2, scale=1.0, temperature=1.0),
    forward(
        "memory.KeyValueMemory",
        lambda: _module("memory.KeyValueMemory", 4),
        query=lambda: _r(2, 4),
        keys=lambda: _r(2, 5, 4, seed=1),
        values=lambda: _r(2, 5, 4, seed=2),
        mask=lambda: _mask(2, 5),
    ),
    call("memory.ExternalAttention", dim=8, memory_size=6),
    forward(
        "memory.ExternalAttention",
        lambda: _module("memory.ExternalAttention", 8, 6),
        x=lambda: _r(2, 5, 8),
        mask=lambda: _mask(2, 5),
    ),
    # efficient
    call(
        "efficient.chunked_attention",
        q=lambda: _r(2, 6, 4),
        k=lambda: _r(2, 7, 4, seed=1),
        v=lambda: _r(2, 7, 3, seed=2),
        chunk_size=3,
        scale=None,
        mask=lambda: _mask(2, 6, 7),
    ),
    call(
        "efficient.linear_attention",
        {"eps": NONNEG_FLOAT},
        q=lambda: _r(2, 6, 4),
        k=lambda: _r(2, 7, 4, seed=1),
        v=lambda: _r(2, 7, 3, seed=2),
        eps=1e-6,
    ),
    call(
        "efficient.online_softmax_update",
        running_max=lambda: torch.full((2, 1), -math.inf),
        running_sum=lambda: torch.zeros(2, 1),
        out=lambda: torch.zeros(2, 3),
        scores=lambda: _r(2, 4),
        values=lambda: _r(2, 4, 3, seed=1),
    ),
    call(
        "efficient.online_softmax_trace",
        query=lambda: _r(4),
        keys=lambda: _r(6, 4, seed=1),
        values=lambda: _r(6, 3, seed=2),
        chunk_size=2,
        scale=1.0,
    ),
    # resnet
    call(
        "resnet.BasicBlock",
        {"attention": Kind("choice", ("nonsense", 3))},
        in_channels=8,
        planes=8,
        stride=1,
        attention="se",
    ),
    forward(
        "resnet.BasicBlock", lambda: _module("resnet.BasicBlock", 8, 8), x=lambda: _r(2, 8, 4, 4)
    ),
    call(
        "resnet.Bottleneck",
        {"attention": Kind("choice", ("nonsense", 3))},
        in_channels=8,
        planes=4,
        stride=1,
        attention="se",
    ),
    forward(
        "resnet.Bottleneck", lambda: _module("resnet.Bottleneck", 16, 4), x=lambda: _r(2, 16, 4, 4)
    ),
    call(
        "resnet.ResNet",
        {
            "block": Kind("block class", (3, None, torch.nn.Linear)),
            "layers": Kind("4 positive ints", ((1, 1), (0, 1, 1, 1), 3, (1.5, 1, 1, 1))),
            "attention": Kind("choice", ("nonsense", 3)),
        },
        block=lambda: _fn("resnet.BasicBlock"),
        layers=(1, 1, 1, 1),
        num_classes=3,
        attention=None,
        width=8,
        in_channels=1,
        small_input=True,
    ),
    forward(
        "resnet.ResNet",
        lambda: _module(
            "resnet.ResNet", _fn("resnet.BasicBlock"), (1, 1, 1, 1), 3, None, 8, 1, True
        ),
        x=lambda: _r(2, 1, 8, 8),
    ),
    call(
        "resnet.resnet",
        {
            "depth": Kind("depth", (0, 17, True, "18", None)),
            "attention": Kind("choice", ("nonsense", 3)),
        },
        depth=18,
        num_classes=3,
        attention=None,
        width=8,
        in_channels=1,
        small_input=True,
    ),
    call(
        "resnet.make_attention",
        {"attention": Kind("choice", ("nonsense", 3))},
        attention="cbam",
        channels=8,
    ),
    # data
    call(
        "data.load_photo",
        {"name": Kind("photo name", ("nonsense", 3, None))},
        name="coins",
        size=(16, 24),
    ),
    call(
        "data.patch_features",
        image=lambda: torch.rand(3, 32, 32, generator=gen(0)),
        patch=8,
        standardise=True,
        unit=False,
    ),
    call("data.load_digits", {"split": Kind("split", ("nonsense", 3))}, split="test"),
    call(
        "data.cluttered_digits",
        {
            "split": choice("train", "test"),
            "seed": NONNEG_INT,
            "distractors": NONNEG_INT,
            "noise": NONNEG_FLOAT,
            "fragment": Kind("fraction", (0.0, 1.5, NAN, True, "x")),
        },
        n=4,
        canvas=24,
        digit_sizes=(8, 12),
        distractors=2,
        noise=0.1,
        split="test",
        seed=0,
        fragment=0.5,
        distractor_size=None,
    ),
    call(
        "data.digit_clips",
        {"split": choice("train", "test"), "seed": NONNEG_INT, "noise": NONNEG_FLOAT},
        n=4,
        frames=5,
        canvas=16,
        visible=(2, 3),
        noise=0.1,
        split="test",
        seed=0,
    ),
    # train
    call("train.seed_everything", {"seed": NONNEG_INT}, seed=0),
    call(
        "train.evaluate",
        {"model": Kind("module", (3, None))},
        model=_digits_model,
        x=lambda: _r(5, 4, 4),
        y=lambda: torch.tensor([0, 1, 2, 1, 0]),
        batch_size=2,
    ),
    call(
        "train.fit",
        {
            "model": Kind("module", (3, None)),
            "train": Kind("(x, y)", ((), 3, None)),
            "seed": NONNEG_INT,
            "weight_decay": NONNEG_FLOAT,
            "label_smoothing": FRACTION,
            "optimizer": choice("adam", "adamw", "sgd"),
            "warmup_epochs": optional(NONNEG_INT),
            "max_shift": NONNEG_INT,
        },
        model=_digits_model,
        train=lambda: (_r(5, 4, 4), torch.tensor([0, 1, 2, 1, 0])),
        epochs=1,
        lr=1e-2,
        batch_size=2,
        weight_decay=0.0,
        seed=0,
        progress=False,
        optimizer="adam",
        warmup_epochs=None,
        label_smoothing=0.0,
        max_shift=0,
    ),
    call(
        "train.fit_seeds",
        {
            "train": Kind("(x, y)", ((), 3, None)),
            "test": Kind("(x, y)", ((), 3, None)),
            "seeds": Kind("seeds", ((), (-1,), 3, None, (True,))),
            "epochs": POS_INT,
        },
        skip=("make_model",),
        make_model=_digits_model,
        train=lambda: (_r(5, 4, 4), torch.tensor([0, 1, 2, 1, 0])),
        test=lambda: (_r(3, 4, 4), torch.tensor([0, 1, 2])),
        seeds=(0,),
        epochs=1,
    ),
    call(
        "train.count_parameters",
        {"model": Kind("module", (3, None))},
        model=_digits_model,
        trainable_only=True,
    ),
    call(
        "train.random_shift",
        {"max_shift": NONNEG_INT, "generator": Kind("generator", (3, "g"))},
        images=lambda: _r(3, 1, 6, 6),
        max_shift=1,
        generator=lambda: gen(0),
    ),
    call(
        "train.warmup_cosine",
        {"step": NONNEG_INT, "warmup_steps": NONNEG_INT},
        step=3,
        total_steps=10,
        warmup_steps=2,
    ),
    # views.viz
    call(
        "views.viz.to_numpy_image",
        {"image": IMAGE},
        image=lambda: torch.rand(3, 4, 4, generator=gen(0)),
    ),
    call(
        "views.viz.colorize",
        {
            "values": Kind("2-d array", (None, "x", 3)),
            "vmax": optional(POS_FLOAT),
            "alpha": UNIT,
            "cmap": STR,
        },
        values=lambda: torch.rand(4, 4, generator=gen(0)).numpy(),
        vmax=None,
        cmap="magma",
        alpha=1.0,
    ),
    call(
        "views.viz.data_uri",
        {
            "array": Kind("image array", (None, "x", 3)),
            "fmt": choice("png", "jpeg"),
            "quality": Kind("1..100", (0, 101, True, 2.5)),
        },
        array=lambda: (torch.rand(4, 4, 3, generator=gen(0)).numpy() * 255).astype("uint8"),
        fmt="png",
        quality=80,
    ),
    call(
        "views.viz.photo_style",
        {"image": IMAGE},
        image=lambda: torch.rand(3, 4, 4, generator=gen(0)),
        grey=True,
    ),
    call(
        "views.viz.attention_overlay_html",
        {"alpha": UNIT, "css_class": STR, "caption": STR},
        css_class="c",
        weights=lambda: torch.rand(4, 4, generator=gen(0)),
        size=(40, 40),
        query=(1, 2),
        alpha=0.7,
        caption="x",
    ),
    call(
        "views.viz.bars_html",
        {
            "values": Kind("numbers", (None, 3, ["a"])),
            "names": Kind("names", (None, 3, ["a"])),
            "title": STR,
            "vmax": optional(POS_FLOAT),
        },
        values=[0.2, 0.8],
        names=["a", "b"],
        title="t",
        vmax=None,
    ),
    call(
        "views.viz.plot_attention",
        {"alpha": UNIT, "title": STR, "image": IMAGE},
        skip=("ax",),
        image=lambda: torch.rand(3, 4, 4, generator=gen(0)),
        weights=lambda: torch.rand(4, 4, generator=gen(1)),
        query=(1, 2),
        title="t",
        alpha=0.6,
    ),
    # views.widgets
    call("views.widgets.html_view", {"value": STR}, value="<b>x</b>"),
    call(
        "views.widgets.precomputed_explorer",
        {"controls": Kind("mapping of options", (None, 3, {"a": []}))},
        skip=("render",),
        controls={"a": [1, 2]},
        render=lambda a: _fn("views.widgets.html_view")(str(a)),
    ),
    call(
        "views.widgets.attention_explorer",
        {
            "temperature": POS_FLOAT,
            "scale": POS_FLOAT,
            "prefix": NONNEG_INT,
            "query": NONNEG_INT,
            "controls": Kind("controls", (("nonsense",), 3)),
        },
        **_explorer_kwargs(),
        temperature=1.0,
        scale=1.0,
        prefix=0,
        query=0,
        controls=("temperature",),
    ),
    call(
        "views.widgets.reference_attention",
        {"query": NONNEG_INT, "layer": NONNEG_INT, "head": NONNEG_INT, "prefix": NONNEG_INT},
        queries=lambda: _r(16, 4),
        keys=lambda: _r(16, 4, seed=1),
        values=lambda: _r(16, 3, seed=2),
        query=3,
        scale=1.0,
        temperature=1.0,
        layer=0,
        head=0,
        grid=(4, 4),
        prefix=0,
    ),
    call(
        "views.widgets.window_keys_mask",
        {"query": NONNEG_INT, "shift": NONNEG_INT, "prefix": NONNEG_INT, "window": NONNEG_INT},
        grid=(4, 4),
        query=3,
        window=2,
        shift=1,
        prefix=0,
    ),
    call("views.widgets.count_views", {"explorer": Kind("explorer", (3, None, "x"))}, explorer=_explorer),
    call(
        "views.widgets.explorer_view",
        {"explorer": Kind("explorer", (3, None, "x")), "a": Kind("value", (3.5, "z", None)), "b": Kind("value", (3, None))},
        explorer=_explorer,
        a=2,
        b="x",
    ),
    # views.browser_model, views.model_explorer
    call(
        "views.browser_model.export_model",
        {"model": Kind("module", (3, None)), "outputs": Kind("names", (3, "out", [3], ("a", "b"), ()))},
        model=_tiny_model,
        example=lambda: _r(1, 1, 4, 4),
        outputs=("out",),
    ),
    call(
        "views.browser_model.with_attention",
        {"model": Kind("module", (3, None)), "names": Kind("names", (3, "pool", [3]))},
        model=_tiny_model,
        names=["pool"],
    ),
    call(
        "views.browser_model.run_graph",
        {"model": Kind("BrowserModel", (3, None, "m"))},
        model=lambda: _fn("views.browser_model.export_model")(_tiny_model(), _r(1, 1, 4, 4)),
        x=lambda: _r(1, 1, 4, 4),
    ),
    call(
        "views.model_explorer.model_explorer",
        {
            "model": Kind("BrowserModel", (3, None, "m")),
            "example_names": Kind("names", (None, 3, ["a"], ["a", "b", "c"], [None, "b"])),
            "views": Kind("views", (None, (), "v", {"kind": "probs"}, [{"kind": "pie", "output": "logits"}],
                                    [{"kind": "probs", "output": "nope"}])),
            "canvas_names": Kind("names", (3, ["a", "b"], [None])),
            "slot_images": Kind("images", (3, "x")),
            "display": POS_INT,
            "brush": POS_FLOAT,
            "alpha": UNIT,
            "caption": STR,
        },
        model=_exported,
        examples=lambda: torch.rand(2, 1, 4, 4, generator=gen(0)),
        example_names=["a", "b"],
        views=lambda: [
            _fn("views.model_explorer.probs")("m", "logits"),
            _fn("views.model_explorer.overlay")("m", "map"),
        ],
        canvas_names=["c"],
        slot_images=None,
        display=120,
        brush=1.5,
        alpha=0.5,
        caption="c",
    ),
    call("views.model_explorer.labelled", {"labels": Kind("labels", (None, [0, 1], torch.zeros(2))), "what": STR},
         labels=lambda: torch.tensor([3, 1]), what="digit"),
    call("views.model_explorer.probs", {"name": STR, "logits": STR, "classes": Kind("names", (None, 3, "ab", [], [None]))},
         name="m", logits="logits", classes=("a", "b")),
    call("views.model_explorer.overlay", {"name": STR, "output": STR, "canvas": NONNEG_INT},
         name="m", output="map", canvas=0),
    call(
        "views.model_explorer.maps",
        {"name": STR, "output": STR, "labels": Kind("names", (None, 3, "ab", [], [None])), "canvas": NONNEG_INT,
          "regions": Kind("regions", (3, [("a", 0, 0)], [(3, 0, 0, 1, 1)], [("a", -1, 0, 1, 1)]))},
        name="m", output="maps", labels=["h0", "h1"], canvas=0, regions=[("left", 0, 0, 4, 2)],
    ),
    call("views.model_explorer.bars", {"name": STR, "output": STR, "labels": Kind("names", (None, 3, "ab", [], [None])), "vmax": POS_FLOAT,
                                        "per_canvas": BOOL},
         name="b", output="gates", labels=["a", "b"], vmax=1.0, per_canvas=False),
    call("views.model_explorer.slots", {"name": STR, "output": STR, "labels": Kind("names", (None, 3, "ab", [], [None])), "top": POS_INT},
         name="s", output="w", labels=["a", "b"], top=1),
    call(
        "views.model_explorer.tokens",
        {"name": STR, "output": STR, "grid": Kind("(rows, cols)", (None, 0, (0, 2), (2,), "2")),
          "rollout": optional(STR), "prefix": NONNEG_INT, "canvas": NONNEG_INT, "query": NONNEG_INT},
        name="t", output="attention", grid=(2, 2), rollout="rollout", prefix=1, canvas=0, query=0,
    ),
    call("views.model_explorer.lens", {"name": STR, "output": STR, "layers": Kind("names", (None, 3, "ab", [], [None])), "classes": Kind("names", (None, 3, "ab", [], [None]))},
         name="l", output="lens", layers=["1", "2"], classes=("a", "b")),
    call("views.model_explorer.boxes", {"name": STR, "output": STR, "scores": STR, "labels": Kind("names", (None, 3, "ab", [], [None])),
                                         "classes": Kind("names", (None, 3, "ab", [], [None])), "none": Kind("class index or None", (-1, 2, 1.5, "0", True)),
                                         "attention": optional(STR), "canvas": NONNEG_INT},
         name="q", output="boxes", scores="classes", labels=["q1", "q2"], classes=("a", "b"), none=1, attention="maps", canvas=0),
    # views.diagrams, views.evidence
    call("views.diagrams.attention_flowchart", {"rankdir": choice("TB", "LR")}, rankdir="LR"),
    call(
        "views.evidence.report_evidence",
        {
            "chapter": STR,
            "claim": STR,
            "metric": STR,
            "attention": Kind("(name, values)", (None, ("a", []), ("a", [NAN, 1.0, 1.0]), 3)),
            "control": Kind("(name, values)", (("a", []), 3, ("a", [1.0, 1.0, 1.0], -1))),
            "min_standard_errors": NONNEG_FLOAT,
            "floor": optional(REAL),
            "chance": optional(REAL),
            "require_fair_control": BOOL,
        },
        chapter="c",
        claim="x",
        metric="accuracy",
        attention=("a", [0.9, 0.91, 0.92]),
        control=("b", [0.5, 0.52, 0.51]),
        higher_is_better=True,
        min_standard_errors=3.0,
        floor=None,
        display=False,
    ),
    call("views.evidence.quote", {"speed": STR}, display=False, speed="1.0 ms"),
    call(
        "views.evidence.paired_interval",
        {"a": Kind("scores", (None, 3, [1.0], [NAN, 1.0], "ab")), "b": Kind("scores", (None, 3, [1.0], [NAN, 1.0], [1.0, 0.0, 1.0, 1.0]))},
        a=[1.0, 0.0, 1.0],
        b=[0.0, 0.0, 1.0],
    ),
]

#: Public callables that are covered by another spec or have no arguments to break.
COVERED_ELSEWHERE = {
    "AttentionModule": "a base class; its subclasses' specs cover it",
    "History": "a dataclass of results that fit() fills in",
    "SeedRuns": "a NamedTuple of results that fit_seeds() fills in",
    "Evidence": "made by report_evidence, which is under contract",
    "Quotes": "made by quote, which is under contract",
    "AttentionExplorer": "made by attention_explorer, which is under contract",
    "BrowserModel": "a dataclass that export_model fills in",
    "ModelExplorer": "made by model_explorer, which is under contract",
}


def public_callables(modules: tuple[str, ...] | list[str] = (), qualified: bool = False) -> dict[str, Any]:
    """``{name: object}`` of every callable in the ``__all__`` of ``modules`` (default
    :data:`MODULES`); with ``qualified``, names are ``"<module>.<name>"``."""
    out = {}
    for m in modules or MODULES:
        module = importlib.import_module(f"visual_attention.{m}")
        for n in module.__all__:
            obj = getattr(module, n)
            if callable(obj):
                out[f"{m}.{n}" if qualified else n] = obj
    return out
