"""A trained model in the reader's browser, on any input the reader draws.

:func:`model_explorer` sends a model exported by
:func:`~visual_attention.views.browser_model.export_model` (its graph and float32 weights) and a
few test examples to the page; ``static/model_explorer.js`` runs the model there with
``static/model_runtime.js`` — with a kernel in JupyterLab and on the static site with none —
after every stroke, example, noise, move or resize, and draws what the chosen *views* ask for.

The input is one canvas ``(1, 1, H, W)`` or ``S`` canvases ``(1, S, 1, H, W)`` (a chapter's
sensors, a clip's frames); the reader draws on one at a time. The views, built by the small
functions below, name outputs of the model:

* :func:`probs` — logits ``(1, K)``: the class probabilities and the prediction;
* :func:`overlay` — a map ``(1, h, w)`` (or ``(1, 1, h, w)``) drawn over the canvas it is about,
  with the share of it inside the ink's box;
* :func:`maps` — ``M`` maps ``(1, M, h, w)`` (e.g. every head's), each drawn over its canvas;
* :func:`bars` — a vector ``(1, K)`` as labelled bars (gates, branch weights), or, with one value
  per canvas, under each canvas (frame weights);
* :func:`slots` — weights over ``K`` stored items ``(1, K)`` (a memory's slots): a strip over all
  of them and the heaviest, with their pictures;
* :func:`tokens` — a transformer's attention ``(1, L, h, T, T)``: for the query token the reader
  picks, every layer's every head as a map over the input, and the attention rollout;
* :func:`lens` — logits after every layer ``(1, L, K)``: what the model would say at each depth;
* :func:`boxes` — a set of detections: boxes ``(1, Q, 4)``, their class probabilities
  ``(1, Q, K)`` and optionally each one's map ``(1, Q, h, w)`` (DETR's object queries), drawn over
  the canvas.

Everything a view shows is computed by the model (the wrapper the chapter exports); the page only
draws, so the browser's numbers are PyTorch's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anywidget
import numpy as np
import torch
import traitlets as tl
from matplotlib import colormaps

from .._checks import (
    check_bool,
    check_floating,
    check_int,
    check_labels,
    check_number,
    check_positive_int,
    check_positive_number,
    check_size2,
    check_str,
    check_tensor,
)
from .browser_model import BrowserModel
from .viz import CMAP

__all__ = [
    "ModelExplorer",
    "model_explorer",
    "labelled",
    "probs",
    "overlay",
    "maps",
    "bars",
    "slots",
    "tokens",
    "lens",
    "boxes",
]

_STATIC = Path(__file__).parent / "static"
DIGITS = tuple("0123456789")
KINDS = ("probs", "map", "maps", "bars", "slots", "tokens", "lens", "boxes")


def _module_source() -> str:
    """The widget's ES module: the runtime, then the explorer (one file for anywidget)."""
    runtime = (
        (_STATIC / "model_runtime.js").read_text().replace("export default { loadModel };", "")
    )
    return runtime + "\n" + (_STATIC / "model_explorer.js").read_text()


class ModelExplorer(anywidget.AnyWidget):
    """The widget; build it with :func:`model_explorer`."""

    _esm = _module_source()
    graph = tl.Dict().tag(sync=True)
    weights = tl.Bytes(b"").tag(sync=True)
    canvas = tl.List(tl.Int(), [48, 48]).tag(sync=True)  # (H, W) of each canvas
    canvases = tl.Int(1).tag(sync=True)  # S: 1 → input (1, 1, H, W); S > 1 → (1, S, 1, H, W)
    canvas_names = tl.List(tl.Unicode()).tag(sync=True)
    examples = tl.Bytes(b"").tag(sync=True)  # (N, S, H, W) float32, values in [0, 1]
    example_names = tl.List(tl.Unicode()).tag(sync=True)
    views = tl.List(tl.Dict()).tag(sync=True)
    images = tl.Bytes(b"").tag(sync=True)  # pictures of the slots views' items, float32
    display_size = tl.List(tl.Int(), [240, 240]).tag(sync=True)
    brush = tl.Float(1.6).tag(sync=True)
    alpha = tl.Float(0.55).tag(sync=True)
    caption = tl.Unicode("").tag(sync=True)
    colormap = tl.Bytes(b"").tag(sync=True)


def _names(name: str, values: object, count: int | None = None) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{name} must be a non-empty sequence of names, got {values!r:.80}")
    out = [
        check_str(name, str(v) if isinstance(v, int) and not isinstance(v, bool) else v)
        for v in values
    ]
    if count is not None and len(out) != count:
        raise ValueError(f"{name} must hold {count} names, got {len(out)}")
    return out


def probs(name: str, logits: str, classes: Sequence[str] = DIGITS) -> dict:
    """A view of logits ``(1, K)``: probabilities (softmax) as bars, and the prediction."""
    return {
        "kind": "probs",
        "name": check_str("name", name),
        "output": check_str("logits", logits),
        "classes": _names("classes", classes),
    }


def overlay(name: str, output: str, canvas: int = 0) -> dict:
    """A view of a map ``(1, h, w)`` or ``(1, 1, h, w)`` over canvas ``canvas`` (``H``, ``W``
    multiples of ``h``, ``w``): drawn over the input, with its share inside the ink's box."""
    return {
        "kind": "map",
        "name": check_str("name", name),
        "output": check_str("output", output),
        "canvas": check_int("canvas", canvas, 0),
    }


def maps(
    name: str,
    output: str,
    labels: Sequence[str],
    canvas: int = 0,
    regions: Sequence[tuple[str, int, int, int, int]] = (),
) -> dict:
    """A view of ``M`` maps ``(1, M, h, w)`` over canvas ``canvas``, each drawn over the input.

    Args:
        labels: a name per map (e.g. ``"head 0"``).
        regions: optional ``(name, top, left, bottom, right)`` boxes in input pixels; each map's
            caption gives its share inside each (default: inside the ink's box).
    """
    if isinstance(regions, str) or not isinstance(regions, Sequence):
        raise ValueError(
            f"regions must be a sequence of (name, top, left, bottom, right), got {regions!r:.60}"
        )
    rows = []
    for r in regions:
        if not isinstance(r, (tuple, list)) or len(r) != 5:
            raise ValueError(f"regions must hold (name, top, left, bottom, right), got {r!r}")
        rows.append([check_str("regions", r[0]), *(check_int("regions", v, 0) for v in r[1:])])
    return {
        "kind": "maps",
        "name": check_str("name", name),
        "output": check_str("output", output),
        "labels": _names("labels", labels),
        "canvas": check_int("canvas", canvas, 0),
        "regions": rows,
    }


def bars(
    name: str, output: str, labels: Sequence[str], vmax: float = 1.0, per_canvas: bool = False
) -> dict:
    """A view of a vector ``(1, K)`` as ``K`` labelled bars scaled to ``vmax``; with
    ``per_canvas`` (``K = S``) each value is also written under its canvas."""
    return {
        "kind": "bars",
        "name": check_str("name", name),
        "output": check_str("output", output),
        "labels": _names("labels", labels),
        "vmax": check_positive_number("vmax", vmax),
        "per_canvas": check_bool("per_canvas", per_canvas),
    }


def tokens(
    name: str,
    output: str,
    grid: tuple[int, int],
    rollout: str | None = None,
    prefix: int = 1,
    canvas: int = 0,
    query: int = 0,
) -> dict:
    """A view of a transformer's attention ``(1, L, h, T, T)`` over ``T = prefix + rows · cols``
    tokens (the class token first, then the patches of canvas ``canvas`` row by row): the reader
    picks a query token — a patch of the input or the class token — and sees its row in every
    layer's every head as a map over the input, and its row of ``rollout`` ``(1, T, T)``;
    ``query`` is the token shown first."""
    rows, cols = check_size2("grid", grid)
    return {
        "kind": "tokens",
        "name": check_str("name", name),
        "output": check_str("output", output),
        "grid": [rows, cols],
        "rollout": None if rollout is None else check_str("rollout", rollout),
        "prefix": check_int("prefix", prefix, 0),
        "canvas": check_int("canvas", canvas, 0),
        "query": check_int("query", query, 0),
    }


def lens(name: str, output: str, layers: Sequence[str], classes: Sequence[str] = DIGITS) -> dict:
    """A view of logits after every layer ``(1, L, K)`` (a logit lens): per layer, what the model
    would predict if it stopped there, and its probability of the final prediction."""
    return {
        "kind": "lens",
        "name": check_str("name", name),
        "output": check_str("output", output),
        "layers": _names("layers", layers),
        "classes": _names("classes", classes),
    }


def boxes(
    name: str,
    output: str,
    scores: str,
    labels: Sequence[str],
    classes: Sequence[str] = DIGITS,
    none: int | None = None,
    attention: str | None = None,
    canvas: int = 0,
) -> dict:
    """A view of ``Q`` detections (e.g. DETR's object queries) over canvas ``canvas``.

    Args:
        output: boxes ``(1, Q, 4)`` as ``(cx, cy, w, h)``, fractions of the canvas's width and
            height.
        scores: the probabilities of their classes ``(1, Q, K)`` (each row sums to 1).
        labels: a name per detection (e.g. ``"query 1"``).
        classes: ``K`` class names.
        none: the index of the "no object" class, or ``None``.
        attention: optionally each detection's map ``(1, Q, h, w)``.

    The page draws the boxes whose most likely class is not ``none`` over the canvas, and per
    detection its map, its box and its class with its probability.
    """
    names = _names("classes", classes)
    if none is not None and check_int("none", none, 0) >= len(names):
        raise ValueError(f"none must be the index of one of the {len(names)} classes, got {none}")
    return {
        "kind": "boxes",
        "name": check_str("name", name),
        "output": check_str("output", output),
        "scores": check_str("scores", scores),
        "labels": _names("labels", labels),
        "classes": names,
        "none": none,
        "attention": None if attention is None else check_str("attention", attention),
        "canvas": check_int("canvas", canvas, 0),
    }


def slots(name: str, output: str, labels: Sequence[str], top: int = 5) -> dict:
    """A view of weights over ``K`` stored items ``(1, K)`` (e.g. a memory's slots): a colour
    strip over all of them and the ``top`` heaviest with their pictures (``slot_images`` of
    :func:`model_explorer`) and labels."""
    return {
        "kind": "slots",
        "name": check_str("name", name),
        "output": check_str("output", output),
        "labels": _names("labels", labels),
        "top": check_positive_int("top", top),
    }


def model_explorer(
    model: BrowserModel,
    examples: torch.Tensor,
    example_names: Sequence[str],
    views: Sequence[dict],
    *,
    canvas_names: Sequence[str] | None = None,
    slot_images: torch.Tensor | None = None,
    display: int = 240,
    brush: float = 1.6,
    alpha: float = 0.55,
    caption: str = "",
) -> ModelExplorer:
    """A :class:`ModelExplorer`: the reader draws, the page runs ``model`` and draws ``views``.

    Args:
        model: the exported model; its input is ``(1, 1, H, W)`` for one canvas or
            ``(1, S, 1, H, W)`` for ``S``.
        examples: ``(N, H, W)`` or ``(N, S, H, W)`` test inputs in ``[0, 1]``, the reader's
            starting points (example 0 is shown first).
        example_names: ``N`` names for the example menu (e.g. ``"#3 (digit 7)"``).
        views: what to show (:func:`probs`, :func:`overlay`, :func:`maps`, :func:`bars`,
            :func:`slots`, :func:`tokens`, :func:`lens`, :func:`boxes`), in order; they name
            the model's outputs.
        canvas_names: ``S`` names (default ``canvas 0`` …).
        slot_images: ``(K, h, w)`` pictures of the items of the :func:`slots` views.
        display: the drawing area's longer side in CSS pixels.
        brush: the pen's radius in input pixels.
        alpha: opacity of a map over the input.
        caption: a sentence under the views.
    """
    if not isinstance(model, BrowserModel):
        raise ValueError(
            f"model must be a BrowserModel (export_model), got {type(model).__name__}"
        )
    check_floating("examples", examples)
    if examples.ndim == 3:
        examples = examples[:, None]
    n, s, h, w = check_tensor("examples", examples, "(N, S, H, W)")
    names = _names("example_names", example_names, n)
    canvases = _names("canvas_names", canvas_names or [f"canvas {k}" for k in range(s)], s)
    if isinstance(views, (str, dict)) or not isinstance(views, Sequence) or not views:
        raise ValueError(
            f"views must be a non-empty sequence of views (probs, overlay, …), got {views!r:.80}"
        )
    known = model.graph["names"]
    for view in views:
        if not isinstance(view, dict) or view.get("kind") not in KINDS:
            raise ValueError(
                "each of views must be made by probs, overlay, maps, bars, slots, tokens, lens or "
                "boxes, "
                f"got {view!r:.60}"
            )
        for key in ("output", "rollout", "scores", "attention"):
            if view.get(key) is not None and view[key] not in known:
                raise ValueError(
                    f"views name an output {view[key]!r} the model lacks; it has {known}"
                )
        if view.get("canvas", 0) >= s:
            raise ValueError(f"views: canvas {view['canvas']} of {s} canvases")
        if view["kind"] == "bars" and view["per_canvas"] and len(view["labels"]) != s:
            raise ValueError(f"views: per-canvas bars need {s} labels, got {len(view['labels'])}")
    images = b""
    if slot_images is not None:
        check_floating("slot_images", slot_images)
        check_tensor("slot_images", slot_images, "(K, h, w)")
    if any(v["kind"] == "slots" for v in views):
        if slot_images is None:
            raise ValueError("slot_images must be given with a slots view: (K, h, w) pictures")
        k = slot_images.shape[0]
        if any(v["kind"] == "slots" and len(v["labels"]) != k for v in views):
            raise ValueError(f"slots views need {k} labels, one per picture of slot_images")
        images = slot_images.detach().float().clamp(0, 1).numpy().astype("<f4").tobytes()
        views = [
            {**v, "image_size": list(slot_images.shape[1:])} if v["kind"] == "slots" else v
            for v in views
        ]
    check_size2("display", display, square=True)
    check_positive_number("brush", brush)
    check_number("alpha", alpha, 0.0, 1.0)
    check_str("caption", caption)
    lut = (colormaps[CMAP](np.linspace(0, 1, 256))[:, :3] * 255 + 0.5).astype(np.uint8)
    return ModelExplorer(
        graph=model.graph,
        weights=model.weights,
        canvas=[h, w],
        canvases=s,
        canvas_names=canvases,
        examples=examples.detach().float().clamp(0, 1).numpy().astype("<f4").tobytes(),
        example_names=names,
        views=[dict(v) for v in views],
        images=images,
        display_size=[
            round(display * h / w) if w > h else display,
            display * w // h if h > w else display,
        ],
        brush=float(brush),
        alpha=float(alpha),
        caption=caption,
        colormap=lut.tobytes(),
    )


def labelled(labels: torch.Tensor, what: str = "digit") -> list[str]:
    """``"#i (digit y)"`` for each label ``(N,)``: names for :func:`model_explorer`'s menu."""
    check_labels("labels", labels)
    check_str("what", what)
    return [f"#{i} ({what} {int(y)})" for i, y in enumerate(labels)]
