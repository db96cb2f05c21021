"""The one surface every few-shot method shares: fit_support, then forward."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from ..errors import ConfigError


class FewShotClassifier(nn.Module, ABC):
    """A classifier that adapts to a support set, then scores queries.

    `encoder` is the part that adaptation never changes: its output (`embed`) is what the
    labeler caches per image, so a new support set only reruns the cheap rest.
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images -> (N, ...) features that adaptation does not touch."""
        return self.encoder(images)

    def fit_support(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Adapt to support images (n_support, C, H, W) with labels (n_support,) in 0..n_way-1."""
        self.fit_support_features(self.embed(images), labels)

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        """Score query images (n_query, C, H, W) -> (n_query, n_way); higher is likelier."""
        return self.forward_features(self.embed(query))

    @abstractmethod
    def fit_support_features(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Adapt to embedded support features (n_support, ...) with labels (n_support,)."""

    @abstractmethod
    def forward_features(self, features: torch.Tensor) -> torch.Tensor:
        """Score embedded queries (n_query, ...) -> (n_query, n_way)."""

    def score_features(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (n_query, n_way) and novelty (n_query,) together, sharing work where it can."""
        return self.score_points(self.points(features))

    def points(self, features: torch.Tensor) -> torch.Tensor:
        """The rest of scoring that no support set changes: what a labeler keeps per image,
        so that a new support set costs one pass over them. By default the features."""
        return features

    def score_points(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`score_features` on `points(features)`."""
        return self.forward_features(points), self.novelty(points)

    @torch.no_grad()
    def leave_one_out(
        self, features: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each support example scored by the model adapted to all the others: the class
        predicted (n,) and the example's novelty (n,). Examples alone in their class get -1
        and NaN. Leaves the model adapted to the whole support set."""
        predicted = torch.full((len(labels),), -1, dtype=torch.long)
        novelty = torch.full((len(labels),), float("nan"))
        counts = torch.bincount(labels)
        for i in range(len(labels)):
            if counts[labels[i]] < 2:
                continue
            keep = torch.arange(len(labels)) != i
            self.fit_support_features(features[keep], labels[keep])
            predicted[i] = int(self.forward_features(features[i : i + 1]).argmax(1))
            novelty[i] = float(self.novelty(features[i : i + 1]))
        self.fit_support_features(features, labels)
        return predicted, novelty

    @property
    def scores_by_products(self) -> bool:
        """Whether, once adapted, `scoring_directions` gives directions (not None)."""
        return False

    def scoring_directions(self) -> torch.Tensor | None:
        """Directions (n_way, D) through whose products alone scores see the points, so that
        `score_products(points @ directions.T)` equals `score_points(points)`; or None."""
        return None

    def score_products(self, products: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`score_points` from `points @ scoring_directions().T` (n, n_way)."""
        raise NotImplementedError(f"{type(self).__name__} does not score from products")

    @abstractmethod
    def novelty(self, features: torch.Tensor) -> torch.Tensor:
        """How far embedded queries (n_query, ...) lie from every class -> (n_query,).

        Zero on a class centre, growing away from all of them; the labeler calibrates its
        `unknown` threshold on this scale.
        """


def check_support_labels(labels: torch.Tensor, n_support: int) -> int:
    """The number of classes, after checking labels are 0..n_way-1 with every class present."""
    if labels.dim() != 1 or labels.numel() != n_support:
        raise ConfigError(
            f"support labels must have shape ({n_support},), got {tuple(labels.shape)}"
        )
    if n_support == 0:
        raise ConfigError("the support set is empty: give at least one example per class")
    n_way = int(labels.max()) + 1
    counts = torch.bincount(labels, minlength=n_way)
    if int(labels.min()) < 0 or bool((counts == 0).any()):
        missing = [i for i in range(n_way) if counts[i] == 0]
        raise ConfigError(f"support labels must cover 0..{n_way - 1}; no example for {missing}")
    return n_way
