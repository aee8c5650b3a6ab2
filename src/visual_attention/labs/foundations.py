"""The lab of the Foundations chapter: look a value up by its key, the task attention was made for.

**Retrieval.** An example holds ``M`` items, each a pair of handwritten digits, a **key** and
a **value**, the keys of ``M`` different classes; and a **query**, another drawing of one key's
class. The answer is the class of the value whose key matches the query. Nothing says which item
matches: the network must compare the query with every key, and hand over the matching item's
value.

Scaled dot-product attention does it in one step: learned projections of the query and of each key,
scores ``e_i = (W_q q)ᵀ (W_k k_i) / √d``, weights ``α = softmax(e)``, context ``c = Σ_i α_i v_i``,
then a linear classifier. The controls see the same vectors (:class:`RetrievalNet`): each item's
key, value and the query through a two-layer MLP of the same width, max-pooled over the items
(the strongest: it can compare each key with the query, and must fold the comparison and the
value into one vector that survives the maximum); an MLP on all the vectors concatenated; a
learned static weighting of the values; and their mean.

Each digit is read by the frozen digit encoder (:mod:`visual_attention.labs.digits`): a vector of
64 features, standardised with the training split's statistics. Only the heads are trained.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
from torch import nn

from .._checks import (
    check_choice,
    check_instance,
    check_int,
    check_labels,
    check_positive_int,
    check_seeds,
    check_tensor,
)
from ..core import AttentionModule, record_attention, scaled_dot_product_attention
from ..train import SeedRuns, fit_seeds
from ..views.browser_model import export_model
from ..views.model_explorer import ModelExplorer, bars, probs
from ..views.model_explorer import model_explorer as make_model_explorer
from ._checks import check_encoder
from .digits import DIGIT_SIZE, digits_at, load_digit_cnn

__all__ = [
    "KINDS",
    "Retrieval",
    "digit_vectors",
    "retrieval",
    "draws",
    "RetrievalNet",
    "run_seeds",
    "RetrievalModel",
    "model_explorer",
]

#: The heads: the mechanism first, then the controls, strongest expected first.
KINDS = ("attention", "max", "concat", "static", "mean")
DIM = 64  # the frozen encoder's features


class Retrieval(NamedTuple):
    """A batch of the task with ``M`` items: ``images`` ``(N, 2M + 1, 1, 16, 16)`` (key 1, value 1,
    …, key M, value M, query), ``tokens`` ``(N, 2M + 1, 64)`` (their standardised encoder vectors,
    in the same order), ``labels`` ``(N,)`` (the class of the matching item's value) and
    ``targets`` ``(N,)`` (the matching item, ``0 … M − 1``)."""

    images: torch.Tensor
    tokens: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor


def digit_vectors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen encoder's vector of every digit of ``split`` (``"train"``: the first 1,200
    scikit-learn digits, ``"test"``: the other 597), standardised per feature with the training
    split's mean and standard deviation: ``(D, 64)``, and the ``(D,)`` classes."""
    check_choice("split", split, ("train", "test"))
    vectors, classes = _vectors(split)
    return vectors.clone(), classes.clone()


@functools.cache
@torch.no_grad()
def _vectors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    encoder = load_digit_cnn()
    train = encoder.feature_map(digits_at(DIGIT_SIZE, "train")[0]).mean(dim=(2, 3))
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    x, y = digits_at(DIGIT_SIZE, split)
    vectors = train if split == "train" else encoder.feature_map(x).mean(dim=(2, 3))
    return (vectors - mean) / std, y


@torch.no_grad()
def retrieval(n: int, split: str = "train", seed: int = 0, items: int = 4) -> Retrieval:
    """``n`` examples of ``items`` (key, value) pairs and a query from the digits of ``split``.

    The keys of an example have ``items`` different classes; each value's class is drawn uniformly
    (values may share a class); the query is another random drawing of one key's class, chosen
    uniformly. The same arguments give the same examples."""
    check_positive_int("n", n)
    check_choice("split", split, ("train", "test"))
    check_int("seed", seed, 0)
    check_int("items", items, 1)
    if items > 10:
        raise ValueError(f"items must be at most 10 (the keys' classes differ), got {items}")
    x, y = digits_at(DIGIT_SIZE, split)
    vectors = digit_vectors(split)[0]
    g = torch.Generator().manual_seed(seed)
    key_class = torch.rand(n, 10, generator=g).argsort(dim=1)[:, :items]  # distinct per example
    value_class = torch.randint(10, (n, items), generator=g)
    targets = torch.randint(items, (n,), generator=g)
    rows = torch.arange(n)
    classes = torch.stack([key_class, value_class], dim=2).flatten(1)  # k1, v1, …, kM, vM
    classes = torch.cat([classes, key_class[rows, targets, None]], dim=1)  # …, query
    by_class = [torch.nonzero(y == c).flatten() for c in range(10)]
    pick = torch.randint(1 << 30, classes.shape, generator=g)
    index = torch.empty_like(classes)
    for c in range(10):  # a random drawing of the right class for every slot
        slots = classes == c
        index[slots] = by_class[c][pick[slots] % len(by_class[c])]
    return Retrieval(x[index], vectors[index], value_class[rows, targets], targets)


def draws(seed: int, n_train: int = 2000, n_test: int = 2000) -> tuple[Retrieval, Retrieval]:
    """The data of one seed: ``n_train`` training examples of the training digits (seed ``seed``)
    and ``n_test`` test examples of the held-out digits (seed ``1000 + seed``)."""
    check_int("seed", seed, 0)
    check_positive_int("n_train", n_train)
    check_positive_int("n_test", n_test)
    return retrieval(n_train, "train", seed), retrieval(n_test, "test", 1000 + seed)


class RetrievalNet(AttentionModule):
    """A head on the tokens of :class:`Retrieval`: ``(B, 2M + 1, 64)`` → logits ``(B, 10)``.

    ``kind``:

    * ``"attention"``: scaled dot-product attention of the projected query over the projected keys
      (``d = width``), the context ``Σ α_i v_i`` of the values, a linear classifier; records the
      weights ``α`` ``(B, M)``;
    * ``"max"``: an MLP of two ReLU layers of ``width`` on each item's ``[k_i; v_i; q]``,
      max-pooled over the items, a linear classifier (Deep Sets, with the query in every item);
    * ``"concat"``: an MLP (one hidden layer of ``width``) on all ``2M + 1`` vectors concatenated;
    * ``"static"``: a learned weighting of the values, the same for every example, concatenated
      with the query, a linear classifier;
    * ``"mean"``: the mean of the values, a linear classifier.
    """

    def __init__(self, kind: str = "attention", items: int = 4, width: int = 32) -> None:
        super().__init__()
        self.kind = check_choice("kind", kind, KINDS)
        self.items = check_positive_int("items", items)
        self.width = check_positive_int("width", width)
        if kind == "attention":
            self.query_proj = nn.Linear(DIM, width)  # W_q
            self.key_proj = nn.Linear(DIM, width)  # W_k
            self.head = nn.Linear(DIM, 10)
        elif kind == "max":
            self.item_mlp = nn.Sequential(
                nn.Linear(3 * DIM, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU()
            )
            self.head = nn.Linear(width, 10)
        elif kind == "concat":
            self.mlp = nn.Sequential(
                nn.Linear((2 * items + 1) * DIM, width), nn.ReLU(), nn.Linear(width, 10)
            )
        elif kind == "static":
            self.logits = nn.Parameter(torch.zeros(items))
            self.head = nn.Linear(2 * DIM, 10)
        else:
            self.head = nn.Linear(DIM, 10)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        m = self.items
        check_tensor("tokens", tokens, "(B, L, C)", L=2 * m + 1, C=DIM)
        keys, values, query = tokens[:, 0 : 2 * m : 2], tokens[:, 1 : 2 * m : 2], tokens[:, -1]
        if self.kind == "attention":
            return self.head(self.attend(keys, values, query))
        if self.kind == "max":
            both = torch.cat([keys, values, query[:, None].expand_as(keys)], dim=-1)
            return self.head(self.item_mlp(both).amax(dim=1))  # max over the items
        if self.kind == "concat":
            return self.mlp(tokens.flatten(1))
        if self.kind == "static":
            alpha = torch.softmax(self.logits, dim=0)  # the same for every example
            return self.head(torch.cat([alpha @ values, query], dim=-1))
        return self.head(values.mean(dim=1))

    def attend(
        self, keys: torch.Tensor, values: torch.Tensor, query: torch.Tensor
    ) -> torch.Tensor:
        """The context ``(B, 64)`` of keys and values ``(B, M, 64)`` for the query ``(B, 64)``."""
        # [start-retrieval-attention]
        q = self.query_proj(query)[:, None]  # W_q q          (B, 1, d)
        k = self.key_proj(keys)  # W_k k_i                    (B, M, d)
        context, alpha = scaled_dot_product_attention(q, k, values)  # softmax(q kᵀ/√d) v
        # [end-retrieval-attention]
        self.remember(alpha[:, 0])  # α (B, M)
        return context[:, 0]


def run_seeds(
    kind: str, seeds=(0, 1, 2, 3, 4), n_train: int = 2000, n_test: int = 2000, epochs: int = 20
) -> SeedRuns:
    """Train one :class:`RetrievalNet` of ``kind`` per seed, each on its own :func:`draws` of the
    data (Adam 1e-2, batches of 128, one epoch of warm-up then a cosine decay); return
    :class:`~visual_attention.train.SeedRuns`: test accuracies, networks (eval mode), histories."""
    check_choice("kind", kind, KINDS)
    check_seeds("seeds", seeds)
    check_positive_int("epochs", epochs)
    runs = SeedRuns([], [], [])
    for seed in seeds:
        train, test = draws(seed, n_train, n_test)
        run = fit_seeds(
            lambda: RetrievalNet(kind),
            (train.tokens, train.labels),
            (test.tokens, test.labels),
            (seed,),
            epochs=epochs,
            lr=1e-2,
            batch_size=128,
            warmup_epochs=1,
        )
        for mine, theirs in zip(runs, run):
            mine.extend(theirs)
    return runs


class RetrievalModel(nn.Module):
    """The chapter's trained heads from the pixels up, as the reader's browser runs them.

    The frozen encoder on each of the ``2M + 1`` digits, the standardisation of
    :func:`digit_vectors`, then the attention head and the max-pooling control. ``forward``:
    ``(B, 2M + 1, 1, 16, 16)`` → the attention head's logits ``(B, 10)``, its weights ``α``
    ``(B, M)`` and the control's logits ``(B, 10)``.
    """

    def __init__(self, attention: RetrievalNet, control: RetrievalNet, encoder=None) -> None:
        super().__init__()
        check_instance("attention", attention, RetrievalNet)
        check_instance("control", control, RetrievalNet)
        check_encoder("encoder", encoder)
        if attention.kind != "attention" or control.kind == "attention":
            raise ValueError(
                "attention must be a RetrievalNet of kind 'attention' and control of another kind"
            )
        self.encoder = load_digit_cnn() if encoder is None else encoder.eval()
        train = self.encoder.feature_map(digits_at(DIGIT_SIZE, "train")[0]).mean(dim=(2, 3))
        self.register_buffer("mean", train.mean(0).detach())
        self.register_buffer("std", train.std(0).clamp_min(1e-6).detach())
        self.attention, self.control = attention.eval(), control.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, s = check_tensor("x", x, "(B, S, C, H, W)", S=2 * self.attention.items + 1, C=1)[:2]
        feats = self.encoder.feature_map(x.flatten(0, 1)).mean(dim=(2, 3))  # (B·S, 64)
        tokens = ((feats - self.mean) / self.std).reshape(b, s, DIM)
        with record_attention(self.attention) as maps:
            logits = self.attention(tokens)
        return logits, maps[""], self.control(tokens)


def model_explorer(model: RetrievalModel, data: Retrieval, count: int = 8) -> ModelExplorer:
    """The reader edits the keys, values and query of an example — draws, clears, adds noise — or
    picks one of the first ``count`` test examples; the page runs ``model``: the weight of every
    item and both heads' probabilities."""
    check_instance("model", model, RetrievalModel)
    check_instance("data", data, Retrieval)
    check_positive_int("count", count)
    images = data.images[:count]
    check_labels("labels", data.labels[:count], len(images))
    m = model.attention.items
    exported = export_model(model, images[:1], ("logits attention", "item weights", "logits max"))
    names = [
        f"#{i} (query matches key {int(t) + 1}; answer {int(y)})"
        for i, (y, t) in enumerate(zip(data.labels[:count], data.targets[:count]))
    ]
    canvases = [f"{r} {i + 1}" for i in range(m) for r in ("key", "value")] + ["query"]
    views = [
        probs("attention", "logits attention"),
        probs("max pooling (control)", "logits max"),
        bars("item weights α_i", "item weights", [f"item {i + 1}" for i in range(m)]),
    ]
    return make_model_explorer(
        exported,
        images[:, :, 0],
        names,
        views,
        canvas_names=canvases,
        display=160,
        brush=1.0,
        caption="Pick a key, a value or the query under the drawing area and draw on it: "
        "redraw the query as another key's digit and the weights move to that item; change a "
        "value and the answer follows. The trained heads run in this page.",
    )
