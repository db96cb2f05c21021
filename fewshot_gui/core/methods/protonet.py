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
        self._support: tuple[torch.Tensor, torch.Tensor] | None = None

    def fit_support_features(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        n_way = check_support_labels(labels, features.shape[0])
        self._support = (self.points(features), labels)
        self.prototypes = class_means(self._support[0], labels, n_way)

    @torch.no_grad()
    def refine(
        self, points: torch.Tensor, clutter_novelty: float | None = None, steps: int = 3
    ) -> None:
        """Transductive soft k-means (Ren et al. 2018) over unlabeled `points(features)`.

        Each step moves every prototype to the mean of its support examples and of the
        unlabeled features weighted by how much they belong to it (softmax of the scores).
        With `clutter_novelty`, an extra cluster at that novelty soaks up images far from
        every class, so they pull no prototype. Always starts from the support set alone,
        so calling it again with other data does not compound.
        """
        if self._support is None or self.prototypes is None:
            raise ConfigError("call fit_support before refining")
        support, labels = self._support
        n_way = int(labels.max()) + 1
        support_sums = torch.zeros_like(self.prototypes).index_add(0, labels, support)
        support_counts = torch.bincount(labels, minlength=n_way).to(support.dtype)
        self.prototypes = support_sums / support_counts.unsqueeze(1)
        for _ in range(steps):
            scores, _ = self.score_points(points)
            if clutter_novelty is not None:
                clutter = self._score_of_distance(torch.tensor(clutter_novelty))
                scores = torch.cat([scores, clutter.expand(len(scores), 1)], dim=1)
            weights = torch.softmax(scores, dim=1)[:, :n_way]
            totals = support_counts + weights.sum(0)
            self.prototypes = (support_sums + weights.T @ points) / totals.unsqueeze(1)

    def forward_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.score_features(features)[0]

    def novelty(self, features: torch.Tensor) -> torch.Tensor:
        """Distance to the nearest prototype: squared Euclidean, or 1 - cosine."""
        return self._distances(features).min(1).values

    def score_points(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        distances = self._point_distances(points)
        return self._score_of_distance(distances), distances.min(1).values

    def anchor_scores(
        self, points: torch.Tensor, anchors: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (n, m) and distances (n, m) of `points` against single `anchors` (m, D),
        both `points(features)`, as if each anchor were a prototype: for corrected images."""
        if self.metric == "euclidean":
            distances = squared_euclidean(points, anchors)
            return self._score_of_distance(distances), distances
        return self.anchor_products(points @ anchors.T)

    def anchor_products(self, products: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`anchor_scores` of a cosine ProtoNet from the products (n, m) of points and anchors,
        e.g. through `PointStore.times`, which reads 100,000 rows at half the bytes."""
        if self.metric != "cosine":
            raise ConfigError("only cosine ProtoNets score anchors from products")
        distances = 1.0 - products
        return self._score_of_distance(distances), distances

    @torch.no_grad()
    def leave_one_out(
        self, features: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As the base class says, at once: leaving example i out only moves its own class's
        prototype, to (sum of the class - x_i) / (count - 1)."""
        self.fit_support_features(features, labels)
        assert self._support is not None and self.prototypes is not None
        points, prototypes = self._support[0], self.prototypes
        counts = torch.bincount(labels, minlength=len(prototypes)).to(points.dtype)
        alone = counts[labels] < 2
        own = (prototypes[labels] * counts[labels, None] - points) / (counts[labels, None] - 1)
        distances = self._point_distances(points)
        if self.metric == "euclidean":
            own_distance = (points - own).pow(2).sum(1)
        else:
            own_distance = 1.0 - (points * F.normalize(own, dim=1)).sum(1)
        distances[torch.arange(len(labels)), labels] = own_distance
        predicted = distances.argmin(1)
        novelty = distances.min(1).values
        predicted[alone], novelty[alone] = -1, float("nan")
        return predicted, novelty

    @property
    def scores_by_products(self) -> bool:
        return self.metric == "cosine"

    def scoring_directions(self) -> torch.Tensor | None:
        """For cosine, the prototypes' unit directions; Euclidean scores need more."""
        if self.metric != "cosine" or self.prototypes is None:
            return None
        return F.normalize(self.prototypes, dim=1)

    def score_products(self, products: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.metric != "cosine":
            raise ConfigError("only cosine ProtoNets score from products")
        distances = 1.0 - products
        return self._score_of_distance(distances), distances.min(1).values

    def _score_of_distance(self, distances: torch.Tensor) -> torch.Tensor:
        if self.metric == "euclidean":
            return -distances
        return self.log_scale.exp() * (1 - distances)

    def points(self, features: torch.Tensor) -> torch.Tensor:
        """Where prototypes are class means: the features, or their unit directions."""
        features = features.flatten(1)
        return F.normalize(features, dim=1) if self.metric == "cosine" else features

    def _distances(self, features: torch.Tensor) -> torch.Tensor:
        return self._point_distances(self.points(features))

    def _point_distances(self, points: torch.Tensor) -> torch.Tensor:
        if self.prototypes is None:
            raise ConfigError("call fit_support before scoring queries")
        if self.metric == "euclidean":
            return squared_euclidean(points, self.prototypes)
        return 1.0 - points @ F.normalize(self.prototypes, dim=1).T
