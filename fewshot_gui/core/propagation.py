"""Label propagation (Zhou et al. 2004) of a person's corrections over the kNN graph of the
images near them: measured by `benchmarks/review_effort.py`, not shipped (it turned right
labels wrong more often than it fixed any; `corrections.reach_boundary` is what ships)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Propagation:
    """How corrections propagate: each one's residual, times `scale`, over the graph of the
    `near_rows` rows near the corrections (`neighbours` per row, `alpha` per hop, `steps`
    iterations)."""

    scale: float = 1.0
    neighbours: int = 10
    alpha: float = 0.9
    steps: int = 20
    near_rows: int = 1024


def near_rows(distances: torch.Tensor, usable: torch.Tensor, per_seed: int) -> torch.Tensor:
    """Rows within each seed's `per_seed` nearest (ties included, so the set does not depend
    on the rows' order): distances (n, m) from n rows to m seeds, `usable` (n,) bool -> (n,)."""
    far = torch.where(usable[:, None], distances, torch.inf)
    take = min(per_seed, len(far))
    kth = far.kthvalue(take, dim=0).values if take else far.new_full((far.shape[1],), -1.0)
    return ((far <= kth).any(1)) & usable


def neighbour_graph(distances: torch.Tensor, neighbours: int) -> torch.Tensor:
    """Symmetric normalised kNN affinity D^-1/2 W D^-1/2 (m, m) from pairwise distances
    (m, m): W links i and j when either is among the other's `neighbours` nearest."""
    m = len(distances)
    k = min(neighbours, m - 1)
    graph = torch.zeros_like(distances)
    if k < 1:
        return graph
    own = torch.eye(m, dtype=torch.bool, device=distances.device)
    nearest = distances.masked_fill(own, torch.inf).topk(k, dim=1, largest=False).indices
    graph.scatter_(1, nearest, 1.0)
    graph = torch.maximum(graph, graph.T)
    scale = graph.sum(1).rsqrt()
    return scale[:, None] * graph * scale[None, :]


def propagate(graph: torch.Tensor, seeds: torch.Tensor, alpha: float, steps: int) -> torch.Tensor:
    """F = sum over t < steps of (alpha graph)^t seeds, for graph (m, m) and seeds (m, c):
    Zhou et al.'s closed form (I - alpha graph)^-1 seeds as steps grow."""
    spread = torch.zeros_like(seeds)
    for _ in range(steps):
        spread = alpha * (graph @ spread) + seeds
    return spread


def graph_rows(
    distance: torch.Tensor, usable: np.ndarray, order: np.ndarray, settings: Propagation
) -> np.ndarray:
    """The rows the graph links (m,): those near the corrections, from `distance` (n, pins)
    between rows and corrections, `usable` (n,) bool the rows that were embedded; in the
    order of `order` (n,), a key per row that does not depend on when it was labeled."""
    n, pins = distance.shape
    usable_rows = torch.from_numpy(usable[:n]).to(distance.device)
    per_seed = max(settings.neighbours + 1, settings.near_rows // pins)
    rows = np.flatnonzero(near_rows(distance, usable_rows, per_seed).cpu().numpy())
    return rows[np.argsort(order[rows], kind="stable")]


def probabilities(
    scores: torch.Tensor, far: torch.Tensor, unknown: torch.Tensor, threshold: float | None
) -> torch.Tensor:
    """Scores (m, n_way), novelty (m,) and rows made unknown otherwise (m,) as (m, n_way
    + 1): the classes' softmax, then 1 where the row is unknown (or beyond `threshold`)."""
    if threshold is not None:
        unknown = unknown | (far > threshold)
    return torch.cat([torch.softmax(scores, 1), unknown.to(scores.dtype)[:, None]], 1)


def propagate_corrections(
    pairs: torch.Tensor,
    rows: np.ndarray,
    prototypes: tuple[torch.Tensor, torch.Tensor],
    scores: torch.Tensor,
    far: torch.Tensor,
    verdict: np.ndarray,
    pin_rows: np.ndarray,
    pin_labels: torch.Tensor,
    threshold: float | None,
    settings: Propagation,
) -> tuple[torch.Tensor, np.ndarray]:
    """Propagate what each correction says beyond the prototypes (its label minus the
    `prototypes` scores' and novelty's probabilities, `unknown` as one more column) over the
    kNN graph of `rows` (see `graph_rows`), and add it to those rows' probabilities with the
    corrections as anchors (Correct and Smooth's residual step, Huang et al. 2021).

    `pairs` (m, m): distances among `rows`; `prototypes`: scores (n, n_way) and novelty (n,)
    of every row from the class means alone; `scores`, `far` and `verdict` (n,) the same with
    the corrections as prototypes (`corrections.as_prototypes`); `pin_rows`, `pin_labels`
    (pins,): the corrections' rows (each one of `rows`) and labels, negative for `unknown`.
    Returns every row's scores and verdict, changed on `rows` only.

    Linear: the same as propagating the examples and corrections, minus what the examples
    alone give, so without corrections nothing moves.
    """
    n, n_way = scores.shape
    graph = neighbour_graph(pairs, settings.neighbours)
    at = torch.from_numpy(rows).to(scores.device)
    anchored = torch.from_numpy(verdict[rows] > 0).to(scores.device)
    said = probabilities(
        prototypes[0][at], prototypes[1][at], torch.zeros_like(anchored), threshold
    )
    base = probabilities(scores[at], far[at], anchored, threshold)
    position = np.full(n, -1)
    position[rows] = np.arange(len(rows))
    seeds = torch.from_numpy(position[pin_rows]).to(scores.device)
    target = said[seeds].clone()  # an `unknown` correction says nothing of the classes
    of_class = pin_labels >= 0
    target[of_class, :n_way] = torch.nn.functional.one_hot(pin_labels[of_class], n_way).to(
        target.dtype
    )
    target[:, n_way] = (~of_class).to(target.dtype)
    residual = torch.zeros_like(base).index_copy(0, seeds, target - said[seeds])
    moved = base + settings.scale * propagate(graph, residual, settings.alpha, settings.steps)
    scores = scores.clone()
    scores[at] = moved[:, :n_way].clamp_min(1e-6).log()
    verdict = verdict.copy()
    verdict[rows] = np.where((moved[:, n_way] > 0.5).cpu().numpy(), 1, -1)
    return scores, verdict
