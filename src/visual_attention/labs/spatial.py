"""The lab of the spatial chapter: its cluttered-digit task on a frozen encoder, the heads
compared on it, the multi-seed runner, and the trained heads in the reader's browser.

* :data:`TASK` and :func:`cluttered_task` — one ``16 × 16`` digit among six fragments of other
  digits on a noisy ``48 × 48`` canvas (``data.cluttered_digits``).
* :func:`encode` — the frozen :class:`~visual_attention.labs.digits.DigitCNN` run over the
  canvases once: ``(N, 1, 48, 48)`` → features ``(N, 64, 12, 12)``; :func:`standardize` them
  (both from :mod:`~visual_attention.labs.common`, shared with the other chapters' labs).
* :class:`PooledHead` — a pooling step and a linear layer on the frozen features:
  attention pooling (:class:`QuerySpatialAttention`), a :class:`SpatialGate` then global average
  pooling, or global average pooling alone; :func:`run_seeds` trains one per seed.
* :func:`lower_features` and :class:`StageNet` — the chapter's experiment: the encoder's first two
  stages stay frozen, its last stage (a ``3 × 3`` conv-BN-ReLU) is trained with the attention
  inside it — a :class:`SpatialGate` after the block, or attention pooling at its end — against
  the same stage with global average or global max pooling; :func:`run_stage_seeds` trains one per
  seed, each seed drawing its own training canvases.
* :class:`GlimpseNet`, :func:`run_glimpse_seeds` and :func:`policy_gradients` — *hard*
  attention on the same stage: one location sampled from the attention weights
  (:class:`~visual_attention.spatial.HardSpatialAttention`), its features classified, the policy
  trained with REINFORCE and a baseline (Mnih et al. 2014); and the spread of that gradient
  estimate.
* :func:`face_scenes`, :class:`SceneNet` and :func:`run_scene_seeds` — the natural-image
  experiment: real photographs of :func:`skimage.data.lfw_subset` (faces and non-faces) pasted
  on crops of real scenes of :mod:`skimage.data`; a small CNN trained from scratch, with attention,
  average or max pooling, says whether a face is there.
* :class:`CanvasModel` and :func:`model_explorer` — the trained models from the canvas up, run in
  the reader's browser on any digit they draw.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .._checks import (
    check_bool,
    check_choice,
    check_instance,
    check_int,
    check_labels,
    check_positive_int,
    check_seeds,
    check_tensor,
)
from ..blocks import conv_bn_act
from ..core import record_attention
from ..data import cluttered_digits
from ..spatial import HardSpatialAttention, QuerySpatialAttention, SpatialGate, reinforce_loss
from ..train import SeedRuns, fit, fit_seeds, seed_everything
from ..views.browser_model import export_model
from ..views.model_explorer import ModelExplorer, labelled, overlay, probs
from ..views.model_explorer import model_explorer as make_model_explorer
from ._checks import check_canvas, check_data, check_encoder
from .common import EncodedHeads, code_fingerprint, encode, load_runs, standardize
from .digits import like_module, load_digit_cnn

__all__ = [
    "TASK",
    "POOLS",
    "cluttered_task",
    "encode",
    "standardize",
    "PooledHead",
    "run_seeds",
    "STAGE_POOLS",
    "lower_features",
    "StageNet",
    "run_stage_seeds",
    "GlimpseNet",
    "run_glimpse_seeds",
    "STAGE_RECIPE",
    "STAGE_MODELS",
    "STAGE_WEIGHTS",
    "train_stage_models",
    "stage_fingerprint",
    "load_stage_models",
    "policy_gradients",
    "SCENES",
    "face_scenes",
    "SceneNet",
    "run_scene_seeds",
    "CanvasModel",
    "model_explorer",
]


#: The chapter's canvases: ``data.cluttered_digits`` options (every digit ``16 × 16``, the size the
#: encoder learned; six ``8 × 8`` fragments of other digits; pixel noise 0.1).
TASK = {"canvas": 48, "digit_sizes": (16, 16), "distractors": 6, "noise": 0.1, "fragment": 1 / 2}
#: The heads :class:`PooledHead` builds.
POOLS = ("attention", "gate", "avg")


def cluttered_task(
    n: int, split: str = "train", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` canvases of :data:`TASK`: images ``(n, 1, 48, 48)`` in ``[0, 1]``, labels ``(n,)``
    and the digit's boxes ``(n, 4)`` as ``(top, left, bottom, right)`` pixels (see
    :func:`visual_attention.data.cluttered_digits`)."""
    check_positive_int("n", n)
    return cluttered_digits(n, split=split, seed=seed, **TASK)


class PooledHead(nn.Module):
    """A pooling step and a linear classifier on a frozen feature map ``(B, C, h, w)``.

    * ``pool="attention"``: :class:`QuerySpatialAttention` with a learned query (the score of a
      position is ``⟨q, x_ij⟩ / √C``, a ``1 × 1`` convolution of the features; softmax over the
      ``h·w`` positions; weighted sum), recorded as ``pool``, weights ``(B, h, w)``;
    * ``pool="gate"``: CBAM's :class:`SpatialGate` (``7 × 7``) multiplied into the features, then
      global average pooling; recorded as ``gate``, map ``(B, 1, h, w)``;
    * ``pool="avg"``: global average pooling alone, the control (nothing recorded).

    The three differ only by the pooling: the attention head adds ``C`` parameters (the query),
    the gate ``2 · 7² + 2``.

    Args:
        pool: one of :data:`POOLS`.
        channels: ``C``.
        num_classes: outputs ``K``.

    Shapes: ``forward``: ``(B, C, h, w)`` → logits ``(B, K)``.
    """

    def __init__(self, pool: str = "attention", channels: int = 64, num_classes: int = 10):
        super().__init__()
        self.pool_mode = check_choice("pool", pool, POOLS)
        self.channels = check_positive_int("channels", channels)
        check_positive_int("num_classes", num_classes)
        if pool == "attention":
            self.pool = QuerySpatialAttention(channels)
        elif pool == "gate":
            self.gate = SpatialGate()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """``f`` ``(B, C, h, w)`` → logits ``(B, K)``."""
        check_tensor("f", f, "(B, C, h, w)", C=self.channels)
        if self.pool_mode == "attention":
            return self.fc(self.pool(f))  # Σ_ij α_ij f_ij: (B, C)
        if self.pool_mode == "gate":
            f = self.gate(f)  # f ⊙ M_s(f): (B, C, h, w)
        return self.fc(f.mean(dim=(2, 3)))  # global average pooling: (B, C)


def run_seeds(
    pool: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seeds: tuple[int, ...] = (0, 1, 2),
    epochs: int = 40,
    lr: float = 1e-2,
    batch_size: int = 128,
) -> SeedRuns:
    """Train one :class:`PooledHead` per seed on frozen features; evaluate on ``test``.

    Each seed seeds the head's initialisation (``seed_everything``) and the data order
    (``fit(seed=...)``); Adam, constant ``lr``.

    Args:
        pool: one of :data:`POOLS`.
        train, test: features ``(N, C, h, w)`` and labels ``(N,)``.
        seeds: one training per seed.
        epochs, lr, batch_size: of ``train.fit``.

    Returns:
        :class:`~visual_attention.train.SeedRuns`: the final test accuracies (one per seed), the
        trained heads (eval mode) and their histories (``histories[i].test_accuracy``: after every
        epoch).
    """
    check_choice("pool", pool, POOLS)
    check_data("train", train, "(N, C, h, w)")
    check_data("test", test, "(N, C, h, w)", C=train[0].shape[1])
    check_seeds("seeds", seeds)
    return fit_seeds(
        lambda: PooledHead(pool, channels=train[0].shape[1]),
        train,
        test,
        seeds,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
    )


#: The pooling of :class:`StageNet` and :class:`SceneNet`: attention pooling, CBAM's spatial gate
#: then global average pooling, global average pooling, global max pooling.
STAGE_POOLS = ("attention", "gate", "avg", "max")


@torch.no_grad()
def lower_features(
    images: torch.Tensor, encoder: nn.Module | None = None, batch_size: int = 500
) -> torch.Tensor:
    """The frozen digit encoder's first two stages (conv-BN-ReLU 32, max-pool, conv-BN-ReLU 64,
    max-pool): ``(N, 1, H, W)`` → ``(N, 64, H/4, W/4)``, the input of :class:`StageNet`.

    Args:
        images: canvases ``(N, 1, H, W)``, ``H`` and ``W`` multiples of 4.
        encoder: a :class:`~visual_attention.labs.digits.DigitCNN` (default: the committed one).
        batch_size: canvases per forward pass.
    """
    check_canvas("images", images, "(N, C, H, W)")
    check_positive_int("batch_size", batch_size)
    check_encoder("encoder", encoder)
    encoder = load_digit_cnn() if encoder is None else encoder.eval()
    lower = encoder.features[:4]
    return torch.cat([lower(like_module(x, encoder)) for x in images.split(batch_size)])


def _pool(module: nn.Module, f: torch.Tensor) -> torch.Tensor:
    """``f`` ``(B, C, h, w)`` → ``(B, C)`` with ``module``'s pooling (shared by the two nets)."""
    if module.pool_mode == "gate":
        f = module.gate(f)  # f ⊙ M_s(f): CBAM's gate, after the block
    if module.pool_mode == "attention":
        return module.pool(f)  # Σ_ij α_ij f_ij
    if module.pool_mode == "max":
        return f.amax(dim=(2, 3))  # global max pooling
    return f.mean(dim=(2, 3))  # global average pooling


def _make_pool(module: nn.Module, pool: str, width: int) -> None:
    module.pool_mode = check_choice("pool", pool, STAGE_POOLS)
    if pool == "attention":
        module.pool = QuerySpatialAttention(width)
    elif pool == "gate":
        module.gate = SpatialGate()


class StageNet(nn.Module):
    """The digit encoder's last stage, trained, with a spatial attention inside it, a pooling and
    a linear classifier, on the frozen lower stages' features ``(B, C, h, w)``.

    ``stage`` is a ``3 × 3`` conv-BN-ReLU ``C → width`` (the encoder's third layer, trained
    afresh);
    then, by ``pool`` (:data:`STAGE_POOLS`):

    * ``"attention"``: :class:`QuerySpatialAttention` with a learned query, recorded as ``pool``,
      weights ``(B, h, w)``;
    * ``"gate"``: CBAM's :class:`SpatialGate` (``7 × 7``) on the block's output, then global
      average pooling; recorded as ``gate``, map ``(B, 1, h, w)``;
    * ``"avg"`` / ``"max"``: global average / max pooling (the controls; nothing recorded).

    Args:
        pool: one of :data:`STAGE_POOLS`.
        channels: ``C`` of the input features.
        width: channels of the trained stage.
        num_classes: outputs ``K``.

    Shapes: ``forward``: ``(B, C, h, w)`` → logits ``(B, K)``.
    """

    def __init__(
        self, pool: str = "attention", channels: int = 64, width: int = 16, num_classes: int = 10
    ) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_positive_int("width", width)
        check_positive_int("num_classes", num_classes)
        self.stage = conv_bn_act(channels, width, bias=False)
        _make_pool(self, pool, width)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """``f`` ``(B, C, h, w)`` → logits ``(B, K)``."""
        check_tensor("f", f, "(B, C, h, w)", C=self.channels)
        return self.fc(_pool(self, self.stage(f)))  # stage, [gate,] pool, classify


def _subset(n: int, k: int | None, seed: int) -> torch.Tensor:
    """``k`` of ``n`` indices drawn with ``seed`` (all of them, in order, for ``k = None``)."""
    if k is None:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(10_000 + seed))[:k]


def run_stage_seeds(
    pool: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seeds: tuple[int, ...] = (0, 1, 2),
    n_train: int | None = None,
    epochs: int = 20,
    lr: float = 1e-2,
    batch_size: int = 128,
    width: int = 16,
    warmup_epochs: int | None = None,
) -> SeedRuns:
    """Train one :class:`StageNet` per seed; evaluate on ``test``.

    Each seed draws its own ``n_train`` training examples from ``train`` (all of them for
    ``None``), seeds the initialisation and the data order (``fit_seeds``); Adam, constant ``lr``.

    Args:
        pool: one of :data:`STAGE_POOLS`.
        train, test: lower features ``(N, C, h, w)`` (:func:`lower_features`, standardised) and
            labels ``(N,)``.
        seeds: one training per seed.
        n_train: training examples drawn per seed (at most ``N``).
        epochs, lr, batch_size, warmup_epochs: of ``train.fit`` (``warmup_epochs``: a cosine
            decay of the learning rate to 0 after that warm-up; ``None``: constant);
        width: of the stage.

    Returns:
        :class:`~visual_attention.train.SeedRuns`, one entry per seed.
    """
    check_choice("pool", pool, STAGE_POOLS)
    n, c = check_data("train", train, "(N, C, h, w)")[:2]
    check_data("test", test, "(N, C, h, w)", C=c)
    check_seeds("seeds", seeds)
    if n_train is not None and not 1 <= check_positive_int("n_train", n_train) <= n:
        raise ValueError(f"n_train must be at most the {n} training examples, got {n_train}")

    def draw(seed: int) -> tuple[torch.Tensor, torch.Tensor]:  # this seed's training draw
        keep = _subset(n, n_train, seed)
        return train[0][keep], train[1][keep]

    return fit_seeds(
        lambda: StageNet(pool, channels=c, width=width, num_classes=10),
        draw,
        test,
        seeds,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        warmup_epochs=warmup_epochs,
    )


class GlimpseNet(nn.Module):
    """:class:`StageNet` with *hard* attention: the trained stage, then one location sampled from
    the attention weights (:class:`~visual_attention.spatial.HardSpatialAttention`, a learned
    query, recorded as ``pool``, weights ``(B, h, w)``), and the linear classifier on that one
    feature vector, the glimpse. Same parameters as ``StageNet("attention")``.

    Training minimises :meth:`loss`: cross-entropy of the glimpse's logits (it trains the stage
    and the classifier) plus REINFORCE for the policy, reward 1 for a correct classification
    (:func:`~visual_attention.spatial.reinforce_loss`). In eval mode the glimpse is taken at the
    most likely location.

    Args:
        channels: ``C`` of the input features; width: channels of the stage;
        num_classes: outputs ``K``; baseline: REINFORCE with the leave-one-out baseline;
        glimpses: locations sampled per image (their features averaged).

    Shapes: ``forward``: ``(B, C, h, w)`` → logits ``(B, K)``.
    """

    def __init__(
        self,
        channels: int = 64,
        width: int = 16,
        num_classes: int = 10,
        baseline: bool = True,
        glimpses: int = 1,
    ) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_positive_int("width", width)
        check_positive_int("num_classes", num_classes)
        self.baseline = check_bool("baseline", baseline)
        self.stage = conv_bn_act(channels, width, bias=False)
        self.pool = HardSpatialAttention(width, glimpses=glimpses)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """``f`` ``(B, C, h, w)`` → logits ``(B, K)`` of the glimpse."""
        check_tensor("f", f, "(B, C, h, w)", C=self.channels)
        return self.fc(self.pool(self.stage(f)))  # stage, sample l ~ α, classify x_l

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy plus REINFORCE (reward: correct) for the last :meth:`forward`'s draw."""
        # [start-glimpse-loss]
        reward = (logits.argmax(-1) == labels).float()  # r = 1 if the glimpse was read right
        policy = reinforce_loss(self.pool.log_prob, reward, baseline=self.baseline)
        return nn.functional.cross_entropy(logits, labels) + policy
        # [end-glimpse-loss]


def run_glimpse_seeds(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    seeds: tuple[int, ...] = (0, 1, 2),
    n_train: int | None = None,
    epochs: int = 20,
    lr: float = 1e-2,
    batch_size: int = 128,
    width: int = 16,
    baseline: bool = True,
    warmup_epochs: int | None = None,
    glimpses: int = 1,
) -> SeedRuns:
    """Train one :class:`GlimpseNet` per seed with :meth:`GlimpseNet.loss`, as
    :func:`run_stage_seeds` trains a :class:`StageNet`: each seed draws its own ``n_train``
    training examples (the same draw as :func:`run_stage_seeds`), seeds the initialisation, the
    data order and the sampled locations.

    Args:
        train, test: lower features ``(N, C, h, w)`` and labels ``(N,)``.
        seeds, n_train, epochs, lr, batch_size, width, warmup_epochs: as
            :func:`run_stage_seeds`; baseline: of REINFORCE; glimpses: per image.

    Returns:
        :class:`~visual_attention.train.SeedRuns` (test accuracy of the greedy policy).
    """
    n, c = check_data("train", train, "(N, C, h, w)")[:2]
    check_data("test", test, "(N, C, h, w)", C=c)
    check_seeds("seeds", seeds)
    check_bool("baseline", baseline)
    if n_train is not None and not 1 <= check_positive_int("n_train", n_train) <= n:
        raise ValueError(f"n_train must be at most the {n} training examples, got {n_train}")
    runs = SeedRuns([], [], [])
    for seed in seeds:
        keep = _subset(n, n_train, seed)
        seed_everything(seed)
        model = GlimpseNet(c, width=width, baseline=baseline, glimpses=glimpses)
        history = fit(
            model,
            (train[0][keep], train[1][keep]),
            test,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
            loss_fn=model.loss,
            progress=False,
            warmup_epochs=warmup_epochs,
        )
        runs.accuracies.append(history.final_test_accuracy)
        runs.models.append(model.eval())
        runs.histories.append(history)
    return runs


#: How ``make weights`` trains the chapter's stage experiment (``scripts/train_spatial_stage.py``):
#: the canvases (``cluttered_task(train_canvases, "train", 0)``, ``(test_canvases, "test", 1)``),
#: the seeds, each seed's draw of ``n_train`` training canvases, and :func:`train.fit`'s settings.
STAGE_RECIPE = {
    "train_canvases": 2000,
    "test_canvases": 500,
    "seeds": (0, 1, 2),
    "n_train": 1000,
    "epochs": 30,
    "lr": 1e-2,
    "batch_size": 128,
    "width": 16,
}
#: The models of that experiment: name → the :class:`StageNet` pooling, or ``"hard"`` and the
#: glimpses of a :class:`GlimpseNet`.
STAGE_MODELS = {
    "attention": ("attention", None),
    "gate": ("gate", None),
    "avg": ("avg", None),
    "max": ("max", None),
    "hard, 1 glimpse": ("hard", 1),
    "hard, 4 glimpses": ("hard", 4),
}
#: The weights ``make weights`` writes.
STAGE_WEIGHTS = Path(__file__).parent / "weights" / "spatial_stage.pt"


def _stage_model(name: str, channels: int = 64) -> nn.Module:
    pool, glimpses = STAGE_MODELS[name]
    width = STAGE_RECIPE["width"]
    if pool == "hard":
        return GlimpseNet(channels, width=width, glimpses=glimpses)
    return StageNet(pool, channels=channels, width=width)


def train_stage_models(
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    names: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
) -> dict[str, SeedRuns]:
    """Train each :data:`STAGE_MODELS` entry (``names``, default all) once per seed with
    :data:`STAGE_RECIPE`: :func:`run_stage_seeds` for the soft models and the controls,
    :func:`run_glimpse_seeds` for hard attention.

    Args:
        train, test: lower features ``(N, C, h, w)`` (:func:`lower_features`, standardised) and
            labels ``(N,)``.
        names: which models; seeds, epochs: instead of the recipe's (a quick run).

    Returns:
        ``{name: SeedRuns}``.
    """
    c = check_data("train", train, "(N, C, h, w)")[1]
    check_data("test", test, "(N, C, h, w)", C=c)
    if names is not None and (isinstance(names, str) or not isinstance(names, Sequence)):
        raise ValueError(f"names must be a list of STAGE_MODELS names, got {names!r}")
    names = list(STAGE_MODELS) if names is None else list(names)
    for name in names:
        check_choice("names", name, tuple(STAGE_MODELS))
    r = dict(STAGE_RECIPE)
    options = {
        "seeds": tuple(r["seeds"] if seeds is None else check_seeds("seeds", seeds)),
        "n_train": min(r["n_train"], len(train[0])),
        "epochs": r["epochs"] if epochs is None else check_positive_int("epochs", epochs),
        "lr": r["lr"],
        "batch_size": r["batch_size"],
        "width": r["width"],
    }
    runs = {}
    for name in names:
        pool, glimpses = STAGE_MODELS[name]
        if pool == "hard":
            runs[name] = run_glimpse_seeds(train, test, glimpses=glimpses, **options)
        else:
            runs[name] = run_stage_seeds(pool, train, test, **options)
    return runs


def stage_fingerprint() -> str:
    """A hash of the code (docstrings aside) and the recipe that make :data:`STAGE_WEIGHTS`."""
    parts = [StageNet, GlimpseNet, _pool, _make_pool, _subset, _stage_model, run_stage_seeds]
    parts += [run_glimpse_seeds, train_stage_models, lower_features, cluttered_task, standardize]
    parts += [QuerySpatialAttention, SpatialGate, HardSpatialAttention, reinforce_loss]
    return code_fingerprint(parts, STAGE_RECIPE, STAGE_MODELS, TASK)


def load_stage_models(path: Path | str = STAGE_WEIGHTS) -> dict[str, SeedRuns]:
    """The models ``make weights`` trained (:func:`train_stage_models` with
    :data:`STAGE_RECIPE`), as :class:`~visual_attention.train.SeedRuns` per :data:`STAGE_MODELS`
    name: the stored test accuracies, the models (eval mode) and their stored histories
    (``test_accuracy`` after every epoch).

    Args:
        path: the weights file (default: the package's, :data:`STAGE_WEIGHTS`).
    """
    runs, _ = load_runs(path, _stage_model, "spatial chapter's stage models")
    return runs


def policy_gradients(
    model: GlimpseNet,
    f: torch.Tensor,
    labels: torch.Tensor,
    draws: int = 20,
    baseline: bool = True,
    seed: int = 0,
) -> torch.Tensor:
    """``draws`` independent REINFORCE estimates of the policy's gradient on one batch.

    Each draw samples one location per example from ``model``'s attention weights (BatchNorm in
    eval mode, nothing is updated), rewards a correct classification of the glimpse and returns
    the gradient of :func:`~visual_attention.spatial.reinforce_loss` with respect to the query
    ``q``. Their spread across draws is the variance of the estimator; soft attention's gradient
    is exact (no spread).

    Args:
        model: a trained :class:`GlimpseNet`.
        f: lower features ``(B, C, h, w)``; labels: ``(B,)``.
        draws: estimates; baseline: with the leave-one-out baseline or without; seed: the draws.

    Returns:
        ``(draws, D)``: one gradient of the query per draw.
    """
    check_instance("model", model, GlimpseNet)
    check_positive_int("draws", draws)
    check_data("f", (f, labels), "(B, C, h, w)", C=model.channels)
    check_bool("baseline", baseline)
    check_int("seed", seed, 0)
    f = like_module(f, model)  # the model's precision
    was_training, model.pool.sample = model.training, True
    model.eval()
    seed_everything(seed)
    grads = []
    try:
        for _ in range(draws):
            logits = model(f)
            reward = (logits.argmax(-1) == labels).float()
            loss = reinforce_loss(model.pool.log_prob, reward, baseline=baseline)
            grads.append(torch.autograd.grad(loss, model.pool.query)[0])
    finally:
        model.pool.sample = False
        model.train(was_training)
    return torch.stack(grads)


#: The real scenes of :mod:`skimage.data` and :mod:`sklearn.datasets` the face canvases are cut
#: from: training canvases from the first list, test canvases from the second (held-out scenes).
SCENES = {
    "train": ("coffee", "rocket", "brick", "grass", "immunohistochemistry", "china.jpg"),
    "test": ("chelsea", "gravel", "retina", "hubble_deep_field", "flower.jpg"),
}


@functools.lru_cache(maxsize=16)
def _scene(name: str) -> torch.Tensor:
    """A scene as a grey ``(H, W)`` tensor in ``[0, 1]``, halved in size (anti-aliased)."""
    import numpy as np
    from skimage import color
    from skimage import data as skdata

    if name.endswith(".jpg"):
        from sklearn.datasets import load_sample_image

        image = load_sample_image(name)
    else:
        image = getattr(skdata, name)()
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3:
        image = color.rgb2gray(image[..., :3] / 255.0)
    else:
        image = image / max(image.max(), 1e-6)
    t = torch.tensor(image, dtype=torch.float32)[None, None]
    return nn.functional.avg_pool2d(t, 2)[0, 0]


@functools.lru_cache(maxsize=8)
def _photos(split: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The faces and non-faces of ``lfw_subset`` for ``split`` (the first or last 50 of each),
    resized to ``size × size``: two ``(50, size, size)`` tensors."""
    from skimage import data as skdata

    photos = torch.tensor(skdata.lfw_subset(), dtype=torch.float32)[:, None]  # (200, 1, 25, 25)
    half = slice(0, 50) if split == "train" else slice(50, 100)
    faces, others = photos[:100][half], photos[100:][half]
    return tuple(
        nn.functional.interpolate(p, size=(size, size), mode="bilinear", antialias=True)[:, 0]
        for p in (faces, others)
    )


def face_scenes(
    n: int,
    split: str = "train",
    seed: int = 0,
    canvas: int = 32,
    patch: int = 16,
    distractors: int = 2,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Real photographs on real scenes: is one of the pasted photos a face?

    Each canvas is a random crop of a real scene (:data:`SCENES`, grey, mirrored at random) with
    ``1 + distractors`` photos of :func:`skimage.data.lfw_subset` pasted at random, non-overlapping
    positions, each mirrored at random: with probability ½ the first is a face (label 1), else
    all are non-faces (label 0, chance 0.5). Training and test canvases use disjoint photos (the
    first or last 50 faces and 50 non-faces) and disjoint scenes. What is real: the photos and
    the scenes; what is synthesised: the composition.

    Args:
        n: canvases; split: ``"train"`` or ``"test"``; seed: the draw.
        canvas: side in pixels; patch: side of a pasted photo (resized from 25).
        distractors: non-face photos besides the first (at most ``(canvas // patch)² - 1``).

    Returns:
        images ``(n, 1, canvas, canvas)`` in ``[0, 1]``, labels ``(n,)`` int64 and the first
        photo's boxes ``(n, 4)`` as ``(top, left, bottom, right)`` pixels.
    """
    check_positive_int("n", n)
    check_choice("split", split, ("train", "test"))
    check_positive_int("patch", patch)
    check_positive_int("canvas", canvas)
    check_int("distractors", distractors, minimum=0)
    cells = canvas // patch
    if cells < 1 or not 0 <= distractors < cells * cells:
        raise ValueError(
            f"distractors must be in [0, {max(cells * cells - 1, 0)}] for canvas {canvas} and "
            f"patch {patch}, got {distractors}"
        )
    g = seed_everything(seed)
    scenes = [_scene(name) for name in SCENES[split]]
    faces, others = _photos(split, patch)
    labels = torch.randint(0, 2, (n,), generator=g)
    slack, k = canvas - cells * patch, distractors + 1
    # every random choice at once, as lists: the loop below only copies pixels
    which = torch.randint(len(scenes), (n,), generator=g).tolist()
    corner = torch.rand(n, 2, generator=g).tolist()
    slots = torch.rand(n, cells * cells, generator=g).argsort(-1)[:, :k].tolist()
    offset = torch.randint(slack + 1, (n, 2), generator=g).tolist()  # one for all: no overlap
    photo = torch.randint(len(others), (n, k), generator=g).tolist()
    flips = (torch.rand(n, k + 1, generator=g) < 0.5).tolist()
    images = torch.empty(n, 1, canvas, canvas)
    boxes = torch.empty(n, 4, dtype=torch.long)
    for i in range(n):
        scene = scenes[which[i]]
        r = int(corner[i][0] * (scene.shape[0] - canvas + 1))
        c = int(corner[i][1] * (scene.shape[1] - canvas + 1))
        image = images[i, 0]
        image.copy_(scene[r : r + canvas, c : c + canvas])
        if flips[i][k]:
            image.copy_(image.flip(1))
        for j, slot in enumerate(slots[i]):
            source = faces if j == 0 and labels[i] == 1 else others
            p = source[photo[i][j] % len(source)]
            top = (slot // cells) * patch + offset[i][0]
            left = (slot % cells) * patch + offset[i][1]
            image[top : top + patch, left : left + patch] = p.flip(1) if flips[i][j] else p
            if j == 0:
                boxes[i] = torch.tensor([top, left, top + patch, left + patch])
    return images.clamp(0, 1), labels, boxes


class SceneNet(nn.Module):
    """A small CNN trained from scratch on the face canvases: conv-BN-ReLU 8, max-pool,
    conv-BN-ReLU ``width``, max-pool, conv-BN-ReLU ``width``, then a pooling (as
    :class:`StageNet`: ``"attention"``, ``"gate"``, ``"avg"`` or ``"max"``) and a linear layer.

    Shapes: ``forward``: ``(B, 1, H, W)`` → logits ``(B, 2)``; maps recorded as in
    :class:`StageNet`, ``(B, H/4, W/4)``.
    """

    def __init__(self, pool: str = "attention", width: int = 16, num_classes: int = 2) -> None:
        super().__init__()
        check_positive_int("width", width)
        check_positive_int("num_classes", num_classes)
        self.body = nn.Sequential(
            conv_bn_act(1, 8, bias=False),
            nn.MaxPool2d(2),
            conv_bn_act(8, width, bias=False),
            nn.MaxPool2d(2),
            conv_bn_act(width, width, bias=False),
        )
        _make_pool(self, pool, width)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, 1, H, W)`` → logits ``(B, K)``."""
        check_canvas("x", x, "(B, C, H, W)")
        return self.fc(_pool(self, self.body(x)))


def run_scene_seeds(
    pool: str,
    test: tuple[torch.Tensor, torch.Tensor],
    seeds: tuple[int, ...] = (0, 1, 2),
    n_train: int = 2000,
    epochs: int = 12,
    lr: float = 3e-3,
    batch_size: int = 128,
    width: int = 16,
) -> SeedRuns:
    """Train one :class:`SceneNet` per seed on its own draw of :func:`face_scenes` (``n_train``
    training canvases, drawn with the seed) and evaluate it on ``test``.

    Args:
        pool: one of :data:`STAGE_POOLS`.
        test: test canvases ``(N, 1, H, W)`` and labels ``(N,)``.
        seeds: one training per seed (initialisation, data order and the training draw).
        n_train, epochs, lr, batch_size, width: the training and the network.

    Returns:
        :class:`~visual_attention.train.SeedRuns`, one entry per seed.
    """
    check_choice("pool", pool, STAGE_POOLS)
    check_seeds("seeds", seeds)
    _, _, h, w = check_data("test", test, "(N, C, H, W)", C=1)
    check_positive_int("n_train", n_train)
    return fit_seeds(
        lambda: SceneNet(pool, width=width),
        lambda seed: face_scenes(n_train, "train", seed=100 + seed, canvas=h)[:2],
        test,
        seeds,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
    )


class CanvasModel(EncodedHeads):
    """The chapter's trained models from the canvas up, as the reader's browser runs them.

    The frozen encoder, the standardisation with the training statistics (as :func:`standardize`;
    :class:`~visual_attention.labs.common.EncodedHeads`) and each head; ``forward`` returns, per
    head in order, its logits ``(B, K)`` and its map: attention weights ``(B, h, w)`` or the gate
    ``(B, 1, h, w)``. The heads are all :class:`StageNet` (on the encoder's two frozen stages,
    :func:`lower_features`) or all :class:`PooledHead` (on its whole feature map, :func:`encode`).

    Args:
        heads: ``{name: StageNet or PooledHead}`` pooling with ``"attention"`` or ``"gate"``.
        train_features: the frozen features of the training canvases ``(N, C, h, w)`` that the
            heads were trained on, before standardisation.
        encoder: the frozen digit encoder (default:
            :func:`~visual_attention.labs.digits.load_digit_cnn`).
    """

    def __init__(
        self,
        heads: dict[str, StageNet | PooledHead],
        train_features: torch.Tensor,
        encoder: nn.Module | None = None,
    ) -> None:
        first = next(iter(heads.values()), None) if isinstance(heads, dict) else None
        kind = StageNet if isinstance(first, StageNet) else PooledHead
        super().__init__(heads, kind, train_features, encoder)
        self.staged = kind is StageNet
        if any(h.pool_mode not in ("attention", "gate") for h in self.heads):
            raise ValueError("heads must pool with attention or a gate: the others have no map")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.staged:
            f = self.standardized(self.encoder.features[:4](x))
        else:
            f = self.standardized(self.encoder.feature_map(x))
        out = []
        for head in self.heads:
            with record_attention(head) as maps:
                logits = head(f)
            out += [logits, maps["pool" if head.pool_mode == "attention" else "gate"]]
        return tuple(out)


def model_explorer(
    model: CanvasModel, examples: torch.Tensor, labels: torch.Tensor, display: int = 240
) -> ModelExplorer:
    """The reader draws a digit (or picks a test canvas) and the page runs ``model`` on it: each
    head's map over the canvas, its prediction and the share of its map inside the ink's box.

    Args:
        model: the :class:`CanvasModel` to export.
        examples: test canvases ``(N, 1, H, W)`` to start from.
        labels: their digits ``(N,)``.
        display: the drawing area's side in CSS pixels.
    """
    check_instance("model", model, CanvasModel)
    _, _, h, w = check_tensor("examples", examples, "(N, C, H, W)", C=1)
    outputs = [f"{kind} {name}" for name in model.names for kind in ("logits", "map")]
    exported = export_model(model, examples[:1], outputs)
    views = [probs(name, f"logits {name}") for name in model.names]
    views += [overlay(name, f"map {name}") for name in model.names]
    return make_model_explorer(
        exported,
        examples,
        labelled(check_labels("labels", labels, len(examples))),
        views,
        display=display,
        brush=2.2,
        caption=f"Draw on the {h} × {w} canvas (the box follows the ink), pick a test canvas, add "
        "noise or move the drawing: the trained heads run in this page.",
    )
