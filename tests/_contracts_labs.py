"""The chapter labs' part of the error contract (see ``_contracts.py``): a valid call of every
public callable of ``visual_attention.labs.<chapter>``, with small sizes.

Specs are named ``labs.<chapter>.<callable>`` (``….forward`` for forward passes), since the labs
reuse names (``run_seeds``, ``explorer``, ``pair_task`` …).
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any

import torch

from _contracts import (
    NONNEG_FLOAT,
    NONNEG_INT,
    POS_FLOAT,
    POS_INT,
    SIZE2,
    Kind,
    Spec,
    _fn,
    _module,
    _r,
    call,
    choice,
    forward,
    optional,
)
from _helpers import gen

#: The lab modules whose ``__all__`` is under contract.
LAB_MODULES = tuple(
    f"labs.{m}"
    for m in (
        "digits common foundations spatial channel branch self_attention multi_head global_attention "
        "local_attention hierarchical temporal memory efficient_attention"
    ).split()
)

SEED = NONNEG_INT
SPLIT = Kind("split", ("nonsense", 3))
SEEDS = Kind("seeds", ((), (-1,), (1.5,), "0", None, 3))
MODEL = Kind("module", (None, 3, "model"))
ENCODER = Kind("encoder or None", (3, "model", torch.nn.Linear(2, 2)))
PAIR = Kind("(x, y)", (None, 3, (1, 2, 3)))
MAPPING = Kind("dict", (None, 3, {}))
INTS = Kind("positive ints", (None, 3, (), (0,), (2.5,), ("a",)))
INTS0 = Kind("non-negative ints", (None, 3, (), (-1,), (2.5,), ("a",)))
NAN, INF = math.nan, math.inf


def lcall(path: str, kinds: dict[str, Kind] | None = None, skip: tuple[str, ...] = (), **kw):
    spec = call(f"labs.{path}", kinds, skip, **kw)
    spec.name = f"labs.{path}"
    return spec


def lforward(path: str, build, kinds: dict[str, Kind] | None = None, **kw):
    spec = forward(f"labs.{path}", build, kinds, **kw)
    spec.name = f"labs.{path}.forward"
    return spec


def lmod(path: str, *args: Any, **kwargs: Any) -> torch.nn.Module:
    module, name = path.rsplit(".", 1)
    cls = getattr(importlib.import_module(f"visual_attention.labs.{module}"), name)
    return cls(*args, **kwargs).eval()


def _u(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=gen(seed))


def _y(n: int, k: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randint(k, (n,), generator=gen(seed))


def _tmp_file(name: str) -> str:
    import tempfile

    return str(Path(tempfile.mkdtemp()) / name)


def _seed_runs():
    from visual_attention.train import History, SeedRuns

    return SeedRuns([0.5], [torch.nn.Linear(2, 2)], [History(test_accuracy=[0.5])])


def _saved_runs() -> str:
    from visual_attention.labs.common import save_runs

    return str(save_runs(_tmp_file("runs.pt"), {"a": _seed_runs()}, {"epochs": 1}, "0123"))


def _global_reading():
    from visual_attention.labs import global_attention as lab

    _, s, _, _ = lab.reading_task(4, "train", seed=0)
    f = _r(4, 64, *lab.GRID)
    return (f, s), (f[:2], s[:2])


def _global_finding():
    from visual_attention.labs import global_attention as lab

    _, c, _, b = lab.finding_task(4, "train", seed=0)
    f = _r(4, 64, *lab.GRID)
    return (f, c, b), (f[:2], c[:2], b[:2])


def _data(*shape: int, k: int = 10):
    return lambda: (_r(*shape), _y(shape[0], k))


def _retrieval(n: int):
    from visual_attention.labs.foundations import Retrieval

    return Retrieval(_u(n, 9, 1, 16, 16), _r(n, 9, 64), _y(n), _y(n, 4))


def _trained(path, *args, **kwargs):
    return lambda: lmod(path, *args, **kwargs)


LAB_SPECS: list[Spec] = [
    # digits
    lcall("digits.digits_at", {"split": optional(SPLIT)}, size=8, split="test"),
    Spec(  # an argument named path: lcall's own first argument
        "labs.digits.load_digit_cnn",
        lambda: (_fn("labs.digits.load_digit_cnn"), {"path": _fn("labs.digits.WEIGHTS")}),
    ),
    lcall("digits.DigitCNN", num_classes=10),
    lforward("digits.DigitCNN", _trained("digits.DigitCNN"), x=lambda: _u(2, 1, 16, 16)),
    lcall("digits.like_module", {"module": MODEL}, x=lambda: _r(2, 3).half(), module=lambda: torch.nn.Linear(3, 2)),
    # common
    lcall(
        "common.encode",
        {"encoder": ENCODER},
        images=lambda: _u(2, 1, 16, 16),
        encoder=None,
        batch_size=1,
    ),
    lcall(
        "common.token_features",
        {"encoder": ENCODER},
        images=lambda: _u(2, 1, 16, 16),
        encoder=None,
        batch_size=1,
    ),
    lcall("common.standardize", train=lambda: _r(3, 4, 2, 2)),
    lcall(
        "common.collect_attention",
        {"model": MODEL, "names": Kind("names", (3, ["nope"])), "x": Kind("inputs", (None, 3))},
        skip=("reduce",),
        model=_trained("channel.GatedNet", "se", 8, 4, 2, 5),
        x=lambda: _r(3, 8, 2, 2),
        batch_size=2,
        names=["gate"],
        reduce=None,
    ),
    lcall(
        "common.peak_memory",
        {"fn": Kind("callable", (None, 3))},
        skip=(),
        fn=lambda: lambda: torch.zeros(4),
    ),
    lcall(
        "common.pooled_features",
        {"encoder": MODEL},
        skip=("name", "layout"),  # how error messages call images: the labs pass literals
        encoder=lambda: lmod("digits.DigitCNN"),
        images=lambda: _u(2, 3, 1, 16, 16),
        batch_size=4,
        name="images",
        layout="(N, S, C, H, W)",
    ),
    lcall("common.feature_stats", skip=("name",), train=lambda: _r(3, 4, 2, 2), name="train"),
    lcall(
        "common.code_fingerprint",
        {"parts": Kind("functions or classes", (None, 3, [], [3]))},
        parts=lambda: [_fn("labs.common.encode")],
    ),
    Spec(  # arguments named path: lcall's own first argument
        "labs.common.save_runs",
        lambda: (
            _fn("labs.common.save_runs"),
            {
                "path": _tmp_file("runs.pt"),
                "runs": {"a": _seed_runs()},
                "recipe": {"epochs": 1},
                "fingerprint": "0123",
            },
        ),
        {
            "path": Kind("str or Path", (None, 3)),
            "runs": Kind("dict of SeedRuns", (None, 3, {"a": 3})),
            "recipe": Kind("dict", (None, 3)),
            "fingerprint": Kind("str", (None, 3)),
        },
    ),
    Spec(
        "labs.common.load_runs",
        lambda: (
            _fn("labs.common.load_runs"),
            {"path": _saved_runs(), "build": lambda name: torch.nn.Linear(2, 2), "what": "models"},
        ),
        {
            "path": Kind("file of save_runs", (None, 3, "no/such/file.pt")),
            "build": Kind("callable", (None, 3)),
            "what": Kind("str", (None, 3)),
        },
    ),
    # foundations
    lcall("foundations.digit_vectors", {"split": SPLIT}, split="test"),
    lcall("foundations.retrieval", {"split": SPLIT, "seed": SEED}, n=4, split="test", seed=0),
    lcall("foundations.draws", {"seed": SEED}, seed=0, n_train=4, n_test=2),
    lcall("foundations.RetrievalNet", {"kind": choice()}, kind="attention", items=2, width=4),
    lforward(
        "foundations.RetrievalNet",
        _trained("foundations.RetrievalNet", "attention", 2, 4),
        tokens=lambda: _r(2, 5, 64),
    ),
    lcall(
        "foundations.run_seeds",
        {"kind": choice(), "seeds": SEEDS},
        kind="attention",
        seeds=(0,),
        n_train=6,
        n_test=4,
        epochs=1,
    ),
    lcall(
        "foundations.RetrievalModel",
        {"attention": MODEL, "control": MODEL, "encoder": ENCODER},
        attention=_trained("foundations.RetrievalNet", "attention"),
        control=_trained("foundations.RetrievalNet", "max"),
    ),
    lforward(
        "foundations.RetrievalModel",
        lambda: lmod("foundations.RetrievalModel", lmod("foundations.RetrievalNet", "attention"),
                     lmod("foundations.RetrievalNet", "max")),
        x=lambda: _u(2, 9, 1, 16, 16),
    ),
    lcall(
        "foundations.model_explorer",
        {"model": Kind("RetrievalModel", (3, None, torch.nn.Linear(2, 2))),
         "data": Kind("Retrieval", (3, None))},
        model=lambda: lmod("foundations.RetrievalModel", lmod("foundations.RetrievalNet", "attention"),
                           lmod("foundations.RetrievalNet", "max")),
        data=lambda: _retrieval(2),
        count=2,
    ),
    # spatial
    lcall("spatial.cluttered_task", {"split": SPLIT, "seed": SEED}, n=2, split="test", seed=0),
    lcall("spatial.PooledHead", {"pool": choice()}, pool="gate", channels=8, num_classes=3),
    lforward(
        "spatial.PooledHead",
        _trained("spatial.PooledHead", "attention", 8, 3),
        f=lambda: _r(2, 8, 3, 3),
    ),
    lcall(
        "spatial.run_seeds",
        {"pool": choice(), "train": PAIR, "test": PAIR, "seeds": SEEDS},
        pool="attention",
        train=_data(6, 8, 3, 3),
        test=_data(4, 8, 3, 3),
        seeds=(0,),
        epochs=1,
        lr=0.01,
        batch_size=4,
    ),
    lcall(
        "spatial.lower_features",
        {"encoder": ENCODER},
        images=lambda: _u(2, 1, 16, 16),
        encoder=None,
        batch_size=4,
    ),
    lcall("spatial.StageNet", {"pool": choice()}, pool="gate", channels=8, width=4, num_classes=3),
    lforward(
        "spatial.StageNet",
        _trained("spatial.StageNet", "attention", 8, 4, 3),
        f=lambda: _r(2, 8, 3, 3),
    ),
    lcall(
        "spatial.run_stage_seeds",
        {
            "pool": choice(),
            "train": PAIR,
            "test": PAIR,
            "seeds": SEEDS,
            "n_train": optional(POS_INT),
        },
        pool="max",
        train=_data(6, 8, 3, 3),
        test=_data(4, 8, 3, 3),
        seeds=(0,),
        n_train=4,
        epochs=1,
        lr=0.01,
        batch_size=4,
        width=4,
    ),
    lcall(
        "spatial.GlimpseNet",
        {"baseline": Kind("bool", ("no", 2, None)), "glimpses": POS_INT},
        channels=8,
        width=4,
        num_classes=3,
        baseline=True,
        glimpses=2,
    ),
    lforward(
        "spatial.GlimpseNet",
        _trained("spatial.GlimpseNet", 8, 4, 3),
        f=lambda: _r(2, 8, 3, 3),
    ),
    lcall(
        "spatial.run_glimpse_seeds",
        {
            "train": PAIR,
            "test": PAIR,
            "seeds": SEEDS,
            "n_train": optional(POS_INT),
            "baseline": Kind("bool", ("no", 2, None)),
        },
        train=_data(6, 8, 3, 3),
        test=_data(4, 8, 3, 3),
        seeds=(0,),
        n_train=4,
        epochs=1,
        lr=0.01,
        batch_size=4,
        width=4,
        baseline=True,
        glimpses=2,
    ),
    lcall(
        "spatial.train_stage_models",
        {
            "train": PAIR,
            "test": PAIR,
            "seeds": Kind("seeds or None", ((), (-1,), (1.5,), "0", 3)),
            "names": Kind("names", (["nope"], 3, "max")),
        },
        train=_data(6, 8, 3, 3),
        test=_data(4, 8, 3, 3),
        names=["max", "hard, 1 glimpse"],
        seeds=(0,),
        epochs=1,
    ),
    lcall("spatial.stage_fingerprint"),
    lcall("spatial.load_stage_models"),
    lcall(
        "spatial.policy_gradients",
        {
            "model": Kind("GlimpseNet", (3, None, torch.nn.Linear(2, 2))),
            "draws": POS_INT,
            "baseline": Kind("bool", ("no", 2, None)),
            "seed": SEED,
        },
        model=_trained("spatial.GlimpseNet", 8, 4, 3),
        f=lambda: _r(4, 8, 3, 3),
        labels=lambda: _y(4, 3),
        draws=2,
        baseline=True,
        seed=0,
    ),
    lcall(
        "spatial.face_scenes",
        {"split": SPLIT, "seed": SEED, "distractors": NONNEG_INT},
        n=2,
        split="test",
        seed=0,
        canvas=32,
        patch=16,
        distractors=1,
    ),
    lcall("spatial.SceneNet", {"pool": choice()}, pool="max", width=4, num_classes=2),
    lforward(
        "spatial.SceneNet",
        _trained("spatial.SceneNet", "attention", 4),
        x=lambda: _u(2, 1, 16, 16),
    ),
    lcall(
        "spatial.run_scene_seeds",
        {"pool": choice(), "test": PAIR, "seeds": SEEDS},
        pool="attention",
        test=lambda: (_u(4, 1, 32, 32), _y(4, 2)),
        seeds=(0,),
        n_train=4,
        epochs=1,
        lr=0.01,
        batch_size=4,
        width=4,
    ),
    lcall(
        "spatial.CanvasModel",
        {"heads": MAPPING, "encoder": Kind("encoder", (3, torch.nn.Linear(2, 2)))},
        heads=lambda: {"a": lmod("spatial.PooledHead", "attention"), "g": lmod("spatial.PooledHead", "gate")},
        train_features=lambda: _r(3, 64, 4, 4),
    ),
    lforward(
        "spatial.CanvasModel",
        lambda: lmod("spatial.CanvasModel", {"a": lmod("spatial.PooledHead", "attention")}, _r(3, 64, 4, 4)),
        x=lambda: _u(2, 1, 16, 16),
    ),
    lcall(
        "spatial.model_explorer",
        {"model": Kind("CanvasModel", (3, None, torch.nn.Linear(2, 2)))},
        model=lambda: lmod("spatial.CanvasModel", {"a": lmod("spatial.PooledHead", "attention")}, _r(3, 64, 4, 4)),
        examples=lambda: _u(2, 1, 16, 16),
        labels=lambda: _y(2),
        display=120,
    ),
    # channel
    lcall(
        "channel.sensor_task",
        {"split": SPLIT, "seed": SEED, "clean_noise": NONNEG_FLOAT, "noisy_noise": NONNEG_FLOAT},
        n=2,
        split="test",
        seed=0,
        sensors=3,
        clean_noise=0.1,
        noisy_noise=0.5,
    ),
    lcall(
        "channel.sensor_maps",
        {"encoder": Kind("encoder", (None, 3, "model", torch.nn.Linear(2, 2)))},
        encoder=lambda: lmod("digits.DigitCNN"),
        images=lambda: _u(2, 3, 1, 16, 16),
        batch_size=4,
    ),
    lcall("channel.StaticGate", channels=4),
    lforward("channel.StaticGate", _trained("channel.StaticGate", 4), x=lambda: _r(2, 4, 3, 3)),
    lcall("channel.make_gate", {"gate": Kind("choice", ("nonsense", 3))}, gate="se", channels=8, rd_channels=2),
    lcall(
        "channel.GatedNet",
        {"gate": Kind("choice", ("nonsense", 3))},
        gate="eca",
        channels=8,
        width=4,
        rd_channels=2,
        num_classes=5,
    ),
    lforward(
        "channel.GatedNet",
        _trained("channel.GatedNet", "cbam-channel", 8, 4, 2, 5),
        x=lambda: _r(2, 8, 3, 3),
    ),
    lcall(
        "channel.seed_data",
        {"encoder": MODEL, "seed": SEED},
        encoder=lambda: lmod("digits.DigitCNN"),
        seed=0,
        n_train=3,
        n_test=2,
    ),
    lcall(
        "channel.run_seeds",
        {"data": Kind("data", (None, 3, "data")), "seeds": SEEDS, "gate": Kind("choice", ("nonsense", 3))},
        data=lambda: [
            importlib.import_module("visual_attention.labs.channel").SensorData(
                (_r(6, 8, 2, 2), _y(6)), (_r(4, 8, 2, 2), _y(4)), _u(4, 2, 1, 16, 16), _y(4, 2)
            )
        ],
        gate="se",
        width=4,
        seeds=(0,),
        epochs=1,
        lr=0.01,
    ),
    lcall(
        "channel.channel_gates",
        {"model": MODEL},
        model=_trained("channel.GatedNet", "se", 8, 4, 2, 5),
        f=lambda: _r(2, 8, 3, 3),
    ),
    lcall(
        "channel.correct",
        {"model": MODEL},
        model=_trained("channel.GatedNet", None, 8, 4, 2, 5),
        f=lambda: _r(3, 8, 3, 3),
        y=lambda: _y(3, 5),
    ),
    lcall(
        "channel.PageModel",
        {
            "gated": MODEL,
            "control": MODEL,
            "encoder": ENCODER,
            "shown": Kind("channel indices", ((), (192,), (-1,), (1.5,), None, 3)),
        },
        gated=_trained("channel.GatedNet", "se", 192, 4, 4, 10),
        control=_trained("channel.GatedNet", None, 192, 4, 4, 10),
        shown=(0, 100),
    ),
    lforward(
        "channel.PageModel",
        lambda: lmod("channel.PageModel", lmod("channel.GatedNet", "se", 192, 4, 4, 10),
                     lmod("channel.GatedNet", None, 192, 4, 4, 10), (0, 100)),
        x=lambda: _u(2, 3, 1, 16, 16),
    ),
    lcall(
        "channel.model_explorer",
        {
            "model": Kind("PageModel", (3, None, torch.nn.Linear(2, 2))),
            "labels": Kind("labels", (None, 3, torch.zeros(3).long())),
            "clean": Kind("clean", (None, 3, torch.zeros(3).long())),
        },
        model=lambda: lmod("channel.PageModel", lmod("channel.GatedNet", "se", 192, 4, 4, 10),
                           lmod("channel.GatedNet", None, 192, 4, 4, 10), (0, 100)),
        images=lambda: _u(2, 3, 1, 16, 16),
        labels=lambda: _y(2),
        clean=lambda: _y(2, 3),
    ),
    # branch
    lcall("branch.scale_task", {"split": SPLIT, "seed": SEED}, n=2, split="test", seed=0),
    lcall("branch.feature_maps", {"encoder": ENCODER}, images=lambda: _u(2, 1, 16, 16), encoder=None),
    lcall(
        "branch.encoded_task",
        {"split": SPLIT, "seed": SEED, "encoder": ENCODER},
        n=2,
        split="test",
        seed=0,
        encoder=None,
    ),
    lcall(
        "branch.BranchNet",
        {"mode": choice(), "kernel_sizes": Kind("kernel_sizes", (None, 3, (3, 4), (3, 5, 7)))},
        mode="sk",
        channels=8,
        groups=4,
        rd_channels=4,
        num_classes=3,
        kernel_sizes=(3, 5),
    ),
    lforward(
        "branch.BranchNet",
        _trained("branch.BranchNet", "sk", 8, 4, 4, 3),
        x=lambda: _r(2, 8, 4, 4),
    ),
    lcall(
        "branch.run_seeds",
        {
            "mode": choice(),
            "seeds": SEEDS,
            "data": Kind("data", (None, 3, [], [(1, 2)])),
            "kernel_sizes": Kind("kernel_sizes", (None, 3, (3, 4), (3, 5, 7))),
        },
        mode="sk",
        data=lambda: [((_r(6, 8, 4, 4), _y(6)), (_r(4, 8, 4, 4), _y(4)))],
        seeds=(0,),
        epochs=1,
        lr=0.01,
        batch_size=4,
        kernel_sizes=(3, 5),
    ),
    lcall(
        "branch.branch_draws",
        {"seeds": SEEDS, "train": POS_INT, "test": POS_INT},
        seeds=(0,),
        train=2,
        test=2,
    ),
    lcall(
        "branch.train_branch_nets",
        {
            "data": Kind("data", (None, 3, [], [(1, 2)])),
            "seeds": Kind("seeds or None", ((), (-1,), (1.5,), "0", 3)),
            "modes": Kind("modes", (["nope"], 3, "sk")),
        },
        data=lambda: [((_r(6, 64, 6, 6), _y(6)), (_r(4, 64, 6, 6), _y(4)))],
        modes=["half"],
        seeds=(0,),
        epochs=1,
    ),
    lcall("branch.branch_fingerprint"),
    lcall("branch.load_branch_nets"),
    lcall(
        "branch.render_digits",
        {
            "indices": Kind("indices", (None, 3, [-1], [10**6], [1.5])),
            "noise": NONNEG_FLOAT,
            "split": SPLIT,
            "seed": SEED,
        },
        indices=[0, 1],
        size=16,
        canvas=32,
        noise=0.1,
        split="test",
        seed=0,
    ),
    lcall(
        "branch.weights_by_size",
        {
            "net": MODEL,
            "sizes": INTS,
            "encoder": ENCODER,
            "normalize": Kind("normalize", (3, (None,))),
        },
        net=_trained("branch.BranchNet"),
        sizes=[16],
        count=2,
        encoder=None,
        normalize=None,
    ),
    lcall(
        "branch.BranchModel",
        {"nets": MAPPING, "encoder": ENCODER},
        nets=lambda: {"sk": lmod("branch.BranchNet")},
        train_features=lambda: _r(4, 64, 4, 4),
    ),
    lforward(
        "branch.BranchModel",
        lambda: lmod("branch.BranchModel", {"sk": lmod("branch.BranchNet")}, _r(4, 64, 4, 4)),
        x=lambda: _u(2, 1, 16, 16),
    ),
    lcall(
        "branch.model_explorer",
        {"model": Kind("BranchModel", (3, None, torch.nn.Linear(2, 2)))},
        model=lambda: lmod(
            "branch.BranchModel", {"sk": lmod("branch.BranchNet")}, _r(4, 64, 4, 4)
        ),
        examples=lambda: _u(2, 1, 16, 16),
        labels=lambda: _y(2),
        display=120,
    ),
    # self_attention
    lcall(
        "self_attention.pair_task",
        {"distances": INTS, "split": SPLIT, "seed": SEED},
        n=2,
        distances=(16, 24),
        split="test",
        seed=0,
    ),
    lcall(
        "self_attention.order_task",
        {"split": SPLIT, "seed": SEED, "digits": Kind("digits", (2, 9, 3.5, None))},
        n=2,
        split="test",
        seed=0,
        digits=3,
    ),
    lcall(
        "self_attention.strip_features",
        {"encoder": ENCODER},
        images=lambda: _u(2, 1, 16, 32),
        encoder=None,
    ),
    lcall(
        "self_attention.receptive_field",
        {"layers": Kind("layers", (None, 3, [(0, 1)], [(3,)], [(3, 1.5)]))},
        layers=[(3, 1), (3, 2)],
    ),
    lcall("self_attention.LocalBlock", channels=8, kernel=3),
    lforward(
        "self_attention.LocalBlock",
        _trained("self_attention.LocalBlock", 8, 3),
        x=lambda: _r(2, 8, 1, 6),
    ),
    lcall("self_attention.DilatedBlock", {"dilations": INTS}, channels=8, width=4, dilations=(1, 2)),
    lforward(
        "self_attention.DilatedBlock",
        _trained("self_attention.DilatedBlock", 8, 4, (1, 2)),
        x=lambda: _r(2, 8, 1, 6),
    ),
    lcall("self_attention.PoolMLP", channels=8, hidden=4),
    lforward(
        "self_attention.PoolMLP",
        _trained("self_attention.PoolMLP", 8, 4),
        x=lambda: _r(2, 8, 1, 6),
    ),
    lcall(
        "self_attention.make_model",
        {"model": Kind("model name", ("nope", 3, None)), "positions": Kind("positions", (-1, 1.5, "a"))},
        model="dilated",
        channels=8,
        positions=6,
    ),
    lcall(
        "self_attention.PairNet", {"mode": choice()}, mode="local", channels=8, kernel=3, hidden=4
    ),
    lforward(
        "self_attention.PairNet",
        _trained("self_attention.PairNet", "non-local", 8, 3, 4),
        x=lambda: _r(2, 8, 1, 6),
    ),
    lcall(
        "self_attention.run_seeds",
        {"mode": choice(), "train": PAIR, "test": PAIR, "seeds": SEEDS},
        mode="non-local",
        train=_data(6, 8, 1, 6, k=2),
        test=_data(4, 8, 1, 6, k=2),
        seeds=(0,),
        epochs=1,
        lr=0.01,
        batch_size=4,
    ),
    lcall(
        "self_attention.train_self_models",
        {
            "tasks": Kind("dict of tasks", (None, 3, {})),
            "seeds": Kind("seeds or None", ((), (-1,), (1.5,), "0", 3)),
            "names": Kind("names", (["nope"], 3, "local")),
        },
        tasks=lambda: {"order": (_data(6, 8, 1, 6, k=2)(), _data(4, 8, 1, 6, k=2)())},
        names=["global max/mean pool + MLP"],
        seeds=(0,),
        epochs=1,
    ),
    lcall("self_attention.self_fingerprint"),
    lcall("self_attention.load_self_models"),
    lcall(
        "self_attention.accuracy_by_distance",
        {"net": MODEL},
        net=_trained("self_attention.PairNet", "non-local", 8, 3, 4),
        features=lambda: _r(4, 8, 1, 8),
        labels=lambda: _y(4, 2),
        columns=lambda: torch.tensor([[0, 16], [0, 24], [4, 20], [8, 32]]),
    ),
    lcall(
        "self_attention.correct_by_example",
        {"nets": Kind("nets", (None, 3, [], torch.nn.Linear(2, 2), [3]))},
        nets=lambda: [_trained("self_attention.PoolMLP", 8, 4)()],
        features=lambda: _r(4, 8, 1, 8),
        labels=lambda: _y(4, 2),
    ),
    lcall(
        "self_attention.digit_columns", columns=lambda: torch.tensor([[0, 16], [4, 28]]), length=8
    ),
    lcall(
        "self_attention.attention_to_other",
        {"net": MODEL},
        net=_trained("self_attention.PairNet", "non-local", 8, 3, 4),
        features=lambda: _r(2, 8, 1, 8),
        columns=lambda: torch.tensor([[0, 16], [4, 20]]),
    ),
    lcall(
        "self_attention.render_pair",
        {"first": NONNEG_INT, "second": NONNEG_INT, "split": SPLIT, "seed": SEED},
        first=0,
        second=1,
        distance=16,
        split="test",
        seed=0,
    ),
    lcall(
        "self_attention.StripModel",
        {"nets": MAPPING, "encoder": ENCODER},
        nets=lambda: {"non-local": lmod("self_attention.PairNet")},
        train_features=lambda: _r(3, 64, 1, 8),
    ),
    lforward(
        "self_attention.StripModel",
        lambda: lmod("self_attention.StripModel", {"n": lmod("self_attention.PairNet")}, _r(3, 64, 1, 8)),
        x=lambda: _u(2, 1, 16, 32),
    ),
    lcall(
        "self_attention.model_explorer",
        {"model": Kind("StripModel", (3, None, torch.nn.Linear(2, 2)))},
        model=lambda: lmod("self_attention.StripModel", {"n": lmod("self_attention.PairNet")}, _r(3, 64, 1, 8)),
        examples=lambda: _u(2, 1, 16, 32),
        labels=lambda: _y(2, 2),
        display=128,
    ),
    lcall(
        "self_attention.explorer",
        {
            "embeddings": MAPPING,
            "feature_names": Kind("names", (None, 3, ["a"])),
            "initial": Kind("initial", (3, {"nope": 1})),
        },
        image=lambda: _u(3, 8, 8),
        features=lambda: _r(3, 2, 2),
        embeddings=lambda: {"e": _r(2, 3)},
        feature_names=["a", "b", "c"],
        temperature=0.1,
        display_size=(16, 16),
        initial=None,
    ),
    # multi_head
    lcall("multi_head.pair_task", {"split": SPLIT, "seed": SEED}, n=2, split="test", seed=0),
    lcall(
        "multi_head.pair_features",
        {"encoder": ENCODER},
        images=lambda: _u(2, 1, 16, 32),
        encoder=None,
    ),
    lcall("multi_head.MultiHeadPooling", dim=8, num_heads=2, num_queries=2),
    lforward(
        "multi_head.MultiHeadPooling",
        _trained("multi_head.MultiHeadPooling", 8, 2),
        x=lambda: _r(2, 5, 8),
    ),
    lcall("multi_head.StaticPooling", dim=8, num_tokens=5, slots=2),
    lforward(
        "multi_head.StaticPooling",
        _trained("multi_head.StaticPooling", 8, 5),
        x=lambda: _r(2, 5, 8),
    ),
    lcall(
        "multi_head.PairReader",
        {"pooling": choice()},
        num_heads=2,
        channels=8,
        grid=(2, 2),
        num_queries=1,
        pooling="static",
    ),
    lforward(
        "multi_head.PairReader",
        _trained("multi_head.PairReader", 2, 8, (2, 2)),
        f=lambda: _r(2, 8, 2, 2),
    ),
    lcall(
        "multi_head.run_seeds",
        {"train": PAIR, "test": PAIR, "seeds": SEEDS, "pooling": choice()},
        num_heads=2,
        train=_data(6, 8, 2, 2, k=100),
        test=_data(4, 8, 2, 2, k=100),
        seeds=(0,),
        epochs=1,
        lr=0.01,
        batch_size=4,
        num_queries=1,
        pooling="attention",
        train_size=4,
    ),
    lcall(
        "multi_head.per_example_correct",
        {"models": Kind("models", (None, 3, [], ["model"])), "test": PAIR},
        models=lambda: [lmod("multi_head.PairReader", 2, 8, (2, 2))],
        test=_data(4, 8, 2, 2, k=100),
    ),
    lcall(
        "multi_head.pruned_accuracy",
        {"reader": MODEL, "test": PAIR, "keep": Kind("keep", (None, 3, [], [True], [1, 0]))},
        reader=_trained("multi_head.PairReader", 2, 8, (2, 2)),
        test=_data(4, 8, 2, 2, k=100),
        keep=[True, False],
    ),
    lcall(
        "multi_head.mass_on_digits",
        weights=lambda: torch.softmax(_r(2, 2, 8), -1),
        boxes=lambda: torch.tensor([[[0, 0, 16, 16], [0, 16, 16, 32]]] * 2),
        grid=(2, 4),
    ),
    lcall(
        "multi_head.PairModel",
        {"readers": MAPPING, "encoder": ENCODER},
        readers=lambda: {"2 heads": lmod("multi_head.PairReader", 2)},
        train_features=lambda: _r(3, 64, 4, 8),
    ),
    lforward(
        "multi_head.PairModel",
        lambda: lmod("multi_head.PairModel", {"2 heads": lmod("multi_head.PairReader", 2)}, _r(3, 64, 4, 8)),
        x=lambda: _u(2, 1, 32, 64),
    ),
    lcall(
        "multi_head.model_explorer",
        {"model": Kind("PairModel", (3, None, torch.nn.Linear(2, 2)))},
        model=lambda: lmod("multi_head.PairModel", {"2 heads": lmod("multi_head.PairReader", 2)}, _r(3, 64, 4, 8)),
        examples=lambda: _u(2, 1, 32, 64),
        labels=lambda: _y(2, 100),
        display=128,
    ),
    lcall("multi_head.DigitViTModel", {"vit": MODEL}, vit=lambda: lmod("multi_head.digit_vit", dim=8, depth=1, num_heads=2)),
    lforward(
        "multi_head.DigitViTModel",
        lambda: lmod("multi_head.DigitViTModel", lmod("multi_head.digit_vit", dim=8, depth=1, num_heads=2)),
        x=lambda: _u(2, 1, 8, 8),
    ),
    lcall(
        "multi_head.vit_explorer",
        {"model": Kind("DigitViTModel", (3, None, torch.nn.Linear(2, 2)))},
        model=lambda: lmod("multi_head.DigitViTModel", lmod("multi_head.digit_vit", dim=8, depth=1, num_heads=2)),
        examples=lambda: _u(2, 8, 8),
        labels=lambda: _y(2),
        display=96,
    ),
    lcall(
        "multi_head.digit_vit",
        {"stem_channels": Kind("stem", (-1, True, 2.5, "2", (0,), (8, -1)))},
        dim=8,
        depth=1,
        num_heads=2,
        mlp_ratio=2.0,
        stem_channels=(4,),
    ),
    # global_attention
    lcall(
        "global_attention.reading_task",
        {"split": SPLIT, "seed": SEED, "noise": NONNEG_FLOAT},
        n=2,
        split="test",
        seed=0,
        noise=0.1,
    ),
    lcall(
        "global_attention.sequences",
        {"strings": Kind("strings", (None, 3, torch.zeros(2, 4), torch.full((2, 4), 12)))},
        strings=lambda: torch.tensor([[1, 2, -1, -1], [3, 4, 5, 6]]),
    ),
    lcall(
        "global_attention.alignment",
        attention=lambda: torch.softmax(_r(2, 5, 40), -1).unflatten(-1, (4, 10)),
        lefts=lambda: torch.tensor([[0, 20, -1, -1], [0, 16, 40, 60]]),
        lengths=lambda: torch.tensor([2, 4]),
    ),
    lcall("global_attention.hard_one_hot", logits=lambda: _r(2, 5, 12)),
    lcall(
        "global_attention.Reader",
        {"kind": choice(), "grid": Kind("(H, W)", (None, 3, (0, 2), (1, 2, 3)))},
        kind="attention",
        channels=8,
        grid=(2, 3),
        dim=8,
        num_heads=2,
        hidden=16,
    ),
    lforward(
        "global_attention.Reader",
        _trained("global_attention.Reader", "attention", 8, (2, 3), 8, 2),
        features=lambda: _r(2, 8, 2, 3),
        tokens=lambda: torch.softmax(_r(2, 3, 12), -1),
    ),
    lcall(
        "global_attention.fit_reader",
        {"kind": choice(), "train": PAIR, "seed": SEED},
        kind="pooled",
        train=lambda: (_r(4, 8, 2, 3), torch.tensor([[1, 2, -1, -1]] * 4)),
        seed=0,
        epochs=1,
        lr=0.01,
        batch_size=2,
    ),
    lcall(
        "global_attention.exact_match",
        {"model": MODEL},
        model=_trained("global_attention.Reader", "attention", 8, (2, 3), 8, 2),
        features=lambda: _r(2, 8, 2, 3),
        strings=lambda: torch.tensor([[1, 2, -1, -1], [3, 4, 5, 6]]),
    ),
    lcall(
        "global_attention.digit_accuracy",
        {"model": MODEL},
        model=_trained("global_attention.Reader", "flattened", 8, (2, 3), 8, 2),
        features=lambda: _r(2, 8, 2, 3),
        strings=lambda: torch.tensor([[1, 2, -1, -1], [3, 4, 5, 6]]),
    ),
    lcall("global_attention.chance_exact", lengths=lambda: torch.tensor([2, 3, 4, 2])),
    lcall(
        "global_attention.train_readers",
        {
            "readers": Kind("readers", (None, 3, (), ("nonsense",))),
            "pool": PAIR,
            "test": PAIR,
            "seeds": SEEDS,
            "epochs": POS_INT,
            "batch_size": POS_INT,
        },
        readers=("pooled",),
        pool=lambda: (_r(4, 8, 2, 3), torch.tensor([[1, 2, -1, -1]] * 4)),
        test=lambda: (_r(2, 8, 2, 3), torch.tensor([[1, 2, -1, -1]] * 2)),
        seeds=(0,),
        n_train=3,
        epochs=1,
        batch_size=2,
    ),
    lcall(
        "global_attention.local_p_weights",
        {"grid": Kind("(H, W)", (None, 3, (0, 2), (1, 2, 3))), "window": Kind("window", (None, 0.0, 0.25, -1.0, "a"))},
        scores=lambda: _r(2, 3, 6),
        position=lambda: torch.rand(2, 3, 2) * torch.tensor([2.0, 3.0]),
        grid=(2, 3),
        window=1.0,
    ),
    lcall(
        "global_attention.LuongReader",
        {"kind": choice(), "grid": Kind("(H, W)", (None, 3, (0, 2), (1, 2, 3))), "window": Kind("window", (None, 0.0, 0.25, "a"))},
        kind="local_p",
        channels=8,
        grid=(2, 3),
        dim=8,
        num_heads=2,
        hidden=16,
        window=1.0,
    ),
    lforward(
        "global_attention.LuongReader",
        _trained("global_attention.LuongReader", "hard", 8, (2, 3), 8, 2),
        features=lambda: _r(2, 8, 2, 3),
        tokens=lambda: torch.softmax(_r(2, 3, 12), -1),
    ),
    lcall("global_attention.variants_fingerprint"),
    lcall("global_attention.load_variants"),
    lcall(
        "global_attention.train_global_models",
        {
            "reading": Kind("(pool, test)", (None, 3, (1,))),
            "finding": Kind("(pool, test)", (None, 3, (1,))),
            "seeds": Kind("seeds or None", ((), (-1,), (1.5,), "0", 3)),
            "readers": Kind("reader kinds", (3, "pooled", ["nope"])),
            "finders": Kind("finder kinds", (3, "dense", ["nope"])),
        },
        reading=lambda: _global_reading(),
        finding=lambda: _global_finding(),
        readers=["pooled"],
        finders=["dense"],
        seeds=(0,),
        epochs=1,
    ),
    lcall("global_attention.models_fingerprint"),
    lcall("global_attention.load_global_models"),
    lcall(
        "global_attention.PageReader",
        {"reader": MODEL, "encoder": ENCODER},
        reader=lambda: lmod("global_attention.Reader"),
        train_features=lambda: _r(3, 64, 4, 10),
        encoder=None,
    ),
    lforward(
        "global_attention.PageReader",
        lambda: lmod("global_attention.PageReader", lmod("global_attention.Reader"), _r(3, 64, 4, 10)),
        x=lambda: _u(2, 1, 32, 80),
    ),
    lcall(
        "global_attention.model_explorer",
        {"model": Kind("PageReader, PageFinder or PageDecoders", (3, None, torch.nn.Linear(2, 2)))},
        model=lambda: lmod("global_attention.PageReader", lmod("global_attention.Reader"), _r(3, 64, 4, 10)),
        images=lambda: _u(2, 1, 32, 80),
        caption="",
    ),
    lcall(
        "global_attention.PageFinder",
        {"finder": MODEL, "encoder": ENCODER},
        finder=lambda: lmod("global_attention.Finder"),
        train_features=lambda: _r(3, 64, 4, 10),
        encoder=None,
    ),
    lforward(
        "global_attention.PageFinder",
        lambda: lmod("global_attention.PageFinder", lmod("global_attention.Finder"), _r(3, 64, 4, 10)),
        x=lambda: _u(2, 1, 32, 80),
    ),
    lcall(
        "global_attention.PageDecoders",
        {"reader": MODEL, "finder": MODEL, "encoder": ENCODER},
        reader=lambda: lmod("global_attention.Reader"),
        finder=lambda: lmod("global_attention.Finder"),
        train_features=lambda: _r(3, 64, 4, 10),
        encoder=None,
    ),
    lforward(
        "global_attention.PageDecoders",
        lambda: lmod(
            "global_attention.PageDecoders",
            lmod("global_attention.Reader"),
            lmod("global_attention.Finder"),
            _r(3, 64, 4, 10),
        ),
        x=lambda: _u(2, 1, 32, 80),
    ),
    lcall(
        "global_attention.finding_task",
        {"split": SPLIT, "seed": SEED, "noise": NONNEG_FLOAT},
        n=2,
        split="test",
        seed=0,
        noise=0.1,
    ),
    lcall(
        "global_attention.box_iou",
        a=lambda: torch.tensor([[0.5, 0.5, 0.2, 0.4]]),
        b=lambda: torch.tensor([[0.6, 0.5, 0.2, 0.4]]),
    ),
    lcall(
        "global_attention.Finder",
        {"kind": choice(), "grid": Kind("(H, W)", (None, 3, (0, 2), (1, 2, 3)))},
        kind="queries",
        channels=8,
        grid=(2, 3),
        dim=8,
        num_heads=2,
        hidden=16,
    ),
    lforward(
        "global_attention.Finder",
        _trained("global_attention.Finder", "queries", 8, (2, 3), 8, 2),
        features=lambda: _r(2, 8, 2, 3),
    ),
    lcall(
        "global_attention.hungarian_match",
        logits=lambda: _r(2, 6, 11),
        boxes=lambda: torch.rand(2, 6, 4),
        classes=lambda: torch.tensor([[1, 2, -1, -1], [3, 4, 5, 6]]),
        targets=lambda: torch.rand(2, 4, 4),
        box_weight=5.0,
    ),
    lcall(
        "global_attention.fit_finder",
        {"kind": choice(), "train": Kind("(features, classes, boxes)", (None, 3, (1, 2, 3))),
         "seed": SEED},
        kind="flattened",
        train=lambda: (_r(4, 8, 2, 3), torch.tensor([[1, 2, -1, -1]] * 4), torch.rand(4, 4, 4)),
        seed=0,
        epochs=1,
        lr=0.01,
        batch_size=2,
    ),
    lcall(
        "global_attention.detections",
        {"model": MODEL},
        model=_trained("global_attention.Finder", "dense", 8, (2, 3), 8, 2),
        features=lambda: _r(2, 8, 2, 3),
        classes=lambda: torch.tensor([[1, 2, -1, -1], [3, 4, 5, 6]]),
        boxes=lambda: torch.rand(2, 4, 4),
    ),
    lcall(
        "global_attention.train_finders",
        {
            "finders": Kind("finders", (None, 3, (), ("nonsense",))),
            "pool": Kind("(features, classes, boxes)", (None, 3, (1, 2, 3))),
            "test": Kind("(features, classes, boxes)", (None, 3, (1, 2, 3))),
            "seeds": SEEDS,
            "epochs": POS_INT,
            "batch_size": POS_INT,
        },
        finders=("dense",),
        pool=lambda: (_r(4, 8, 2, 3), torch.tensor([[1, 2, -1, -1]] * 4), torch.rand(4, 4, 4)),
        test=lambda: (_r(2, 8, 2, 3), torch.tensor([[1, 2, -1, -1]] * 2), torch.rand(2, 4, 4)),
        seeds=(0,),
        n_train=3,
        epochs=1,
        batch_size=2,
    ),
    # local_attention
    lcall(
        "local_attention.pair_task",
        {"split": SPLIT, "seed": SEED, "noise": NONNEG_FLOAT, "encoder": ENCODER},
        n=4,
        split="test",
        seed=0,
        noise=0.1,
        encoder=None,
    ),
    lcall(
        "local_attention.ShiftHead", {"shift": choice()}, shift=1, channels=8, dim=8, num_heads=2
    ),
    lforward(
        "local_attention.ShiftHead",
        _trained("local_attention.ShiftHead", 1, 8, 8, 2),
        features=lambda: _r(2, 8, 2, 4),
    ),
    lcall(
        "local_attention.run_seeds",
        {"shift": choice(), "train": PAIR, "test": PAIR, "seeds": SEEDS},
        shift=1,
        train=_data(6, 8, 2, 4, k=2),
        test=_data(4, 8, 2, 4, k=2),
        seeds=(0,),
        epochs=1,
        lr=0.01,
        batch_size=4,
    ),
    lcall(
        "local_attention.reach",
        {"shifts": Kind("shifts", (None, 3, [-1], [1.5], ["a"]))},
        height=2,
        width=4,
        window_size=2,
        shifts=[0, 1],
    ),
    lcall(
        "local_attention.border_mass",
        {"head": MODEL},
        head=_trained("local_attention.ShiftHead", 1, 8, 8, 2),
        features=lambda: _r(2, 8, 2, 4),
    ),
    lcall(
        "local_attention.WindowPairModel",
        {"heads": MAPPING, "encoder": ENCODER},
        heads=lambda: {"shift": lmod("local_attention.ShiftHead")},
        train_features=lambda: _r(3, 64, 2, 4),
    ),
    lforward(
        "local_attention.WindowPairModel",
        lambda: lmod("local_attention.WindowPairModel", {"s": lmod("local_attention.ShiftHead")}, _r(3, 64, 2, 4)),
        x=lambda: _u(2, 1, 16, 32),
    ),
    lcall(
        "local_attention.model_explorer",
        {"model": Kind("WindowPairModel", (3, None, torch.nn.Linear(2, 2)))},
        model=lambda: lmod("local_attention.WindowPairModel", {"s": lmod("local_attention.ShiftHead")}, _r(3, 64, 2, 4)),
        examples=lambda: _u(2, 1, 16, 32),
        labels=lambda: _y(2, 2),
        display=128,
    ),
    lcall(
        "local_attention.window_explorer",
        {
            "feature_names": Kind("names", (None, 3, ["a"])),
            "window_sizes": INTS,
            "initial": Kind("initial", (3, {"nope": 1})),
        },
        image=lambda: _u(3, 8, 8),
        features=lambda: _r(3, 4, 4),
        feature_names=["a", "b", "c"],
        window_sizes=(2,),
        scale=5.0,
        display_size=(16, 16),
        initial=None,
    ),
    lcall(
        "local_attention.neighbour_task",
        {"split": SPLIT, "seed": SEED, "classes": Kind("classes", (0, 11, 2.5, None))},
        n=2,
        split="test",
        seed=0,
        classes=3,
    ),
    lcall("local_attention.DepthwiseMixer", {"kernel_size": Kind("odd", (2, 0, None))}, dim=4),
    lforward(
        "local_attention.DepthwiseMixer",
        _trained("local_attention.DepthwiseMixer", 4, 3),
        x=lambda: _r(2, 5, 5, 4),
    ),
    lcall(
        "local_attention.TokenNet",
        {"mixer": choice()},
        mixer="neighbourhood",
        channels=6,
        dim=8,
        num_heads=2,
    ),
    lforward(
        "local_attention.TokenNet",
        _trained("local_attention.TokenNet", "window", 6, 8, 2),
        features=lambda: _r(2, 6, 8, 8),
    ),
    lcall(
        "local_attention.token_correct",
        {"model": MODEL, "labels": Kind("labels", (None, 3, torch.zeros(2, 8, 8)))},
        model=_trained("local_attention.TokenNet", "convolution", 6, 8, 2),
        features=lambda: _r(2, 6, 8, 8),
        labels=lambda: torch.randint(2, (2, 8, 8), generator=gen(0)),
    ),
    lcall(
        "local_attention.run_token_seeds",
        {"mixer": choice(), "test": PAIR, "seeds": SEEDS},
        mixer="convolution",
        n_train=4,
        test=lambda: (_r(2, 64, 8, 8), torch.randint(2, (2, 8, 8), generator=gen(0))),
        seeds=(0,),
        epochs=1,
        batch_size=2,
    ),
    lcall(
        "local_attention.train_token_mixers",
        {
            "test": PAIR,
            "seeds": Kind("seeds or None", ((), (-1,), (1.5,), "0", 3)),
            "mixers": Kind("mixers", (["nope"], 3, "global")),
        },
        test=lambda: (_r(2, 64, 8, 8), torch.randint(2, (2, 8, 8), generator=gen(0))),
        mixers=["convolution"],
        seeds=(0,),
        epochs=1,
    ),
    lcall("local_attention.token_fingerprint"),
    lcall("local_attention.load_token_mixers"),
    # hierarchical
    lcall(
        "hierarchical.flagged_panels", {"split": SPLIT, "seed": SEED}, n=2, split="test", seed=0
    ),
    lcall("hierarchical.panel_boxes", flagged=lambda: torch.tensor([0, 3])),
    lcall(
        "hierarchical.RegionHead",
        {"pool": choice()},
        pool="hierarchical",
        channels=8,
        region_size=2,
        hidden_dim=4,
        num_classes=3,
    ),
    lforward(
        "hierarchical.RegionHead",
        _trained("hierarchical.RegionHead", "hierarchical", 8, 2, 4, 3),
        f=lambda: _r(2, 8, 4, 4),
    ),
    lcall(
        "hierarchical.run_seeds",
        {"pool": choice(), "train": PAIR, "test": PAIR, "seeds": SEEDS},
        pool="flat",
        train=_data(6, 8, 8, 8),
        test=_data(4, 8, 8, 8),
        seeds=(0,),
        epochs=1,
        lr=0.01,
        batch_size=4,
    ),
    lcall(
        "hierarchical.position_weights",
        {"head": MODEL},
        head=_trained("hierarchical.RegionHead", "hierarchical", 8, 2, 4, 3),
        f=lambda: _r(2, 8, 4, 4),
    ),
    lcall(
        "hierarchical.region_mass",
        weights=lambda: torch.softmax(_r(2, 16), -1).reshape(2, 4, 4),
        region=lambda: torch.tensor([0, 3]),
        region_size=2,
    ),
    lcall(
        "hierarchical.receptive_fields",
        {"model": MODEL, "threshold": Kind("threshold", (NAN, -1.0, True, "1"))},
        model=lambda: _module("hierarchical.SwinTransformer", 8, 2, 1, 3, 8, (2,), (2,), 2),
        threshold=0.0,
    ),
    lcall(
        "hierarchical.SwinHead",
        {"depths": Kind("depths", ((), (0,), (1.5,), "1", None)), "grid": Kind("grid", (0, 3, "8"))},
        dim=4,
        depths=(1, 1),
        window_size=2,
        channels=8,
        grid=4,
        num_classes=3,
    ),
    lforward(
        "hierarchical.SwinHead",
        lambda: lmod("hierarchical.SwinHead", 4, (1, 1), 2, 8, 4, 3),
        tokens=lambda: _r(2, 8, 4, 4),
    ),
    lcall(
        "hierarchical.panel_tokens",
        train_features=lambda: _r(3, 8, 4, 4),
        test_features=lambda: _r(2, 8, 4, 4),
    ),
    lcall(
        "hierarchical.train_swin_heads",
        {"train": PAIR, "test": PAIR, "seeds": SEEDS, "names": Kind("names", (["nope"], 3))},
        train=_data(6, 64, 8, 8),
        test=_data(4, 64, 8, 8),
        names=["one stage, 2 × 2 windows"],
        seeds=(0,),
        epochs=1,
        lr=0.01,
        batch_size=4,
        train_size=4,
    ),
    lcall(
        "hierarchical.train_region_heads",
        {
            "train": PAIR,
            "test": PAIR,
            "seeds": Kind("seeds or None", ((), (-1,), (1.5,), "0", 3)),
            "pools": Kind("pools", (["nope"], 3, "flat")),
        },
        train=_data(6, 8, 8, 8),
        test=_data(4, 8, 8, 8),
        pools=["flat"],
        seeds=(0,),
        epochs=1,
    ),
    lcall("hierarchical.region_fingerprint"),
    lcall("hierarchical.load_region_heads"),
    lcall("hierarchical.swin_fingerprint"),
    lcall("hierarchical.load_swin_heads"),
    lcall(
        "hierarchical.PanelModel",
        {"heads": MAPPING, "encoder": ENCODER},
        heads=lambda: {"hierarchical": lmod("hierarchical.RegionHead"), "flat": lmod("hierarchical.RegionHead", "flat")},
        train_features=lambda: _r(3, 64, 16, 16),
    ),
    lforward(
        "hierarchical.PanelModel",
        lambda: lmod("hierarchical.PanelModel", {"flat": lmod("hierarchical.RegionHead", "flat")}, _r(3, 64, 16, 16)),
        x=lambda: _u(2, 1, 64, 64),
    ),
    lcall(
        "hierarchical.model_explorer",
        {"model": Kind("PanelModel", (3, None, torch.nn.Linear(2, 2)))},
        model=lambda: lmod("hierarchical.PanelModel", {"flat": lmod("hierarchical.RegionHead", "flat")}, _r(3, 64, 16, 16)),
        examples=lambda: _u(2, 1, 64, 64),
        labels=lambda: _y(2),
        display=128,
    ),
    # temporal
    lcall(
        "temporal.make_query_clips",
        {"frames": Kind("frames in [3, 11]", (2, 12, 2.5, None)), "split": SPLIT, "seed": SEED},
        n=2,
        frames=4,
        split="test",
        seed=0,
    ),
    lcall("temporal.drawing_features", {"encoder": MODEL, "split": SPLIT}, encoder=lambda: lmod("digits.DigitCNN"), split="test"),
    lcall(
        "temporal.frame_features",
        {"encoder": MODEL},
        encoder=lambda: lmod("digits.DigitCNN"),
        clips=lambda: _u(2, 3, 1, 16, 16),
        batch_size=4,
    ),
    lcall("temporal.FrameProjection", in_dim=8, dim=4),
    lforward("temporal.FrameProjection", _trained("temporal.FrameProjection", 8, 4), feats=lambda: _r(2, 3, 8)),
    lcall("temporal.TemporalTransformer", {"positions": Kind("bool", ("no", 2, None))}, in_dim=8, dim=8, frames=4, positions=True, num_heads=2),
    lforward("temporal.TemporalTransformer", _trained("temporal.TemporalTransformer", 8, 8, 4), feats=lambda: _r(2, 4, 8)),
    lcall("temporal.TemporalConv", {"dilations": INTS}, in_dim=8, dim=4, frames=4, dilations=(1, 2)),
    lforward("temporal.TemporalConv", _trained("temporal.TemporalConv", 8, 4, 4), feats=lambda: _r(2, 4, 8)),
    lcall("temporal.ClipGRU", in_dim=8, dim=4, frames=4, hidden=5),
    lforward("temporal.ClipGRU", _trained("temporal.ClipGRU", 8, 4, 4, 5), feats=lambda: _r(2, 4, 8)),
    lcall("temporal.PooledClip", {"pool": choice()}, pool="attention", in_dim=8, dim=4, frames=4),
    lforward("temporal.PooledClip", _trained("temporal.PooledClip", "mean", 8, 4, 4), feats=lambda: _r(2, 4, 8)),
    lcall("temporal.make_model", {"kind": choice()}, kind="gru", in_dim=8, frames=4),
    lcall(
        "temporal.run_seeds",
        {"kind": choice(), "test": PAIR, "seeds": SEEDS},
        kind="conv",
        table=lambda: _r(1200, 8),
        test=lambda: (_r(4, 4, 8), _y(4, 3)),
        seeds=(0,),
        n_train=8,
        epochs=1,
        lr=0.01,
        batch_size=4,
    ),
    lcall(
        "temporal.per_example_correct",
        {"model": MODEL},
        model=_trained("temporal.TemporalConv", 8, 4, 4),
        feats=lambda: _r(3, 4, 8),
        labels=lambda: _y(3, 3),
    ),
    lcall("temporal.drawing_maps", {"encoder": MODEL, "split": SPLIT}, encoder=lambda: lmod("digits.DigitCNN"), split="test"),
    lcall("temporal.PixelTemporalTransformer", in_dim=8, dim=8, frames=4, num_heads=2),
    lforward("temporal.PixelTemporalTransformer", _trained("temporal.PixelTemporalTransformer", 8, 8, 4), maps=lambda: _r(2, 4, 8, 2, 2)),
    lcall(
        "temporal.train_pixel_models",
        {"test": PAIR, "seeds": Kind("seeds or None", ((), (-1,), (1.5,), "0", 3))},
        table=lambda: _r(1200, 8, 2, 2),
        test=lambda: (_r(4, 4, 8, 2, 2), _y(4, 3)),
        seeds=(0,),
        epochs=1,
    ),
    lcall("temporal.pixel_fingerprint"),
    lcall("temporal.load_pixel_models"),
    lcall(
        "temporal.ClipModel",
        {"attention": MODEL, "encoder": ENCODER},
        attention=_trained("temporal.TemporalTransformer", 64, 8, 3),
    ),
    lforward(
        "temporal.ClipModel",
        lambda: lmod("temporal.ClipModel", lmod("temporal.TemporalTransformer", 64, 8, 3)),
        x=lambda: _u(2, 3, 1, 16, 16),
    ),
    lcall(
        "temporal.model_explorer",
        {"model": Kind("ClipModel", (3, None, torch.nn.Linear(2, 2))),
         "labels": Kind("labels", (None, 3, torch.zeros(3).long()))},
        model=lambda: lmod("temporal.ClipModel", lmod("temporal.TemporalTransformer", 64, 8, 3)),
        clips=lambda: _u(2, 3, 1, 16, 16),
        labels=lambda: _y(2, 2),
    ),
    # memory
    lcall("memory.DigitEncoder", dim=4, hidden_dim=8, num_classes=3),
    lforward(
        "memory.DigitEncoder", _trained("memory.DigitEncoder", 4, 8, 3), x=lambda: _u(2, 8, 8)
    ),
    lcall(
        "memory.train_base_encoder",
        {"seed": SEED},
        x=lambda: _u(8, 8, 8),
        y=lambda: torch.arange(8) % 4,
        seed=0,
        base_classes=2,
        epochs=1,
        hidden_dim=8,
    ),
    lcall(
        "memory.few_shot_indices",
        {
            "classes": Kind("classes", (None, 3, (), (-1,), (1.5,), (99,))),
            "generator": Kind("generator", (None, 3)),
        },
        labels=lambda: torch.arange(8) % 4,
        classes=(0, 1),
        k=1,
        generator=lambda: torch.Generator().manual_seed(0),
    ),
    lcall(
        "memory.memory_classify",
        {"hops": NONNEG_INT},
        query=lambda: _r(2, 4),
        keys=lambda: _r(6, 4, seed=1),
        labels=lambda: torch.arange(6) % 3,
        num_classes=3,
        hops=1,
        temperature=0.1,
    ),
    lcall("memory.LearnedRead", {"proj_dim": optional(POS_INT)}, dim=4, proj_dim=2),
    lforward(
        "memory.LearnedRead",
        _trained("memory.LearnedRead", 4, 2),
        query=lambda: _r(2, 4),
        keys=lambda: _r(6, 4, seed=1),
        labels=lambda: torch.arange(6) % 3,
        num_classes=3,
    ),
    lcall(
        "memory.train_episodic_read",
        {"seed": SEED, "proj_dim": optional(POS_INT)},
        features=lambda: _r(12, 4),
        labels=lambda: torch.arange(12) % 3,
        seed=0,
        proj_dim=2,
        episodes=2,
        max_shots=2,
        queries=3,
        lr=0.01,
    ),
    lcall(
        "memory.linear_head_classify",
        {"seed": SEED, "hidden": NONNEG_INT},
        query=lambda: _r(2, 4),
        keys=lambda: _r(6, 4, seed=1),
        labels=lambda: torch.arange(6) % 3,
        num_classes=3,
        seed=0,
        steps=2,
        lr=0.01,
        hidden=3,
    ),
    lcall(
        "memory.neighbour_classify",
        query=lambda: _r(2, 4),
        keys=lambda: _r(6, 4, seed=1),
        labels=lambda: torch.arange(6) % 3,
        num_classes=3,
        prototypes=True,
    ),
    lcall(
        "memory.few_shot_experiment",
        {
            "train_split": PAIR,
            "test_split": PAIR,
            "seeds": SEEDS,
            "shots": INTS,
            "hops": INTS,
        },
        train_split=lambda: (_u(48, 8, 8), torch.arange(48) % 4),
        test_split=lambda: (_u(4, 8, 8, seed=1), torch.arange(4)),
        seeds=(0,),
        shots=(1,),
        hops=(1,),
        base_classes=2,
        epochs=1,
        episodes=1,
        proj_dim=2,
        hidden=2,
        max_shots=1,
    ),
    lcall(
        "memory.TokenClassifier",
        {"attention": choice()},
        attention="external",
        dim=8,
        memory_size=4,
        num_classes=3,
    ),
    lforward(
        "memory.TokenClassifier",
        _trained("memory.TokenClassifier", "external", 8, 4, 3),
        x=lambda: _u(2, 1, 4, 4),
    ),
    lcall(
        "memory.MemoryModel",
        {"encoder": MODEL, "hops": INTS},
        encoder=_trained("memory.DigitEncoder", 4, 8, 3),
        gallery=lambda: _u(6, 8, 8, seed=1),
        gallery_labels=lambda: torch.arange(6) % 3,
        hops=(1,),
        temperature=0.1,
    ),
    lforward(
        "memory.MemoryModel",
        lambda: lmod("memory.MemoryModel", lmod("memory.DigitEncoder", 4, 8, 3), _u(6, 8, 8, seed=1), torch.arange(6) % 3),
        x=lambda: _u(2, 1, 8, 8),
    ),
    lcall(
        "memory.model_explorer",
        {"model": Kind("MemoryModel", (3, None, torch.nn.Linear(2, 2)))},
        model=lambda: lmod("memory.MemoryModel", lmod("memory.DigitEncoder", 4, 8, 3), _u(6, 8, 8, seed=1), torch.arange(6) % 3),
        queries=lambda: _u(2, 8, 8),
        labels=lambda: _y(2, 3),
    ),
    # efficient_attention
    lcall(
        "efficient_attention.online_softmax_explorer",
        {
            "feature_names": Kind("names", (None, 3, ["a"])),
            "queries": Kind("queries", (None, 3, [], [(9, 9)], [(0,)])),
            "chunk_sizes": INTS,
            "scale": POS_FLOAT,
            "display_size": optional(SIZE2),
        },
        image=lambda: _u(3, 8, 8),
        features=lambda: _r(3, 4, 4),
        feature_names=["a", "b", "c"],
        queries=[(0, 0)],
        chunk_sizes=(8,),
        scale=5.0,
        display_size=(16, 16),
    ),
    lcall(
        "efficient_attention.measure_cost",
        {
            "sides": Kind("sides", (None, 3, {}, {"nope": [2]}, {"global": [0]})),
            "seed": SEED,
            "statistic": choice(),
        },
        sides={"global": [2]},
        dim=4,
        repeats=1,
        seed=0,
        statistic="median",
    ),
    lcall(
        "efficient_attention.loglog_slope",
        {
            "xs": Kind("numbers", (None, 3, [1.0], [0.0, 1.0], [NAN, 1.0], ["a", "b"])),
            "ys": Kind("numbers", (None, 3, [1.0], [-1.0, 1.0], [INF, 1.0])),
        },
        xs=[1.0, 2.0, 4.0],
        ys=[1.0, 4.0, 16.0],
    ),
    lcall(
        "efficient_attention.linear_weights",
        {"eps": NONNEG_FLOAT},
        q=lambda: _r(2, 3, 4),
        k=lambda: _r(2, 5, 4, seed=1),
        eps=1e-6,
    ),
    lcall(
        "efficient_attention.linear_vs_softmax",
        q=lambda: _r(2, 3, 4),
        k=lambda: _r(2, 5, 4, seed=1),
        v=lambda: _r(2, 5, 2, seed=2),
        temperature=1.0,
    ),
    lcall(
        "efficient_attention.weights_explorer",
        {
            "queries": Kind("queries", (None, 3, [], [(9, 9)], [(0,)])),
            "temperatures": Kind("temperatures", (None, 3, [], [0.0], [NAN])),
        },
        image=lambda: _u(3, 8, 8),
        features=lambda: _r(3, 4, 4),
        queries=[(0, 0)],
        temperatures=(0.5,),
        display_size=(16, 16),
    ),
    lcall(
        "efficient_attention.retrieval_sets",
        {"seed": SEED, "split": SPLIT},
        n_sets=2,
        length=3,
        split="test",
        seed=0,
    ),
    lcall(
        "efficient_attention.RetrievalModel",
        {"kind": choice()},
        kind="softmax",
        length=3,
        dim=2,
        hidden=4,
    ),
    lcall(
        "efficient_attention.run_retrieval",
        {"kind": choice(), "seeds": SEEDS},
        kind="linear",
        seeds=(0,),
        length=2,
        dim=2,
        hidden=4,
        epochs=1,
        n_train=2,
        n_test=2,
        lr=1e-3,
    ),
]

#: Public lab callables covered by another spec or with no arguments to break.
LAB_COVERED_ELSEWHERE = {
    "labs.common.EncodedHeads": "a base class; the six page models that subclass it have specs",
    "labs.digits.recipe_fingerprint": "takes no arguments",
    "labs.digits.train_digit_cnn": (
        "trains for 13 s (and its source is hashed into the weights' fingerprint); its one "
        "argument, progress, reaches fit, whose check_bool refuses a bad one after the digits load"
    ),
    "labs.foundations.Retrieval": "a NamedTuple of results that retrieval fills in",
    "labs.channel.SensorData": "a NamedTuple of one seed's data that seed_data fills in",
}


