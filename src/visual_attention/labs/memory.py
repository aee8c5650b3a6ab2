"""The lab of the memory chapter: its tasks, networks and widgets.

The few-shot experiment: :func:`train_base_encoder` trains a :class:`DigitEncoder` on the digits
0–4 only; :func:`few_shot_indices` picks ``k`` training examples of each new digit 5–9; the new
digits are then classified by a memory read over those examples whose sharpness is trained
episodically on the base digits (:class:`LearnedRead`, :func:`train_episodic_read`), by the same
read with a fixed temperature (:func:`memory_classify`), or by the controls: a linear or MLP head
trained on the same examples (:func:`linear_head_classify`), the nearest example or the nearest
class mean (:func:`neighbour_classify`); :func:`few_shot_experiment` runs them all over seeds,
numbers of examples and hops.

In the reader's browser: :class:`MemoryModel` reads a memory of gallery digits with one, two or
three hops, from the drawn query's pixels up; :func:`model_explorer` is its widget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from .. import train as _train
from .._checks import (
    check_bool,
    check_choice,
    check_instance,
    check_int,
    check_int_sequence,
    check_labels,
    check_positive_int,
    check_positive_number,
    check_seeds,
    check_tensor,
)
from ..blocks import MultiHeadAttention
from ..core import record_attention
from ..memory import ExternalAttention, KeyValueMemory, memory_read
from ..views.browser_model import export_model
from ..views.model_explorer import ModelExplorer, labelled, probs, slots
from ..views.model_explorer import model_explorer as make_model_explorer
from ._checks import check_data
from .common import like_module

__all__ = [
    "DigitEncoder",
    "train_base_encoder",
    "few_shot_indices",
    "memory_classify",
    "LearnedRead",
    "train_episodic_read",
    "linear_head_classify",
    "neighbour_classify",
    "few_shot_experiment",
    "TokenClassifier",
    "MemoryModel",
    "model_explorer",
]


class DigitEncoder(nn.Module):
    """A tiny MLP for the 8 × 8 digits: ``(B, 8, 8)`` → logits ``(B, num_classes)``.

    :meth:`embed` gives the embedding ``(B, dim)``, scaled to unit length, so that dot products
    between embeddings are cosine similarities: a memory read then prefers the slots that look
    like the query. :meth:`features` gives the hidden layer ``(B, hidden_dim)``, also unit length:
    the features of the few-shot experiment (they carry more about digits the head never saw
    than the ``dim``-wide embedding, which is shaped to separate the trained classes only).
    """

    def __init__(self, dim: int = 16, hidden_dim: int = 64, num_classes: int = 10) -> None:
        super().__init__()
        for name, value in (
            ("dim", dim),
            ("hidden_dim", hidden_dim),
            ("num_classes", num_classes),
        ):
            check_positive_int(name, value)
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(64, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, dim)
        )
        self.head = nn.Linear(dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, "(B, H, W)", H=8, W=8)
        return nn.functional.normalize(self.body(x), dim=-1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, "(B, H, W)", H=8, W=8)
        return nn.functional.normalize(self.body[:3](x), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def train_base_encoder(
    x: torch.Tensor,
    y: torch.Tensor,
    seed: int,
    base_classes: int = 5,
    epochs: int = 20,
    hidden_dim: int = 128,
) -> DigitEncoder:
    """Train a :class:`DigitEncoder` on the digits ``0 … base_classes − 1`` of ``(x, y)`` only.

    Args:
        x: digits ``(N, 8, 8)``; y: labels ``(N,)`` (the other digits are left out).
        seed: seeds the initialisation and the shuffling.

    Returns:
        the encoder in eval mode, its head answering ``base_classes`` classes.
    """
    check_tensor("x", x, "(N, H, W)", H=8, W=8)
    check_labels("y", y, len(x))
    check_int("seed", seed, 0)
    check_positive_int("base_classes", base_classes)
    check_positive_int("epochs", epochs)
    check_positive_int("hidden_dim", hidden_dim)
    x, keep = x.float(), y < base_classes  # trained in float32 whatever the digits' dtype
    _train.seed_everything(seed)
    encoder = DigitEncoder(16, hidden_dim=hidden_dim, num_classes=base_classes)
    _train.fit(encoder, (x[keep], y[keep]), epochs=epochs, lr=3e-3, seed=seed, progress=False)
    return encoder.eval()


def few_shot_indices(
    labels: torch.Tensor, classes: tuple[int, ...], k: int, generator: torch.Generator
) -> torch.Tensor:
    """``k`` random indices of each class in ``classes``: ``(len(classes) · k,)``, class-major."""
    check_positive_int("k", k)
    check_labels("labels", labels)
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence) or not classes:
        raise ValueError(f"classes must be a non-empty sequence of classes, got {classes!r:.60}")
    for i, c in enumerate(classes):
        check_int(f"classes[{i}]", c, 0)
    check_instance("generator", generator, torch.Generator)
    picks = []
    for c in classes:
        idx = torch.nonzero(labels == c)[:, 0]
        if len(idx) < k:
            raise ValueError(f"classes: class {c} has {len(idx)} examples, fewer than k = {k}")
        picks.append(idx[torch.randperm(len(idx), generator=generator)[:k]])
    return torch.cat(picks)


@torch.no_grad()
def memory_classify(
    query: torch.Tensor,
    keys: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    hops: int = 0,
    temperature: float = 0.1,
) -> torch.Tensor:
    """Classify by reading a memory of labelled examples; nothing is trained.

    ``hops = 0``: one read with the one-hot labels as values, ``p = softmax(u·m_i / T)``, and the
    answer is the class of largest read ``Σ_i p_i onehot(y_i)``. ``hops = K ≥ 1``: first ``K``
    hops of :class:`~visual_attention.memory.KeyValueMemory` with the keys as values
    (``u_{k+1} = u_k + o_k``, staying in feature space), then that read of the labels with
    ``u_K``.

    Args:
        query: ``(B, D)``; keys: ``(S, D)``; labels: ``(S,)`` in ``0 … num_classes − 1``.

    Returns:
        predicted classes ``(B,)``.
    """
    check_tensor("query", query, "(B, D)")
    check_tensor("keys", keys, "(S, D)", D=query.shape[-1])
    _check_labels(labels, len(keys), num_classes), check_int("hops", hops, 0)
    check_positive_number("temperature", temperature)
    if hops:
        check_positive_int("hops", hops)
        query = KeyValueMemory(keys.shape[-1], hops=hops, temperature=temperature)(
            query, keys, keys
        )
    onehot = nn.functional.one_hot(labels, num_classes).to(keys.dtype)  # (S, classes)
    read, _ = memory_read(query, keys, onehot, temperature=temperature)  # (B, classes)
    return read.argmax(-1)


class LearnedRead(nn.Module):
    """A memory read of labelled examples whose sharpness (and optionally a projection) is
    learned: the attention read of Matching Networks (Vinyals et al. 2016, Eq. 1-2) on frozen
    features.

    Queries and keys are ``W f`` scaled to unit length (``W`` the identity when ``proj_dim`` is
    ``None``), slot weights ``p_i = softmax_i(β ⟨q, k_i⟩)`` with a learned ``β = exp(log_beta)``
    (an inverse temperature, initialised to 10), and the answer is the read of the one-hot labels
    ``Σ_i p_i onehot(y_i)``: a probability for each class.

    Args:
        dim: feature size ``D``.
        proj_dim: ``None`` (only ``β`` is learned: 1 parameter) or the size of a learned linear
            projection ``W`` (``proj_dim × D``, no bias).

    ``forward(query (B, D), keys (S, D), labels (S,), num_classes)`` → class probabilities
    ``(B, num_classes)``.
    """

    def __init__(self, dim: int, proj_dim: int | None = None) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        if proj_dim is not None:
            check_positive_int("proj_dim", proj_dim)
        self.dim = dim
        self.proj = nn.Identity() if proj_dim is None else nn.Linear(dim, proj_dim, bias=False)
        self.log_beta = nn.Parameter(torch.tensor(math.log(10.0)))

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, labels: torch.Tensor, num_classes: int
    ) -> torch.Tensor:
        check_tensor("query", query, "(B, D)", D=self.dim)
        check_tensor("keys", keys, "(S, D)", D=self.dim)
        _check_labels(labels, len(keys), num_classes)
        query, keys = query.to(self.log_beta.dtype), keys.to(self.log_beta.dtype)
        # [start-learned-read]
        q = nn.functional.normalize(self.proj(query), dim=-1)  # (B, d): unit length
        k = nn.functional.normalize(self.proj(keys), dim=-1)  # (S, d): one key per example
        onehot = nn.functional.one_hot(labels, num_classes).to(k.dtype)  # (S, C): the values
        read, _ = memory_read(q * self.log_beta.exp(), k, onehot)  # softmax_i(β qᵀk_i), Σ p_i c_i
        return read  # (B, C): a probability per class
        # [end-learned-read]


def train_episodic_read(
    features: torch.Tensor,
    labels: torch.Tensor,
    seed: int,
    proj_dim: int | None = None,
    episodes: int = 200,
    max_shots: int = 10,
    queries: int = 100,
    lr: float = 1e-2,
) -> LearnedRead:
    """Train a :class:`LearnedRead` episodically, as it will be used (Vinyals et al. 2016).

    Each episode draws ``k ∈ 1 … max_shots`` examples of every class of ``labels`` as the
    memory and up to ``queries`` other examples as queries; the loss is the cross-entropy of the
    read ``−log Σ_i p_i [y_i = y]``; Adam.

    Args:
        features: ``(N, D)`` (e.g. frozen features of the base classes); labels: ``(N,)`` in
            ``0 … C − 1``, each class with more than ``max_shots`` examples.
        seed: seeds the initialisation and the episodes.

    Returns:
        the trained read, in eval mode.
    """
    check_tensor("features", features, "(N, D)")
    check_labels("labels", labels, len(features))
    check_int("seed", seed, 0)
    if proj_dim is not None:
        check_positive_int("proj_dim", proj_dim)
    for name, value in (("episodes", episodes), ("max_shots", max_shots), ("queries", queries)):
        check_positive_int(name, value)
    check_positive_number("lr", lr)
    num_classes = int(labels.max()) + 1
    counts = torch.bincount(labels, minlength=num_classes)
    if int(counts.min()) <= max_shots:
        raise ValueError(
            f"labels: every class needs more than max_shots = {max_shots} examples, got "
            f"counts {counts.tolist()}"
        )
    features = features.float()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    read = LearnedRead(features.shape[-1], proj_dim)
    opt = torch.optim.Adam(read.parameters(), lr=lr)
    for _ in range(episodes):
        k = int(torch.randint(1, max_shots + 1, (), generator=gen))
        order = torch.randperm(len(features), generator=gen)
        support = torch.cat([order[labels[order] == c][:k] for c in range(num_classes)])
        rest = torch.ones(len(features), dtype=torch.bool)
        rest[support] = False
        query = order[rest[order]][:queries]
        p = read(features[query], features[support], labels[support], num_classes)
        loss = nn.functional.nll_loss(p.clamp_min(1e-12).log(), labels[query])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return read.eval()


def _fit_head(
    head: nn.Module,
    query: torch.Tensor,
    keys: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    lr: float,
) -> torch.Tensor:
    """Train ``head`` on ``(keys, labels)`` full batch with Adam; its classes for ``query``."""
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(head(keys), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return head(query).argmax(-1)


def linear_head_classify(
    query: torch.Tensor,
    keys: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    seed: int = 0,
    steps: int = 300,
    lr: float = 1e-2,
    hidden: int = 0,
) -> torch.Tensor:
    """A control: a head trained on the same labelled examples, full batch, Adam.

    Args:
        query: ``(B, D)``; keys: the examples' features ``(S, D)``; labels ``(S,)``.
        steps: full-batch steps (300 reach a plateau: the training loss is flat by then).
        hidden: 0 for a linear head ``D → C``; otherwise an MLP ``D → hidden → C`` (ReLU).

    Returns:
        predicted classes ``(B,)``.
    """
    check_tensor("query", query, "(B, D)")
    check_tensor("keys", keys, "(S, D)", D=query.shape[-1])
    _check_labels(labels, len(keys), num_classes), check_int("seed", seed, 0)
    check_positive_int("steps", steps)
    check_int("hidden", hidden, 0)
    check_positive_number("lr", lr)
    query, keys, d = query.float(), keys.float(), keys.shape[-1]  # the head trains in float32
    torch.manual_seed(seed)
    if hidden:
        head = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
    else:
        head = nn.Linear(d, num_classes)
    return _fit_head(head, query, keys, labels, steps, lr)


@torch.no_grad()
def neighbour_classify(
    query: torch.Tensor,
    keys: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    prototypes: bool = False,
) -> torch.Tensor:
    """Controls without attention: the class of the most cosine-similar example (1-nearest
    neighbour) or, with ``prototypes``, of the most similar class mean (Snell et al. 2017's
    prototypes, with a hard arg-max instead of their softmax).

    Args:
        query: ``(B, D)``; keys: ``(S, D)``; labels: ``(S,)`` in ``0 … num_classes − 1``, every
            class present when ``prototypes``.

    Returns:
        predicted classes ``(B,)``.
    """
    check_tensor("query", query, "(B, D)")
    check_tensor("keys", keys, "(S, D)", D=query.shape[-1])
    _check_labels(labels, len(keys), num_classes), check_bool("prototypes", prototypes)
    q, k = nn.functional.normalize(query, dim=-1), nn.functional.normalize(keys, dim=-1)
    if not prototypes:
        return labels[(q @ k.T).argmax(-1)]
    counts = torch.bincount(labels, minlength=num_classes)
    if bool((counts == 0).any()):
        raise ValueError(f"labels: every class needs an example, got counts {counts.tolist()}")
    onehot = nn.functional.one_hot(labels, num_classes).to(k.dtype)  # (S, C)
    means = nn.functional.normalize(onehot.T @ k, dim=-1)  # (C, D): the class directions
    return (q @ means.T).argmax(-1)


def few_shot_experiment(
    train_split: tuple[torch.Tensor, torch.Tensor],
    test_split: tuple[torch.Tensor, torch.Tensor],
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
    shots: tuple[int, ...] = (1, 2, 3, 5, 10),
    hops: tuple[int, ...] = (1, 2, 3),
    base_classes: int = 5,
    epochs: int = 20,
    episodes: int = 200,
    proj_dim: int = 32,
    hidden: int = 32,
    max_shots: int = 10,
) -> dict[str, dict]:
    """Few-shot classification of digits the encoder never saw, per seed.

    Per seed, the training digits are split in two halves (the seed draws them): an encoder
    trained on the digits ``< base_classes`` of the first half (:func:`train_base_encoder`),
    frozen; reads trained episodically on the base digits of the second half
    (:func:`train_episodic_read`). For each ``k`` in ``shots``, ``k`` training examples of each
    new digit (the seed picks them) are written into a memory (keys: :meth:`DigitEncoder.features`,
    values: their labels) and every test digit of a new class is classified by

    * ``"memory"``: the read with a learned sharpness β (:class:`LearnedRead`);
    * ``"memory, projection"``: the read with a learned ``proj_dim``-wide projection and β;
    * ``"memory, T = 0.1"``: the read with a fixed temperature (:func:`memory_classify`);
    * ``"hops K"``: that read after ``K`` hops;
    * ``"linear head"``, ``"MLP head"``: heads trained on the same examples
      (:func:`linear_head_classify`, ``hidden`` units for the MLP);
    * ``"1-NN"``, ``"prototype"``: :func:`neighbour_classify`.

    Runs on one CPU thread (restored afterwards): these networks are so small that more threads
    only add overhead.

    Args:
        train_split, test_split: digits ``(N, 8, 8)`` and labels ``(N,)``.
        episodes, max_shots: of :func:`train_episodic_read`.

    Returns:
        ``{"accuracy": {name: {k: [accuracy per seed]}}, "correct": {name: {k: (seeds · Q,)
        correctness of every test digit, seed after seed}}, "params": {name: parameters}}``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _few_shot(
            train_split,
            test_split,
            seeds,
            shots,
            hops,
            base_classes,
            epochs,
            episodes,
            proj_dim,
            hidden,
            max_shots,
        )
    finally:
        torch.set_num_threads(threads)


def _check_labels(labels: object, n: int, num_classes: object) -> None:
    """``labels`` ``(S,)`` integers in ``[0, num_classes)``."""
    check_positive_int("num_classes", num_classes)
    check_labels("labels", labels, n)
    if labels.numel() and not bool(((labels >= 0) & (labels < num_classes)).all()):
        raise ValueError(
            f"labels must be in [0, num_classes = {num_classes}), got {labels.tolist()}"
        )


def _few_shot(
    train_split,
    test_split,
    seeds,
    shots,
    hops,
    base_classes,
    epochs,
    episodes,
    proj_dim,
    hidden,
    max_shots,
):
    """The body of :func:`few_shot_experiment`."""
    check_data("train_split", train_split, "(N, H, W)", H=8, W=8)
    check_data("test_split", test_split, "(N, H, W)", H=8, W=8)
    check_seeds("seeds", seeds)
    check_int_sequence("shots", shots)
    check_int_sequence("hops", hops)
    check_positive_int("base_classes", base_classes)
    for name, value in (
        ("epochs", epochs),
        ("episodes", episodes),
        ("proj_dim", proj_dim),
        ("hidden", hidden),
        ("max_shots", max_shots),
    ):
        check_positive_int(name, value)
    (x, y), (xt, yt) = train_split, test_split
    num_classes = int(y.max()) + 1
    new = tuple(range(base_classes, num_classes))
    if not new:
        raise ValueError(f"base_classes = {base_classes} leaves no new class among {num_classes}")
    is_new = yt >= base_classes
    yq = yt[is_new] - base_classes  # (Q,) new classes counted from 0
    names = ["memory", "memory, projection", "memory, T = 0.1"] + [f"hops {h}" for h in hops]
    names += ["linear head", "MLP head", "1-NN", "prototype"]
    acc: dict[str, dict] = {n: {k: [] for k in shots} for n in names}
    correct: dict[str, dict] = {n: {k: [] for k in shots} for n in names}
    params: dict[str, int] = {}
    for seed in seeds:
        half = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)) < len(x) // 2
        encoder = train_base_encoder(x[half], y[half], seed, base_classes, epochs)
        with torch.no_grad():
            feats, query = encoder.features(x.float()), encoder.features(xt[is_new].float())
        episodic = ~half & (y < base_classes)  # base digits the encoder did not train on
        reads = {
            name: train_episodic_read(feats[episodic], y[episodic], seed, dim, episodes, max_shots)
            for name, dim in (("memory", None), ("memory, projection", proj_dim))
        }
        d, c = feats.shape[-1], len(new)
        params.update({n: _train.count_parameters(r) for n, r in reads.items()})
        params.update({"memory, T = 0.1": 0, "linear head": d * c + c, "1-NN": 0, "prototype": 0})
        params.update({"MLP head": d * hidden + hidden + hidden * c + c})
        params.update({f"hops {h}": 0 for h in hops})
        gen = torch.Generator().manual_seed(seed)
        for k in shots:
            idx = few_shot_indices(y, new, k, gen)
            keys, labels = feats[idx], y[idx] - base_classes
            with torch.no_grad():
                preds = {n: r(query, keys, labels, c).argmax(-1) for n, r in reads.items()}
            preds["memory, T = 0.1"] = memory_classify(query, keys, labels, c)
            for h in hops:
                preds[f"hops {h}"] = memory_classify(query, keys, labels, c, hops=h)
            preds["linear head"] = linear_head_classify(query, keys, labels, c, seed)
            preds["MLP head"] = linear_head_classify(query, keys, labels, c, seed, hidden=hidden)
            preds["1-NN"] = neighbour_classify(query, keys, labels, c)
            preds["prototype"] = neighbour_classify(query, keys, labels, c, prototypes=True)
            for name, pred in preds.items():
                right = (pred == yq).float()
                acc[name][k].append(right.mean().item())
                correct[name][k].append(right)
    correct = {n: {k: torch.cat(v) for k, v in per.items()} for n, per in correct.items()}
    return {"accuracy": acc, "correct": correct, "params": params}


class TokenClassifier(nn.Module):
    """Pixels as tokens, one attention block with a residual, mean over tokens, linear classifier.

    A 3 × 3 convolution turns each pixel into a ``dim``-dimensional token; the block is
    ``tokens + attn(LN(tokens))``.

    ``attention`` is ``"external"`` (:class:`~visual_attention.memory.ExternalAttention`) or
    ``"self"`` (one-head :class:`~visual_attention.blocks.MultiHeadAttention`).
    ``forward``: ``(B, 1, H, W)`` → ``(B, num_classes)``.
    """

    def __init__(
        self,
        attention: str = "external",
        dim: int = 32,
        memory_size: int = 64,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        check_choice("attention", attention, ("external", "self"))
        check_positive_int("num_classes", num_classes)
        check_positive_int("dim", dim)
        check_positive_int("memory_size", memory_size)
        self.stem = nn.Sequential(nn.Conv2d(1, dim, 3, padding=1), nn.ReLU())
        self.norm = nn.LayerNorm(dim)
        if attention == "external":
            self.attn = ExternalAttention(dim, memory_size)
        else:
            self.attn = MultiHeadAttention(dim, num_heads=1)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, "(B, C, H, W)", C=1)
        tokens = rearrange(self.stem(x), "b d h w -> b (h w) d")  # (B, N = H·W, D)
        tokens = tokens + self.attn(self.norm(tokens))
        return self.head(tokens.mean(dim=1))


class MemoryModel(nn.Module):
    """The chapter's memory read from the query's pixels up, as the reader's browser runs it.

    The memory holds the gallery's embeddings (:meth:`DigitEncoder.embed`) as keys and values,
    sorted by label; the query is the drawn digit's embedding, read through
    :class:`~visual_attention.memory.KeyValueMemory` with each number of ``hops``.
    ``forward``: queries ``(B, 1, 8, 8)`` → per number of hops, the encoder's head on ``u_K``
    ``(B, K)`` and the slot weights of the last hop ``(B, S)``.

    Args:
        encoder: a trained :class:`DigitEncoder`.
        gallery: ``(S, 8, 8)`` digits written into the memory; gallery_labels: ``(S,)``.
        hops: numbers of hops to read with.
        temperature: of every read.
    """

    def __init__(
        self,
        encoder: DigitEncoder,
        gallery: torch.Tensor,
        gallery_labels: torch.Tensor,
        hops: tuple[int, ...] = (1, 2, 3),
        temperature: float = 0.1,
    ) -> None:
        super().__init__()
        check_instance("encoder", encoder, DigitEncoder)
        s = check_tensor("gallery", gallery, "(S, H, W)", H=8, W=8)[0]
        check_labels("gallery_labels", gallery_labels, s)
        check_int_sequence("hops", hops)
        check_positive_number("temperature", temperature)
        order = torch.argsort(gallery_labels, stable=True)
        self.encoder = encoder.eval()
        self.register_buffer("gallery", like_module(gallery[order], encoder))
        self.register_buffer("labels", gallery_labels[order])
        with torch.no_grad():
            self.register_buffer("keys", encoder.embed(self.gallery))  # (S, D)
        dim = self.keys.shape[-1]
        self.hops = list(hops)
        self.reads = nn.ModuleList(KeyValueMemory(dim, k, temperature=temperature) for k in hops)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        check_tensor("x", x, "(B, C, H, W)", C=1, H=8, W=8)
        u0 = self.encoder.embed(x[:, 0].to(self.keys.dtype))  # (B, D): the query
        out = []
        for read in self.reads:
            with record_attention(read) as maps:
                u = read(u0, self.keys, self.keys)  # u_K
            out += [self.encoder.head(u), maps[""][:, -1]]  # logits, last hop's weights (B, S)
        return tuple(out)


def model_explorer(
    model: MemoryModel, queries: torch.Tensor, labels: torch.Tensor
) -> ModelExplorer:
    """The reader draws a query digit (or picks a test digit) and the page runs ``model``: for
    every number of hops the slot weights over the whole memory, the heaviest slots and the
    class probabilities of the read.

    Args:
        model: the :class:`MemoryModel` to export.
        queries: ``(Q, 8, 8)`` test digits to start from; labels: ``(Q,)``.
    """
    check_instance("model", model, MemoryModel)
    q = check_tensor("queries", queries, "(Q, H, W)", H=8, W=8)[0]
    check_labels("labels", labels, q)
    outputs = [f"{kind} {k}" for k in model.hops for kind in ("logits", "weights")]
    exported = export_model(model, queries[:1, None].float(), outputs)
    slot_labels = [str(int(y)) for y in model.labels]
    hops = {k: f"{k} hop{'s' if k > 1 else ''}" for k in model.hops}
    views = [probs(f"read of {hops[k]}", f"logits {k}") for k in model.hops]
    views += [
        slots(
            f"slot weights after {hops[k]} (slots sorted by label 0 → 9)",
            f"weights {k}",
            slot_labels,
        )
        for k in model.hops
    ]
    return make_model_explorer(
        exported,
        queries.float(),
        labelled(labels),
        views,
        slot_images=model.gallery,
        display=160,
        brush=0.6,
        caption="Draw a digit on the 8 × 8 grid (or pick a test digit, add noise, move it): the "
        "memory is read in this page, with one, two or three hops.",
    )
