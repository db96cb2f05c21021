"""Matching Networks (Vinyals et al. 2016): softmax attention over the support embeddings."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MAX_INNER_STEPS
from ..errors import ConfigError
from .base import FewShotClassifier, check_support_labels


def class_logsumexp(logits: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Per-class log of summed exp: logits (n, n_support) with labels (n_support,) ->
    (n, n_way). Its softmax over classes is the attention mass each class receives."""
    index = labels.expand(len(logits), -1)
    top = torch.full(
        (len(logits), n_way), -torch.inf, dtype=logits.dtype, device=logits.device
    ).scatter_reduce(1, index, logits, "amax")
    top = top.detach()  # any shift is exact; a constant one keeps the gradient simple
    sums = torch.zeros_like(top).index_add(1, labels, (logits - top[:, labels]).exp())
    return top + sums.log()


class MatchingNetwork(FewShotClassifier):
    """Each query attends to every support example by a softmax over scaled cosine
    similarities; a class's probability is the attention its examples receive, so scores
    are per-class log-sum-exps of `scale * cos(f(query), g(example))`.

    `scale` is learned (stored as a log, starting at 10), where the paper softmaxes the
    plain cosine: a cosine of at most 1 spreads attention thinly over 20 classes.

    With `fce_steps` K > 0, full-context embeddings: g is a bidirectional LSTM over the
    support embeddings plus a skip (g = h_forward + h_backward + g'), and f an LSTM that
    reads the support K times by dot-product attention, with a skip to the query's own
    embedding. The paper feeds that LSTM its state concatenated with the read-out; here
    the two are summed so the state keeps the embedding's size, as common implementations
    do. Without it `points` are the unit embeddings, as for a cosine ProtoNet.
    """

    def __init__(self, encoder: nn.Module, feature_dim: int, fce_steps: int = 0) -> None:
        super().__init__(encoder)
        if not 0 <= fce_steps <= MAX_INNER_STEPS:
            raise ConfigError(f"fce_steps must be 0 to {MAX_INNER_STEPS}; got {fce_steps}")
        self.fce_steps = fce_steps
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        if fce_steps:
            self.support_lstm = nn.LSTM(feature_dim, feature_dim, bidirectional=True)
            self.query_lstm = nn.LSTMCell(feature_dim, feature_dim)
        # The support's full-context embeddings (n_support, D), their unit directions and labels.
        self._support: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def points(self, features: torch.Tensor) -> torch.Tensor:
        """The unit embeddings; with full-context embeddings the flat features, because the
        query's embedding then depends on the support set."""
        features = features.flatten(1)
        return features if self.fce_steps else F.normalize(features, dim=1)

    def fit_support_features(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        check_support_labels(labels, features.shape[0])
        support = self.points(features)
        if self.fce_steps:
            # The support as one sequence, in the given order: (n_support, batch 1, D).
            both, _ = self.support_lstm(support.unsqueeze(1))
            forward, backward = both.squeeze(1).chunk(2, dim=1)
            support = forward + backward + support
        self._support = (support, F.normalize(support, dim=1), labels)

    def forward_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.score_points(self.points(features))[0]

    def novelty(self, features: torch.Tensor) -> torch.Tensor:
        """1 - the cosine to the nearest support example, where attention compares them."""
        return self.score_points(self.points(features))[1]

    def score_points(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, directions, labels = self._fitted()
        cosines = self._queries(points) @ directions.T
        scores = class_logsumexp(self.log_scale.exp() * cosines, labels, int(labels.max()) + 1)
        return scores, (1.0 - cosines.max(1).values).clamp_min(0)

    def attention(self, features: torch.Tensor) -> torch.Tensor:
        """Each query's attention over the support examples: (n_query, ...) -> (n_query,
        n_support), rows summing to 1."""
        _, directions, _ = self._fitted()
        cosines = self._queries(self.points(features)) @ directions.T
        return torch.softmax(self.log_scale.exp() * cosines, dim=1)

    def anchor_scores(
        self, points: torch.Tensor, anchors: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (n, m) and distances (n, m) of `points` against single `anchors` (m, ...),
        both `points(features)`, each as a class of one support example: for corrections."""
        cosines = self._queries(points) @ self._queries(anchors).T
        return self.log_scale.exp() * cosines, 1.0 - cosines

    def _queries(self, points: torch.Tensor) -> torch.Tensor:
        """Unit query embeddings f(x, S) (n, D) of `points(features)`."""
        if not self.fce_steps:
            return points
        support, _, _ = self._fitted()
        state = torch.zeros_like(points)
        read = torch.zeros_like(points)
        cell = torch.zeros_like(points)
        for _ in range(self.fce_steps):
            hidden, cell = self.query_lstm(points, (state + read, cell))
            state = hidden + points
            read = torch.softmax(state @ support.T, dim=1) @ support
        return F.normalize(state, dim=1)

    def _fitted(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._support is None:
            raise ConfigError("call fit_support before scoring queries")
        return self._support
