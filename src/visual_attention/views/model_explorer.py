"""A trained model in the reader's browser, on any digit the reader draws.

:func:`model_explorer` sends a model exported by
:func:`~visual_attention.views.browser_model.export_model` (its graph and float32 weights) and a
few test examples to the page; ``static/model_explorer.js``
runs the model there with ``static/model_runtime.js`` — with a kernel in JupyterLab and on the
static site with none — after every stroke, example, noise or move, and draws the attention map
over the input the model saw, the share of attention inside the ink's box and the class
probabilities.
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
    check_floating,
    check_number,
    check_positive_number,
    check_size2,
    check_str,
    check_tensor,
)
from .browser_model import BrowserModel
from .viz import CMAP

__all__ = ["ModelExplorer", "model_explorer"]

_STATIC = Path(__file__).parent / "static"


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
    canvas = tl.List(tl.Int(), [48, 48]).tag(sync=True)
    examples = tl.Bytes(b"").tag(sync=True)  # (N, H, W) float32, values in [0, 1]
    example_labels = tl.List(tl.Int()).tag(sync=True)
    class_names = tl.List(tl.Unicode()).tag(sync=True)
    heads = tl.List(tl.Dict()).tag(sync=True)  # [{"name", "logits", "map"}]: outputs per head
    display_size = tl.List(tl.Int(), [240, 240]).tag(sync=True)
    brush = tl.Float(1.6).tag(sync=True)
    alpha = tl.Float(0.55).tag(sync=True)
    caption = tl.Unicode("").tag(sync=True)
    colormap = tl.Bytes(b"").tag(sync=True)


def model_explorer(
    model: BrowserModel,
    examples: torch.Tensor,
    labels: torch.Tensor,
    *,
    class_names: Sequence[str] = tuple("0123456789"),
    heads: Sequence[tuple[str, str, str]] = (("model", "logits", "weights"),),
    display: int = 240,
    brush: float = 1.6,
    alpha: float = 0.55,
    caption: str = "",
) -> ModelExplorer:
    """A :class:`ModelExplorer` for a model taking one-channel images ``(1, 1, H, W)``.

    Args:
        model: the exported model; for each head it outputs logits ``(1, K)`` and a map
            ``(1, h, w)`` or ``(1, 1, h, w)`` over the input (``H``, ``W`` multiples of ``h``,
            ``w``).
        examples: ``(N, 1, H, W)`` or ``(N, H, W)`` test inputs in ``[0, 1]``, the reader's
            starting points (example 0 is shown first).
        labels: ``(N,)`` their classes.
        class_names: a name per class.
        heads: ``(name, logits output, map output)`` per head, e.g. two pooling heads on one
            encoder; the reader chooses whose map is drawn.
        display: the drawing area's side in CSS pixels.
        brush: the pen's radius in input pixels.
        alpha: opacity of the map over the input.
        caption: a sentence under the readouts.
    """
    if not isinstance(model, BrowserModel):
        raise ValueError(
            f"model must be a BrowserModel (export_model), got {type(model).__name__}"
        )
    check_floating("examples", examples)
    if examples.ndim == 4:
        check_tensor("examples", examples, "(N, C, H, W)", C=1)
        examples = examples[:, 0]
    n, h, w = check_tensor("examples", examples, "(N, H, W)")
    if not isinstance(labels, torch.Tensor) or labels.shape != (n,) or labels.is_floating_point():
        raise ValueError(f"labels must be an integer tensor ({n},), got {labels!r:.60}")
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise ValueError(f"class_names must be a sequence of names, got {class_names!r}")
    names = [check_str("class_names", c) for c in class_names]
    if isinstance(heads, str) or not isinstance(heads, Sequence) or not heads:
        raise ValueError(
            f"heads must be a non-empty sequence of (name, logits, map), got {heads!r}"
        )
    for head in heads:
        if not isinstance(head, (tuple, list)) or len(head) != 3:
            raise ValueError(
                f"each of heads must be (name, logits output, map output), got {head!r}"
            )
        for name in head[1:]:
            if check_str("heads", name) not in model.graph["names"]:
                raise ValueError(
                    f"heads name an output {name!r} the model lacks; it has {model.graph['names']}"
                )
    check_size2("display", display, square=True), check_positive_number("brush", brush)
    check_number("alpha", alpha, 0.0, 1.0), check_str("caption", caption)
    lut = (colormaps[CMAP](np.linspace(0, 1, 256))[:, :3] * 255 + 0.5).astype(np.uint8)
    return ModelExplorer(
        graph=model.graph,
        weights=model.weights,
        canvas=[h, w],
        examples=examples.detach().float().clamp(0, 1).numpy().astype("<f4").tobytes(),
        example_labels=[int(y) for y in labels],
        class_names=names,
        heads=[{"name": check_str("heads", n), "logits": lg, "map": mp} for n, lg, mp in heads],
        display_size=[display, display],
        brush=float(brush),
        alpha=float(alpha),
        caption=caption,
        colormap=lut.tobytes(),
    )
