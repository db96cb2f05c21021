"""How a person's corrections reach beyond themselves: the settings, and label propagation
(Zhou et al. 2004) over the kNN graph of the images near the corrections."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Spread:
    """How far corrections act beyond their own images (see `Labeler._reach`, `_spread`).

    `reach`: a correction that moves the unknown boundary moves it only for the rows among
    its `reach` nearest (`benchmarks/review_effort.py` measured 20 against 10 and 40).
    `scale` > 0 also propagates each correction's residual over the graph of `near_rows`
    rows near the corrections (`neighbours` per row, `alpha` per hop, `steps` iterations);
    measured, it turned right labels wrong more often than it fixed any, so it is off.
    """

    reach: int = 20
    scale: float = 0.0
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
