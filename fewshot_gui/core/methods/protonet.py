"""Prototypical Networks (Snell et al. 2017): class means of embeddings, nearest wins."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import FewShotClassifier, check_support_labels


def class_means(features: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Per-class mean of features (n, D) with labels (n,) -> (n_way, D)."""
    sums = torch.zeros(n_way, features.shape[1], dtype=features.dtype, device=features.device)
    sums = sums.index_add(0, labels, features)
    counts = torch.bincount(labels, minlength=n_way).to(features.dtype).unsqueeze(1)
    return sums / counts


def squared_euclidean(queries: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Squared distances (n_query, D) x (n_way, D) -> (n_query, n_way), never negative."""
    cross = queries @ prototypes.T
    distances = queries.pow(2).sum(1, keepdim=True) - 2 * cross + prototypes.pow(2).sum(1)
    return distances.clamp_min(0)


class ProtoNet(FewShotClassifier):
    """Scores are minus the squared Euclidean distance to each prototype (the paper's d).

    With `metric="cosine"` scores are a learned scale times the cosine similarity, which
    suits pretrained features better (Chen et al. 2019; Gidaris & Komodakis 2018).
    """

    def __init__(self, encoder: nn.Module, metric: str = "euclidean") -> None:
        super().__init__(encoder)
        if metric not in ("euclidean", "cosine"):
            raise ConfigError(f"ProtoNet metric must be euclidean or cosine, got {metric!r}")
        self.metric = metric
        # Stored as a log so the scale stays positive; unused by the Euclidean metric.
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.prototypes: torch.Tensor | None = None

    def fit_support_features(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        features = features.flatten(1)
        n_way = check_support_labels(labels, features.shape[0])
        if self.metric == "cosine":
            features = F.normalize(features, dim=1)
        self.prototypes = class_means(features, labels, n_way)

    def forward_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.score_features(features)[0]

    def novelty(self, features: torch.Tensor) -> torch.Tensor:
        """Distance to the nearest prototype: squared Euclidean, or 1 - cosine."""
        return self._distances(features).min(1).values

    def score_features(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        distances = self._distances(features)
        scores = (
            -distances if self.metric == "euclidean" else self.log_scale.exp() * (1 - distances)
        )
        return scores, distances.min(1).values

    def _distances(self, features: torch.Tensor) -> torch.Tensor:
        if self.prototypes is None:
            raise ConfigError("call fit_support before scoring queries")
        features = features.flatten(1)
        if self.metric == "euclidean":
            return squared_euclidean(features, self.prototypes)
        return 1.0 - F.normalize(features, dim=1) @ F.normalize(self.prototypes, dim=1).T
