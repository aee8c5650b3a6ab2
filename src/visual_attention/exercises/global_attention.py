"""Exercises of the Global attention chapter: the decoder's self-attention mask (causal and
padding), Luong's local-p attention on a sequence (a Gaussian window around a predicted position;
the page builds it on a 2-D map), DETR's matching of object queries to objects by their cost,
and the REINFORCE gradient that trains hard attention's scores, written out."""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment

from ..core import masked_softmax
from . import Case, Exercise


def _decoder_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``(B, T, T)``: input ``i`` may attend to input ``j`` when ``j ≤ i`` (causal) and ``j`` is
    not padding (``j ≤ lengths[b]``: ``BOS`` and the ``lengths[b]`` digits)."""
    j = torch.arange(steps)
    causal = j[None, :] <= j[:, None]  # (T, T)
    valid = j[None, :] <= lengths[:, None]  # (B, T)
    return causal[None] & valid[:, None, :]


def _local_p(scores: torch.Tensor, position: torch.Tensor, window: int) -> torch.Tensor:
    """Luong et al. 2015, Eq. 10: ``a_t(s) = softmax(scores)_s · exp(-(s - p_t)² / (2σ²))``,
    ``σ = window / 2``, the softmax over the positions ``s`` with ``|s - p_t| ≤ window``."""
    s = torch.arange(scores.shape[-1], dtype=scores.dtype)
    distance = s - position[..., None]  # (*B, S)
    inside = distance.abs() <= window
    align = masked_softmax(scores, dim=-1, mask=inside)
    return align * torch.exp(-(distance**2) / (2 * (window / 2) ** 2))


def _match(cost: torch.Tensor) -> torch.Tensor:
    """The object each query is matched to, ``(Q,)`` with ``-1`` for "no object", from a cost
    ``(Q, n)`` with ``Q ≥ n``: the assignment of lowest total cost (Hungarian algorithm)."""
    rows, cols = linear_sum_assignment(cost.numpy())
    out = torch.full((cost.shape[0],), -1, dtype=torch.int64)
    out[torch.as_tensor(rows)] = torch.as_tensor(cols, dtype=torch.int64)
    return out


def _hard_gradient(
    scores: torch.Tensor, location: torch.Tensor, advantage: torch.Tensor
) -> torch.Tensor:
    """Hard attention's score-function gradient (Williams 1992; Xu et al. 2015, Eq. 12):
    ``(r − b) ∇_scores log π(s)`` with ``π = softmax(scores)``, which is ``(r − b)(e_s − π)``;
    scores ``(B, S)``, sampled positions ``(B,)``, advantages ``r − b`` ``(B,)`` → ``(B, S)``."""
    pi = scores.softmax(-1)
    chosen = torch.nn.functional.one_hot(location, scores.shape[-1]).to(scores.dtype)
    return advantage[:, None] * (chosen - pi)


def _hard_cases() -> list[Case]:
    g = torch.Generator().manual_seed(12)
    d = torch.float64
    return [
        Case(
            "B=3, S=10",
            (
                torch.randn(3, 10, generator=g, dtype=d),
                torch.tensor([0, 4, 9]),
                torch.tensor([0.5, -1.0, 2.0], dtype=d),
            ),
        ),
        Case(
            "no advantage: no gradient",
            (
                torch.randn(2, 6, generator=g, dtype=d),
                torch.tensor([1, 5]),
                torch.zeros(2, dtype=d),
            ),
        ),
        Case(
            "large scores ×100 (a saturated softmax)",
            (
                torch.randn(2, 8, generator=g, dtype=d) * 100,
                torch.tensor([3, 3]),
                torch.tensor([1.0, -0.5], dtype=d),
            ),
        ),
        Case(
            "one position: nothing to choose",
            (
                torch.randn(2, 1, generator=g, dtype=d),
                torch.tensor([0, 0]),
                torch.ones(2, dtype=d),
            ),
        ),
    ]


def _mask_cases() -> list[Case]:
    return [
        Case("B=3 strings of 2, 4 and 3 digits, T=5", (torch.tensor([2, 4, 3]), 5)),
        Case("one string of no digit", (torch.tensor([0]), 4)),
        Case("a string that fills every step", (torch.tensor([6]), 6)),
        Case("T=1: only BOS", (torch.tensor([0, 0]), 1)),
    ]


def _local_cases() -> list[Case]:
    g = torch.Generator().manual_seed(28)
    return [
        Case(
            "B=2, S=10, p inside", (torch.randn(2, 10, generator=g), torch.tensor([3.0, 6.5]), 2)
        ),
        Case("p at the edge", (torch.randn(1, 8, generator=g), torch.tensor([0.0]), 3)),
        Case(
            "large scores ×100",
            (torch.randn(2, 6, generator=g) * 100, torch.tensor([2.0, 4.0]), 1),
        ),
        Case(
            "a window wider than the input",
            (torch.randn(1, 5, generator=g), torch.tensor([2.0]), 9),
        ),
    ]


def _match_cases() -> list[Case]:
    g = torch.Generator().manual_seed(20)
    return [
        Case("4 queries, 2 objects", (torch.rand(4, 2, generator=g, dtype=torch.float64),)),
        Case("as many queries as objects", (torch.rand(3, 3, generator=g, dtype=torch.float64),)),
        Case("one query, one object", (torch.tensor([[0.5]], dtype=torch.float64),)),
        Case(
            "greedy fails: the cheapest pair is not in the best assignment",
            (torch.tensor([[0.1, 0.2], [0.3, 5.0], [4.0, 6.0]], dtype=torch.float64),),
        ),
    ]


EXERCISES = {
    "decoder_mask": Exercise(
        "decoder_mask",
        "The decoder's self-attention mask (B, T, T): causal, and no attention to the padding "
        "after a string's last digit.",
        reference=_decoder_mask,
        make_cases=_mask_cases,
    ),
    "local_p": Exercise(
        "local_p",
        "Luong's local-p attention: the softmax over a window of positions around p_t, times a "
        "Gaussian of σ = D/2 centred on p_t.",
        reference=_local_p,
        make_cases=_local_cases,
    ),
    "match": Exercise(
        "match",
        "DETR's matching: the object each query is assigned to (-1: no object) at the lowest "
        "total cost.",
        reference=_match,
        make_cases=_match_cases,
    ),
    "hard_gradient": Exercise(
        "hard_gradient",
        "Hard attention's REINFORCE gradient: (r − b) times the gradient of log π(s) with "
        "respect to the scores, π = softmax(scores), written out (no autograd).",
        reference=_hard_gradient,
        make_cases=_hard_cases,
    ),
}
