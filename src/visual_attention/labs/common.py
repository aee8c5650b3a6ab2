"""What several chapter labs share, on top of :mod:`visual_attention.labs.digits`.

Each chapter's lab (``labs/<chapter>.py``) is that chapter's alone: it builds on this module,
:mod:`~visual_attention.labs.digits` and :mod:`~visual_attention.labs._checks`, and never imports
another chapter's lab (an import-linter contract of ``make lint``).

* :func:`encode` — the frozen :class:`~visual_attention.labs.digits.DigitCNN` run over canvases
  once: ``(N, 1, H, W)`` → features ``(N, 64, H/4, W/4)``, one per ``4 × 4`` pixels;
  :func:`token_features` — the same averaged over ``2 × 2`` positions, one token per ``8 × 8``
  pixels; :func:`pooled_features` — one vector per image of a stack (sensors, frames):
  ``(N, S, 1, H, W)`` → ``(N, S, 64)``; :func:`like_module` (from
  :mod:`~visual_attention.labs.digits`) — half-precision input for a float32 model.
* :func:`feature_stats` and :func:`standardize` — per-channel standardisation of feature maps with
  the training statistics.
* :class:`EncodedHeads` — the base of the page models that put trained heads on the frozen
  encoder's standardised features.
* :func:`collect_attention` — recorded attention over a whole data set, in batches.
* :func:`peak_memory` — the peak memory PyTorch allocates while a function runs.
* :func:`code_fingerprint`, :func:`save_runs` and :func:`load_runs` — models that ``make weights``
  trains once per seed, too slow for a page: saved with their histories, the recipe and a hash of
  the code that trained them, loaded by the chapter (its tests check the hash against the code).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import inspect
import json
import os
import tempfile
import textwrap
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from .._checks import (
    check_bool,
    check_callable,
    check_file,
    check_instance,
    check_module,
    check_positive_int,
    check_str,
    check_tensor,
)
from ..core import record_attention
from ..train import History, SeedRuns
from ._checks import check_canvas, check_encoder, check_models
from .digits import like_module, load_digit_cnn

__all__ = [
    "like_module",
    "encode",
    "token_features",
    "pooled_features",
    "feature_stats",
    "standardize",
    "EncodedHeads",
    "collect_attention",
    "peak_memory",
    "code_fingerprint",
    "save_runs",
    "load_runs",
]


@torch.no_grad()
def encode(
    images: torch.Tensor, encoder: nn.Module | None = None, batch_size: int = 500
) -> torch.Tensor:
    """Features of the frozen digit encoder: ``(N, 1, H, W)`` → ``(N, 64, H/4, W/4)``.

    Args:
        images: canvases ``(N, 1, H, W)``, ``H`` and ``W`` multiples of 4.
        encoder: a module with ``feature_map`` (default: ``load_digit_cnn()``, frozen).
        batch_size: canvases per forward pass.
    """
    check_canvas("images", images, "(N, C, H, W)")
    check_positive_int("batch_size", batch_size)
    check_encoder("encoder", encoder)
    encoder = load_digit_cnn() if encoder is None else encoder.eval()
    return torch.cat(
        [encoder.feature_map(like_module(x, encoder)) for x in images.split(batch_size)]
    )


@torch.no_grad()
def token_features(
    images: torch.Tensor, encoder: nn.Module | None = None, batch_size: int = 500
) -> torch.Tensor:
    """The frozen digit encoder's feature map, averaged over ``2 × 2`` positions:
    ``(N, 1, 48, 48)`` → tokens ``(N, 64, 6, 6)``, one per ``8 × 8`` pixels.

    Args:
        images: canvases ``(N, 1, H, W)``, ``H`` and ``W`` multiples of 8.
        encoder: a module with ``feature_map`` (default: ``load_digit_cnn()``, frozen).
        batch_size: canvases per forward pass.
    """
    check_canvas("images", images, "(N, C, H, W)", side=8)  # features pooled 2 × 2
    check_positive_int("batch_size", batch_size)
    check_encoder("encoder", encoder)
    encoder = load_digit_cnn() if encoder is None else encoder.eval()
    maps = [
        nn.functional.avg_pool2d(encoder.feature_map(like_module(x, encoder)), 2)
        for x in images.split(batch_size)
    ]
    return torch.cat(maps)


@torch.no_grad()
def pooled_features(
    encoder: nn.Module,
    images: torch.Tensor,
    batch_size: int = 2048,
    name: str = "images",
    layout: str = "(N, S, C, H, W)",
) -> torch.Tensor:
    """One feature vector per image of a stack (the sensors of an example, the frames of a clip):
    the frozen ``encoder``'s feature map averaged over positions (the vector its own classifier
    reads). ``images`` ``(N, S, 1, H, W)`` → ``(N, S, C)``, computed once, in batches, in the
    encoder's precision (a float32 encoder reads half-precision images).

    Args:
        encoder: a module with ``feature_map``.
        images: ``(N, S, 1, H, W)``, ``H, W ≥ 4``.
        batch_size: images per forward pass.
        name, layout: how error messages call ``images`` and its layout.
    """
    check_module("encoder", encoder)
    check_encoder("encoder", encoder)
    n, s = check_canvas(name, images, layout)[:2]
    check_positive_int("batch_size", batch_size)
    flat = images.flatten(0, 1)
    parts = [
        encoder.feature_map(like_module(flat[i : i + batch_size], encoder)).mean(dim=(2, 3))
        for i in range(0, len(flat), batch_size)
    ]
    return torch.cat(parts).reshape(n, s, -1)


def feature_stats(train: torch.Tensor, name: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation ``(1, C, 1, 1)`` of ``train`` ``(N, C, h, w)``
    over ``N, h, w`` (each standard deviation at least ``1e-6``).

    The standard deviation is the sample one (``N·h·w − 1`` degrees of freedom); of a single
    value per channel (one ``1 × 1`` map) it is undefined, and taken as 0 (then ``1e-6``): that
    channel is constant, as far as ``train`` shows."""
    n, _, h, w = check_tensor(name, train, "(N, C, h, w)")
    mean = train.mean(dim=(0, 2, 3), keepdim=True)  # (1, C, 1, 1)
    if n * h * w > 1:
        std = train.std(dim=(0, 2, 3), keepdim=True)  # (1, C, 1, 1)
    else:  # one value: no spread to estimate (the sample formula divides 0 by 0)
        std = torch.zeros_like(mean)
    return mean, std.clamp_min(1e-6)


def standardize(train: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Standardise feature maps ``(N, C, h, w)`` per channel with the mean and standard deviation
    of ``train`` (over ``N, h, w``, :func:`feature_stats`); apply the same to ``others``.

    An affine change of the features: it leaves what a linear classifier or attention scores
    linear in the features can compute unchanged (their constant cancels in a softmax), but it
    conditions the problem so that Adam reaches a plateau within a chapter's budget (on the raw
    features of the spatial chapter, GAP is still climbing after 60 epochs).

    Returns:
        ``(train, *others)`` standardised, same shapes.
    """
    mean, std = feature_stats(train)
    for i, f in enumerate(others):
        check_tensor(f"others[{i}]", f, "(N, C, h, w)", C=train.shape[1])
    return tuple((f - mean) / std for f in (train, *others))


class EncodedHeads(nn.Module):
    """The common part of the chapters' page models: trained heads on the frozen digit encoder's
    features, standardised with the training statistics (as :func:`standardize`).

    Holds ``encoder``, ``names`` (the heads' names, in order), ``heads`` (an ``nn.ModuleList``,
    eval mode) and the buffers ``mean`` and ``std`` ``(1, C, 1, 1)``; subclasses run the encoder
    their chapter's way and call :meth:`standardized` on its features. A base class for the labs:
    its subclasses check their own arguments by name.

    Args:
        heads: ``{name: trained head}``, each a ``kind``.
        kind: the heads' class; name: the argument's name in error messages.
        train_features: the encoder's raw features of the training inputs ``(N, C, h, w)``.
        encoder: the frozen digit encoder (default:
            :func:`~visual_attention.labs.digits.load_digit_cnn`).
    """

    def __init__(
        self,
        heads: dict[str, nn.Module],
        kind: type,
        train_features: torch.Tensor,
        encoder: nn.Module | None = None,
        name: str = "heads",
    ) -> None:
        super().__init__()
        check_models(name, heads, kind)
        check_encoder("encoder", encoder)
        mean, std = feature_stats(train_features, "train_features")
        self.encoder = load_digit_cnn() if encoder is None else encoder.eval()
        self.names = list(heads)
        self.heads = nn.ModuleList(h.eval() for h in heads.values())
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def standardized(self, f: torch.Tensor) -> torch.Tensor:
        """Features ``(B, C, h, w)`` standardised per channel with the training statistics."""
        return (f - self.mean) / self.std


@torch.no_grad()
def collect_attention(
    model: nn.Module,
    x: torch.Tensor,
    batch_size: int = 256,
    names: Iterable[str] | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Run ``model`` in eval mode on ``x`` in batches; return the recorded attention, ``{name: (N,
    ...)}``.

    Each batch runs under :func:`~visual_attention.core.record_attention`; the weights of the
    modules in ``names`` (all that recorded, if ``None``) are passed through ``reduce`` (e.g. a
    mean over channels) and concatenated over the batches; ``x`` runs in the model's precision
    (:func:`like_module`). The model's train/eval mode is restored afterwards.
    """
    check_module("model", model)
    check_tensor("x", x, "(N, *S)")
    check_positive_int("batch_size", batch_size)
    if names is not None and (isinstance(names, str) or not isinstance(names, Iterable)):
        raise ValueError(f"names must be None or a list of module names, got {names!r}")
    wanted = None if names is None else [check_str("names[]", n) for n in names]
    if reduce is not None and not callable(reduce):
        raise ValueError(f"reduce must be None or a callable, got {type(reduce).__name__}")
    was_training = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    try:
        for i in range(0, len(x), batch_size):
            with record_attention(model) as maps:
                model(like_module(x[i : i + batch_size], model))  # half precision: as the model
            for name in maps if wanted is None else wanted:
                if name not in maps:
                    raise ValueError(f"names: no module {name!r} recorded; recorded: {list(maps)}")
                w = maps[name]
                parts.setdefault(name, []).append(w if reduce is None else reduce(w))
    finally:
        model.train(was_training)
    return {name: torch.cat(v) for name, v in parts.items()}


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C++ log lines written straight to file descriptor 2 (the profiler prints some)."""
    try:
        fd = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(fd, 2)
            os.close(fd)


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak CPU memory (bytes) allocated by PyTorch while ``fn()`` runs, measured by the profiler.

    Runs ``fn`` under ``torch.profiler.profile(profile_memory=True)`` and reads the allocator's
    running total from the trace's ``[memory]`` events: the peak minus what was allocated before.
    Tensors alive before the call (the inputs, the parameters) are not counted.
    """
    if not callable(fn):
        raise ValueError(f"fn must be a callable taking no arguments, got {type(fn).__name__}")
    with _quiet_stderr():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        handle, path = tempfile.mkstemp(suffix=".json")
        os.close(handle)
        try:
            prof.export_chrome_trace(path)
            with open(path) as f:
                events = json.load(f)["traceEvents"]
        finally:
            os.remove(path)
    mem = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    if not mem:
        return 0
    start = mem[0]["args"]["Total Allocated"] - mem[0]["args"]["Bytes"]
    return int(max(e["args"]["Total Allocated"] for e in mem) - start)


def _without_docstrings(source: str) -> str:
    """The syntax tree of ``source`` without its docstrings, dumped: rewrapping a docstring or a
    comment leaves it unchanged, changing the code does not."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def code_fingerprint(parts: Iterable[object], *recipe: object) -> str:
    """A 16-digit hash of the source of ``parts`` (functions, classes; docstrings and comments
    aside) and the ``repr`` of each ``recipe`` value: what trained a stored model.

    Args:
        parts: objects :func:`inspect.getsource` reads.
        recipe: settings (dicts, tuples) whose change should change the hash.
    """
    if isinstance(parts, (str, bytes)) or not isinstance(parts, Iterable):
        raise ValueError(
            f"parts must be a list of functions or classes, got {type(parts).__name__}"
        )
    parts = list(parts)
    if not parts:
        raise ValueError("parts must hold at least one function or class, got none")
    for part in parts:
        if not callable(part):
            raise ValueError(f"parts must hold functions or classes, got {type(part).__name__}")
    code = "".join(_without_docstrings(textwrap.dedent(inspect.getsource(p))) for p in parts)
    code += "".join(repr(value) for value in recipe)
    return hashlib.sha256(code.encode()).hexdigest()[:16]


def save_runs(
    path: Path | str,
    runs: Mapping[str, SeedRuns],
    recipe: Mapping,
    fingerprint: str,
    half: bool = False,
) -> Path:
    """Write trained models, one :class:`~visual_attention.train.SeedRuns` per name, to ``path``:
    each seed's state dict and per-epoch test accuracies, the ``recipe`` and the code's
    ``fingerprint`` (:func:`code_fingerprint`). :func:`load_runs` reads it back.

    Args:
        half: store floating-point weights as float16 (half the file; :func:`load_runs` copies
            them into the float32 model, so its outputs move by float16 rounding).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    if isinstance(path, bool) or not isinstance(path, (str, Path)):
        raise ValueError(f"path must be a str or a Path, got {type(path).__name__}")
    check_instance("runs", runs, Mapping)
    check_instance("recipe", recipe, Mapping)
    check_str("fingerprint", fingerprint)
    for name, run in runs.items():
        check_instance(f"runs[{name!r}]", run, SeedRuns)
    check_bool("half", half)

    def stored(model: nn.Module) -> dict:
        state = model.state_dict()
        if half:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        return state

    models = {
        name: [
            {
                "state_dict": stored(model),
                "test_accuracy": list(history.test_accuracy),
                "accuracy": float(accuracy),
            }
            for accuracy, model, history in zip(run.accuracies, run.models, run.histories)
        ]
        for name, run in runs.items()
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"models": models, "recipe": dict(recipe), "fingerprint": fingerprint}, path)
    return path


def load_runs(
    path: Path | str, build: Callable[[str], nn.Module], what: str = "stored models"
) -> tuple[dict[str, SeedRuns], dict]:
    """The models :func:`save_runs` wrote, each rebuilt by ``build(name)`` and loaded in eval mode,
    with their stored histories; and the file's ``{"recipe", "fingerprint"}``.

    Args:
        path: the weights file.
        build: ``name → nn.Module`` of the architecture stored under that name.
        what: what the file holds, for the error message.

    Returns:
        ``({name: SeedRuns}, {"recipe": ..., "fingerprint": ...})``; a seed's accuracy is the
        stored one (files written before it was stored: the last stored test accuracy).
    """
    check_str("what", what)
    path = check_file("path", path, f"weights file of the {what} (make weights writes it)")
    check_callable("build", build, what="(name) → nn.Module")
    try:
        saved = torch.load(path, weights_only=True)
        runs = {}
        for name, seeds in saved["models"].items():
            models = []
            for entry in seeds:
                model = build(name)
                model.load_state_dict(entry["state_dict"])
                models.append(model.eval())
            histories = [History(test_accuracy=list(e["test_accuracy"])) for e in seeds]
            scores = [e.get("accuracy", (e["test_accuracy"] or [None])[-1]) for e in seeds]
            runs[name] = SeedRuns(scores, models, histories)
        meta = {"recipe": saved["recipe"], "fingerprint": saved["fingerprint"]}
    except Exception as error:  # not a torch file, or weights of other models
        raise ValueError(
            f"path must be a weights file of the {what} (make weights writes one), got "
            f"{str(path)!r}: {type(error).__name__}: {str(error)[:200]}"
        ) from error
    return runs, meta
