"""Fixtures for the runtime's unit tests: every ATen operation of model_runtime.js, run by PyTorch.

    python tests/js/make_fixtures.py [OUT_DIR]      (default: tests/js/fixtures, committed)
    python tests/js/make_fixtures.py --models DIR   (whole exported models, at test time)

For each operation the exporter emits (``views.browser_model.OPS``) this writes ``<op>.json``:
small graphs in the exporter's own format (one node, or a few where the case is an in-place alias
or a list built and unpacked), their float32 weights, and what PyTorch computes for them. The
inputs are float32; PyTorch computes the expected values from them in float64 (the runtime's
arithmetic) and they are stored rounded to float32. Edge cases: empty tensors, broadcasting,
scalars, in-place operations that alias their input (and a later node reading it), ±inf and NaN.
``tests/js/ops.test.mjs`` runs every graph with ``loadModel`` in node and compares (1e-5
relative, 1e-6 absolute near zero); ``tests/test_js_fixtures.py`` checks that regenerating gives
the committed files.

Left out, where the runtime knowingly differs: non-finite operands of matrix products and
convolutions (matmul skips zero multipliers, so 0 * inf gives 0, not NaN; Winograd's input
transform takes differences, so inf - inf gives NaN), and the erf form of gelu at +inf (PyTorch
gives NaN, the runtime inf).
"""

from __future__ import annotations

import base64
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from visual_attention.views.browser_model import OPS, _scalar, export_model

HERE = Path(__file__).parent
INF, NAN = math.inf, math.nan
aten = torch.ops.aten


def _number(v: float) -> float | str:
    """A float32 value for JSON: the shortest decimal that reads back as the same float32."""
    v = np.float32(v)
    if np.isnan(v):
        return "nan"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    return float(str(v))


def encode(value: object) -> object:
    """What PyTorch returned, as JSON: tensors as {shape, dtype, data}, lists item by item."""
    if isinstance(value, torch.Tensor):
        # float tensors are float32 (PyTorch computed them in float64 from float32 inputs)
        dtype = "float32" if value.is_floating_point() else str(value.dtype).removeprefix("torch.")
        flat = value.detach().reshape(-1)
        if value.is_floating_point():
            data = [_number(v) for v in flat.to(torch.float32).tolist()]
        else:
            data = [int(v) for v in flat.tolist()]
        return {"shape": list(value.shape), "dtype": dtype, "data": data}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, float):
        return _number(value)
    return value


class Const:
    """A constant the graph stores as ``graph`` and PyTorch is given as ``torch``."""

    def __init__(self, graph: object, torch_value: object) -> None:
        self.graph, self.torch = graph, torch_value


class Graph:
    """A graph in export_model's format, built node by node."""

    def __init__(self) -> None:
        self.constants, self.tensors, self.nodes, self.weights = {}, {}, [], []
        self.count = 0

    def _id(self) -> str:
        self.count += 1
        return f"v{self.count}"

    def arg(self, value: object) -> str:
        if isinstance(value, torch.Tensor):
            key = self._id()
            entry = {"shape": list(value.shape), "offset": len(self.weights)}
            if not value.is_floating_point():
                entry["dtype"] = str(value.dtype).removeprefix("torch.")
            self.tensors[key] = entry
            self.weights += [_number(v) for v in value.reshape(-1).float().tolist()]
            return key
        if isinstance(value, list) and value and all(isinstance(v, torch.Tensor) for v in value):
            return self.node("ListConstruct", *value)[0]
        key = self._id()
        self.constants[key] = _scalar(value.graph if isinstance(value, Const) else value)
        return key

    def node(self, op: str, *args: object, kw: dict | None = None, outs: int = 1) -> list[str]:
        ins = [a[1:] if isinstance(a, str) and a.startswith("@") else self.arg(a) for a in args]
        ins += [self.arg(v) for v in (kw or {}).values()]
        out = [self._id() for _ in range(outs)]
        entry = {"op": op, "in": ins, "out": out}
        if kw:
            entry["kw"] = list(kw)
        self.nodes.append(entry)
        return out

    def case(self, name: str, outputs: dict[str, str], expected: dict[str, object]) -> dict:
        graph = {
            "inputs": ["input"],
            "outputs": list(outputs.values()),
            "names": list(outputs),
            "constants": self.constants,
            "tensors": self.tensors,
            "nodes": self.nodes,
        }
        return {
            "name": name,
            "graph": graph,
            "weights": self.weights,
            "expected": {k: encode(expected[k]) for k in outputs},
        }


def _torch(value: object) -> object:
    """An argument as PyTorch takes it, float tensors in float64 (the runtime's arithmetic)."""
    if isinstance(value, Const):
        return value.torch
    if isinstance(value, torch.Tensor):
        return value.double() if value.is_floating_point() else value.clone()
    if isinstance(value, list) and value and all(isinstance(v, torch.Tensor) for v in value):
        return [_torch(v) for v in value]
    return value


def one(name: str, op: str, *args: object, kw: dict | None = None, fn=None) -> dict:
    """A one-node case: ``op`` on ``args`` (+ keyword-only ``kw``), checked against
    ``torch.ops.aten.<op>`` (or ``fn``) on the same arguments."""
    g = Graph()
    (out,) = g.node(op, *args, kw=kw)
    call = fn or getattr(aten, op)
    want = call(*[_torch(a) for a in args], **{k: _torch(v) for k, v in (kw or {}).items()})
    return g.case(name, {"out": out}, {"out": want})


# ----------------------------------------------------------------------------------------------


def cases(gen: torch.Generator) -> dict[str, list[dict]]:
    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=gen)

    def mask(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=gen) < 0.5

    special = torch.tensor([-INF, -30.0, -3.0, -0.5, -0.0, 0.0, 0.5, 3.0, 30.0, INF, NAN])
    finite = torch.tensor([-30.0, -3.0, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 3.0, 30.0])
    positive = torch.tensor([0.0, 1e-6, 0.25, 1.0, 2.0, 9.0, 1e6, INF, NAN])
    out: dict[str, list[dict]] = {}

    def conv(name, x, w, b, stride, padding, dilation, groups, transposed=False):
        args = (x, w, b, stride, padding, dilation, transposed, [0, 0], groups)
        return one(name, "_convolution", *args, False, False, True, True)

    out["_convolution"] = [
        # 3 x 3, stride 1, pad 1, C >= 4: the Winograd path (odd sizes: cut tiles, odd tile count)
        conv(
            "3x3 pad 1 winograd",
            randn(2, 5, 7, 9),
            randn(6, 5, 3, 3),
            randn(6),
            [1, 1],
            [1, 1],
            [1, 1],
            1,
        ),
        conv(
            "3x3 pad 0 winograd, no bias",
            randn(1, 8, 6, 6),
            randn(4, 8, 3, 3),
            None,
            [1, 1],
            [0, 0],
            [1, 1],
            1,
        ),
        conv(
            "3x3 direct: one input channel",
            randn(1, 1, 5, 6),
            randn(5, 1, 3, 3),
            randn(5),
            [1, 1],
            [1, 1],
            [1, 1],
            1,
        ),
        conv(
            "3x3 direct: groups",
            randn(1, 4, 5, 5),
            randn(6, 2, 3, 3),
            randn(6),
            [1, 1],
            [1, 1],
            [1, 1],
            2,
        ),
        conv(
            "depthwise 3x3",
            randn(1, 3, 4, 4),
            randn(3, 1, 3, 3),
            randn(3),
            [1, 1],
            [1, 1],
            [1, 1],
            3,
        ),
        conv(
            "5x5 stride 2 pad 2",
            randn(1, 2, 9, 8),
            randn(3, 2, 5, 5),
            randn(3),
            [2, 2],
            [2, 2],
            [1, 1],
            1,
        ),
        conv(
            "3x3 dilation 2 pad 2",
            randn(1, 2, 7, 7),
            randn(2, 2, 3, 3),
            randn(2),
            [1, 1],
            [2, 2],
            [2, 2],
            1,
        ),
        conv("1x1", randn(2, 3, 4, 5), randn(4, 3, 1, 1), randn(4), [1, 1], [0, 0], [1, 1], 1),
        conv(
            "4x4 stride 4 (patches)",
            randn(1, 1, 8, 8),
            randn(3, 1, 4, 4),
            randn(3),
            [4, 4],
            [0, 0],
            [1, 1],
            1,
        ),
        conv("batch 0", randn(0, 4, 5, 5), randn(4, 4, 3, 3), randn(4), [1, 1], [1, 1], [1, 1], 1),
    ]
    out["relu"] = [
        one("special values", "relu", special),
        one("empty", "relu", randn(0, 3)),
        one("2d", "relu", randn(3, 4)),
    ]
    for op in ("sigmoid", "tanh", "exp", "abs", "neg"):
        out[op] = [
            one("special values", op, special),
            one("2d", op, randn(2, 3)),
            one("empty", op, randn(0)),
        ]
    out["sqrt"] = [
        one("non-negative, inf, nan", "sqrt", positive),
        one("negative: nan", "sqrt", torch.tensor([-1.0, -0.0])),
        one("empty", "sqrt", randn(0)),
    ]
    out["gelu"] = [
        one("erf", "gelu", finite, kw={"approximate": "none"}),
        one("tanh", "gelu", finite, kw={"approximate": "tanh"}),
        one("erf, random", "gelu", randn(3, 4), kw={"approximate": "none"}),
        one("tanh: -inf, inf", "gelu", torch.tensor([-INF, INF, NAN]), kw={"approximate": "tanh"}),
    ]
    out["clamp_min"] = [
        one("special values", "clamp_min", special, 0.0),
        one("negative bound", "clamp_min", randn(2, 3), -0.25),
    ]
    out["pow"] = [
        one("tensor ^ 2", "pow", randn(2, 3), 2),
        one("tensor ^ 0.5", "pow", positive, 0.5),
        one("tensor ^ tensor, broadcast", "pow", rand(2, 3) + 0.5, randn(3)),
        one("special ^ 3", "pow", special, 3.0),
    ]
    out["max_pool2d"] = [
        one(
            "2x2 stride 2 (fast path)",
            "max_pool2d",
            randn(1, 3, 6, 8),
            [2, 2],
            [2, 2],
            [0, 0],
            [1, 1],
            False,
        ),
        one(
            "2x2 stride 2, odd size",
            "max_pool2d",
            randn(2, 1, 5, 7),
            [2, 2],
            [2, 2],
            [0, 0],
            [1, 1],
            False,
        ),
        one(
            "3x3 stride 1 pad 1",
            "max_pool2d",
            randn(1, 2, 5, 5),
            [3, 3],
            [1, 1],
            [1, 1],
            [1, 1],
            False,
        ),
        one(
            "default stride (= kernel)",
            "max_pool2d",
            randn(1, 2, 6, 6),
            [3, 3],
            [],
            [0, 0],
            [1, 1],
            False,
        ),
        one(
            "-inf and nan",
            "max_pool2d",
            torch.tensor([[[[-INF, -INF, 1.0, NAN], [-INF, -INF, 2.0, 0.0]]]]),
            [2, 2],
            [2, 2],
            [0, 0],
            [1, 1],
            False,
        ),
    ]
    out["avg_pool2d"] = [
        one(
            "2x2 stride 2",
            "avg_pool2d",
            randn(1, 2, 4, 6),
            [2, 2],
            [2, 2],
            [0, 0],
            False,
            True,
            None,
        ),
        one(
            "3x3 pad 1, padding counted",
            "avg_pool2d",
            randn(1, 1, 5, 5),
            [3, 3],
            [1, 1],
            [1, 1],
            False,
            True,
            None,
        ),
        one(
            "3x3 pad 1, padding not counted",
            "avg_pool2d",
            randn(1, 1, 5, 5),
            [3, 3],
            [1, 1],
            [1, 1],
            False,
            False,
            None,
        ),
    ]
    out["adaptive_avg_pool2d"] = [
        one("to 1x1", "adaptive_avg_pool2d", randn(2, 3, 4, 5), [1, 1]),
        one("to 2x3 (even split)", "adaptive_avg_pool2d", randn(1, 2, 4, 6), [2, 3]),
        one("inf", "adaptive_avg_pool2d", torch.tensor([[[[1.0, INF], [2.0, 3.0]]]]), [1, 1]),
    ]

    def size_case(name, x, *dim):
        g = Graph()
        (o,) = g.node("size", x, *dim)
        return g.case(name, {"out": o}, {"out": list(x.shape) if not dim else x.shape[dim[0]]})

    out["size"] = [
        size_case("dim 1", randn(2, 3, 4), 1),
        size_case("dim -1", randn(2, 3, 4), -1),
        size_case("all", randn(2, 0, 4)),
        size_case("scalar tensor", randn()),
    ]

    def lists(op, name):
        g = Graph()
        a, b = randn(2), randn(3, 1)
        (lst,) = g.node(op, a, b)
        o1, o2 = g.node(
            "ListUnpack" if op == "ListConstruct" else "TupleUnpack", f"@{lst}", outs=2
        )
        return g.case(
            name,
            {"list": lst, "first": o1, "second": o2},
            {"list": [a, b], "first": a, "second": b},
        )

    out["ListConstruct"] = [lists("ListConstruct", "two tensors, unpacked")]
    out["TupleConstruct"] = [lists("TupleConstruct", "two tensors, unpacked")]

    def unpack(op):
        g = Graph()
        x = randn(3, 2)
        (lst,) = g.node("unbind", x, 0)
        o = g.node(op, f"@{lst}", outs=3)
        return g.case("unbind, unpacked", dict(zip("abc", o)), dict(zip("abc", x.unbind(0))))

    out["ListUnpack"] = [lists("ListConstruct", "a built list"), unpack("ListUnpack")]
    out["TupleUnpack"] = [lists("TupleConstruct", "a built tuple"), unpack("TupleUnpack")]
    out["expand"] = [
        one("(3, 1) to (2, 3, 4)", "expand", randn(3, 1), [2, 3, 4], kw={"implicit": False}),
        one("-1 keeps a size", "expand", randn(1, 4), [3, -1], kw={"implicit": False}),
        one("to an empty size", "expand", randn(1, 4), [0, 4], kw={"implicit": False}),
    ]
    out["expand_as"] = [
        one("(1, 3) as (2, 3)", "expand_as", randn(1, 3), randn(2, 3)),
        one("scalar as (2, 2)", "expand_as", randn(), randn(2, 2)),
    ]
    out["einsum"] = [
        one(
            "matrix product", "einsum", "ij,jk->ik", [randn(2, 3), randn(3, 4)], kw={"path": None}
        ),
        one(
            "batched attention logits",
            "einsum",
            "bqd,bkd->bqk",
            [randn(2, 3, 4), randn(2, 5, 4)],
            kw={"path": None},
        ),
        one(
            "implicit output (sorted letters)",
            "einsum",
            "ij,jk",
            [randn(2, 3), randn(3, 2)],
            kw={"path": None},
        ),
        one(
            "ellipsis",
            "einsum",
            "...ij,...jk->...ik",
            [randn(2, 2, 3), randn(3, 2)],
            kw={"path": None},
        ),
        one(
            "broadcast size-1 dimension",
            "einsum",
            "bn,bn->b",
            [randn(1, 4), randn(3, 4)],
            kw={"path": None},
        ),
        one("trace-like sum", "einsum", "ij->", [randn(3, 3)], kw={"path": None}),
        one(
            "empty summed dimension",
            "einsum",
            "ij,jk->ik",
            [randn(2, 0), randn(0, 3)],
            kw={"path": None},
        ),
    ]

    def binary(op, alpha=False):
        kw = {"alpha": 2.0} if alpha else None
        return [
            one("same shape", op, randn(2, 3), randn(2, 3), kw=kw),
            one("broadcast (2, 1, 3) with (4, 1)", op, randn(2, 1, 3), randn(4, 1), kw=kw),
            one("tensor and scalar", op, randn(2, 3), 1.5, kw=kw),
            one("special values", op, special, special.flip(0), kw=kw),
            one("empty", op, randn(0, 3), randn(3), kw=kw),
        ]

    out["mul"] = binary("mul")
    out["div"] = binary("div")
    out["add"] = binary("add", alpha=True) + [
        one("alpha 1", "add", randn(3), randn(3), kw={"alpha": 1})
    ]
    out["sub"] = binary("sub", alpha=True) + [
        one("alpha 1", "sub", randn(3), randn(3), kw={"alpha": 1})
    ]
    out["rsub"] = [
        one("tensor, scalar: 1 - x", "rsub", randn(2, 3), 1.0, 1),
        one("tensors, alpha 2", "rsub", randn(2, 3), randn(3), kw={"alpha": 2.0}),
        one("mask to -inf bias", "rsub", mask(4).float(), 1.0, 1),
    ]
    out["floor_divide"] = [
        one("tensors", "floor_divide", randn(2, 3) * 5, rand(2, 3) + 0.5),
        one("by a scalar", "floor_divide", torch.tensor([-7.0, -6.0, -1.0, 0.0, 5.0, 7.0]), 3),
        one("integers as floats (positions)", "floor_divide", torch.arange(12.0), 4),
    ]

    def inplace(op, base, *args, kw=None):
        """``op`` (in place) on x, then x read again: the later node sees the new values."""
        g = Graph()
        x = base.clone()
        key = g.arg(x)
        (o,) = g.node(op, f"@{key}", *args, kw=kw)
        (later,) = g.node("mul", f"@{key}", 1.0)
        want = _torch(x)
        kws = {k: _torch(v) for k, v in (kw or {}).items()}
        result = getattr(aten, op)(want, *[_torch(a) for a in args], **kws)
        return g.case(
            f"{op}: x rebound", {"out": o, "later": later}, {"out": result, "later": want * 1.0}
        )

    def aliased(op):
        """``x op= x``: both arguments are the same tensor."""
        g = Graph()
        x = randn(2, 3)
        key = g.arg(x)
        (o,) = g.node(op, f"@{key}", f"@{key}")
        want = _torch(x)
        return g.case(
            f"{op}(x, x): one tensor twice", {"out": o}, {"out": getattr(aten, op)(want, want)}
        )

    out["mul_"] = [
        inplace("mul_", randn(2, 3), randn(3)),
        aliased("mul_"),
        inplace("mul_", special, 2.0),
    ]
    out["add_"] = [
        inplace("add_", randn(2, 3), randn(2, 1), kw={"alpha": 2.0}),
        aliased("add_"),
        inplace("add_", randn(0, 3), randn(3), kw={"alpha": 1}),
    ]
    # in-place forms the table does not name: the runtime strips the underscore
    out["relu"] += [inplace("relu_", special)]

    def conv_relu(name, relu, read_again):
        """A convolution then relu or relu_ (loadModel fuses them where nothing else reads the
        convolution's output, or where relu_ rebinds it); ``read_again``: a later node reads it."""
        g = Graph()
        x, w, b = randn(1, 4, 5, 5), randn(4, 4, 3, 3), randn(4)
        conv_args = ([1, 1], [1, 1], [1, 1], False, [0, 0], 1, False, False, True, True)
        (c,) = g.node("_convolution", x, w, b, *conv_args)
        (r,) = g.node(relu, f"@{c}")
        y = aten._convolution(_torch(x), _torch(w), _torch(b), *conv_args)
        outputs, want = {"relu": r}, {"relu": y.relu()}
        if read_again:
            (later,) = g.node("mul", f"@{c}", 1.0)
            outputs["later"] = later
            want["later"] = y.relu() if relu == "relu_" else y
        return g.case(name, outputs, want)

    out["relu"] += [
        conv_relu("after a convolution (fused)", "relu", False),
        conv_relu("after a convolution that is read again (not fused)", "relu", True),
        conv_relu("relu_ after a convolution that is read again (fused, rebound)", "relu_", True),
    ]
    out["sigmoid"] += [inplace("sigmoid_", randn(2, 2))]
    out["masked_fill"] = [
        one("scalar value", "masked_fill", randn(2, 3), mask(2, 3), 0.0),
        one("-inf, broadcast mask", "masked_fill", randn(2, 3, 4), mask(3, 1), -INF),
        one("tensor value", "masked_fill", randn(2, 3), mask(3), torch.tensor(7.0)),
        one("nan in x is kept where unmasked", "masked_fill", special, special.isnan(), 1.0),
        one("nan as the value", "masked_fill", randn(4), mask(4), NAN),
    ]
    out["masked_fill"].append(inplace("masked_fill_", randn(2, 3), mask(2, 3), -1.0))
    out["flatten"] = [
        one("(2, 3, 4) from 1", "flatten", randn(2, 3, 4), 1, -1),
        one("all", "flatten", randn(2, 3), 0, -1),
        one("middle", "flatten", randn(2, 3, 4, 5), 1, 2),
        one("scalar", "flatten", randn(), 0, -1),
        one("empty", "flatten", randn(2, 0, 3), 1, -1),
    ]
    for op in ("reshape", "view"):
        out[op] = [
            one("(2, 3, 4) to (6, 4)", op, randn(2, 3, 4), [6, 4]),
            one("-1", op, randn(2, 3, 4), [4, -1]),
            one("to a scalar", op, randn(1, 1), []),
            one("empty with -1", op, randn(0, 4), [-1, 2]),
        ]
    for op, log in (("softmax", False), ("log_softmax", True)):
        out[op] = [
            one("last dim", op, randn(2, 5), -1, None),
            one("dim 1 of 3", op, randn(2, 3, 4), 1, None),
            one("dim 0", op, randn(3, 2), 0, None),
            one("large logits (overflow without the max)", op, randn(2, 4) * 1000, -1, None),
            one("-inf (masked)", op, torch.tensor([[0.0, -INF, 1.0], [-INF, 2.0, -INF]]), 1, None),
            one("all -inf: nan", op, torch.tensor([[-INF, -INF], [0.0, 1.0]]), 1, None),
            one("inf: nan", op, torch.tensor([[INF, 0.0]]), 1, None),
            one("empty", op, randn(0, 3), -1, None),
        ]
        del log
    out["linear"] = [
        one("bias, 6 rows (4 + 2)", "linear", randn(6, 5), randn(3, 5), randn(3)),
        one("no bias, (2, 3, K)", "linear", randn(2, 3, 4), randn(2, 4), None),
        one("one row", "linear", randn(1, 7), randn(4, 7), randn(4)),
        one("zero rows", "linear", randn(0, 3), randn(2, 3), randn(2)),
        one("inf in x", "linear", torch.tensor([[INF, 1.0]]), randn(2, 2), randn(2)),
    ]
    for op in ("matmul", "bmm", "mm"):
        shapes = {
            "mm": [("2d", (3, 4), (4, 5)), ("k = 0", (2, 0), (0, 3)), ("inner 1", (3, 1), (1, 2))],
            "bmm": [("3d", (2, 3, 4), (2, 4, 5)), ("m = 0", (2, 0, 3), (2, 3, 2))],
            "matmul": [
                ("2d", (3, 4), (4, 2)),
                ("batched broadcast", (2, 1, 3, 4), (3, 4, 2)),
                ("vector @ matrix", (4,), (4, 3)),
                ("matrix @ vector", (3, 4), (4,)),
                ("vector @ vector", (4,), (4,)),
                ("batch @ vector", (2, 3, 4), (4,)),
            ],
        }[op]
        out[op] = [one(name, op, randn(*a), randn(*b)) for name, a, b in shapes]
    out["addmm"] = [
        one("bias row", "addmm", randn(4), randn(3, 2), randn(2, 4), kw={"beta": 1, "alpha": 1}),
        one(
            "beta 0.5, alpha 2",
            "addmm",
            randn(3, 4),
            randn(3, 2),
            randn(2, 4),
            kw={"beta": 0.5, "alpha": 2.0},
        ),
    ]
    out["t"] = [
        one("2d", "t", randn(2, 3)),
        one("1d: unchanged", "t", randn(3)),
        one("empty", "t", randn(0, 2)),
    ]

    def red(op):
        kw = {"dtype": None} if op in ("mean", "sum") else None
        return [
            one("dim 1", op, randn(2, 3, 4), [1], False, kw=kw),
            one("dims (2, 3), keepdim", op, randn(2, 3, 4, 5), [2, 3], True, kw=kw),
            one("negative dim", op, randn(2, 3), [-1], False, kw=kw),
            one("all dims ([])", op, randn(2, 3), [], False, kw=kw),
            one("special values", op, special.reshape(1, 11), [1], False, kw=kw),
            one("inf", op, torch.tensor([[1.0, INF], [-INF, 0.0]]), [1], False, kw=kw),
        ]

    out["mean"] = red("mean") + [
        one("empty dimension: nan", "mean", randn(2, 0), [1], False, kw={"dtype": None})
    ]
    out["sum"] = red("sum") + [
        one("empty dimension: 0", "sum", randn(2, 0), [1], False, kw={"dtype": None}),
        one("everything (dtype only)", "sum", randn(2, 3), kw={"dtype": None}),
    ]
    out["amax"] = red("amax") + [one("int dim", "amax", randn(3, 4), 0, False)]
    out["amin"] = red("amin") + [one("int dim", "amin", randn(3, 4), 0, False)]
    out["linalg_vector_norm"] = [
        one(
            "2-norm, last dim",
            "linalg_vector_norm",
            randn(3, 4),
            2,
            [-1],
            False,
            kw={"dtype": None},
        ),
        one(
            "2-norm, keepdim", "linalg_vector_norm", randn(3, 4), 2, [1], True, kw={"dtype": None}
        ),
        one("1-norm", "linalg_vector_norm", randn(3, 4), 1, [0], False, kw={"dtype": None}),
        one("inf-norm", "linalg_vector_norm", randn(3, 4), INF, [1], False, kw={"dtype": None}),
        one(
            "3-norm, all dims",
            "linalg_vector_norm",
            randn(2, 3),
            3,
            None,
            False,
            kw={"dtype": None},
        ),
        one(
            "with inf",
            "linalg_vector_norm",
            torch.tensor([[INF, 1.0], [0.0, 0.0]]),
            2,
            [1],
            False,
            kw={"dtype": None},
        ),
    ]
    out["transpose"] = [
        one("(0, 1)", "transpose", randn(2, 3), 0, 1),
        one("(-1, -2) of 4d", "transpose", randn(2, 3, 4, 5), -1, -2),
        one("empty", "transpose", randn(0, 3, 2), 1, 2),
    ]
    out["permute"] = [
        one("(2, 0, 1)", "permute", randn(2, 3, 4), [2, 0, 1]),
        one("negative dims", "permute", randn(2, 3, 4), [-1, 0, -2]),
    ]
    out["movedim"] = [
        one("int: 1 -> -1", "movedim", randn(2, 3, 4), 1, -1),
        one("lists", "movedim", randn(2, 3, 4, 5), [0, 1], [2, 3]),
    ]
    out["unsqueeze"] = [
        one("dim 0", "unsqueeze", randn(3), 0),
        one("dim -1", "unsqueeze", randn(2, 3), -1),
        one("scalar", "unsqueeze", randn(), 0),
    ]
    out["squeeze"] = [
        one("all", "squeeze", randn(1, 3, 1, 2)),
        one("dim 2", "squeeze", randn(1, 3, 1, 2), 2),
        one("dim of size 3: unchanged", "squeeze", randn(1, 3), 1),
        one("negative dim", "squeeze", randn(3, 1), -1),
    ]
    out["cat"] = [
        one("dim 0", "cat", [randn(2, 3), randn(1, 3)], 0),
        one("dim -1, three tensors", "cat", [randn(2, 1), randn(2, 3), randn(2, 2)], -1),
        one("with an empty tensor", "cat", [randn(2, 0), randn(2, 3)], 1),
        one("dim 1 of 3d", "cat", [randn(2, 3, 4), randn(2, 1, 4)], 1),
    ]
    out["stack"] = [
        one("dim 0", "stack", [randn(2, 3), randn(2, 3)], 0),
        one("dim -1", "stack", [randn(2, 3), randn(2, 3), randn(2, 3)], -1),
        one("dim 1", "stack", [randn(2, 3), randn(2, 3)], 1),
    ]
    out["layer_norm"] = [
        one("affine", "layer_norm", randn(2, 3, 5), [5], randn(5), randn(5), 1e-5, True),
        one("no affine, eps 1e-6", "layer_norm", randn(4, 6), [6], None, None, 1e-6, True),
        one(
            "two normalised dims",
            "layer_norm",
            randn(2, 3, 4),
            [3, 4],
            randn(3, 4),
            randn(3, 4),
            1e-5,
            True,
        ),
        one("constant rows", "layer_norm", torch.ones(2, 4), [4], randn(4), randn(4), 1e-5, True),
    ]
    for op in ("contiguous", "detach", "clone", "dropout", "to"):
        x = randn(2, 3)
        if op == "contiguous":
            out[op] = [one("identity", op, x, kw={"memory_format": 0}, fn=lambda x, **k: x)]
        elif op == "clone":
            out[op] = [one("identity", op, x, kw={"memory_format": None})]
        elif op == "dropout":
            out[op] = [one("eval: identity", op, x, 0.5, False)]
        elif op == "to":
            out[op] = [
                one(
                    "float32: identity",
                    op,
                    x,
                    Const(6, torch.float32),
                    False,
                    False,
                    None,
                    fn=lambda x, *a: x.to(torch.float32),
                )
            ]
        else:
            out[op] = [one("identity", op, x)]

    def sel(name, x, dim, i):
        return one(name, "select", x, dim, i)

    out["select"] = [
        sel("dim 0", randn(3, 4), 0, 1),
        sel("last index -1", randn(3, 4), 1, -1),
        sel("dim -2 of 3d", randn(2, 3, 4), -2, 2),
    ]
    big = 9223372036854775807  # INT64_MAX: `x[2:]` traces end as this
    out["slice"] = [
        one("[1:3]", "slice", randn(5, 2), 0, 1, 3, 1),
        one("[2:] (end INT64_MAX)", "slice", randn(5, 2), 0, 2, big, 1),
        one("[:, ::2]", "slice", randn(2, 5), 1, 0, big, 2),
        one("negative start, end", "slice", randn(6), 0, -4, -1, 1),
        one("start past the end: empty", "slice", randn(3, 2), 0, 5, big, 1),
        one("None start and end", "slice", randn(4, 3), 1, None, None, 1),
    ]
    for op in ("Int", "ScalarImplicit"):
        g = Graph()
        (o,) = g.node(op, torch.tensor(3.0))
        value = 3 if op == "Int" else 3.0
        out[op] = [g.case("a one-element tensor", {"out": o}, {"out": value})]
    g = Graph()
    (o,) = g.node("NumToTensor", 4)
    out["NumToTensor"] = [g.case("an int", {"out": o}, {"out": torch.tensor(4.0)})]
    g = Graph()
    (n,) = g.node("size", randn(2, 7), 1)
    (o,) = g.node("floor_divide", f"@{n}", 2)
    out["floor_divide"].append(g.case("sizes (Python ints)", {"out": o}, {"out": 3}))
    for op in ("mul", "add", "sub", "div"):
        g = Graph()
        (n,) = g.node("size", randn(2, 6), 1)
        (o,) = g.node(op, f"@{n}", 4)
        want = {"mul": 24, "add": 10, "sub": 2, "div": 1.5}[op]
        out[op].append(g.case("sizes (Python numbers)", {"out": o}, {"out": want}))
    like = {
        "dtype": None,
        "layout": None,
        "device": None,
        "pin_memory": None,
        "memory_format": None,
    }
    out["ones_like"] = [
        one("(2, 3)", "ones_like", randn(2, 3), kw=like),
        one("empty", "ones_like", randn(0, 2), kw=like),
    ]
    out["zeros_like"] = [
        one("(2, 3)", "zeros_like", randn(2, 3), kw=like),
        one("scalar", "zeros_like", randn(), kw=like),
    ]
    eye_kw = {"dtype": None, "layout": None, "device": None, "pin_memory": None}
    out["eye"] = [
        one("n", "eye", 3, kw=eye_kw),
        one("n, m", "eye", 2, 4, kw=eye_kw),
        one("n, m (m < n)", "eye", 4, 2, kw=eye_kw),
    ]
    out["unbind"] = [
        one("dim 0", "unbind", randn(3, 2), 0),
        one("dim -1", "unbind", randn(2, 3), -1),
    ]
    out["chunk"] = [
        one("even", "chunk", randn(6, 2), 3, 0),
        one("last smaller", "chunk", randn(2, 7), 3, 1),
        one("more chunks than rows", "chunk", randn(2, 3), 4, 0),
    ]
    out["broadcast_tensors"] = [
        one("three shapes", "broadcast_tensors", [randn(3, 1), randn(4), randn(2, 1, 1)])
    ]
    out["bitwise_not"] = [one("mask", "bitwise_not", mask(2, 3))]
    out["logical_not"] = [
        one("mask", "logical_not", mask(2, 3)),
        one("floats", "logical_not", torch.tensor([0.0, 1.0, -2.0, NAN])),
    ]
    out["roll"] = [
        one("one dim", "roll", randn(2, 5), [2], [1]),
        one("two dims, negative shift", "roll", randn(4, 5), [-1, 3], [0, 1]),
        one("shift larger than the size", "roll", randn(3, 4), [7], [-1]),
        one("no dims: flattened", "roll", randn(2, 3), [2], []),
    ]
    out["unflatten"] = [
        one("(2, 12) dim 1 -> (3, 4)", "unflatten", randn(2, 12), 1, [3, 4]),
        one("-1", "unflatten", randn(2, 12), -1, [-1, 6]),
    ]
    out["repeat"] = [
        one("(2, 3) by (2, 1)", "repeat", randn(2, 3), [2, 1]),
        one("more dims than x", "repeat", randn(3), [2, 1, 2]),
        one("by 0: empty", "repeat", randn(2), [0]),
    ]
    return out


def write(out_dir: Path) -> list[Path]:
    """Write one ``<op>.json`` per operation into ``out_dir``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    table = cases(gen)
    missing = sorted(OPS - set(table))
    if missing:
        raise SystemExit(f"no fixtures for {missing}")
    paths = []
    for op in sorted(table):
        path = out_dir / f"{op}.json"
        body = {"op": op, "cases": table[op]}
        path.write_text(json.dumps(body, separators=(",", ":"), allow_nan=False) + "\n")
        paths.append(path)
    return paths


def _b64(t: torch.Tensor) -> dict:
    data = t.detach().float().contiguous().numpy().astype("<f4").tobytes()
    return {"shape": list(t.shape), "base64": base64.b64encode(data).decode()}


def write_models(out_dir: Path) -> list[Path]:
    """The browser test's models (tests/test_model_runtime.py's CASES: every chapter's kind of page
    model, randomised), exported, with two inputs each and PyTorch's float32 outputs for them:
    ``<n>.json`` in ``out_dir`` (about 2.3 MB in all, so written at test time, not committed)."""
    sys.path.insert(0, str(HERE.parent))
    from _helpers import gen
    from test_model_runtime import CASES, _randomise

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, (build, outputs, shape)) in enumerate(CASES.items()):
        torch.manual_seed(0)
        model = _randomise(build(), seed=1)
        x = torch.rand(shape, generator=gen(2))
        exported = export_model(model, x, outputs)
        runs = []
        for inp in (x, torch.rand(shape, generator=gen(3)) * 2 - 0.5):
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = model(inp)
            runs.append({"input": _b64(inp), "expected": dict(zip(outputs, map(_b64, expected)))})
        body = {
            "name": name,
            "graph": exported.graph,
            "weights": base64.b64encode(exported.weights).decode(),
            "runs": runs,
        }
        path = out_dir / f"model{i}.json"
        path.write_text(json.dumps(body, separators=(",", ":"), allow_nan=False) + "\n")
        paths.append(path)
    return paths


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--models"]:
        target = Path(args[1])
        written = write_models(target)
        print(f"{len(written)} exported models in {target}")
        raise SystemExit(0)
    target = Path(args[0]) if args else HERE / "fixtures"
    written = write(target)
    n = sum(len(json.loads(p.read_text())["cases"]) for p in written)
    print(f"{len(written)} operations, {n} cases in {target}")
