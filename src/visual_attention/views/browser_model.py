"""A trained PyTorch model as a graph the reader's browser runs: the model is defined once, here.

:func:`export_model` traces a model on an example input (``torch.jit.trace``), freezes it (which
folds every BatchNorm into the convolution before it) and writes the operations PyTorch actually
ran as a small JSON graph, with all tensors in one float32 buffer. ``static/model_runtime.js``
runs that graph in JavaScript, operation by operation, for any input the reader gives; nothing is
written twice by hand, so a chapter's browser model is its PyTorch model.

The trace records the path the example took: checks and fast paths in Python run once, at export,
and only tensor operations reach the graph. Shapes are computed at run time (``aten::size``), so
the graph runs on inputs of other sizes where the model itself would.

Outputs: the model may return a tensor or a tuple of tensors; name them with ``outputs``. To expose
attention maps, export a wrapper that returns them (see :func:`with_attention`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .._checks import check_module, check_str, check_tensor

__all__ = ["OPS", "BrowserModel", "export_model", "with_attention", "run_graph"]

#: The ATen operations ``model_runtime.js`` implements; :func:`export_model` refuses others.
OPS = frozenset(
    """_convolution relu max_pool2d size ListConstruct TupleConstruct expand einsum mul mul_ add
    add_ sub div flatten softmax reshape view linear mean sigmoid sum matmul transpose permute
    unsqueeze squeeze cat layer_norm gelu contiguous exp tanh neg rsub adaptive_avg_pool2d
    avg_pool2d select slice Int NumToTensor ScalarImplicit floor_divide log_softmax masked_fill
    ones_like zeros_like to detach clone dropout t bmm mm addmm sqrt pow abs clamp_min amax amin
    stack unbind ListUnpack TupleUnpack movedim linalg_vector_norm expand_as
    chunk eye broadcast_tensors bitwise_not logical_not roll
    unflatten repeat""".split()
)


@dataclasses.dataclass
class BrowserModel:
    """A traced model: ``graph`` (JSON-able) and ``weights`` (little-endian float32 bytes).

    ``graph = {"inputs": [id], "outputs": [id], "names": [name], "constants": {id: value},
    "tensors": {id: {"shape", "offset"}}, "nodes": [{"op", "in": [id], "out": [id]}]}``:
    ``constants`` holds ints, floats (``{"float": "-inf"}`` for the values JSON lacks), bools,
    strings, ``None`` and lists; ``tensors`` the parameters, at ``offset`` (in floats) of
    ``weights`` (with ``dtype`` when they are not floating: a boolean mask is sent as 0 and 1).
    """

    graph: dict
    weights: bytes

    @property
    def num_floats(self) -> int:
        return len(self.weights) // 4


def _scalar(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": str(value)}  # JSON has no inf or nan: "inf", "-inf", "nan"
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)) and all(not isinstance(v, torch.Tensor) for v in value):
        return [_scalar(v) for v in value]
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, torch.dtype):
        return str(value)
    raise ValueError(f"cannot export the constant {value!r}")


def export_model(
    model: nn.Module, example: torch.Tensor, outputs: Sequence[str] = ("output",)
) -> BrowserModel:
    """Trace ``model`` on ``example`` and export the graph the browser runs.

    Args:
        model: any module whose forward takes one float tensor and returns a tensor or a tuple of
            tensors (put in eval mode for the export).
        example: an input, e.g. ``(1, 1, H, W)``.
        outputs: a name for each returned tensor, in order.

    Returns:
        the :class:`BrowserModel`; its graph's outputs are ``outputs``.
    """
    check_module("model", model)
    check_tensor("example", example, "(*B, N)")
    if isinstance(outputs, str) or not isinstance(outputs, Sequence) or not outputs:
        raise ValueError(f"outputs must be a non-empty sequence of names, got {outputs!r}")
    names = [check_str("outputs", name) for name in outputs]
    model = model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            traced = torch.jit.trace(model, example, check_trace=False)
        except (RuntimeError, ValueError, TypeError) as error:
            raise ValueError(
                f"the model cannot run on example {tuple(example.shape)} {example.dtype}: {error}"
            ) from error
        frozen = torch.jit.freeze(traced)
    graph = frozen.graph
    torch._C._jit_pass_inline(graph)
    values, chunks, offset = {}, [], 0
    constants, tensors, nodes = {}, {}, []
    stored: dict[bytes, int] = {}  # tensor bytes → offset

    def vid(value: torch._C.Value) -> str:
        return values.setdefault(value.debugName(), f"v{len(values)}")

    inputs = [vid(v) for v in list(graph.inputs())[1:]]
    for node in graph.nodes():
        kind = node.kind()
        if kind == "prim::Constant":
            out = node.output()
            value = (
                out.toIValue() if node.hasAttributes() or str(out.type()) != "NoneType" else None
            )
            if isinstance(value, torch.Tensor):
                data = value.detach().float().contiguous().numpy().astype("<f4").tobytes()
                if data not in stored:  # a module called twice carries its weights once
                    stored[data] = offset
                    chunks.append(data)
                    offset += len(data) // 4
                tensors[vid(out)] = {"shape": list(value.shape), "offset": stored[data]}
                if not value.is_floating_point():  # masks, indices: sent as floats, typed here
                    tensors[vid(out)]["dtype"] = str(value.dtype).removeprefix("torch.")
            else:
                constants[vid(out)] = _scalar(value)
            continue
        op = kind.split("::", 1)[1]
        if op not in OPS and not (op.endswith("_") and op[:-1] in OPS):  # relu_ is relu
            raise ValueError(f"model uses {kind}, which model_runtime.js does not implement")
        entry = {
            "op": op,
            "in": [vid(v) for v in node.inputs()],
            "out": [vid(v) for v in node.outputs()],
        }
        keywords = _keyword_only(node)
        if keywords:
            entry["kw"] = keywords  # names of the trailing keyword-only arguments
        nodes.append(entry)
    returned = graph.return_node().input()
    producer = returned.node()
    if producer.kind() == "prim::TupleConstruct":
        result = [vid(v) for v in producer.inputs()]
        nodes = [n for n in nodes if n["out"] != [vid(returned)]]
    else:
        result = [vid(returned)]
    if len(result) != len(names):
        raise ValueError(f"outputs names {len(names)} outputs, the model returns {len(result)}")
    return BrowserModel(
        {
            "inputs": inputs,
            "outputs": result,
            "names": names,
            "constants": constants,
            "tensors": tensors,
            "nodes": nodes,
        },
        b"".join(chunks),
    )


def _keyword_only(node: torch._C.Node) -> list[str]:
    """The names of the keyword-only arguments of an ATen node's schema (e.g. ``implicit``)."""
    try:
        schema = node.schema()
    except RuntimeError:
        return []
    if schema == "(no schema)" or ", *," not in schema:
        return []
    tail = schema.split(", *,", 1)[1].split(") ->", 1)[0]
    return [arg.split("=")[0].split()[-1] for arg in tail.split(",") if arg.strip()]


class with_attention(nn.Module):  # a lower-case name: used like a function
    """``model`` returning ``(output, *maps)``: the attention maps it records (in the order of
    ``names``), for :func:`export_model` to expose.

    ``names`` are the keys of :func:`visual_attention.core.record_attention` (module paths).
    """

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise ValueError(f"names must be a sequence of recorded module names, got {names!r}")
        self.model, self.names = (
            check_module("model", model),
            [check_str("names", n) for n in names],
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        from ..core import record_attention

        with record_attention(self.model) as maps:
            out = self.model(x)
        return (out, *(maps[name] for name in self.names))


def run_graph(model: BrowserModel, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Nothing but a check of the export: the graph's outputs for ``x``, computed by replaying
    its nodes with PyTorch's own operations (the browser computes the same graph in JavaScript)."""
    if not isinstance(model, BrowserModel):
        raise ValueError(
            f"model must be a BrowserModel (export_model), got {type(model).__name__}"
        )
    check_tensor("x", x, "(*B, N)")
    x = x.float()  # the graph computes in float32
    g = model.graph
    weights = np.frombuffer(model.weights, dtype="<f4")
    env: dict[str, object] = {k: _constant(v) for k, v in g["constants"].items()}
    for key, t in g["tensors"].items():
        n = int(np.prod(t["shape"])) if t["shape"] else 1
        env[key] = torch.from_numpy(weights[t["offset"] : t["offset"] + n].copy()).reshape(
            t["shape"]
        )
        if "dtype" in t:  # a mask or indices, sent as floats
            env[key] = env[key].to(getattr(torch, t["dtype"]))
    env[g["inputs"][0]] = x
    try:
        _replay(g["nodes"], env)
    except (RuntimeError, IndexError, TypeError) as error:
        raise ValueError(
            f"the graph cannot run on x {tuple(x.shape)}, the input it was exported for differs: "
            f"{error}"
        ) from error
    return {name: env[key].detach().numpy() for name, key in zip(g["names"], g["outputs"])}


def _constant(value: object) -> object:
    """A graph constant as Python: ``{"float": "-inf"}`` (JSON has no infinities) is ``-inf``."""
    if isinstance(value, dict) and set(value) == {"float"}:
        return float(value["float"])
    if isinstance(value, list):
        return [_constant(v) for v in value]
    return value


def _replay(nodes: list[dict], env: dict[str, object]) -> None:
    """Run the graph's nodes on ``env`` with PyTorch's own operations."""
    for node in nodes:
        op = getattr(torch.ops.aten, node["op"], None)
        args = [env[i] for i in node["in"]]
        if node["op"] == "ListConstruct":
            result = list(args)
        elif node["op"] == "TupleConstruct":
            result = tuple(args)
        elif node["op"] in ("ListUnpack", "TupleUnpack"):
            result = list(args[0])
        elif node["op"] in ("Int", "ScalarImplicit"):
            result = int(args[0])
        elif node["op"] == "NumToTensor":
            result = torch.tensor(args[0])
        else:
            keywords = node.get("kw", [])
            positional = args[: len(args) - len(keywords)]
            result = op(*positional, **dict(zip(keywords, args[len(positional) :])))
        outs = node["out"]
        if len(outs) == 1:
            env[outs[0]] = result
        else:
            for key, value in zip(outs, result):
                env[key] = value
